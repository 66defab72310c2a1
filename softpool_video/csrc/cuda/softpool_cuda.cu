// CUDA launchers for SoftPool: one thread per output element (forward, forward-mode tangent) and
// one thread per input element (backward: a deterministic gather, no atomics), over the shared
// body in softpool_kernel.h. 64-bit indices, the current stream, a device guard and a launch check.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/core/SymIntArrayRef.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <type_traits>

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

// Decompose a flat index in NCTHW (or NTHWC when channels_last) order. With channels-last,
// neighbouring threads take neighbouring channels, so loads and stores coalesce.
__device__ __forceinline__ void unflatten(int64_t i, Layout5 size, bool channels_last, int64_t* n, int64_t* c,
                                          int64_t* t, int64_t* h, int64_t* w) {
  if (channels_last) {
    *c = i % size.c; i /= size.c;
    *w = i % size.w; i /= size.w;
    *h = i % size.h; i /= size.h;
    *t = i % size.t; i /= size.t;
  } else {
    *w = i % size.w; i /= size.w;
    *h = i % size.h; i /= size.h;
    *t = i % size.t; i /= size.t;
    *c = i % size.c; i /= size.c;
  }
  *n = i;
}

__device__ __forceinline__ Strides3 pooled3(Layout5 s) { return {s.t, s.h, s.w}; }

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(Tensor5<const scalar_t> input, Tensor5<scalar_t> output, Tensor5<acc_t> offset,
                               Tensor5<acc_t> residual, Layout5 out_size, Geometry g, Temperature<acc_t> temperature,
                               bool channels_last, int64_t total) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t n, c, ot, oh, ow;
    unflatten(i, out_size, channels_last, &n, &c, &ot, &oh, &ow);
    const WindowResult<acc_t> r =
        forward_window<scalar_t, acc_t>(input.plane(n, c), pooled3(input.s), window_span(g, 0, ot),
                                        window_span(g, 1, oh), window_span(g, 2, ow), temperature.inverse(c));
    output.at(n, c, ot, oh, ow) = static_cast<scalar_t>(r.output);
    offset.at(n, c, ot, oh, ow) = r.log_weight_offset;
    residual.at(n, c, ot, oh, ow) = r.output_residual;
  }
}

template <typename scalar_t, typename acc_t>
__global__ void backward_kernel(Tensor5<const scalar_t> grad_output, Tensor5<const scalar_t> input,
                                Tensor5<const scalar_t> output, Tensor5<const acc_t> offset,
                                Tensor5<const acc_t> residual, Tensor5<scalar_t> grad_input, Layout5 in_size,
                                Geometry g, Temperature<acc_t> temperature, bool channels_last, int64_t total) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t n, c, it, ih, iw;
    unflatten(i, in_size, channels_last, &n, &c, &it, &ih, &iw);
    const acc_t x = static_cast<acc_t>(input.at(n, c, it, ih, iw));
    const SavedPlanes<scalar_t, acc_t> saved{output.pooled(n, c), offset.pooled(n, c), residual.pooled(n, c)};
    grad_input.at(n, c, it, ih, iw) = static_cast<scalar_t>(
        backward_input<acc_t>(g, it, ih, iw, x, grad_output.pooled(n, c), saved, temperature.inverse(c)));
  }
}

template <typename scalar_t, typename acc_t>
__global__ void jvp_kernel(Tensor5<const scalar_t> tangent, Tensor5<const scalar_t> input,
                           Tensor5<const scalar_t> output, Tensor5<const acc_t> offset, Tensor5<const acc_t> residual,
                           Tensor5<scalar_t> output_tangent, Layout5 out_size, Geometry g,
                           Temperature<acc_t> temperature, bool channels_last, int64_t total) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t n, c, ot, oh, ow;
    unflatten(i, out_size, channels_last, &n, &c, &ot, &oh, &ow);
    output_tangent.at(n, c, ot, oh, ow) = static_cast<scalar_t>(jvp_window<acc_t>(
        input.plane(n, c), pooled3(input.s), tangent.plane(n, c), pooled3(tangent.s), window_span(g, 0, ot),
        window_span(g, 1, oh), window_span(g, 2, ow), static_cast<acc_t>(output.at(n, c, ot, oh, ow)),
        offset.at(n, c, ot, oh, ow), residual.at(n, c, ot, oh, ow), temperature.inverse(c)));
  }
}

inline unsigned int grid_for(int64_t total) {
  // grid-stride loops cover the rest; cap keeps the grid within limits for huge tensors
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < (int64_t{1} << 20) ? blocks : (int64_t{1} << 20));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> soft_pool3d_cuda(const at::Tensor& input,
                                                                c10::SymIntArrayRef output_size_sym,
                                                                c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                                                c10::IntArrayRef padding, c10::IntArrayRef dilation,
                                                                bool adaptive, double temperature) {
  const c10::IntArrayRef output_size = C10_AS_INTARRAYREF_SLOW(output_size_sym);
  const Geometry g =
      make_geometry(input, output_size, kernel_size, stride, padding, dilation, adaptive, temperature);
  TORCH_CHECK(input.is_cuda(), "softpool_video: input must be a CUDA tensor here, got ", input.device());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const bool channels_last = use_channels_last(input);
  const std::vector<int64_t> sizes = {input.size(0), input.size(1), output_size[0], output_size[1], output_size[2]};
  const at::ScalarType stat_dtype = statistic_dtype(input.scalar_type());
  at::Tensor output = empty_pooled(input, sizes, input.scalar_type(), channels_last);
  at::Tensor offset = empty_pooled(input, sizes, stat_dtype, channels_last);
  at::Tensor residual = empty_pooled(input, sizes, stat_dtype, channels_last);
  const int64_t total = output.numel();
  if (total == 0) return {output, offset, residual};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    forward_kernel<scalar_t, acc_t><<<grid_for(total), kThreads, 0, stream>>>(
        read_only<scalar_t>(input), writable<scalar_t>(output), writable<acc_t>(offset), writable<acc_t>(residual),
        sizes_of(output), g, make_temperature<acc_t>(temperature), channels_last, total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {output, offset, residual};
}

at::Tensor soft_pool3d_backward_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                    const at::Tensor& output, const at::Tensor& offset, const at::Tensor& residual,
                                    c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                    c10::IntArrayRef padding, c10::IntArrayRef dilation, bool adaptive,
                                    double temperature) {
  check_saved(input, output, offset, residual);
  check_like(grad_output, "grad_output", output.sizes(), input.scalar_type(), input, "output's");
  const Geometry g = make_geometry(input, output.sizes().slice(2), kernel_size, stride, padding, dilation, adaptive,
                                   temperature);
  TORCH_CHECK(input.is_cuda(), "softpool_video: input must be a CUDA tensor here, got ", input.device());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const bool channels_last = use_channels_last(input);
  at::Tensor grad_input = empty_pooled(input, input.sizes(), input.scalar_type(), channels_last);
  const int64_t total = grad_input.numel();
  if (total == 0) return grad_input;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    backward_kernel<scalar_t, acc_t><<<grid_for(total), kThreads, 0, stream>>>(
        read_only<scalar_t>(grad_output), read_only<scalar_t>(input), read_only<scalar_t>(output),
        read_only<acc_t>(offset), read_only<acc_t>(residual), writable<scalar_t>(grad_input), sizes_of(input), g,
        make_temperature<acc_t>(temperature), channels_last, total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_input;
}

at::Tensor soft_pool3d_jvp_cuda(const at::Tensor& tangent, const at::Tensor& input, const at::Tensor& output,
                               const at::Tensor& offset, const at::Tensor& residual, c10::IntArrayRef kernel_size,
                               c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                               bool adaptive, double temperature) {
  check_saved(input, output, offset, residual);
  check_like(tangent, "input_tangent", input.sizes(), input.scalar_type(), input, "input's");
  const Geometry g = make_geometry(input, output.sizes().slice(2), kernel_size, stride, padding, dilation, adaptive,
                                   temperature);
  TORCH_CHECK(input.is_cuda(), "softpool_video: input must be a CUDA tensor here, got ", input.device());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const bool channels_last = use_channels_last(input);
  at::Tensor output_tangent = empty_pooled(input, output.sizes(), input.scalar_type(), channels_last);
  const int64_t total = output_tangent.numel();
  if (total == 0) return output_tangent;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_jvp_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    jvp_kernel<scalar_t, acc_t><<<grid_for(total), kThreads, 0, stream>>>(
        read_only<scalar_t>(tangent), read_only<scalar_t>(input), read_only<scalar_t>(output),
        read_only<acc_t>(offset), read_only<acc_t>(residual), writable<scalar_t>(output_tangent),
        sizes_of(output_tangent), g, make_temperature<acc_t>(temperature), channels_last, total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output_tangent;
}

}  // namespace

TORCH_LIBRARY_IMPL(softpool_video, CUDA, m) {
  m.impl("soft_pool3d", &soft_pool3d_cuda);
  m.impl("soft_pool3d_backward", &soft_pool3d_backward_cuda);
  m.impl("soft_pool3d_jvp", &soft_pool3d_jvp_cuda);
}

}  // namespace softpool_video
