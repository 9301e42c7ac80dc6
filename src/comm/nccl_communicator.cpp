// NcclCommunicator (nccl_communicator.h). CMake compiles this file only in builds with NCCL; the
// guard keeps it empty should another build pick it up.
#ifdef PARADIT_WITH_NCCL

#include "comm/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "backend/cuda/allocator.h"
#include "backend/cuda/runtime.h"

namespace paradit::comm {

namespace {

[[noreturn]] void fail_cuda(cudaError_t err, const char* call, int rank) {
  fail("CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") in ", call,
       " on rank ", rank, " of an NCCL group");
}

[[noreturn]] void fail_nccl(ncclResult_t result, const char* call, int rank) {
  const char* detail = ncclGetLastError(nullptr);
  fail("NCCL error in ", call, " on rank ", rank, " of its group: ", ncclGetErrorString(result),
       detail != nullptr && detail[0] != '\0' ? std::string(" (") + detail + ")" : std::string());
}

}  // namespace

// A failing call becomes a paradit::Error naming the call, the error and the group rank.
#define PARADIT_NCCL_CUDA(rank, call)                                      \
  do {                                                                     \
    const cudaError_t paradit_err_ = (call);                               \
    if (paradit_err_ != cudaSuccess) fail_cuda(paradit_err_, #call, rank); \
  } while (0)
#define PARADIT_NCCL(rank, call)                                           \
  do {                                                                     \
    const ncclResult_t paradit_res_ = (call);                              \
    if (paradit_res_ != ncclSuccess) fail_nccl(paradit_res_, #call, rank); \
  } while (0)

namespace {

// An owned CUDA event without timing (cheaper to record and wait on). Move-only.
class OwnedEvent {
 public:
  OwnedEvent() = default;
  explicit OwnedEvent(int rank) {
    PARADIT_NCCL_CUDA(rank, cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
  }
  ~OwnedEvent() {
    if (event_ != nullptr) cudaEventDestroy(event_);  // released once its work completes
  }
  OwnedEvent(OwnedEvent&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}
  OwnedEvent& operator=(OwnedEvent&& other) noexcept {
    if (this != &other) {
      if (event_ != nullptr) cudaEventDestroy(event_);
      event_ = std::exchange(other.event_, nullptr);
    }
    return *this;
  }
  OwnedEvent(const OwnedEvent&) = delete;
  OwnedEvent& operator=(const OwnedEvent&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// ncclGroupStart/End: an error inside still closes the group (the first error is the one
// reported).
class NcclGroup {
 public:
  explicit NcclGroup(int rank) : rank_(rank) { PARADIT_NCCL(rank_, ncclGroupStart()); }
  ~NcclGroup() {
    if (open_) ncclGroupEnd();
  }
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;
  void end() {
    open_ = false;
    PARADIT_NCCL(rank_, ncclGroupEnd());
  }

 private:
  int rank_;
  bool open_ = true;
};

ncclDataType_t nccl_type(core::DType t) {
  switch (t) {
    case core::DType::F32:
      return ncclFloat32;
    case core::DType::F64:
      return ncclFloat64;
    case core::DType::I64:
      return ncclInt64;
    case core::DType::I32:
      return ncclInt32;
    case core::DType::BF16:
      return ncclBfloat16;
    case core::DType::F16:
      return ncclFloat16;
    default:
      fail("nccl all_reduce: no NCCL type for ", core::dtype_name(t));
  }
}

// One queued isend or irecv.
struct Transfer {
  bool send = false;
  void* data = nullptr;  // device memory
  size_t nbytes = 0;
  int peer = 0;
  OwnedEvent ready;                  // the poster's current stream at the post
  std::shared_ptr<OwnedEvent> done;  // recorded after the group that carried it; null while queued
};

}  // namespace

namespace detail {

struct NcclState {
  int rank = 0;
  int size = 1;
  int device = -1;
  ncclComm_t comm = nullptr;      // null for a group of one, and after abort
  cudaStream_t stream = nullptr;  // the communication stream
  // Collectives record these anew on every call: a wait binds to the record made before it, so
  // one pair serves all calls.
  OwnedEvent ready, done;
  std::mutex mutex;  // guards the members below and the order in which work is enqueued
  std::vector<std::shared_ptr<Transfer>> queued;
  std::vector<std::shared_ptr<void>> retained;  // buffers of requests dropped unfinished
  std::atomic<bool> failed{false};              // an error was seen: abort, never destroy
  bool aborted = false;
  // The last operation enqueued, for the watchdog (watchdog.h): its name, when, and the event
  // that completes after it (`done`, or the batch's event of point-to-point transfers).
  const char* last_op = nullptr;
  std::chrono::steady_clock::time_point last_enqueued;
  cudaEvent_t last_event = nullptr;
  std::shared_ptr<OwnedEvent> last_batch;  // keeps a batch's event alive while it is last_event
  std::shared_ptr<const GroupInfo> group;
  uint64_t watch_id = 0;  // the pending-operation source registered with the watchdog

  NcclState() = default;
  NcclState(const NcclState&) = delete;
  NcclState& operator=(const NcclState&) = delete;
  ~NcclState();

  // An asynchronous NCCL error (a failed peer, a broken connection) → Error.
  void check_async(const char* what) {
    if (comm == nullptr) return;
    ncclResult_t result = ncclSuccess;
    PARADIT_NCCL(rank, ncclCommGetAsyncError(comm, &result));
    if (result != ncclSuccess && result != ncclInProgress) {
      failed = true;
      fail("NCCL asynchronous error on rank ", rank, " of its group (", what,
           "): ", ncclGetErrorString(result));
    }
  }

  // Called with the mutex held before any work is enqueued.
  void check_usable(const char* what) {
    PARADIT_CHECK(!aborted, "nccl ", what, ": the communicator (rank ", rank, " of ", size,
                  ") was aborted");
    PARADIT_CHECK(comm != nullptr, "nccl ", what, ": a group of one has no NCCL communicator");
    int current = -1;
    PARADIT_NCCL_CUDA(rank, cudaGetDevice(&current));
    PARADIT_CHECK(current == device, "nccl ", what, ": the communicator of rank ", rank,
                  " runs on CUDA device ", device, " but the calling thread's device is ", current);
    check_async(what);
  }

  // Records what was enqueued last, for the watchdog (mutex held).
  void note_enqueued(const char* what, cudaEvent_t event) {
    last_op = what;
    last_enqueued = std::chrono::steady_clock::now();
    last_event = event;
    last_batch.reset();
  }

  // The watchdog's question (its thread): the last operation when it has not completed on the
  // device. Never blocks: a busy mutex means work is being enqueued now.
  std::optional<PendingOp> pending() {
    std::unique_lock<std::mutex> lock(mutex, std::try_to_lock);
    if (!lock.owns_lock() || last_op == nullptr || last_event == nullptr || aborted) return {};
    if (cudaEventQuery(last_event) != cudaErrorNotReady) return {};
    return PendingOp{std::string("NCCL ") + last_op, group, last_enqueued};
  }

  // Enqueues the queued transfers as one group (mutex held).
  void flush_locked() {
    if (queued.empty()) return;
    std::vector<std::shared_ptr<Transfer>> batch;
    batch.swap(queued);
    try {
      // Each transfer waits for what its poster's stream had enqueued at the post, no more: the
      // compute enqueued since then runs beside it.
      for (const auto& t : batch) {
        PARADIT_NCCL_CUDA(rank, cudaStreamWaitEvent(stream, t->ready.get(), 0));
      }
      NcclGroup group(rank);
      for (const auto& t : batch) {
        if (t->nbytes == 0) continue;
        if (t->send) {
          PARADIT_NCCL(rank, ncclSend(t->data, t->nbytes, ncclChar, t->peer, comm, stream));
        } else {
          PARADIT_NCCL(rank, ncclRecv(t->data, t->nbytes, ncclChar, t->peer, comm, stream));
        }
      }
      group.end();
      auto finished = std::make_shared<OwnedEvent>(rank);
      PARADIT_NCCL_CUDA(rank, cudaEventRecord(finished->get(), stream));
      for (const auto& t : batch) t->done = finished;
      note_enqueued("send/receive", finished->get());
      last_batch = finished;
    } catch (...) {
      failed = true;
      throw;
    }
  }

  // A collective: after the queued transfers and after the caller's stream's work so far; the
  // caller's stream then waits for it. body(stream, comm) enqueues the NCCL calls.
  template <typename Body>
  void run(const char* what, Body&& body) {
    std::lock_guard<std::mutex> lock(mutex);
    check_usable(what);
    try {
      flush_locked();
      const cudaStream_t caller = backend::cuda::current_stream();
      PARADIT_NCCL_CUDA(rank, cudaEventRecord(ready.get(), caller));
      PARADIT_NCCL_CUDA(rank, cudaStreamWaitEvent(stream, ready.get(), 0));
      body(stream, comm);
      PARADIT_NCCL_CUDA(rank, cudaEventRecord(done.get(), stream));
      note_enqueued(what, done.get());
      PARADIT_NCCL_CUDA(rank, cudaStreamWaitEvent(caller, done.get(), 0));
    } catch (...) {
      failed = true;
      throw;
    }
  }

  std::shared_ptr<Transfer> post(bool send, void* data, size_t nbytes, int peer) {
    std::lock_guard<std::mutex> lock(mutex);
    check_usable(send ? "isend" : "irecv");
    auto t = std::make_shared<Transfer>();
    t->send = send;
    t->data = data;
    t->nbytes = nbytes;
    t->peer = peer;
    t->ready = OwnedEvent(rank);
    PARADIT_NCCL_CUDA(rank, cudaEventRecord(t->ready.get(), backend::cuda::current_stream()));
    queued.push_back(t);
    return t;
  }

  // The completion event of `t`, enqueuing the queued transfers first when `t` is among them.
  std::shared_ptr<OwnedEvent> completion(const Transfer& t, const char* what) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!t.done) {
      check_usable(what);
      flush_locked();
    }
    PARADIT_CHECK(t.done != nullptr, "nccl ", what, ": the transfer (rank ", rank, " to/from ",
                  t.peer, ") was never enqueued (an earlier error)");
    return t.done;
  }

  void flush() {
    std::lock_guard<std::mutex> lock(mutex);
    if (queued.empty()) return;
    check_usable("flush");
    flush_locked();
  }

  void retain(std::shared_ptr<void> buffer) {
    std::lock_guard<std::mutex> lock(mutex);
    retained.push_back(std::move(buffer));
  }

  void abort() {
    std::lock_guard<std::mutex> lock(mutex);
    if (comm != nullptr) ncclCommAbort(comm);  // errors cannot help here: it is going away
    comm = nullptr;
    aborted = true;
    queued.clear();
  }

  // Waits for the communication stream while watching for asynchronous errors: false when one
  // shows (then only an abort ends the operations in flight).
  bool drain() {
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream);
      if (q == cudaSuccess) return true;
      if (q != cudaErrorNotReady) return false;
      ncclResult_t result = ncclSuccess;
      if (ncclCommGetAsyncError(comm, &result) != ncclSuccess) return false;
      if (result != ncclSuccess && result != ncclInProgress) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
};

NcclState::~NcclState() {
  if (watch_id != 0) remove_pending_source(watch_id);
  // Nothing here may throw. The CUDA calls run on the communicator's device.
  int previous = -1;
  if (device >= 0 && cudaGetDevice(&previous) == cudaSuccess && previous != device) {
    cudaSetDevice(device);
  }
  if (comm != nullptr) {
    // ncclCommDestroy waits for the operations in flight; on an error path those may wait for a
    // peer that failed, so abort instead.
    bool abort = failed.load() || std::uncaught_exceptions() > 0 || !queued.empty();
    if (!abort) abort = !drain();
    if (abort) {
      ncclCommAbort(comm);
    } else {
      ncclCommDestroy(comm);
    }
    comm = nullptr;
  }
  queued.clear();
  if (stream != nullptr) cudaStreamDestroy(stream);
  retained.clear();  // nothing uses these buffers any more
  if (previous >= 0 && previous != device) cudaSetDevice(previous);
}

}  // namespace detail

namespace {

using detail::NcclState;

// An isend/irecv on the NCCL stream. wait() is stream-ordered (see communicator.h).
class NcclRequest final : public Request::Impl {
 public:
  NcclRequest(std::shared_ptr<NcclState> state, std::shared_ptr<Transfer> transfer,
              std::shared_ptr<void> keep_alive, std::function<void()> on_done)
      : state_(std::move(state)),
        transfer_(std::move(transfer)),
        keep_alive_(std::move(keep_alive)),
        on_done_(std::move(on_done)) {}
  ~NcclRequest() override {
    // Dropped unfinished (a wait that threw): the transfer may still use its buffer, so the
    // communicator's state keeps it until it is destroyed or aborted.
    if (!finished_ && keep_alive_) state_->retain(std::move(keep_alive_));
  }
  void wait() override {
    if (finished_) return;
    const std::shared_ptr<OwnedEvent> done = state_->completion(*transfer_, "wait");
    PARADIT_NCCL_CUDA(state_->rank,
                      cudaStreamWaitEvent(backend::cuda::current_stream(), done->get(), 0));
    finish();
  }
  bool test() override {
    if (finished_) return true;
    const std::shared_ptr<OwnedEvent> done = state_->completion(*transfer_, "test");
    const cudaError_t q = cudaEventQuery(done->get());
    if (q == cudaErrorNotReady) {
      // A loop of test() calls must not spin forever on a peer that failed.
      state_->check_async("test");
      return false;
    }
    if (q != cudaSuccess) fail_cuda(q, "cudaEventQuery", state_->rank);
    finish();
    return true;
  }

 private:
  void finish() {
    finished_ = true;
    // on_done (unpacking a strided receive) is enqueued on the current stream, after the wait.
    if (on_done_) on_done_();
    keep_alive_.reset();
  }

  std::shared_ptr<NcclState> state_;
  std::shared_ptr<Transfer> transfer_;
  std::shared_ptr<void> keep_alive_;
  std::function<void()> on_done_;
  bool finished_ = false;
};

}  // namespace

// ---------------------------------------------------------------- NcclCommunicator

NcclCommunicator::NcclCommunicator(std::unique_ptr<Communicator> host) : host_(std::move(host)) {
  PARADIT_CHECK(host_ != nullptr, "NcclCommunicator: no host communicator");
  PARADIT_CHECK(!host_->device_memory(), "NcclCommunicator: its host group (", host_->kind(),
                ") must take host memory");
  rank_ = host_->rank();
  size_ = host_->size();
  set_world_ranks(host_->group_info()->world_ranks);
  state_ = std::make_shared<NcclState>();
  NcclState& st = *state_;
  st.rank = rank_;
  st.size = size_;
  if (size_ == 1) return;  // a group of one touches no NCCL

  PARADIT_NCCL_CUDA(rank_, cudaGetDevice(&st.device));
  // The id: made by the group's first rank and broadcast over the host group, with a flag byte
  // so that a failure there fails every rank instead of leaving them waiting.
  ncclUniqueId id{};
  std::string failure;
  if (rank_ == 0) {
    const ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) failure = ncclGetErrorString(r);
  }
  core::Tensor message =
      core::Tensor::zeros({static_cast<int64_t>(sizeof id) + 1}, core::DType::U8);
  auto* bytes = static_cast<unsigned char*>(message.raw_data());
  std::memcpy(bytes, &id, sizeof id);
  bytes[sizeof id] = failure.empty() ? 1 : 0;
  host_->broadcast(message, 0);
  PARADIT_CHECK(bytes[sizeof id] == 1, "ncclGetUniqueId failed on rank 0 of the group",
                failure.empty() ? std::string() : ": " + failure);
  std::memcpy(&id, bytes, sizeof id);

  // The highest priority: communication kernels get SMs as soon as compute blocks retire, so a
  // transfer overlapping attention is not starved until the attention ends.
  int least = 0, greatest = 0;
  PARADIT_NCCL_CUDA(rank_, cudaDeviceGetStreamPriorityRange(&least, &greatest));
  PARADIT_NCCL_CUDA(rank_,
                    cudaStreamCreateWithPriority(&st.stream, cudaStreamNonBlocking, greatest));
  st.ready = OwnedEvent(rank_);
  st.done = OwnedEvent(rank_);
  {
    const WaitScope waiting("ncclCommInitRank", host_->group_info());
    PARADIT_NCCL(rank_, ncclCommInitRank(&st.comm, size_, id, rank_));
  }
  // The watchdog sees operations that do not complete on the device (a stopped peer).
  info_changed();
  std::weak_ptr<NcclState> weak = state_;
  st.watch_id = add_pending_source([weak]() -> std::optional<PendingOp> {
    const std::shared_ptr<NcclState> s = weak.lock();
    return s ? s->pending() : std::nullopt;
  });
}

NcclCommunicator::NcclCommunicator(NcclCommunicator&& other) noexcept
    : Communicator(std::move(other)),
      state_(std::move(other.state_)),
      host_(std::move(other.host_)),
      rank_(other.rank_),
      size_(other.size_) {}

// The state goes with its last user (this object or a Request still alive).
NcclCommunicator::~NcclCommunicator() = default;

void NcclCommunicator::info_changed() const {
  if (!state_) return;
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->group = group_info();
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) const {
  return std::make_unique<NcclCommunicator>(host_->split(color, key));
}

void NcclCommunicator::barrier() const {
  flush();
  host_->barrier();
}

void NcclCommunicator::flush() const {
  if (size_ > 1) state_->flush();
}

int NcclCommunicator::device() const { return state_->device; }

void NcclCommunicator::abort() {
  if (state_) state_->abort();
}

void NcclCommunicator::alltoallv_bytes(const void* send, const std::vector<size_t>& send_counts,
                                       const std::vector<size_t>& send_displs, void* recv,
                                       const std::vector<size_t>& recv_counts,
                                       const std::vector<size_t>& recv_displs) const {
  const int me = rank_;
  PARADIT_CHECK(send_counts[me] == recv_counts[me], "nccl all_to_all: rank ", me, " sends ",
                send_counts[me], " bytes to itself but expects ", recv_counts[me]);
  const char* s = static_cast<const char*>(send);
  char* r = static_cast<char*>(recv);
  state_->run("all_to_all", [&](cudaStream_t stream, ncclComm_t comm) {
    if (send_counts[me] > 0) {
      PARADIT_NCCL_CUDA(me, cudaMemcpyAsync(r + recv_displs[me], s + send_displs[me],
                                            send_counts[me], cudaMemcpyDeviceToDevice, stream));
    }
    NcclGroup group(me);
    for (int j = 0; j < size_; ++j) {
      if (j == me) continue;
      if (send_counts[j] > 0) {
        PARADIT_NCCL(me, ncclSend(s + send_displs[j], send_counts[j], ncclChar, j, comm, stream));
      }
      if (recv_counts[j] > 0) {
        PARADIT_NCCL(me, ncclRecv(r + recv_displs[j], recv_counts[j], ncclChar, j, comm, stream));
      }
    }
    group.end();
  });
}

void NcclCommunicator::allgatherv_bytes(const void* send, size_t send_count, void* recv,
                                        const std::vector<size_t>& recv_counts,
                                        const std::vector<size_t>& recv_displs) const {
  const int me = rank_;
  PARADIT_CHECK(send_count == recv_counts[me], "nccl all_gather: rank ", me, " contributes ",
                send_count, " bytes but the counts say ", recv_counts[me]);
  // Equal contributions laid out back to back: NCCL's own all-gather.
  bool uniform = true;
  for (int i = 0; i < size_; ++i) {
    uniform = uniform && recv_counts[i] == send_count && recv_displs[i] == i * send_count;
  }
  char* r = static_cast<char*>(recv);
  state_->run("all_gather", [&](cudaStream_t stream, ncclComm_t comm) {
    if (uniform) {
      if (send_count > 0) {
        PARADIT_NCCL(me, ncclAllGather(send, recv, send_count, ncclChar, comm, stream));
      }
      return;
    }
    if (send_count > 0) {
      PARADIT_NCCL_CUDA(me, cudaMemcpyAsync(r + recv_displs[me], send, send_count,
                                            cudaMemcpyDeviceToDevice, stream));
    }
    NcclGroup group(me);
    for (int j = 0; j < size_; ++j) {
      if (j == me) continue;
      if (send_count > 0) PARADIT_NCCL(me, ncclSend(send, send_count, ncclChar, j, comm, stream));
      if (recv_counts[j] > 0) {
        PARADIT_NCCL(me, ncclRecv(r + recv_displs[j], recv_counts[j], ncclChar, j, comm, stream));
      }
    }
    group.end();
  });
}

void NcclCommunicator::allreduce_raw(void* data, size_t count, core::DType dtype,
                                     ReduceOp op) const {
  const ncclDataType_t type = nccl_type(dtype);
  const ncclRedOp_t nccl_op = op == ReduceOp::kSum ? ncclSum : ncclMax;
  state_->run("all_reduce", [&](cudaStream_t stream, ncclComm_t comm) {
    PARADIT_NCCL(rank_, ncclAllReduce(data, data, count, type, nccl_op, comm, stream));
  });
}

void NcclCommunicator::broadcast_bytes(void* data, size_t nbytes, int root) const {
  state_->run("broadcast", [&](cudaStream_t stream, ncclComm_t comm) {
    PARADIT_NCCL(rank_, ncclBroadcast(data, data, nbytes, ncclChar, root, comm, stream));
  });
}

Request NcclCommunicator::isend_bytes(const void* data, size_t nbytes, int dest, int tag,
                                      std::shared_ptr<void> keep_alive) const {
  if (size_ == 1) {
    // A send to itself in a group of one: through host memory on the host group (no NCCL).
    auto host = core::Storage::allocate(nbytes);
    backend::cuda::copy_bytes(host->data, core::Device::CPU, data, core::Device::CUDA, nbytes);
    return forward_isend_bytes(*host_, host->data, nbytes, dest, tag, host);
  }
  auto t = state_->post(true, const_cast<void*>(data), nbytes, dest);
  return Request(
      std::make_unique<NcclRequest>(state_, std::move(t), std::move(keep_alive), nullptr));
}

Request NcclCommunicator::irecv_bytes(void* data, size_t nbytes, int source, int tag,
                                      std::shared_ptr<void> keep_alive,
                                      std::function<void()> on_done) const {
  if (size_ == 1) {
    auto host = core::Storage::allocate(nbytes);
    void* host_data = host->data;
    auto both = std::make_shared<std::pair<std::shared_ptr<void>, std::shared_ptr<void>>>(
        std::move(keep_alive), host);
    return forward_irecv_bytes(*host_, host_data, nbytes, source, tag, both,
                               [data, host_data, nbytes, done = std::move(on_done)]() {
                                 backend::cuda::copy_bytes(data, core::Device::CUDA, host_data,
                                                           core::Device::CPU, nbytes);
                                 if (done) done();
                               });
  }
  auto t = state_->post(false, data, nbytes, source);
  return Request(std::make_unique<NcclRequest>(state_, std::move(t), std::move(keep_alive),
                                               std::move(on_done)));
}

}  // namespace paradit::comm

#endif  // PARADIT_WITH_NCCL
