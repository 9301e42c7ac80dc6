#pragma once
// Tensor parallelism (Megatron-style) inside a transformer block: the attention heads and the MLP
// hidden units are cut into `degree` equal contiguous shares, one per rank of the group. Q/K/V
// and the first MLP matrix are split by columns (their output features: this rank's heads or
// hidden units), the attention output projection and the second MLP matrix by rows (their input
// features), so each block needs one all-reduce (sum) after each of those two projections;
// modulation, norms, embeddings and the output layers stay whole on every rank. Each rank binds
// only its share of the split matrices (models/common/weights.h).
//
// The model holds the context it was built with (its weights are that rank's share) and calls
// reduce() where a row-parallel projection ends, so the parallelism is visible in the forward.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "core/tensor.h"

namespace paradit::parallel {

struct TensorParallel {
  const comm::Communicator* group = nullptr;  // null or size 1: whole layers

  int degree() const { return group ? group->size() : 1; }
  int rank() const { return group ? group->rank() : 0; }
  bool parallel() const { return degree() > 1; }
  // This rank's share [begin, end) of n units (heads, hidden units); n % degree() == 0.
  std::pair<int64_t, int64_t> share(int64_t n) const;
  // In place: x becomes the sum of every rank's x (the row-parallel projections' partial
  // products). A no-op without tensor parallelism.
  void reduce(const core::Tensor& x) const;
};

// Error "<model>: --tensor_parallel_degree N does not divide <what> (valid degrees: …)" unless
// `degree` divides every size in `sizes` (named in `what`, e.g. "the 4 attention heads and the
// MLP width 256"); the valid degrees are the common divisors.
void check_tensor_parallel(int degree, const std::vector<int64_t>& sizes, const std::string& what,
                           const std::string& model);

}  // namespace paradit::parallel
