#pragma once
// Sums that every rank of a group must read identically: the step caches' metric
// (models/step_cache.h), whose value decides whether every rank runs a step's layers. A value
// that differed in its last bit between ranks could split that decision, and a rank that skips
// while its peers compute leaves them waiting in a collective forever; so the sums are reduced
// over the group and then broadcast from the group's rank 0, and every rank holds the same bits.

#include <vector>

#include "comm/communicator.h"
#include "core/tensor.h"

namespace paradit::parallel {

// Σ over the ranks of `group` of `local` ((n) F64, on any device), the same bits on every rank.
// Collective over `group` (every rank passes the same n).
std::vector<double> sum_across(const comm::Communicator& group, const core::Tensor& local);

}  // namespace paradit::parallel
