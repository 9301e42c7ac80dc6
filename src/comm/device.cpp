#include "comm/device.h"

#ifdef PARADIT_WITH_CUDA
#include "backend/cuda/runtime.h"
#endif

namespace paradit::comm {

#ifdef PARADIT_WITH_MPI
namespace detail {
// In mpi_device.cpp: false when `comm` is not an MpiCommunicator.
bool mpi_node_ranks(const Communicator& comm, NodeRanks* out);
}  // namespace detail
#endif

NodeRanks node_ranks(const Communicator& world) {
#ifdef PARADIT_WITH_MPI
  NodeRanks r;
  if (detail::mpi_node_ranks(world.host_group(), &r)) return r;
#endif
  PARADIT_CHECK(world.size() == 1, "node_ranks: a ", world.kind(), " world of ", world.size(),
                " ranks does not say which ranks share a node (an MPI world does)");
  return NodeRanks{};
}

int device_for(int local_rank, int device_count) {
  PARADIT_CHECK(local_rank >= 0, "device_for: local rank ", local_rank);
  return device_count > 0 ? local_rank % device_count : -1;
}

int bind_device(const Communicator& world) {
#ifdef PARADIT_WITH_CUDA
  // Every rank takes part in the node split, GPU or not, so that the collective matches.
  const NodeRanks node = node_ranks(world);
  const int device = device_for(node.local_rank, backend::cuda::device_count());
  if (device >= 0) backend::cuda::set_device(device);
  return device;
#else
  return -1;
#endif
}

DeviceTransport choose_device_transport(const Communicator& world) {
  DeviceTransport t;
  // The same on every rank (one binary, one world size): no communication needed to agree.
  if (!kNcclBuilt) {
    t.reason = "MPI with host staging: this build has no NCCL";
    return t;
  }
  if (world.size() == 1) {
    t.reason = "a single process: no device communication";
    return t;
  }
#ifdef PARADIT_WITH_CUDA
  const NodeRanks node = node_ranks(world);
  const int count = backend::cuda::device_count();
  const bool fits = count >= node.local_size;
  const int want = device_for(node.local_rank, count);
  const int have = count > 0 ? backend::cuda::current_device() : -1;
  const bool bound = have == want;
  // Max-reduced: any rank's "no" wins; the counts become the worst node's.
  core::Tensor flags = core::Tensor::from_vector_i64(
      {fits ? 0 : 1, fits && !bound ? 1 : 0, node.local_size, -count}, {4});
  world.all_reduce(flags, ReduceOp::kMax);
  const std::vector<int64_t> f = flags.to_vector_i64();
  if (f[0] != 0) {
    t.reason = "MPI with host staging: a node runs more ranks than it has GPUs (up to " +
               std::to_string(f[2]) + " ranks on a node, as few as " + std::to_string(-f[3]) +
               " GPUs; NCCL needs a GPU per rank)";
    return t;
  }
  if (f[1] != 0) {
    if (!bound) {
      fail("device communication: rank ", world.rank(), " (local rank ", node.local_rank, " of ",
           node.local_size, " on its node) is on CUDA device ", have, " but its device is ", want,
           ": call comm::bind_device(world) before building a device mesh");
    }
    fail(
        "device communication: another rank is not on the CUDA device comm::bind_device gives "
        "it (its error says which)");
  }
  t.nccl = true;
  t.reason = "NCCL: " + std::to_string(world.size()) + " ranks, one GPU each";
#endif
  return t;
}

}  // namespace paradit::comm
