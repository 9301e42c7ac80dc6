#include "comm/communicator.h"

#include <cstdio>
#include <numeric>

#include "comm/pack.h"

namespace paradit::comm {

using core::DType;
using core::Shape;
using core::Tensor;

// ---------------------------------------------------------------- Request

Request& Request::operator=(Request&& other) noexcept {
  if (this != &other) {
    // The request being replaced still owns a buffer in flight: finish it first.
    if (impl_) {
      try {
        impl_->wait();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "paradit: error: %s\n", e.what());
      }
    }
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Request::~Request() {
  if (!impl_) return;
  // Destructors must not throw; a transport failure here is still reported.
  try {
    impl_->wait();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "paradit: error: %s\n", e.what());
  }
}

void Request::wait() {
  if (!impl_) return;
  // Released first: a wait that throws is not retried (and reported again) by the destructor.
  std::unique_ptr<Impl> impl = std::move(impl_);
  impl->wait();
}

bool Request::test() {
  if (!impl_) return true;
  if (!impl_->test()) return false;
  impl_.reset();
  return true;
}

void wait_all(std::vector<Request>& requests) {
  for (auto& r : requests) r.wait();
}

// ---------------------------------------------------------------- message size limit

namespace {
std::atomic<size_t> g_max_message_bytes{size_t{1} << 30};

int wrap_dim(int dim, int ndim, const char* what, const Tensor& x) {
  const int d = dim < 0 ? dim + ndim : dim;
  PARADIT_CHECK(d >= 0 && d < ndim, what, ": dim ", dim, " out of range for ", x.str());
  return d;
}

void check_host(const Tensor& x, const char* what) {
  PARADIT_CHECK(x.defined(), what, ": undefined tensor");
  PARADIT_CHECK(x.device() == core::Device::CPU, what, ": tensor ", x.str(), " is on ",
                core::device_name(x.device()), "; host tensors only");
}

// x as a contiguous tensor: itself when it already is, else a packed copy.
Tensor packed(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor c = Tensor::empty(x.shape(), x.dtype());
  copy_bytes(c, x);
  return c;
}
}  // namespace

size_t max_message_bytes() { return g_max_message_bytes.load(); }
void set_max_message_bytes(size_t nbytes) {
  PARADIT_CHECK(nbytes > 0, "set_max_message_bytes: 0");
  g_max_message_bytes.store(nbytes);
}

// ---------------------------------------------------------------- Communicator

Communicator::Communicator(Communicator&& other) noexcept {
  for (int i = 0; i < kNumOpKinds; ++i) bytes_[i].store(other.bytes_[i].load());
}

void Communicator::count(OpKind kind, uint64_t nbytes) const {
  bytes_[static_cast<int>(kind)].fetch_add(nbytes, std::memory_order_relaxed);
}

ByteCounters Communicator::bytes() const {
  ByteCounters c;
  c.all_to_all = bytes_[static_cast<int>(OpKind::kAllToAll)].load();
  c.all_gather = bytes_[static_cast<int>(OpKind::kAllGather)].load();
  c.all_reduce = bytes_[static_cast<int>(OpKind::kAllReduce)].load();
  c.broadcast = bytes_[static_cast<int>(OpKind::kBroadcast)].load();
  c.send = bytes_[static_cast<int>(OpKind::kSend)].load();
  return c;
}

void Communicator::reset_bytes() const {
  for (auto& b : bytes_) b.store(0);
}

void Communicator::check_peer(int peer, const char* what) const {
  PARADIT_CHECK(peer >= 0 && peer < size(), what, ": rank ", peer, " is outside the ", kind(),
                " group of ", size(), " ranks");
}

Tensor Communicator::all_to_all(const Tensor& x, int scatter_dim, int gather_dim) const {
  check_host(x, "all_to_all");
  const int s = wrap_dim(scatter_dim, x.ndim(), "all_to_all scatter_dim", x);
  const int g = wrap_dim(gather_dim, x.ndim(), "all_to_all gather_dim", x);
  const int p = size();
  PARADIT_CHECK(x.dim(s) % p == 0, "all_to_all: dim ", s, " of ", x.str(), " (", x.dim(s),
                ") is not divisible by the group size ", p);
  const int64_t c = x.dim(s) / p;
  Shape chunk = x.shape();
  chunk[s] = c;
  const size_t chunk_bytes = static_cast<size_t>(core::shape_numel(chunk)) * x.itemsize();
  Shape out_shape = chunk;
  out_shape[g] = chunk[g] * p;

  // Send buffer: chunk j at offset j·chunk_bytes. A contiguous x whose scatter dim is outermost
  // already has that layout.
  Tensor send;
  if (x.is_contiguous() && outer_count(x.shape(), s) == 1) {
    send = x;
  } else {
    send = Tensor::empty(x.shape(), x.dtype());
    for (int j = 0; j < p; ++j) {
      copy_bytes(buffer_view(send.storage(), j * chunk_bytes, chunk, x.dtype()),
                 x.slice(s, j * c, (j + 1) * c));
    }
  }
  // Receive buffer: chunk i from rank i; it is the output when gather_dim is outermost.
  Tensor out = Tensor::empty(out_shape, x.dtype());
  const bool direct = outer_count(out_shape, g) == 1;
  Tensor recv = direct ? out : Tensor::empty(out_shape, x.dtype());

  std::vector<size_t> counts(p, chunk_bytes), displs(p);
  for (int j = 0; j < p; ++j) displs[j] = j * chunk_bytes;
  alltoallv_bytes(send.raw_data(), counts, displs, recv.raw_data(), counts, displs);
  count(OpKind::kAllToAll, chunk_bytes * (p - 1));

  if (!direct) {
    for (int i = 0; i < p; ++i) {
      copy_bytes(out.slice(g, i * chunk[g], (i + 1) * chunk[g]),
                 buffer_view(recv.storage(), i * chunk_bytes, chunk, x.dtype()));
    }
  }
  return out;
}

Tensor Communicator::all_to_all_v(const Tensor& x, int dim, const std::vector<int64_t>& send_counts,
                                  std::vector<int64_t> recv_counts) const {
  check_host(x, "all_to_all_v");
  const int d = wrap_dim(dim, x.ndim(), "all_to_all_v dim", x);
  const int p = size();
  PARADIT_CHECK(static_cast<int>(send_counts.size()) == p, "all_to_all_v: ", send_counts.size(),
                " send counts for a group of ", p, " ranks");
  int64_t total = 0;
  for (int64_t n : send_counts) {
    PARADIT_CHECK(n >= 0, "all_to_all_v: negative send count ", n);
    total += n;
  }
  PARADIT_CHECK(total == x.dim(d), "all_to_all_v: send counts sum to ", total, " but dim ", d,
                " of ", x.str(), " is ", x.dim(d));
  if (recv_counts.empty()) {
    // Each rank tells every other how many slices it sends there.
    std::vector<int64_t> got(p);
    std::vector<size_t> c(p, sizeof(int64_t)), displs(p);
    for (int j = 0; j < p; ++j) displs[j] = j * sizeof(int64_t);
    alltoallv_bytes(send_counts.data(), c, displs, got.data(), c, displs);
    recv_counts = std::move(got);
  }
  PARADIT_CHECK(static_cast<int>(recv_counts.size()) == p, "all_to_all_v: ", recv_counts.size(),
                " receive counts for a group of ", p, " ranks");

  Shape slice_shape = x.shape();
  slice_shape[d] = 1;
  const size_t slice_bytes = static_cast<size_t>(core::shape_numel(slice_shape)) * x.itemsize();
  std::vector<size_t> scount(p), sdispl(p), rcount(p), rdispl(p);
  size_t off = 0;
  for (int j = 0; j < p; ++j) {
    scount[j] = static_cast<size_t>(send_counts[j]) * slice_bytes;
    sdispl[j] = off;
    off += scount[j];
  }
  int64_t out_len = 0;
  off = 0;
  for (int i = 0; i < p; ++i) {
    PARADIT_CHECK(recv_counts[i] >= 0, "all_to_all_v: negative receive count ", recv_counts[i]);
    rcount[i] = static_cast<size_t>(recv_counts[i]) * slice_bytes;
    rdispl[i] = off;
    off += rcount[i];
    out_len += recv_counts[i];
  }
  Shape out_shape = x.shape();
  out_shape[d] = out_len;

  const bool outer = outer_count(x.shape(), d) == 1;
  Tensor send;
  if (x.is_contiguous() && outer) {
    send = x;
  } else {
    send = Tensor::empty(x.shape(), x.dtype());
    int64_t start = 0;
    for (int j = 0; j < p; ++j) {
      Shape cs = x.shape();
      cs[d] = send_counts[j];
      copy_bytes(buffer_view(send.storage(), sdispl[j], cs, x.dtype()),
                 x.slice(d, start, start + send_counts[j]));
      start += send_counts[j];
    }
  }
  Tensor out = Tensor::empty(out_shape, x.dtype());
  Tensor recv = outer ? out : Tensor::empty(out_shape, x.dtype());
  alltoallv_bytes(send.raw_data(), scount, sdispl, recv.raw_data(), rcount, rdispl);
  uint64_t sent = 0;
  for (int j = 0; j < p; ++j) {
    if (j != rank()) sent += scount[j];
  }
  count(OpKind::kAllToAll, sent);
  if (!outer) {
    int64_t start = 0;
    for (int i = 0; i < p; ++i) {
      Shape cs = x.shape();
      cs[d] = recv_counts[i];
      copy_bytes(out.slice(d, start, start + recv_counts[i]),
                 buffer_view(recv.storage(), rdispl[i], cs, x.dtype()));
      start += recv_counts[i];
    }
  }
  return out;
}

Tensor Communicator::all_gather(const Tensor& x, int dim,
                                const std::vector<int64_t>& counts) const {
  check_host(x, "all_gather");
  const int d = wrap_dim(dim, x.ndim(), "all_gather dim", x);
  const int p = size();
  std::vector<int64_t> n = counts;
  if (n.empty()) n.assign(p, x.dim(d));
  PARADIT_CHECK(static_cast<int>(n.size()) == p, "all_gather: ", n.size(),
                " counts for a group of ", p, " ranks");
  PARADIT_CHECK(n[rank()] == x.dim(d), "all_gather: counts[", rank(), "] is ", n[rank()],
                " but this rank's tensor ", x.str(), " has ", x.dim(d), " along dim ", d);
  Shape slice_shape = x.shape();
  slice_shape[d] = 1;
  const size_t slice_bytes = static_cast<size_t>(core::shape_numel(slice_shape)) * x.itemsize();
  std::vector<size_t> rcount(p), rdispl(p);
  size_t off = 0;
  int64_t out_len = 0;
  for (int i = 0; i < p; ++i) {
    PARADIT_CHECK(n[i] >= 0, "all_gather: negative count ", n[i]);
    rcount[i] = static_cast<size_t>(n[i]) * slice_bytes;
    rdispl[i] = off;
    off += rcount[i];
    out_len += n[i];
  }
  Shape out_shape = x.shape();
  out_shape[d] = out_len;
  Tensor send = packed(x);
  Tensor out = Tensor::empty(out_shape, x.dtype());
  const bool outer = outer_count(out_shape, d) == 1;
  Tensor recv = outer ? out : Tensor::empty(out_shape, x.dtype());
  allgatherv_bytes(send.raw_data(), send.nbytes(), recv.raw_data(), rcount, rdispl);
  count(OpKind::kAllGather, static_cast<uint64_t>(send.nbytes()) * (p - 1));
  if (!outer) {
    int64_t start = 0;
    for (int i = 0; i < p; ++i) {
      Shape cs = x.shape();
      cs[d] = n[i];
      copy_bytes(out.slice(d, start, start + n[i]),
                 buffer_view(recv.storage(), rdispl[i], cs, x.dtype()));
      start += n[i];
    }
  }
  return out;
}

void Communicator::all_reduce(const Tensor& x, ReduceOp op) const {
  check_host(x, "all_reduce");
  const int p = size();
  const DType t = x.dtype();
  const bool native = t == DType::F32 || t == DType::F64 || t == DType::I64 || t == DType::I32;
  const bool half = t == DType::BF16 || t == DType::F16;
  PARADIT_CHECK(native || half, "all_reduce: dtype ", core::dtype_name(t), " of ", x.str(),
                " is not supported (F32, F64, I64, I32, BF16, F16)");
  if (x.numel() == 0) return;
  count(OpKind::kAllReduce, p > 1 ? 2 * (p - 1) * x.nbytes() / p : 0);
  if (native) {
    Tensor buf = packed(x);
    allreduce_raw(buf.raw_data(), static_cast<size_t>(buf.numel()), t, op);
    if (buf.raw_data() != x.raw_data()) copy_bytes(x, buf);
    return;
  }
  // Half precision: MPI has no such type; sum in F32 (more exact than a half-precision sum).
  Tensor wide = x.to(DType::F32);  // a new contiguous tensor
  allreduce_raw(wide.raw_data(), static_cast<size_t>(wide.numel()), DType::F32, op);
  Tensor narrow = wide.to(t);
  copy_bytes(x, narrow);
}

void Communicator::broadcast(const Tensor& x, int root) const {
  check_host(x, "broadcast");
  check_peer(root, "broadcast root");
  if (x.numel() == 0) return;
  if (rank() == root) count(OpKind::kBroadcast, static_cast<uint64_t>(x.nbytes()) * (size() - 1));
  Tensor buf = packed(x);
  broadcast_bytes(buf.raw_data(), buf.nbytes(), root);
  if (buf.raw_data() != x.raw_data()) copy_bytes(x, buf);
}

Request Communicator::isend(const Tensor& x, int dest, int tag) const {
  check_host(x, "isend");
  check_peer(dest, "isend destination");
  PARADIT_CHECK(tag >= 0, "isend: negative tag ", tag);
  Tensor buf = packed(x);
  count(OpKind::kSend, buf.nbytes());
  return isend_bytes(buf.raw_data(), buf.nbytes(), dest, tag, buf.storage());
}

Request Communicator::irecv(const Tensor& x, int source, int tag) const {
  check_host(x, "irecv");
  check_peer(source, "irecv source");
  PARADIT_CHECK(tag >= 0, "irecv: negative tag ", tag);
  if (x.is_contiguous()) return irecv_bytes(x.raw_data(), x.nbytes(), source, tag, x.storage(), {});
  // A strided destination: receive into a packed buffer, scatter it when the message is in.
  Tensor buf = Tensor::empty(x.shape(), x.dtype());
  Tensor dst = x;
  return irecv_bytes(buf.raw_data(), buf.nbytes(), source, tag, buf.storage(),
                     [dst, buf]() { copy_bytes(dst, buf); });
}

}  // namespace paradit::comm
