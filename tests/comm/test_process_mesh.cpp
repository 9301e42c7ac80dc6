// ProcessMesh: which ranks share each group, for every degree combination of the job's size
// (np 8 covers the interesting ones), and the mismatch errors. Expected members come from the
// rank-order rule of DESIGN.md (dp, cfg, pp, ring, ulysses, tp; tp innermost), computed here
// independently of ProcessMesh::rank_of.

#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <string>
#include <vector>

#include "comm/device.h"
#include "comm/process_mesh.h"
#include "comm/runtime.h"
#include "core/op_registry.h"

namespace paradit::comm {
namespace {

using core::Tensor;

// All (dp, cfg, pp, ring, ulysses, tp) with product n.
std::vector<MeshDegrees> factorizations(int n) {
  std::vector<MeshDegrees> out;
  for (int dp = 1; dp <= n; ++dp)
    for (int cfg = 1; cfg <= n; ++cfg)
      for (int pp = 1; pp <= n; ++pp)
        for (int ring = 1; ring <= n; ++ring)
          for (int uly = 1; uly <= n; ++uly)
            for (int tp = 1; tp <= n; ++tp)
              if (dp * cfg * pp * ring * uly * tp == n)
                out.push_back({dp, cfg, pp, ring, uly, tp});
  return out;
}

// Coordinates by the rule: rank = (((((dp·C + cfg)·P + pp)·R + ring)·U + uly)·T + tp).
std::array<int, 6> coords(const MeshDegrees& d, int rank) {
  const int t = rank % d.tp;
  rank /= d.tp;
  const int u = rank % d.ulysses;
  rank /= d.ulysses;
  const int r = rank % d.ring;
  rank /= d.ring;
  const int p = rank % d.pp;
  rank /= d.pp;
  const int c = rank % d.cfg;
  rank /= d.cfg;
  return {rank, c, p, r, u, t};
}

// World ranks of `comm`, in its rank order.
std::vector<int64_t> members(const Communicator& comm, int world_rank) {
  Tensor me = Tensor::from_vector_i64({world_rank}, {1});
  Tensor all = comm.all_gather(me, 0);
  return std::vector<int64_t>(all.data<int64_t>(), all.data<int64_t>() + all.numel());
}

void check_mesh(const Communicator& w, const MeshDegrees& d) {
  const int n = w.size(), me = w.rank();
  ProcessMesh mesh(w, d);
  const auto mine = coords(d, me);
  const std::string what = d.str();
  for (int dim = 0; dim < kNumMeshDims; ++dim) {
    const MeshDim md = static_cast<MeshDim>(dim);
    EXPECT_EQ(mesh.coord(md), mine[dim]) << what << " " << mesh_dim_name(md);
    // Expected: ranks equal to me in every other coordinate, ordered by this coordinate.
    std::vector<int64_t> expect(d[md], -1);
    for (int r = 0; r < n; ++r) {
      const auto c = coords(d, r);
      bool same = true;
      for (int o = 0; o < kNumMeshDims; ++o) same = same && (o == dim || c[o] == mine[o]);
      if (same) expect[c[dim]] = r;
    }
    const Communicator& g = mesh.group(md);
    EXPECT_EQ(g.size(), d[md]) << what << " " << mesh_dim_name(md);
    EXPECT_EQ(g.rank(), mine[dim]) << what << " " << mesh_dim_name(md);
    EXPECT_EQ(members(g, me), expect) << what << " " << mesh_dim_name(md);
  }
  // Sequence group: same dp, cfg, pp, tp; ordered ring-major.
  std::vector<int64_t> expect(d.ring * d.ulysses, -1);
  for (int r = 0; r < n; ++r) {
    const auto c = coords(d, r);
    if (c[0] == mine[0] && c[1] == mine[1] && c[2] == mine[2] && c[5] == mine[5])
      expect[c[3] * d.ulysses + c[4]] = r;
  }
  const Communicator& sp = mesh.sequence_group();
  EXPECT_EQ(sp.rank(), mine[3] * d.ulysses + mine[4]) << what;
  EXPECT_EQ(members(sp, me), expect) << what;
  // Ulysses groups are runs of contiguous world ranks (tensor-parallel groups without TP).
  const auto uly = members(mesh.group(d.tp > 1 ? MeshDim::kTp : MeshDim::kUlysses), me);
  for (size_t i = 1; i < uly.size(); ++i) EXPECT_EQ(uly[i], uly[i - 1] + 1) << what;
  // Replica group: same dp coordinate, in world rank order.
  std::vector<int64_t> replica;
  for (int r = 0; r < n; ++r) {
    if (coords(d, r)[0] == mine[0]) replica.push_back(r);
  }
  const Communicator& rep = mesh.replica_group();
  EXPECT_EQ(members(rep, me), replica) << what;
  EXPECT_EQ(rep.rank(), me - mine[0] * (n / d.dp)) << what;
  // A host mesh keeps the world's transport.
  EXPECT_EQ(mesh.device(), core::Device::CPU);
  EXPECT_FALSE(mesh.uses_nccl());
  EXPECT_EQ(mesh.group(MeshDim::kRing).kind(), w.kind()) << what;
  EXPECT_EQ(rep.kind(), w.kind()) << what;
}

TEST(ProcessMesh, GroupsForEveryDegreeCombination) {
  const Communicator& w = world();
  const auto all = factorizations(w.size());
  // np 8 has 56 combinations; each builds eight groups. All of them stay cheap at this size.
  for (const MeshDegrees& d : all) check_mesh(w, d);
}

TEST(ProcessMesh, MismatchedDegreesAreAnError) {
  const Communicator& w = world();
  MeshDegrees d;
  d.cfg = 2;
  d.ring = 2;
  d.ulysses = 2;
  if (d.product() == w.size()) d.ulysses = 3;  // 2·2·3 = 12 is never the job size here
  try {
    ProcessMesh mesh(w, d);
    ADD_FAILURE() << "no error for " << d.str();
  } catch (const Error& e) {
    const std::string expect =
        "parallel degrees dp=1 × cfg=2 × pp=1 × ring=2 × ulysses=" + std::to_string(d.ulysses) +
        " = " + std::to_string(d.product()) + ", but the job has " + std::to_string(w.size()) +
        " processes";
    EXPECT_EQ(e.what(), expect);
  }
  MeshDegrees zero;
  zero.pp = 0;
  EXPECT_THROW(ProcessMesh(w, zero), Error);
}

TEST(ProcessMesh, RankOfAndCoordsOfAgree) {
  const MeshDegrees d{2, 1, 3, 2, 2, 2};
  for (int r = 0; r < d.product(); ++r) {
    const auto c = ProcessMesh::coords_of(d, r);
    const auto e = coords(d, r);
    for (int i = 0; i < kNumMeshDims; ++i) EXPECT_EQ(c[i], e[i]) << r;
    EXPECT_EQ(ProcessMesh::rank_of(d, c), r);
  }
}

// Node ranks against the launcher's own account (Open MPI sets the local rank and size).
TEST(ProcessMesh, NodeRanksMatchLauncher) {
  const Communicator& w = world();
  const NodeRanks node = node_ranks(w);
  EXPECT_GE(node.local_rank, 0);
  EXPECT_LT(node.local_rank, node.local_size);
  EXPECT_LE(node.local_size, w.size());
  const char* local_rank = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  const char* local_size = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (local_rank && local_size) {
    EXPECT_EQ(node.local_rank, std::atoi(local_rank));
    EXPECT_EQ(node.local_size, std::atoi(local_size));
  } else {
    EXPECT_EQ(node.local_rank, 0);
    EXPECT_EQ(node.local_size, 1);
  }
  EXPECT_EQ(device_for(5, 2), 1);
  EXPECT_EQ(device_for(3, 4), 3);
  EXPECT_EQ(device_for(0, 0), -1);
}

// A device mesh keeps the MPI groups wherever NCCL cannot carry it: a build without NCCL, a
// single process, ranks sharing a GPU.
TEST(ProcessMesh, DeviceMeshTransport) {
  const Communicator& w = world();
  const DeviceTransport t = choose_device_transport(w);
  EXPECT_FALSE(t.reason.empty());
  if (!kNcclBuilt) {
    EXPECT_FALSE(t.nccl);
    EXPECT_NE(t.reason.find("no NCCL"), std::string::npos) << t.reason;
  }
  if (w.size() == 1) {
    EXPECT_FALSE(t.nccl);
  }
  MeshDegrees d;
  d.ulysses = w.size();
  const ProcessMesh mesh(w, d, core::Device::CUDA);
  EXPECT_EQ(mesh.device(), core::Device::CUDA);
  EXPECT_EQ(mesh.uses_nccl(), t.nccl);
  EXPECT_EQ(mesh.transport(), t.reason);
  EXPECT_EQ(mesh.group(MeshDim::kUlysses).kind(), t.nccl ? std::string("nccl") : w.kind());
  EXPECT_EQ(members(mesh.group(MeshDim::kUlysses), w.rank()).size(), static_cast<size_t>(w.size()));
  if (!core::kCudaBuilt) {
    EXPECT_EQ(bind_device(w), -1);
  }
}

}  // namespace
}  // namespace paradit::comm
