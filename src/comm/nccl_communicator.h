#pragma once
// NcclCommunicator: a group of ranks, one GPU each, whose collectives move device memory with
// NCCL. Only in builds with PARADIT_WITH_NCCL (include this header under that #ifdef); no CUDA
// or NCCL header is needed to include it.
//
// Built over a host communicator of the same ranks (MPI in practice), which it keeps: the
// group's first rank makes the ncclUniqueId and broadcasts it over that group, every rank then
// joins the NCCL communicator (FasterTransformer's nccl_utils pattern). Host tensors given to
// this group (counts, sizes) run on that host group (host_group()); split() splits it and builds
// NCCL over each part. A group of one never touches NCCL: its collectives are copies
// (Communicator), and a send to itself is staged through its host group.
//
// Streams. Each communicator has a communication stream of its own on its device (high
// priority, so that its kernels get SMs while compute kernels run). A collective waits there for
// an event recorded on the calling thread's current stream, runs, and makes the current stream
// wait for its completion event: ordered without synchronizing the host.
//
// Sends and receives. NCCL's ncclSend/ncclRecv block their stream until the peer posts the
// matching call, so a rank that receives before it sends (every rank of a ring does) deadlocks
// unless its sends and receives are in one NCCL group. isend/irecv therefore record an event on
// the current stream (what the transfer must wait for) and queue; the queued transfers are
// enqueued as one group by flush(), or by the next wait(), test(), collective or barrier on this
// communicator. The transfer still overlaps the compute enqueued between the post and the wait:
// it depends only on the event recorded at the post. Messages between two ranks match in the
// order they are posted, whatever their tags (NCCL has no tags): both sides must post them in
// the same order. One stream per communicator also means that a receive posted ahead (a
// prefetch) holds back everything enqueued after it on this communicator until its message
// arrives: the sender of a prefetched message must not need this rank's later sends first
// (PipeFusion's returns with num_pipeline_patch ≥ stages do not).
//
// Failure. Every NCCL and CUDA call is checked (paradit::Error naming the call and NCCL's text);
// test() and the destructor's wait check ncclCommGetAsyncError, so a failed peer becomes an
// error instead of a spin. A communicator destroyed while an exception unwinds, after an error,
// or whose queued work cannot finish is aborted (ncclCommAbort) instead of destroyed:
// destroying waits for operations that a failed peer will never complete. comm::abort_job then
// ends the job.

#include <memory>

#include "comm/communicator.h"

namespace paradit::comm {

namespace detail {
// The NCCL communicator, stream, events and queued transfers (nccl_communicator.cpp); shared
// with the Requests, so that a Request outliving its communicator stays valid.
struct NcclState;
}  // namespace detail

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `host` (a host-memory communicator; kept). The calling thread's current CUDA
  // device is this rank's GPU (comm::bind_device); every rank's must differ.
  explicit NcclCommunicator(std::unique_ptr<Communicator> host);
  NcclCommunicator(NcclCommunicator&& other) noexcept;
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string kind() const override { return "nccl"; }
  bool device_memory() const override { return true; }
  const Communicator& host_group() const override { return *host_; }
  // Splits the host group and builds an NcclCommunicator over each part. Collective.
  std::unique_ptr<Communicator> split(int color, int key) const override;
  // Starts the queued sends and receives, then a host barrier over the host group.
  void barrier() const override;
  void flush() const override;

  // The CUDA device this communicator runs on (-1 for a group of one).
  int device() const;
  // Ends every operation in flight without waiting for the peers (ncclCommAbort). For error
  // paths; the communicator refuses any further operation.
  void abort();

 protected:
  void info_changed() const override;  // the watchdog's view of the group follows the label
  void alltoallv_bytes(const void* send, const std::vector<size_t>& send_counts,
                       const std::vector<size_t>& send_displs, void* recv,
                       const std::vector<size_t>& recv_counts,
                       const std::vector<size_t>& recv_displs) const override;
  void allgatherv_bytes(const void* send, size_t send_count, void* recv,
                        const std::vector<size_t>& recv_counts,
                        const std::vector<size_t>& recv_displs) const override;
  void allreduce_raw(void* data, size_t count, core::DType dtype, ReduceOp op) const override;
  bool reduces_half() const override { return true; }
  void broadcast_bytes(void* data, size_t nbytes, int root) const override;
  Request isend_bytes(const void* data, size_t nbytes, int dest, int tag,
                      std::shared_ptr<void> keep_alive) const override;
  Request irecv_bytes(void* data, size_t nbytes, int source, int tag,
                      std::shared_ptr<void> keep_alive,
                      std::function<void()> on_done) const override;

 private:
  std::shared_ptr<detail::NcclState> state_;
  std::unique_ptr<Communicator> host_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace paradit::comm
