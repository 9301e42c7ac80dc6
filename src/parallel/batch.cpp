#include "parallel/batch.h"

#include "core/error.h"

namespace paradit::parallel {

using core::Tensor;

NamedInputs slice_batch(const NamedInputs& inputs, int64_t batch, int64_t begin, int64_t end) {
  NamedInputs out;
  for (const auto& [name, t] : inputs) {
    // Flux's ids are per token, not per sample, even where their length equals the batch.
    const bool token_ids = (name == "img_ids" || name == "txt_ids") && t.ndim() == 2;
    const bool batched = t.defined() && t.ndim() >= 1 && t.dim(0) == batch && !token_ids;
    out[name] = batched ? t.slice(0, begin, end) : t;
  }
  return out;
}

std::pair<int64_t, int64_t> batch_share(int64_t batch, const comm::ProcessMesh& mesh,
                                        bool split_dp) {
  const int cfg = mesh.degree(comm::MeshDim::kCfg);
  const int dp = split_dp ? mesh.degree(comm::MeshDim::kDp) : 1;
  PARADIT_CHECK(batch % (cfg * dp) == 0, "batch ", batch,
                " does not divide by cfg degree × data-parallel degree = ", cfg, " × ", dp,
                " (--use_cfg_parallel needs the uncond/cond halves, --data_parallel_degree N "
                "an equal share per group)");
  const int64_t half = batch / cfg, share = half / dp;
  const int64_t begin = mesh.coord(comm::MeshDim::kCfg) * half +
                        (split_dp ? mesh.coord(comm::MeshDim::kDp) : 0) * share;
  return {begin, begin + share};
}

Tensor run_batch_parallel(const NamedInputs& inputs, const std::string& batch_input,
                          const comm::ProcessMesh& mesh,
                          const std::function<Tensor(const NamedInputs&)>& forward, bool split_dp) {
  auto it = inputs.find(batch_input);
  PARADIT_CHECK(it != inputs.end() && it->second.defined() && it->second.ndim() >= 1,
                "batch parallel: input '", batch_input, "' is missing");
  const int64_t batch = it->second.dim(0);
  const int cfg = mesh.degree(comm::MeshDim::kCfg);
  const int dp = split_dp ? mesh.degree(comm::MeshDim::kDp) : 1;
  if (cfg * dp == 1) return forward(inputs);
  const auto [begin, end] = batch_share(batch, mesh, split_dp);
  Tensor out = forward(slice_batch(inputs, batch, begin, end));  // (B / (cfg·dp), ...)
  // Shares within a half are consecutive dp coordinates, halves consecutive cfg coordinates.
  if (dp > 1) out = mesh.group(comm::MeshDim::kDp).all_gather(out, 0);    // (B / cfg, ...)
  if (cfg > 1) out = mesh.group(comm::MeshDim::kCfg).all_gather(out, 0);  // (B, ...)
  return out;
}

}  // namespace paradit::parallel
