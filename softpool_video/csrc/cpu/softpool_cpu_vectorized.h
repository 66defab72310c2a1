// Vectorised CPU fast path (placeholder until written): returns false when it does not handle a case.
#pragma once
#include <ATen/core/Tensor.h>
#include "softpool_kernel.h"
namespace softpool_video::vectorized {
template <typename scalar_t>
bool forward(const at::Tensor&, const at::Tensor&, const at::Tensor&, const Geometry&, double, bool) { return false; }
template <typename scalar_t>
bool backward(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
              const Geometry&, double, bool) { return false; }
}  // namespace softpool_video::vectorized
