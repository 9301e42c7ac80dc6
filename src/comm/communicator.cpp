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

constexpr core::Device kHost = core::Device::CPU;

int wrap_dim(int dim, int ndim, const char* what, const Tensor& x) {
  const int d = dim < 0 ? dim + ndim : dim;
  PARADIT_CHECK(d >= 0 && d < ndim, what, ": dim ", dim, " out of range for ", x.str());
  return d;
}

void check_defined(const Tensor& x, const char* what) {
  PARADIT_CHECK(x.defined(), what, ": undefined tensor");
}

// x as a contiguous tensor on its device: itself when it already is, else a packed copy.
Tensor packed(const Tensor& x) { return x.is_contiguous() ? x : packed_copy(x); }

// Writes `src` (host, contiguous) into the device view `dst` after a staged collective.
void upload_into(const Tensor& dst, const Tensor& src) {
  Tensor d = dst;
  d.copy_from(src);  // equal dtypes: the bytes move unchanged
}
}  // namespace

const char* route_name(Route r) {
  switch (r) {
    case Route::kDirect:
      return "direct";
    case Route::kStage:
      return "stage";
    case Route::kHostGroup:
      return "host group";
  }
  return "?";
}

size_t max_message_bytes() { return g_max_message_bytes.load(); }
void set_max_message_bytes(size_t nbytes) {
  PARADIT_CHECK(nbytes > 0, "set_max_message_bytes: 0");
  g_max_message_bytes.store(nbytes);
}

// ---------------------------------------------------------------- Communicator

Communicator::Communicator(Communicator&& other) noexcept : info_(std::move(other.info_)) {
  for (int i = 0; i < kNumOpKinds; ++i) bytes_[i].store(other.bytes_[i].load());
}

std::shared_ptr<const GroupInfo> Communicator::group_info() const {
  if (!info_) {
    GroupInfo g;
    for (int r = 0; r < size(); ++r) g.world_ranks.push_back(r);
    info_ = std::make_shared<const GroupInfo>(std::move(g));
  }
  return info_;
}

void Communicator::set_label(const std::string& label) const {
  GroupInfo g = *group_info();
  g.label = label;
  info_ = std::make_shared<const GroupInfo>(std::move(g));
  info_changed();
}

void Communicator::set_world_ranks(std::vector<int> ranks) const {
  GroupInfo g = info_ ? *info_ : GroupInfo{};
  g.world_ranks = std::move(ranks);
  info_ = std::make_shared<const GroupInfo>(std::move(g));
  info_changed();
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
  // What the host group carried for this group (host tensors on a device transport) counts here.
  const Communicator& h = host_group();
  if (&h != this) {
    const ByteCounters hc = h.bytes();
    c.all_to_all += hc.all_to_all;
    c.all_gather += hc.all_gather;
    c.all_reduce += hc.all_reduce;
    c.broadcast += hc.broadcast;
    c.send += hc.send;
  }
  return c;
}

void Communicator::reset_bytes() const {
  for (auto& b : bytes_) b.store(0);
  const Communicator& h = host_group();
  if (&h != this) h.reset_bytes();
}

void Communicator::check_peer(int peer, const char* what) const {
  PARADIT_CHECK(peer >= 0 && peer < size(), what, ": rank ", peer, " is outside the ", kind(),
                " group of ", size(), " ranks");
}

Route Communicator::route(core::Device device) const {
  const bool on_device = device != kHost;
  if (on_device == device_memory()) return Route::kDirect;
  return on_device ? Route::kStage : Route::kHostGroup;
}

const Communicator& Communicator::host_side() const {
  const Communicator& h = host_group();
  // Otherwise a host tensor would bounce between the two forever.
  PARADIT_CHECK(!h.device_memory(), kind(), " communicator: its host group (", h.kind(),
                ") takes device memory");
  PARADIT_CHECK(h.size() == size() && h.rank() == rank(), kind(), " communicator (rank ", rank(),
                " of ", size(), "): its host group is rank ", h.rank(), " of ", h.size());
  return h;
}

Tensor Communicator::all_to_all(const Tensor& x, int scatter_dim, int gather_dim) const {
  check_defined(x, "all_to_all");
  const int s = wrap_dim(scatter_dim, x.ndim(), "all_to_all scatter_dim", x);
  const int g = wrap_dim(gather_dim, x.ndim(), "all_to_all gather_dim", x);
  const int p = size();
  PARADIT_CHECK(x.dim(s) % p == 0, "all_to_all: dim ", s, " of ", x.str(), " (", x.dim(s),
                ") is not divisible by the group size ", p);
  if (p == 1) return packed_copy(x);  // its own chunk, on its own device
  switch (route(x.device())) {
    case Route::kStage:
      return all_to_all(x.to_device(kHost), s, g).to_device(x.device());
    case Route::kHostGroup:
      return host_side().all_to_all(x, s, g);
    case Route::kDirect:
      break;
  }
  const core::Device dev = x.device();
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
    send = Tensor::empty(x.shape(), x.dtype(), dev);
    for (int j = 0; j < p; ++j) {
      copy_bytes(buffer_view(send.storage(), j * chunk_bytes, chunk, x.dtype()),
                 x.slice(s, j * c, (j + 1) * c));
    }
  }
  // Receive buffer: chunk i from rank i; it is the output when gather_dim is outermost.
  Tensor out = Tensor::empty(out_shape, x.dtype(), dev);
  const bool direct = outer_count(out_shape, g) == 1;
  Tensor recv = direct ? out : Tensor::empty(out_shape, x.dtype(), dev);

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

Tensor Communicator::all_to_all(const Tensor& x, int scatter_dim, int gather_dim,
                                const std::vector<int64_t>& scatter_counts,
                                const std::vector<int64_t>& gather_counts) const {
  check_defined(x, "all_to_all");
  const int s = wrap_dim(scatter_dim, x.ndim(), "all_to_all scatter_dim", x);
  const int g = wrap_dim(gather_dim, x.ndim(), "all_to_all gather_dim", x);
  const int p = size(), me = rank();
  PARADIT_CHECK(s != g, "all_to_all: uneven chunks need scatter_dim ≠ gather_dim, both ", s);
  std::vector<int64_t> sc = scatter_counts, gc = gather_counts;
  if (sc.empty()) {
    PARADIT_CHECK(x.dim(s) % p == 0, "all_to_all: dim ", s, " of ", x.str(), " (", x.dim(s),
                  ") is not divisible by the group size ", p);
    sc.assign(p, x.dim(s) / p);
  }
  if (gc.empty()) gc.assign(p, x.dim(g));
  PARADIT_CHECK(static_cast<int>(sc.size()) == p && static_cast<int>(gc.size()) == p,
                "all_to_all: ", sc.size(), " scatter and ", gc.size(),
                " gather counts for a group of ", p, " ranks");
  int64_t total = 0, out_len = 0;
  for (int j = 0; j < p; ++j) {
    PARADIT_CHECK(sc[j] >= 0 && gc[j] >= 0, "all_to_all: negative count for rank ", j);
    total += sc[j];
    out_len += gc[j];
  }
  PARADIT_CHECK(total == x.dim(s), "all_to_all: scatter counts sum to ", total, " but dim ", s,
                " of ", x.str(), " is ", x.dim(s));
  PARADIT_CHECK(gc[me] == x.dim(g), "all_to_all: gather_counts[", me, "] is ", gc[me],
                " but this rank's ", x.str(), " has ", x.dim(g), " along dim ", g);
  if (p == 1) return packed_copy(x);
  switch (route(x.device())) {
    case Route::kStage:
      return all_to_all(x.to_device(kHost), s, g, sc, gc).to_device(x.device());
    case Route::kHostGroup:
      return host_side().all_to_all(x, s, g, sc, gc);
    case Route::kDirect:
      break;
  }
  const core::Device dev = x.device();
  const auto nbytes = [&](const Shape& shape) {
    return static_cast<size_t>(core::shape_numel(shape)) * x.itemsize();
  };
  // Chunk j sent: x's shape with sc[j] along s; chunk i received: sc[me] along s, gc[i] along g.
  std::vector<Shape> send_shape(p), recv_shape(p);
  std::vector<size_t> scount(p), sdispl(p), rcount(p), rdispl(p);
  size_t soff = 0, roff = 0;
  for (int j = 0; j < p; ++j) {
    send_shape[j] = x.shape();
    send_shape[j][s] = sc[j];
    recv_shape[j] = x.shape();
    recv_shape[j][s] = sc[me];
    recv_shape[j][g] = gc[j];
    scount[j] = nbytes(send_shape[j]);
    rcount[j] = nbytes(recv_shape[j]);
    sdispl[j] = soff;
    rdispl[j] = roff;
    soff += scount[j];
    roff += rcount[j];
  }
  Shape out_shape = x.shape();
  out_shape[s] = sc[me];
  out_shape[g] = out_len;

  Tensor send;
  if (x.is_contiguous() && outer_count(x.shape(), s) == 1) {
    send = x;  // chunks already one after another
  } else {
    send = Tensor::empty(x.shape(), x.dtype(), dev);
    int64_t start = 0;
    for (int j = 0; j < p; ++j) {
      copy_bytes(buffer_view(send.storage(), sdispl[j], send_shape[j], x.dtype()),
                 x.slice(s, start, start + sc[j]));
      start += sc[j];
    }
  }
  Tensor out = Tensor::empty(out_shape, x.dtype(), dev);
  const bool direct = outer_count(out_shape, g) == 1;
  Tensor recv = direct ? out : Tensor::empty(out_shape, x.dtype(), dev);
  alltoallv_bytes(send.raw_data(), scount, sdispl, recv.raw_data(), rcount, rdispl);
  count(OpKind::kAllToAll, soff - scount[me]);
  if (!direct) {
    int64_t start = 0;
    for (int i = 0; i < p; ++i) {
      copy_bytes(out.slice(g, start, start + gc[i]),
                 buffer_view(recv.storage(), rdispl[i], recv_shape[i], x.dtype()));
      start += gc[i];
    }
  }
  return out;
}

Tensor Communicator::all_to_all_v(const Tensor& x, int dim, const std::vector<int64_t>& send_counts,
                                  std::vector<int64_t> recv_counts) const {
  check_defined(x, "all_to_all_v");
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
  if (p == 1) {
    PARADIT_CHECK(recv_counts.empty() || (recv_counts.size() == 1 && recv_counts[0] == total),
                  "all_to_all_v: a group of one sends ", total, " slices to itself but expects ",
                  recv_counts.size() == 1 ? recv_counts[0] : -1);
    return packed_copy(x);
  }
  switch (route(x.device())) {
    case Route::kStage:
      return all_to_all_v(x.to_device(kHost), d, send_counts, std::move(recv_counts))
          .to_device(x.device());
    case Route::kHostGroup:
      return host_side().all_to_all_v(x, d, send_counts, std::move(recv_counts));
    case Route::kDirect:
      break;
  }
  const core::Device dev = x.device();
  if (recv_counts.empty()) {
    // Each rank tells every other how many slices it sends there: host metadata, so it goes
    // over the host group whatever the tensor's transport.
    std::vector<int64_t> got(p);
    std::vector<size_t> c(p, sizeof(int64_t)), displs(p);
    for (int j = 0; j < p; ++j) displs[j] = j * sizeof(int64_t);
    host_side().alltoallv_bytes(send_counts.data(), c, displs, got.data(), c, displs);
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
    send = Tensor::empty(x.shape(), x.dtype(), dev);
    int64_t start = 0;
    for (int j = 0; j < p; ++j) {
      Shape cs = x.shape();
      cs[d] = send_counts[j];
      copy_bytes(buffer_view(send.storage(), sdispl[j], cs, x.dtype()),
                 x.slice(d, start, start + send_counts[j]));
      start += send_counts[j];
    }
  }
  Tensor out = Tensor::empty(out_shape, x.dtype(), dev);
  Tensor recv = outer ? out : Tensor::empty(out_shape, x.dtype(), dev);
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
  check_defined(x, "all_gather");
  const int d = wrap_dim(dim, x.ndim(), "all_gather dim", x);
  const int p = size();
  std::vector<int64_t> n = counts;
  if (n.empty()) n.assign(p, x.dim(d));
  PARADIT_CHECK(static_cast<int>(n.size()) == p, "all_gather: ", n.size(),
                " counts for a group of ", p, " ranks");
  PARADIT_CHECK(n[rank()] == x.dim(d), "all_gather: counts[", rank(), "] is ", n[rank()],
                " but this rank's tensor ", x.str(), " has ", x.dim(d), " along dim ", d);
  for (int64_t c : n) PARADIT_CHECK(c >= 0, "all_gather: negative count ", c);
  if (p == 1) return packed_copy(x);
  switch (route(x.device())) {
    case Route::kStage:
      return all_gather(x.to_device(kHost), d, counts).to_device(x.device());
    case Route::kHostGroup:
      return host_side().all_gather(x, d, counts);
    case Route::kDirect:
      break;
  }
  const core::Device dev = x.device();
  Shape slice_shape = x.shape();
  slice_shape[d] = 1;
  const size_t slice_bytes = static_cast<size_t>(core::shape_numel(slice_shape)) * x.itemsize();
  std::vector<size_t> rcount(p), rdispl(p);
  size_t off = 0;
  int64_t out_len = 0;
  for (int i = 0; i < p; ++i) {
    rcount[i] = static_cast<size_t>(n[i]) * slice_bytes;
    rdispl[i] = off;
    off += rcount[i];
    out_len += n[i];
  }
  Shape out_shape = x.shape();
  out_shape[d] = out_len;
  Tensor send = packed(x);
  Tensor out = Tensor::empty(out_shape, x.dtype(), dev);
  const bool outer = outer_count(out_shape, d) == 1;
  Tensor recv = outer ? out : Tensor::empty(out_shape, x.dtype(), dev);
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
  check_defined(x, "all_reduce");
  const int p = size();
  const DType t = x.dtype();
  const bool native = t == DType::F32 || t == DType::F64 || t == DType::I64 || t == DType::I32;
  const bool half = t == DType::BF16 || t == DType::F16;
  PARADIT_CHECK(native || half, "all_reduce: dtype ", core::dtype_name(t), " of ", x.str(),
                " is not supported (F32, F64, I64, I32, BF16, F16)");
  if (x.numel() == 0 || p == 1) return;
  switch (route(x.device())) {
    case Route::kStage: {
      const Tensor h = x.to_device(kHost);
      all_reduce(h, op);
      upload_into(x, h);
      return;
    }
    case Route::kHostGroup:
      host_side().all_reduce(x, op);
      return;
    case Route::kDirect:
      break;
  }
  count(OpKind::kAllReduce, 2 * (p - 1) * x.nbytes() / p);
  if (native || reduces_half()) {
    Tensor buf = packed(x);
    allreduce_raw(buf.raw_data(), static_cast<size_t>(buf.numel()), t, op);
    if (buf.raw_data() != x.raw_data()) copy_bytes(x, buf);
    return;
  }
  // Half precision on a transport without it (MPI): sum in F32 (more exact than a
  // half-precision sum), on the tensor's device.
  Tensor wide = x.to(DType::F32);  // a new contiguous tensor
  allreduce_raw(wide.raw_data(), static_cast<size_t>(wide.numel()), DType::F32, op);
  Tensor narrow = wide.to(t);
  copy_bytes(x, narrow);
}

void Communicator::broadcast(const Tensor& x, int root) const {
  check_defined(x, "broadcast");
  check_peer(root, "broadcast root");
  if (x.numel() == 0 || size() == 1) return;
  switch (route(x.device())) {
    case Route::kStage: {
      const Tensor h = x.to_device(kHost);
      broadcast(h, root);
      upload_into(x, h);
      return;
    }
    case Route::kHostGroup:
      host_side().broadcast(x, root);
      return;
    case Route::kDirect:
      break;
  }
  if (rank() == root) count(OpKind::kBroadcast, static_cast<uint64_t>(x.nbytes()) * (size() - 1));
  Tensor buf = packed(x);
  broadcast_bytes(buf.raw_data(), buf.nbytes(), root);
  if (buf.raw_data() != x.raw_data()) copy_bytes(x, buf);
}

Request Communicator::isend(const Tensor& x, int dest, int tag) const {
  check_defined(x, "isend");
  check_peer(dest, "isend destination");
  PARADIT_CHECK(tag >= 0, "isend: negative tag ", tag);
  switch (route(x.device())) {
    case Route::kStage:
      // The host copy is complete when to_device returns (it synchronizes with the stream that
      // produced x), and the request keeps it alive until sent.
      return isend(x.to_device(kHost), dest, tag);
    case Route::kHostGroup:
      return host_side().isend(x, dest, tag);
    case Route::kDirect:
      break;
  }
  Tensor buf = packed(x);
  count(OpKind::kSend, buf.nbytes());
  return isend_bytes(buf.raw_data(), buf.nbytes(), dest, tag, buf.storage());
}

Request Communicator::irecv(const Tensor& x, int source, int tag) const {
  check_defined(x, "irecv");
  check_peer(source, "irecv source");
  PARADIT_CHECK(tag >= 0, "irecv: negative tag ", tag);
  switch (route(x.device())) {
    case Route::kStage: {
      // Received into host memory, copied up when the message is in (on the thread that waits).
      Tensor host = Tensor::empty(x.shape(), x.dtype(), kHost);
      return irecv_bytes(host.raw_data(), host.nbytes(), source, tag, host.storage(),
                         [dst = x, host]() { upload_into(dst, host); });
    }
    case Route::kHostGroup:
      return host_side().irecv(x, source, tag);
    case Route::kDirect:
      break;
  }
  if (x.is_contiguous()) return irecv_bytes(x.raw_data(), x.nbytes(), source, tag, x.storage(), {});
  // A strided destination: receive into a packed buffer, scatter it when the message is in.
  Tensor buf = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor dst = x;
  return irecv_bytes(buf.raw_data(), buf.nbytes(), source, tag, buf.storage(),
                     [dst, buf]() { copy_bytes(dst, buf); });
}

}  // namespace paradit::comm
