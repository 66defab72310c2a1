// CUDA launchers for SoftPool over the shared body in softpool_kernel.h:
//   - forward: one thread per output element, or one warp per output when windows are large (head
//     and adaptive pools: the warp's lanes read neighbouring taps, so loads coalesce, and reduce
//     the max and the sums with shuffles);
//   - backward: one thread per input element, a deterministic gather over its covering outputs
//     (no atomics; the spans are computed once per dimension, see covering_mask);
//   - forward-mode tangent: one thread per output element.
//   - the tempered ops (a tensor temperature per channel) run the same kernels; their backward adds
//     the temperature gradient g * dy/dT, one thread per output element.
// The flat element index is unflattened in 32-bit arithmetic when the tensor allows it (64-bit
// division is a long instruction sequence on GPUs); __launch_bounds__ lets the compiler budget
// registers for kThreads threads per block. The current stream, a device guard and a launch check.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/core/SymIntArrayRef.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <initializer_list>
#include <optional>
#include <limits>
#include <type_traits>

#include "softpool_entry_points.h"
#include "softpool_launch.h"

namespace softpool_video {
namespace {

constexpr int kThreads = 256;

// Sizes and strides of a 5-D tensor, passed by value to kernels.
struct Layout5 {
  int64_t n, c, t, h, w;
};

inline Layout5 strides_of(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3), t.stride(4)};
}

inline Layout5 sizes_of(const at::Tensor& t) { return {t.size(0), t.size(1), t.size(2), t.size(3), t.size(4)}; }

// A 5-D tensor argument of a kernel: base pointer and strides.
template <typename T>
struct Tensor5 {
  T* data;
  Layout5 s;
  __device__ __forceinline__ T* plane(int64_t n, int64_t c) const { return data + n * s.n + c * s.c; }
  __device__ __forceinline__ PooledPlane<std::remove_const_t<T>> pooled(int64_t n, int64_t c) const {
    return {data + n * s.n + c * s.c, Strides3{s.t, s.h, s.w}};
  }
  __device__ __forceinline__ T& at(int64_t n, int64_t c, int64_t a, int64_t b, int64_t d) const {
    return data[n * s.n + c * s.c + a * s.t + b * s.h + d * s.w];
  }
};

template <typename T>
Tensor5<const T> read_only(const at::Tensor& t) {
  return {t.const_data_ptr<T>(), strides_of(t)};
}

template <typename T>
Tensor5<T> writable(const at::Tensor& t) {
  return {t.mutable_data_ptr<T>(), strides_of(t)};
}

// A statistic the forward may skip (an inference forward): a null pointer when undefined.
template <typename T>
Tensor5<T> writable_or_null(const at::Tensor& t) {
  return t.defined() ? writable<T>(t) : Tensor5<T>{nullptr, Layout5{0, 0, 0, 0, 0}};
}

// Decompose a flat index in NCTHW (or NTHWC when channels_last) order, in index_t arithmetic (int32
// when the tensor has fewer than 2^31 elements). With channels-last, neighbouring threads take
// neighbouring channels, so loads and stores coalesce.
template <typename index_t>
__device__ __forceinline__ void unflatten(index_t i, Layout5 size, bool channels_last, int64_t* n, int64_t* c,
                                          int64_t* t, int64_t* h, int64_t* w) {
  const index_t sc = static_cast<index_t>(size.c), st = static_cast<index_t>(size.t);
  const index_t sh = static_cast<index_t>(size.h), sw = static_cast<index_t>(size.w);
  if (channels_last) {
    *c = i % sc; i /= sc;
    *w = i % sw; i /= sw;
    *h = i % sh; i /= sh;
    *t = i % st; i /= st;
  } else {
    *w = i % sw; i /= sw;
    *h = i % sh; i /= sh;
    *t = i % st; i /= st;
    *c = i % sc; i /= sc;
  }
  *n = i;
}

__device__ __forceinline__ Strides3 pooled3(Layout5 s) { return {s.t, s.h, s.w}; }

template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(Tensor5<const scalar_t> input, Tensor5<scalar_t> output, Tensor5<acc_t> offset,
                   Tensor5<acc_t> residual, Layout5 out_size, Geometry g, Temperature<acc_t> temperature,
                   bool channels_last, index_t total) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    int64_t n, c, ot, oh, ow;
    unflatten(i, out_size, channels_last, &n, &c, &ot, &oh, &ow);
    const WindowResult<acc_t> r =
        forward_window<scalar_t, acc_t>(input.plane(n, c), pooled3(input.s), window_span(g, 0, ot),
                                        window_span(g, 1, oh), window_span(g, 2, ow), temperature.inverse(c));
    output.at(n, c, ot, oh, ow) = static_cast<scalar_t>(r.output);
    if (offset.data == nullptr) continue;  // an inference forward keeps no statistics
    offset.at(n, c, ot, oh, ow) = r.log_weight_offset;
    residual.at(n, c, ot, oh, ow) = r.output_residual;
  }
}

template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(Tensor5<const scalar_t> grad_output, Tensor5<const scalar_t> input,
                    Tensor5<const scalar_t> output, Tensor5<const acc_t> offset, Tensor5<const acc_t> residual,
                    Tensor5<scalar_t> grad_input, Layout5 in_size, Geometry g, Temperature<acc_t> temperature,
                    bool channels_last, index_t total) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    int64_t n, c, it, ih, iw;
    unflatten(i, in_size, channels_last, &n, &c, &it, &ih, &iw);
    const acc_t x = static_cast<acc_t>(input.at(n, c, it, ih, iw));
    const SavedPlanes<scalar_t, acc_t> saved{output.pooled(n, c), offset.pooled(n, c), residual.pooled(n, c)};
    grad_input.at(n, c, it, ih, iw) = static_cast<scalar_t>(
        backward_input<acc_t>(g, it, ih, iw, x, grad_output.pooled(n, c), saved, temperature.inverse(c)));
  }
}

template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    jvp_kernel(Tensor5<const scalar_t> tangent, Tensor5<const scalar_t> input, Tensor5<const scalar_t> output,
               Tensor5<const acc_t> offset, Tensor5<const acc_t> residual, Tensor5<scalar_t> output_tangent,
               Layout5 out_size, Geometry g, Temperature<acc_t> temperature, bool channels_last, index_t total) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    int64_t n, c, ot, oh, ow;
    unflatten(i, out_size, channels_last, &n, &c, &ot, &oh, &ow);
    output_tangent.at(n, c, ot, oh, ow) = static_cast<scalar_t>(jvp_window<acc_t>(
        input.plane(n, c), pooled3(input.s), tangent.plane(n, c), pooled3(tangent.s), window_span(g, 0, ot),
        window_span(g, 1, oh), window_span(g, 2, ow), static_cast<acc_t>(output.at(n, c, ot, oh, ow)),
        offset.at(n, c, ot, oh, ow), residual.at(n, c, ot, oh, ow), temperature.inverse(c)));
  }
}

// g * dy/dT of every window (the tempered backward's temperature gradient): one thread per output.
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    temperature_gradient_kernel(Tensor5<const scalar_t> grad_output, Tensor5<const scalar_t> input,
                                Tensor5<const scalar_t> output, Tensor5<const acc_t> offset,
                                Tensor5<const acc_t> residual, Tensor5<acc_t> grad_temperature, Layout5 out_size,
                                Geometry g, Temperature<acc_t> temperature, bool channels_last, index_t total) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    int64_t n, c, ot, oh, ow;
    unflatten(i, out_size, channels_last, &n, &c, &ot, &oh, &ow);
    const acc_t derivative = temperature_derivative_window<acc_t>(
        input.plane(n, c), pooled3(input.s), window_span(g, 0, ot), window_span(g, 1, oh), window_span(g, 2, ow),
        static_cast<acc_t>(output.at(n, c, ot, oh, ow)), offset.at(n, c, ot, oh, ow), residual.at(n, c, ot, oh, ow),
        temperature.inverse(c));
    grad_temperature.at(n, c, ot, oh, ow) =
        temperature_gradient(derivative, static_cast<acc_t>(grad_output.at(n, c, ot, oh, ow)));
  }
}

constexpr int kWarp = 32;

template <typename acc_t>
__device__ __forceinline__ acc_t warp_max(acc_t v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
  // butterfly: every lane ends with the same sum, in the same order on every run
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Forward with one warp per output: lanes stride over the window's taps (flattened (t, h, w), so
// neighbouring lanes read neighbouring w: coalesced for NCTHW). Windows whose maximum is not finite
// (NaN, +-inf, empty) are left to lane 0 running the shared scalar body, which defines them.
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    forward_warp_kernel(Tensor5<const scalar_t> input, Tensor5<scalar_t> output, Tensor5<acc_t> offset,
                        Tensor5<acc_t> residual, Layout5 out_size, Geometry g, Temperature<acc_t> temperature,
                        index_t total) {
  const int lane = threadIdx.x % kWarp;
  const index_t warps_per_block = blockDim.x / kWarp;
  for (index_t i = blockIdx.x * warps_per_block + threadIdx.x / kWarp; i < total;
       i += static_cast<index_t>(gridDim.x) * warps_per_block) {
    int64_t n, c, ot, oh, ow;
    unflatten(i, out_size, false, &n, &c, &ot, &oh, &ow);
    const Span st = window_span(g, 0, ot), sh = window_span(g, 1, oh), sw = window_span(g, 2, ow);
    const scalar_t* plane = input.plane(n, c);
    const unsigned int row = static_cast<unsigned int>(sw.count), rows_h = static_cast<unsigned int>(sh.count);
    const unsigned int taps = static_cast<unsigned int>(st.count * sh.count * sw.count);
    auto tap = [&](unsigned int k) {
      const unsigned int cw = k % row, rest = k / row, b = rest % rows_h, a = rest / rows_h;
      return static_cast<acc_t>(plane[(st.first + a * st.step) * input.s.t + (sh.first + b * sh.step) * input.s.h +
                                      (sw.first + cw * sw.step) * input.s.w]);
    };
    const acc_t inf = softpool_infinity<acc_t>();
    acc_t max_x = -inf;
    bool nan = false;
    for (unsigned int k = lane; k < taps; k += kWarp) {
      const acc_t x = tap(k);
      nan = nan || x != x;
      max_x = x > max_x ? x : max_x;
    }
    nan = __any_sync(0xffffffffu, nan);
    max_x = warp_max(max_x);
    const acc_t inv_t = temperature.inverse(c);
    if (nan || taps == 0 || is_infinite(max_x)) {
      if (lane == 0) {
        const WindowResult<acc_t> r = forward_window<scalar_t, acc_t>(plane, pooled3(input.s), st, sh, sw, inv_t);
        output.at(n, c, ot, oh, ow) = static_cast<scalar_t>(r.output);
        if (offset.data != nullptr) {
          offset.at(n, c, ot, oh, ow) = r.log_weight_offset;
          residual.at(n, c, ot, oh, ow) = r.output_residual;
        }
      }
      continue;
    }
    acc_t denominator = 0, numerator = 0;
    for (unsigned int k = lane; k < taps; k += kWarp) {
      const acc_t d = tap(k) - max_x;
      const acc_t weight = softpool_exp(d * inv_t);
      denominator += weight;
      numerator += weight > 0 ? weight * d : acc_t(0);
    }
    denominator = warp_sum(denominator);
    numerator = warp_sum(numerator);
    if (lane == 0) {
      const WindowResult<acc_t> r =
          finish_window<scalar_t>(max_x, numerator / denominator, softpool_log(denominator), inv_t);
      output.at(n, c, ot, oh, ow) = static_cast<scalar_t>(r.output);
      if (offset.data != nullptr) {
        offset.at(n, c, ot, oh, ow) = r.log_weight_offset;
        residual.at(n, c, ot, oh, ow) = r.output_residual;
      }
    }
  }
}

// Windows with at least this many taps get a warp each (NCTHW inputs; channels-last inputs keep one
// thread per output, whose neighbouring threads already read neighbouring channels).
constexpr int64_t kWarpWindowTaps = 64;

inline int64_t largest_window_taps(const Geometry& g) {
  int64_t taps = 1;
  for (int d = 0; d < kPoolDims; ++d) {
    taps *= g.adaptive ? (g.input_size[d] + g.output_size[d] - 1) / g.output_size[d] + 1 : g.kernel[d];
  }
  return taps;
}

// Grids are capped at this many blocks; grid-stride loops cover the rest of a huge tensor.
constexpr int64_t kMaxGridBlocks = int64_t{1} << 20;

// Whether every flat index and every element offset of these tensors fits in int32, with room for
// one more grid stride: the loops' last `i += stride` must not wrap past INT32_MAX to a negative
// index that still compares below the total.
inline bool fits_int32(std::initializer_list<const at::Tensor*> tensors) {
  constexpr int64_t limit = std::numeric_limits<int32_t>::max() - kMaxGridBlocks * kThreads;
  for (const at::Tensor* t : tensors) {
    int64_t span = 1;
    for (int64_t d = 0; d < t->dim(); ++d) span += (t->size(d) - 1) * t->stride(d);
    if (t->numel() >= limit || span >= limit) return false;
  }
  return true;
}

inline unsigned int grid_for(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < kMaxGridBlocks ? blocks : kMaxGridBlocks);
}

// The implementations behind the float ops and the tempered ops (temperature a number or (C,) values).
// Without `statistics` (an inference forward) the two statistics are not written and come back undefined.
std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cuda(const at::Tensor& input, c10::IntArrayRef output_size,
                                                            const Geometry& g, const TemperatureArg& temperature,
                                                            bool statistics) {
  TORCH_CHECK(input.is_cuda(), "softpool_video: input must be a CUDA tensor here, got ", input.device());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const bool channels_last = use_channels_last(input);
  const std::vector<int64_t> sizes = {input.size(0), input.size(1), output_size[0], output_size[1], output_size[2]};
  const at::ScalarType stat_dtype = statistic_dtype(input.scalar_type());
  at::Tensor output = empty_pooled(input, sizes, input.scalar_type(), channels_last);
  at::Tensor offset, residual;
  if (statistics) {
    offset = empty_pooled(input, sizes, stat_dtype, channels_last);
    residual = empty_pooled(input, sizes, stat_dtype, channels_last);
  }
  const int64_t total = output.numel();
  if (total == 0) return {output, offset, residual};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const bool warp_per_output = !channels_last && largest_window_taps(g) >= kWarpWindowTaps;
    auto launch = [&](auto index_zero) {
      using index_t = decltype(index_zero);
      if (warp_per_output) {
        forward_warp_kernel<scalar_t, acc_t, index_t><<<grid_for(total * kWarp), kThreads, 0, stream>>>(
            read_only<scalar_t>(input), writable<scalar_t>(output), writable_or_null<acc_t>(offset),
            writable_or_null<acc_t>(residual), sizes_of(output), g, make_temperature<acc_t>(temperature),
            static_cast<index_t>(total));
      } else {
        forward_kernel<scalar_t, acc_t, index_t><<<grid_for(total), kThreads, 0, stream>>>(
            read_only<scalar_t>(input), writable<scalar_t>(output), writable_or_null<acc_t>(offset),
            writable_or_null<acc_t>(residual), sizes_of(output), g, make_temperature<acc_t>(temperature), channels_last,
            static_cast<index_t>(total));
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    // the statistics have the output's shape and layout
    if (fits_int32({&input, &output}) && total * kWarp < std::numeric_limits<int32_t>::max()) {
      launch(int32_t{0});
    } else {
      launch(int64_t{0});
    }
  });
  return {output, offset, residual};
}

// grad_input, and with want_temperature also grad_temperature = g * dy/dT per window (output-shaped,
// statistic dtype; undefined otherwise).
std::tuple<at::Tensor, at::Tensor> backward_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                                 const at::Tensor& output, const at::Tensor& offset,
                                                 const at::Tensor& residual, const Geometry& g,
                                                 const TemperatureArg& temperature, bool want_temperature) {
  TORCH_CHECK(input.is_cuda(), "softpool_video: input must be a CUDA tensor here, got ", input.device());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const bool channels_last = use_channels_last(input);
  at::Tensor grad_input = empty_pooled(input, input.sizes(), input.scalar_type(), channels_last);
  at::Tensor grad_temperature;
  if (want_temperature) {
    grad_temperature = empty_pooled(input, output.sizes(), statistic_dtype(input.scalar_type()), channels_last);
  }
  const int64_t total = grad_input.numel();
  if (total == 0) return {grad_input, grad_temperature};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto launch = [&](auto index_zero) {
      using index_t = decltype(index_zero);
      backward_kernel<scalar_t, acc_t, index_t><<<grid_for(total), kThreads, 0, stream>>>(
          read_only<scalar_t>(grad_output), read_only<scalar_t>(input), read_only<scalar_t>(output),
          read_only<acc_t>(offset), read_only<acc_t>(residual), writable<scalar_t>(grad_input), sizes_of(input), g,
          make_temperature<acc_t>(temperature), channels_last, static_cast<index_t>(total));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (!want_temperature) return;
      const int64_t windows = output.numel();
      temperature_gradient_kernel<scalar_t, acc_t, index_t><<<grid_for(windows), kThreads, 0, stream>>>(
          read_only<scalar_t>(grad_output), read_only<scalar_t>(input), read_only<scalar_t>(output),
          read_only<acc_t>(offset), read_only<acc_t>(residual), writable<acc_t>(grad_temperature), sizes_of(output),
          g, make_temperature<acc_t>(temperature), channels_last, static_cast<index_t>(windows));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (fits_int32({&grad_output, &input, &output, &offset, &residual, &grad_input})) {
      launch(int32_t{0});
    } else {
      launch(int64_t{0});
    }
  });
  return {grad_input, grad_temperature};
}

at::Tensor jvp_cuda(const at::Tensor& tangent, const at::Tensor& input, const at::Tensor& output,
                    const at::Tensor& offset, const at::Tensor& residual, const Geometry& g,
                    const TemperatureArg& temperature) {
  TORCH_CHECK(input.is_cuda(), "softpool_video: input must be a CUDA tensor here, got ", input.device());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const bool channels_last = use_channels_last(input);
  at::Tensor output_tangent = empty_pooled(input, output.sizes(), input.scalar_type(), channels_last);
  const int64_t total = output_tangent.numel();
  if (total == 0) return output_tangent;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_jvp_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto launch = [&](auto index_zero) {
      using index_t = decltype(index_zero);
      jvp_kernel<scalar_t, acc_t, index_t><<<grid_for(total), kThreads, 0, stream>>>(
          read_only<scalar_t>(tangent), read_only<scalar_t>(input), read_only<scalar_t>(output),
          read_only<acc_t>(offset), read_only<acc_t>(residual), writable<scalar_t>(output_tangent),
          sizes_of(output_tangent), g, make_temperature<acc_t>(temperature), channels_last,
          static_cast<index_t>(total));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (fits_int32({&tangent, &input, &output, &offset, &residual, &output_tangent})) {
      launch(int32_t{0});
    } else {
      launch(int64_t{0});
    }
  });
  return output_tangent;
}

// The launchers behind the shared entry points (softpool_entry_points.h).
struct CudaDevice {
  static constexpr auto forward = &forward_cuda;
  static constexpr auto backward = &backward_cuda;
  static constexpr auto jvp = &jvp_cuda;
};

}  // namespace

TORCH_LIBRARY_IMPL(softpool_video, CUDA, m) { EntryPoints<CudaDevice>::register_into(m); }

}  // namespace softpool_video
