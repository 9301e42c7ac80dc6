#pragma once
// LocalCommunicator: the group of one process. Collectives are copies or no-ops, so code
// written for many ranks runs unchanged in a single process (and in builds without MPI).
// isend/irecv to rank 0 work (a ring of one): a send is buffered until a receive with the same
// tag takes it; waiting on a receive that no send can match is an Error (it would hang).

#include <memory>

#include "comm/communicator.h"

namespace paradit::comm {

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator();
  LocalCommunicator(LocalCommunicator&& other) noexcept;
  ~LocalCommunicator() override;

  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string kind() const override { return "local"; }
  std::unique_ptr<Communicator> split(int color, int key) const override;
  void barrier() const override {}

 protected:
  void alltoallv_bytes(const void* send, const std::vector<size_t>& send_counts,
                       const std::vector<size_t>& send_displs, void* recv,
                       const std::vector<size_t>& recv_counts,
                       const std::vector<size_t>& recv_displs) const override;
  void allgatherv_bytes(const void* send, size_t send_count, void* recv,
                        const std::vector<size_t>& recv_counts,
                        const std::vector<size_t>& recv_displs) const override;
  void allreduce_raw(void* data, size_t count, core::DType dtype, ReduceOp op) const override {}
  void broadcast_bytes(void* data, size_t nbytes, int root) const override {}
  Request isend_bytes(const void* data, size_t nbytes, int dest, int tag,
                      std::shared_ptr<void> keep_alive) const override;
  Request irecv_bytes(void* data, size_t nbytes, int source, int tag,
                      std::shared_ptr<void> keep_alive,
                      std::function<void()> on_done) const override;

 private:
  struct Mailbox;
  std::shared_ptr<Mailbox> box_;
};

}  // namespace paradit::comm
