// Collectives on device tensors, each compared byte for byte with the same collective on host
// tensors over the world (whose own correctness test_comm.cpp establishes against independent
// rules). Three transports carry the device tensors:
//   - the world as it is (MPI, or one process): a host transport, so device tensors are staged
//     through host memory (several ranks on one GPU, as on the one-GPU test machine);
//   - DeviceAdapter below: a test-only transport that takes device memory, checks that every
//     buffer it is handed is device memory, and moves the bytes over the world through host
//     copies. It runs the typed collectives' device path (buffers packed on the device, counts
//     exchanged on the host group, native half-precision all_reduce) with a single GPU;
//   - NCCL (builds with NCCL, at least 2 ranks and a GPU per rank).
// Every test is skipped, with the reason, where no GPU is visible. Runs alone and under
// mpirun -np 2, 3, 4 (comm.cmake).

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/device.h"
#include "comm/local_communicator.h"
#include "comm/process_mesh.h"
#include "comm/runtime.h"
#include "core/op_registry.h"

#ifdef PARADIT_WITH_CUDA
#include <cuda_runtime_api.h>

#include "backend/cuda/allocator.h"
#include "backend/cuda/runtime.h"
#endif
#ifdef PARADIT_WITH_NCCL
#include "comm/nccl_communicator.h"
#endif

namespace paradit::comm {
namespace {

using core::Device;
using core::DType;
using core::Shape;
using core::Tensor;

// Whether device tests can run here, and why not (the skip message). The same on every rank.
std::string no_gpu_reason() {
#ifdef PARADIT_WITH_CUDA
  if (backend::cuda::available()) return {};
  return "no CUDA device visible";
#else
  return "built without CUDA (PARADIT_WITH_CUDA is off)";
#endif
}

#define PARADIT_REQUIRE_GPU()                                \
  do {                                                       \
    const std::string paradit_why_ = no_gpu_reason();        \
    if (!paradit_why_.empty()) GTEST_SKIP() << paradit_why_; \
  } while (0)

#ifdef PARADIT_WITH_CUDA

// ---------------------------------------------------------------- DeviceAdapter

// A transport that takes device memory, carried by a host group through host copies.
class DeviceAdapter final : public Communicator {
 public:
  explicit DeviceAdapter(const Communicator& host) : host_(host) {}
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  std::string kind() const override { return "device-adapter"; }
  bool device_memory() const override { return true; }
  const Communicator& host_group() const override { return host_; }
  std::unique_ptr<Communicator> split(int color, int key) const override {
    fail("device adapter: split is not supported");
  }
  void barrier() const override { host_.barrier(); }
  int bad_buffers() const { return bad_; }

 protected:
  void alltoallv_bytes(const void* send, const std::vector<size_t>& send_counts,
                       const std::vector<size_t>& send_displs, void* recv,
                       const std::vector<size_t>& recv_counts,
                       const std::vector<size_t>& recv_displs) const override {
    check_device(send, "alltoallv send");
    check_device(recv, "alltoallv recv");
    const int p = size();
    std::vector<int64_t> sc(p), rc(p);
    int64_t total = 0;
    for (int j = 0; j < p; ++j) {
      sc[j] = static_cast<int64_t>(send_counts[j]);
      rc[j] = static_cast<int64_t>(recv_counts[j]);
      total += sc[j];
    }
    Tensor hs = Tensor::empty({total}, DType::U8);
    size_t off = 0;
    for (int j = 0; j < p; ++j) {
      download(static_cast<char*>(hs.raw_data()) + off,
               static_cast<const char*>(send) + send_displs[j], send_counts[j]);
      off += send_counts[j];
    }
    const Tensor hr = host_.all_to_all_v(hs, 0, sc, rc);
    off = 0;
    for (int i = 0; i < p; ++i) {
      upload(static_cast<char*>(recv) + recv_displs[i],
             static_cast<const char*>(hr.raw_data()) + off, recv_counts[i]);
      off += recv_counts[i];
    }
  }
  void allgatherv_bytes(const void* send, size_t send_count, void* recv,
                        const std::vector<size_t>& recv_counts,
                        const std::vector<size_t>& recv_displs) const override {
    check_device(send, "allgatherv send");
    check_device(recv, "allgatherv recv");
    Tensor hs = Tensor::empty({static_cast<int64_t>(send_count)}, DType::U8);
    download(hs.raw_data(), send, send_count);
    std::vector<int64_t> counts(recv_counts.begin(), recv_counts.end());
    const Tensor hr = host_.all_gather(hs, 0, counts);
    size_t off = 0;
    for (size_t i = 0; i < recv_counts.size(); ++i) {
      upload(static_cast<char*>(recv) + recv_displs[i],
             static_cast<const char*>(hr.raw_data()) + off, recv_counts[i]);
      off += recv_counts[i];
    }
  }
  void allreduce_raw(void* data, size_t count, DType dtype, ReduceOp op) const override {
    check_device(data, "allreduce");
    Tensor h = Tensor::empty({static_cast<int64_t>(count)}, dtype);
    download(h.raw_data(), data, h.nbytes());
    host_.all_reduce(h, op);
    upload(data, h.raw_data(), h.nbytes());
  }
  bool reduces_half() const override { return true; }  // as NCCL
  void broadcast_bytes(void* data, size_t nbytes, int root) const override {
    check_device(data, "broadcast");
    Tensor h = Tensor::empty({static_cast<int64_t>(nbytes)}, DType::U8);
    download(h.raw_data(), data, nbytes);
    host_.broadcast(h, root);
    upload(data, h.raw_data(), nbytes);
  }
  Request isend_bytes(const void* data, size_t nbytes, int dest, int tag,
                      std::shared_ptr<void> keep_alive) const override {
    check_device(data, "isend");
    auto h = core::Storage::allocate(nbytes);
    download(h->data, data, nbytes);
    return forward_isend_bytes(host_, h->data, nbytes, dest, tag, h);
  }
  Request irecv_bytes(void* data, size_t nbytes, int source, int tag,
                      std::shared_ptr<void> keep_alive,
                      std::function<void()> on_done) const override {
    check_device(data, "irecv");
    auto h = core::Storage::allocate(nbytes);
    void* hd = h->data;
    auto both =
        std::make_shared<std::pair<std::shared_ptr<void>, std::shared_ptr<void>>>(keep_alive, h);
    return forward_irecv_bytes(host_, hd, nbytes, source, tag, both,
                               [data, hd, nbytes, done = std::move(on_done)]() {
                                 upload(data, hd, nbytes);
                                 if (done) done();
                               });
  }

 private:
  static void download(void* host, const void* device, size_t n) {
    backend::cuda::copy_bytes(host, Device::CPU, device, Device::CUDA, n);
  }
  static void upload(void* device, const void* host, size_t n) {
    backend::cuda::copy_bytes(device, Device::CUDA, host, Device::CPU, n);
  }
  void check_device(const void* p, const char* what) const {
    cudaPointerAttributes a{};
    const cudaError_t e = cudaPointerGetAttributes(&a, p);
    if (e != cudaSuccess || a.type != cudaMemoryTypeDevice) {
      cudaGetLastError();  // an unregistered pointer is an error for the query only
      ++bad_;
      ADD_FAILURE() << "device adapter: " << what << " was handed memory that is not on the "
                    << "device";
    }
  }
  const Communicator& host_;
  mutable int bad_ = 0;
};

// ---------------------------------------------------------------- data and comparison

// Element i of rank r's tensor (salt tells tensors apart): distinct small integers, exact in F32;
// in BF16 the rounded value, the same bytes on both sides.
Tensor host_data(const Shape& shape, DType t, int rank, int salt = 0) {
  const int64_t n = core::shape_numel(shape);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(rank * 100 + (i * 7 + salt) % 97);
  return Tensor::from_vector(v, shape).to(t);
}

// Values whose sums over four ranks are exact even in BF16 (NCCL sums BF16 in BF16).
Tensor small_ints(const Shape& shape, DType t, int rank) {
  const int64_t n = core::shape_numel(shape);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>((rank + i) % 5);
  return Tensor::from_vector(v, shape).to(t);
}

Tensor on_device(const Tensor& h) { return h.to_device(Device::CUDA); }

// A strided device view (inside a wider last dim) holding h.
Tensor strided_on_device(const Tensor& h) {
  Shape wide = h.shape();
  wide.back() += 3;
  Tensor big = Tensor::full(wide, -7.0f, h.dtype(), Device::CUDA);
  Tensor view = big.slice(-1, 2, 2 + h.shape().back());
  view.copy_from(h);
  EXPECT_FALSE(view.is_contiguous());
  return view;
}

// `got` (a device tensor) has the dtype, shape and bytes of `want` (a host tensor).
void expect_same(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.device(), Device::CUDA) << what << ": the result left the device";
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const Tensor a = got.to_device(Device::CPU).contiguous();
  const Tensor b = want.contiguous();
  EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << what;
}

// ---------------------------------------------------------------- the collectives

// Every typed collective with device tensors (contiguous and strided) on `c`, against the same
// on host tensors over the world.
void check_collectives(const Communicator& c) {
  const Communicator& w = world();
  ASSERT_EQ(c.size(), w.size());
  ASSERT_EQ(c.rank(), w.rank());
  const int p = w.size(), r = w.rank();
  const std::string on = " on " + c.kind() + " (" + route_name(c.route(Device::CUDA)) + ")";
  for (DType t : {DType::F32, DType::BF16}) {
    const std::string name = std::string(core::dtype_name(t)) + on;
    // all_to_all: scatter/gather pairs that pack, unpack or do neither.
    const Tensor x = host_data({2 * p, 3, 2 * p}, t, r);
    for (auto [s, g] : {std::pair{0, 0}, {0, 2}, {2, 0}, {2, 1}}) {
      const std::string what = name + " all_to_all " + std::to_string(s) + "→" + std::to_string(g);
      expect_same(c.all_to_all(on_device(x), s, g), w.all_to_all(x, s, g), what);
      expect_same(c.all_to_all(strided_on_device(x), s, g), w.all_to_all(x, s, g),
                  what + " strided");
    }
    // all_to_all_v: counts exchanged (over the host group) or given, outer and inner dims.
    std::vector<int64_t> send(p), recv(p);
    int64_t total = 0;
    for (int j = 0; j < p; ++j) {
      send[j] = (r + 2 * j + 1) % 3;
      recv[j] = (j + 2 * r + 1) % 3;
      total += send[j];
    }
    for (int dim : {0, 1}) {
      const Tensor v = host_data(dim == 0 ? Shape{total, 3} : Shape{2, total, 3}, t, r, 1);
      const Tensor want = w.all_to_all_v(v, dim, send, recv);
      expect_same(c.all_to_all_v(on_device(v), dim, send), want,
                  name + " all_to_all_v exchanged dim " + std::to_string(dim));
      expect_same(c.all_to_all_v(strided_on_device(v), dim, send, recv), want,
                  name + " all_to_all_v given strided dim " + std::to_string(dim));
    }
    // all_gather: equal (NCCL's own all-gather), unequal with an empty contribution, inner dim.
    expect_same(c.all_gather(on_device(x), 0), w.all_gather(x, 0), name + " all_gather");
    expect_same(c.all_gather(strided_on_device(x), 1), w.all_gather(x, 1),
                name + " all_gather dim 1 strided");
    std::vector<int64_t> counts(p);
    for (int i = 0; i < p; ++i) counts[i] = i % 3;
    const Tensor g = host_data({2, counts[r], 4}, t, r, 2);
    expect_same(c.all_gather(on_device(g), 1, counts), w.all_gather(g, 1, counts),
                name + " all_gather unequal");
    // all_reduce in place on a strided view: the elements outside it stay.
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      const std::string what =
          name + (op == ReduceOp::kSum ? " all_reduce sum" : " all_reduce max");
      const Tensor h = small_ints({5, 6}, t, r);
      Tensor d = on_device(h);
      Tensor want = h.clone();
      c.all_reduce(d.slice(1, 1, 4), op);
      w.all_reduce(want.slice(1, 1, 4), op);
      expect_same(d, want, what);
      Tensor whole = on_device(h);
      Tensor whole_want = h.clone();
      c.all_reduce(whole, op);
      w.all_reduce(whole_want, op);
      expect_same(whole, whole_want, what + " contiguous");
    }
    // broadcast from every root, into a strided view.
    for (int root = 0; root < p; ++root) {
      const Tensor h = host_data({3, 5}, t, r, 3);
      Tensor d = strided_on_device(h);
      Tensor want = h.clone();
      c.broadcast(d, root);
      w.broadcast(want, root);
      expect_same(d, want, name + " broadcast root " + std::to_string(root));
    }
    // A ring: every rank receives before it sends (NCCL must group them or deadlock); two
    // messages with one tag arrive in order; the second into a strided view.
    const int next = (r + 1) % p, prev = (r - 1 + p) % p;
    Tensor got1 = Tensor::zeros({4, 3}, t, Device::CUDA);
    Tensor big = Tensor::zeros({4, 8}, t, Device::CUDA);
    Tensor got2 = big.slice(1, 2, 5);
    {
      Request r1 = c.irecv(got1, prev, 7);
      Request r2 = c.irecv(got2, prev, 7);
      Request s1 = c.isend(on_device(host_data({4, 3}, t, r, 4)), next, 7);
      Request s2 = c.isend(strided_on_device(host_data({4, 3}, t, r, 5)), next, 7);
      c.flush();
      s1.wait();
      r1.wait();
      while (!r2.test()) {
      }
      // s2 completes in its destructor.
    }
    expect_same(got1, host_data({4, 3}, t, prev, 4), name + " isend/irecv");
    expect_same(got2, host_data({4, 3}, t, prev, 5), name + " isend/irecv strided");
    const Tensor outside = big.to_device(Device::CPU);
    EXPECT_EQ(outside.item_at({0, 0}), 0.0) << name << " isend/irecv wrote outside the view";
    EXPECT_EQ(outside.item_at({3, 7}), 0.0) << name << " isend/irecv wrote outside the view";
  }
}

// A collective and a ring transfer on a fresh (non-default) current stream, after a large fill
// on it and with work enqueued between post and wait: a transport that did not order itself after
// the current stream, or did not make it wait, reads or hands back unfinished data.
void check_stream_order(const Communicator& c) {
  const int p = c.size(), r = c.rank();
  backend::cuda::Stream stream;
  backend::cuda::StreamGuard guard(stream);
  const int64_t n = int64_t{1} << 22;
  Tensor x = Tensor::full({n}, static_cast<float>(r + 1), DType::F32, Device::CUDA);
  c.all_reduce(x, ReduceOp::kSum);
  const Tensor y = x.clone();  // a device op after the collective, on the same stream
  const std::vector<float> v = y.to_vector();
  int bad = 0;
  for (float e : v) bad += e != static_cast<float>(p * (p + 1) / 2);
  EXPECT_EQ(bad, 0) << c.kind() << ": all_reduce on a non-default stream";

  Tensor recv = Tensor::zeros({n}, DType::F32, Device::CUDA);
  Tensor send = Tensor::full({n}, static_cast<float>(10 * r), DType::F32, Device::CUDA);
  Request rq = c.irecv(recv, (r - 1 + p) % p, 3);
  Request sq = c.isend(send, (r + 1) % p, 3);
  c.flush();
  // Work on the current stream while the transfer is in flight; it must not disturb it.
  const Tensor busy = Tensor::full({n}, 1.0f, DType::F32, Device::CUDA).clone();
  rq.wait();
  sq.wait();
  const std::vector<float> got = recv.clone().to_vector();
  bad = 0;
  for (float e : got) bad += e != static_cast<float>(10 * ((r - 1 + p) % p));
  EXPECT_EQ(bad, 0) << c.kind() << ": isend/irecv on a non-default stream";
  EXPECT_EQ(busy.item_at({n - 1}), 1.0);
}

#endif  // PARADIT_WITH_CUDA

// ---------------------------------------------------------------- tests

TEST(DeviceComm, StagedOnHostTransport) {
  PARADIT_REQUIRE_GPU();
#ifdef PARADIT_WITH_CUDA
  const Communicator& w = world();
  if (w.size() > 1) {
    EXPECT_EQ(w.route(Device::CUDA), Route::kStage);
  }
  check_collectives(w);
  check_stream_order(w);
#endif
}

TEST(DeviceComm, DirectOnDeviceTransport) {
  PARADIT_REQUIRE_GPU();
#ifdef PARADIT_WITH_CUDA
  const DeviceAdapter adapter(world());
  check_collectives(adapter);
  check_stream_order(adapter);
  EXPECT_EQ(adapter.bad_buffers(), 0);
  // Host tensors on it still run on the host group (never its primitives).
  const Tensor h = host_data({2, 3}, DType::F32, world().rank());
  const Tensor g = adapter.all_gather(h, 0);
  EXPECT_EQ(g.device(), Device::CPU);
  EXPECT_EQ(adapter.bad_buffers(), 0);
#endif
}

TEST(DeviceComm, ByteCountersMatchHost) {
  PARADIT_REQUIRE_GPU();
#ifdef PARADIT_WITH_CUDA
  const Communicator& w = world();
  const int p = w.size();
  const Tensor x = Tensor::zeros({p, 10});
  w.reset_bytes();
  w.all_to_all(x, 0, 0);
  w.all_gather(x, 0);
  const ByteCounters host = w.bytes();
  w.reset_bytes();
  w.all_to_all(on_device(x), 0, 0);
  w.all_gather(on_device(x), 0);
  const ByteCounters staged = w.bytes();
  EXPECT_EQ(staged.all_to_all, host.all_to_all);
  EXPECT_EQ(staged.all_gather, host.all_gather);
  w.reset_bytes();
#endif
}

// A group of one: collectives are copies on the device, a send to itself is staged.
TEST(DeviceComm, LocalGroupOfOne) {
  PARADIT_REQUIRE_GPU();
#ifdef PARADIT_WITH_CUDA
  const LocalCommunicator c;
  const Tensor h = host_data({4, 6}, DType::BF16, 0);
  expect_same(c.all_to_all(strided_on_device(h), 0, 1), h, "local all_to_all");
  expect_same(c.all_gather(on_device(h), 1), h, "local all_gather");
  Tensor d = on_device(h);
  c.all_reduce(d);
  c.broadcast(d, 0);
  expect_same(d, h, "local all_reduce/broadcast");
  Tensor big = Tensor::zeros({4, 9}, DType::BF16, Device::CUDA);
  Tensor into = big.slice(1, 1, 7);
  Request rq = c.irecv(into, 0, 2);
  c.isend(on_device(h), 0, 2).wait();
  rq.wait();
  expect_same(into, h, "local isend/irecv to itself");
#endif
}

// The device mesh: the groups of a host mesh, carried by NCCL where choose_device_transport says
// so, and their members the same seen through device tensors.
TEST(DeviceComm, DeviceMeshGroups) {
  PARADIT_REQUIRE_GPU();
#ifdef PARADIT_WITH_CUDA
  const Communicator& w = world();
  const int n = w.size();
  const DeviceTransport t = choose_device_transport(w);
  std::vector<MeshDegrees> cases = {{n, 1, 1, 1, 1}, {1, 1, 1, 1, n}};
  if (n % 2 == 0) cases.push_back({1, 2, 1, n / 2, 1});
  for (const MeshDegrees& d : cases) {
    const ProcessMesh host(w, d);
    const ProcessMesh dev(w, d, Device::CUDA);
    EXPECT_EQ(dev.uses_nccl(), t.nccl) << dev.transport();
    EXPECT_EQ(dev.transport(), t.reason);
    std::vector<std::pair<const Communicator*, const Communicator*>> pairs;
    for (int i = 0; i < kNumMeshDims; ++i) {
      pairs.push_back({&host.group(static_cast<MeshDim>(i)), &dev.group(static_cast<MeshDim>(i))});
    }
    pairs.push_back({&host.sequence_group(), &dev.sequence_group()});
    pairs.push_back({&host.replica_group(), &dev.replica_group()});
    for (const auto& [hg, dg] : pairs) {
      EXPECT_EQ(dg->kind(), t.nccl ? "nccl" : hg->kind()) << d.str();
      EXPECT_EQ(dg->rank(), hg->rank()) << d.str();
      const Tensor me = Tensor::from_vector_i64({w.rank()}, {1});
      const Tensor want = hg->all_gather(me, 0);
      expect_same(dg->all_gather(on_device(me), 0), want, d.str() + " members (device)");
      const Tensor host_path = dg->all_gather(me, 0);
      EXPECT_EQ(host_path.to_vector_i64(), want.to_vector_i64()) << d.str() << " members (host)";
    }
  }
#endif
}

// ---------------------------------------------------------------- NCCL

#ifdef PARADIT_WITH_NCCL
// The reason NCCL tests cannot run here, or empty. Collective over the world.
std::string no_nccl_reason() {
  const std::string gpu = no_gpu_reason();
  if (!gpu.empty()) return gpu;
  if (world().size() < 2) return "NCCL needs at least 2 ranks (run under mpirun)";
  const DeviceTransport t = choose_device_transport(world());
  return t.nccl ? std::string() : t.reason;
}
#define PARADIT_REQUIRE_NCCL()                               \
  do {                                                       \
    const std::string paradit_why_ = no_nccl_reason();       \
    if (!paradit_why_.empty()) GTEST_SKIP() << paradit_why_; \
  } while (0)
#endif

TEST(Nccl, CollectivesMatchHost) {
#ifndef PARADIT_WITH_NCCL
  GTEST_SKIP() << "built without NCCL";
#else
  PARADIT_REQUIRE_NCCL();
  const Communicator& w = world();
  const NcclCommunicator c(w.split(0, w.rank()));
  EXPECT_EQ(c.kind(), "nccl");
  EXPECT_TRUE(c.device_memory());
  EXPECT_GE(c.device(), 0);
  check_collectives(c);
  check_stream_order(c);
  // Host tensors go to its host group; counters include them.
  c.reset_bytes();
  const Tensor h = host_data({2, 3}, DType::F32, w.rank());
  const Tensor g = c.all_gather(h, 0);
  EXPECT_EQ(g.device(), Device::CPU);
  EXPECT_EQ(g.to_vector(), w.all_gather(h, 0).to_vector());
  const Tensor d = on_device(host_data({2, 3}, DType::F32, w.rank()));
  c.all_gather(d, 0);
  EXPECT_EQ(c.bytes().all_gather, 2 * 24u * (w.size() - 1));
  c.barrier();
#endif
}

TEST(Nccl, SplitAndGroupOfOne) {
#ifndef PARADIT_WITH_NCCL
  GTEST_SKIP() << "built without NCCL";
#else
  PARADIT_REQUIRE_NCCL();
  const Communicator& w = world();
  const int r = w.rank();
  const NcclCommunicator c(w.split(0, r));
  // Parity groups, ordered by descending rank.
  const std::unique_ptr<Communicator> sub = c.split(r % 2, w.size() - r);
  EXPECT_EQ(sub->kind(), "nccl");
  const Tensor me = Tensor::from_vector_i64({r}, {1});
  const std::unique_ptr<Communicator> host_sub = w.split(r % 2, w.size() - r);
  expect_same(sub->all_gather(on_device(me), 0), host_sub->all_gather(me, 0), "nccl split");
  // A group of one: no NCCL, copies, and a send to itself.
  const std::unique_ptr<Communicator> one = c.split(r, 0);
  ASSERT_EQ(one->size(), 1);
  const Tensor h = host_data({3, 4}, DType::BF16, r);
  expect_same(one->all_to_all(on_device(h), 1, 0), h, "nccl group of one all_to_all");
  Tensor into = Tensor::zeros({3, 4}, DType::BF16, Device::CUDA);
  Request rq = one->irecv(into, 0, 1);
  one->isend(strided_on_device(h), 0, 1).wait();
  rq.wait();
  expect_same(into, h, "nccl group of one isend/irecv");
#endif
}

TEST(Nccl, AbortRefusesFurtherWork) {
#ifndef PARADIT_WITH_NCCL
  GTEST_SKIP() << "built without NCCL";
#else
  PARADIT_REQUIRE_NCCL();
  const Communicator& w = world();
  NcclCommunicator c(w.split(0, w.rank()));
  Tensor d = Tensor::full({8}, 1.0f, DType::F32, Device::CUDA);
  c.all_reduce(d);
  EXPECT_EQ(d.item_at({7}), w.size());  // done on every rank before any rank aborts
  w.barrier();
  c.abort();  // local: no peer waits on this communicator any more
  EXPECT_THROW(c.all_reduce(d), Error);
  EXPECT_THROW(c.isend(d, (w.rank() + 1) % w.size(), 1), Error);
#endif
}

}  // namespace
}  // namespace paradit::comm
