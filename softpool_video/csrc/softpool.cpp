// Operator schemas of the softpool_video namespace and the Python module stub.
//
// Kernels are registered per backend: cpu/softpool_cpu.cpp and cuda/softpool_cuda.cu.
// Fake (meta) kernels, autograd (reverse and forward mode, any order) and batching rules live in
// Python (softpool_video/ops/_registration.py).
#include <Python.h>
#include <torch/library.h>

#include <cstdint>
#include <string>
#include <tuple>

namespace softpool_video {
bool set_cpu_vectorized(bool enabled);  // cpu/softpool_cpu.cpp
bool set_cpu_result_pool(bool enabled);  // cpu/softpool_cpu_memory.cpp
std::tuple<int64_t, int64_t> cpu_result_pool_bytes();
std::string cpu_plan(const at::Tensor& input, c10::IntArrayRef output_size, c10::IntArrayRef kernel_size,
                     c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation, bool adaptive);
}  // namespace softpool_video

// `import softpool_video._C` runs the static registrations below; the module itself is empty.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(softpool_video, m) {
  // input (N, C, T, H, W) -> output (N, C, oT, oH, oW) and two statistics of the same shape that the
  // derivatives need (float32; float64 for double input), relative to the stored output y:
  //   log_weight_offset = (y - max) / T - log(sum_window exp((x - max) / T))
  //   output_residual   = (unrounded output - y) / T
  // (softpool_kernel.h explains why). output_size is symbolic so that traced graphs (torch.compile
  // with dynamic shapes, torch.export) keep it as an expression of the input size.
  m.def(
      "soft_pool3d(Tensor input, SymInt[3] output_size, int[3] kernel_size, int[3] stride, int[3] padding, "
      "int[3] dilation, bool adaptive, float temperature) -> (Tensor output, Tensor log_weight_offset, "
      "Tensor output_residual)");
  // dL/dinput from dL/doutput (reverse mode); the geometry's output size is output's.
  m.def(
      "soft_pool3d_backward(Tensor grad_output, Tensor input, Tensor output, Tensor log_weight_offset, "
      "Tensor output_residual, int[3] kernel_size, int[3] stride, int[3] padding, int[3] dilation, "
      "bool adaptive, float temperature) -> Tensor");
  // d output from d input (forward mode): output-shaped, sum over each window of J_i * input_tangent_i.
  m.def(
      "soft_pool3d_jvp(Tensor input_tangent, Tensor input, Tensor output, Tensor log_weight_offset, "
      "Tensor output_residual, int[3] kernel_size, int[3] stride, int[3] padding, int[3] dilation, "
      "bool adaptive, float temperature) -> Tensor");
  // SoftPool at a tensor temperature, one value per channel ((C,), float32; float64 for float64
  // input; a 0-d temperature expanded to (C,) works), so that it can be learned: the same outputs and
  // statistics as soft_pool3d at that temperature.
  m.def(
      "soft_pool3d_tempered(Tensor input, Tensor temperature, SymInt[3] output_size, int[3] kernel_size, "
      "int[3] stride, int[3] padding, int[3] dilation, bool adaptive) -> (Tensor output, "
      "Tensor log_weight_offset, Tensor output_residual)");
  // Its reverse mode in one pass: dL/dinput, and grad_temperature = dL/doutput * doutput/dT for every
  // window (output-shaped, statistic dtype; dL/dT of channel c is its sum over N and the windows).
  m.def(
      "soft_pool3d_tempered_backward(Tensor grad_output, Tensor input, Tensor output, Tensor log_weight_offset, "
      "Tensor output_residual, Tensor temperature, int[3] kernel_size, int[3] stride, int[3] padding, "
      "int[3] dilation, bool adaptive) -> (Tensor grad_input, Tensor grad_temperature)");
  // The output alone, for calls nothing will differentiate (inference, no_grad): the forward of
  // soft_pool3d (or of soft_pool3d_tempered, with temperature_per_channel) without writing the
  // two statistics, which are two thirds of the bytes it stores.
  m.def(
      "soft_pool3d_inference(Tensor input, SymInt[3] output_size, int[3] kernel_size, int[3] stride, "
      "int[3] padding, int[3] dilation, bool adaptive, float temperature, Tensor? temperature_per_channel) "
      "-> Tensor");
  // Test hook: false forces the CPU kernels onto the shared scalar body (the code the GPU runs)
  // instead of the vectorised fast path. Returns the previous setting.
  m.def("_set_cpu_vectorized(bool enabled) -> bool", &softpool_video::set_cpu_vectorized);
  // Test and benchmark hooks: false makes every large CPU result a fresh allocation, as torch's
  // allocator would, and frees the pooled blocks (cpu/softpool_cpu_memory.h); the bytes of free blocks
  // pooled now and the most it keeps.
  m.def("_set_cpu_result_pool(bool enabled) -> bool", &softpool_video::set_cpu_result_pool);
  m.def("_cpu_result_pool_bytes() -> (int pooled, int limit)", &softpool_video::cpu_result_pool_bytes);
  // Test hook: the CPU fast path a forward call with these arguments takes ("rows", "channels",
  // "windows", or "scalar"), so that the tests can prove each path is exercised.
  m.def("_cpu_plan(Tensor input, int[3] output_size, int[3] kernel_size, int[3] stride, int[3] padding, "
        "int[3] dilation, bool adaptive) -> str",
        &softpool_video::cpu_plan);
}
