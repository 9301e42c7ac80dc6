#pragma once
// MpiCommunicator: a group of MPI processes (Open MPI). Only in builds with PARADIT_WITH_MPI;
// include this header from mpi_*.cpp files (or code guarded by #ifdef PARADIT_WITH_MPI).
//
// Messages larger than max_message_bytes() (MPI counts are int) go in pieces: collectives then
// run as pairwise exchanges, sends as several MPI requests behind one Request.

#include <mpi.h>

#include "comm/communicator.h"

namespace paradit::comm {

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (freed by the destructor). Collective over `comm`.
  explicit MpiCommunicator(MPI_Comm comm);
  MpiCommunicator(MpiCommunicator&& other) noexcept;
  ~MpiCommunicator() override;

  // A private duplicate of MPI_COMM_WORLD. Collective.
  static std::unique_ptr<MpiCommunicator> world();

  MPI_Comm handle() const { return comm_; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string kind() const override { return "mpi"; }
  std::unique_ptr<Communicator> split(int color, int key) const override;
  void barrier() const override;

 protected:
  void alltoallv_bytes(const void* send, const std::vector<size_t>& send_counts,
                       const std::vector<size_t>& send_displs, void* recv,
                       const std::vector<size_t>& recv_counts,
                       const std::vector<size_t>& recv_displs) const override;
  void allgatherv_bytes(const void* send, size_t send_count, void* recv,
                        const std::vector<size_t>& recv_counts,
                        const std::vector<size_t>& recv_displs) const override;
  void allreduce_raw(void* data, size_t count, core::DType dtype, ReduceOp op) const override;
  void broadcast_bytes(void* data, size_t nbytes, int root) const override;
  Request isend_bytes(const void* data, size_t nbytes, int dest, int tag,
                      std::shared_ptr<void> keep_alive) const override;
  Request irecv_bytes(void* data, size_t nbytes, int source, int tag,
                      std::shared_ptr<void> keep_alive,
                      std::function<void()> on_done) const override;

 private:
  // Pairwise exchange for messages too large for one MPI collective call.
  void exchange_pairwise(const std::vector<const char*>& send_ptrs,
                         const std::vector<size_t>& send_counts,
                         const std::vector<char*>& recv_ptrs,
                         const std::vector<size_t>& recv_counts) const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  // A duplicate for the pairwise fallback, so its messages never match the user's isend/irecv.
  MPI_Comm internal_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace paradit::comm
