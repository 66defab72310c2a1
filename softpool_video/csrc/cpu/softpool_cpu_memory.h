// Memory for the CPU operator's results (outputs, statistics, grad_input).
//
// A large result that came straight from the C library would be a fresh mapping every call: glibc
// maps blocks above 32 MB anew and unmaps them on free, so every call pays one page fault per 4 KB
// page, measured at a third of the slow stem's backward on one thread. Asking for transparent huge
// pages makes that one fault per 2 MB, but where the kernel reports free 2 MB blocks to a
// hypervisor (virtio-balloon free page reporting, as on Firecracker-style VMs) a reported block comes
// back unbacked and its first touch costs 512 host faults: 49 MB then took 120-190 ms instead of
// 4 ms, whenever the block had been free for more than about two seconds.
//
// So large results reuse the blocks of earlier results of the same rounded size, which stay mapped
// and written, and only a block that is not in the pool comes fresh (with the huge-page request).
// The pool is bounded (kPooledBytesLimit, oldest evicted first); a block leaves it only to be reused
// or freed, so the process keeps at most that much more than it uses.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <tuple>

namespace softpool_video {

// Results below this size come from torch's CPU allocator as usual (few pages; glibc's heap reuses them).
constexpr int64_t kPooledMinimumBytes = int64_t(8) << 20;
// Most bytes of free blocks the pool keeps: one slow-stem training step of a few pooling layers
// (grad_input 49 MB, output and statistics 12.8 MB each, per layer).
constexpr int64_t kPooledBytesLimit = int64_t(256) << 20;

// An uninitialised CPU tensor of `sizes` (channels_last_3d or contiguous) for a result of the
// operator, from the pool when it is large enough.
at::Tensor empty_cpu_result(c10::IntArrayRef sizes, at::ScalarType dtype, bool channels_last);

// Test and benchmark hook: false makes every result fresh (and frees the pooled blocks), as torch's
// allocator would; true pools again. Returns the previous setting.
bool set_cpu_result_pool(bool enabled);

// Bytes of free blocks the pool holds now, and kPooledBytesLimit (test hook).
std::tuple<int64_t, int64_t> cpu_result_pool_bytes();

}  // namespace softpool_video
