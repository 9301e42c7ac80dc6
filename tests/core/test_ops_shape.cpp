// concat, split, chunk and embedding. Expected values come from index arithmetic on the inputs
// (item_at), so copies must match exactly.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/ops.h"
#include "support/random.h"

namespace paradit::core {
namespace {

using paradit::testing::random_tensor;


// Checks out == concat(parts, dim) element by element.
void check_concat(const std::vector<Tensor>& parts, int dim) {
  Tensor out = concat(parts, dim);
  const int d = dim < 0 ? dim + parts[0].ndim() : dim;
  Shape want = parts[0].shape();
  want[d] = 0;
  for (const Tensor& p : parts) want[d] += p.dim(d);
  ASSERT_EQ(out.shape(), want);
  ASSERT_EQ(out.dtype(), parts[0].dtype());
  ASSERT_TRUE(out.is_contiguous());
  int64_t offset = 0;
  for (const Tensor& p : parts) {
    std::vector<int64_t> idx(static_cast<size_t>(p.ndim()), 0);
    for (int64_t linear = 0; linear < p.numel(); ++linear) {
      std::vector<int64_t> oi = idx;
      oi[d] += offset;
      ASSERT_EQ(out.item_at(oi), p.item_at(idx)) << "concat dim " << dim << " at " << linear;
      for (int k = p.ndim() - 1; k >= 0; --k) {
        if (++idx[k] < p.dim(k)) break;
        idx[k] = 0;
      }
    }
    offset += p.dim(d);
  }
}

TEST(Concat, AlongEveryDim) {
  Tensor a = random_tensor({2, 3, 4}, 1), b = random_tensor({2, 3, 4}, 2);
  for (int dim : {0, 1, 2, -1, -3}) check_concat({a, b}, dim);
  check_concat(
      {random_tensor({2, 1, 4}, 3), random_tensor({2, 5, 4}, 4), random_tensor({2, 2, 4}, 5)}, 1);
  check_concat({random_tensor({3, 7}, 6), random_tensor({3, 0}, 7), random_tensor({3, 2}, 8)},
               1);                           // an empty part
  check_concat({random_tensor({5}, 9)}, 0);  // a single part
  // Joint attention layout: (B, S_txt, H, D) ++ (B, S_img, H, D) along the sequence.
  check_concat({random_tensor({2, 7, 3, 16}, 10), random_tensor({2, 40, 3, 16}, 11)}, 1);
  // Large enough for the parallel copy.
  check_concat({random_tensor({4, 300, 64}, 12), random_tensor({4, 200, 64}, 13)}, 1);
}

TEST(Concat, StridedPartsAndOtherDtypes) {
  Tensor big = random_tensor({4, 6, 10}, 20);
  Tensor p1 = big.slice(2, 1, 5);             // (4, 6, 4), row stride 10
  Tensor p2 = big.select(1, 3).unsqueeze(1);  // (4, 1, 10) … sliced next
  Tensor p3 = random_tensor({4, 2, 6}, 21).slice(2, 2, 6);
  check_concat({p1, p2.slice(2, 6, 10), p3}, 1);
  check_concat({p1, random_tensor({4, 6, 3}, 22), big.slice(2, 7, 10)}, 2);
  Tensor lastdim = random_tensor({3, 4, 5}, 23).select(2, 1);  // (3, 4), last stride 5
  check_concat({lastdim, lastdim}, 0);
  check_concat({lastdim, lastdim}, 1);
  // BF16 and I64 are copied bit for bit.
  check_concat(
      {random_tensor({2, 3}, 24).to(DType::BF16), random_tensor({2, 5}, 25).to(DType::BF16)}, 1);
  const int64_t big_id = (int64_t{1} << 55) + 3;
  Tensor ids = Tensor::from_vector_i64({1, big_id, 3, 4, 5, 6}, {2, 3});
  Tensor joined = concat({ids.slice(1, 1, 3), ids}, 1);
  EXPECT_EQ(joined.data<int64_t>()[0], big_id);
  check_concat({ids, ids.slice(0, 1, 2)}, 0);
}

TEST(Concat, BadArgumentsThrow) {
  EXPECT_THROW(concat({}, 0), Error);
  Tensor a = random_tensor({2, 3}, 30);
  EXPECT_THROW(concat({a, random_tensor({3, 3}, 31)}, 1), Error);  // other dim differs
  EXPECT_THROW(concat({a, random_tensor({2, 3, 1}, 32)}, 0), Error);
  EXPECT_THROW(concat({a, a.to(DType::BF16)}, 0), Error);
  EXPECT_THROW(concat({a, a}, 2), Error);
  EXPECT_THROW(concat({a, Tensor()}, 0), Error);
}

TEST(Split, ViewsThatShareStorage) {
  Tensor x = random_tensor({4, 10}, 40);
  std::vector<Tensor> parts = split(x, {3, 0, 7}, 1);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].shape(), (Shape{4, 3}));
  EXPECT_EQ(parts[1].shape(), (Shape{4, 0}));
  EXPECT_EQ(parts[2].shape(), (Shape{4, 7}));
  for (const Tensor& p : parts) EXPECT_EQ(p.storage(), x.storage());
  EXPECT_EQ(parts[2].item_at({3, 6}), x.item_at({3, 9}));
  EXPECT_EQ(parts[0].item_at({1, 2}), x.item_at({1, 2}));
  std::vector<Tensor> rows = split(x, {1, 3}, -2);
  EXPECT_EQ(rows[1].item_at({2, 5}), x.item_at({3, 5}));
  EXPECT_THROW(split(x, {3, 6}, 1), Error);  // sums to 9, not 10
  EXPECT_THROW(split(x, {11, -1}, 1), Error);
  EXPECT_THROW(split(x, {4}, 2), Error);
}

TEST(Chunk, DivisibleAndNotAsTorch) {
  Tensor x = random_tensor({2, 12}, 50);
  std::vector<Tensor> six = chunk(x, 6, 1);
  ASSERT_EQ(six.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(six[i].shape(), (Shape{2, 2}));
    EXPECT_EQ(six[i].storage(), x.storage());
    EXPECT_EQ(six[i].item_at({1, 1}), x.item_at({1, 2 * i + 1}));
  }
  // torch.chunk: pieces of ceil(n / chunks); 5 into 3 → 2, 2, 1; 5 into 4 → 2, 2, 1.
  Tensor y = random_tensor({5, 3}, 51);
  std::vector<Tensor> three = chunk(y, 3, 0);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[2].shape(), (Shape{1, 3}));
  EXPECT_EQ(three[2].item_at({0, 2}), y.item_at({4, 2}));
  std::vector<Tensor> four = chunk(y, 4, 0);
  ASSERT_EQ(four.size(), 3u);
  EXPECT_EQ(four[1].item_at({1, 0}), y.item_at({3, 0}));
  EXPECT_EQ(chunk(y, 10, 0).size(), 5u);
  EXPECT_THROW(chunk(y, 0, 0), Error);
  EXPECT_THROW(chunk(y, 2, 3), Error);
}

TEST(Embedding, TablesAndIds) {
  Tensor table = random_tensor({11, 6}, 60);
  const std::vector<int64_t> idv = {3, 0, 10, 3, 7, 1};
  Tensor ids64 = Tensor::from_vector_i64(idv, {2, 3});
  Tensor ids32 = ids64.to(DType::I32);
  for (const Tensor& t : {table, table.to(DType::BF16)}) {
    for (const Tensor& ids : {ids64, ids32}) {
      Tensor out = embedding(t, ids);
      ASSERT_EQ(out.shape(), (Shape{2, 3, 6}));
      ASSERT_EQ(out.dtype(), DType::F32);
      for (int64_t i = 0; i < 6; ++i)
        for (int64_t d = 0; d < 6; ++d)
          ASSERT_EQ(out.item_at({i / 3, i % 3, d}), t.item_at({idv[i], d}))
              << t.str() << " " << ids.str() << " id " << i;
    }
  }
  // Non-contiguous ids and a strided table.
  Tensor col = ids64.select(1, 2);  // {10, 1}
  Tensor wide = random_tensor({11, 9}, 61);
  Tensor view = wide.slice(1, 2, 8);
  Tensor out = embedding(view, col);
  ASSERT_EQ(out.shape(), (Shape{2, 6}));
  EXPECT_EQ(out.item_at({0, 5}), wide.item_at({10, 7}));
  EXPECT_EQ(out.item_at({1, 0}), wide.item_at({1, 2}));
  // A larger lookup (parallel path).
  std::vector<int64_t> many(512);
  for (size_t i = 0; i < many.size(); ++i) many[i] = static_cast<int64_t>((i * 7919) % 1000);
  Tensor vocab = random_tensor({1000, 256}, 62);
  Tensor big = embedding(vocab, Tensor::from_vector_i64(many, {1, 512}));
  for (int64_t i : {0, 1, 255, 511})
    EXPECT_EQ(big.item_at({0, i, 100}), vocab.item_at({many[i], 100}));
}

TEST(Embedding, OutOfRangeIdsThrow) {
  Tensor table = random_tensor({11, 6}, 70);
  try {
    embedding(table, Tensor::from_vector_i64({1, 11}, {2}));
    ADD_FAILURE() << "no error for id 11";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("11"), std::string::npos) << msg;
    EXPECT_NE(msg.find("position 1"), std::string::npos) << msg;
  }
  EXPECT_THROW(embedding(table, Tensor::from_vector_i64({-1}, {1})), Error);
  EXPECT_THROW(embedding(table, Tensor::from_vector_i64({5}, {1}).to(DType::F32)), Error);
  EXPECT_THROW(embedding(Tensor::from_vector_i64({1, 2}, {2}), Tensor::from_vector_i64({0}, {1})),
               Error);
  EXPECT_THROW(embedding(random_tensor({11}, 71), Tensor::from_vector_i64({0}, {1})), Error);
}

}  // namespace
}  // namespace paradit::core
