#pragma once
// Which GPU each rank computes on, and whether NCCL can carry the job's device collectives.
//
// The ranks of one node (those that share memory with each other:
// MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)) take the node's GPUs in turn: local rank i uses
// device i mod (GPUs on the node). A node with more ranks than GPUs puts several ranks on one
// GPU; NCCL refuses that (one rank per GPU in a communicator), so such a job keeps the MPI
// groups, which stage device tensors through host memory (see communicator.h).

#include <string>

#include "comm/communicator.h"

namespace paradit::comm {

// Whether this build has the NCCL communicator (nccl_communicator.h).
#ifdef PARADIT_WITH_NCCL
inline constexpr bool kNcclBuilt = true;
#else
inline constexpr bool kNcclBuilt = false;
#endif

// This rank's place among the ranks of its node.
struct NodeRanks {
  int local_rank = 0;
  int local_size = 1;
};

// Collective over `world` (its host group's MPI communicator, split by shared memory); a world of
// one process is a node of one. A non-MPI world of several ranks → Error.
NodeRanks node_ranks(const Communicator& world);

// The device of local rank `local_rank` on a node with `device_count` GPUs; -1 when there are
// none.
int device_for(int local_rank, int device_count);

// Sets the calling thread's CUDA device to device_for(its local rank, the GPUs it sees) and
// returns it; -1 (nothing set) in a build without CUDA or where no GPU is visible. Collective
// over `world` in builds with CUDA. Call it once at start, before any device tensor, NCCL
// communicator or stream exists (the command line, test environments): device memory belongs to
// the device that was current when it was allocated.
int bind_device(const Communicator& world);

// How device tensors travel between the ranks of `world`.
struct DeviceTransport {
  bool nccl = false;   // NcclCommunicator groups; otherwise MPI groups with host staging
  std::string reason;  // one line for logs, e.g. "NCCL: 4 ranks, one GPU each"
};

// NCCL carries device tensors when the build has NCCL, the world has more than one rank, and no
// two ranks are on the same GPU (compared by UUID, so ranks that each see only their own GPU
// through CUDA_VISIBLE_DEVICES count as separate). Ranks sharing a GPU because a node has more
// ranks than GPUs keep MPI with host staging. Collective over `world`; every rank gets the same
// answer. Where every node has a GPU per rank yet two ranks share one because a rank is not on
// the device bind_device gives it, every rank throws an Error saying so.
DeviceTransport choose_device_transport(const Communicator& world);

}  // namespace paradit::comm
