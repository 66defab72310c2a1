// Vectorised CPU fast path for SoftPool (float, half and bfloat16 inputs; float math).
//
// Many windows ("lanes") that share one tap pattern are processed together: their input values
// are gathered into a tap-major float buffer taps[k * kLanes + lane], and two plain loops over that
// buffer (lanes_forward / lanes_backward in softpool_cpu_vectorized.cpp, compiled for AVX-512,
// AVX2 and baseline x86-64) compute the windows with a polynomial exp/log. Lanes are
//   - consecutive outputs along W of one (n, c, t, h) row, for inputs whose output is contiguous
//     (NCTHW), when every tap of those windows lies inside the input (the interior), and
//   - the channels of one output position for channels_last_3d inputs (all channels share their
//     window, so every window is regular there).
// Everything else -- edge windows of NCTHW rows, adaptive rows, and any window whose result is not
// finite (NaN, +-inf inputs, empty windows) -- is computed by the shared scalar body in
// softpool_kernel.h, so special values follow exactly the semantics the GPU implements. The
// per-window statistics are finished by the shared finish_window in either case.
//
// Backward here is a deterministic scatter: each thread owns whole (n, c) planes (NCTHW) or
// (n, channel block) slices (channels-last) and adds every window's contribution to its inputs in a
// fixed order; no atomics, bitwise reproducible. The tests compare it with the scalar gather.
#pragma once

#include <ATen/core/Tensor.h>

#include "softpool_kernel.h"

namespace softpool_video::vectorized {

constexpr int64_t kLanes = 64;
// Windows with more taps than this (a huge kernel) use the scalar body: the buffer stays in cache.
constexpr int64_t kMaxTaps = 1024;

// taps: [num_taps][kLanes]; lanes [0, num_lanes) are used. Writes, per lane, the window max, the
// weighted mean offset from it and the log of the normaliser (finish_window turns them into the
// stored output and its statistics).
void lanes_forward(const float* taps, int64_t num_taps, int64_t num_lanes, float inv_temperature, float* max_x,
                   float* delta, float* log_denominator);

// coefficients[k][lane] = gradient that lane's window sends to its tap k (window_gradient), for
// windows with finite output and statistics.
void lanes_backward(const float* taps, int64_t num_taps, int64_t num_lanes, const float* y,
                    const float* log_weight_offset, const float* output_residual, const float* grad_y,
                    float inv_temperature, float* coefficients);

// Which fast path a call takes: row lanes, channel lanes, window reduction, or none (the scalar body).
enum class Plan { kScalar, kRows, kChannels, kWindows };
Plan plan_for(const at::Tensor& input, const Geometry& g, bool channels_last);
const char* plan_name(Plan plan);

// Return false when the case is not handled (the caller then runs the scalar body).
template <typename scalar_t>
bool forward(const at::Tensor& input, const at::Tensor& output, const at::Tensor& log_weight_offset,
             const at::Tensor& output_residual, const Geometry& g, double temperature, bool channels_last);

template <typename scalar_t>
bool backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
              const at::Tensor& log_weight_offset, const at::Tensor& output_residual, const at::Tensor& grad_input,
              const Geometry& g, double temperature, bool channels_last);

}  // namespace softpool_video::vectorized
