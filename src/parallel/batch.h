#pragma once
// CFG parallel and data parallel over the batch of one transformer forward.
//
// The batch B of the inputs is cut first into cfg halves (diffusers puts the unconditional
// samples in the first half and the conditional ones in the second) and each half into dp
// contiguous shares; the process at mesh coordinates (dp = i, cfg = c) computes share i of half
// c. Its output comes back whole on every rank through one all-gather over dp and one over cfg.
// B must divide by cfg × dp (Error naming the degrees otherwise).

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "comm/process_mesh.h"
#include "core/tensor.h"

namespace paradit::parallel {

using NamedInputs = std::map<std::string, core::Tensor>;

// Samples [begin, end) of every input whose leading dim is `batch`; inputs without a batch dim
// (Flux's 2-D img_ids/txt_ids, a single shared timestep) are passed whole.
NamedInputs slice_batch(const NamedInputs& inputs, int64_t batch, int64_t begin, int64_t end);

// This rank's sample range [begin, end) of a batch of `batch` under the mesh's cfg and dp
// (dp ignored when `split_dp` is false: a caller whose dp groups already hold different samples,
// e.g. a pipeline giving each group its own prompts).
std::pair<int64_t, int64_t> batch_share(int64_t batch, const comm::ProcessMesh& mesh,
                                        bool split_dp = true);

// Runs `forward` on this rank's share of the inputs (batch = the leading dim of
// inputs.at(batch_input)) and returns the whole output batch (outputs stacked along dim 0) on
// every rank. Collective over the mesh's dp (when split_dp) and cfg groups.
core::Tensor run_batch_parallel(const NamedInputs& inputs, const std::string& batch_input,
                                const comm::ProcessMesh& mesh,
                                const std::function<core::Tensor(const NamedInputs&)>& forward,
                                bool split_dp = true);

}  // namespace paradit::parallel
