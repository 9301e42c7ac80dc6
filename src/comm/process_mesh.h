#pragma once
// ProcessMesh: the world split into the parallel dimensions of DESIGN.md "Process mesh".
//
// world = dp × cfg × pp × ring × ulysses × tp, ranks ordered outermost first (dp, cfg, pp, ring,
// ulysses, tp): without tensor parallelism ulysses is innermost, so a Ulysses group is a run of
// contiguous ranks (one node), as xDiT orders it; tensor parallelism (two all-reduces of the
// block's activations per block) goes inside it. Each dimension gets its own communicator (the ranks that differ only in
// that coordinate, ordered by it), plus the sequence-parallel group ring × ulysses, ordered
// ring-major: its rank = ring coordinate · ulysses + ulysses coordinate, which is also the index
// of the sequence block this rank holds. The replica group holds the ranks of one data-parallel
// replica (cfg × pp × ring × ulysses: the same dp coordinate), in world rank order.
//
// A device mesh (tensors on CUDA) makes every group an NcclCommunicator over its MPI group when
// choose_device_transport (comm/device.h) says NCCL: a build with NCCL and a GPU per rank on
// every node (each group's first rank makes its NCCL id and broadcasts it over the group's MPI
// communicator; groups of one touch no NCCL). Otherwise the groups stay MPI groups, which stage
// device tensors through host memory (several ranks sharing a GPU).

#include <array>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "core/dtype.h"

namespace paradit::comm {

enum class MeshDim { kDp = 0, kCfg = 1, kPp = 2, kRing = 3, kUlysses = 4, kTp = 5 };
constexpr int kNumMeshDims = 6;
const char* mesh_dim_name(MeshDim d);  // "dp", "cfg", "pp", "ring", "ulysses", "tp"

struct MeshDegrees {
  int dp = 1, cfg = 1, pp = 1, ring = 1, ulysses = 1, tp = 1;
  int product() const { return dp * cfg * pp * ring * ulysses * tp; }
  int operator[](MeshDim d) const;
  // "dp=1 × cfg=2 × pp=1 × ring=2 × ulysses=2", then " × tp=2" when tp > 1.
  std::string str() const;
};

class ProcessMesh {
 public:
  // Collective over `world` (which must outlive the mesh). Degrees < 1, or a product that is
  // not world.size() → Error "parallel degrees dp=.. × cfg=.. × pp=.. × ring=.. × ulysses=.. =
  // N, but the job has M processes". `device`: where the tensors the groups carry live;
  // Device::CUDA may build NCCL groups (above), for which every rank must be on the GPU
  // comm::bind_device gives it.
  ProcessMesh(const Communicator& world, const MeshDegrees& degrees,
              core::Device device = core::Device::CPU);
  ProcessMesh(ProcessMesh&&) noexcept = default;
  ProcessMesh& operator=(ProcessMesh&&) noexcept = default;
  ProcessMesh(const ProcessMesh&) = delete;
  ProcessMesh& operator=(const ProcessMesh&) = delete;

  const MeshDegrees& degrees() const { return degrees_; }
  int degree(MeshDim d) const { return degrees_[d]; }
  int coord(MeshDim d) const { return coords_[static_cast<int>(d)]; }
  const Communicator& world() const { return *world_; }
  const Communicator& group(MeshDim d) const { return *groups_[static_cast<int>(d)]; }
  // ring × ulysses, ring-major (see above).
  const Communicator& sequence_group() const { return *sequence_; }
  // The ranks of this rank's data-parallel replica (cfg × pp × ring × ulysses × tp), in world rank
  // order: its rank is world rank − dp coordinate · (world size / dp).
  const Communicator& replica_group() const { return *replica_; }

  core::Device device() const { return device_; }
  // Whether the groups are NcclCommunicators, and why (one line, for logs).
  bool uses_nccl() const { return uses_nccl_; }
  const std::string& transport() const { return transport_; }

  // World rank of the process with these coordinates (dp, cfg, pp, ring, ulysses, tp).
  static int rank_of(const MeshDegrees& degrees, const std::array<int, kNumMeshDims>& coords);
  static std::array<int, kNumMeshDims> coords_of(const MeshDegrees& degrees, int rank);

 private:
  const Communicator* world_;
  MeshDegrees degrees_;
  std::array<int, kNumMeshDims> coords_{};
  std::array<std::unique_ptr<Communicator>, kNumMeshDims> groups_;
  std::unique_ptr<Communicator> sequence_;
  std::unique_ptr<Communicator> replica_;
  core::Device device_ = core::Device::CPU;
  bool uses_nccl_ = false;
  std::string transport_;
};

}  // namespace paradit::comm
