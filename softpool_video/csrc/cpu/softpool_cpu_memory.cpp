// The pool of large result blocks; softpool_cpu_memory.h says why it exists.
#include "softpool_cpu_memory.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#include <sys/mman.h>
#endif

namespace softpool_video {

namespace {

constexpr std::size_t kHugePageBytes = std::size_t(2) << 20;

// One block of pooled memory, the context of the DataPtr that owns it while a tensor uses it.
struct Block {
  void* data;
  std::size_t bytes;  // a multiple of kHugePageBytes
};

struct Pool {
  std::mutex mutex;
  std::vector<Block*> free_blocks;  // oldest first
  std::size_t free_bytes = 0;
  bool enabled = true;
};

// Never destroyed: tensors may be freed while the process exits, after static destructors ran.
std::atomic<Pool*> the_pool{new Pool};

#if defined(__linux__)
// A forked child (a DataLoader worker) starts with a pool of its own: the parent's mutex may have
// been held by another thread at the fork. The parent's free blocks are left to the child's copy of
// the address space.
[[maybe_unused]] const int fork_handler_installed =
    pthread_atfork(nullptr, nullptr, [] { the_pool.store(new Pool); });
#endif

void free_block(Block* block) {
  std::free(block->data);
  delete block;
}

// Pages of a fresh block are requested as transparent huge pages before their first write: one
// fault per 2 MB instead of per 4 KB. Where THP is off or the call fails, nothing changes.
void ask_for_huge_pages(void* data, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  (void)madvise(data, bytes, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

void release(void* context) {
  auto* block = static_cast<Block*>(context);
  std::vector<Block*> evicted;
  {
    Pool& pool = *the_pool.load();
    std::lock_guard<std::mutex> lock(pool.mutex);
    if (!pool.enabled || block->bytes > static_cast<std::size_t>(kPooledBytesLimit)) {
      evicted.push_back(block);
    } else {
      pool.free_blocks.push_back(block);
      pool.free_bytes += block->bytes;
      auto oldest = pool.free_blocks.begin();
      while (pool.free_bytes > static_cast<std::size_t>(kPooledBytesLimit)) {
        pool.free_bytes -= (*oldest)->bytes;
        evicted.push_back(*oldest++);
      }
      pool.free_blocks.erase(pool.free_blocks.begin(), oldest);
    }
  }
  for (Block* b : evicted) free_block(b);  // outside the lock: munmap takes a while
}

// The most recently freed block of exactly `bytes`, or nullptr.
Block* take_pooled(std::size_t bytes) {
  Pool& pool = *the_pool.load();
  std::lock_guard<std::mutex> lock(pool.mutex);
  for (auto it = pool.free_blocks.rbegin(); it != pool.free_blocks.rend(); ++it) {
    if ((*it)->bytes == bytes) {
      Block* block = *it;
      pool.free_blocks.erase(std::next(it).base());
      pool.free_bytes -= bytes;
      return block;
    }
  }
  return nullptr;
}

// The allocator of pooled tensors' storages. It is also what a storage resize asks, so a resized
// result stays valid: small sizes go to torch's CPU allocator.
struct PooledAllocator final : c10::Allocator {
  c10::DataPtr allocate(std::size_t n) override {
    if (n < static_cast<std::size_t>(kPooledMinimumBytes)) return c10::GetCPUAllocator()->allocate(n);
    const std::size_t bytes = (n + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    Block* block = take_pooled(bytes);
    if (block == nullptr) {
      void* data = nullptr;
      if (posix_memalign(&data, kHugePageBytes, bytes) != 0) {
        TORCH_CHECK_WITH(OutOfMemoryError, false, "soft_pool3d: could not allocate ", bytes, " bytes on the CPU");
      }
      ask_for_huge_pages(data, bytes);
      block = new Block{data, bytes};
    }
    return {block->data, block, &release, c10::Device(c10::DeviceType::CPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

PooledAllocator pooled_allocator;

}  // namespace

at::Tensor empty_cpu_result(c10::IntArrayRef sizes, at::ScalarType dtype, bool channels_last) {
  const auto memory_format = channels_last ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::Contiguous;
  int64_t bytes = static_cast<int64_t>(c10::elementSize(dtype));
  for (const int64_t size : sizes) bytes *= size;
  bool pooled = bytes >= kPooledMinimumBytes;
  if (pooled) {
    Pool& pool = *the_pool.load();
    std::lock_guard<std::mutex> lock(pool.mutex);
    pooled = pool.enabled;
  }
  if (!pooled) {
    at::Tensor fresh = at::empty(sizes, at::TensorOptions().dtype(dtype).memory_format(memory_format));
    if (bytes >= kPooledMinimumBytes) {  // the interior 2 MB-aligned pages (madvise needs whole pages)
      const auto begin = reinterpret_cast<std::uintptr_t>(fresh.data_ptr());
      const std::uintptr_t first = (begin + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
      const std::uintptr_t last = (begin + static_cast<std::uintptr_t>(bytes)) & ~(kHugePageBytes - 1);
      if (last > first) ask_for_huge_pages(reinterpret_cast<void*>(first), last - first);
    }
    return fresh;
  }
  return at::detail::empty_generic(sizes, &pooled_allocator, c10::DispatchKeySet(c10::DispatchKey::CPU), dtype,
                                   memory_format);
}

bool set_cpu_result_pool(bool enabled) {
  std::vector<Block*> freed;
  bool previous;
  {
    Pool& pool = *the_pool.load();
    std::lock_guard<std::mutex> lock(pool.mutex);
    previous = pool.enabled;
    pool.enabled = enabled;
    if (!enabled) {
      freed.swap(pool.free_blocks);
      pool.free_bytes = 0;
    }
  }
  for (Block* b : freed) free_block(b);
  return previous;
}

std::tuple<int64_t, int64_t> cpu_result_pool_bytes() {
  Pool& pool = *the_pool.load();
  std::lock_guard<std::mutex> lock(pool.mutex);
  return {static_cast<int64_t>(pool.free_bytes), kPooledBytesLimit};
}

}  // namespace softpool_video
