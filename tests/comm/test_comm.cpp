// Communicator collectives, point-to-point, byte counters and the chunked large-message paths.
// Runs alone (a LocalCommunicator world of one) and under mpirun -np 2, 3, 4 (comm.cmake). Every
// expected value is computed from the rule that generated each rank's data, never by the code
// under test.

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "comm/communicator.h"
#include "comm/local_communicator.h"
#include "comm/mpi_test_env.h"
#include "comm/runtime.h"

PARADIT_REGISTER_COMM_TEST_ENVIRONMENT();

namespace paradit::comm {
namespace {

using core::DType;
using core::Shape;
using core::Tensor;

// Element `index` of rank `rank`'s test tensor: a unique key stored so that any dtype carries it
// bit-exactly (I64 above 2^53 so that a trip through double would show).
uint64_t key_of(int rank, int64_t index) { return static_cast<uint64_t>(rank) * 4096 + index; }

uint64_t encode(DType t, uint64_t key) {
  switch (t) {
    case DType::F32: {
      float f = static_cast<float>(key);
      uint32_t b;
      std::memcpy(&b, &f, 4);
      return b;
    }
    case DType::I64:
      return key | (uint64_t{1} << 60);
    case DType::BF16:
      return key & 0xffff;
    default:
      ADD_FAILURE() << "dtype not used in these tests";
      return 0;
  }
}

// Raw bits of one element (by multi-index, any strides).
uint64_t raw_at(const Tensor& t, const std::vector<int64_t>& idx) {
  int64_t off = 0;
  for (int i = 0; i < t.ndim(); ++i) off += idx[i] * t.stride(i);
  uint64_t v = 0;
  std::memcpy(&v, static_cast<const char*>(t.raw_data()) + off * t.itemsize(), t.itemsize());
  return v;
}

void set_raw(const Tensor& t, int64_t flat, uint64_t bits) {
  std::memcpy(static_cast<char*>(t.raw_data()) + flat * t.itemsize(), &bits, t.itemsize());
}

// A contiguous tensor whose element i holds encode(key_of(rank, i)).
Tensor make(const Shape& shape, DType t, int rank) {
  Tensor x = Tensor::empty(shape, t);
  for (int64_t i = 0; i < x.numel(); ++i) set_raw(x, i, encode(t, key_of(rank, i)));
  return x;
}

// A non-contiguous view of the same logical content as make(): the tensor sits inside a wider
// last dim.
Tensor make_strided(const Shape& shape, DType t, int rank) {
  Shape wide = shape;
  wide.back() += 3;
  Tensor big = Tensor::zeros(wide, t);
  Tensor view = big.slice(-1, 1, 1 + shape.back());
  const Tensor src = make(shape, t, rank);
  // Fill the view element by element through raw offsets.
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < src.numel(); ++i) {
    int64_t rem = i, off = 0;
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
      off += idx[d] * view.stride(d);
    }
    std::memcpy(static_cast<char*>(view.raw_data()) + off * view.itemsize(),
                static_cast<const char*>(src.raw_data()) + i * src.itemsize(), src.itemsize());
  }
  EXPECT_FALSE(view.is_contiguous());
  return view;
}

int64_t flat_index(const Shape& shape, const std::vector<int64_t>& idx) {
  int64_t f = 0;
  for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
  return f;
}

// Calls fn(multi-index) for every element of shape. (noinline: inlined, GCC 12 reports a false
// -Wfree-nonheap-object on the index vector.)
template <typename Fn>
[[gnu::noinline]] void for_each_index(const Shape& shape, Fn&& fn) {
  const int64_t n = core::shape_numel(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i;
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
    }
    fn(idx);
  }
}

const std::vector<DType> kDTypes = {DType::F32, DType::I64, DType::BF16};

// ---------------------------------------------------------------- all_to_all (equal splits)

void check_all_to_all(const Communicator& w, DType t, int s, int g, bool strided) {
  const int p = w.size(), r = w.rank();
  const Shape shape = {p, 3 * p, 2 * p};  // every dim divisible by p
  const Tensor x = strided ? make_strided(shape, t, r) : make(shape, t, r);
  const Tensor out = w.all_to_all(x, s, g);
  Shape chunk = shape;
  chunk[s] /= p;
  Shape expect_shape = chunk;
  expect_shape[g] *= p;
  ASSERT_EQ(out.shape(), expect_shape);
  ASSERT_EQ(out.dtype(), t);
  int bad = 0;
  for_each_index(expect_shape, [&](const std::vector<int64_t>& o) {
    // Element o came from rank i = o[g] / chunk[g], index (o with [g] − i·chunk[g], [s] + r·c).
    const int i = static_cast<int>(o[g] / chunk[g]);
    std::vector<int64_t> src = o;
    src[g] -= i * chunk[g];
    src[s] += r * chunk[s];
    if (raw_at(out, o) != encode(t, key_of(i, flat_index(shape, src)))) ++bad;
  });
  EXPECT_EQ(bad, 0) << "dtype " << core::dtype_name(t) << " scatter " << s << " gather " << g
                    << (strided ? " strided" : "");
}

TEST(Collectives, AllToAllEqualSplits) {
  const Communicator& w = world();
  for (DType t : kDTypes)
    for (int s = 0; s < 3; ++s)
      for (int g = 0; g < 3; ++g) check_all_to_all(w, t, s, g, false);
  check_all_to_all(w, DType::F32, 1, 2, true);
  check_all_to_all(w, DType::I64, 2, 1, true);
}

TEST(Collectives, AllToAllRejectsIndivisible) {
  const Communicator& w = world();
  if (w.size() == 1) GTEST_SKIP() << "every length divides by 1";
  const Tensor x = Tensor::zeros({2, w.size() + 1});
  try {
    w.all_to_all(x, 1, 0);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not divisible by the group size"), std::string::npos)
        << e.what();
  }
}

// ---------------------------------------------------------------- all_to_all (uneven chunks)

// Ulysses over a head count the group does not divide: chunk j has sc[j] slices along s (0 for
// some ranks), rank i holds gc[i] slices along g. Checked element by element, then sent back
// (scatter along g, gather along s) to the original tensor.
void check_all_to_all_uneven(const Communicator& w, DType t, int s, int g, bool strided) {
  const int p = w.size(), r = w.rank();
  std::vector<int64_t> sc(p), gc(p);
  int64_t s_total = 0, g_total = 0;
  for (int j = 0; j < p; ++j) {
    sc[j] = (j + 1) % 3;  // 1, 2, 0, 1 ...
    gc[j] = j % 2 + 1;    // 1, 2, 1, 2 ...
    s_total += sc[j];
    g_total += gc[j];
  }
  auto shape_of = [&](int i) {
    Shape shape = {2, 3, 2};
    shape[s] = s_total;
    shape[g] = gc[i];
    return shape;
  };
  const Tensor x = strided ? make_strided(shape_of(r), t, r) : make(shape_of(r), t, r);
  const Tensor out = w.all_to_all(x, s, g, sc, gc);
  Shape expect_shape = shape_of(r);
  expect_shape[s] = sc[r];
  expect_shape[g] = g_total;
  ASSERT_EQ(out.shape(), expect_shape);
  int64_t s0 = 0;  // where this rank's chunk begins along s
  for (int j = 0; j < r; ++j) s0 += sc[j];
  int bad = 0;
  for_each_index(expect_shape, [&](const std::vector<int64_t>& o) {
    int64_t row = o[g];
    int i = 0;
    while (row >= gc[i]) row -= gc[i++];
    std::vector<int64_t> src = o;
    src[g] = row;
    src[s] += s0;
    if (raw_at(out, o) != encode(t, key_of(i, flat_index(shape_of(i), src)))) ++bad;
  });
  EXPECT_EQ(bad, 0) << "dtype " << core::dtype_name(t) << " scatter " << s << " gather " << g;
  const Tensor back = w.all_to_all(out, g, s, gc, sc);
  ASSERT_EQ(back.shape(), x.shape());
  bad = 0;
  for_each_index(x.shape(), [&](const std::vector<int64_t>& o) {
    if (raw_at(back, o) != raw_at(x, o)) ++bad;
  });
  EXPECT_EQ(bad, 0) << "round trip, dtype " << core::dtype_name(t);
}

TEST(Collectives, AllToAllUnevenChunks) {
  const Communicator& w = world();
  for (DType t : kDTypes)
    for (int s = 0; s < 3; ++s)
      for (int g = 0; g < 3; ++g)
        if (s != g) check_all_to_all_uneven(w, t, s, g, false);
  check_all_to_all_uneven(w, DType::F32, 2, 1, true);
  // Counts that do not add up are refused.
  std::vector<int64_t> bad_counts(w.size(), 1);
  bad_counts[0] = 2;
  EXPECT_THROW(w.all_to_all(Tensor::zeros({2, w.size(), 3}), 1, 2, bad_counts, {}), Error);
}

// ---------------------------------------------------------------- all_to_all_v

// Rows rank r sends to rank j: some zero, some not, different per pair.
int64_t v_count(int r, int j) { return (r + 2 * j + 1) % 3; }

void check_all_to_all_v(const Communicator& w, DType t, int dim, bool give_recv, bool strided) {
  const int p = w.size(), r = w.rank();
  std::vector<int64_t> send(p), recv(p);
  int64_t total = 0, out_len = 0;
  for (int j = 0; j < p; ++j) {
    send[j] = v_count(r, j);
    total += send[j];
    recv[j] = v_count(j, r);
    out_len += recv[j];
  }
  Shape shape = dim == 0 ? Shape{total, 3} : Shape{2, total, 3};
  const Tensor x = strided ? make_strided(shape, t, r) : make(shape, t, r);
  const Tensor out = w.all_to_all_v(x, dim, send, give_recv ? recv : std::vector<int64_t>{});
  Shape expect_shape = shape;
  expect_shape[dim] = out_len;
  ASSERT_EQ(out.shape(), expect_shape);
  // Row o along dim: find the source rank i and the row within i's segment for r.
  int bad = 0;
  for_each_index(expect_shape, [&](const std::vector<int64_t>& o) {
    int64_t row = o[dim];
    int i = 0;
    while (row >= recv[i]) row -= recv[i++];
    int64_t start = 0;  // where i's segment for r begins in i's tensor
    for (int j = 0; j < r; ++j) start += v_count(i, j);
    int64_t i_total = 0;
    for (int j = 0; j < p; ++j) i_total += v_count(i, j);
    Shape i_shape = shape;
    i_shape[dim] = i_total;
    std::vector<int64_t> src = o;
    src[dim] = start + row;
    if (raw_at(out, o) != encode(t, key_of(i, flat_index(i_shape, src)))) ++bad;
  });
  EXPECT_EQ(bad, 0) << "dtype " << core::dtype_name(t) << " dim " << dim;
}

TEST(Collectives, AllToAllUnequalSplits) {
  const Communicator& w = world();
  for (DType t : kDTypes)
    for (int dim = 0; dim < 2; ++dim)
      for (bool give_recv : {false, true}) check_all_to_all_v(w, t, dim, give_recv, false);
  check_all_to_all_v(w, DType::F32, 1, false, true);
}

// ---------------------------------------------------------------- all_gather

void check_all_gather(const Communicator& w, DType t, int dim, bool unequal, bool strided) {
  const int p = w.size(), r = w.rank();
  auto len = [&](int i) -> int64_t { return unequal ? (i * 2 + 1) % 4 : 3; };  // 1, 3, 1, 3 ...
  std::vector<int64_t> counts(p);
  int64_t total = 0;
  for (int i = 0; i < p; ++i) {
    counts[i] = len(i);
    total += counts[i];
  }
  auto shape_of = [&](int i) { return dim == 0 ? Shape{len(i), 4} : Shape{2, len(i), 4}; };
  const Tensor x = strided ? make_strided(shape_of(r), t, r) : make(shape_of(r), t, r);
  const Tensor out = w.all_gather(x, dim, unequal ? counts : std::vector<int64_t>{});
  Shape expect_shape = shape_of(r);
  expect_shape[dim] = total;
  ASSERT_EQ(out.shape(), expect_shape);
  int bad = 0;
  for_each_index(expect_shape, [&](const std::vector<int64_t>& o) {
    int64_t row = o[dim];
    int i = 0;
    while (row >= counts[i]) row -= counts[i++];
    std::vector<int64_t> src = o;
    src[dim] = row;
    if (raw_at(out, o) != encode(t, key_of(i, flat_index(shape_of(i), src)))) ++bad;
  });
  EXPECT_EQ(bad, 0) << "dtype " << core::dtype_name(t) << " dim " << dim
                    << (unequal ? " unequal" : "");
}

TEST(Collectives, AllGather) {
  const Communicator& w = world();
  for (DType t : kDTypes)
    for (int dim = 0; dim < 2; ++dim)
      for (bool unequal : {false, true}) check_all_gather(w, t, dim, unequal, false);
  check_all_gather(w, DType::BF16, 1, true, true);
}

TEST(Collectives, AllGatherUnequalWithEmptyContribution) {
  const Communicator& w = world();
  const int p = w.size(), r = w.rank();
  // Rank 0 contributes nothing; the others 1, 2, ... rows.
  std::vector<int64_t> counts(p);
  for (int i = 0; i < p; ++i) counts[i] = i;
  Tensor x = Tensor::full({r, 2}, static_cast<float>(r));
  Tensor out = w.all_gather(x, 0, counts);
  ASSERT_EQ(out.dim(0), p * (p - 1) / 2);
  int64_t row = 0;
  for (int i = 0; i < p; ++i)
    for (int k = 0; k < i; ++k, ++row) EXPECT_EQ(out.item_at({row, 1}), i);
}

// ---------------------------------------------------------------- all_reduce, broadcast

TEST(Collectives, AllReduceSumAndMax) {
  const Communicator& w = world();
  const int p = w.size(), r = w.rank();
  const int64_t n = 37;
  // F32 sums of small integers are exact in any order.
  std::vector<float> fv(n);
  for (int64_t i = 0; i < n; ++i) fv[i] = static_cast<float>((r + 1) * (i % 7) - i);
  Tensor f = Tensor::from_vector(fv, {n});
  Tensor fmax = f.clone();
  w.all_reduce(f, ReduceOp::kSum);
  w.all_reduce(fmax, ReduceOp::kMax);
  for (int64_t i = 0; i < n; ++i) {
    double sum = 0, mx = -1e30;
    for (int k = 0; k < p; ++k) {
      const double v = (k + 1) * (i % 7) - i;
      sum += v;
      mx = std::max(mx, v);
    }
    EXPECT_EQ(f.item_at({i}), sum) << i;
    EXPECT_EQ(fmax.item_at({i}), mx) << i;
  }
  // I64 beyond 2^53.
  std::vector<int64_t> iv(n);
  for (int64_t i = 0; i < n; ++i) iv[i] = (int64_t{1} << 55) + r * 1000 + i;
  Tensor t64 = Tensor::from_vector_i64(iv, {n});
  Tensor t64max = t64.clone();
  w.all_reduce(t64, ReduceOp::kSum);
  w.all_reduce(t64max, ReduceOp::kMax);
  for (int64_t i = 0; i < n; ++i) {
    int64_t sum = 0;
    for (int k = 0; k < p; ++k) sum += (int64_t{1} << 55) + k * 1000 + i;
    EXPECT_EQ(t64.data<int64_t>()[i], sum);
    EXPECT_EQ(t64max.data<int64_t>()[i], (int64_t{1} << 55) + (p - 1) * 1000 + i);
  }
  // BF16 (reduced in F32): small integers stay exact.
  Tensor b =
      Tensor::from_vector(std::vector<float>(n, static_cast<float>(r + 1)), {n}).to(DType::BF16);
  w.all_reduce(b, ReduceOp::kSum);
  EXPECT_EQ(b.dtype(), DType::BF16);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(b.item_at({i}), p * (p + 1) / 2);
}

TEST(Collectives, AllReduceInPlaceOnView) {
  const Communicator& w = world();
  const int p = w.size(), r = w.rank();
  Tensor big = Tensor::full({4, 6}, -5.0f);
  Tensor view = big.slice(1, 2, 5);  // (4, 3), not contiguous
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j)
      big.data<float>()[i * 6 + 2 + j] = static_cast<float>(r + i * j);
  w.all_reduce(view, ReduceOp::kSum);
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t j = 0; j < 6; ++j) {
      const double expect = (j >= 2 && j < 5) ? p * (p - 1) / 2.0 + p * i * (j - 2) : -5.0;
      EXPECT_EQ(big.item_at({i, j}), expect) << i << "," << j;
    }
  }
}

TEST(Collectives, Broadcast) {
  const Communicator& w = world();
  const int p = w.size(), r = w.rank();
  for (DType t : kDTypes) {
    for (int root = 0; root < p; ++root) {
      const Shape shape = {3, 5};
      Tensor x = make(shape, t, r);
      w.broadcast(x, root);
      int bad = 0;
      for_each_index(shape, [&](const std::vector<int64_t>& o) {
        if (raw_at(x, o) != encode(t, key_of(root, flat_index(shape, o)))) ++bad;
      });
      EXPECT_EQ(bad, 0) << core::dtype_name(t) << " root " << root;
    }
  }
  // In place on a strided view: the elements outside the view stay.
  Tensor big = Tensor::full({3, 4}, static_cast<float>(r));
  w.broadcast(big.slice(1, 1, 3), p - 1);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(big.item_at({i, 0}), r);
    EXPECT_EQ(big.item_at({i, 1}), p - 1);
    EXPECT_EQ(big.item_at({i, 2}), p - 1);
    EXPECT_EQ(big.item_at({i, 3}), r);
  }
}

TEST(Collectives, BroadcastRejectsBadRoot) {
  const Communicator& w = world();
  Tensor x = Tensor::zeros({2});
  EXPECT_THROW(w.broadcast(x, w.size()), Error);
}

// ---------------------------------------------------------------- point to point

TEST(PointToPoint, RingExchange) {
  const Communicator& w = world();
  const int p = w.size(), r = w.rank();
  const int next = (r + 1) % p, prev = (r - 1 + p) % p;
  for (DType t : kDTypes) {
    const Shape shape = {4, 3};
    Tensor recv = Tensor::zeros(shape, t);
    Request rq = w.irecv(recv, prev, 7);
    Request sq = w.isend(make(shape, t, r), next, 7);  // the request keeps the buffer alive
    sq.wait();
    rq.wait();
    EXPECT_FALSE(rq.pending());
    int bad = 0;
    for_each_index(shape, [&](const std::vector<int64_t>& o) {
      if (raw_at(recv, o) != encode(t, key_of(prev, flat_index(shape, o)))) ++bad;
    });
    EXPECT_EQ(bad, 0) << core::dtype_name(t);
  }
}

TEST(PointToPoint, OrderTestAndDestructorWait) {
  const Communicator& w = world();
  const int p = w.size(), r = w.rank();
  const int next = (r + 1) % p, prev = (r - 1 + p) % p;
  // Two messages with one tag arrive in order; a strided receive buffer gets scattered.
  Tensor big = Tensor::zeros({3, 8});
  Tensor a = big.slice(1, 0, 3), b = big.slice(1, 4, 7);
  {
    Request s1 = w.isend(Tensor::full({3, 3}, 10.0f * r + 1), next, 3);
    Request s2 = w.isend(Tensor::full({3, 3}, 10.0f * r + 2), next, 3);
    Request r1 = w.irecv(a, prev, 3);
    Request r2 = w.irecv(b, prev, 3);
    while (!r2.test()) {
    }
    EXPECT_TRUE(r2.test());
    // r1, s1, s2 complete in their destructors.
  }
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      EXPECT_EQ(big.item_at({i, j}), 10.0 * prev + 1);
      EXPECT_EQ(big.item_at({i, 4 + j}), 10.0 * prev + 2);
    }
    EXPECT_EQ(big.item_at({i, 3}), 0.0);
    EXPECT_EQ(big.item_at({i, 7}), 0.0);
  }
}

// ---------------------------------------------------------------- large messages in pieces

TEST(LargeMessages, ChunkedPathsMatch) {
  const Communicator& w = world();
  const int p = w.size(), r = w.rank();
  const size_t saved = max_message_bytes();
  set_max_message_bytes(40);  // every message below goes in several pieces
  for (int s = 0; s < 2; ++s) check_all_to_all(w, DType::F32, s, 1 - s, false);
  check_all_to_all_v(w, DType::I64, 0, false, false);
  check_all_gather(w, DType::F32, 1, true, false);
  check_all_gather(w, DType::BF16, 0, false, false);
  Tensor x = Tensor::full({100}, static_cast<float>(r + 1));
  w.all_reduce(x, ReduceOp::kSum);
  for (int64_t i = 0; i < 100; ++i) ASSERT_EQ(x.item_at({i}), p * (p + 1) / 2);
  Tensor y = make({50}, DType::I64, r);
  w.broadcast(y, 0);
  for (int64_t i = 0; i < 50; ++i) ASSERT_EQ(raw_at(y, {i}), encode(DType::I64, key_of(0, i)));
  Tensor recv = Tensor::zeros({33}, DType::I64);
  Request rq = w.irecv(recv, (r - 1 + p) % p, 5);
  Request sq = w.isend(make({33}, DType::I64, r), (r + 1) % p, 5);
  sq.wait();
  rq.wait();
  for (int64_t i = 0; i < 33; ++i)
    ASSERT_EQ(raw_at(recv, {i}), encode(DType::I64, key_of((r - 1 + p) % p, i)));
  set_max_message_bytes(saved);
}

// ---------------------------------------------------------------- byte counters

TEST(Counters, CountBytesHandedToOthers) {
  const Communicator& w = world();
  const int p = w.size(), r = w.rank();
  w.reset_bytes();
  EXPECT_EQ(w.bytes().total(), 0u);
  const Tensor x = Tensor::zeros({p, 10});  // 40·p bytes
  w.all_to_all(x, 0, 0);
  w.all_gather(x, 0);
  w.all_reduce(x);
  w.broadcast(x, 0);
  Request rq = w.irecv(Tensor::zeros({6}), (r - 1 + p) % p, 1);
  w.isend(Tensor::zeros({6}), (r + 1) % p, 1).wait();
  rq.wait();
  const ByteCounters c = w.bytes();
  const uint64_t nb = 40 * p;
  EXPECT_EQ(c.all_to_all, 40u * (p - 1));
  EXPECT_EQ(c.all_gather, nb * (p - 1));
  EXPECT_EQ(c.all_reduce, 2 * (p - 1) * nb / p);
  EXPECT_EQ(c.broadcast, r == 0 ? nb * (p - 1) : 0u);
  EXPECT_EQ(c.send, 24u);
  w.reset_bytes();
  EXPECT_EQ(w.bytes().total(), 0u);
}

// ---------------------------------------------------------------- split, runtime

TEST(Split, GroupsByColorOrderedByKey) {
  const Communicator& w = world();
  const int p = w.size(), r = w.rank();
  // Color: parity of the rank; key: descending rank.
  std::unique_ptr<Communicator> sub = w.split(r % 2, p - r);
  int expect_size = 0, expect_rank = 0;
  for (int i = 0; i < p; ++i) {
    if (i % 2 != r % 2) continue;
    ++expect_size;
    if (i > r) ++expect_rank;  // higher ranks have smaller keys, so they come first
  }
  EXPECT_EQ(sub->size(), expect_size);
  EXPECT_EQ(sub->rank(), expect_rank);
  // The members, as seen through a collective on the sub-group.
  Tensor me = Tensor::from_vector_i64({r}, {1});
  Tensor members = sub->all_gather(me, 0);
  int64_t k = 0;
  for (int i = p - 1; i >= 0; --i) {
    if (i % 2 != r % 2) continue;
    EXPECT_EQ(members.data<int64_t>()[k++], i);
  }
  // Moving the handle keeps the group usable.
  std::unique_ptr<Communicator> moved = std::move(sub);
  moved->barrier();
}

TEST(Runtime, WorldMatchesLauncher) {
  const Communicator& w = world();
  const char* size_env = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (size_env) {
    EXPECT_TRUE(mpi_active());
    EXPECT_EQ(w.kind(), "mpi");
    EXPECT_EQ(w.size(), std::atoi(size_env));
    EXPECT_EQ(w.rank(), std::atoi(std::getenv("OMPI_COMM_WORLD_RANK")));
  } else {
    EXPECT_EQ(w.size(), 1);
    EXPECT_EQ(w.rank(), 0);
  }
  EXPECT_EQ(&init(), &w);  // init twice → the same world
  w.barrier();
}

// ---------------------------------------------------------------- LocalCommunicator

TEST(Local, SelfSendReceiveInEitherOrder) {
  LocalCommunicator c;
  Tensor got = Tensor::zeros({3});
  {
    Request rq = c.irecv(got, 0, 4);  // posted first
    EXPECT_FALSE(rq.test());
    c.isend(Tensor::full({3}, 2.5f), 0, 4).wait();
    EXPECT_TRUE(rq.test());
  }
  EXPECT_EQ(got.item_at({1}), 2.5);
  c.isend(Tensor::full({3}, 4.0f), 0, 9).wait();  // buffered until received
  c.irecv(got, 0, 9).wait();
  EXPECT_EQ(got.item_at({2}), 4.0);
}

TEST(Local, UnmatchedReceiveIsAnError) {
  LocalCommunicator c;
  Request rq = c.irecv(Tensor::zeros({2}), 0, 1);
  EXPECT_THROW(rq.wait(), Error);
}

TEST(Local, CollectivesAreCopies) {
  LocalCommunicator c;
  const Tensor x = make_strided({2, 3}, DType::F32, 0);
  const Tensor a = c.all_to_all(x, 1, 0);
  const Tensor g = c.all_gather(x, 1, {3});
  for (const Tensor* t : {&a, &g}) {
    ASSERT_EQ(t->shape(), x.shape());
    for_each_index(x.shape(),
                   [&](const std::vector<int64_t>& o) { EXPECT_EQ(raw_at(*t, o), raw_at(x, o)); });
  }
  Tensor y = x.clone();
  c.all_reduce(y, ReduceOp::kMax);
  EXPECT_EQ(y.to_vector(), x.to_vector());
  EXPECT_EQ(c.split(3, 1)->size(), 1);
}

}  // namespace
}  // namespace paradit::comm
