#include "parallel/config.h"

#include "core/error.h"

namespace paradit::parallel {

comm::MeshDegrees ParallelConfig::degrees() const {
  comm::MeshDegrees d;
  d.dp = dp;
  d.cfg = cfg_degree();
  d.pp = pp;
  d.ring = ring;
  d.ulysses = ulysses;
  d.tp = tp;
  return d;
}

void ParallelConfig::validate() const {
  PARADIT_CHECK(ulysses >= 1, "--ulysses_degree must be at least 1, found ", ulysses);
  PARADIT_CHECK(ring >= 1, "--ring_degree must be at least 1, found ", ring);
  PARADIT_CHECK(tp >= 1, "--tensor_parallel_degree must be at least 1, found ", tp);
  PARADIT_CHECK(tp == 1 || pp == 1, "--tensor_parallel_degree ", tp,
                " with --pipefusion_parallel_degree ", pp,
                " is not supported yet (PipeFusion stages load whole layers)");
  PARADIT_CHECK(dp >= 1, "--data_parallel_degree must be at least 1, found ", dp);
  PARADIT_CHECK(pp >= 1, "--pipefusion_parallel_degree must be at least 1, found ", pp);
  PARADIT_CHECK(num_pipeline_patch >= 0, "--num_pipeline_patch must be at least 1, found ",
                num_pipeline_patch);
  PARADIT_CHECK(warmup_steps >= 0, "--warmup_steps must be at least 0, found ", warmup_steps);
  if (pp > 1) {
    PARADIT_CHECK(num_pipeline_patch == 0 || num_pipeline_patch >= pp, "--num_pipeline_patch ",
                  num_pipeline_patch, " is less than --pipefusion_parallel_degree ", pp,
                  ": every stage needs a patch of its own to work on");
    PARADIT_CHECK(warmup_steps >= 1, "--warmup_steps must be at least 1 with PipeFusion (the "
                                     "first step fills every layer's K/V buffers)");
  }
}

ParallelRuntime::ParallelRuntime(const comm::Communicator& world, const ParallelConfig& config,
                                 core::Device device)
    : config_(config) {
  config_.validate();
  mesh_ = std::make_unique<comm::ProcessMesh>(world, config_.degrees(), device);
  sequence_ = SequenceContext::from_mesh(*mesh_);
  tensor_parallel_.group = &mesh_->group(comm::MeshDim::kTp);
}

}  // namespace paradit::parallel
