#pragma once
// Communicator: a group of processes and the typed collectives the parallel layer needs.
//
// One abstract class, three implementations: MpiCommunicator (Open MPI, src/comm/mpi_*.cpp, only
// in builds with PARADIT_WITH_MPI), NcclCommunicator (GPUs, nccl_communicator.*, only in builds
// with PARADIT_WITH_NCCL) and LocalCommunicator (one process; collectives are copies). A build
// without MPI keeps the same API with size-1 groups, so the layers above never ask which one
// they hold.
//
// Collectives take tensors of any dtype (moved as bytes; all_reduce needs a numeric dtype), any
// strides (packed into a message buffer when needed) and on either device. Every rank of the
// group must call a collective with the same shape, dtype, device and arguments, except where a
// comment says a size may differ per rank. Communicators are RAII (the group is freed with the
// object), non-copyable and movable; sub-groups come from split().
//
// Devices. Each implementation's byte primitives take either host memory (MPI, local) or device
// memory (NCCL): device_memory(). A tensor meets its transport one of three ways (route()):
//   - same side: direct; message buffers are allocated on the tensor's device and packed there;
//   - a device tensor on a host transport: staged: copied to host memory, sent, copied back up
//     (what a job with several ranks on one GPU runs, where NCCL cannot);
//   - a host tensor on a device transport (counts, sizes, small metadata): the collective runs
//     on host_group(), the same ranks over a host transport.
// A group of one never moves data: its collectives are copies on the tensor's own device.
//
// Ordering on the GPU. A device transport enqueues its work on a stream of its own, after the
// work the calling thread's current stream (backend/cuda/runtime.h) had enqueued when the call
// was made, and makes the current stream wait for its completion: collectives return before the
// data has moved, yet everything enqueued later on the current stream sees the result. Request
// ::wait() is likewise stream-ordered for a device transport. Staging copies synchronize.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/watchdog.h"
#include "core/tensor.h"

namespace paradit::comm {

enum class ReduceOp { kSum, kMax };

// How a tensor meets a communicator's transport (see the header comment).
enum class Route {
  kDirect,     // the transport takes the tensor's memory
  kStage,      // a device tensor on a host transport: through host buffers
  kHostGroup,  // a host tensor on a device transport: on host_group()
};
const char* route_name(Route r);  // "direct", "stage", "host group"

// The operation kinds whose bytes are counted (see Communicator::bytes()).
enum class OpKind { kAllToAll, kAllGather, kAllReduce, kBroadcast, kSend };
constexpr int kNumOpKinds = 5;

// Bytes this rank handed to other ranks, per operation kind, since construction or the last
// reset_bytes(). What counts: all_to_all: the chunks for the other ranks (its own chunk stays
// local); all_gather: its contribution × (size − 1); all_reduce: 2·(size − 1)/size × the tensor
// (what a ring all-reduce sends); broadcast: the tensor × (size − 1) on the root, 0 elsewhere;
// send: every isend. A size-1 group counts 0 for collectives. A device transport's counters
// include what its host group carried for it.
struct ByteCounters {
  uint64_t all_to_all = 0;
  uint64_t all_gather = 0;
  uint64_t all_reduce = 0;
  uint64_t broadcast = 0;
  uint64_t send = 0;
  uint64_t total() const { return all_to_all + all_gather + all_reduce + broadcast + send; }
};

// Handle of an asynchronous send or receive. wait() blocks until it is done; test() tells
// without blocking. RAII: a live Request waits in its destructor, so the buffer it uses stays
// valid and no message is left in flight. Movable, not copyable.
//
// On a device transport wait() does not block the host: it makes the calling thread's current
// stream wait for the transfer (work enqueued there afterwards sees the data) and releases the
// buffers, whose blocks the caching allocator then hands out again only to work ordered after
// that wait on the stream they were allocated on (the current stream of the posting thread).
// test() is true once the transfer has completed on the device.
class Request {
 public:
  // What a communicator puts behind a Request.
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual void wait() = 0;
    virtual bool test() = 0;
  };

  Request() = default;
  explicit Request(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
  Request(Request&&) noexcept = default;
  Request& operator=(Request&& other) noexcept;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request();

  void wait();
  bool test();  // true once done (then wait() returns at once)
  bool pending() const { return impl_ != nullptr; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Waits for every request in order.
void wait_all(std::vector<Request>& requests);

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "mpi", "nccl" or "local": for messages.
  virtual std::string kind() const = 0;

  // Whether the byte primitives take device memory (NCCL) rather than host memory (MPI, local).
  virtual bool device_memory() const { return false; }
  // The same ranks in the same order over a host-memory transport: this group itself when its
  // primitives take host memory; for a device transport the host group it was built over (NCCL:
  // an MPI communicator). Host tensors given to a device transport run there.
  virtual const Communicator& host_group() const { return *this; }
  // How a tensor on `device` is carried (see the header comment).
  Route route(core::Device device) const;

  // A sub-group of the ranks that pass the same `color`, ordered by `key` (then by rank).
  // Collective over this group.
  virtual std::unique_ptr<Communicator> split(int color, int key) const = 0;
  virtual void barrier() const = 0;

  // ---- typed collectives ----
  // Splits x into size() equal chunks along scatter_dim; chunk j goes to rank j. Returns the
  // chunks received from ranks 0..size−1 concatenated along gather_dim. Ulysses uses it with
  // (scatter heads, gather sequence) and back. x.dim(scatter_dim) % size() ≠ 0 → Error.
  core::Tensor all_to_all(const core::Tensor& x, int scatter_dim, int gather_dim) const;
  // Uneven chunks (Ulysses over a head count the degree does not divide): chunk j is the next
  // scatter_counts[j] slices of x along scatter_dim (the same counts on every rank; empty: equal
  // chunks); rank i's x holds gather_counts[i] slices along gather_dim (empty: as many on every
  // rank as here). Returns x's shape with scatter_dim = scatter_counts[rank()] and gather_dim =
  // Σ gather_counts: the chunks from ranks 0..size−1 concatenated along gather_dim. A count may
  // be 0. scatter_dim ≠ gather_dim.
  core::Tensor all_to_all(const core::Tensor& x, int scatter_dim, int gather_dim,
                          const std::vector<int64_t>& scatter_counts,
                          const std::vector<int64_t>& gather_counts) const;
  // Unequal splits along one dim: send_counts[j] slices of x along `dim` (in order) go to rank
  // j; returns what ranks 0..size−1 sent here, concatenated along `dim`. The other dims must
  // agree across ranks. recv_counts (what each rank sends here) may be given; when empty the
  // counts are exchanged first.
  core::Tensor all_to_all_v(const core::Tensor& x, int dim, const std::vector<int64_t>& send_counts,
                            std::vector<int64_t> recv_counts = {}) const;
  // Concatenates every rank's x along `dim`, in rank order. counts empty: every rank has the
  // same x.dim(dim); otherwise counts[i] = rank i's x.dim(dim) (sizes may differ per rank).
  core::Tensor all_gather(const core::Tensor& x, int dim,
                          const std::vector<int64_t>& counts = {}) const;
  // In place (writes into x's storage; x may be a view): element-wise sum or max over ranks.
  // F32, F64, I64, I32 natively; BF16/F16 natively on a transport that reduces them (NCCL),
  // else reduced in F32 and rounded back.
  void all_reduce(const core::Tensor& x, ReduceOp op = ReduceOp::kSum) const;
  // In place: every rank's x becomes root's x.
  void broadcast(const core::Tensor& x, int root) const;

  // ---- point to point (asynchronous) ----
  // The buffers must stay untouched until the Request is done (the Request keeps the storage
  // alive). Messages between the same pair with the same tag arrive in the order sent; NCCL has
  // no tags and matches a pair's messages in posting order (nccl_communicator.h).
  Request isend(const core::Tensor& x, int dest, int tag) const;
  Request irecv(const core::Tensor& x, int source, int tag) const;
  // Starts the sends and receives posted so far on a transport that batches them (NCCL groups
  // them, so that a rank's sends and receives progress together and no ring deadlocks; they
  // otherwise start at the next wait, test, collective or barrier on this group). A no-op on
  // the others. Call it after posting transfers that should overlap the work that follows.
  virtual void flush() const {}

  // ---- byte counters (for benchmarks) ----
  ByteCounters bytes() const;
  void reset_bytes() const;

  // ---- naming (messages, the watchdog) ----
  // The group's label ("world" unless set; the process mesh names its groups "ulysses", "ring",
  // "cfg", "pp", "dp", "sequence", "replica") and its ranks in the world (0..size−1 unless the
  // implementation knows better).
  std::shared_ptr<const GroupInfo> group_info() const;
  void set_label(const std::string& label) const;

 protected:
  Communicator() = default;
  Communicator(Communicator&& other) noexcept;
  Communicator& operator=(Communicator&&) = delete;

  // Byte-level primitives the implementations provide. Counts and displacements in bytes;
  // messages of any size (implementations chunk what their transport cannot take at once).
  // Buffers are device memory when device_memory(), else host memory; the typed collectives
  // never hand them the other kind. Never called on a group of one except for isend/irecv.
  virtual void alltoallv_bytes(const void* send, const std::vector<size_t>& send_counts,
                               const std::vector<size_t>& send_displs, void* recv,
                               const std::vector<size_t>& recv_counts,
                               const std::vector<size_t>& recv_displs) const = 0;
  virtual void allgatherv_bytes(const void* send, size_t send_count, void* recv,
                                const std::vector<size_t>& recv_counts,
                                const std::vector<size_t>& recv_displs) const = 0;
  // In place over `count` elements of `dtype` (F32, F64, I64, I32; BF16 and F16 too when
  // reduces_half()).
  virtual void allreduce_raw(void* data, size_t count, core::DType dtype, ReduceOp op) const = 0;
  // Whether allreduce_raw takes BF16 and F16 (otherwise they are widened to F32 first).
  virtual bool reduces_half() const { return false; }
  virtual void broadcast_bytes(void* data, size_t nbytes, int root) const = 0;
  // `keep_alive` is held by the request until done; `on_done` runs once when it completes.
  virtual Request isend_bytes(const void* data, size_t nbytes, int dest, int tag,
                              std::shared_ptr<void> keep_alive) const = 0;
  virtual Request irecv_bytes(void* data, size_t nbytes, int source, int tag,
                              std::shared_ptr<void> keep_alive,
                              std::function<void()> on_done) const = 0;

  void count(OpKind kind, uint64_t nbytes) const;

  // Another communicator's point-to-point primitives, for an implementation that forwards host
  // messages to its host group.
  static Request forward_isend_bytes(const Communicator& to, const void* data, size_t nbytes,
                                     int dest, int tag, std::shared_ptr<void> keep_alive) {
    return to.isend_bytes(data, nbytes, dest, tag, std::move(keep_alive));
  }
  static Request forward_irecv_bytes(const Communicator& to, void* data, size_t nbytes, int source,
                                     int tag, std::shared_ptr<void> keep_alive,
                                     std::function<void()> on_done) {
    return to.irecv_bytes(data, nbytes, source, tag, std::move(keep_alive), std::move(on_done));
  }

 private:
  void check_peer(int peer, const char* what) const;
  // host_group(), checked to take host memory (a device transport's host group must).
  const Communicator& host_side() const;
  mutable std::atomic<uint64_t> bytes_[kNumOpKinds] = {};
  mutable std::shared_ptr<const GroupInfo> info_;

 protected:
  // The world ranks of the group, in group order (for messages).
  void set_world_ranks(std::vector<int> ranks) const;
  // Called after the label or the world ranks changed (group_info() has the new ones).
  virtual void info_changed() const {}
};

// The largest message (bytes) the MPI transport sends in one call; larger ones are split.
// Defaults to 1 GiB (MPI counts are int). Tests lower it to exercise the chunked paths.
size_t max_message_bytes();
void set_max_message_bytes(size_t nbytes);

}  // namespace paradit::comm
