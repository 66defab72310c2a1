// Vectorised CPU fast path for SoftPool (float, half and bfloat16 inputs; float math).
//
// Three plans (plan_for; the test hook torch.ops.softpool_video._cpu_plan names the one a call takes):
//   - rows: consecutive outputs along W of one output row, for inputs whose output is contiguous
//     (NCTHW: a row is one (n, c, t, h), with enough interior windows -- every tap inside the
//     input) or channels_last_3d, not adaptive, with at most kLanes channels (a row is one (n, t, h) with all its
//     channels: lane = position * C + channel, so C = 8 puts 8 positions in a vector). Each input
//     row of the windows is loaded once, padded with -inf (weight 0, so edge windows run in the
//     lanes too) and split into its stride phases (PhasedRow), so a tap of 64 lanes is a
//     contiguous run; NCTHW rows without padding gather straight from the input. The taps go into a
//     tap-major float buffer taps[k * kLanes + lane] and two loops over it (lanes_forward /
//     lanes_backward, compiled for AVX-512, AVX2 and baseline x86-64; 16, 8 or 4 lanes at a time,
//     the width of the CPU's registers, held in vector values, so the accumulators stay in
//     registers across the taps) compute the windows
//     with a polynomial exp/log. Backward is a deterministic scatter: each task owns whole planes
//     (n, c) or (n), or one output T-slice of them when windows along T are disjoint, and adds
//     every window's contribution in a fixed order (into grad_input directly for unpadded float
//     NCTHW rows, else into a float ring of the input T-slices still reached). Unpadded float rows
//     whose windows tile W (stride = kernel along W, e.g. k = s = 2) skip the taps: each input row
//     is one contiguous pass, with its windows' statistics spread over their columns.
//   - channels: the channels of one output position (other channels_last_3d inputs: adaptive or
//     more than kLanes channels, where all channels share their window, so every window is regular; or short
//     NCTHW rows with many channels). With few channels (C <= kLanes / 2) the lanes also hold
//     neighbouring interior positions along W, so the vectors stay full. Backward is a gather: each
//     input position sums, over a block of channels, the gradient of every window covering it
//     (covering lists computed once per call), so it needs no buffer beyond kLanes floats and
//     splits over positions, whatever N and C.
//   - windows: NCTHW inputs with disjoint windows of kMinReductionTaps taps or more (global head
//     pools, adaptive pools to a small grid): one window per task, reduced along its contiguous
//     segments (whole rows merged); the backward writes each gradient element once.
// Everything else -- any window whose result is not finite (NaN,
// +-inf inputs, empty windows) -- is computed by the shared scalar body in softpool_kernel.h, so
// special values follow exactly the semantics the GPU implements. The per-window statistics are
// finished by the shared finish_window in every case. All paths are bitwise reproducible (no atomics,
// fixed summation order); the tests compare each with the scalar body and the float64 reference.
#pragma once

#include <ATen/core/Tensor.h>

#include "softpool_launch.h"

namespace softpool_video::vectorized {

constexpr int64_t kLanes = 64;
// Windows with more taps than this (a huge kernel) use the scalar body: the buffer stays in cache.
constexpr int64_t kMaxTaps = 1024;

// taps: [num_taps][kLanes]; lanes [0, num_lanes) are used. Writes, per lane, the window max, the
// weighted mean offset from it and the log of the normaliser (finish_window turns them into the
// stored output and its statistics). log_denominator may be null (an inference forward: max + delta
// alone make the output).
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

// Return false when the case is not handled (the caller then runs the scalar body). The forward's
// statistics may be undefined tensors (an inference forward): they are then not written. A per-channel
// temperature runs in the rows and windows plans; channel lanes need one temperature for all lanes.
template <typename scalar_t>
bool forward(const at::Tensor& input, const at::Tensor& output, const at::Tensor& log_weight_offset,
             const at::Tensor& output_residual, const Geometry& g, const TemperatureArg& temperature,
             bool channels_last);

template <typename scalar_t>
bool backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
              const at::Tensor& log_weight_offset, const at::Tensor& output_residual, const at::Tensor& grad_input,
              at::Tensor* grad_temperature, bool* temperature_done, const Geometry& g,
              const TemperatureArg& temperature, bool channels_last);
// grad_temperature (nullable; output-shaped, contiguous float) receives g * dy/dT of every window when
// the plan computes it along with grad_input (rows, windows); *temperature_done then becomes true.

}  // namespace softpool_video::vectorized
