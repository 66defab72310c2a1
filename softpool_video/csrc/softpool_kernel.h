// The SoftPool math, shared verbatim by the CPU and the CUDA launchers.
//
// For every (n, c) plane and output position o, over the window W(o) of input positions that lie
// inside the input (padding is never counted):
//     s_i = softmax_{j in W}(x_j / T)_i,    y_o = sum_{i in W} s_i * x_i
// and the derivative of y_o with respect to each of its inputs
//     J_i = dy_o/dx_i = s_i * (1 + (x_i - y_o) / T),
// which gives the gradient dL/dx_i = sum_{o : i in W(o)} g_o J_i and the forward-mode tangent
// dy_o = sum_{i in W(o)} J_i dx_i.
// With a learned temperature, dy_o/dT = -Var_s(x) / T^2 (the variance of the window under its softmax
// weights), so dL/dT = sum_o g_o dy_o/dT (temperature_derivative_window).
//
// Saved statistics. Backward needs s_i and x_i - y_o to full float precision even when |x| / T is
// huge (x_i / T - log sum exp(x_j / T) cancels catastrophically there) and even when the output is
// stored in half precision. Both are therefore taken relative to the stored output value y (the
// number the output tensor holds, an exact value of the input dtype), with two small float
// statistics per window:
//     log_weight_offset  l = (y - m) / T - log(sum_j exp((x_j - m) / T))      (m = window max)
//     output_residual    r = (y_exact - y) / T          (y_exact: the unrounded float result)
// so that s_i = exp((x_i - y) / T + l) and (x_i - y_exact) / T = (x_i - y) / T - r. Both are
// bounded by a few units of the window size (|y - m| <= 2 |y_exact - m| <= 2 T K / e), so their
// float rounding is negligible at every scale.
//
// Special values (forward): NaN in a window gives NaN; +inf gives +inf; -inf entries get weight 0;
// a window that is all -inf gives -inf, and an empty window (possible with dilation, as in
// max_pool) gives -inf. Derivatives: a NaN window sends NaN to each of its inputs; a window whose
// maximum is infinite (+inf, or all -inf) is the limit of a tie: its taps equal to the maximum share
// the derivative equally (each J_i = 1 / count, like max_pool's gradient to its maximum), the others
// get 0; inputs of weight 0 (-inf, or underflowed far below the window max) get exactly 0.
//
// Everything here is a HOST_DEVICE inline function of plain arguments (no ATen types) so that the
// CPU launcher runs, and the CPU tests exercise, exactly the code the GPU runs. 1D and 2D pooling
// are 3D pooling with singleton dimensions.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SOFTPOOL_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SOFTPOOL_HOST_DEVICE inline
#endif

namespace softpool_video {

constexpr int kPoolDims = 3;  // (T, H, W)

// Pooling geometry of the three pooled dimensions. With `adaptive`, the window of output o along a
// dimension is [floor(o * in / out), ceil((o + 1) * in / out)) as in torch's adaptive pooling, and
// kernel/stride/padding/dilation are unused. The launchers validate it (softpool_launch.h) before
// any kernel runs: every size is >= 1.
struct Geometry {
  int64_t input_size[kPoolDims];
  int64_t output_size[kPoolDims];
  int64_t kernel[kPoolDims];
  int64_t stride[kPoolDims];
  int64_t padding[kPoolDims];
  int64_t dilation[kPoolDims];
  bool adaptive;
};

// The temperature of each (n, c) plane, in one place: one number for every channel (the float ops),
// or one value per channel read from a tensor (the tempered ops, whose temperature is learned).
template <typename acc_t>
struct Temperature {
  acc_t inverse_value;      // 1 / T of every channel when per_channel is null
  const acc_t* per_channel;  // otherwise T of channel c is per_channel[c * channel_stride]
  int64_t channel_stride;    // 0 when one tensor value serves every channel
  SOFTPOOL_HOST_DEVICE acc_t inverse(int64_t channel) const {
    return per_channel == nullptr ? inverse_value : acc_t(1) / per_channel[channel * channel_stride];
  }
  // whether every channel has the same temperature (the CPU channel lanes need that)
  SOFTPOOL_HOST_DEVICE bool uniform() const { return per_channel == nullptr || channel_stride == 0; }
};

// Element strides of a tensor along (T, H, W).
struct Strides3 {
  int64_t t, h, w;
};

// One (n, c) plane of an output-shaped tensor, addressed through its own strides.
template <typename T>
struct PooledPlane {
  const T* data;
  Strides3 s;
  SOFTPOOL_HOST_DEVICE T at(int64_t ot, int64_t oh, int64_t ow) const { return data[ot * s.t + oh * s.h + ow * s.w]; }
};

// The input positions of one window along one dimension, already clipped to the input:
// first, first + step, ..., first + (count - 1) * step.
struct Span {
  int64_t first;
  int64_t step;
  int64_t count;
};

SOFTPOOL_HOST_DEVICE int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

SOFTPOOL_HOST_DEVICE int64_t ceil_div(int64_t a, int64_t b) {  // b > 0
  return -floor_div(-a, b);
}

SOFTPOOL_HOST_DEVICE Span window_span(const Geometry& g, int d, int64_t o) {
  const int64_t in = g.input_size[d];
  if (g.adaptive) {
    const int64_t out = g.output_size[d];
    const int64_t start = (o * in) / out;
    const int64_t end = ((o + 1) * in + out - 1) / out;
    return {start, 1, end - start};
  }
  const int64_t dil = g.dilation[d];
  const int64_t start = o * g.stride[d] - g.padding[d];
  const int64_t first_tap = start < 0 ? ceil_div(-start, dil) : 0;
  int64_t end_tap = start > in - 1 ? 0 : (in - 1 - start) / dil + 1;
  if (end_tap > g.kernel[d]) end_tap = g.kernel[d];
  const int64_t count = end_tap > first_tap ? end_tap - first_tap : 0;
  return {start + first_tap * dil, dil, count};
}

SOFTPOOL_HOST_DEVICE bool span_contains(const Span& s, int64_t i) {
  if (s.count <= 0 || i < s.first) return false;
  const int64_t offset = i - s.first;
  return offset % s.step == 0 && offset / s.step < s.count;
}

// A range [begin, end) of outputs along dimension d that contains every output whose window holds
// input index i (callers confirm each candidate with span_contains: dilation leaves gaps).
SOFTPOOL_HOST_DEVICE void covering_outputs(const Geometry& g, int d, int64_t i, int64_t* begin, int64_t* end) {
  const int64_t out = g.output_size[d];
  int64_t b, e;
  if (g.adaptive) {
    const int64_t in = g.input_size[d];
    // one extra candidate on each side guards the integer rounding of the adaptive rule
    b = (i * out) / in - 1;
    e = ((i + 1) * out + in - 1) / in + 1;
  } else {
    const int64_t reach = (g.kernel[d] - 1) * g.dilation[d];
    b = ceil_div(i + g.padding[d] - reach, g.stride[d]);
    e = floor_div(i + g.padding[d], g.stride[d]) + 1;
  }
  *begin = b < 0 ? 0 : b;
  *end = e > out ? out : e;
}

SOFTPOOL_HOST_DEVICE float softpool_exp(float x) { return ::expf(x); }
SOFTPOOL_HOST_DEVICE double softpool_exp(double x) { return ::exp(x); }
SOFTPOOL_HOST_DEVICE float softpool_log(float x) { return ::logf(x); }
SOFTPOOL_HOST_DEVICE double softpool_log(double x) { return ::log(x); }

template <typename acc_t>
SOFTPOOL_HOST_DEVICE acc_t softpool_infinity() {
  return static_cast<acc_t>(INFINITY);
}

template <typename acc_t>
SOFTPOOL_HOST_DEVICE bool is_infinite(acc_t v) {
  return v == softpool_infinity<acc_t>() || v == -softpool_infinity<acc_t>();
}

// What the forward of one window produces: the stored output (already rounded to the output dtype
// scalar_t, held in acc_t) and the two saved statistics described at the top of this file.
template <typename acc_t>
struct WindowResult {
  acc_t output;
  acc_t log_weight_offset;
  acc_t output_residual;
};

// The statistics of a window with a finite maximum m, from the weighted mean offset
// delta = sum_j w_j (x_j - m) / sum_j w_j and log_denominator = log(sum_j w_j), w_j = exp((x_j - m) / T).
// Shared by the scalar body and the vectorised CPU path.
template <typename scalar_t, typename acc_t>
SOFTPOOL_HOST_DEVICE WindowResult<acc_t> finish_window(acc_t max_x, acc_t delta, acc_t log_denominator,
                                                       acc_t inv_temperature) {
  const acc_t stored = static_cast<acc_t>(static_cast<scalar_t>(max_x + delta));
  // (max - stored) is exact (both are values of the input dtype and close); adding delta rounds once
  return {stored, (stored - max_x) * inv_temperature - log_denominator, ((max_x - stored) + delta) * inv_temperature};
}

// Forward of one output element. `plane` points at input element (n, c, 0, 0, 0); the spans are
// the window along T, H, W.
template <typename scalar_t, typename acc_t>
SOFTPOOL_HOST_DEVICE WindowResult<acc_t> forward_window(const scalar_t* plane, Strides3 in, Span st, Span sh,
                                                        Span sw, acc_t inv_temperature) {
  const acc_t inf = softpool_infinity<acc_t>();
  // Pass 1: the window maximum (subtracted before exp, so no overflow whatever the input range),
  // and how many taps equal it (the tie count defines the derivative of an infinite maximum).
  acc_t max_x = -inf;
  int64_t ties = 0;
  for (int64_t a = 0; a < st.count; ++a) {
    const scalar_t* p_t = plane + (st.first + a * st.step) * in.t;
    for (int64_t b = 0; b < sh.count; ++b) {
      const scalar_t* p_h = p_t + (sh.first + b * sh.step) * in.h;
      for (int64_t c = 0; c < sw.count; ++c) {
        const acc_t x = static_cast<acc_t>(p_h[(sw.first + c * sw.step) * in.w]);
        if (x != x) return {x, x, x};  // NaN
        if (x > max_x) {
          max_x = x;
          ties = 1;
        } else if (x == max_x) {
          ++ties;
        }
      }
    }
  }
  if (ties == 0) return {-inf, -inf, acc_t(0)};  // empty window, like max_pool
  if (is_infinite(max_x)) {                      // +inf dominates; an all -inf window is a tie at -inf
    return {max_x, -softpool_log(static_cast<acc_t>(ties)), acc_t(0)};
  }
  // Pass 2: normaliser and the weighted sum of (x - max), which cannot overflow even for inputs
  // near the dtype's limits; -inf entries get exp(-inf) = 0 and contribute nothing.
  acc_t denominator = 0;
  acc_t numerator = 0;
  for (int64_t a = 0; a < st.count; ++a) {
    const scalar_t* p_t = plane + (st.first + a * st.step) * in.t;
    for (int64_t b = 0; b < sh.count; ++b) {
      const scalar_t* p_h = p_t + (sh.first + b * sh.step) * in.h;
      for (int64_t c = 0; c < sw.count; ++c) {
        const acc_t x = static_cast<acc_t>(p_h[(sw.first + c * sw.step) * in.w]);
        const acc_t weight = softpool_exp((x - max_x) * inv_temperature);
        denominator += weight;
        numerator += weight > 0 ? weight * (x - max_x) : acc_t(0);
      }
    }
  }
  return finish_window<scalar_t>(max_x, numerator / denominator, softpool_log(denominator), inv_temperature);
}

// J = dy/dx for one input x of a window with stored output y and statistics (l, r); see the top of
// this file for the special values.
template <typename acc_t>
SOFTPOOL_HOST_DEVICE acc_t output_derivative(acc_t x, acc_t y, acc_t log_weight_offset, acc_t output_residual,
                                             acc_t inv_temperature) {
  if (y != y || log_weight_offset != log_weight_offset) return y + log_weight_offset;  // NaN window
  if (is_infinite(y)) return x == y ? softpool_exp(log_weight_offset) : acc_t(0);
  const acc_t v = (x - y) * inv_temperature;
  const acc_t weight = softpool_exp(v + log_weight_offset);
  // weight 0 (-inf inputs, underflow) gives exactly 0, which also keeps v from overflowing into
  // inf * 0 = NaN for inputs near the dtype's limits
  return weight > 0 ? weight * (acc_t(1) + v - output_residual) : acc_t(0);
}

// The gradient that window o sends to one of its inputs: g_o * J (exactly 0 where J is).
template <typename acc_t>
SOFTPOOL_HOST_DEVICE acc_t window_gradient(acc_t x, acc_t y, acc_t log_weight_offset, acc_t output_residual,
                                           acc_t grad_y, acc_t inv_temperature) {
  const acc_t derivative = output_derivative(x, y, log_weight_offset, output_residual, inv_temperature);
  return derivative == 0 ? acc_t(0) : grad_y * derivative;
}

// dy/dT of one window with stored output y and statistics (l, r): from dy/dx_i = s_i (1 + (x_i - y) / T)
// and y = sum_i s_i x_i one gets dy/dT = -Var_s(x) / T^2 = -sum_i s_i ((x_i - y_exact) / T)^2, and
// (x_i - y_exact) / T = v_i - r with v_i = (x_i - y) / T (the statistics keep it exact at every
// scale). Special values: a NaN window gives NaN; a window whose maximum is infinite (or that is
// empty) does not move with T (0); zero-weight inputs add nothing.
template <typename acc_t>
SOFTPOOL_HOST_DEVICE acc_t temperature_derivative_term(acc_t x, acc_t y, acc_t log_weight_offset,
                                                       acc_t output_residual, acc_t inv_temperature) {
  const acc_t v = (x - y) * inv_temperature;
  const acc_t weight = softpool_exp(v + log_weight_offset);
  const acc_t d = v - output_residual;
  return weight > 0 ? weight * d * d : acc_t(0);
}

template <typename acc_t, typename scalar_t>
SOFTPOOL_HOST_DEVICE acc_t temperature_derivative_window(const scalar_t* plane, Strides3 in, Span st, Span sh,
                                                         Span sw, acc_t y, acc_t log_weight_offset,
                                                         acc_t output_residual, acc_t inv_temperature) {
  if (y != y || log_weight_offset != log_weight_offset) return y + log_weight_offset;  // NaN window
  if (is_infinite(y)) return acc_t(0);
  acc_t variance = 0;  // sum_i s_i (v_i - r)^2 = Var_s(x) / T^2
  for (int64_t a = 0; a < st.count; ++a) {
    const scalar_t* p_t = plane + (st.first + a * st.step) * in.t;
    for (int64_t b = 0; b < sh.count; ++b) {
      const scalar_t* p_h = p_t + (sh.first + b * sh.step) * in.h;
      for (int64_t c = 0; c < sw.count; ++c) {
        variance += temperature_derivative_term(static_cast<acc_t>(p_h[(sw.first + c * sw.step) * in.w]), y,
                                                log_weight_offset, output_residual, inv_temperature);
      }
    }
  }
  return -variance;
}

// The gradient that window o sends to the temperature: g_o * dy_o/dT (exactly 0 where dy/dT is).
template <typename acc_t>
SOFTPOOL_HOST_DEVICE acc_t temperature_gradient(acc_t derivative, acc_t grad_y) {
  return derivative == 0 ? acc_t(0) : grad_y * derivative;
}

// The output-shaped planes that derivatives read: the stored output and its two statistics.
template <typename scalar_t, typename stat_t>
struct SavedPlanes {
  PooledPlane<scalar_t> output;
  PooledPlane<stat_t> log_weight_offset;
  PooledPlane<stat_t> output_residual;
};

// Which candidates o in [begin, end) of covering_outputs really hold input i (bit o - begin), for at
// most 64 candidates: computing the spans once per dimension keeps the integer divisions of
// window_span out of the gather's nested loops.
constexpr int64_t kMaxCoveringMask = 64;

SOFTPOOL_HOST_DEVICE uint64_t covering_mask(const Geometry& g, int d, int64_t i, int64_t begin, int64_t end) {
  uint64_t mask = 0;
  for (int64_t o = begin; o < end; ++o) {
    if (span_contains(window_span(g, d, o), i)) mask |= uint64_t{1} << (o - begin);
  }
  return mask;
}

// Backward of one input element at (it, ih, iw): a deterministic gather over the windows that
// cover it, in increasing (ot, oh, ow) order.
template <typename acc_t, typename scalar_t, typename stat_t>
SOFTPOOL_HOST_DEVICE acc_t backward_input(const Geometry& g, int64_t it, int64_t ih, int64_t iw, acc_t x,
                                          PooledPlane<scalar_t> grad, SavedPlanes<scalar_t, stat_t> saved,
                                          acc_t inv_temperature) {
  int64_t t0, t1, h0, h1, w0, w1;
  covering_outputs(g, 0, it, &t0, &t1);
  covering_outputs(g, 1, ih, &h0, &h1);
  covering_outputs(g, 2, iw, &w0, &w1);
  acc_t result = 0;
  if (t1 - t0 <= kMaxCoveringMask && h1 - h0 <= kMaxCoveringMask && w1 - w0 <= kMaxCoveringMask) {
    const uint64_t mask_t = covering_mask(g, 0, it, t0, t1), mask_h = covering_mask(g, 1, ih, h0, h1),
                   mask_w = covering_mask(g, 2, iw, w0, w1);
    for (int64_t ot = t0; ot < t1; ++ot) {
      if (!((mask_t >> (ot - t0)) & 1)) continue;
      for (int64_t oh = h0; oh < h1; ++oh) {
        if (!((mask_h >> (oh - h0)) & 1)) continue;
        for (int64_t ow = w0; ow < w1; ++ow) {
          if (!((mask_w >> (ow - w0)) & 1)) continue;
          result += window_gradient(x, static_cast<acc_t>(saved.output.at(ot, oh, ow)),
                                    static_cast<acc_t>(saved.log_weight_offset.at(ot, oh, ow)),
                                    static_cast<acc_t>(saved.output_residual.at(ot, oh, ow)),
                                    static_cast<acc_t>(grad.at(ot, oh, ow)), inv_temperature);
        }
      }
    }
    return result;
  }
  for (int64_t ot = t0; ot < t1; ++ot) {
    if (!span_contains(window_span(g, 0, ot), it)) continue;
    for (int64_t oh = h0; oh < h1; ++oh) {
      if (!span_contains(window_span(g, 1, oh), ih)) continue;
      for (int64_t ow = w0; ow < w1; ++ow) {
        if (!span_contains(window_span(g, 2, ow), iw)) continue;
        result += window_gradient(x, static_cast<acc_t>(saved.output.at(ot, oh, ow)),
                                  static_cast<acc_t>(saved.log_weight_offset.at(ot, oh, ow)),
                                  static_cast<acc_t>(saved.output_residual.at(ot, oh, ow)),
                                  static_cast<acc_t>(grad.at(ot, oh, ow)), inv_temperature);
      }
    }
  }
  return result;
}

// Forward-mode derivative of one output element: dy = sum over the window of J_i * dx_i, with the
// saved statistics of the window (no max pass needed). `tangent` is the (n, c) plane of dx.
template <typename acc_t, typename scalar_t>
SOFTPOOL_HOST_DEVICE acc_t jvp_window(const scalar_t* plane, Strides3 in, const scalar_t* tangent, Strides3 tan,
                                      Span st, Span sh, Span sw, acc_t y, acc_t log_weight_offset,
                                      acc_t output_residual, acc_t inv_temperature) {
  acc_t result = 0;
  for (int64_t a = 0; a < st.count; ++a) {
    const int64_t t = st.first + a * st.step;
    for (int64_t b = 0; b < sh.count; ++b) {
      const int64_t h = sh.first + b * sh.step;
      for (int64_t c = 0; c < sw.count; ++c) {
        const int64_t w = sw.first + c * sw.step;
        const acc_t x = static_cast<acc_t>(plane[t * in.t + h * in.h + w * in.w]);
        const acc_t derivative = output_derivative(x, y, log_weight_offset, output_residual, inv_temperature);
        if (derivative != 0) result += derivative * static_cast<acc_t>(tangent[t * tan.t + h * tan.h + w * tan.w]);
      }
    }
  }
  return result;
}

}  // namespace softpool_video
