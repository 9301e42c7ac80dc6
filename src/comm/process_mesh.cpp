#include "comm/process_mesh.h"

#include <sstream>

#include "comm/device.h"
#ifdef PARADIT_WITH_NCCL
#include "comm/nccl_communicator.h"
#endif

namespace paradit::comm {

const char* mesh_dim_name(MeshDim d) {
  switch (d) {
    case MeshDim::kDp:
      return "dp";
    case MeshDim::kCfg:
      return "cfg";
    case MeshDim::kPp:
      return "pp";
    case MeshDim::kRing:
      return "ring";
    case MeshDim::kUlysses:
      return "ulysses";
    case MeshDim::kTp:
      return "tp";
  }
  return "?";
}

int MeshDegrees::operator[](MeshDim d) const {
  switch (d) {
    case MeshDim::kDp:
      return dp;
    case MeshDim::kCfg:
      return cfg;
    case MeshDim::kPp:
      return pp;
    case MeshDim::kRing:
      return ring;
    case MeshDim::kUlysses:
      return ulysses;
    case MeshDim::kTp:
      return tp;
  }
  return 1;
}

std::string MeshDegrees::str() const {
  std::ostringstream os;
  os << "dp=" << dp << " × cfg=" << cfg << " × pp=" << pp << " × ring=" << ring
     << " × ulysses=" << ulysses;
  if (tp > 1) os << " × tp=" << tp;
  return os.str();
}

int ProcessMesh::rank_of(const MeshDegrees& degrees, const std::array<int, kNumMeshDims>& coords) {
  int rank = 0;
  for (int i = 0; i < kNumMeshDims; ++i) rank = rank * degrees[static_cast<MeshDim>(i)] + coords[i];
  return rank;
}

std::array<int, kNumMeshDims> ProcessMesh::coords_of(const MeshDegrees& degrees, int rank) {
  std::array<int, kNumMeshDims> c{};
  for (int i = kNumMeshDims - 1; i >= 0; --i) {
    const int n = degrees[static_cast<MeshDim>(i)];
    c[i] = rank % n;
    rank /= n;
  }
  return c;
}

ProcessMesh::ProcessMesh(const Communicator& world, const MeshDegrees& degrees, core::Device device)
    : world_(&world), degrees_(degrees), device_(device) {
  for (int i = 0; i < kNumMeshDims; ++i) {
    const MeshDim d = static_cast<MeshDim>(i);
    PARADIT_CHECK(degrees[d] >= 1, "parallel degree ", mesh_dim_name(d), "=", degrees[d],
                  " must be at least 1");
  }
  PARADIT_CHECK(degrees.product() == world.size(), "parallel degrees ", degrees.str(), " = ",
                degrees.product(), ", but the job has ", world.size(), " processes");
  coords_ = coords_of(degrees, world.rank());

  if (device == core::Device::CPU) {
    transport_ = world.kind() == "mpi" ? "MPI" : "a single process";
  } else {
    const DeviceTransport t = choose_device_transport(world);
    uses_nccl_ = t.nccl;
    transport_ = t.reason;
  }
  // Each group is split off the world (MPI), then carried by NCCL when the mesh uses it.
  const auto make = [&](int color, int key) {
    std::unique_ptr<Communicator> g = world.split(color, key);
#ifdef PARADIT_WITH_NCCL
    if (uses_nccl_)
      return std::unique_ptr<Communicator>(std::make_unique<NcclCommunicator>(std::move(g)));
#endif
    return g;
  };
  // Group of dimension d: the ranks whose other coordinates equal ours. Color = our rank with
  // coordinate d zeroed (unique per group), key = coordinate d (the order inside the group).
  for (int i = 0; i < kNumMeshDims; ++i) {
    auto c = coords_;
    c[i] = 0;
    groups_[i] = make(rank_of(degrees, c), coords_[i]);
    groups_[i]->set_label(mesh_dim_name(static_cast<MeshDim>(i)));
  }
  auto c = coords_;
  const int ring = static_cast<int>(MeshDim::kRing), uly = static_cast<int>(MeshDim::kUlysses);
  c[ring] = 0;
  c[uly] = 0;
  sequence_ = make(rank_of(degrees, c), coords_[ring] * degrees.ulysses + coords_[uly]);
  sequence_->set_label("sequence");
  // (The tp coordinate stays in the color: each tensor-parallel rank has its own sequence group.)
  // One replica: the same dp coordinate; dp is outermost, so these are contiguous world ranks.
  replica_ = make(coords_[static_cast<int>(MeshDim::kDp)], world.rank());
  replica_->set_label("replica");
}

}  // namespace paradit::comm
