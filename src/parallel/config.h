#pragma once
// The parallel layout of one job (DESIGN.md "Process mesh"), as the command line gives it, and
// the runtime built from it: the process mesh and the sequence-parallel context that a
// transformer forward takes.
//
//   parallel::ParallelConfig cfg;               // filled by cli::add_parallel_flags
//   parallel::ParallelRuntime rt(comm::world(), cfg);
//   model->forward(inputs, &rt.sequence());      // sequence parallel only (this rank's batch)
//   models::parallel_forward(*model, inputs, rt) // + CFG and data parallel over the batch

#include <memory>

#include "comm/communicator.h"
#include "comm/process_mesh.h"
#include "parallel/sequence.h"
#include "parallel/tensor_parallel.h"

namespace paradit::parallel {

struct ParallelConfig {
  int dp = 1;                     // --data_parallel_degree
  bool cfg = false;               // --use_cfg_parallel: cfg degree 2
  int pp = 1;                     // --pipefusion_parallel_degree: PipeFusion stages
  int ring = 1;                   // --ring_degree
  int ulysses = 1;                // --ulysses_degree
  int tp = 1;                     // --tensor_parallel_degree
  int num_pipeline_patch = 0;     // --num_pipeline_patch: PipeFusion patches (0: pp)
  int warmup_steps = 1;           // --warmup_steps: PipeFusion's synchronous whole-image steps
  bool use_parallel_vae = false;  // --use_parallel_vae (stored for the patch-parallel VAE)

  int cfg_degree() const { return cfg ? 2 : 1; }
  comm::MeshDegrees degrees() const;
  int world_size() const { return degrees().product(); }
  // Degrees < 1, or a PipeFusion layout that cannot run (fewer patches than stages, no
  // warm-up step) → Error naming the flag.
  void validate() const;
};

// The mesh over `world` and this rank's sequence-parallel context. Collective over `world`
// (which must outlive the runtime); a product of degrees ≠ world size → the mesh's Error.
class ParallelRuntime {
 public:
  // `device`: where the tensors of the parallel ops live; CUDA builds a device mesh (NCCL groups
  // where every rank has its own GPU, else MPI groups staging through the host).
  ParallelRuntime(const comm::Communicator& world, const ParallelConfig& config,
                  core::Device device = core::Device::CPU);
  ParallelRuntime(const ParallelRuntime&) = delete;
  ParallelRuntime& operator=(const ParallelRuntime&) = delete;

  const ParallelConfig& config() const { return config_; }
  const comm::ProcessMesh& mesh() const { return *mesh_; }
  const SequenceContext& sequence() const { return sequence_; }
  // The tensor-parallel group (the mesh's tp dimension): what a model is built with.
  const TensorParallel& tensor_parallel() const { return tensor_parallel_; }
  // Rank 0 of the world writes outputs.
  bool writes_output() const { return mesh_->world().rank() == 0; }

 private:
  ParallelConfig config_;
  std::unique_ptr<comm::ProcessMesh> mesh_;
  SequenceContext sequence_;
  TensorParallel tensor_parallel_;
};

}  // namespace paradit::parallel
