// The SoftPool math, shared verbatim by the CPU and the CUDA launchers.
//
// For every (n, c) plane and output position o, over the window W(o) of input positions that lie
// inside the input (padding is never counted):
//     s_i = softmax_{j in W}(x_j / T)_i,    y_o = sum_{i in W} s_i * x_i
// and the exact gradient
//     dL/dx_i = sum_{o : i in W(o)} g_o * s_i * (1 + (x_i - y_o) / T),
// with s_i recovered in backward from the one statistic saved per window,
//     lse_o = max_j(x_j) / T + log(sum_j exp((x_j - max) / T))   (= log sum_j exp(x_j / T)).
//
// Special values: NaN in a window gives NaN; +inf gives +inf; -inf entries get weight 0; a window
// that is all -inf, or empty (possible with dilation, as in max_pool), gives -inf like max_pool.
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
// kernel/stride/padding/dilation are unused.
struct Geometry {
  int64_t input_size[kPoolDims];
  int64_t output_size[kPoolDims];
  int64_t kernel[kPoolDims];
  int64_t stride[kPoolDims];
  int64_t padding[kPoolDims];
  int64_t dilation[kPoolDims];
  bool adaptive;
};

// Element strides of a tensor along (T, H, W).
struct Strides3 {
  int64_t t, h, w;
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

// Forward of one output element. `plane` points at input element (n, c, 0, 0, 0); the spans are
// the window along T, H, W. Writes the output value and the window statistic (log-sum-exp of x/T).
template <typename acc_t, typename scalar_t>
SOFTPOOL_HOST_DEVICE void forward_window(const scalar_t* plane, Strides3 in, Span st, Span sh, Span sw,
                                         acc_t inv_temperature, acc_t* value, acc_t* log_normalizer) {
  const acc_t inf = softpool_infinity<acc_t>();
  // Pass 1: the window maximum (subtracted before exp, so no overflow whatever the input range).
  acc_t max_x = -inf;
  for (int64_t a = 0; a < st.count; ++a) {
    const scalar_t* p_t = plane + (st.first + a * st.step) * in.t;
    for (int64_t b = 0; b < sh.count; ++b) {
      const scalar_t* p_h = p_t + (sh.first + b * sh.step) * in.h;
      for (int64_t c = 0; c < sw.count; ++c) {
        const acc_t x = static_cast<acc_t>(p_h[(sw.first + c * sw.step) * in.w]);
        if (x != x) {  // NaN
          *value = x;
          *log_normalizer = x;
          return;
        }
        max_x = x > max_x ? x : max_x;
      }
    }
  }
  if (max_x == inf || max_x == -inf) {  // +inf dominates; all -inf or empty window gives -inf
    *value = max_x;
    *log_normalizer = max_x;
    return;
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
  *value = max_x + numerator / denominator;
  *log_normalizer = max_x * inv_temperature + softpool_log(denominator);
}

// The gradient that window o sends to one of its inputs x:
//     g_o * s * (1 + (x - y_o) / T),  s = exp(x / T - lse_o).
// Inputs whose weight is 0 (-inf, or underflowed far below the window max) receive exactly 0, which
// also keeps (x - y) from overflowing into inf * 0 = NaN for inputs near the dtype's limits.
template <typename acc_t>
SOFTPOOL_HOST_DEVICE acc_t window_gradient(acc_t x, acc_t y, acc_t log_normalizer, acc_t grad_y,
                                           acc_t inv_temperature) {
  const acc_t weight = softpool_exp(x * inv_temperature - log_normalizer);
  return weight > 0 ? grad_y * weight * (acc_t(1) + (x - y) * inv_temperature) : acc_t(0);
}

// Backward of one input element at (it, ih, iw): a deterministic gather over the windows that
// cover it. The output-shaped tensors are addressed through their own strides from (n, c) planes.
template <typename acc_t, typename scalar_t, typename stat_t>
SOFTPOOL_HOST_DEVICE acc_t backward_input(const Geometry& g, int64_t it, int64_t ih, int64_t iw, acc_t x,
                                          const scalar_t* grad_plane, Strides3 grad_strides,
                                          const scalar_t* out_plane, Strides3 out_strides,
                                          const stat_t* stat_plane, Strides3 stat_strides,
                                          acc_t inv_temperature) {
  int64_t t0, t1, h0, h1, w0, w1;
  covering_outputs(g, 0, it, &t0, &t1);
  covering_outputs(g, 1, ih, &h0, &h1);
  covering_outputs(g, 2, iw, &w0, &w1);
  acc_t grad = 0;
  for (int64_t ot = t0; ot < t1; ++ot) {
    if (!span_contains(window_span(g, 0, ot), it)) continue;
    for (int64_t oh = h0; oh < h1; ++oh) {
      if (!span_contains(window_span(g, 1, oh), ih)) continue;
      for (int64_t ow = w0; ow < w1; ++ow) {
        if (!span_contains(window_span(g, 2, ow), iw)) continue;
        const acc_t grad_y = static_cast<acc_t>(
            grad_plane[ot * grad_strides.t + oh * grad_strides.h + ow * grad_strides.w]);
        const acc_t y = static_cast<acc_t>(out_plane[ot * out_strides.t + oh * out_strides.h + ow * out_strides.w]);
        const acc_t lse = static_cast<acc_t>(
            stat_plane[ot * stat_strides.t + oh * stat_strides.h + ow * stat_strides.w]);
        grad += window_gradient(x, y, lse, grad_y, inv_temperature);
      }
    }
  }
  return grad;
}

}  // namespace softpool_video
