#pragma once
// Small test-side tensor helpers shared by the parallel tests: seeded inputs that every rank
// draws alike (support/random.h), and the relative error the parallel results are held to.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "support/random.h"

namespace paradit::testing {

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
