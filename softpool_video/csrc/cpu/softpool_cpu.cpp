// CPU launchers for SoftPool. The math is the shared body in softpool_kernel.h; this file only
// walks the elements (at::parallel_for) and, for the common float layouts, runs a vectorised
// fast path (softpool_cpu_vectorized.h) that is checked against the shared body in the tests.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <c10/core/SymIntArrayRef.h>
#include <torch/library.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "softpool_cpu_memory.h"
#include "softpool_cpu_vectorized.h"
#include "softpool_entry_points.h"
#include "softpool_launch.h"

namespace softpool_video {

namespace {
std::atomic<bool> cpu_vectorized{true};
}  // namespace

bool set_cpu_vectorized(bool enabled) { return cpu_vectorized.exchange(enabled); }

std::string cpu_plan(const at::Tensor& input, c10::IntArrayRef output_size, c10::IntArrayRef kernel_size,
                     c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation, bool adaptive) {
  const Geometry g = make_geometry(input, output_size, kernel_size, stride, padding, dilation, adaptive, 1.0);
  return vectorized::plan_name(vectorized::plan_for(input, g, use_channels_last(input)));
}

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

// Addresses one (n, c) plane of an output-shaped tensor.
template <typename T>
PooledPlane<T> plane_of(const at::Tensor& t, int64_t n, int64_t c) {
  return {t.const_data_ptr<T>() + n * t.stride(0) + c * t.stride(1), pooled_strides(t)};
}

template <typename T>
T* element_of(const at::Tensor& t, int64_t n, int64_t c, int64_t a, int64_t b, int64_t d) {
  return t.mutable_data_ptr<T>() + n * t.stride(0) + c * t.stride(1) + a * t.stride(2) + b * t.stride(3) +
         d * t.stride(4);
}

template <typename scalar_t>
const scalar_t* input_plane(const at::Tensor& t, int64_t n, int64_t c) {
  return t.const_data_ptr<scalar_t>() + n * t.stride(0) + c * t.stride(1);
}

template <typename scalar_t>
void forward_scalar(const at::Tensor& input, const at::Tensor& output, const at::Tensor& offset,
                    const at::Tensor& residual, const Geometry& g, const TemperatureArg& temperature, bool channels_last) {
  using acc_t = at::opmath_type<scalar_t>;
  const Temperature<acc_t> temp = make_temperature<acc_t>(temperature);
  const Strides3 in_s = pooled_strides(input);
  const int64_t sizes[5] = {output.size(0), output.size(1), g.output_size[0], g.output_size[1], g.output_size[2]};
  parallel_for_each_index(sizes, channels_last, [&](int64_t n, int64_t c, int64_t ot, int64_t oh, int64_t ow) {
    const WindowResult<acc_t> r =
        forward_window<scalar_t, acc_t>(input_plane<scalar_t>(input, n, c), in_s, window_span(g, 0, ot),
                                        window_span(g, 1, oh), window_span(g, 2, ow), temp.inverse(c));
    *element_of<scalar_t>(output, n, c, ot, oh, ow) = static_cast<scalar_t>(r.output);
    if (!offset.defined()) return;  // an inference forward keeps no statistics
    *element_of<acc_t>(offset, n, c, ot, oh, ow) = r.log_weight_offset;
    *element_of<acc_t>(residual, n, c, ot, oh, ow) = r.output_residual;
  });
}

template <typename scalar_t>
void backward_scalar(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                     const at::Tensor& offset, const at::Tensor& residual, const at::Tensor& grad_input,
                     const Geometry& g, const TemperatureArg& temperature, bool channels_last) {
  using acc_t = at::opmath_type<scalar_t>;
  const Temperature<acc_t> temp = make_temperature<acc_t>(temperature);
  const Strides3 in_s = pooled_strides(input);
  const int64_t sizes[5] = {input.size(0), input.size(1), input.size(2), input.size(3), input.size(4)};
  parallel_for_each_index(sizes, channels_last, [&](int64_t n, int64_t c, int64_t it, int64_t ih, int64_t iw) {
    const acc_t x = static_cast<acc_t>(input_plane<scalar_t>(input, n, c)[it * in_s.t + ih * in_s.h + iw * in_s.w]);
    const SavedPlanes<scalar_t, acc_t> saved{plane_of<scalar_t>(output, n, c), plane_of<acc_t>(offset, n, c),
                                             plane_of<acc_t>(residual, n, c)};
    const acc_t value =
        backward_input<acc_t>(g, it, ih, iw, x, plane_of<scalar_t>(grad_output, n, c), saved, temp.inverse(c));
    *element_of<scalar_t>(grad_input, n, c, it, ih, iw) = static_cast<scalar_t>(value);
  });
}

template <typename scalar_t>
void jvp_scalar(const at::Tensor& tangent, const at::Tensor& input, const at::Tensor& output,
                const at::Tensor& offset, const at::Tensor& residual, const at::Tensor& output_tangent,
                const Geometry& g, const TemperatureArg& temperature, bool channels_last) {
  using acc_t = at::opmath_type<scalar_t>;
  const Temperature<acc_t> temp = make_temperature<acc_t>(temperature);
  const Strides3 in_s = pooled_strides(input), tan_s = pooled_strides(tangent);
  const int64_t sizes[5] = {output.size(0), output.size(1), g.output_size[0], g.output_size[1], g.output_size[2]};
  parallel_for_each_index(sizes, channels_last, [&](int64_t n, int64_t c, int64_t ot, int64_t oh, int64_t ow) {
    const acc_t value = jvp_window<acc_t>(
        input_plane<scalar_t>(input, n, c), in_s, input_plane<scalar_t>(tangent, n, c), tan_s, window_span(g, 0, ot),
        window_span(g, 1, oh), window_span(g, 2, ow), static_cast<acc_t>(plane_of<scalar_t>(output, n, c).at(ot, oh, ow)),
        plane_of<acc_t>(offset, n, c).at(ot, oh, ow), plane_of<acc_t>(residual, n, c).at(ot, oh, ow),
        temp.inverse(c));
    *element_of<scalar_t>(output_tangent, n, c, ot, oh, ow) = static_cast<scalar_t>(value);
  });
}

// grad_temperature (output-shaped) = g * dy/dT of every window, through the shared body.
template <typename scalar_t>
void temperature_gradient_scalar(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                                 const at::Tensor& offset, const at::Tensor& residual,
                                 const at::Tensor& grad_temperature, const Geometry& g,
                                 const TemperatureArg& temperature, bool channels_last) {
  using acc_t = at::opmath_type<scalar_t>;
  const Temperature<acc_t> temp = make_temperature<acc_t>(temperature);
  const Strides3 in_s = pooled_strides(input);
  const int64_t sizes[5] = {output.size(0), output.size(1), g.output_size[0], g.output_size[1], g.output_size[2]};
  parallel_for_each_index(sizes, channels_last, [&](int64_t n, int64_t c, int64_t ot, int64_t oh, int64_t ow) {
    const acc_t derivative = temperature_derivative_window<acc_t>(
        input_plane<scalar_t>(input, n, c), in_s, window_span(g, 0, ot), window_span(g, 1, oh),
        window_span(g, 2, ow), static_cast<acc_t>(plane_of<scalar_t>(output, n, c).at(ot, oh, ow)),
        plane_of<acc_t>(offset, n, c).at(ot, oh, ow), plane_of<acc_t>(residual, n, c).at(ot, oh, ow),
        temp.inverse(c));
    *element_of<acc_t>(grad_temperature, n, c, ot, oh, ow) =
        temperature_gradient(derivative, static_cast<acc_t>(plane_of<scalar_t>(grad_output, n, c).at(ot, oh, ow)));
  });
}

// The implementations behind the float ops and the tempered ops (temperature a number or (C,) values).
// Without `statistics` (an inference forward) the two statistics are not computed into memory and
// come back undefined.
std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cpu(const at::Tensor& input, c10::IntArrayRef output_size,
                                                           const Geometry& g, const TemperatureArg& temperature,
                                                           bool statistics) {
  const bool channels_last = use_channels_last(input);
  const std::vector<int64_t> sizes = {input.size(0), input.size(1), output_size[0], output_size[1], output_size[2]};
  const at::ScalarType stat_dtype = statistic_dtype(input.scalar_type());
  at::Tensor output = empty_cpu_result(sizes, input.scalar_type(), channels_last);
  at::Tensor offset, residual;
  if (statistics) {
    offset = empty_cpu_result(sizes, stat_dtype, channels_last);
    residual = empty_cpu_result(sizes, stat_dtype, channels_last);
  }
  if (output.numel() == 0) return {output, offset, residual};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_cpu", [&] {
    if (!(cpu_vectorized.load() &&
          vectorized::forward<scalar_t>(input, output, offset, residual, g, temperature, channels_last))) {
      forward_scalar<scalar_t>(input, output, offset, residual, g, temperature, channels_last);
    }
  });
  return {output, offset, residual};
}

// grad_input, and with want_temperature also grad_temperature = g * dy/dT per window (output-shaped,
// statistic dtype; undefined otherwise).
std::tuple<at::Tensor, at::Tensor> backward_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                                const at::Tensor& output, const at::Tensor& offset,
                                                const at::Tensor& residual, const Geometry& g,
                                                const TemperatureArg& temperature, bool want_temperature) {
  const bool channels_last = use_channels_last(input);
  at::Tensor grad_input = empty_cpu_result(input.sizes(), input.scalar_type(), channels_last);
  at::Tensor grad_temperature;
  if (want_temperature) {
    grad_temperature = empty_cpu_result(output.sizes(), statistic_dtype(input.scalar_type()), channels_last);
  }
  if (grad_input.numel() == 0) return {grad_input, grad_temperature};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_backward_cpu", [&] {
    bool temperature_done = !want_temperature;
    if (!(cpu_vectorized.load() &&
          vectorized::backward<scalar_t>(grad_output, input, output, offset, residual, grad_input,
                                         want_temperature ? &grad_temperature : nullptr, &temperature_done, g,
                                         temperature, channels_last))) {
      backward_scalar<scalar_t>(grad_output, input, output, offset, residual, grad_input, g, temperature,
                                channels_last);
    }
    if (!temperature_done) {
      temperature_gradient_scalar<scalar_t>(grad_output, input, output, offset, residual, grad_temperature, g,
                                            temperature, channels_last);
    }
  });
  return {grad_input, grad_temperature};
}

at::Tensor jvp_cpu(const at::Tensor& tangent, const at::Tensor& input, const at::Tensor& output,
                   const at::Tensor& offset, const at::Tensor& residual, const Geometry& g,
                   const TemperatureArg& temperature) {
  const bool channels_last = use_channels_last(input);
  at::Tensor output_tangent = empty_cpu_result(output.sizes(), input.scalar_type(), channels_last);
  if (output_tangent.numel() == 0) return output_tangent;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "soft_pool3d_jvp_cpu", [&] {
    jvp_scalar<scalar_t>(tangent, input, output, offset, residual, output_tangent, g, temperature, channels_last);
  });
  return output_tangent;
}

// The launchers behind the shared entry points (softpool_entry_points.h).
struct CpuDevice {
  static constexpr auto forward = &forward_cpu;
  static constexpr auto backward = &backward_cpu;
  static constexpr auto jvp = &jvp_cpu;
};

}  // namespace

TORCH_LIBRARY_IMPL(softpool_video, CPU, m) { EntryPoints<CpuDevice>::register_into(m); }

}  // namespace softpool_video
