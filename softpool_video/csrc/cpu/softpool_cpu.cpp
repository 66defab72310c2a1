// CPU launchers for SoftPool. The math is the shared body in softpool_kernel.h; this file only
// walks the elements (at::parallel_for) and, for the common float layouts, runs a vectorised
// fast path (softpool_cpu_vectorized.h) that is checked against the shared body in the tests.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>

#include "softpool_cpu_vectorized.h"
#include "softpool_launch.h"

namespace softpool_video {

namespace {
std::atomic<bool> cpu_vectorized{true};
}  // namespace

bool set_cpu_vectorized(bool enabled) { return cpu_vectorized.exchange(enabled); }

namespace {

// Elements per parallel task: a window costs tens of flops, so small chunks still pay.
constexpr int64_t kElementGrain = 2048;

// Calls body(n, c, t, h, w) for every index of a 5-D shape, in the memory order of a contiguous
// (NCTHW) or channels-last (NTHWC) tensor, split over threads. The multi-index is decomposed once
// per chunk and then advanced like an odometer, so the per-element cost is a few increments.
template <typename Body>
void parallel_for_each_index(const int64_t (&sizes)[5], bool channels_last, const Body& body) {
  const int order[5] = {0, 1, 2, 3, 4};
  const int order_cl[5] = {0, 2, 3, 4, 1};
  const int* dims = channels_last ? order_cl : order;  // dims[4] varies fastest
  int64_t total = 1;
  for (int64_t s : sizes) total *= s;
  if (total == 0) return;
  at::parallel_for(0, total, kElementGrain, [&](int64_t begin, int64_t end) {
    int64_t index[5];
    int64_t rest = begin;
    for (int k = 4; k >= 0; --k) {
      index[dims[k]] = rest % sizes[dims[k]];
      rest /= sizes[dims[k]];
    }
    for (int64_t i = begin; i < end; ++i) {
      body(index[0], index[1], index[2], index[3], index[4]);
      for (int k = 4; k >= 0; --k) {
        if (++index[dims[k]] < sizes[dims[k]]) break;
        index[dims[k]] = 0;
      }
    }
  });
}

template <typename scalar_t>
void forward_scalar(const at::Tensor& input, const at::Tensor& output, const at::Tensor& stat, const Geometry& g,
                    double temperature, bool channels_last) {
  using acc_t = at::opmath_type<scalar_t>;
  using stat_t = acc_t;
  const scalar_t* in = input.const_data_ptr<scalar_t>();
  scalar_t* out = output.mutable_data_ptr<scalar_t>();
  stat_t* lse = stat.mutable_data_ptr<stat_t>();
  const Strides3 in_s = pooled_strides(input), out_s = pooled_strides(output), stat_s = pooled_strides(stat);
  const int64_t in_n = input.stride(0), in_c = input.stride(1);
  const int64_t out_n = output.stride(0), out_c = output.stride(1);
  const int64_t stat_n = stat.stride(0), stat_c = stat.stride(1);
  const acc_t inv_t = static_cast<acc_t>(1.0 / temperature);
  const int64_t sizes[5] = {output.size(0), output.size(1), g.output_size[0], g.output_size[1], g.output_size[2]};
  parallel_for_each_index(sizes, channels_last, [&](int64_t n, int64_t c, int64_t ot, int64_t oh, int64_t ow) {
    acc_t value, log_normalizer;
    forward_window<acc_t>(in + n * in_n + c * in_c, in_s, window_span(g, 0, ot), window_span(g, 1, oh),
                          window_span(g, 2, ow), inv_t, &value, &log_normalizer);
    out[n * out_n + c * out_c + ot * out_s.t + oh * out_s.h + ow * out_s.w] = static_cast<scalar_t>(value);
    lse[n * stat_n + c * stat_c + ot * stat_s.t + oh * stat_s.h + ow * stat_s.w] = log_normalizer;
  });
}

template <typename scalar_t>
void backward_scalar(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                     const at::Tensor& stat, const at::Tensor& grad_input, const Geometry& g, double temperature,
                     bool channels_last) {
  using acc_t = at::opmath_type<scalar_t>;
  using stat_t = acc_t;
  const scalar_t* in = input.const_data_ptr<scalar_t>();
  const scalar_t* grad = grad_output.const_data_ptr<scalar_t>();
  const scalar_t* out = output.const_data_ptr<scalar_t>();
  const stat_t* lse = stat.const_data_ptr<stat_t>();
  scalar_t* grad_in = grad_input.mutable_data_ptr<scalar_t>();
  const Strides3 in_s = pooled_strides(input), gi_s = pooled_strides(grad_input);
  const Strides3 grad_s = pooled_strides(grad_output), out_s = pooled_strides(output), stat_s = pooled_strides(stat);
  const acc_t inv_t = static_cast<acc_t>(1.0 / temperature);
  const int64_t sizes[5] = {input.size(0), input.size(1), input.size(2), input.size(3), input.size(4)};
  parallel_for_each_index(sizes, channels_last, [&](int64_t n, int64_t c, int64_t it, int64_t ih, int64_t iw) {
    const acc_t x = static_cast<acc_t>(in[n * input.stride(0) + c * input.stride(1) + it * in_s.t +
                                          ih * in_s.h + iw * in_s.w]);
    const acc_t value = backward_input<acc_t>(
        g, it, ih, iw, x, grad + n * grad_output.stride(0) + c * grad_output.stride(1), grad_s,
        out + n * output.stride(0) + c * output.stride(1), out_s, lse + n * stat.stride(0) + c * stat.stride(1),
        stat_s, inv_t);
    grad_in[n * grad_input.stride(0) + c * grad_input.stride(1) + it * gi_s.t + ih * gi_s.h + iw * gi_s.w] =
        static_cast<scalar_t>(value);
  });
}

std::tuple<at::Tensor, at::Tensor> soft_pool3d_cpu(const at::Tensor& input, c10::IntArrayRef output_size,
                                                   c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                                   c10::IntArrayRef padding, c10::IntArrayRef dilation,
                                                   bool adaptive, double temperature) {
  const Geometry g = make_geometry(input, output_size, kernel_size, stride, padding, dilation, adaptive, temperature);
  const bool channels_last = use_channels_last(input);
  const std::vector<int64_t> sizes = {input.size(0), input.size(1), output_size[0], output_size[1], output_size[2]};
  at::Tensor output = empty_pooled(input, sizes, input.scalar_type(), channels_last);
  at::Tensor stat = empty_pooled(input, sizes, statistic_dtype(input.scalar_type()), channels_last);
  if (output.numel() == 0) return {output, stat};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_cpu", [&] {
    if (!(cpu_vectorized.load() &&
          vectorized::forward<scalar_t>(input, output, stat, g, temperature, channels_last))) {
      forward_scalar<scalar_t>(input, output, stat, g, temperature, channels_last);
    }
  });
  return {output, stat};
}

at::Tensor soft_pool3d_backward_cpu(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                                   const at::Tensor& log_normalizer, c10::IntArrayRef kernel_size,
                                   c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                                   bool adaptive, double temperature) {
  check_backward_args(grad_output, input, output, log_normalizer);
  const Geometry g = make_geometry(input, output.sizes().slice(2), kernel_size, stride, padding, dilation, adaptive,
                                   temperature);
  const bool channels_last = use_channels_last(input);
  at::Tensor grad_input = empty_pooled(input, input.sizes(), input.scalar_type(), channels_last);
  if (grad_input.numel() == 0) return grad_input;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_backward_cpu", [&] {
    if (!(cpu_vectorized.load() && vectorized::backward<scalar_t>(grad_output, input, output, log_normalizer,
                                                                  grad_input, g, temperature, channels_last))) {
      backward_scalar<scalar_t>(grad_output, input, output, log_normalizer, grad_input, g, temperature,
                                channels_last);
    }
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(softpool_video, CPU, m) {
  m.impl("soft_pool3d", &soft_pool3d_cpu);
  m.impl("soft_pool3d_backward", &soft_pool3d_backward_cpu);
}

}  // namespace softpool_video
