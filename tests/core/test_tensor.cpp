// Tensor views, copies and dtype conversions. Expected values come from index arithmetic done
// by hand in the test (views) and from bit patterns worked out by hand (bf16/f16 rounding).

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace paradit::core {
namespace {

// (d0, d1, d2) tensor with value 100·i + 10·j + k at (i, j, k): every element names its index.
Tensor index_tensor(int64_t d0, int64_t d1, int64_t d2) {
  std::vector<float> v;
  for (int64_t i = 0; i < d0; ++i)
    for (int64_t j = 0; j < d1; ++j)
      for (int64_t k = 0; k < d2; ++k) v.push_back(static_cast<float>(100 * i + 10 * j + k));
  return Tensor::from_vector(v, {d0, d1, d2});
}

float bits_f32(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

uint16_t bf16_bits_of(const Tensor& t, int64_t i) {
  return static_cast<const uint16_t*>(t.raw_data())[i];
}

TEST(TensorViews, SliceSharesStorageAndIndexes) {
  Tensor t = index_tensor(3, 4, 5);
  Tensor s = t.slice(1, 1, 3);  // (3, 2, 5)
  EXPECT_EQ(s.shape(), (Shape{3, 2, 5}));
  EXPECT_EQ(s.storage(), t.storage());
  EXPECT_FALSE(s.is_contiguous());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 5; ++k) EXPECT_EQ(s.item_at({i, j, k}), 100 * i + 10 * (j + 1) + k);
  // A write through the view shows in the base tensor.
  float* p = static_cast<float*>(s.raw_data());
  p[0] = -7.0f;  // s[0, 0, 0] = t[0, 1, 0]
  EXPECT_EQ(t.item_at({0, 1, 0}), -7.0);
  // Slice of the last dim and negative dims.
  Tensor l = t.slice(-1, 2, 4);  // (3, 4, 2)
  EXPECT_EQ(l.shape(), (Shape{3, 4, 2}));
  EXPECT_EQ(l.item_at({2, 3, 1}), 233.0);
  EXPECT_EQ(t.slice(0, 1, 1).numel(), 0);
  EXPECT_THROW(t.slice(1, 2, 5), Error);
  EXPECT_THROW(t.slice(3, 0, 1), Error);
}

TEST(TensorViews, SelectDropsTheDim) {
  Tensor t = index_tensor(3, 4, 5);
  Tensor s = t.select(1, 2);  // (3, 5), stride 20 then 1
  EXPECT_EQ(s.shape(), (Shape{3, 5}));
  EXPECT_EQ(s.strides(), (std::vector<int64_t>{20, 1}));
  EXPECT_EQ(s.storage(), t.storage());
  EXPECT_EQ(s.item_at({2, 4}), 224.0);
  Tensor c = t.select(-1, 3);  // (3, 4) with last stride 5
  EXPECT_EQ(c.stride(-1), 5);
  EXPECT_EQ(c.item_at({1, 2}), 123.0);
  std::vector<float> v = c.to_vector();
  EXPECT_EQ(v[4 + 2], 123.0f);
  EXPECT_THROW(t.select(0, 3), Error);
}

TEST(TensorViews, ReshapeUnsqueezeSqueeze) {
  Tensor t = index_tensor(2, 3, 4);
  Tensor r = t.reshape({6, -1});  // (6, 4)
  EXPECT_EQ(r.shape(), (Shape{6, 4}));
  EXPECT_EQ(r.storage(), t.storage());
  EXPECT_EQ(r.item_at({4, 3}), 113.0);  // row 4 = (i 1, j 1)
  EXPECT_EQ(t.flatten_to_2d().shape(), (Shape{6, 4}));
  EXPECT_THROW(t.reshape({5, -1}), Error);
  EXPECT_THROW(t.reshape({-1, -1}), Error);
  EXPECT_THROW(t.slice(2, 0, 2).reshape({12}), Error);  // not contiguous

  Tensor u = t.unsqueeze(1);  // (2, 1, 3, 4)
  EXPECT_EQ(u.shape(), (Shape{2, 1, 3, 4}));
  EXPECT_TRUE(u.is_contiguous());
  EXPECT_EQ(u.storage(), t.storage());
  EXPECT_EQ(u.item_at({1, 0, 2, 3}), 123.0);
  Tensor ue = t.unsqueeze(-1);  // (2, 3, 4, 1)
  EXPECT_EQ(ue.shape(), (Shape{2, 3, 4, 1}));
  EXPECT_EQ(ue.item_at({1, 2, 3, 0}), 123.0);
  Tensor q = u.squeeze(1);
  EXPECT_EQ(q.shape(), t.shape());
  EXPECT_EQ(q.item_at({1, 1, 1}), 111.0);
  EXPECT_THROW(t.squeeze(0), Error);
  // Views of views: unsqueeze of a slice keeps its strides.
  Tensor su = t.slice(2, 1, 3).unsqueeze(0);  // (1, 2, 3, 2)
  EXPECT_EQ(su.item_at({0, 1, 2, 1}), 122.0);
}

TEST(TensorCopies, PermuteCopies) {
  Tensor t = index_tensor(2, 3, 4);
  Tensor p = t.permute({2, 0, 1});  // (4, 2, 3): p[k, i, j] = t[i, j, k]
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_TRUE(p.is_contiguous());
  EXPECT_NE(p.storage(), t.storage());
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(p.item_at({k, i, j}), 100 * i + 10 * j + k);
  // Permute of a strided view.
  Tensor v = t.slice(1, 1, 3).permute({1, 2, 0});  // (2, 4, 2): v[j, k, i] = t[i, j+1, k]
  EXPECT_EQ(v.item_at({1, 3, 1}), 123.0);
  EXPECT_THROW(t.permute({0, 1}), Error);
  EXPECT_THROW(t.permute({0, 1, 1}), Error);
}

TEST(TensorCopies, ContiguousAndClone) {
  Tensor t = index_tensor(2, 3, 4);
  EXPECT_EQ(t.contiguous().storage(), t.storage());  // no copy when already contiguous
  Tensor s = t.slice(1, 0, 2);
  Tensor c = s.contiguous();
  EXPECT_NE(c.storage(), t.storage());
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector(), s.to_vector());
  Tensor k = t.clone();
  EXPECT_NE(k.storage(), t.storage());
  EXPECT_EQ(k.to_vector(), t.to_vector());
}

TEST(TensorCopies, CopyFromAcrossStrides) {
  // Source: a (4, 3) view with last-dim stride 5 (select of a 3-D tensor's last dim).
  Tensor src = index_tensor(4, 3, 5).select(2, 1);  // src[i, j] = 100 i + 10 j + 1
  ASSERT_EQ(src.stride(-1), 5);
  // Destination: a non-contiguous window of a zeroed (6, 7) tensor.
  Tensor base = Tensor::zeros({6, 7});
  Tensor dst = base.slice(0, 1, 5).slice(1, 2, 5);  // (4, 3), row stride 7
  dst.copy_from(src);
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t c = 0; c < 7; ++c) {
      const bool inside = r >= 1 && r < 5 && c >= 2 && c < 5;
      const double want = inside ? 100 * (r - 1) + 10 * (c - 2) + 1 : 0.0;
      EXPECT_EQ(base.item_at({r, c}), want) << r << "," << c;
    }
  // Contiguous source into a strided destination.
  Tensor base2 = Tensor::zeros({3, 8});
  Tensor dst2 = base2.slice(1, 1, 5);
  dst2.copy_from(Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {3, 4}));
  EXPECT_EQ(base2.item_at({2, 4}), 12.0);
  EXPECT_EQ(base2.item_at({2, 5}), 0.0);
  EXPECT_EQ(base2.item_at({0, 0}), 0.0);
  // Converting while copying across strides: an F32 view into a BF16 tensor.
  Tensor b = Tensor::empty({4, 3}, DType::BF16);
  b.copy_from(src);
  EXPECT_EQ(b.item_at({2, 1}), 211.0);  // 11010011b: 8 significant bits, exact in bf16
  // 321 = 101000001b has 9 significant bits; bf16 keeps 8, and the dropped 1 is a tie that
  // rounds to the even neighbour 320.
  EXPECT_EQ(b.item_at({3, 2}), 320.0);
  EXPECT_THROW(b.copy_from(Tensor::zeros({3, 4})), Error);
}

TEST(TensorCopies, CopyFromKeepsLargeIntegers) {
  // I64 values above 2^53 must survive a strided copy (no round trip through double).
  const int64_t big = (int64_t{1} << 60) + 1;
  Tensor t = Tensor::from_vector_i64({big, 1, big + 2, 3, big + 4, 5}, {3, 2});
  Tensor col = t.select(1, 0);  // (3), stride 2
  Tensor c = col.contiguous();
  EXPECT_EQ(c.data<int64_t>()[0], big);
  EXPECT_EQ(c.data<int64_t>()[1], big + 2);
  EXPECT_EQ(c.data<int64_t>()[2], big + 4);
  Tensor p = t.permute({1, 0});
  EXPECT_EQ(p.data<int64_t>()[2], big + 4);
}

TEST(TensorDtype, Bf16KnownBitPatterns) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  // 0.1f = 0x3dcccccd: the dropped half 0xcccd is above 0x8000, so round up.
  EXPECT_EQ(f32_to_bf16(0.1f), 0x3dcd);
  // Exact ties round to even: 0x3f808000 lies halfway between 0x3f80 and 0x3f81.
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f808000u)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f818000u)), 0x3f82);  // 0x3f81 is odd: up
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f808001u)), 0x3f81);  // just above the tie
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f807fffu)), 0x3f80);  // just below
  // Overflow rounds to infinity; infinities and NaN stay what they are.
  EXPECT_EQ(f32_to_bf16(bits_f32(0x7f7fffffu)), 0x7f80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xc040), -3.0f);
  EXPECT_EQ(bf16_to_f32(0x0001), bits_f32(0x00010000u));  // subnormal kept
  // Every non-NaN bf16 survives bf16 → f32 → bf16.
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const bool nan = (h & 0x7f80u) == 0x7f80u && (h & 0x7fu);
    if (!nan) ASSERT_EQ(f32_to_bf16(bf16_to_f32(static_cast<uint16_t>(h))), h) << h;
  }
}

TEST(TensorDtype, F16KnownBitPatterns) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-0.5f), 0xb800);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);  // largest half
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);  // below the halfway point to 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // the tie rounds to even: infinity
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);         // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);         // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);         // tie between 0 and 1 ulp: even
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);         // 1.5 ulp: tie, to even 2
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie below odd: even
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);  // tie above odd 0x3c01
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -10)), 0x3c01);
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const bool nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
    if (!nan) ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << h;
  }
}

TEST(TensorDtype, ToRoundTrips) {
  Tensor t =
      Tensor::from_vector({1.0f, -2.0f, 0.1f, bits_f32(0x3f808000u), 3.0f, 65520.0f}, {2, 3});
  EXPECT_EQ(t.to(DType::F32).storage(), t.storage());  // same dtype: no copy
  Tensor b = t.to(DType::BF16);
  EXPECT_EQ(b.dtype(), DType::BF16);
  const uint16_t want_b[] = {0x3f80, 0xc000, 0x3dcd, 0x3f80, 0x4040, 0x4780};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(bf16_bits_of(b, i), want_b[i]) << i;
  Tensor h = t.to(DType::F16);
  const uint16_t want_h[] = {0x3c00, 0xc000, 0x2e66, 0x3c04, 0x4200, 0x7c00};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(bf16_bits_of(h, i), want_h[i]) << i;
  // Back to F32: values exactly representable in the narrow type come back unchanged.
  std::vector<float> back = b.to(DType::F32).to_vector();
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], -2.0f);
  EXPECT_EQ(back[4], 3.0f);
  EXPECT_EQ(back[2], bf16_to_f32(0x3dcd));
  EXPECT_EQ(b.to(DType::F32).to(DType::BF16).to_vector(), back);
  // Strided views convert too.
  Tensor col = t.select(1, 1);  // (-2, 3)
  std::vector<float> cb = col.to(DType::BF16).to_vector();
  EXPECT_EQ(cb, (std::vector<float>{-2.0f, 3.0f}));
  // Integers.
  Tensor i = Tensor::from_vector_i64({-3, 0, 7}, {3});
  EXPECT_EQ(i.to(DType::F32).to_vector(), (std::vector<float>{-3.0f, 0.0f, 7.0f}));
  EXPECT_EQ(i.to(DType::I32).to(DType::I64).data<int64_t>()[2], 7);
}

TEST(TensorBasics, ConstructionAndChecks) {
  Tensor z = Tensor::zeros({2, 3});
  for (float v : z.to_vector()) EXPECT_EQ(v, 0.0f);
  Tensor f = Tensor::full({4}, 2.5f);
  EXPECT_EQ(f.to_vector(), (std::vector<float>(4, 2.5f)));
  EXPECT_EQ(f.str(), "F32[4]");
  EXPECT_EQ(shape_str({2, 16, 64}), "[2, 16, 64]");
  EXPECT_THROW(Tensor::from_vector({1, 2, 3}, {2, 2}), Error);
  EXPECT_THROW(Tensor::empty({1, 1, 1, 1, 1, 1, 1}), Error);  // more than kMaxDims
  EXPECT_THROW(z.data<int64_t>(), Error);                     // wrong dtype
  EXPECT_EQ(z.dim(-1), 3);
  EXPECT_THROW(z.dim(2), Error);
  auto storage = Storage::allocate(64);
  EXPECT_NO_THROW(Tensor::from_storage(storage, 32, {8}, DType::F32));
  EXPECT_THROW(Tensor::from_storage(storage, 36, {8}, DType::F32), Error);
  Tensor scalar = Tensor::from_vector({4.0f}, {});
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(scalar.to_vector(), (std::vector<float>{4.0f}));
}

}  // namespace
}  // namespace paradit::core
