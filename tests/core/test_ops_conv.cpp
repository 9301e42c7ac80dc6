// conv2d and upsample_nearest2d against plain double-precision loops on random inputs.
//
// Tolerance for conv2d: an f32 sum of K = C·kh·kw products differs from the exact one by about
// √K·2⁻²⁴·Σ|x·w| in practice (≤ K·2⁻²⁴·Σ|x·w| at worst), so each output is compared with
// 1e-5·(Σ|x·w| + |b|): well above any summation order at these K, far below an indexing or
// padding mistake (which moves a whole term). With BF16 weights the GEMM also rounds the
// activations to bf16 (relative error ≤ 2⁻⁹ per product), so the reference uses the
// bf16-rounded weights and the bound is 2⁻⁸·Σ|x·w| + 1e-5·|b|.

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/ops.h"
#include "support/random.h"

namespace paradit::core {
namespace {

using paradit::testing::random_tensor;
using paradit::testing::random_values;

struct ConvCase {
  int64_t N, C, H, W, O, kh, kw;
  Conv2dOptions opt;
};

std::string describe(const ConvCase& c) {
  return "conv N" + std::to_string(c.N) + " C" + std::to_string(c.C) + " " + std::to_string(c.H) +
         "x" + std::to_string(c.W) + " O" + std::to_string(c.O) + " k" + std::to_string(c.kh) +
         "x" + std::to_string(c.kw) + " s" + std::to_string(c.opt.stride_h) + "," +
         std::to_string(c.opt.stride_w) + " p" + std::to_string(c.opt.pad_top) + "," +
         std::to_string(c.opt.pad_bottom) + "," + std::to_string(c.opt.pad_left) + "," +
         std::to_string(c.opt.pad_right);
}

// Checks conv2d(x, w, b) at every output element (or every `step`-th one) against the direct
// double sum over the receptive field.
void check_conv(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt,
                const std::string& what, int64_t step = 1) {
  const bool bf16 = w.dtype() == DType::BF16;
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t O = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  const int64_t Ho = (H + opt.pad_top + opt.pad_bottom - kh) / opt.stride_h + 1;
  const int64_t Wo = (W + opt.pad_left + opt.pad_right - kw) / opt.stride_w + 1;
  Tensor y = conv2d(x, w, b, opt);
  ASSERT_EQ(y.shape(), (Shape{N, O, Ho, Wo})) << what;
  const std::vector<float> xv = x.to_vector(), wv = w.to_vector();  // wv: bf16-rounded if bf16
  const std::vector<float> bv = b.defined() ? b.to_vector() : std::vector<float>();
  const std::vector<float> yv = y.to_vector();
  int reported = 0;
  for (int64_t idx = 0; idx < static_cast<int64_t>(yv.size()); idx += step) {
    const int64_t ow = idx % Wo, oh = idx / Wo % Ho, o = idx / (Wo * Ho) % O,
                  n = idx / (Wo * Ho * O);
    double acc = bv.empty() ? 0.0 : bv[o], mag = 0.0;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j) {
          const int64_t ih = oh * opt.stride_h - opt.pad_top + i;
          const int64_t iw = ow * opt.stride_w - opt.pad_left + j;
          if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;  // zero padding
          const double p = static_cast<double>(xv[((n * C + c) * H + ih) * W + iw]) *
                           wv[((o * C + c) * kh + i) * kw + j];
          acc += p;
          mag += std::fabs(p);
        }
    const double bmag = bv.empty() ? 0.0 : std::fabs(bv[o]);
    const double bound = (bf16 ? 1.0 / 256 : 1e-5) * mag + 1e-5 * bmag + 1e-30;
    const double err = std::fabs(yv[idx] - acc);
    if (!(err <= bound) && reported++ < 5) {
      ADD_FAILURE() << what << ": out[" << n << "," << o << "," << oh << "," << ow << "] got "
                    << yv[idx] << " expected " << acc << " (|err| " << err << " > " << bound << ")";
    }
  }
}

void run_case(const ConvCase& c, uint32_t seed) {
  Tensor x = random_tensor({c.N, c.C, c.H, c.W}, seed);
  Tensor w = random_tensor({c.O, c.C, c.kh, c.kw}, seed + 1);
  Tensor b = random_tensor({c.O}, seed + 2);
  for (bool bf16 : {false, true}) {
    Tensor wt = bf16 ? w.to(DType::BF16) : w;
    check_conv(x, wt, b, c.opt, describe(c) + (bf16 ? " bf16" : " f32") + " +bias");
    check_conv(x, wt, {}, c.opt, describe(c) + (bf16 ? " bf16" : " f32"));
  }
}

TEST(Conv2d, KernelsStridesAndPadding) {
  const std::vector<ConvCase> cases = {
      {2, 3, 7, 9, 5, 3, 3, Conv2dOptions::same(1, 1)},
      {1, 4, 8, 8, 6, 1, 1, Conv2dOptions::same(1, 0)},    // 1×1: the direct GEMM path
      {2, 5, 6, 7, 3, 1, 1, Conv2dOptions::same(2, 0)},    // 1×1 with stride
      {1, 3, 9, 11, 4, 3, 3, {2, 2, 0, 1, 0, 1}},          // VAE downsample: pad bottom/right
      {2, 3, 9, 11, 4, 3, 3, {2, 2, 1, 0, 1, 0}},          // pad top/left only
      {1, 2, 5, 6, 3, 4, 2, {2, 3, 2, 1, 0, 3}},           // non-square kernel, mixed strides
      {1, 4, 16, 16, 8, 2, 2, Conv2dOptions::same(2, 0)},  // patch embedding (k = stride)
      {1, 1, 1, 1, 1, 1, 1, Conv2dOptions::same(1, 0)},
      {1, 3, 2, 2, 2, 3, 3, Conv2dOptions::same(1, 1)},  // kernel larger than the image
      {3, 16, 12, 10, 7, 3, 3, Conv2dOptions::same(1, 1)},
  };
  uint32_t seed = 1000;
  for (const ConvCase& c : cases) {
    run_case(c, seed);
    seed += 3;
  }
}

TEST(Conv2d, RowBlocksOfALargeImage) {
  // K·W' = 144·256 floats per output row: the im2col buffer holds ~113 rows, so 256 output rows
  // take three blocks (and the last one is partial). Every 13th output is checked.
  Tensor x = random_tensor({1, 16, 256, 256}, 1100);
  Tensor w = random_tensor({8, 16, 3, 3}, 1101);
  Tensor b = random_tensor({8}, 1102);
  check_conv(x, w, b, Conv2dOptions::same(1, 1), "large f32", 13);
  check_conv(x, w.to(DType::BF16), b, Conv2dOptions::same(1, 1), "large bf16", 13);
}

TEST(Conv2d, NonContiguousInput) {
  Tensor big = random_tensor({2, 6, 9, 12}, 1200);
  Tensor x = big.slice(1, 1, 4).slice(3, 2, 11);  // (2, 3, 9, 9)
  ASSERT_FALSE(x.is_contiguous());
  Tensor w = random_tensor({4, 3, 3, 3}, 1201);
  check_conv(x, w, random_tensor({4}, 1202), Conv2dOptions::same(1, 1), "strided x");
  check_conv(x, w.to(DType::BF16), {}, {2, 2, 0, 1, 0, 1}, "strided x bf16");
}

TEST(Conv2d, BadArgumentsThrow) {
  Tensor x = random_tensor({1, 3, 8, 8}, 1300);
  Tensor w = random_tensor({4, 3, 3, 3}, 1301);
  EXPECT_THROW(conv2d(x, random_tensor({4, 2, 3, 3}, 1302), {}, {}), Error);  // channels
  EXPECT_THROW(conv2d(x, w, random_tensor({5}, 1303), {}), Error);            // bias size
  EXPECT_THROW(conv2d(random_tensor({3, 8, 8}, 1304), w, {}, {}), Error);     // 3-D x
  EXPECT_THROW(conv2d(x, w, {}, {0, 1, 0, 0, 0, 0}), Error);                  // stride 0
  EXPECT_THROW(conv2d(x, w, {}, {1, 1, -1, 0, 0, 0}), Error);                 // negative pad
  EXPECT_THROW(conv2d(random_tensor({1, 3, 2, 2}, 1305), w, {}, {}), Error);  // kernel > input
  EXPECT_THROW(conv2d(x, Tensor::from_vector_i64({1}, {1, 1, 1, 1}), {}, {}), Error);
  EXPECT_THROW(conv2d(x.to(DType::BF16), w, {}, {}), Error);  // activations must be F32
}

TEST(Upsample, NearestIntegerFactors) {
  Tensor big = random_tensor({2, 4, 5, 8}, 1400);
  for (const Tensor& x : {random_tensor({2, 3, 4, 5}, 1401), big.slice(1, 1, 3).slice(3, 1, 7)}) {
    for (int f : {1, 2, 3}) {
      Tensor y = upsample_nearest2d(x, f);
      ASSERT_EQ(y.shape(), (Shape{x.dim(0), x.dim(1), x.dim(2) * f, x.dim(3) * f}));
      for (int64_t n = 0; n < y.dim(0); ++n)
        for (int64_t c = 0; c < y.dim(1); ++c)
          for (int64_t h = 0; h < y.dim(2); ++h)
            for (int64_t w = 0; w < y.dim(3); ++w)
              ASSERT_EQ(y.item_at({n, c, h, w}), x.item_at({n, c, h / f, w / f}))
                  << "factor " << f << " at " << n << "," << c << "," << h << "," << w;
    }
  }
  EXPECT_THROW(upsample_nearest2d(random_tensor({2, 3, 4}, 1402), 2), Error);
  EXPECT_THROW(upsample_nearest2d(random_tensor({1, 1, 2, 2}, 1403), 0), Error);
}

}  // namespace
}  // namespace paradit::core
