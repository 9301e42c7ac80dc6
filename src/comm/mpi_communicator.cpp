#include "comm/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstring>

namespace paradit::comm {

namespace {

void check_mpi(int rc, const char* call, int rank) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail(call, " failed on rank ", rank, ": ", text);
}

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

// One message piece never exceeds this (and never INT_MAX, the MPI count type's limit).
size_t piece_bytes() { return std::min<size_t>(max_message_bytes(), INT_MAX); }

// Several MPI requests (the pieces of one message) behind one Request.
class MpiRequest final : public Request::Impl {
 public:
  MpiRequest(std::vector<MPI_Request> requests, std::shared_ptr<void> keep_alive,
             std::function<void()> on_done, int rank, const char* op,
             std::shared_ptr<const GroupInfo> group)
      : requests_(std::move(requests)),
        keep_alive_(std::move(keep_alive)),
        on_done_(std::move(on_done)),
        rank_(rank),
        op_(op),
        group_(std::move(group)) {}
  ~MpiRequest() override {
    // Request::~Request waits first; this is for an impl dropped after a failed wait.
    if (!done_ && !mpi_finalized()) {
      const WaitScope waiting(op_, group_);
      MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    }
  }
  void wait() override {
    if (done_) return;
    const WaitScope waiting(op_, group_);
    check_mpi(
        MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE),
        "MPI_Waitall", rank_);
    finish();
  }
  bool test() override {
    if (done_) return true;
    int flag = 0;
    check_mpi(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &flag,
                          MPI_STATUSES_IGNORE),
              "MPI_Testall", rank_);
    if (flag) finish();
    return done_;
  }

 private:
  void finish() {
    done_ = true;
    if (on_done_) on_done_();
    keep_alive_.reset();
  }
  std::vector<MPI_Request> requests_;
  std::shared_ptr<void> keep_alive_;
  std::function<void()> on_done_;
  int rank_;
  const char* op_;  // "wait on isend" / "wait on irecv"
  std::shared_ptr<const GroupInfo> group_;
  bool done_ = false;
};

// Posts the pieces of one message (isend or irecv) on `comm`.
template <typename Post>
std::vector<MPI_Request> post_pieces(size_t nbytes, Post&& post) {
  const size_t piece = piece_bytes();
  std::vector<MPI_Request> requests;
  size_t off = 0;
  do {
    const size_t n = std::min(piece, nbytes - off);
    requests.push_back(MPI_REQUEST_NULL);
    post(off, static_cast<int>(n), &requests.back());
    off += n;
  } while (off < nbytes);
  return requests;
}

bool fits(const std::vector<size_t>& counts, const std::vector<size_t>& displs) {
  const size_t limit = piece_bytes();
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] > limit || displs[i] > limit || displs[i] + counts[i] > limit) return false;
  }
  return true;
}

std::vector<int> to_int(const std::vector<size_t>& v) {
  return std::vector<int>(v.begin(), v.end());
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  PARADIT_CHECK(comm != MPI_COMM_NULL, "MpiCommunicator: null communicator");
  // Failures come back as codes and become paradit::Error naming the call and the rank.
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank", -1);
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size", rank_);
  {
    const WaitScope waiting("dup", group_info());
    check_mpi(MPI_Comm_dup(comm_, &internal_), "MPI_Comm_dup", rank_);
  }
  // The world ranks of the group, for messages (the watchdog's in particular).
  MPI_Group group = MPI_GROUP_NULL, world = MPI_GROUP_NULL;
  std::vector<int> mine(static_cast<size_t>(size_)), theirs(static_cast<size_t>(size_), -1);
  for (int i = 0; i < size_; ++i) mine[i] = i;
  if (MPI_Comm_group(comm_, &group) == MPI_SUCCESS &&
      MPI_Comm_group(MPI_COMM_WORLD, &world) == MPI_SUCCESS) {
    MPI_Group_translate_ranks(group, size_, mine.data(), world, theirs.data());
  }
  if (group != MPI_GROUP_NULL) MPI_Group_free(&group);
  if (world != MPI_GROUP_NULL) MPI_Group_free(&world);
  set_world_ranks(theirs);
}

MpiCommunicator::MpiCommunicator(MpiCommunicator&& other) noexcept
    : Communicator(std::move(other)),
      comm_(other.comm_),
      internal_(other.internal_),
      rank_(other.rank_),
      size_(other.size_) {
  other.comm_ = MPI_COMM_NULL;
  other.internal_ = MPI_COMM_NULL;
}

MpiCommunicator::~MpiCommunicator() {
  // After MPI_Finalize the handles are gone with the library; freeing them would be an error.
  if (mpi_finalized()) return;
  if (internal_ != MPI_COMM_NULL) MPI_Comm_free(&internal_);
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::world() {
  MPI_Comm dup = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &dup), "MPI_Comm_dup(MPI_COMM_WORLD)", -1);
  return std::make_unique<MpiCommunicator>(dup);
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) const {
  PARADIT_CHECK(color >= 0, "split: color ", color, " is negative");
  MPI_Comm sub = MPI_COMM_NULL;
  {
    const WaitScope waiting("split", group_info());
    check_mpi(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split", rank_);
  }
  return std::make_unique<MpiCommunicator>(sub);
}

void MpiCommunicator::barrier() const {
  const WaitScope waiting("barrier", group_info());
  check_mpi(MPI_Barrier(comm_), "MPI_Barrier", rank_);
}

void MpiCommunicator::exchange_pairwise(const std::vector<const char*>& send_ptrs,
                                        const std::vector<size_t>& send_counts,
                                        const std::vector<char*>& recv_ptrs,
                                        const std::vector<size_t>& recv_counts) const {
  PARADIT_CHECK(send_counts[rank_] == recv_counts[rank_], "mpi exchange: rank ", rank_, " sends ",
                send_counts[rank_], " bytes to itself but expects ", recv_counts[rank_]);
  std::memmove(recv_ptrs[rank_], send_ptrs[rank_], send_counts[rank_]);
  constexpr int kTag = 1;
  // Step d talks to rank+d and rank−d, so every step pairs all ranks at once.
  for (int d = 1; d < size_; ++d) {
    const int to = (rank_ + d) % size_;
    const int from = (rank_ - d + size_) % size_;
    std::vector<MPI_Request> requests;
    if (recv_counts[from] > 0) {
      auto r = post_pieces(recv_counts[from], [&](size_t off, int n, MPI_Request* req) {
        check_mpi(MPI_Irecv(recv_ptrs[from] + off, n, MPI_BYTE, from, kTag, internal_, req),
                  "MPI_Irecv", rank_);
      });
      requests.insert(requests.end(), r.begin(), r.end());
    }
    if (send_counts[to] > 0) {
      auto s = post_pieces(send_counts[to], [&](size_t off, int n, MPI_Request* req) {
        check_mpi(MPI_Isend(send_ptrs[to] + off, n, MPI_BYTE, to, kTag, internal_, req),
                  "MPI_Isend", rank_);
      });
      requests.insert(requests.end(), s.begin(), s.end());
    }
    const WaitScope waiting("pairwise exchange", group_info());
    check_mpi(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE),
              "MPI_Waitall", rank_);
  }
}

void MpiCommunicator::alltoallv_bytes(const void* send, const std::vector<size_t>& send_counts,
                                      const std::vector<size_t>& send_displs, void* recv,
                                      const std::vector<size_t>& recv_counts,
                                      const std::vector<size_t>& recv_displs) const {
  if (fits(send_counts, send_displs) && fits(recv_counts, recv_displs)) {
    const auto sc = to_int(send_counts), sd = to_int(send_displs);
    const auto rc = to_int(recv_counts), rd = to_int(recv_displs);
    const WaitScope waiting("all_to_all", group_info());
    check_mpi(MPI_Alltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(), rd.data(),
                            MPI_BYTE, comm_),
              "MPI_Alltoallv", rank_);
    return;
  }
  std::vector<const char*> sp(size_);
  std::vector<char*> rp(size_);
  for (int i = 0; i < size_; ++i) {
    sp[i] = static_cast<const char*>(send) + send_displs[i];
    rp[i] = static_cast<char*>(recv) + recv_displs[i];
  }
  exchange_pairwise(sp, send_counts, rp, recv_counts);
}

void MpiCommunicator::allgatherv_bytes(const void* send, size_t send_count, void* recv,
                                       const std::vector<size_t>& recv_counts,
                                       const std::vector<size_t>& recv_displs) const {
  PARADIT_CHECK(send_count == recv_counts[rank_], "all_gather: rank ", rank_, " contributes ",
                send_count, " bytes but the counts say ", recv_counts[rank_]);
  if (fits(recv_counts, recv_displs)) {
    const auto rc = to_int(recv_counts), rd = to_int(recv_displs);
    const WaitScope waiting("all_gather", group_info());
    check_mpi(MPI_Allgatherv(send, static_cast<int>(send_count), MPI_BYTE, recv, rc.data(),
                             rd.data(), MPI_BYTE, comm_),
              "MPI_Allgatherv", rank_);
    return;
  }
  std::vector<const char*> sp(size_, static_cast<const char*>(send));
  std::vector<size_t> sc(size_, send_count);
  std::vector<char*> rp(size_);
  for (int i = 0; i < size_; ++i) rp[i] = static_cast<char*>(recv) + recv_displs[i];
  exchange_pairwise(sp, sc, rp, recv_counts);
}

void MpiCommunicator::allreduce_raw(void* data, size_t count, core::DType dtype,
                                    ReduceOp op) const {
  MPI_Datatype type = MPI_FLOAT;
  switch (dtype) {
    case core::DType::F32:
      type = MPI_FLOAT;
      break;
    case core::DType::F64:
      type = MPI_DOUBLE;
      break;
    case core::DType::I64:
      type = MPI_INT64_T;
      break;
    case core::DType::I32:
      type = MPI_INT32_T;
      break;
    default:
      fail("all_reduce: no MPI type for ", core::dtype_name(dtype));
  }
  const MPI_Op mpi_op = op == ReduceOp::kSum ? MPI_SUM : MPI_MAX;
  const size_t esz = core::dtype_size(dtype);
  const size_t per_call = std::max<size_t>(piece_bytes() / esz, 1);
  char* p = static_cast<char*>(data);
  const WaitScope waiting("all_reduce", group_info());
  for (size_t off = 0; off < count; off += per_call) {
    const size_t n = std::min(per_call, count - off);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, p + off * esz, static_cast<int>(n), type, mpi_op, comm_),
              "MPI_Allreduce", rank_);
  }
}

void MpiCommunicator::broadcast_bytes(void* data, size_t nbytes, int root) const {
  const size_t piece = piece_bytes();
  char* p = static_cast<char*>(data);
  const WaitScope waiting("broadcast", group_info());
  for (size_t off = 0; off < nbytes; off += piece) {
    const size_t n = std::min(piece, nbytes - off);
    check_mpi(MPI_Bcast(p + off, static_cast<int>(n), MPI_BYTE, root, comm_), "MPI_Bcast", rank_);
  }
}

Request MpiCommunicator::isend_bytes(const void* data, size_t nbytes, int dest, int tag,
                                     std::shared_ptr<void> keep_alive) const {
  const char* p = static_cast<const char*>(data);
  auto requests = post_pieces(nbytes, [&](size_t off, int n, MPI_Request* req) {
    check_mpi(MPI_Isend(p + off, n, MPI_BYTE, dest, tag, comm_, req), "MPI_Isend", rank_);
  });
  return Request(std::make_unique<MpiRequest>(std::move(requests), std::move(keep_alive),
                                              std::function<void()>(), rank_, "wait on a send",
                                              group_info()));
}

Request MpiCommunicator::irecv_bytes(void* data, size_t nbytes, int source, int tag,
                                     std::shared_ptr<void> keep_alive,
                                     std::function<void()> on_done) const {
  char* p = static_cast<char*>(data);
  auto requests = post_pieces(nbytes, [&](size_t off, int n, MPI_Request* req) {
    check_mpi(MPI_Irecv(p + off, n, MPI_BYTE, source, tag, comm_, req), "MPI_Irecv", rank_);
  });
  return Request(std::make_unique<MpiRequest>(std::move(requests), std::move(keep_alive),
                                              std::move(on_done), rank_, "wait on a receive",
                                              group_info()));
}

}  // namespace paradit::comm
