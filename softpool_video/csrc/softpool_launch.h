// Host-side helpers shared by the CPU and CUDA launchers: argument checks (the same messages on
// every device), geometry, output allocation and the memory-format rule.
//
// The Python wrapper (softpool_video/ops/pooling.py) computes output sizes with torch's max_pool
// rules and validates user arguments; these checks guard the raw torch.ops entry points so that no
// call, however wrong its arguments, can crash the process or read or write out of bounds: every
// bad argument raises a RuntimeError that names it.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/ArrayRef.h>

#include <string>

#include "softpool_kernel.h"

namespace softpool_video {

// Sizes and geometry entries stay below 2^31, so that every index product in the kernels
// (adaptive o * in, reach (kernel - 1) * dilation, ...) fits in 64 bits.
constexpr int64_t kMaxExtent = (int64_t{1} << 31) - 1;

inline void check_triple(c10::IntArrayRef values, const char* name, int64_t minimum) {
  TORCH_CHECK(values.size() == kPoolDims, "softpool_video: ", name, " must have 3 entries (T, H, W), got ",
              values.size());
  for (int64_t v : values) {
    TORCH_CHECK(v >= minimum, "softpool_video: ", name, " entries must be >= ", minimum, ", got ", values);
    TORCH_CHECK(v <= kMaxExtent, "softpool_video: ", name, " entries must be < 2^31, got ", values);
  }
}

// Output length of max_pool along one dimension (torch's pooling_output_shape).
inline int64_t max_pool_output_size(int64_t size, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                                    bool ceil_mode) {
  const int64_t numerator = size + 2 * padding - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = floor_div(numerator, stride) + 1;
  if (ceil_mode && (out - 1) * stride >= size + padding) --out;
  return out;
}

// float32 statistics for every floating dtype but float64 (half/bfloat16 accumulate in float).
inline at::ScalarType statistic_dtype(at::ScalarType input_dtype) {
  return input_dtype == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_input(const at::Tensor& input) {
  TORCH_CHECK(input.defined(), "softpool_video: input is undefined");
  TORCH_CHECK(input.layout() == at::kStrided, "softpool_video: input must be a strided (dense) tensor, got ",
              input.layout());
  TORCH_CHECK(input.dim() == 5, "softpool_video: input must be 5-D (N, C, T, H, W), got shape ", input.sizes());
  TORCH_CHECK(at::isFloatingType(input.scalar_type()),
              "softpool_video: input must be float16, bfloat16, float32 or float64, got ", input.scalar_type());
  for (int d = 2; d < 5; ++d) {
    TORCH_CHECK(input.size(d) >= 1, "softpool_video: input has an empty spatial dimension, shape ", input.sizes(),
                " (only the batch and channel dimensions may be 0)");
    TORCH_CHECK(input.size(d) <= kMaxExtent, "softpool_video: input spatial sizes must be < 2^31, got ",
                input.sizes());
  }
}

// Validates the geometry of a call against its input and returns it. `output_size` must be what
// max_pool (ceil_mode false or true) or adaptive pooling gives; every entry >= 1.
inline Geometry make_geometry(const at::Tensor& input, c10::IntArrayRef output_size, c10::IntArrayRef kernel_size,
                              c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                              bool adaptive, double temperature) {
  TORCH_CHECK(temperature > 0 && std::isfinite(temperature),
              "softpool_video: temperature must be a finite number > 0, got ", temperature);
  check_input(input);
  check_triple(output_size, "output_size", 1);
  check_triple(kernel_size, "kernel_size", 1);
  check_triple(stride, "stride", 1);
  check_triple(padding, "padding", 0);
  check_triple(dilation, "dilation", 1);
  Geometry g{};
  g.adaptive = adaptive;
  for (int d = 0; d < kPoolDims; ++d) {
    g.input_size[d] = input.size(d + 2);
    g.output_size[d] = output_size[d];
    g.kernel[d] = kernel_size[d];
    g.stride[d] = stride[d];
    g.padding[d] = padding[d];
    g.dilation[d] = dilation[d];
    if (adaptive) continue;
    TORCH_CHECK(g.padding[d] <= g.kernel[d] / 2, "softpool_video: padding should be at most half of kernel_size, got ",
                "padding=", padding, " and kernel_size=", kernel_size);
    const int64_t floor_size = max_pool_output_size(g.input_size[d], g.kernel[d], g.stride[d], g.padding[d],
                                                    g.dilation[d], false);
    const int64_t ceil_size = max_pool_output_size(g.input_size[d], g.kernel[d], g.stride[d], g.padding[d],
                                                   g.dilation[d], true);
    TORCH_CHECK(g.output_size[d] == floor_size || g.output_size[d] == ceil_size,
                "softpool_video: output_size ", output_size, " does not match the pooling of input ", input.sizes(),
                " with kernel_size=", kernel_size, ", stride=", stride, ", padding=", padding,
                ", dilation=", dilation, ": dimension ", d, " must be ", floor_size,
                (ceil_size != floor_size ? " (or " + std::to_string(ceil_size) + " with ceil_mode)" : std::string()));
  }
  return g;
}

// Output follows the input's layout when the input is exactly channels_last_3d (as max_pool3d
// does), otherwise it is contiguous. The fake (meta) implementation in Python uses the same rule.
inline bool use_channels_last(const at::Tensor& input) {
  return input.dim() == 5 && !input.is_contiguous() &&
         input.is_contiguous(at::MemoryFormat::ChannelsLast3d);
}

inline at::Tensor empty_pooled(const at::Tensor& like, c10::IntArrayRef sizes, at::ScalarType dtype,
                               bool channels_last) {
  return at::empty(sizes, like.options().dtype(dtype).memory_format(
                              channels_last ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::Contiguous));
}

inline Strides3 pooled_strides(const at::Tensor& t) { return {t.stride(2), t.stride(3), t.stride(4)}; }

// The temperature of a call: a number (the float ops) or a tensor of one value per channel (the
// tempered ops), already checked by check_temperature_tensor.
struct TemperatureArg {
  double value;
  at::Tensor per_channel;  // undefined, or (C,) of the statistic dtype on the input's device
};

template <typename acc_t>
inline Temperature<acc_t> make_temperature(const TemperatureArg& temperature) {
  if (!temperature.per_channel.defined()) return {static_cast<acc_t>(1.0 / temperature.value), nullptr, 0};
  return {acc_t(1), temperature.per_channel.const_data_ptr<acc_t>(), temperature.per_channel.stride(0)};
}

// The temperature tensor of a tempered op: (C,) values of the statistic dtype (float32; float64 for
// float64 input) on the input's device, any stride (a 0-d temperature expanded to (C,) has stride 0).
// Its values are not checked here (on a GPU that would cost a sync): a non-positive temperature
// gives meaningless numbers, never an out-of-bounds access.
inline TemperatureArg check_temperature_tensor(const at::Tensor& temperature, const at::Tensor& input) {
  TORCH_CHECK(temperature.defined(), "softpool_video: temperature is undefined");
  TORCH_CHECK(temperature.layout() == at::kStrided, "softpool_video: temperature must be a strided (dense) tensor");
  TORCH_CHECK(temperature.dim() == 1 && temperature.size(0) == input.size(1),
              "softpool_video: temperature must have shape (C,) = (", input.size(1), ",), got ", temperature.sizes());
  TORCH_CHECK(temperature.device() == input.device(), "softpool_video: temperature is on ", temperature.device(),
              " but input is on ", input.device());
  const at::ScalarType stat = statistic_dtype(input.scalar_type());
  TORCH_CHECK(temperature.scalar_type() == stat, "softpool_video: temperature must be ", stat, " for ",
              input.scalar_type(), " input, got ", temperature.scalar_type());
  return {1.0, temperature};
}

// A tensor argument of a derivative op must be a dense tensor of the given shape, dtype and device.
inline void check_like(const at::Tensor& t, const char* name, c10::IntArrayRef sizes, at::ScalarType dtype,
                       const at::Tensor& input, const char* shape_name) {
  TORCH_CHECK(t.defined(), "softpool_video: ", name, " is undefined");
  TORCH_CHECK(t.layout() == at::kStrided, "softpool_video: ", name, " must be a strided (dense) tensor, got ",
              t.layout());
  TORCH_CHECK(t.device() == input.device(), "softpool_video: ", name, " is on ", t.device(), " but input is on ",
              input.device(), "; all tensor arguments must be on one device");
  TORCH_CHECK(t.sizes() == sizes, "softpool_video: ", name, " must have the ", shape_name, " shape ", sizes,
              ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, "softpool_video: ", name, " must be ", dtype, ", got ", t.scalar_type());
}

// The saved tensors of a forward call (output and its two statistics) as a derivative op receives
// them: output-shaped (N, C, oT, oH, oW) with the input's N and C, on the input's device.
inline void check_saved(const at::Tensor& input, const at::Tensor& output, const at::Tensor& log_weight_offset,
                        const at::Tensor& output_residual) {
  check_input(input);
  TORCH_CHECK(output.defined() && output.dim() == 5 && output.size(0) == input.size(0) &&
                  output.size(1) == input.size(1),
              "softpool_video: output must be 5-D (N, C, oT, oH, oW) with the input's N and C; input ",
              input.sizes(), ", output ", output.defined() ? output.sizes() : c10::IntArrayRef{});
  check_like(output, "output", output.sizes(), input.scalar_type(), input, "output's");
  const at::ScalarType stat = statistic_dtype(input.scalar_type());
  check_like(log_weight_offset, "log_weight_offset", output.sizes(), stat, input, "output's");
  check_like(output_residual, "output_residual", output.sizes(), stat, input, "output's");
}

}  // namespace softpool_video
