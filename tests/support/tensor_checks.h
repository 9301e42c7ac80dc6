#pragma once
// Small test-side tensor helpers shared by the parallel tests: seeded inputs that every rank
// draws alike, and the relative error the parallel results are held to.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace paradit::testing {

// Deterministic uniform(−1, 1) values: the same on every rank for the same seed.
inline core::Tensor random_tensor(const core::Shape& shape, uint64_t seed) {
  core::Tensor t = core::Tensor::empty(shape);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = static_cast<float>(static_cast<double>(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
  return t;
}

// max |a − b| / max |b|; 1e30 when the shapes differ.
inline double max_rel_err(const core::Tensor& a, const core::Tensor& b) {
  if (a.shape() != b.shape()) return 1e30;
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(x[i]) - y[i]));
    scale = std::max(scale, std::abs(static_cast<double>(y[i])));
  }
  return diff / std::max(scale, 1e-30);
}

}  // namespace paradit::testing
