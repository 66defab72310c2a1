// Vectorised CPU fast path; see softpool_cpu_vectorized.h for the design.
#include "softpool_cpu_vectorized.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace softpool_video::vectorized {

// Taps of the largest window (adaptive windows span at most ceil(in / out) + 1 positions per dim).
inline int64_t max_window_taps(const Geometry& g) {
  int64_t taps = 1;
  for (int d = 0; d < kPoolDims; ++d) {
    taps *= g.adaptive ? (g.input_size[d] + g.output_size[d] - 1) / g.output_size[d] + 1 : g.kernel[d];
  }
  return taps;
}

void gather_strided(float* dst, const float* src, int64_t n, int64_t step);
void scatter_add_strided(float* dst, const float* src, int64_t n, int64_t step);
void scatter_strided(float* dst, const float* src, int64_t n, int64_t step);
void deinterleave(float* even, int64_t n_even, float* odd, int64_t n_odd, const float* src);
void interleave(float* dst, const float* even, int64_t n_even, const float* odd, int64_t n_odd);
void copy_blocks(float* dst, int64_t dst_step, const float* src, int64_t src_step, int64_t blocks, int64_t block);
void copy_runs(float* dst, int64_t dst_step, const float* src, const int64_t* offsets, int64_t count, int64_t n);
void add_runs(float* dst, const int64_t* offsets, const float* src, int64_t src_step, int64_t count, int64_t n);
void gather_taps(float* dst, int64_t dst_step, const float* src, int64_t count, int64_t n, int64_t stride,
                 int64_t dilation);
void scatter_taps(float* dst, const float* src, int64_t src_step, int64_t count, int64_t n, int64_t stride,
                  int64_t dilation, bool accumulate);
float segment_max(const float* x, int64_t n, float max_x);
bool finish_float_lanes(const float* max_x, const float* delta, const float* log_denominator, int64_t num_lanes,
                        float inv_temperature, float* output, float* log_weight_offset, float* output_residual);
void accumulate_lane_gradients(const float* x, const float* y, const float* log_weight_offset,
                               const float* output_residual, const float* grad_y, int64_t num_lanes,
                               float inv_temperature, float* acc);
void store_lane_gradients(const float* x, const float* y, const float* log_weight_offset,
                          const float* output_residual, const float* grad_y, int64_t num_lanes,
                          float inv_temperature, float* grad_x);
void spread_lanes(float* dst, const float* src, int64_t n, int64_t repeat, int64_t copies);
bool lanes_finite(const float* y, const float* log_weight_offset, const float* output_residual, int64_t num_lanes);
void accumulate_windows(const float* x, const float* const* y, const float* const* log_weight_offset,
                        const float* const* output_residual, const float* const* grad_y, int64_t num_windows,
                        int64_t num_lanes, float inv_temperature, float* acc);
void segment_weight_sums(const float* x, int64_t n, float max_x, float inv_temperature, float* denominator,
                         float* numerator);
void segment_gradients(const float* x, int64_t n, float y, float log_weight_offset, float output_residual,
                       float grad_y, float inv_temperature, float* out);
void lanes_backward_with_variance(const float* taps, int64_t num_taps, int64_t num_lanes, const float* y,
                                  const float* log_weight_offset, const float* output_residual,
                                  const float* grad_y, float inv_temperature, float* coefficients,
                                  float* variance);
float segment_gradients_with_variance(const float* x, int64_t n, float y, float log_weight_offset,
                                      float output_residual, float grad_y, float inv_temperature, float* out);
void lanes_forward_runs(const float* const* tap_runs, int64_t num_taps, int64_t num_lanes, float inv_temperature,
                        float* max_out, float* delta, float* log_denominator);
void lanes_backward_runs(const float* const* tap_runs, int64_t num_taps, int64_t num_lanes, const float* y,
                         const float* log_weight_offset, const float* output_residual, const float* grad_y,
                         float inv_temperature, float* const* gradient_runs, float* variance);

namespace {

// Function multi-versioning: the loops below are compiled for AVX-512, AVX2+FMA and baseline
// x86-64, and the best one is picked when the library loads. A build with SOFTPOOL_CPU_TARGET
// (setup.py) compiles one of them alone, e.g. so that the tests run the AVX2 or baseline code on a
// CPU that would pick AVX-512.
#if defined(SOFTPOOL_CPU_TARGET_X86_64_V4)
#define SOFTPOOL_MULTIVERSION __attribute__((target("arch=x86-64-v4")))
#elif defined(SOFTPOOL_CPU_TARGET_X86_64_V3)
#define SOFTPOOL_MULTIVERSION __attribute__((target("arch=x86-64-v3")))
#elif defined(SOFTPOOL_CPU_TARGET_BASELINE)
#define SOFTPOOL_MULTIVERSION
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SOFTPOOL_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SOFTPOOL_MULTIVERSION
#endif

constexpr float kFloatInfinity = std::numeric_limits<float>::infinity();

inline float bits_to_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

inline uint32_t float_to_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

// W float lanes as one value (GCC vector extension), so that the accumulators of the lane and
// reduction loops stay in registers across the taps instead of going through memory once per tap.
// W is the width the running CPU has registers for (kNativeLaneWidth): GCC splits a wider vector's
// arithmetic into register-sized pieces but lowers its compares and selects lane by lane, so 64-byte
// vectors made the AVX2 clone of the stem forward 10x slower than the AVX-512 one (and 2.3x slower
// than max_pool3d). The helpers are always inlined into their multiversioned callers, so no function
// passes a vector by value across the baseline ABI (GCC's -Wpsabi note does not apply).
#pragma GCC diagnostic ignored "-Wpsabi"
template <int W>
struct LaneVector {
  typedef float floats __attribute__((vector_size(4 * W)));
  typedef int32_t ints __attribute__((vector_size(4 * W)));
};
template <int W>
using Floats = typename LaneVector<W>::floats;
template <int W>
using Ints = typename LaneVector<W>::ints;

template <int W>
inline __attribute__((always_inline)) Floats<W> load_lanes(const float* p) {
  Floats<W> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename V>
inline __attribute__((always_inline)) void store_lanes(float* p, V v) {
  std::memcpy(p, &v, sizeof(v));
}

// {0, 1, ..., W - 1}
template <int W>
inline __attribute__((always_inline)) Ints<W> lane_indices() {
  Ints<W> index;
  for (int j = 0; j < W; ++j) index[j] = j;
  return index;
}

// x in every lane of V (float or Floats<W>)
template <typename V>
inline __attribute__((always_inline)) V broadcast(float x) {
  return V{} + x;
}

// The int32 lanes with the bits of a float value or vector (the int vector type is that of V's
// comparisons).
template <typename V>
inline __attribute__((always_inline)) auto float_bits(V x) {
  if constexpr (std::is_same_v<V, float>) {
    return __builtin_bit_cast(int32_t, x);
  } else {
    return __builtin_bit_cast(decltype(x < x), x);
  }
}

// The lane width the vector loops use on this CPU: 16 with AVX-512 (x86-64-v4), 8 with AVX2+FMA
// (x86-64-v3), 4 otherwise (SSE2, or NEON and other 128-bit vector units). It matches the clone the
// loader picks for each SOFTPOOL_MULTIVERSION function, whose body runs the loops of this width (all
// widths are compiled into every clone, so any width is correct in any clone; only the matching one
// is fast). A SOFTPOOL_CPU_TARGET build caps it at its one level.
int detect_native_lane_width() {
#if defined(SOFTPOOL_CPU_TARGET_BASELINE)
  return 4;
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  __builtin_cpu_init();
#if defined(SOFTPOOL_CPU_TARGET_X86_64_V3)
  return __builtin_cpu_supports("x86-64-v3") ? 8 : 4;
#else
  return __builtin_cpu_supports("x86-64-v4") ? 16 : __builtin_cpu_supports("x86-64-v3") ? 8 : 4;
#endif
#else
  return 4;
#endif
}

const int kNativeLaneWidth = detect_native_lane_width();

// f(std::integral_constant<int, W>{}) for the native width W: the call sites pass an always_inline
// lambda, so the loop of that width is compiled into, and runs in, each clone of the caller.
template <typename F>
inline __attribute__((always_inline)) decltype(auto) with_native_lane_width(F&& f) {
  switch (kNativeLaneWidth) {
    case 16:
      return f(std::integral_constant<int, 16>{});
    case 8:
      return f(std::integral_constant<int, 8>{});
    default:
      return f(std::integral_constant<int, 4>{});
  }
}

// exp(x) for x <= 0 (arguments are shifted by the window max), branch-free so loops vectorise, and
// the mask of the arguments whose weight is kept (not flushed to 0; NaN counts as kept, its NaN
// weight sends the window to the scalar body). Cody-Waite range reduction and the Cephes expf
// polynomial: about 1 ulp on [-87, 0] (and for the tiny positive arguments that rounding can
// produce). Arguments below -87.3 give exactly 0 (expf is subnormal or 0 there, negligible next to
// the max's weight 1). With kClampAbove, arguments above 80 are clamped so that no statistic,
// however wrong, can overflow the exponent bits; callers whose arguments are x - max <= 0 skip it.
template <bool kClampAbove, typename V>
struct ExpNonpositive {
  V weight;
  decltype(V{} < 0.0f) kept;
};

template <bool kClampAbove = true, typename V>
inline __attribute__((always_inline)) ExpNonpositive<kClampAbove, V> exp_nonpositive_kept(V x) {
  const auto underflow = x < -87.33f;  // NaN compares false and propagates below
  x = underflow ? broadcast<V>(-87.33f) : x;
  if constexpr (kClampAbove) x = x > 80.0f ? broadcast<V>(80.0f) : x;
  // round to nearest: the low mantissa bits of `shifted` (1.5 * 2^23 + n) hold n in two's complement
  const V shifted = x * 1.44269504088896341f + 12582912.0f;
  const V n = shifted - 12582912.0f;
  const V r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  V p = broadcast<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n from its exponent bits: n + 127 (in [1, 243] after the clamps) shifted into bits 23..30;
  // the shift drops the higher bits of `shifted`
  const auto scale = (float_bits(shifted) + 127) << 23;
  return {underflow ? broadcast<V>(0.0f) : p * __builtin_bit_cast(V, scale), underflow == 0};
}

template <typename V>
inline __attribute__((always_inline)) V exp_nonpositive(V x) {
  return exp_nonpositive_kept<true>(x).weight;
}

// log(x) for finite x >= 1 (the normaliser of a window is at least the max's weight, 1).
// Cephes logf: mantissa in [sqrt(1/2), sqrt(2)), polynomial in f = m - 1.
inline float log_at_least_one(float x) {
  const uint32_t bits = float_to_bits(x);
  float exponent = static_cast<float>(static_cast<int32_t>(bits >> 23) - 126);
  float m = bits_to_float((bits & 0x007FFFFFu) | 0x3F000000u);  // in [0.5, 1)
  const bool small = m < 0.707106781186547524f;
  exponent = small ? exponent - 1.0f : exponent;
  const float f = small ? m + m - 1.0f : m - 1.0f;
  const float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  y += exponent * -2.12194440e-4f;
  y += -0.5f * z;
  return f + y + exponent * 0.693359375f;
}

template <typename scalar_t>
inline float to_float(scalar_t v) {
  return static_cast<float>(v);
}

template <typename scalar_t>
inline void gather_lanes(float* dst, const scalar_t* src, int64_t n, int64_t step) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    gather_strided(dst, src, n, step);
  } else {
    for (int64_t j = 0; j < n; ++j) dst[j] = static_cast<float>(src[j * step]);
  }
}

// dst[i * block + j] = src[i * step + j] for i < blocks, j < block (block 1: a strided gather)
template <typename scalar_t>
inline void gather_blocks(float* dst, const scalar_t* src, int64_t blocks, int64_t block, int64_t step) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (block == 1) {
      gather_strided(dst, src, blocks, step);
    } else {
      copy_blocks(dst, block, src, step, blocks, block);
    }
  } else {
    for (int64_t i = 0; i < blocks; ++i) {
      for (int64_t j = 0; j < block; ++j) dst[i * block + j] = static_cast<float>(src[i * step + j]);
    }
  }
}

// dst[i * step + j] = src[i * block + j], converted to the output dtype
template <typename scalar_t>
inline void scatter_blocks(scalar_t* dst, const float* src, int64_t blocks, int64_t block, int64_t step) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (block == 1) {
      scatter_strided(dst, src, blocks, step);
    } else {
      copy_blocks(dst, step, src, block, blocks, block);
    }
  } else {
    for (int64_t i = 0; i < blocks; ++i) {
      for (int64_t j = 0; j < block; ++j) dst[i * step + j] = static_cast<scalar_t>(src[i * block + j]);
    }
  }
}

inline bool finite(float v) { return std::isfinite(v); }

// Geometry of the "interior" outputs along W: windows whose every tap lies inside the input.
struct Interior {
  int64_t begin, end;
};

inline Interior interior_along_w(const Geometry& g) {
  const int64_t s = g.stride[2], p = g.padding[2], reach = (g.kernel[2] - 1) * g.dilation[2];
  const int64_t begin = ceil_div(p, s);
  int64_t end = floor_div(g.input_size[2] - 1 + p - reach, s) + 1;
  end = std::min(end, g.output_size[2]);
  return {std::min(begin, end), std::max(end, std::min(begin, end))};
}

inline int64_t kernel_taps(const Geometry& g) { return g.kernel[0] * g.kernel[1] * g.kernel[2]; }

}  // namespace

namespace {

// Where the lane loops read tap k of the lanes j0 .. j0 + W - 1: a tap-major buffer
// (taps[k * kLanes + lane]) or one run per tap (runs[k][lane]: straight from the phase-split rows,
// without a copy into a buffer; a run may be read up to 15 floats past its last lane, so its
// storage has that much slack).
struct TapBuffer {
  const float* taps;
  __attribute__((always_inline)) const float* at(int64_t k, int64_t j0) const { return taps + k * kLanes + j0; }
};
struct TapRuns {
  const float* const* runs;
  __attribute__((always_inline)) const float* at(int64_t k, int64_t j0) const { return runs[k] + j0; }
};

template <int W, typename Taps>
__attribute__((always_inline)) inline void lanes_forward_body(Taps taps, int64_t num_taps, int64_t num_lanes,
                                                              float inv_temperature, float* max_out, float* delta,
                                                              float* log_denominator) {
  using V = Floats<W>;
  // Whole blocks of W lanes (short rows use few lanes); lanes past num_lanes are computed from
  // whatever the buffer holds and never stored.
  const int64_t width = std::min<int64_t>(kLanes, (num_lanes + W - 1) / W * W);
  float max_x[kLanes], numerator[kLanes], denominator[kLanes];
  for (int64_t j0 = 0; j0 < width; j0 += W) {
    V m = load_lanes<W>(taps.at(0, j0));
    for (int64_t k = 1; k < num_taps; ++k) {
      const V row = load_lanes<W>(taps.at(k, j0));
      m = row > m ? row : m;
    }
    V num = broadcast<V>(0.0f), den = broadcast<V>(0.0f);
    for (int64_t k = 0; k < num_taps; ++k) {
      const V d = load_lanes<W>(taps.at(k, j0)) - m;
      const auto [weight, kept] = exp_nonpositive_kept<false>(d * inv_temperature);  // d <= 0
      den += weight;
      // as the scalar body: (x - max) cannot overflow, and zero-weight (-inf) taps add nothing
      num += kept ? weight * d : broadcast<V>(0.0f);
    }
    store_lanes(max_x + j0, m);
    store_lanes(numerator + j0, num);
    store_lanes(denominator + j0, den);
  }
  // in whole blocks of W (no scalar remainder loop), then the lanes asked for
  float delta_all[kLanes], log_denominator_all[kLanes];
  for (int64_t j0 = 0; j0 < width; j0 += W) {
    for (int64_t j = j0; j < j0 + W; ++j) delta_all[j] = numerator[j] / denominator[j];
  }
  std::copy(max_x, max_x + num_lanes, max_out);
  std::copy(delta_all, delta_all + num_lanes, delta);
  // Inference (log_denominator null) needs only max + delta. A normaliser that is not finite (NaN:
  // a NaN tap) makes delta NaN too, so the callers' finiteness checks still send it to the scalar body.
  if (log_denominator == nullptr) return;
  for (int64_t j0 = 0; j0 < width; j0 += W) {
    for (int64_t j = j0; j < j0 + W; ++j) log_denominator_all[j] = log_at_least_one(denominator[j]);
  }
  std::copy(log_denominator_all, log_denominator_all + num_lanes, log_denominator);
}

}  // namespace

SOFTPOOL_MULTIVERSION
void lanes_forward(const float* taps, int64_t num_taps, int64_t num_lanes, float inv_temperature, float* max_out,
                   float* delta, float* log_denominator) {
  with_native_lane_width([&](auto w) __attribute__((always_inline)) {
    lanes_forward_body<w()>(TapBuffer{taps}, num_taps, num_lanes, inv_temperature, max_out, delta, log_denominator);
  });
}

SOFTPOOL_MULTIVERSION
void lanes_forward_runs(const float* const* tap_runs, int64_t num_taps, int64_t num_lanes, float inv_temperature,
                        float* max_out, float* delta, float* log_denominator) {
  with_native_lane_width([&](auto w) __attribute__((always_inline)) {
    lanes_forward_body<w()>(TapRuns{tap_runs}, num_taps, num_lanes, inv_temperature, max_out, delta,
                            log_denominator);
  });
}

// The shared finish_window<float> for every lane of a float output row, in loops that vectorise
// (float output needs no rounding to its dtype). Returns whether every lane's max, delta and
// log-normaliser were finite; if not, nothing is written and the caller runs the shared scalar body.
SOFTPOOL_MULTIVERSION
bool finish_float_lanes(const float* max_x, const float* delta, const float* log_denominator, int64_t num_lanes,
                        float inv_temperature, float* output, float* log_weight_offset, float* output_residual) {
  // |v| < inf for all three (NaN compares false): one flag per lane, no branch
  int all_finite = 1;
  for (int64_t j = 0; j < num_lanes; ++j) {
    all_finite &= static_cast<int>(std::fabs(max_x[j]) < kFloatInfinity) &
                  static_cast<int>(std::fabs(delta[j]) < kFloatInfinity) &
                  static_cast<int>(std::fabs(log_denominator[j]) < kFloatInfinity);
  }
  if (all_finite == 0) return false;
  if (log_weight_offset == nullptr) {  // inference: the output alone
    for (int64_t j = 0; j < num_lanes; ++j) {
      output[j] = finish_window<float>(max_x[j], delta[j], log_denominator[j], inv_temperature).output;
    }
    return true;
  }
  for (int64_t j = 0; j < num_lanes; ++j) {
    const WindowResult<float> r = finish_window<float>(max_x[j], delta[j], log_denominator[j], inv_temperature);
    output[j] = r.output;
    log_weight_offset[j] = r.log_weight_offset;
    output_residual[j] = r.output_residual;
  }
  return true;
}

namespace {

// Where the lane loops put the gradient a lane's window sends to its tap k: a tap-major
// coefficient buffer (stored), or the run of the accumulator row that holds those taps (added in
// place; lanes past num_lanes add 0, so a run needs the same 15 floats of slack as TapRuns).
// The runs of neighbouring taps overlap (tap kw + stride is tap kw one position on): each add
// reads what the previous ones stored, in the loops' fixed order.
struct CoefficientBuffer {
  float* coefficients;
  template <typename V, typename VI>
  __attribute__((always_inline)) void put(int64_t k, int64_t j0, V value, VI /*valid*/) const {
    store_lanes(coefficients + k * kLanes + j0, value);
  }
};
struct AccumulatorRuns {
  float* const* runs;
  template <typename V, typename VI>
  __attribute__((always_inline)) void put(int64_t k, int64_t j0, V value, VI valid) const {
    // valid lanes are all ones: a bitwise and, which GCC keeps in vector registers (a second
    // vector select on top of the caller's was compiled lane by lane)
    constexpr int W = sizeof(V) / sizeof(float);
    store_lanes(runs[k] + j0, load_lanes<W>(runs[k] + j0) + __builtin_bit_cast(V, float_bits(value) & valid));
  }
};

// The loop of lanes_backward; with kVariance it also sums, per lane, s (v - r)^2 over the taps
// (= Var_s(x) / T^2, so dy/dT = -variance: the shared temperature_derivative_window) from the same
// weights, so a learned temperature costs no extra exp. Inlined into each multiversioned caller.
template <int W, bool kVariance, typename Taps, typename Sink>
__attribute__((always_inline)) inline void lanes_backward_body(Taps taps, int64_t num_taps, int64_t num_lanes,
                                                               const float* y, const float* log_weight_offset,
                                                               const float* output_residual, const float* grad_y,
                                                               float inv_temperature, Sink sink, float* variance) {
  using V = Floats<W>;
  // whole blocks of W lanes, each window's y, statistics and g loaded once for all its taps;
  // lanes past num_lanes are never scattered from the coefficients and add 0 to accumulator runs
  const int64_t width = std::min<int64_t>(kLanes, (num_lanes + W - 1) / W * W);
  float acc[kLanes];
  const Ints<W> lane_index = lane_indices<W>();
  for (int64_t j0 = 0; j0 < width; j0 += W) {
    const V y_lanes = load_lanes<W>(y + j0), offset_lanes = load_lanes<W>(log_weight_offset + j0);
    const V residual_lanes = load_lanes<W>(output_residual + j0), grad_lanes = load_lanes<W>(grad_y + j0);
    const Ints<W> valid = lane_index < static_cast<int32_t>(num_lanes - j0);
    V variance_lanes = broadcast<V>(0.0f);
    for (int64_t k = 0; k < num_taps; ++k) {
      const V v = (load_lanes<W>(taps.at(k, j0)) - y_lanes) * inv_temperature;
      const V weight = exp_nonpositive(v + offset_lanes);
      const V value = grad_lanes * weight * (1.0f + v - residual_lanes);
      // as window_gradient: zero-weight inputs receive 0
      sink.put(k, j0, weight > 0.0f ? value : broadcast<V>(0.0f), valid);
      if constexpr (kVariance) {
        const V d = v - residual_lanes;
        variance_lanes += weight > 0.0f ? weight * d * d : broadcast<V>(0.0f);  // as temperature_derivative_term
      }
    }
    store_lanes(acc + j0, variance_lanes);
  }
  if constexpr (kVariance) {
    for (int64_t j = 0; j < num_lanes; ++j) variance[j] = acc[j];
  }
}

}  // namespace

SOFTPOOL_MULTIVERSION
void lanes_backward(const float* taps, int64_t num_taps, int64_t num_lanes, const float* y,
                    const float* log_weight_offset, const float* output_residual, const float* grad_y,
                    float inv_temperature, float* coefficients) {
  with_native_lane_width([&](auto w) __attribute__((always_inline)) {
    lanes_backward_body<w(), false>(TapBuffer{taps}, num_taps, num_lanes, y, log_weight_offset, output_residual,
                                    grad_y, inv_temperature, CoefficientBuffer{coefficients}, nullptr);
  });
}

SOFTPOOL_MULTIVERSION
void lanes_backward_with_variance(const float* taps, int64_t num_taps, int64_t num_lanes, const float* y,
                                  const float* log_weight_offset, const float* output_residual,
                                  const float* grad_y, float inv_temperature, float* coefficients,
                                  float* variance) {
  with_native_lane_width([&](auto w) __attribute__((always_inline)) {
    lanes_backward_body<w(), true>(TapBuffer{taps}, num_taps, num_lanes, y, log_weight_offset, output_residual,
                                   grad_y, inv_temperature, CoefficientBuffer{coefficients}, variance);
  });
}

// The fused form for windows with finite output and statistics (lanes_finite): taps read from
// their runs and gradients added straight into the accumulator runs, no buffer in between.
SOFTPOOL_MULTIVERSION
void lanes_backward_runs(const float* const* tap_runs, int64_t num_taps, int64_t num_lanes, const float* y,
                         const float* log_weight_offset, const float* output_residual, const float* grad_y,
                         float inv_temperature, float* const* gradient_runs, float* variance) {
  with_native_lane_width([&](auto w) __attribute__((always_inline)) {
    if (variance != nullptr) {
      lanes_backward_body<w(), true>(TapRuns{tap_runs}, num_taps, num_lanes, y, log_weight_offset, output_residual,
                                     grad_y, inv_temperature, AccumulatorRuns{gradient_runs}, variance);
    } else {
      lanes_backward_body<w(), false>(TapRuns{tap_runs}, num_taps, num_lanes, y, log_weight_offset,
                                      output_residual, grad_y, inv_temperature, AccumulatorRuns{gradient_runs},
                                      nullptr);
    }
  });
}

// dst[j] = src[j * step], dst[j * step] = src[j] and dst[j * step] += src[j] for j < n. Constant
// strides 1 and 2 (the common pooling strides along W) get their own loops so the compiler can
// vectorise the strided access.
SOFTPOOL_MULTIVERSION
void gather_strided(float* dst, const float* src, int64_t n, int64_t step) {
  if (step == 1) {
    for (int64_t j = 0; j < n; ++j) dst[j] = src[j];
  } else if (step == 2) {
    for (int64_t j = 0; j < n; ++j) dst[j] = src[2 * j];
  } else {
    for (int64_t j = 0; j < n; ++j) dst[j] = src[j * step];
  }
}

SOFTPOOL_MULTIVERSION
void scatter_strided(float* dst, const float* src, int64_t n, int64_t step) {
  if (step == 1) {
    for (int64_t j = 0; j < n; ++j) dst[j] = src[j];
  } else if (step == 2) {
    for (int64_t j = 0; j < n; ++j) dst[2 * j] = src[j];
  } else {
    for (int64_t j = 0; j < n; ++j) dst[j * step] = src[j];
  }
}

SOFTPOOL_MULTIVERSION
void scatter_add_strided(float* dst, const float* src, int64_t n, int64_t step) {
  if (step == 1) {
    for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
  } else if (step == 2) {
    for (int64_t j = 0; j < n; ++j) dst[2 * j] += src[j];
  } else {
    for (int64_t j = 0; j < n; ++j) dst[j * step] += src[j];
  }
}

// even[i] = src[2 i] for i < n_even and odd[i] = src[2 i + 1] for i < n_odd, in one pass over src
// (two strided gathers read every cache line of the row twice); interleave is the inverse. The
// two phases of a stride-2 row (PhasedRow::paired).
SOFTPOOL_MULTIVERSION
void deinterleave(float* __restrict even, int64_t n_even, float* __restrict odd, int64_t n_odd,
                  const float* __restrict src) {
  const int64_t pairs = std::min(n_even, n_odd);
  for (int64_t i = 0; i < pairs; ++i) {
    even[i] = src[2 * i];
    odd[i] = src[2 * i + 1];
  }
  for (int64_t i = pairs; i < n_even; ++i) even[i] = src[2 * i];
  for (int64_t i = pairs; i < n_odd; ++i) odd[i] = src[2 * i + 1];
}

SOFTPOOL_MULTIVERSION
void interleave(float* __restrict dst, const float* __restrict even, int64_t n_even, const float* __restrict odd,
                int64_t n_odd) {
  const int64_t pairs = std::min(n_even, n_odd);
  for (int64_t i = 0; i < pairs; ++i) {
    dst[2 * i] = even[i];
    dst[2 * i + 1] = odd[i];
  }
  for (int64_t i = pairs; i < n_even; ++i) dst[2 * i] = even[i];
  for (int64_t i = pairs; i < n_odd; ++i) dst[2 * i + 1] = odd[i];
}

namespace {
template <int64_t kBlock>
inline __attribute__((always_inline)) void copy_fixed_blocks(float* dst, int64_t dst_step, const float* src,
                                                             int64_t src_step, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i) {
    for (int64_t j = 0; j < kBlock; ++j) dst[i * dst_step + j] = src[i * src_step + j];
  }
}
}  // namespace

// dst[i * dst_step + j] = src[i * src_step + j] for i < blocks, j < block: the channel blocks of
// channels_last rows. The usual channel counts get loops of fixed width (whole vectors per block).
SOFTPOOL_MULTIVERSION
void copy_blocks(float* dst, int64_t dst_step, const float* src, int64_t src_step, int64_t blocks, int64_t block) {
  switch (block) {
    case 4:
      return copy_fixed_blocks<4>(dst, dst_step, src, src_step, blocks);
    case 8:
      return copy_fixed_blocks<8>(dst, dst_step, src, src_step, blocks);
    case 16:
      return copy_fixed_blocks<16>(dst, dst_step, src, src_step, blocks);
    case 32:
      return copy_fixed_blocks<32>(dst, dst_step, src, src_step, blocks);
    default:
      for (int64_t i = 0; i < blocks; ++i) {
        for (int64_t j = 0; j < block; ++j) dst[i * dst_step + j] = src[i * src_step + j];
      }
  }
}

// The taps of one input row for a chunk of lanes, in one call per row rather than one per tap
// (rows are short: OW = 28 for a 56-wide input). Run k of a phase-split row starts at src +
// offsets[k] (copy_runs: into taps, add_runs: gradients back into the accumulator); an unpadded
// row holds tap k of lane j at src[j * stride + k * dilation] (gather_taps, scatter_taps).
SOFTPOOL_MULTIVERSION
void copy_runs(float* dst, int64_t dst_step, const float* src, const int64_t* offsets, int64_t count, int64_t n) {
  for (int64_t k = 0; k < count; ++k) {
    const float* run = src + offsets[k];
    float* out = dst + k * dst_step;
    for (int64_t j = 0; j < n; ++j) out[j] = run[j];
  }
}

SOFTPOOL_MULTIVERSION
void add_runs(float* dst, const int64_t* offsets, const float* src, int64_t src_step, int64_t count, int64_t n) {
  for (int64_t k = 0; k < count; ++k) {
    float* run = dst + offsets[k];
    const float* in = src + k * src_step;
    for (int64_t j = 0; j < n; ++j) run[j] += in[j];
  }
}

SOFTPOOL_MULTIVERSION
void gather_taps(float* dst, int64_t dst_step, const float* src, int64_t count, int64_t n, int64_t stride,
                 int64_t dilation) {
  if (stride == 2 && dilation == 1 && count == 2) {  // k = s = 2: de-interleave even and odd columns
    for (int64_t j = 0; j < n; ++j) {
      dst[j] = src[2 * j];
      dst[dst_step + j] = src[2 * j + 1];
    }
    return;
  }
  for (int64_t k = 0; k < count; ++k) gather_strided(dst + k * dst_step, src + k * dilation, n, stride);
}

namespace {
template <bool kAccumulate>
inline __attribute__((always_inline)) void put(float& dst, float value) {
  if constexpr (kAccumulate) {
    dst += value;
  } else {
    dst = value;
  }
}

template <bool kAccumulate>
inline __attribute__((always_inline)) void scatter_taps_body(float* dst, const float* src, int64_t src_step,
                                                             int64_t count, int64_t n, int64_t stride,
                                                             int64_t dilation) {
  if (stride == 2 && dilation == 1 && count == 2) {  // k = s = 2: interleave
    for (int64_t j = 0; j < n; ++j) {
      put<kAccumulate>(dst[2 * j], src[j]);
      put<kAccumulate>(dst[2 * j + 1], src[src_step + j]);
    }
    return;
  }
  for (int64_t k = 0; k < count; ++k) {  // the strided helpers, with their own stride 1 and 2 loops
    if constexpr (kAccumulate) {
      scatter_add_strided(dst + k * dilation, src + k * src_step, n, stride);
    } else {
      scatter_strided(dst + k * dilation, src + k * src_step, n, stride);
    }
  }
}
}  // namespace

// dst[j * stride + k * dilation] (+)= src[k * src_step + j]: the gradients of an unpadded row's taps.
// Without `accumulate` (windows disjoint and covering the input) every element is written once, so
// grad_input needs no zero fill and no read.
SOFTPOOL_MULTIVERSION
void scatter_taps(float* dst, const float* src, int64_t src_step, int64_t count, int64_t n, int64_t stride,
                  int64_t dilation, bool accumulate) {
  if (accumulate) {
    scatter_taps_body<true>(dst, src, src_step, count, n, stride, dilation);
  } else {
    scatter_taps_body<false>(dst, src, src_step, count, n, stride, dilation);
  }
}

namespace {
template <bool kAccumulate>
inline __attribute__((always_inline)) void lane_gradients_body(const float* x, const float* y,
                                                               const float* log_weight_offset,
                                                               const float* output_residual, const float* grad_y,
                                                               int64_t num_lanes, float inv_temperature,
                                                               float* __restrict out) {
  for (int64_t j = 0; j < num_lanes; ++j) {
    const float v = (x[j] - y[j]) * inv_temperature;
    const float weight = exp_nonpositive(v + log_weight_offset[j]);
    const float value = grad_y[j] * weight * (1.0f + v - output_residual[j]);
    put<kAccumulate>(out[j], weight > 0.0f ? value : 0.0f);
  }
}
}  // namespace

// acc[lane] += the gradient one window sends to input x[lane] (window_gradient), for lanes of
// windows with finite output and statistics (lanes_finite).
SOFTPOOL_MULTIVERSION
void accumulate_lane_gradients(const float* x, const float* y, const float* log_weight_offset,
                               const float* output_residual, const float* grad_y, int64_t num_lanes,
                               float inv_temperature, float* acc) {
  lane_gradients_body<true>(x, y, log_weight_offset, output_residual, grad_y, num_lanes, inv_temperature, acc);
}

// As accumulate_lane_gradients, storing the gradient: the only window of each input.
SOFTPOOL_MULTIVERSION
void store_lane_gradients(const float* x, const float* y, const float* log_weight_offset,
                          const float* output_residual, const float* grad_y, int64_t num_lanes,
                          float inv_temperature, float* grad_x) {
  lane_gradients_body<false>(x, y, log_weight_offset, output_residual, grad_y, num_lanes, inv_temperature, grad_x);
}

// dst[c * n * repeat + j * repeat + r] = src[j] for j < n, r < repeat and c < copies: the values of
// windows `repeat` columns wide spread over their columns, for each of `copies` rows.
SOFTPOOL_MULTIVERSION
void spread_lanes(float* __restrict dst, const float* __restrict src, int64_t n, int64_t repeat, int64_t copies) {
  for (int64_t c = 0; c < copies; ++c, dst += n * repeat) {
    if (repeat == 1) {
      for (int64_t j = 0; j < n; ++j) dst[j] = src[j];
    } else if (repeat == 2) {
      for (int64_t j = 0; j < n; ++j) {
        dst[2 * j] = src[j];
        dst[2 * j + 1] = src[j];
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t r = 0; r < repeat; ++r) dst[j * repeat + r] = src[j];
      }
    }
  }
}

SOFTPOOL_MULTIVERSION
bool lanes_finite(const float* y, const float* log_weight_offset, const float* output_residual, int64_t num_lanes) {
  uint32_t special = 0;  // exponent bits all ones: inf or NaN
  for (int64_t j = 0; j < num_lanes; ++j) {
    special |= static_cast<uint32_t>((float_to_bits(y[j]) & 0x7F800000u) == 0x7F800000u) |
               static_cast<uint32_t>((float_to_bits(log_weight_offset[j]) & 0x7F800000u) == 0x7F800000u) |
               static_cast<uint32_t>((float_to_bits(output_residual[j]) & 0x7F800000u) == 0x7F800000u);
  }
  return special == 0;
}

constexpr int64_t kShortLanes = 16;

// accumulate_lane_gradients over several windows (pointers to their lanes) in one call, in order;
// lanes of a window with a special value use the shared window_gradient.
SOFTPOOL_MULTIVERSION
void accumulate_windows(const float* x, const float* const* y, const float* const* log_weight_offset,
                        const float* const* output_residual, const float* const* grad_y, int64_t num_windows,
                        int64_t num_lanes, float inv_temperature, float* acc) {
  for (int64_t o = 0; o < num_windows; ++o) {
    const float *yo = y[o], *lo = log_weight_offset[o], *ro = output_residual[o], *go = grad_y[o];
    uint32_t special = 0;
    for (int64_t j = 0; j < num_lanes; ++j) {
      special |= static_cast<uint32_t>((float_to_bits(yo[j]) & 0x7F800000u) == 0x7F800000u) |
                 static_cast<uint32_t>((float_to_bits(lo[j]) & 0x7F800000u) == 0x7F800000u) |
                 static_cast<uint32_t>((float_to_bits(ro[j]) & 0x7F800000u) == 0x7F800000u);
    }
    if (special) {
      for (int64_t j = 0; j < num_lanes; ++j) acc[j] += window_gradient(x[j], yo[j], lo[j], ro[j], go[j], inv_temperature);
      continue;
    }
    if (num_lanes <= kShortLanes / 2) {  // the common C <= 8: half a vector, as 8-wide AVX
      constexpr int64_t half = kShortLanes / 2;
      float xs[half] = {}, ys[half] = {}, ls[half] = {}, rs[half] = {}, gs[half] = {}, out[half];
      for (int64_t j = 0; j < num_lanes; ++j) xs[j] = x[j], ys[j] = yo[j], ls[j] = lo[j], rs[j] = ro[j], gs[j] = go[j];
      for (int64_t j = 0; j < half; ++j) {
        const float v = (xs[j] - ys[j]) * inv_temperature;
        const float weight = exp_nonpositive(v + ls[j]);
        const float value = gs[j] * weight * (1.0f + v - rs[j]);
        out[j] = weight > 0.0f ? value : 0.0f;
      }
      for (int64_t j = 0; j < num_lanes; ++j) acc[j] += out[j];
      continue;
    }
    if (num_lanes <= kShortLanes) {
      // few channels: one full vector over zero-padded copies (a loop of unknown trip count below
      // one vector would run scalar)
      float xs[kShortLanes] = {}, ys[kShortLanes] = {}, ls[kShortLanes] = {}, rs[kShortLanes] = {},
            gs[kShortLanes] = {}, out[kShortLanes];
      for (int64_t j = 0; j < num_lanes; ++j) xs[j] = x[j], ys[j] = yo[j], ls[j] = lo[j], rs[j] = ro[j], gs[j] = go[j];
      for (int64_t j = 0; j < kShortLanes; ++j) {
        const float v = (xs[j] - ys[j]) * inv_temperature;
        const float weight = exp_nonpositive(v + ls[j]);
        const float value = gs[j] * weight * (1.0f + v - rs[j]);
        out[j] = weight > 0.0f ? value : 0.0f;
      }
      for (int64_t j = 0; j < num_lanes; ++j) acc[j] += out[j];
      continue;
    }
    for (int64_t j = 0; j < num_lanes; ++j) {
      const float v = (x[j] - yo[j]) * inv_temperature;
      const float weight = exp_nonpositive(v + lo[j]);
      const float value = go[j] * weight * (1.0f + v - ro[j]);
      acc[j] += weight > 0.0f ? value : 0.0f;
    }
  }
}

// Reductions over one contiguous segment of a window, for the window-reduction plan. Sixteen
// independent accumulators (kReductionWidth floats: one AVX-512 vector, two AVX2 ones, four of
// 128 bits) keep the loops vectorisable without reassociating a single float sum; the order of the
// additions is fixed for a lane width, so results are reproducible on a machine.
constexpr int64_t kReductionWidth = 16;

// The sum and the max of a vector's lanes by halving (a fixed tree, so still reproducible): log2(W)
// dependent steps instead of W, and in registers (a loop over the lanes into a result behind a
// pointer went through memory once per lane, a quarter of a head window's time).
inline __attribute__((always_inline)) float sum_lanes(Floats<4> v) { return (v[0] + v[2]) + (v[1] + v[3]); }

inline __attribute__((always_inline)) float sum_lanes(Floats<8> v) {
  return sum_lanes(Floats<4>(__builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7)));
}

inline __attribute__((always_inline)) float sum_lanes(Floats<16> v) {
  return sum_lanes(Floats<8>(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                             __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15)));
}

// as the loops' `x > m ? x : m`: a NaN lane is never picked
inline __attribute__((always_inline)) float max_lanes(Floats<4> v) {
  const float c0 = v[2] > v[0] ? v[2] : v[0], c1 = v[3] > v[1] ? v[3] : v[1];
  return c1 > c0 ? c1 : c0;
}

inline __attribute__((always_inline)) float max_lanes(Floats<8> v) {
  const Floats<4> high = __builtin_shufflevector(v, v, 4, 5, 6, 7), low = __builtin_shufflevector(v, v, 0, 1, 2, 3);
  return max_lanes(Floats<4>(high > low ? high : low));
}

inline __attribute__((always_inline)) float max_lanes(Floats<16> v) {
  const Floats<8> high = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const Floats<8> low = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
  return max_lanes(Floats<8>(high > low ? high : low));
}

// Each block of kReductionWidth floats is kReductionWidth / W vectors of the native width W, each
// with its own accumulator; the accumulators are combined lane by lane at the end.
template <int W>
inline __attribute__((always_inline)) float segment_max_body(const float* x, int64_t n, float max_x) {
  using V = Floats<W>;
  constexpr int kParts = kReductionWidth / W;
  V m[kParts];
  for (int p = 0; p < kParts; ++p) m[p] = broadcast<V>(max_x);
  const auto max_block = [&](const float* block) __attribute__((always_inline)) {
    for (int p = 0; p < kParts; ++p) {
      const V part = load_lanes<W>(block + p * W);
      m[p] = part > m[p] ? part : m[p];
    }
  };
  int64_t i = 0;
  for (; i + kReductionWidth <= n; i += kReductionWidth) max_block(x + i);
  if (i < n && n >= kReductionWidth) {
    // the tail as the segment's last full block: max is idempotent, so re-reading lanes is harmless
    max_block(x + n - kReductionWidth);
    i = n;
  }
  for (; i < n; ++i) max_x = x[i] > max_x ? x[i] : max_x;
  for (int p = 1; p < kParts; ++p) m[0] = m[p] > m[0] ? m[p] : m[0];
  const float lanes_max = max_lanes(m[0]);
  return lanes_max > max_x ? lanes_max : max_x;
}

template <int W>
inline __attribute__((always_inline)) void segment_weight_sums_body(const float* x, int64_t n, float max_x,
                                                                    float inv_temperature, float* denominator,
                                                                    float* numerator) {
  using V = Floats<W>;
  constexpr int kParts = kReductionWidth / W;
  V den[kParts], num[kParts];
  for (int p = 0; p < kParts; ++p) den[p] = num[p] = broadcast<V>(0.0f);
  const auto add_part = [&](int p, V d) __attribute__((always_inline)) {
    const auto [weight, kept] = exp_nonpositive_kept<false>(d * inv_temperature);  // d <= 0
    den[p] += weight;
    num[p] += kept ? weight * d : broadcast<V>(0.0f);
  };
  int64_t i = 0;
  for (; i + kReductionWidth <= n; i += kReductionWidth) {
    for (int p = 0; p < kParts; ++p) add_part(p, load_lanes<W>(x + i + p * W) - max_x);
  }
  if (i < n) {
    // The tail: -inf in the lanes past it, whose weight is exactly 0. A segment of at least one
    // block re-reads its last full block with the lanes already summed set to -inf (no scalar
    // copy, whose store-to-load forwarding stall cost as much as two blocks).
    const V negative_infinity = broadcast<V>(-kFloatInfinity);
    if (n >= kReductionWidth) {
      const int32_t already_summed = static_cast<int32_t>(i + kReductionWidth - n);
      for (int p = 0; p < kParts; ++p) {
        const V d = load_lanes<W>(x + n - kReductionWidth + p * W) - max_x;
        add_part(p, lane_indices<W>() + p * W < already_summed ? negative_infinity : d);
      }
    } else {
      float tail[kReductionWidth];
      for (int64_t j = 0; j < kReductionWidth; ++j) tail[j] = j < n ? x[j] : -kFloatInfinity;
      for (int p = 0; p < kParts; ++p) add_part(p, load_lanes<W>(tail + p * W) - max_x);
    }
  }
  for (int p = 1; p < kParts; ++p) den[0] += den[p], num[0] += num[p];
  *denominator += sum_lanes(den[0]);
  *numerator += sum_lanes(num[0]);
}

SOFTPOOL_MULTIVERSION
float segment_max(const float* x, int64_t n, float max_x) {
  return with_native_lane_width(
      [&](auto w) __attribute__((always_inline)) { return segment_max_body<w()>(x, n, max_x); });
}

SOFTPOOL_MULTIVERSION
void segment_weight_sums(const float* x, int64_t n, float max_x, float inv_temperature, float* denominator,
                         float* numerator) {
  with_native_lane_width([&](auto w) __attribute__((always_inline)) {
    segment_weight_sums_body<w()>(x, n, max_x, inv_temperature, denominator, numerator);
  });
}

SOFTPOOL_MULTIVERSION
void segment_gradients(const float* x, int64_t n, float y, float log_weight_offset, float output_residual,
                       float grad_y, float inv_temperature, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = (x[i] - y) * inv_temperature;
    const float weight = exp_nonpositive(v + log_weight_offset);
    const float value = grad_y * weight * (1.0f + v - output_residual);
    out[i] = weight > 0.0f ? value : 0.0f;  // as window_gradient
  }
}

// segment_gradients of one contiguous segment of a window, also returning its sum of s (v - r)^2
// (see lanes_backward_body) from the same weights.
SOFTPOOL_MULTIVERSION
float segment_gradients_with_variance(const float* x, int64_t n, float y, float log_weight_offset,
                                      float output_residual, float grad_y, float inv_temperature, float* out) {
  float acc[kReductionWidth] = {};
  int64_t i = 0;
  for (; i + kReductionWidth <= n; i += kReductionWidth) {  // whole blocks: a fixed-width vector body
    float weight[kReductionWidth], d[kReductionWidth];
    for (int64_t j = 0; j < kReductionWidth; ++j) {
      d[j] = (x[i + j] - y) * inv_temperature - output_residual;  // (x - exact output) / T
      weight[j] = exp_nonpositive(d[j] + output_residual + log_weight_offset);
      const float value = grad_y * weight[j] * (1.0f + d[j]);
      out[i + j] = weight[j] > 0.0f ? value : 0.0f;  // as window_gradient
    }
    for (int64_t j = 0; j < kReductionWidth; ++j) acc[j] += weight[j] > 0.0f ? weight[j] * d[j] * d[j] : 0.0f;
  }
  float total = 0.0f;
  for (int64_t j = 0; j < kReductionWidth; ++j) total += acc[j];
  for (; i < n; ++i) {  // the tail, through the shared body's terms
    out[i] = window_gradient(x[i], y, log_weight_offset, output_residual, grad_y, inv_temperature);
    total += temperature_derivative_term(x[i], y, log_weight_offset, output_residual, inv_temperature);
  }
  return total;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Contiguous (NCTHW) output: lanes are consecutive outputs along W.

// One input row along W, padded with -inf to the reach of every window of the output row (padding
// and ceil-mode overhang) and split into its `stride` phases: phase r holds padded positions
// r, r + s, r + 2 s, ... so that tap q of the windows ow0 .. ow0 + n - 1 is the contiguous run
// phases[q % s][ow0 + q / s ...] (stride 2 de-interleaves even and odd columns once per row instead
// of once per tap). A -inf tap has weight exactly 0, as in the scalar body, which skips it.
// A position is a block of `block` consecutive floats: 1 for NCTHW rows, C for channels_last_3d
// rows, whose positions hold all channels side by side (lane = position * C + channel).
// Floats past the end of a phase-split row or accumulator that the lane loops may touch when
// reading a tap run (TapRuns) or adding to one (AccumulatorRuns): a block of at most 16 lanes at
// most 15 past the last used lane.
constexpr int64_t kRunSlack = 16;

struct PhasedRow {
  int64_t stride = 1, block = 1, phase_length = 0;  // phase_length in positions
  std::vector<float> phases;
  // per phase r: the indices [first, last) that hold input columns (the rest is padding), and
  // input column first * stride + r - padding where they start; integer divisions stay out of loops
  std::vector<int64_t> first, last, first_column;
  // NCTHW rows (block 1) of stride 2 with the phases' first columns side by side (low_phase holds
  // the lower one): one pass over the row fills both phases (load) or writes both back (unload)
  bool paired = false;
  int64_t low_phase = 0;

  // long enough for the reach of the last window and for the whole input row (whose last columns
  // may lie in no window: the backward gives them 0 from this layout)
  PhasedRow(const Geometry& g, int64_t block_size)
      : stride(g.stride[2]),
        block(block_size),
        phase_length((std::max((g.output_size[2] - 1) * g.stride[2] + (g.kernel[2] - 1) * g.dilation[2] + 1,
                               g.padding[2] + g.input_size[2]) +
                      g.stride[2] - 1) /
                     g.stride[2]),
        phases(static_cast<size_t>(phase_length * stride * block + kRunSlack)) {
    const int64_t W = g.input_size[2], padding = g.padding[2];
    for (int64_t r = 0; r < stride; ++r) {
      const int64_t begin = std::min(phase_length, ceil_div(padding - r, stride));
      first.push_back(begin);
      last.push_back(std::max(begin, std::min(phase_length, ceil_div(W + padding - r, stride))));
      first_column.push_back(begin * stride + r - padding);
    }
    if (stride == 2 && block == 1) {
      low_phase = first_column[0] < first_column[1] ? 0 : 1;
      paired = first_column[1 - low_phase] == first_column[low_phase] + 1;
    }
  }

  float* phase_data(int64_t r) { return phases.data() + r * phase_length * block; }

  // row: the input row's first element; column_step: its stride between columns (for blocks, the
  // block's elements are consecutive)
  template <typename scalar_t>
  void load(const scalar_t* row, int64_t column_step) {
    constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
    const bool one_pass = std::is_same_v<scalar_t, float> && paired && column_step == 1;
    for (int64_t r = 0; r < stride; ++r) {
      float* phase = phase_data(r);
      std::fill(phase, phase + first[r] * block, kMinusInf);
      if (last[r] > first[r] && !one_pass) {
        gather_blocks(phase + first[r] * block, row + first_column[r] * column_step, last[r] - first[r], block,
                      stride * column_step);
      }
      std::fill(phase + last[r] * block, phase + phase_length * block, kMinusInf);
    }
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (one_pass) {
        const int64_t lo = low_phase, hi = 1 - low_phase;
        deinterleave(phase_data(lo) + first[lo], last[lo] - first[lo], phase_data(hi) + first[hi],
                     last[hi] - first[hi], row + first_column[lo]);
      }
    }
  }

  // The inverse of load for an accumulator row of this layout (acc_row): its input columns into
  // dst_row (padded positions are dropped).
  template <typename scalar_t>
  void unload(scalar_t* dst_row, const float* acc_row) const {
    auto phase_start = [&](int64_t r) { return acc_row + (r * phase_length + first[r]) * block; };
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (paired) {
        const int64_t lo = low_phase, hi = 1 - low_phase;
        interleave(dst_row + first_column[lo], phase_start(lo), last[lo] - first[lo], phase_start(hi),
                   last[hi] - first[hi]);
        return;
      }
    }
    for (int64_t r = 0; r < stride; ++r) {
      scatter_blocks(dst_row + first_column[r] * block, phase_start(r), last[r] - first[r], block, stride * block);
    }
  }

  // padded position q of window 0 for the windows ow0, ow0 + 1, ...
  const float* tap(int64_t q, int64_t ow0) const { return phases.data() + tap_offset(q) + ow0 * block; }
  int64_t tap_offset(int64_t q) const { return ((q % stride) * phase_length + q / stride) * block; }
};

// Offset of each kernel tap along W in the phase-split layout (PhasedRow::tap_offset; the backward's
// accumulator rows share the layout).
inline std::vector<int64_t> kernel_tap_offsets(const PhasedRow& layout, const Geometry& g) {
  std::vector<int64_t> offsets;
  for (int64_t kw = 0; kw < g.kernel[2]; ++kw) offsets.push_back(layout.tap_offset(kw * g.dilation[2]));
  return offsets;
}

// taps[kw * kLanes + j] = row[((ow0 + j) * stride + kw * dilation) * column_step] for every kernel
// tap kw of the lanes j < lanes: an unpadded NCTHW input row straight into the tap buffer.
template <typename scalar_t>
inline void gather_row_taps(float* taps, const scalar_t* row, int64_t column_step, int64_t ow0, int64_t lanes,
                            const Geometry& g) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (column_step == 1) {
      gather_taps(taps, kLanes, row + ow0 * g.stride[2], g.kernel[2], lanes, g.stride[2], g.dilation[2]);
      return;
    }
  }
  for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
    gather_lanes(taps + kw * kLanes, row + (ow0 * g.stride[2] + kw * g.dilation[2]) * column_step, lanes,
                 g.stride[2] * column_step);
  }
}

// block: 1 for NCTHW inputs (a row is one channel's outputs along W), C for channels_last_3d inputs
// (a row is all channels of the outputs along W, channel fastest, as the tensors lie in memory).
template <typename scalar_t>
void forward_rows(const at::Tensor& input, const at::Tensor& output, const at::Tensor& offset,
                  const at::Tensor& residual, const Geometry& g, const Temperature<float>& temp, int64_t block) {
  const scalar_t* in = input.const_data_ptr<scalar_t>();
  scalar_t* out = output.mutable_data_ptr<scalar_t>();
  // the statistics are undefined for an inference forward (nothing will differentiate it)
  float* offset_out = offset.defined() ? offset.mutable_data_ptr<float>() : nullptr;
  float* residual_out = residual.defined() ? residual.mutable_data_ptr<float>() : nullptr;
  const Strides3 in_s = {input.stride(2), input.stride(3), input.stride(4)};
  const int64_t in_n = input.stride(0), in_c = input.stride(1);
  const int64_t OT = g.output_size[0], OH = g.output_size[1], OW = g.output_size[2];
  const int64_t row_channels = block == 1 ? output.size(1) : 1;  // channel planes with rows of their own
  const int64_t rows = output.size(0) * row_channels * OT * OH;
  const int64_t row_taps = g.kernel[0] * g.kernel[1];
  const int64_t outputs_per_chunk = kLanes / block;  // lanes = outputs * block
  const Interior interior = interior_along_w(g);
  const bool all_interior = block == 1 && g.padding[2] == 0 && interior.begin == 0 && interior.end == OW;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, OW * block * kernel_taps(g)));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> taps(static_cast<size_t>(kernel_taps(g) * kLanes));
    std::vector<PhasedRow> window_rows(static_cast<size_t>(row_taps), PhasedRow(g, block));
    const std::vector<int64_t> tap_offsets = kernel_tap_offsets(window_rows[0], g);
    std::vector<const float*> tap_runs(static_cast<size_t>(kernel_taps(g)));
    float max_x[kLanes], delta[kLanes];
    // an inference forward (no statistics) skips the log-normaliser: log_den stays 0, which the output ignores
    float log_den[kLanes] = {};
    float* const log_den_out = offset_out != nullptr ? log_den : nullptr;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t oh = row % OH, ot = (row / OH) % OT, c = (row / (OH * OT)) % row_channels;
      const int64_t n = row / (OH * OT * row_channels);
      const float inv_t = temp.inverse(c);  // channels_last rows: one temperature for all channels
      const scalar_t* plane = in + n * in_n + c * in_c;
      // output and statistics are contiguous in their layout: element e of a row is output e / block,
      // channel e % block
      scalar_t* out_row = out + row * OW * block;
      float* offset_row = offset_out != nullptr ? offset_out + row * OW * block : nullptr;
      float* residual_row = residual_out != nullptr ? residual_out + row * OW * block : nullptr;
      const Span st = window_span(g, 0, ot), sh = window_span(g, 1, oh);
      auto store = [&](int64_t e, const WindowResult<float>& r) {
        out_row[e] = static_cast<scalar_t>(r.output);
        if (offset_row == nullptr) return;
        offset_row[e] = r.log_weight_offset;
        residual_row[e] = r.output_residual;
      };
      auto scalar_lane = [&](int64_t e) {
        store(e, forward_window<scalar_t, float>(plane + (e % block) * in_c, in_s, st, sh,
                                                 window_span(g, 2, e / block), inv_t));
      };
      if (!(st.count > 0 && sh.count > 0)) {  // empty window (dilation): the scalar body defines it
        for (int64_t e = 0; e < OW * block; ++e) scalar_lane(e);
        continue;
      }
      int64_t r = 0;
      for (int64_t a = 0; a < st.count; ++a) {
        for (int64_t b = 0; b < sh.count; ++b, ++r) {
          if (!all_interior) {
            window_rows[r].load(plane + (st.first + a * st.step) * in_s.t + (sh.first + b * sh.step) * in_s.h,
                                in_s.w);
          }
        }
      }
      // every window of the row, edges included: their padded taps are -inf
      for (int64_t ow0 = 0; ow0 < OW; ow0 += outputs_per_chunk) {
        const int64_t lanes = std::min(outputs_per_chunk, OW - ow0) * block;
        int64_t k = 0;
        if (all_interior) {  // no padding to fill in: each tap straight from the input (short rows)
          for (int64_t a = 0; a < st.count; ++a) {
            for (int64_t b = 0; b < sh.count; ++b) {
              const scalar_t* src_row =
                  plane + (st.first + a * st.step) * in_s.t + (sh.first + b * sh.step) * in_s.h;
              gather_row_taps(taps.data() + k * kLanes, src_row, in_s.w, ow0, lanes, g);
              k += g.kernel[2];
            }
          }
        }
        if (all_interior) {
          lanes_forward(taps.data(), k, lanes, inv_t, max_x, delta, log_den_out);
        } else {  // the taps straight from the phase-split rows
          for (int64_t q = 0; q < r; ++q) {
            for (int64_t kw = 0; kw < g.kernel[2]; ++kw) tap_runs[k++] = window_rows[q].tap(0, ow0) + tap_offsets[kw];
          }
          lanes_forward_runs(tap_runs.data(), k, lanes, inv_t, max_x, delta, log_den_out);
        }
        const int64_t e0 = ow0 * block;
        if constexpr (std::is_same_v<scalar_t, float>) {
          if (finish_float_lanes(max_x, delta, log_den, lanes, inv_t, out_row + e0,
                                 offset_row != nullptr ? offset_row + e0 : nullptr,
                                 residual_row != nullptr ? residual_row + e0 : nullptr)) {
            continue;
          }
        }
        for (int64_t j = 0; j < lanes; ++j) {
          if (finite(max_x[j]) && finite(delta[j]) && finite(log_den[j])) {
            store(e0 + j, finish_window<scalar_t>(max_x[j], delta[j], log_den[j], inv_t));
          } else {
            scalar_lane(e0 + j);
          }
        }
      }
    }
  });
}

// coefficients[k][lane] for every tap of every lane: the vector loop, then the shared scalar
// window_gradient for windows whose output or statistic is not finite (special values).
// Returns whether every lane was finite (then nothing needed the scalar body).
inline bool lane_gradients(const float* taps, int64_t num_taps, int64_t num_lanes, const float* y,
                           const float* offset, const float* residual, const float* grad_y, float inv_t,
                           float* coefficients, float* variance) {
  if (variance != nullptr) {
    lanes_backward_with_variance(taps, num_taps, num_lanes, y, offset, residual, grad_y, inv_t, coefficients,
                                 variance);
  } else {
    lanes_backward(taps, num_taps, num_lanes, y, offset, residual, grad_y, inv_t, coefficients);
  }
  if (lanes_finite(y, offset, residual, num_lanes)) return true;
  for (int64_t j = 0; j < num_lanes; ++j) {
    if (finite(y[j]) && finite(offset[j]) && finite(residual[j])) continue;
    for (int64_t k = 0; k < num_taps; ++k) {
      coefficients[k * kLanes + j] =
          window_gradient(taps[k * kLanes + j], y[j], offset[j], residual[j], grad_y[j], inv_t);
    }
  }
  return false;
}

// Output T-slice tasks of the rows backward accumulate whole input slices up to this size, and a
// ring of rows beyond it (per thread; see backward_rows).
constexpr int64_t kMaxSlabBytes = 1 << 20;

// Whether the windows of dimension d are disjoint.
inline bool windows_disjoint(const Geometry& g, int d) {
  if (g.output_size[d] == 1) return true;
  if (g.adaptive) return g.input_size[d] % g.output_size[d] == 0;
  return g.stride[d] >= (g.kernel[d] - 1) * g.dilation[d] + 1;
}

inline bool windows_disjoint_everywhere(const Geometry& g) {
  for (int d = 0; d < kPoolDims; ++d) {
    if (!windows_disjoint(g, d)) return false;
  }
  return true;
}

// Whether the windows cover every input index.
inline bool windows_cover_input(const Geometry& g) {
  for (int d = 0; d < kPoolDims; ++d) {
    int64_t covered = 0;
    for (int64_t o = 0; o < g.output_size[d]; ++o) covered += window_span(g, d, o).count;
    if (covered != g.input_size[d] || (!g.adaptive && g.dilation[d] > 1 && g.kernel[d] > 1)) return false;
  }
  return true;
}

// The gradient of one row of windows that tile W (backward_rows' `tile`) into an unpadded float
// grad_input plane: the windows' y, statistics and grad_output are spread over their `tile` columns
// each (and repeated for each of the window's rows when those are one run of memory), then every
// input row of the windows is one contiguous pass (store_lane_gradients, or accumulate when windows
// overlap along T or H). Returns false, having written nothing, when a window is not finite (the
// caller's loops and the scalar body handle it).
inline bool tiled_columns(const float* plane, const Strides3& in_s, float* grad_plane, int64_t H, int64_t W,
                          const float* y_row, const float* offset_row, const float* residual_row,
                          const float* grad_row, int64_t grad_w, int64_t OW, int64_t tile, bool tiles_cover_rows,
                          const Span& st, const Span& sh, float inv_t, bool accumulate, float* grad_of_row,
                          float* spread, int64_t spread_length) {
  if (!lanes_finite(y_row, offset_row, residual_row, OW)) return false;
  if (grad_w != 1) {
    gather_lanes(grad_of_row, grad_row, OW, grad_w);
    grad_row = grad_of_row;
  }
  const bool one_run = tiles_cover_rows && (sh.count == 1 || sh.step == 1);
  const int64_t row_length = OW * tile, rows = one_run ? sh.count : 1;
  float* const spread_y = spread;
  float* const spread_offset = spread + spread_length;
  float* const spread_residual = spread + 2 * spread_length;
  float* const spread_grad = spread + 3 * spread_length;
  const float* sources[4] = {y_row, offset_row, residual_row, grad_row};
  float* const spreads[4] = {spread_y, spread_offset, spread_residual, spread_grad};
  for (int i = 0; i < 4; ++i) spread_lanes(spreads[i], sources[i], OW, tile, rows);
  // one_run: the window's rows in one run (row stride W in the input and in grad_input)
  const int64_t runs = one_run ? 1 : sh.count, run_length = rows * row_length;
  for (int64_t a = 0; a < st.count; ++a) {
    const int64_t t = st.first + a * st.step;
    for (int64_t b = 0; b < runs; ++b) {
      const int64_t h = sh.first + b * sh.step;
      const float* x = plane + t * in_s.t + h * in_s.h;
      float* grad_x = grad_plane + (t * H + h) * W;
      if (accumulate) {
        accumulate_lane_gradients(x, spread_y, spread_offset, spread_residual, spread_grad, run_length, inv_t,
                                  grad_x);
      } else {
        store_lane_gradients(x, spread_y, spread_offset, spread_residual, spread_grad, run_length, inv_t, grad_x);
      }
    }
  }
  return true;
}

// block: as forward_rows.
template <typename scalar_t>
void backward_rows(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                   const at::Tensor& offset, const at::Tensor& residual, const at::Tensor& grad_input,
                   float* grad_temperature, const Geometry& g, const Temperature<float>& temp, int64_t block) {
  const scalar_t* in = input.const_data_ptr<scalar_t>();
  const scalar_t* grad = grad_output.const_data_ptr<scalar_t>();
  const scalar_t* out = output.const_data_ptr<scalar_t>();
  const float* offset_all = offset.const_data_ptr<float>();
  const float* residual_all = residual.const_data_ptr<float>();
  scalar_t* grad_in = grad_input.mutable_data_ptr<scalar_t>();
  const Strides3 in_s = {input.stride(2), input.stride(3), input.stride(4)};
  const int64_t T = g.input_size[0], H = g.input_size[1], W = g.input_size[2];
  const int64_t OT = g.output_size[0], OH = g.output_size[1], OW = g.output_size[2];
  const int64_t row_channels = block == 1 ? input.size(1) : 1;  // as forward_rows
  const int64_t planes = input.size(0) * row_channels;
  const int64_t plane_size = T * H * W * block;  // grad_input is allocated contiguous in the input's layout
  const int64_t stride_w = g.stride[2];
  const int64_t outputs_per_chunk = kLanes / block;
  const Interior interior = interior_along_w(g);
  const bool all_interior = block == 1 && g.padding[2] == 0 && interior.begin == 0 && interior.end == OW;
  // disjoint windows that cover the input (k = s): each input element gets one window's gradient
  const bool each_input_once = windows_disjoint_everywhere(g) && windows_cover_input(g);
  // Windows that tile W from column 0 (stride = kernel, no padding or dilation): each input column
  // lies in one window, `tile` columns wide, so an unpadded float row's gradient is one contiguous
  // pass over the row with its windows' statistics spread over their columns (tiled_columns below),
  // with no tap buffers and no strided loads or stores. 0 when W is not tiled (or the input's
  // columns are not contiguous, or dT is wanted too: its per-window sums need the tap loops).
  int64_t tile = 0;
  if (all_interior && std::is_same_v<scalar_t, float> && in_s.w == 1 && grad_temperature == nullptr) {
    tile = window_span(g, 2, 0).count;
    for (int64_t ow = 0; ow < OW && tile > 0; ++ow) {
      const Span sw = window_span(g, 2, ow);
      if (sw.first != ow * tile || sw.count != tile || (tile > 1 && sw.step != 1)) tile = 0;
    }
  }
  // With tile columns covering the whole row and adjacent input rows, the rows of a window along
  // H are one run of memory: one pass over all of them.
  const bool tiles_cover_rows = tile > 0 && OW * tile == W && in_s.h == W;
  int64_t window_rows_max = 1;
  for (int64_t oh = 0; oh < OH; ++oh) window_rows_max = std::max(window_rows_max, window_span(g, 1, oh).count);
  const int64_t spread_length = tiles_cover_rows ? window_rows_max * W : OW * tile;
  // A task is a plane, or one output T-slice of a plane when windows along T are disjoint (each
  // input T-slice then belongs to one output slice), so that few planes (N = 1, channels_last) still
  // split over threads. Task (p, ot) owns input slices [slice_begin(ot), slice_begin(ot + 1)).
  const int64_t t_tasks = windows_disjoint(g, 0) ? OT : 1;
  auto slice_begin = [&](int64_t ot) -> int64_t {
    if (t_tasks == 1) return ot == 0 ? 0 : T;
    if (ot == 0) return 0;
    if (ot == OT) return T;
    return std::clamp<int64_t>(ot * g.stride[0] - g.padding[0], 0, T);
  };
  at::parallel_for(0, planes * t_tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> taps(static_cast<size_t>(kernel_taps(g) * kLanes));
    std::vector<float> coefficients(taps.size());
    std::vector<PhasedRow> window_rows(static_cast<size_t>(g.kernel[0] * g.kernel[1]), PhasedRow(g, block));
    const std::vector<int64_t> tap_offsets = kernel_tap_offsets(window_rows[0], g);
    std::vector<const float*> tap_runs(taps.size() / kLanes);
    std::vector<float*> gradient_runs(taps.size() / kLanes);
    // The accumulator holds each input row as its padded, phase-split copy (the layout of PhasedRow),
    // so that a tap's gradients for 64 lanes are one contiguous add; padded positions collect
    // zeros (and the special values of -inf padding taps) and are dropped when a row is written.
    // It keeps only the input rows that windows still reach, in a ring: row (t, h) in slot
    // (t - first task slice or t % slab_slices, h % ring_rows), written to grad_input and cleared as soon as the
    // windows have moved past it.
    //   - Tasks of one output T-slice (windows disjoint along T) whose input slices are larger than
    //     kMaxSlabBytes: the task's few input slices, and of each only the rows the current output
    //     row's windows reach (kernel_h, dilated), written as the windows move down: O(kernel_h * W)
    //     floats (times C for channels_last) per thread, whatever the frame size.
    //   - Otherwise: the T-slices windows still reach, all H rows of each, written when the windows
    //     move past a slice: O(kernel_t * H * W) floats, at most kMaxSlabBytes per slice for output
    //     T-slice tasks. Measured ~8% faster than the ring of rows on stems (one write burst per
    //     slice).
    const int64_t phase_length = window_rows[0].phase_length, row_length = phase_length * stride_w * block;
    const bool ring_of_rows = t_tasks > 1 && H * row_length * int64_t{sizeof(float)} > kMaxSlabBytes;
    const int64_t ring_rows = ring_of_rows ? std::min(H, (g.kernel[1] - 1) * g.dilation[1] + 1) : H;
    const int64_t slab_slices = std::min(T, (g.kernel[0] - 1) * g.dilation[0] + 1);  // whole planes
    // slot offsets of rows and (whole planes) slices, without a division in the loops
    std::vector<int64_t> row_slot(static_cast<size_t>(H)), slice_slot(static_cast<size_t>(T));
    for (int64_t h = 0; h < H; ++h) row_slot[h] = h % ring_rows * row_length;
    for (int64_t t = 0; t < T; ++t) slice_slot[t] = t % slab_slices * ring_rows * row_length;
    std::vector<float> acc;
    float y[kLanes], off[kLanes], res[kLanes], gy[kLanes];
    // tiled_columns: a row's grad_output, then y, offset, residual and grad_output spread over the columns
    std::vector<float> grad_of_row(static_cast<size_t>(tile > 0 ? OW : 0));
    std::vector<float> spread(static_cast<size_t>(tile > 0 ? 4 * spread_length : 0));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t p = task / t_tasks, ot_begin = t_tasks == 1 ? 0 : task % t_tasks;
      const int64_t ot_end = t_tasks == 1 ? OT : ot_begin + 1;
      const int64_t slices_begin = slice_begin(ot_begin), slices_end = slice_begin(ot_end);
      const int64_t ring_slices = std::max<int64_t>(1, ring_of_rows ? slices_end - slices_begin : slab_slices);
      const int64_t n = p / row_channels, c = p % row_channels;
      const float inv_t = temp.inverse(c);
      const scalar_t* plane = in + n * input.stride(0) + c * input.stride(1);
      // Unpadded float rows accumulate straight into grad_input (input layout, stride-step adds).
      const bool direct = all_interior && std::is_same_v<scalar_t, float>;
      float* direct_plane = direct ? reinterpret_cast<float*>(grad_in + p * plane_size) : nullptr;
      if (direct && each_input_once) {
        // every element is stored once below
      } else if (direct) {
        std::fill(direct_plane + slices_begin * H * W, direct_plane + slices_end * H * W, 0.0f);
      } else {
        acc.assign(static_cast<size_t>(ring_slices * ring_rows * row_length + kRunSlack), 0.0f);
      }
      // where the gradient of input row (t, h) accumulates
      auto acc_row_of = [&](int64_t t, int64_t h) {
        if (direct) return direct_plane + (t * H + h) * W;
        return acc.data() + (ring_of_rows ? (t - slices_begin) * ring_rows * row_length : slice_slot[t]) + row_slot[h];
      };
      scalar_t* dst = grad_in + p * plane_size;
      auto write_row = [&](int64_t t, int64_t h) {  // into grad_input, then cleared for the next row
        scalar_t* dst_row = dst + (t * H + h) * W * block;
        float* acc_row = acc_row_of(t, h);
        window_rows[0].unload(dst_row, acc_row);
        std::fill(acc_row, acc_row + row_length, 0.0f);
      };
      int64_t written = slices_begin;  // whole planes: this task's input slices [slices_begin, written) are done
      auto write_slices_before = [&](int64_t t_end) {
        for (; written < t_end; ++written) {
          for (int64_t h = 0; h < H; ++h) write_row(written, h);
        }
      };
      int64_t rows_written = 0;  // output T-slice tasks: rows [0, rows_written) of every task slice are done
      auto write_rows_before = [&](int64_t h_end) {
        for (; rows_written < h_end; ++rows_written) {
          for (int64_t t = slices_begin; t < slices_end; ++t) write_row(t, rows_written);
        }
      };
      for (int64_t ot = ot_begin; ot < ot_end; ++ot) {
        const Span st_ot = window_span(g, 0, ot);
        // slices before this window's first are complete (window starts only move forward)
        if (!direct && !ring_of_rows && st_ot.count > 0) write_slices_before(std::min(st_ot.first, T));
        for (int64_t oh = 0; oh < OH; ++oh) {
          const Span st = st_ot, sh = window_span(g, 1, oh);
          // output and statistics share the layout of their rows; grad_output may be any strided view
          const int64_t row = (p * OT + ot) * OH + oh;
          const scalar_t* grad_row = grad + n * grad_output.stride(0) + c * grad_output.stride(1) +
                                     ot * grad_output.stride(2) + oh * grad_output.stride(3);
          const int64_t grad_w = grad_output.stride(4), grad_c = grad_output.stride(1);
          // rows above this window are complete (window starts only move down)
          if (!direct && ring_of_rows && sh.count > 0) write_rows_before(std::min(sh.first, H));
          if (!(st.count > 0 && sh.count > 0)) continue;  // empty windows (dilation) have no inputs
          if constexpr (std::is_same_v<scalar_t, float>) {
            if (tile > 0 && tiled_columns(plane, in_s, direct_plane, H, W, out + row * OW, offset_all + row * OW,
                                          residual_all + row * OW, grad_row, grad_w, OW, tile, tiles_cover_rows,
                                          st, sh, inv_t, !each_input_once, grad_of_row.data(), spread.data(),
                                          spread_length)) {
              continue;
            }
          }
          int64_t r = 0;
          for (int64_t a = 0; a < st.count; ++a) {
            for (int64_t b = 0; b < sh.count; ++b, ++r) {
              if (!all_interior) {
                window_rows[r].load(plane + (st.first + a * st.step) * in_s.t + (sh.first + b * sh.step) * in_s.h,
                                    in_s.w);
              }
            }
          }
          for (int64_t ow0 = 0; ow0 < OW; ow0 += outputs_per_chunk) {
            const int64_t outputs = std::min(outputs_per_chunk, OW - ow0), lanes = outputs * block;
            const int64_t e0 = row * OW * block + ow0 * block;  // first lane's element in output-shaped tensors
            // whole-run copies (the compiler cannot vectorise one loop over four possibly aliasing arrays)
            gather_lanes(y, out + e0, lanes, 1);
            std::copy(offset_all + e0, offset_all + e0 + lanes, off);
            std::copy(residual_all + e0, residual_all + e0 + lanes, res);
            if (block == 1 || (grad_c == 1 && grad_w == block)) {  // a strided run along W, or one block run
              gather_lanes(gy, grad_row + ow0 * grad_w, lanes, block == 1 ? grad_w : 1);
            } else {
              for (int64_t o = 0; o < outputs; ++o) {
                gather_lanes(gy + o * block, grad_row + (ow0 + o) * grad_w, block, grad_c);
              }
            }
            // the lane loops run whole blocks of 16 lanes or fewer (a divisor of 16): the lanes up to
            // the next multiple of 16 get defined values
            for (int64_t j = lanes; j < (lanes + 15) / 16 * 16; ++j) y[j] = off[j] = res[j] = gy[j] = 0.0f;
            float variance[kLanes];  // for g * dy/dT of each window, from the same weights
            float* const variance_out = grad_temperature != nullptr ? variance : nullptr;
            // Finite windows over phase-split rows (the common case): one loop reads the taps from
            // the rows and adds the gradients into the accumulator rows, with no buffer in between.
            const bool fused = !all_interior && lanes_finite(y, off, res, lanes);
            bool all_finite = fused;
            int64_t k = 0;
            if (fused) {
              for (int64_t a = 0; a < st.count; ++a) {
                for (int64_t b = 0; b < sh.count; ++b) {
                  const float* taps_row = window_rows[a * sh.count + b].tap(0, ow0);
                  float* acc_run = acc_row_of(st.first + a * st.step, sh.first + b * sh.step) + ow0 * block;
                  for (int64_t kw = 0; kw < g.kernel[2]; ++kw, ++k) {
                    tap_runs[k] = taps_row + tap_offsets[kw];
                    gradient_runs[k] = acc_run + tap_offsets[kw];
                  }
                }
              }
              lanes_backward_runs(tap_runs.data(), k, lanes, y, off, res, gy, inv_t, gradient_runs.data(),
                                  variance_out);
            } else {
              for (int64_t a = 0; a < st.count; ++a) {
                for (int64_t b = 0; b < sh.count; ++b) {
                  const scalar_t* src_row =
                      plane + (st.first + a * st.step) * in_s.t + (sh.first + b * sh.step) * in_s.h;
                  // lanes past `lanes` keep values of earlier chunks: computed, never scattered
                  if (!all_interior) {
                    copy_runs(taps.data() + k * kLanes, kLanes, window_rows[a * sh.count + b].tap(0, ow0),
                              tap_offsets.data(), g.kernel[2], lanes);
                    k += g.kernel[2];
                    continue;
                  }
                  gather_row_taps(taps.data() + k * kLanes, src_row, in_s.w, ow0, lanes, g);  // no padding
                  k += g.kernel[2];
                }
              }
              all_finite = lane_gradients(taps.data(), k, lanes, y, off, res, gy, inv_t, coefficients.data(),
                                          variance_out);
            }
            if (grad_temperature != nullptr) {
              float* grad_t_row = grad_temperature + e0;
              // temperature_gradient(-variance, g), in a loop that vectorises
              for (int64_t j = 0; j < lanes; ++j) grad_t_row[j] = variance[j] == 0.0f ? 0.0f : -variance[j] * gy[j];
              for (int64_t j = 0; j < lanes && !all_finite; ++j) {  // special values: the shared body
                if (finite(y[j]) && finite(off[j]) && finite(res[j])) continue;
                grad_t_row[j] = temperature_gradient(
                    temperature_derivative_window<float>(plane + (j % block) * input.stride(1), in_s, st, sh,
                                                         window_span(g, 2, ow0 + j / block), y[j], off[j], res[j],
                                                         inv_t),
                    gy[j]);
              }
            }
            if (fused) continue;  // the gradients are in the accumulator already
            k = 0;
            for (int64_t a = 0; a < st.count; ++a) {
              for (int64_t b = 0; b < sh.count; ++b) {
                float* acc_row = acc_row_of(st.first + a * st.step, sh.first + b * sh.step);
                if (direct) {
                  scatter_taps(acc_row + ow0 * stride_w, coefficients.data() + k * kLanes, kLanes, g.kernel[2],
                               lanes, stride_w, g.dilation[2], !each_input_once);
                } else {
                  add_runs(acc_row + ow0 * block, tap_offsets.data(), coefficients.data() + k * kLanes, kLanes,
                           g.kernel[2], lanes);
                }
                k += g.kernel[2];
              }
            }
          }
        }
      }
      if (!direct && ring_of_rows) write_rows_before(H);
      if (!direct && !ring_of_rows) write_slices_before(slices_end);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Channel lanes: all channels of an output position share its window, so any geometry (edges,
// adaptive) is regular across channels. Used for channels_last_3d inputs (channel stride 1) and for
// contiguous inputs whose rows are too short for row lanes (e.g. head pools with a 1x1 output).

struct Strides5 {
  int64_t n, c, t, h, w;
};

inline Strides5 strides5(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3), t.stride(4)};
}

template <typename scalar_t>
void forward_channel_lanes(const at::Tensor& input, const at::Tensor& output, const at::Tensor& offset,
                           const at::Tensor& residual, const Geometry& g, float inv_t, int64_t max_taps) {
  const scalar_t* in = input.const_data_ptr<scalar_t>();
  scalar_t* out = output.mutable_data_ptr<scalar_t>();
  // the statistics are undefined for an inference forward (nothing will differentiate it)
  float* offset_out = offset.defined() ? offset.mutable_data_ptr<float>() : nullptr;
  float* residual_out = residual.defined() ? residual.mutable_data_ptr<float>() : nullptr;
  const Strides5 is = strides5(input), os = strides5(output);
  const Strides3 in_s = {is.t, is.h, is.w};
  const int64_t C = input.size(1), OT = g.output_size[0], OH = g.output_size[1], OW = g.output_size[2];
  const int64_t positions = input.size(0) * OT * OH * OW;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, C * max_taps));
  // grouping positions needs windows of one tap pattern along W: the interior of a strided pool
  const int64_t positions_per_group = g.adaptive || C > kLanes / 2 ? 1 : kLanes / C;
  const Interior interior = g.adaptive ? Interior{0, 0} : interior_along_w(g);
  at::parallel_for(0, positions, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> taps(static_cast<size_t>(max_taps * kLanes));
    float max_x[kLanes], delta[kLanes];
    // an inference forward (no statistics) skips the log-normaliser: log_den stays 0, which the output ignores
    float log_den[kLanes] = {};
    float* const log_den_out = offset_out != nullptr ? log_den : nullptr;
    for (int64_t pos = begin; pos < end; ++pos) {
      const int64_t ow = pos % OW, oh = (pos / OW) % OH, ot = (pos / (OW * OH)) % OT, n = pos / (OW * OH * OT);
      const Span st = window_span(g, 0, ot), sh = window_span(g, 1, oh), sw = window_span(g, 2, ow);
      const int64_t out_offset = n * os.n + ot * os.t + oh * os.h + ow * os.w;
      const int64_t num_taps = st.count * sh.count * sw.count;
      // Few channels: the lanes hold `group` neighbouring interior positions along W, C lanes each,
      // so that the vectors stay full (their windows have the same taps, shifted by the stride).
      const int64_t group = std::min({positions_per_group, interior.end - ow, end - pos});
      if (group >= 2 && ow >= interior.begin && num_taps > 0) {
        const int64_t lanes = group * C;
        int64_t k = 0;
        for (int64_t a = 0; a < st.count; ++a) {
          for (int64_t b = 0; b < sh.count; ++b) {
            for (int64_t cw = 0; cw < sw.count; ++cw, ++k) {
              const scalar_t* src = in + n * is.n + (st.first + a * st.step) * is.t +
                                    (sh.first + b * sh.step) * is.h + (sw.first + cw * sw.step) * is.w;
              for (int64_t q = 0; q < group; ++q) {
                gather_lanes(taps.data() + k * kLanes + q * C, src + q * g.stride[2] * is.w, C, is.c);
              }
            }
          }
        }
        lanes_forward(taps.data(), k, lanes, inv_t, max_x, delta, log_den_out);
        for (int64_t q = 0; q < group; ++q) {
          const int64_t position_offset = out_offset + q * os.w;
          const Span sw_q = window_span(g, 2, ow + q);
          for (int64_t c = 0; c < C; ++c) {
            const int64_t j = q * C + c;
            const WindowResult<float> r =
                finite(max_x[j]) && finite(delta[j]) && finite(log_den[j])
                    ? finish_window<scalar_t>(max_x[j], delta[j], log_den[j], inv_t)
                    : forward_window<scalar_t, float>(in + n * is.n + c * is.c, in_s, st, sh, sw_q, inv_t);
            out[position_offset + c * os.c] = static_cast<scalar_t>(r.output);
            if (offset_out == nullptr) continue;
            offset_out[position_offset + c * os.c] = r.log_weight_offset;
            residual_out[position_offset + c * os.c] = r.output_residual;
          }
        }
        pos += group - 1;
        continue;
      }
      for (int64_t c0 = 0; c0 < C; c0 += kLanes) {
        const int64_t lanes = std::min(kLanes, C - c0);
        auto store = [&](int64_t j, const WindowResult<float>& r) {
          out[out_offset + (c0 + j) * os.c] = static_cast<scalar_t>(r.output);
          if (offset_out == nullptr) return;
          offset_out[out_offset + (c0 + j) * os.c] = r.log_weight_offset;
          residual_out[out_offset + (c0 + j) * os.c] = r.output_residual;
        };
        auto scalar_lane = [&](int64_t j) {
          store(j, forward_window<scalar_t, float>(in + n * is.n + (c0 + j) * is.c, in_s, st, sh, sw, inv_t));
        };
        if (num_taps == 0) {  // empty window (dilation): -inf, as the scalar body defines it
          for (int64_t j = 0; j < lanes; ++j) scalar_lane(j);
          continue;
        }
        int64_t k = 0;
        for (int64_t a = 0; a < st.count; ++a) {
          for (int64_t b = 0; b < sh.count; ++b) {
            for (int64_t cw = 0; cw < sw.count; ++cw, ++k) {
              const scalar_t* src = in + n * is.n + (st.first + a * st.step) * is.t +
                                    (sh.first + b * sh.step) * is.h + (sw.first + cw * sw.step) * is.w + c0 * is.c;
              gather_lanes(taps.data() + k * kLanes, src, lanes, is.c);
            }
          }
        }
        lanes_forward(taps.data(), k, lanes, inv_t, max_x, delta, log_den_out);
        for (int64_t j = 0; j < lanes; ++j) {
          if (finite(max_x[j]) && finite(delta[j]) && finite(log_den[j])) {
            store(j, finish_window<scalar_t>(max_x[j], delta[j], log_den[j], inv_t));
          } else {
            scalar_lane(j);
          }
        }
      }
    }
  });
}

// For each input index along one dimension, the outputs whose window holds it (compressed rows:
// outputs[begin[i] .. begin[i + 1])), computed once per call so the gather does no integer division.
struct CoveringOutputs {
  std::vector<int64_t> begin, outputs;
  CoveringOutputs(const Geometry& g, int d) : begin(static_cast<size_t>(g.input_size[d] + 1), 0) {
    for (int64_t i = 0; i < g.input_size[d]; ++i) {
      int64_t lo, hi;
      covering_outputs(g, d, i, &lo, &hi);
      for (int64_t o = lo; o < hi; ++o) {
        if (span_contains(window_span(g, d, o), i)) outputs.push_back(o);
      }
      begin[i + 1] = static_cast<int64_t>(outputs.size());
    }
  }
};

// Backward with channel lanes: a gather. Each task takes input positions (n, t, h, w) and, for a
// block of up to kLanes channels, sums the gradient of every window that covers the position, in a
// fixed order: no accumulator beyond kLanes floats, any number of threads whatever N and C, and
// bitwise reproducible. Lanes of windows with special values use the shared window_gradient.
template <typename scalar_t>
void backward_channel_lanes(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                            const at::Tensor& offset, const at::Tensor& residual, const at::Tensor& grad_input,
                            const Geometry& g, float inv_t) {
  const scalar_t* in = input.const_data_ptr<scalar_t>();
  const scalar_t* grad = grad_output.const_data_ptr<scalar_t>();
  const scalar_t* out = output.const_data_ptr<scalar_t>();
  const float* offset_all = offset.const_data_ptr<float>();
  const float* residual_all = residual.const_data_ptr<float>();
  scalar_t* grad_in = grad_input.mutable_data_ptr<scalar_t>();
  const Strides5 is = strides5(input), os = strides5(output), gis = strides5(grad_input);
  const Strides5 offs = strides5(offset), ress = strides5(residual), gos = strides5(grad_output);
  const int64_t C = input.size(1), T = g.input_size[0], H = g.input_size[1], W = g.input_size[2];
  const CoveringOutputs cover_t(g, 0), cover_h(g, 1), cover_w(g, 2);
  const int64_t positions = input.size(0) * T * H * W;
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, C));
  // float channels-last tensors are read in place (channel stride 1); others are staged as floats
  const bool in_place = std::is_same_v<scalar_t, float> && is.c == 1 && os.c == 1 && offs.c == 1 && ress.c == 1 &&
                        gos.c == 1 && gis.c == 1;
  at::parallel_for(0, positions, grain, [&](int64_t begin, int64_t end) {
    float x_buf[kLanes], y_buf[kLanes], off_buf[kLanes], res_buf[kLanes], gy_buf[kLanes], acc[kLanes];
    constexpr int64_t kWindowBatch = 32;
    const float *y_list[kWindowBatch], *off_list[kWindowBatch], *res_list[kWindowBatch], *gy_list[kWindowBatch];
    for (int64_t pos = begin; pos < end; ++pos) {
      const int64_t w = pos % W, h = (pos / W) % H, t = (pos / (W * H)) % T, n = pos / (W * H * T);
      for (int64_t c0 = 0; c0 < C; c0 += kLanes) {
        const int64_t lanes = std::min(kLanes, C - c0);
        const scalar_t* x_ptr = in + n * is.n + t * is.t + h * is.h + w * is.w + c0 * is.c;
        const float* x = x_buf;
        if constexpr (std::is_same_v<scalar_t, float>) {
          if (in_place) x = x_ptr;
        }
        if (!in_place) {
          for (int64_t j = 0; j < lanes; ++j) x_buf[j] = to_float(x_ptr[j * is.c]);
        }
        for (int64_t j = 0; j < lanes; ++j) acc[j] = 0.0f;
        if constexpr (std::is_same_v<scalar_t, float>) {
          if (in_place) {  // one call for all covering windows, in the same order as below
            int64_t count = 0;
            auto flush = [&] {
              accumulate_windows(x, y_list, off_list, res_list, gy_list, count, lanes, inv_t, acc);
              count = 0;
            };
            for (int64_t a = cover_t.begin[t]; a < cover_t.begin[t + 1]; ++a) {
              const int64_t ot = cover_t.outputs[a];
              for (int64_t b = cover_h.begin[h]; b < cover_h.begin[h + 1]; ++b) {
                const int64_t oh = cover_h.outputs[b];
                const int64_t base_y = n * os.n + ot * os.t + oh * os.h + c0;
                const int64_t base_off = n * offs.n + ot * offs.t + oh * offs.h + c0;
                const int64_t base_res = n * ress.n + ot * ress.t + oh * ress.h + c0;
                const int64_t base_g = n * gos.n + ot * gos.t + oh * gos.h + c0;
                for (int64_t k = cover_w.begin[w]; k < cover_w.begin[w + 1]; ++k) {
                  const int64_t ow = cover_w.outputs[k];
                  y_list[count] = out + base_y + ow * os.w;
                  off_list[count] = offset_all + base_off + ow * offs.w;
                  res_list[count] = residual_all + base_res + ow * ress.w;
                  gy_list[count] = grad + base_g + ow * gos.w;
                  if (++count == kWindowBatch) flush();
                }
              }
            }
            if (count > 0) flush();
            float* dst = grad_in + n * gis.n + t * gis.t + h * gis.h + w * gis.w + c0;
            for (int64_t j = 0; j < lanes; ++j) dst[j] = acc[j];
            continue;
          }
        }
        for (int64_t a = cover_t.begin[t]; a < cover_t.begin[t + 1]; ++a) {
          const int64_t ot = cover_t.outputs[a];
          for (int64_t b = cover_h.begin[h]; b < cover_h.begin[h + 1]; ++b) {
            const int64_t oh = cover_h.outputs[b];
            for (int64_t k = cover_w.begin[w]; k < cover_w.begin[w + 1]; ++k) {
              const int64_t ow = cover_w.outputs[k];
              const scalar_t* y_ptr = out + n * os.n + ot * os.t + oh * os.h + ow * os.w + c0 * os.c;
              const float* off = offset_all + n * offs.n + ot * offs.t + oh * offs.h + ow * offs.w + c0 * offs.c;
              const float* res = residual_all + n * ress.n + ot * ress.t + oh * ress.h + ow * ress.w + c0 * ress.c;
              const scalar_t* g_ptr = grad + n * gos.n + ot * gos.t + oh * gos.h + ow * gos.w + c0 * gos.c;
              const float *y = y_buf, *gy = gy_buf;
              if constexpr (std::is_same_v<scalar_t, float>) {
                if (in_place) y = y_ptr, gy = g_ptr;
              }
              if (!in_place) {
                for (int64_t j = 0; j < lanes; ++j) {
                  y_buf[j] = to_float(y_ptr[j * os.c]);
                  off_buf[j] = off[j * offs.c];
                  res_buf[j] = res[j * ress.c];
                  gy_buf[j] = to_float(g_ptr[j * gos.c]);
                }
                off = off_buf, res = res_buf;
              }
              if (lanes_finite(y, off, res, lanes)) {
                accumulate_lane_gradients(x, y, off, res, gy, lanes, inv_t, acc);
              } else {
                for (int64_t j = 0; j < lanes; ++j) acc[j] += window_gradient(x[j], y[j], off[j], res[j], gy[j], inv_t);
              }
            }
          }
        }
        scalar_t* dst = grad_in + n * gis.n + t * gis.t + h * gis.h + w * gis.w + c0 * gis.c;
        for (int64_t j = 0; j < lanes; ++j) dst[j * gis.c] = static_cast<scalar_t>(acc[j]);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Window reduction: one task per large window (global head pools, adaptive pools to small outputs).
// Used for NCTHW inputs with unit stride along W and windows that do not overlap, so that a window
// is a few long contiguous segments (whole rows merge into one when the window spans them) and the
// backward writes each gradient element once, with no accumulator.

// A window as `outer` x `inner` contiguous segments of `length` elements.
struct Segments {
  int64_t first;  // element offset of the first segment in its plane
  int64_t outer_count, outer_step, inner_count, inner_step, length;
};

inline Segments window_segments(Strides3 s, Span st, Span sh, Span sw, int64_t H, int64_t W) {
  Segments seg{st.first * s.t + sh.first * s.h + sw.first, st.count, st.step * s.t, sh.count, sh.step * s.h,
               sw.count};
  // merge whole rows (and then whole planes) that lie back to back in memory
  if (sw.first == 0 && sw.count == W && s.h == W && (sh.step == 1 || sh.count == 1)) {
    seg.length *= sh.count;
    seg.inner_count = 1;
    if (sh.first == 0 && sh.count == H && s.t == H * W && (st.step == 1 || st.count == 1)) {
      seg.length *= st.count;
      seg.outer_count = 1;
    }
  }
  return seg;
}

// The window of output element o (outputs contiguous NCTHW): its plane, index and geometry. A global
// pool has one window per plane, the same for all: its spans and segments are computed once (the
// divisions of a window's geometry cost a fifth of a 392-tap head window).
struct ReductionWindow {
  int64_t plane_index, ot, oh, ow;
  Span st, sh, sw;
  Segments seg;
};

class ReductionWindows {
 public:
  ReductionWindows(const Geometry& g, Strides3 in_s)
      : g_(g),
        in_s_(in_s),
        global_(g.output_size[0] == 1 && g.output_size[1] == 1 && g.output_size[2] == 1),
        first_(compute(0)) {}

  ReductionWindow at(int64_t o) const {
    if (!global_) return compute(o);
    ReductionWindow window = first_;
    window.plane_index = o;
    return window;
  }

 private:
  ReductionWindow compute(int64_t o) const {
    const int64_t OT = g_.output_size[0], OH = g_.output_size[1], OW = g_.output_size[2];
    const int64_t ow = o % OW, oh = (o / OW) % OH, ot = (o / (OW * OH)) % OT;
    const Span st = window_span(g_, 0, ot), sh = window_span(g_, 1, oh), sw = window_span(g_, 2, ow);
    return {o / (OW * OH * OT), ot, oh, ow, st, sh, sw,
            window_segments(in_s_, st, sh, sw, g_.input_size[1], g_.input_size[2])};
  }

  const Geometry& g_;
  Strides3 in_s_;
  bool global_;
  ReductionWindow first_;
};

// Segments are converted to float in chunks of this many elements (half and bfloat16 inputs).
constexpr int64_t kSegmentChunk = 512;

// Asks for the memory that follows a window, as long as the window's own extent (at most 16 KB):
// the next window when windows are consecutive planes (global pools). The loads of the next
// window then overlap this window's exp pass, which reads only what it has cached.
template <typename scalar_t>
inline void prefetch_after(const scalar_t* plane, const Segments& seg) {
  const scalar_t* last = plane + seg.first + (seg.outer_count - 1) * seg.outer_step +
                         (seg.inner_count - 1) * seg.inner_step + seg.length;
  const int64_t extent = std::min<int64_t>(16384, (last - (plane + seg.first)) * sizeof(scalar_t));
  const char* next = reinterpret_cast<const char*>(last);
  for (int64_t offset = 0; offset < extent; offset += 64) __builtin_prefetch(next + offset);
}

template <typename scalar_t, typename Visit>
inline void for_each_chunk(const scalar_t* plane, const Segments& seg, float* buffer, const Visit& visit) {
  for (int64_t a = 0; a < seg.outer_count; ++a) {
    for (int64_t b = 0; b < seg.inner_count; ++b) {
      const int64_t start = seg.first + a * seg.outer_step + b * seg.inner_step;
      for (int64_t i = 0; i < seg.length; i += kSegmentChunk) {
        const int64_t n = std::min(kSegmentChunk, seg.length - i);
        if constexpr (std::is_same_v<scalar_t, float>) {
          visit(plane + start + i, n, start + i);
        } else {
          for (int64_t j = 0; j < n; ++j) buffer[j] = static_cast<float>(plane[start + i + j]);
          visit(static_cast<const float*>(buffer), n, start + i);
        }
      }
    }
  }
}

template <typename scalar_t>
void forward_windows(const at::Tensor& input, const at::Tensor& output, const at::Tensor& offset,
                     const at::Tensor& residual, const Geometry& g, const Temperature<float>& temp) {
  const scalar_t* in = input.const_data_ptr<scalar_t>();
  scalar_t* out = output.mutable_data_ptr<scalar_t>();
  // the statistics are undefined for an inference forward (nothing will differentiate it)
  float* offset_out = offset.defined() ? offset.mutable_data_ptr<float>() : nullptr;
  float* residual_out = residual.defined() ? residual.mutable_data_ptr<float>() : nullptr;
  const Strides3 in_s = {input.stride(2), input.stride(3), input.stride(4)};
  const int64_t C = output.size(1), OT = g.output_size[0], OH = g.output_size[1], OW = g.output_size[2];
  const int64_t windows = output.size(0) * C * OT * OH * OW;  // output and statistics: contiguous NCTHW
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, max_window_taps(g)));
  const ReductionWindows reduction_windows(g, in_s);
  at::parallel_for(0, windows, grain, [&](int64_t begin, int64_t end) {
    float buffer[kSegmentChunk];
    for (int64_t o = begin; o < end; ++o) {
      const ReductionWindow window = reduction_windows.at(o);
      const int64_t plane_index = window.plane_index;
      const scalar_t* plane = in + (plane_index / C) * input.stride(0) + (plane_index % C) * input.stride(1);
      const float inv_t = temp.inverse(plane_index % C);
      const Span st = window.st, sh = window.sh, sw = window.sw;
      const Segments& seg = window.seg;
      float max_x = -std::numeric_limits<float>::infinity();
      for_each_chunk(plane, seg, buffer, [&](const float* x, int64_t n, int64_t) { max_x = segment_max(x, n, max_x); });
      prefetch_after(plane, seg);
      float denominator = 0.0f, numerator = 0.0f;
      if (finite(max_x)) {
        for_each_chunk(plane, seg, buffer, [&](const float* x, int64_t n, int64_t) {
          segment_weight_sums(x, n, max_x, inv_t, &denominator, &numerator);
        });
      }
      // the normaliser is at least the max's weight 1, so finite unless NaN; an inference forward
      // needs no log (its output is max + delta)
      const float delta = numerator / denominator;
      const float log_den = offset_out != nullptr && finite(denominator) ? log_at_least_one(denominator) : 0.0f;
      // NaN, infinite and empty windows: the shared scalar body defines them
      const WindowResult<float> r = finite(max_x) && finite(delta) && finite(denominator)
                                        ? finish_window<scalar_t>(max_x, delta, log_den, inv_t)
                                        : forward_window<scalar_t, float>(plane, in_s, st, sh, sw, inv_t);
      out[o] = static_cast<scalar_t>(r.output);
      if (offset_out == nullptr) continue;
      offset_out[o] = r.log_weight_offset;
      residual_out[o] = r.output_residual;
    }
  });
}


template <typename scalar_t>
void backward_windows(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                      const at::Tensor& offset, const at::Tensor& residual, const at::Tensor& grad_input,
                      float* grad_temperature, const Geometry& g, const Temperature<float>& temp) {
  const scalar_t* in = input.const_data_ptr<scalar_t>();
  const scalar_t* grad = grad_output.const_data_ptr<scalar_t>();
  const scalar_t* out = output.const_data_ptr<scalar_t>();
  const float* offset_all = offset.const_data_ptr<float>();
  const float* residual_all = residual.const_data_ptr<float>();
  scalar_t* grad_in = grad_input.mutable_data_ptr<scalar_t>();
  const Strides3 in_s = {input.stride(2), input.stride(3), input.stride(4)};
  const int64_t C = output.size(1), OT = g.output_size[0], OH = g.output_size[1], OW = g.output_size[2];
  const int64_t T = g.input_size[0], H = g.input_size[1], W = g.input_size[2];
  const Strides3 grad_in_s = {H * W, W, 1};  // grad_input is allocated contiguous NCTHW
  if (!windows_cover_input(g)) grad_input.zero_();  // inputs outside every window get 0
  const int64_t windows = output.size(0) * C * OT * OH * OW;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, max_window_taps(g)));
  const ReductionWindows reduction_windows(g, in_s);
  at::parallel_for(0, windows, grain, [&](int64_t begin, int64_t end) {
    float buffer[kSegmentChunk], gradients[kSegmentChunk];
    for (int64_t o = begin; o < end; ++o) {
      const ReductionWindow window = reduction_windows.at(o);
      const int64_t plane_index = window.plane_index, ot = window.ot, oh = window.oh, ow = window.ow;
      const int64_t n = plane_index / C, c = plane_index % C;
      const float inv_t = temp.inverse(c);
      const scalar_t* plane = in + n * input.stride(0) + c * input.stride(1);
      scalar_t* grad_plane = grad_in + plane_index * T * H * W;
      const Span st = window.st, sh = window.sh, sw = window.sw;
      const float y = to_float(out[o]), off = offset_all[o], res = residual_all[o];
      const float gy = to_float(grad[n * grad_output.stride(0) + c * grad_output.stride(1) +
                                     ot * grad_output.stride(2) + oh * grad_output.stride(3) +
                                     ow * grad_output.stride(4)]);
      if (!(finite(y) && finite(off) && finite(res))) {  // special values: the shared window_gradient
        for (int64_t a = 0; a < st.count; ++a) {
          for (int64_t b = 0; b < sh.count; ++b) {
            for (int64_t k = 0; k < sw.count; ++k) {
              const int64_t t = st.first + a * st.step, h = sh.first + b * sh.step, w = sw.first + k * sw.step;
              const float x = to_float(plane[t * in_s.t + h * in_s.h + w * in_s.w]);
              grad_plane[t * grad_in_s.t + h * grad_in_s.h + w] =
                  static_cast<scalar_t>(window_gradient(x, y, off, res, gy, inv_t));
            }
          }
        }
        if (grad_temperature != nullptr) {
          grad_temperature[o] = temperature_gradient(
              temperature_derivative_window<float>(plane, in_s, st, sh, sw, y, off, res, inv_t), gy);
        }
        continue;
      }
      // the input is contiguous NCTHW like grad_input, so a segment's offset is the same in both
      const Segments& seg = window.seg;
      prefetch_after(plane, seg);  // the next window, while this one computes
      float variance = 0.0f;
      for_each_chunk(plane, seg, buffer, [&](const float* x, int64_t count, int64_t start) {
        // float gradients go straight into grad_input, others through a float chunk
        float* out = gradients;
        if constexpr (std::is_same_v<scalar_t, float>) out = grad_plane + start;
        if (grad_temperature != nullptr) {
          variance += segment_gradients_with_variance(x, count, y, off, res, gy, inv_t, out);
        } else {
          segment_gradients(x, count, y, off, res, gy, inv_t, out);
        }
        if constexpr (!std::is_same_v<scalar_t, float>) {
          scalar_t* dst = grad_plane + start;
          for (int64_t j = 0; j < count; ++j) dst[j] = static_cast<scalar_t>(gradients[j]);
        }
      });
      if (grad_temperature != nullptr) grad_temperature[o] = temperature_gradient(-variance, gy);
    }
  });
}

template <typename scalar_t>
constexpr bool handled_dtype() {
  return std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, c10::Half> ||
         std::is_same_v<scalar_t, c10::BFloat16>;
}

}  // namespace

// Row lanes need enough interior outputs along W to fill the vectors; shorter rows use channel lanes.
constexpr int64_t kMinRowLanes = 8;
// Windows at least this large (and disjoint) are reduced one per task, along contiguous segments.
constexpr int64_t kMinReductionTaps = 64;

Plan plan_for(const at::Tensor& input, const Geometry& g, bool channels_last) {
  if (input.scalar_type() == at::kDouble) return Plan::kScalar;
  if (!channels_last && input.is_contiguous() && (g.adaptive || g.dilation[2] == 1) &&
      max_window_taps(g) >= kMinReductionTaps && windows_disjoint_everywhere(g)) {
    return Plan::kWindows;
  }
  if (max_window_taps(g) > kMaxTaps) return Plan::kScalar;
  if (channels_last) {
    // Up to kLanes channels: rows of (position, channel) lanes, several positions per vector when
    // there are few channels. More channels: channel lanes (each position's channels in blocks).
    const int64_t C = input.size(1);
    const bool rows = !g.adaptive && C <= kLanes && g.output_size[2] * C >= kLanes / 4;
    return rows ? Plan::kRows : Plan::kChannels;
  }
  if (!g.adaptive) {
    const Interior interior = interior_along_w(g);
    if (interior.end - interior.begin >= kMinRowLanes) return Plan::kRows;
  }
  return input.size(1) >= 8 ? Plan::kChannels : Plan::kScalar;
}

const char* plan_name(Plan plan) {
  switch (plan) {
    case Plan::kRows:
      return "rows";
    case Plan::kChannels:
      return "channels";
    case Plan::kWindows:
      return "windows";
    default:
      return "scalar";
  }
}

template <typename scalar_t>
bool forward(const at::Tensor& input, const at::Tensor& output, const at::Tensor& offset,
             const at::Tensor& residual, const Geometry& g, const TemperatureArg& temperature, bool channels_last) {
  if constexpr (!handled_dtype<scalar_t>()) {
    return false;
  } else {
    const Temperature<float> temp = make_temperature<float>(temperature);
    switch (plan_for(input, g, channels_last)) {
      case Plan::kWindows:
        forward_windows<scalar_t>(input, output, offset, residual, g, temp);
        return true;
      case Plan::kRows:
        // channels_last rows hold all channels in their lanes: one temperature for all of them
        if (channels_last && !temp.uniform()) return false;
        forward_rows<scalar_t>(input, output, offset, residual, g, temp, channels_last ? input.size(1) : 1);
        return true;
      case Plan::kChannels:
        // channel lanes share one temperature (per-channel temperatures take the scalar body)
        if (!temp.uniform()) return false;
        forward_channel_lanes<scalar_t>(input, output, offset, residual, g, temp.inverse(0), max_window_taps(g));
        return true;
      default:
        return false;
    }
  }
}

template <typename scalar_t>
bool backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
              const at::Tensor& offset, const at::Tensor& residual, const at::Tensor& grad_input,
              at::Tensor* grad_temperature, bool* temperature_done, const Geometry& g,
              const TemperatureArg& temperature, bool channels_last) {
  if constexpr (!handled_dtype<scalar_t>()) {
    return false;
  } else {
    const Temperature<float> temp = make_temperature<float>(temperature);
    float* grad_t = grad_temperature != nullptr ? grad_temperature->mutable_data_ptr<float>() : nullptr;
    // output-shaped tensors and grad_input contiguous in the input's layout
    const auto layout = channels_last ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::Contiguous;
    const bool saved_contiguous = output.is_contiguous(layout) && offset.is_contiguous(layout) &&
                                  residual.is_contiguous(layout) && grad_input.is_contiguous(layout);
    switch (plan_for(input, g, channels_last)) {
      case Plan::kWindows:
        // both read output and statistics as contiguous rows; the forward allocated them so, but
        // the raw op may be called with other layouts: those go to the scalar gather.
        if (!saved_contiguous) return false;
        backward_windows<scalar_t>(grad_output, input, output, offset, residual, grad_input, grad_t, g, temp);
        *temperature_done = true;
        return true;
      case Plan::kRows:
        // Row lanes read output and statistics as contiguous rows; the forward allocated them so, but
        // the raw op may be called with other layouts: those go to the scalar gather.
        if (!saved_contiguous || (channels_last && !temp.uniform())) return false;
        backward_rows<scalar_t>(grad_output, input, output, offset, residual, grad_input, grad_t, g, temp,
                                channels_last ? input.size(1) : 1);
        *temperature_done = true;
        return true;
      case Plan::kChannels:
        // a gather over inputs: the temperature gradient (one per window) is left to the caller
        if (!temp.uniform()) return false;
        backward_channel_lanes<scalar_t>(grad_output, input, output, offset, residual, grad_input, g,
                                         temp.inverse(0));
        return true;
      default:
        return false;
    }
  }
}

#define SOFTPOOL_INSTANTIATE(T)                                                                             \
  template bool forward<T>(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,      \
                           const Geometry&, const TemperatureArg&, bool);                                   \
  template bool backward<T>(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,     \
                            const at::Tensor&, const at::Tensor&, at::Tensor*, bool*, const Geometry&,      \
                            const TemperatureArg&, bool);
SOFTPOOL_INSTANTIATE(float)
SOFTPOOL_INSTANTIATE(double)
SOFTPOOL_INSTANTIATE(c10::Half)
SOFTPOOL_INSTANTIATE(c10::BFloat16)
#undef SOFTPOOL_INSTANTIATE

}  // namespace softpool_video::vectorized
