#include "parallel/pipefusion.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace paradit::parallel {

PatchGrid::PatchGrid(int64_t rows_in, int64_t cols_in, int count_in)
    : rows(rows_in), cols(cols_in), count(count_in) {
  PARADIT_CHECK(count >= 1, "--num_pipeline_patch must be at least 1, found ", count);
  PARADIT_CHECK(rows >= count, "--num_pipeline_patch ", count, ": the image has only ", rows,
                " token rows (latent height / patch size), so a patch would be thinner than one "
                "patch; use at most ",
                rows, " patches");
}

int64_t PatchGrid::row_begin(int m) const {
  const int64_t base = rows / count, extra = rows % count;
  return m * base + std::min<int64_t>(m, extra);
}

size_t StaleKV::nbytes() const {
  size_t n = 0;
  for (const auto& [index, layer] : layers_) {
    for (const KVBuffer& b : layer.slot) {
      if (b.k.defined()) n += b.k.nbytes() + b.v.nbytes();
    }
  }
  return n;
}

std::vector<std::pair<int64_t, int64_t>> balance_stages(const std::vector<double>& costs,
                                                        int stages) {
  const int64_t n = static_cast<int64_t>(costs.size());
  PARADIT_CHECK(stages >= 1, "--pipefusion_parallel_degree must be at least 1, found ", stages);
  PARADIT_CHECK(n >= stages, "--pipefusion_parallel_degree ", stages, ": the transformer has only ",
                n, " layers to split into stages");
  std::vector<double> prefix(static_cast<size_t>(n) + 1, 0.0);  // prefix[i] = cost of layers < i
  for (int64_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + std::max(costs[i], 0.0);
  const double total = prefix[n];
  std::vector<std::pair<int64_t, int64_t>> ranges;
  int64_t begin = 0;
  for (int k = 0; k < stages; ++k) {
    int64_t end = n;
    if (k + 1 < stages) {
      const double target = total * (k + 1) / stages;
      // Leave at least one layer for each later stage and take at least one here.
      const int64_t lo = begin + 1, hi = n - (stages - k - 1);
      end = lo;
      for (int64_t e = lo; e <= hi; ++e) {
        if (std::abs(prefix[e] - target) < std::abs(prefix[end] - target)) end = e;
      }
    }
    ranges.emplace_back(begin, end);
    begin = end;
  }
  return ranges;
}

}  // namespace paradit::parallel
