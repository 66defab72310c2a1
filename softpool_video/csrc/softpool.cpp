// Operator schemas of the softpool_video namespace and the Python module stub.
//
// Kernels are registered per backend: cpu/softpool_cpu.cpp and cuda/softpool_cuda.cu.
// Fake (meta) kernels and autograd live in Python (softpool_video/ops/_registration.py).
#include <Python.h>
#include <torch/library.h>

namespace softpool_video {
bool set_cpu_vectorized(bool enabled);  // cpu/softpool_cpu.cpp
}  // namespace softpool_video

// `import softpool_video._C` runs the static registrations below; the module itself is empty.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(softpool_video, m) {
  // input (N, C, T, H, W) -> (output (N, C, oT, oH, oW), log_normalizer of the same shape).
  // log_normalizer = log(sum over the window of exp(x / temperature)), float32 (float64 for double).
  m.def(
      "soft_pool3d(Tensor input, int[3] output_size, int[3] kernel_size, int[3] stride, int[3] padding, "
      "int[3] dilation, bool adaptive, float temperature) -> (Tensor, Tensor)");
  m.def(
      "soft_pool3d_backward(Tensor grad_output, Tensor input, Tensor output, Tensor log_normalizer, "
      "int[3] kernel_size, int[3] stride, int[3] padding, int[3] dilation, bool adaptive, "
      "float temperature) -> Tensor");
  // Test hook: false forces the CPU kernels onto the shared scalar body (the code the GPU runs)
  // instead of the vectorised fast path. Returns the previous setting.
  m.def("_set_cpu_vectorized(bool enabled) -> bool", &softpool_video::set_cpu_vectorized);
}
