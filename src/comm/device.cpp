#include "comm/device.h"

#include <algorithm>
#include <climits>
#include <cstring>

#ifdef PARADIT_WITH_CUDA
#include <cuda_runtime_api.h>

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
  const int have = count > 0 ? backend::cuda::current_device() : -1;
  const int want = device_for(node.local_rank, count);
  // What every rank reports: whether it has a GPU, whether its node has a GPU per rank, whether
  // it is on the device bind_device gives it, its node's rank and GPU counts, and its GPU's UUID
  // (two ranks share a GPU exactly when their UUIDs are equal, whatever each one sees).
  constexpr int kFields = 5, kUuid = 16, kRecord = kFields * 4 + kUuid;
  core::Tensor mine = core::Tensor::zeros({1, kRecord}, core::DType::U8);
  auto* m = static_cast<unsigned char*>(mine.raw_data());
  const int32_t fields[kFields] = {count > 0 ? 1 : 0, count >= node.local_size ? 1 : 0,
                                   have == want ? 1 : 0, node.local_size, count};
  std::memcpy(m, fields, sizeof fields);
  if (count > 0) {
    cudaDeviceProp prop{};
    const cudaError_t e = cudaGetDeviceProperties(&prop, have);
    PARADIT_CHECK(e == cudaSuccess, "cudaGetDeviceProperties(", have,
                  ") failed: ", cudaGetErrorString(e));
    std::memcpy(m + sizeof fields, prop.uuid.bytes, kUuid);
  }
  const core::Tensor all = world.all_gather(mine, 0);  // (world size, kRecord)
  const auto* a = static_cast<const unsigned char*>(all.raw_data());
  bool every_gpu = true, every_fits = true, every_bound = true, distinct = true;
  int32_t max_ranks = 0, min_gpus = INT32_MAX;
  for (int i = 0; i < world.size(); ++i) {
    int32_t f[kFields];
    std::memcpy(f, a + i * kRecord, sizeof f);
    every_gpu = every_gpu && f[0] == 1;
    every_fits = every_fits && f[1] == 1;
    every_bound = every_bound && f[2] == 1;
    max_ranks = std::max(max_ranks, f[3]);
    min_gpus = std::min(min_gpus, f[4]);
    for (int j = 0; j < i; ++j) {
      if (std::memcmp(a + i * kRecord + sizeof f, a + j * kRecord + sizeof f, kUuid) == 0) {
        distinct = false;
      }
    }
  }
  if (!every_gpu) {
    t.reason = "MPI with host staging: a rank sees no GPU";
    return t;
  }
  if (distinct) {
    t.nccl = true;
    t.reason = "NCCL: " + std::to_string(world.size()) + " ranks, one GPU each";
    return t;
  }
  if (every_fits && !every_bound) {
    // Enough GPUs everywhere, yet two ranks on one: a rank was not bound to its device.
    if (have != want) {
      fail("device communication: rank ", world.rank(), " (local rank ", node.local_rank, " of ",
           node.local_size, " on its node) is on CUDA device ", have, " but its device is ", want,
           ": call comm::bind_device(world) before building a device mesh");
    }
    fail(
        "device communication: another rank is not on the CUDA device comm::bind_device gives "
        "it (its error says which)");
  }
  t.reason = "MPI with host staging: ranks share a GPU (up to " + std::to_string(max_ranks) +
             " ranks on a node, as few as " + std::to_string(min_gpus) +
             " GPUs; NCCL needs a GPU per rank)";
#endif
  return t;
}

}  // namespace paradit::comm
