// How tensors meet transports, on the CPU (no GPU needed). A device transport (NCCL) must never
// be handed host memory: host tensors (counts, sizes, small metadata) go to its host group. The
// test-only FakeDeviceTransport below claims device memory and fails any primitive call; every
// typed collective on host tensors must still give exactly what the host group gives, and count
// the bytes. Runs alone and under mpirun -np 2, 3, 4 (comm.cmake).

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "comm/communicator.h"
#include "comm/local_communicator.h"
#include "comm/runtime.h"

namespace paradit::comm {
namespace {

using core::Device;
using core::DType;
using core::Shape;
using core::Tensor;

// Claims device memory; its byte primitives must never run (host tensors go to `host`).
class FakeDeviceTransport final : public Communicator {
 public:
  explicit FakeDeviceTransport(const Communicator& host) : host_(host) {}
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  std::string kind() const override { return "fake-device"; }
  bool device_memory() const override { return true; }
  const Communicator& host_group() const override { return host_; }
  std::unique_ptr<Communicator> split(int, int) const override { refuse("split"); }
  void barrier() const override { host_.barrier(); }
  int primitive_calls() const { return calls_; }

 protected:
  void alltoallv_bytes(const void*, const std::vector<size_t>&, const std::vector<size_t>&, void*,
                       const std::vector<size_t>&, const std::vector<size_t>&) const override {
    refuse("alltoallv_bytes");
  }
  void allgatherv_bytes(const void*, size_t, void*, const std::vector<size_t>&,
                        const std::vector<size_t>&) const override {
    refuse("allgatherv_bytes");
  }
  void allreduce_raw(void*, size_t, DType, ReduceOp) const override { refuse("allreduce_raw"); }
  void broadcast_bytes(void*, size_t, int) const override { refuse("broadcast_bytes"); }
  Request isend_bytes(const void*, size_t, int, int, std::shared_ptr<void>) const override {
    refuse("isend_bytes");
  }
  Request irecv_bytes(void*, size_t, int, int, std::shared_ptr<void>,
                      std::function<void()>) const override {
    refuse("irecv_bytes");
  }

 private:
  [[noreturn]] void refuse(const char* what) const {
    ++calls_;
    fail("fake device transport: ", what, " was handed host memory");
  }
  const Communicator& host_;
  mutable int calls_ = 0;
};

// Element i of rank r's tensor: a distinct value, exact in F32, I64 and BF16 (small integers).
Tensor make(const Shape& shape, DType t, int rank) {
  const int64_t n = core::shape_numel(shape);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(rank * 100 + i % 97);
  return Tensor::from_vector(v, shape).to(t);
}

// Same dtype, shape and bytes (logical order).
void expect_same(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.device(), Device::CPU) << what;
  const Tensor a = got.contiguous(), b = want.contiguous();
  EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << what;
}

TEST(Routing, RouteByTensorAndTransport) {
  const Communicator& w = world();
  const FakeDeviceTransport fake(w);
  EXPECT_EQ(w.route(Device::CPU), Route::kDirect);
  EXPECT_EQ(w.route(Device::CUDA), Route::kStage);
  EXPECT_EQ(fake.route(Device::CPU), Route::kHostGroup);
  EXPECT_EQ(fake.route(Device::CUDA), Route::kDirect);
  EXPECT_FALSE(w.device_memory());
  EXPECT_EQ(&w.host_group(), &w);
}

// Every typed collective with host tensors on a device transport: the host group's result, and
// not one primitive call on the device transport.
TEST(Routing, HostTensorsOnDeviceTransportRunOnHostGroup) {
  const Communicator& w = world();
  const FakeDeviceTransport fake(w);
  const int p = w.size(), r = w.rank();
  for (DType t : {DType::F32, DType::I64, DType::BF16}) {
    const std::string name(core::dtype_name(t));
    const Tensor x = make({2 * p, 3, p}, t, r);
    expect_same(fake.all_to_all(x, 0, 2), w.all_to_all(x, 0, 2), name + " all_to_all");
    const Tensor strided = x.slice(1, 1, 3);
    expect_same(fake.all_to_all(strided, 2, 1), w.all_to_all(strided, 2, 1),
                name + " all_to_all strided");

    std::vector<int64_t> send(p), recv(p);
    int64_t total = 0;
    for (int j = 0; j < p; ++j) {
      send[j] = (r + j) % 2 + 1;
      recv[j] = (j + r) % 2 + 1;
      total += send[j];
    }
    const Tensor v = make({total, 2}, t, r);
    expect_same(fake.all_to_all_v(v, 0, send), w.all_to_all_v(v, 0, send),
                name + " all_to_all_v (counts exchanged)");
    expect_same(fake.all_to_all_v(v, 0, send, recv), w.all_to_all_v(v, 0, send, recv),
                name + " all_to_all_v (counts given)");

    std::vector<int64_t> counts(p);
    for (int i = 0; i < p; ++i) counts[i] = i % 3;
    const Tensor g = make({2, counts[r], 3}, t, r);
    expect_same(fake.all_gather(g, 1, counts), w.all_gather(g, 1, counts),
                name + " all_gather unequal");
    expect_same(fake.all_gather(x, 0), w.all_gather(x, 0), name + " all_gather");

    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      Tensor a = make({5, 3}, t, r), b = a.clone();
      fake.all_reduce(a.slice(1, 0, 2), op);
      w.all_reduce(b.slice(1, 0, 2), op);
      expect_same(a, b, name + " all_reduce");
    }
    Tensor a = make({4, 3}, t, r), b = a.clone();
    fake.broadcast(a, p - 1);
    w.broadcast(b, p - 1);
    expect_same(a, b, name + " broadcast");

    // Point to point: a ring, the receive strided.
    Tensor big = Tensor::zeros({3, 6}, t);
    Tensor into = big.slice(1, 1, 4);
    Request rq = fake.irecv(into, (r - 1 + p) % p, 11);
    Request sq = fake.isend(make({3, 3}, t, r), (r + 1) % p, 11);
    sq.wait();
    rq.wait();
    expect_same(into, make({3, 3}, t, (r - 1 + p) % p), name + " isend/irecv");
  }
  EXPECT_EQ(fake.primitive_calls(), 0);
}

// A device transport's counters include what its host group carried for it.
TEST(Routing, DeviceTransportCountsHostGroupBytes) {
  const Communicator& w = world();
  const FakeDeviceTransport fake(w);
  const int p = w.size();
  fake.reset_bytes();
  EXPECT_EQ(w.bytes().total(), 0u);         // reset through the fake
  const Tensor x = Tensor::zeros({p, 10});  // 40·p bytes
  fake.all_gather(x, 0);
  fake.all_reduce(x);
  EXPECT_EQ(fake.bytes().all_gather, 40u * p * (p - 1));
  EXPECT_EQ(fake.bytes().all_reduce, 2u * (p - 1) * 40u * p / p);
  EXPECT_EQ(fake.bytes().total(), w.bytes().total());
  fake.reset_bytes();
}

// A device transport whose host group also takes device memory would send a host tensor back and
// forth forever: an Error instead.
TEST(Routing, HostGroupMustTakeHostMemory) {
  const Communicator& w = world();
  const FakeDeviceTransport inner(w);
  const FakeDeviceTransport outer(static_cast<const Communicator&>(inner));
  if (w.size() == 1) GTEST_SKIP() << "a group of one never routes";
  EXPECT_THROW(outer.all_gather(Tensor::zeros({1, 2}), 0), Error);
  Tensor x = Tensor::zeros({3});
  EXPECT_THROW(outer.all_reduce(x), Error);
  EXPECT_EQ(inner.primitive_calls() + outer.primitive_calls(), 0);
}

// A group of one never moves data: its collectives are fresh copies on the tensor's device, the
// device transport's host group included.
TEST(Routing, GroupOfOneCopies) {
  const LocalCommunicator local;
  const FakeDeviceTransport fake(local);
  for (const Communicator* c :
       {static_cast<const Communicator*>(&local), static_cast<const Communicator*>(&fake)}) {
    Tensor x = make({4, 3}, DType::F32, 2);
    const Tensor keep = x.clone();
    const Tensor a = c->all_to_all(x, 0, 1);
    const Tensor g = c->all_gather(x.slice(1, 0, 2), 1);
    const Tensor v = c->all_to_all_v(x, 0, {4}, {4});
    x.copy_from(Tensor::zeros({4, 3}));  // the results must not alias x
    expect_same(a, keep, c->kind() + " all_to_all");
    expect_same(g, keep.slice(1, 0, 2), c->kind() + " all_gather");
    expect_same(v, keep, c->kind() + " all_to_all_v");
    Tensor y = keep.clone();
    c->all_reduce(y, ReduceOp::kSum);
    c->broadcast(y, 0);
    expect_same(y, keep, c->kind() + " all_reduce/broadcast");
    EXPECT_THROW(c->all_to_all_v(keep, 0, {4}, {3}), Error);
  }
  EXPECT_EQ(fake.primitive_calls(), 0);
}

}  // namespace
}  // namespace paradit::comm
