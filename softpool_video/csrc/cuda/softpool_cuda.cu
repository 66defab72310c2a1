// CUDA launchers for SoftPool: one thread per output element (forward) and one thread per input
// element (backward: a deterministic gather, no atomics), over the shared body in
// softpool_kernel.h. 64-bit indices, the current stream, a device guard and a launch check.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

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

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(const scalar_t* __restrict__ input, Layout5 in_s, scalar_t* __restrict__ output,
                               Layout5 out_s, acc_t* __restrict__ stat, Layout5 stat_s, Layout5 out_size,
                               Geometry g, acc_t inv_temperature, bool channels_last, int64_t total) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t n, c, ot, oh, ow;
    unflatten(i, out_size, channels_last, &n, &c, &ot, &oh, &ow);
    acc_t value, log_normalizer;
    forward_window<acc_t>(input + n * in_s.n + c * in_s.c, Strides3{in_s.t, in_s.h, in_s.w}, window_span(g, 0, ot),
                          window_span(g, 1, oh), window_span(g, 2, ow), inv_temperature, &value, &log_normalizer);
    output[n * out_s.n + c * out_s.c + ot * out_s.t + oh * out_s.h + ow * out_s.w] = static_cast<scalar_t>(value);
    stat[n * stat_s.n + c * stat_s.c + ot * stat_s.t + oh * stat_s.h + ow * stat_s.w] = log_normalizer;
  }
}

template <typename scalar_t, typename acc_t>
__global__ void backward_kernel(const scalar_t* __restrict__ grad_output, Layout5 grad_s,
                                const scalar_t* __restrict__ input, Layout5 in_s,
                                const scalar_t* __restrict__ output, Layout5 out_s, const acc_t* __restrict__ stat,
                                Layout5 stat_s, scalar_t* __restrict__ grad_input, Layout5 gi_s, Layout5 in_size,
                                Geometry g, acc_t inv_temperature, bool channels_last, int64_t total) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t n, c, it, ih, iw;
    unflatten(i, in_size, channels_last, &n, &c, &it, &ih, &iw);
    const acc_t x = static_cast<acc_t>(input[n * in_s.n + c * in_s.c + it * in_s.t + ih * in_s.h + iw * in_s.w]);
    const acc_t grad = backward_input<acc_t>(
        g, it, ih, iw, x, grad_output + n * grad_s.n + c * grad_s.c, Strides3{grad_s.t, grad_s.h, grad_s.w},
        output + n * out_s.n + c * out_s.c, Strides3{out_s.t, out_s.h, out_s.w}, stat + n * stat_s.n + c * stat_s.c,
        Strides3{stat_s.t, stat_s.h, stat_s.w}, inv_temperature);
    grad_input[n * gi_s.n + c * gi_s.c + it * gi_s.t + ih * gi_s.h + iw * gi_s.w] = static_cast<scalar_t>(grad);
  }
}

inline unsigned int grid_for(int64_t total) {
  // grid-stride loops cover the rest; cap keeps the grid within limits for huge tensors
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < (int64_t{1} << 20) ? blocks : (int64_t{1} << 20));
}

std::tuple<at::Tensor, at::Tensor> soft_pool3d_cuda(const at::Tensor& input, c10::IntArrayRef output_size,
                                                    c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                                    c10::IntArrayRef padding, c10::IntArrayRef dilation,
                                                    bool adaptive, double temperature) {
  const Geometry g =
      make_geometry(input, output_size, kernel_size, stride, padding, dilation, adaptive, temperature);
  const c10::cuda::CUDAGuard device_guard(input.device());
  const bool channels_last = use_channels_last(input);
  const std::vector<int64_t> sizes = {input.size(0), input.size(1), output_size[0], output_size[1], output_size[2]};
  at::Tensor output = empty_pooled(input, sizes, input.scalar_type(), channels_last);
  at::Tensor stat = empty_pooled(input, sizes, statistic_dtype(input.scalar_type()), channels_last);
  const int64_t total = output.numel();
  if (total == 0) return {output, stat};
  const Layout5 out_size{sizes[0], sizes[1], sizes[2], sizes[3], sizes[4]};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    forward_kernel<scalar_t, acc_t><<<grid_for(total), kThreads, 0, stream>>>(
        input.const_data_ptr<scalar_t>(), strides_of(input), output.mutable_data_ptr<scalar_t>(),
        strides_of(output), stat.mutable_data_ptr<acc_t>(), strides_of(stat), out_size, g,
        static_cast<acc_t>(1.0 / temperature), channels_last, total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {output, stat};
}

at::Tensor soft_pool3d_backward_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                    const at::Tensor& output, const at::Tensor& log_normalizer,
                                    c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                    c10::IntArrayRef padding, c10::IntArrayRef dilation, bool adaptive,
                                    double temperature) {
  check_backward_args(grad_output, input, output, log_normalizer);
  const Geometry g = make_geometry(input, output.sizes().slice(2), kernel_size, stride, padding, dilation, adaptive,
                                   temperature);
  const c10::cuda::CUDAGuard device_guard(input.device());
  const bool channels_last = use_channels_last(input);
  at::Tensor grad_input = empty_pooled(input, input.sizes(), input.scalar_type(), channels_last);
  const int64_t total = grad_input.numel();
  if (total == 0) return grad_input;
  const Layout5 in_size{input.size(0), input.size(1), input.size(2), input.size(3), input.size(4)};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    backward_kernel<scalar_t, acc_t><<<grid_for(total), kThreads, 0, stream>>>(
        grad_output.const_data_ptr<scalar_t>(), strides_of(grad_output), input.const_data_ptr<scalar_t>(),
        strides_of(input), output.const_data_ptr<scalar_t>(), strides_of(output),
        log_normalizer.const_data_ptr<acc_t>(), strides_of(log_normalizer), grad_input.mutable_data_ptr<scalar_t>(),
        strides_of(grad_input), in_size, g, static_cast<acc_t>(1.0 / temperature), channels_last, total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(softpool_video, CUDA, m) {
  m.impl("soft_pool3d", &soft_pool3d_cuda);
  m.impl("soft_pool3d_backward", &soft_pool3d_backward_cuda);
}

}  // namespace softpool_video
