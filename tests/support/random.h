#pragma once
// The seeded random inputs of every test: uniform values that are a pure function of (seed,
// index), the same on every machine and on every rank of a parallel test (each rank draws the
// whole tensor and keeps its part). One generator for all the tests, so that a seed in a
// failure message reproduces the input anywhere.
//
// Generator: a 64-bit LCG (Knuth's MMIX constants) started from seed·φ64 + 1; each value is
// u = (state >> 11)·2⁻⁵³ ∈ [0, 1) mapped to lo + (hi − lo)·u in double, then rounded to f32.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace paradit::testing {

// n values uniform in [lo, hi).
inline std::vector<float> random_values(size_t n, uint64_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::vector<float> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const double u = static_cast<double>(s >> 11) / 9007199254740992.0;
    v[i] = static_cast<float>(static_cast<double>(lo) + (static_cast<double>(hi) - lo) * u);
  }
  return v;
}

// A contiguous host F32 tensor of `shape` with values uniform in [lo, hi).
inline core::Tensor random_tensor(const core::Shape& shape, uint64_t seed, float lo = -1.0f,
                                  float hi = 1.0f) {
  core::Tensor t = core::Tensor::empty(shape);
  const std::vector<float> v =
      random_values(static_cast<size_t>(core::shape_numel(shape)), seed, lo, hi);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

}  // namespace paradit::testing
