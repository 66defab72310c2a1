// The six torch.ops entry points of softpool_video, written once for every device.
//
// Each entry point checks its arguments and resolves the geometry and the temperature (a number or
// (C,) values) here; a device supplies only its three launchers:
//
//   struct Device {
//     // output, log_weight_offset, output_residual (the statistics undefined without `statistics`)
//     static std::tuple<at::Tensor, at::Tensor, at::Tensor> forward(const at::Tensor& input,
//         c10::IntArrayRef output_size, const Geometry&, const TemperatureArg&, bool statistics);
//     // grad_input, and grad_temperature per window with want_temperature (undefined otherwise)
//     static std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad_output,
//         const at::Tensor& input, const at::Tensor& output, const at::Tensor& offset,
//         const at::Tensor& residual, const Geometry&, const TemperatureArg&, bool want_temperature);
//     static at::Tensor jvp(const at::Tensor& tangent, const at::Tensor& input, const at::Tensor& output,
//         const at::Tensor& offset, const at::Tensor& residual, const Geometry&, const TemperatureArg&);
//   };
//
// and registers EntryPoints<Device>::register_into(m) in its TORCH_LIBRARY_IMPL block.
#pragma once

#include <c10/core/SymIntArrayRef.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "softpool_launch.h"

namespace softpool_video {

template <typename Device>
struct EntryPoints {
  using Triple = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

  static Triple soft_pool3d(const at::Tensor& input, c10::SymIntArrayRef output_size_sym,
                            c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                            c10::IntArrayRef dilation, bool adaptive, double temperature) {
    return inference_or_forward(input, output_size_sym, kernel_size, stride, padding, dilation, adaptive,
                                temperature, std::nullopt, true);
  }

  static Triple soft_pool3d_tempered(const at::Tensor& input, const at::Tensor& temperature,
                                     c10::SymIntArrayRef output_size_sym, c10::IntArrayRef kernel_size,
                                     c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                                     bool adaptive) {
    return inference_or_forward(input, output_size_sym, kernel_size, stride, padding, dilation, adaptive, 1.0,
                                temperature, true);
  }

  static at::Tensor soft_pool3d_inference(const at::Tensor& input, c10::SymIntArrayRef output_size_sym,
                                          c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                          c10::IntArrayRef padding, c10::IntArrayRef dilation, bool adaptive,
                                          double temperature,
                                          const std::optional<at::Tensor>& temperature_per_channel) {
    return std::get<0>(inference_or_forward(input, output_size_sym, kernel_size, stride, padding, dilation, adaptive,
                                            temperature, temperature_per_channel, false));
  }

  static at::Tensor soft_pool3d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                         const at::Tensor& output, const at::Tensor& offset,
                                         const at::Tensor& residual, c10::IntArrayRef kernel_size,
                                         c10::IntArrayRef stride, c10::IntArrayRef padding,
                                         c10::IntArrayRef dilation, bool adaptive, double temperature) {
    check_saved(input, output, offset, residual);
    check_like(grad_output, "grad_output", output.sizes(), input.scalar_type(), input, "output's");
    const Geometry g = make_geometry(input, output.sizes().slice(2), kernel_size, stride, padding, dilation,
                                     adaptive, temperature);
    return std::get<0>(Device::backward(grad_output, input, output, offset, residual, g,
                                        TemperatureArg{temperature, {}}, false));
  }

  static std::tuple<at::Tensor, at::Tensor> soft_pool3d_tempered_backward(
      const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output, const at::Tensor& offset,
      const at::Tensor& residual, const at::Tensor& temperature, c10::IntArrayRef kernel_size,
      c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation, bool adaptive) {
    check_saved(input, output, offset, residual);
    check_like(grad_output, "grad_output", output.sizes(), input.scalar_type(), input, "output's");
    const Geometry g =
        make_geometry(input, output.sizes().slice(2), kernel_size, stride, padding, dilation, adaptive, 1.0);
    return Device::backward(grad_output, input, output, offset, residual, g,
                            check_temperature_tensor(temperature, input), true);
  }

  static at::Tensor soft_pool3d_jvp(const at::Tensor& tangent, const at::Tensor& input, const at::Tensor& output,
                                    const at::Tensor& offset, const at::Tensor& residual,
                                    c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                    c10::IntArrayRef padding, c10::IntArrayRef dilation, bool adaptive,
                                    double temperature) {
    check_saved(input, output, offset, residual);
    check_like(tangent, "input_tangent", input.sizes(), input.scalar_type(), input, "input's");
    const Geometry g = make_geometry(input, output.sizes().slice(2), kernel_size, stride, padding, dilation,
                                     adaptive, temperature);
    return Device::jvp(tangent, input, output, offset, residual, g, TemperatureArg{temperature, {}});
  }

  static void register_into(torch::Library& m) {
    m.impl("soft_pool3d", &soft_pool3d);
    m.impl("soft_pool3d_backward", &soft_pool3d_backward);
    m.impl("soft_pool3d_jvp", &soft_pool3d_jvp);
    m.impl("soft_pool3d_tempered", &soft_pool3d_tempered);
    m.impl("soft_pool3d_inference", &soft_pool3d_inference);
    m.impl("soft_pool3d_tempered_backward", &soft_pool3d_tempered_backward);
  }

 private:
  // The forward of all three forward ops: a number temperature, or a tensor one when
  // `temperature_per_channel` holds a defined tensor (then `temperature` is unused).
  static Triple inference_or_forward(const at::Tensor& input, c10::SymIntArrayRef output_size_sym,
                                     c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                     c10::IntArrayRef padding, c10::IntArrayRef dilation, bool adaptive,
                                     double temperature, const std::optional<at::Tensor>& temperature_per_channel,
                                     bool statistics) {
    const c10::IntArrayRef output_size = C10_AS_INTARRAYREF_SLOW(output_size_sym);
    const bool per_channel = temperature_per_channel.has_value() && temperature_per_channel->defined();
    const Geometry g = make_geometry(input, output_size, kernel_size, stride, padding, dilation, adaptive,
                                     per_channel ? 1.0 : temperature);
    const TemperatureArg t =
        per_channel ? check_temperature_tensor(*temperature_per_channel, input) : TemperatureArg{temperature, {}};
    return Device::forward(input, output_size, g, t, statistics);
  }
};

}  // namespace softpool_video
