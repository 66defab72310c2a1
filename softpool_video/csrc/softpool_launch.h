// Host-side helpers shared by the CPU and CUDA launchers: argument checks (the same messages on
// every device), geometry, output allocation and the memory-format rule.
//
// The Python wrapper (softpool_video/ops/pooling.py) computes output sizes with torch's max_pool
// rules and validates user arguments; these checks guard the raw torch.ops entry points so that no
// call can read or write out of bounds.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/ArrayRef.h>

#include "softpool_kernel.h"

namespace softpool_video {

inline void check_triple(c10::IntArrayRef values, const char* name, int64_t minimum) {
  TORCH_CHECK(values.size() == kPoolDims, "softpool_video: ", name, " must have 3 entries (T, H, W), got ",
              values.size());
  for (int64_t v : values) {
    TORCH_CHECK(v >= minimum, "softpool_video: ", name, " entries must be >= ", minimum, ", got ", values);
  }
}

inline Geometry make_geometry(const at::Tensor& input, c10::IntArrayRef output_size, c10::IntArrayRef kernel_size,
                              c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                              bool adaptive, double temperature) {
  TORCH_CHECK(temperature > 0 && std::isfinite(temperature),
              "softpool_video: temperature must be a finite number > 0, got ", temperature);
  TORCH_CHECK(input.dim() == 5, "softpool_video: input must be 5-D (N, C, T, H, W), got shape ", input.sizes());
  TORCH_CHECK(at::isFloatingType(input.scalar_type()),
              "softpool_video: input must be float16, bfloat16, float32 or float64, got ", input.scalar_type());
  check_triple(output_size, "output_size", 0);
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
    if (adaptive) {
      TORCH_CHECK(g.input_size[d] > 0 || g.output_size[d] == 0,
                  "softpool_video: adaptive pooling of an empty dimension, input shape ", input.sizes());
    }
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

// float32 statistics for every floating dtype but float64 (half/bfloat16 accumulate in float).
inline at::ScalarType statistic_dtype(at::ScalarType input_dtype) {
  return input_dtype == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_backward_args(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                                const at::Tensor& log_normalizer) {
  TORCH_CHECK(grad_output.sizes() == output.sizes() && log_normalizer.sizes() == output.sizes(),
              "softpool_video: grad_output ", grad_output.sizes(), ", output ", output.sizes(),
              " and log_normalizer ", log_normalizer.sizes(), " must have the same shape");
  TORCH_CHECK(output.dim() == 5 && output.size(0) == input.size(0) && output.size(1) == input.size(1),
              "softpool_video: output ", output.sizes(), " does not match input ", input.sizes());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type() && output.scalar_type() == input.scalar_type(),
              "softpool_video: grad_output and output must have the input's dtype ", input.scalar_type());
  TORCH_CHECK(log_normalizer.scalar_type() == statistic_dtype(input.scalar_type()),
              "softpool_video: log_normalizer must be ", statistic_dtype(input.scalar_type()));
}

}  // namespace softpool_video
