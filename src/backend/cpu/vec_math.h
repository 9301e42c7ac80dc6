#pragma once
// Branch-free float math for loops under `#pragma omp simd`. libm's expf/erfcf are scalar calls
// unless the build uses -ffast-math (which paradit does not), so the activation and softmax
// kernels use these instead. All are pure float arithmetic plus selects: GCC turns a loop of
// them into AVX-512 code.

#include <cstdint>
#include <cstring>
#include <limits>

namespace paradit::backend::cpu {

// Reinterprets an int32 bit pattern as a float; memcpy so that GCC still vectorizes it.
inline float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// e^x, within 2 ulp of the true value for normal results. Cody–Waite reduction
// x = n·ln2 + r (|r| ≤ ln2/2) and a degree-7 minimax polynomial for e^r (the Cephes
// coefficients). 2^n is applied as two factors so that results that overflow give +inf and
// results below FLT_MIN fall gradually to subnormals and 0, as expf does.
inline float exp_f32(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // few bits: n·kLn2Hi is exact for |n| < 2^15
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
  // Beyond these bounds the result is already inf / 0; clamping keeps n small.
  float xc = x < -110.0f ? -110.0f : x;
  xc = xc > 89.0f ? 89.0f : xc;
  const float nf = (xc * kLog2e + kRound) - kRound;
  const float r = (xc - nf * kLn2Hi) - nf * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * (r * r) + r + 1.0f;
  const int32_t n = static_cast<int32_t>(nf);
  const int32_t n1 = n / 2;
  const int32_t n2 = n - n1;  // both in [-80, 64]: 2^n1 and 2^n2 are normal floats
  const float s1 = bits_to_float(static_cast<uint32_t>(n1 + 127) << 23);
  const float s2 = bits_to_float(static_cast<uint32_t>(n2 + 127) << 23);
  const float y = (er * s1) * s2;
  return x != x ? x : y;  // NaN in, NaN out
}

// x · sigmoid(a·x) = x / (1 + e^(−a·x)): silu (a = 1), quick_gelu (a = 1.702). No
// cancellation for any x; e^(−a·x) = inf gives −0 for large negative x.
inline float x_sigmoid_f32(float x, float a) { return x / (1.0f + exp_f32(-a * x)); }

// erfc(z): the Chebyshev fit of erfc(z)·e^(z²) in t = 1/(1 + z/2) (Numerical Recipes "erfcc",
// fractional error < 1.2e-7 in exact arithmetic) for z ≥ 0 and erfc(z) = 2 − erfc(−z) below 0.
// Relative error ≲ 5e-7 for |z| ≤ 2; beyond, the rounding of z² adds ~z²·2^-24, the same order
// as erfc's own sensitivity to the rounding of its float argument.
inline float erfc_f32(float z) {
  const float a = z < 0.0f ? -z : z;
  const float t = 1.0f / (1.0f + 0.5f * a);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const float e = t * exp_f32(-a * a + p);
  return z < 0.0f ? 2.0f - e : e;
}

// GELU as PyTorch defines it, exact form: 0.5·x·(1 + erf(x/√2)), written as
// 0.5·x·erfc(−x/√2), which keeps full relative accuracy for negative x where 1 + erf cancels.
inline float gelu_erf_f32(float x) {
  constexpr float kInvSqrt2 = 0.70710678118654752f;
  return 0.5f * x * erfc_f32(-x * kInvSqrt2);
}

// GELU, tanh approximation as PyTorch defines it: 0.5·x·(1 + tanh(u)),
// u = √(2/π)·(x + 0.044715·x³); computed as x·sigmoid(2u), the same function without the
// cancellation of 1 + tanh(u) for negative u.
inline float gelu_tanh_f32(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286536f;
  const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
  return x / (1.0f + exp_f32(-2.0f * u));
}

}  // namespace paradit::backend::cpu
