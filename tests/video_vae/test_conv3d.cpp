// conv3d against a plain double-precision loop on random inputs: odd sizes, strides, causal and
// symmetric zero padding, replicate padding, bf16 weights, non-contiguous inputs, the row blocks
// of a large input, and bad arguments.
//
// Tolerance: as for conv2d (tests/core/test_ops_conv.cpp), each output is compared with
// 1e-5·(Σ|x·w| + |b|), far below a misplaced tap. With BF16 weights the GEMM also rounds the
// activations to bf16, so the reference uses the bf16-rounded weights and the bound is
// 2⁻⁸·Σ|x·w| + 1e-5·|b|.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/ops.h"
#include "support/random.h"

namespace paradit::core {
namespace {

using paradit::testing::random_tensor;

struct Case {
  int64_t N, C, T, H, W, O, kt, kh, kw;
  Conv3dOptions opt;
};

std::string describe(const Case& c) {
  const auto& o = c.opt;
  auto s = [](int64_t v) { return std::to_string(v); };
  return "conv3d N" + s(c.N) + " C" + s(c.C) + " " + s(c.T) + "x" + s(c.H) + "x" + s(c.W) + " O" +
         s(c.O) + " k" + s(c.kt) + "x" + s(c.kh) + "x" + s(c.kw) + " s" + s(o.stride_t) + "," +
         s(o.stride_h) + "," + s(o.stride_w) + " p" + s(o.pad_front) + "," + s(o.pad_back) + "," +
         s(o.pad_top) + "," + s(o.pad_bottom) + "," + s(o.pad_left) + "," + s(o.pad_right) +
         (o.replicate ? " replicate" : " zeros");
}

// Checks conv3d(x, w, b) at every `step`-th output element against the direct double sum.
void check_conv(const Tensor& x, const Tensor& w, const Tensor& b, const Conv3dOptions& opt,
                const std::string& what, int64_t step = 1) {
  const bool bf16 = w.dtype() == DType::BF16;
  const int64_t N = x.dim(0), C = x.dim(1), T = x.dim(2), H = x.dim(3), W = x.dim(4);
  const int64_t O = w.dim(0), kt = w.dim(2), kh = w.dim(3), kw = w.dim(4);
  const int64_t To = (T + opt.pad_front + opt.pad_back - kt) / opt.stride_t + 1;
  const int64_t Ho = (H + opt.pad_top + opt.pad_bottom - kh) / opt.stride_h + 1;
  const int64_t Wo = (W + opt.pad_left + opt.pad_right - kw) / opt.stride_w + 1;
  Tensor y = conv3d(x, w, b, opt);
  ASSERT_EQ(y.shape(), (Shape{N, O, To, Ho, Wo})) << what;
  const std::vector<float> xv = x.to_vector(), wv = w.to_vector();  // wv: bf16-rounded if bf16
  const std::vector<float> bv = b.defined() ? b.to_vector() : std::vector<float>();
  const std::vector<float> yv = y.to_vector();
  int reported = 0;
  for (int64_t idx = 0; idx < static_cast<int64_t>(yv.size()); idx += step) {
    const int64_t ow = idx % Wo, oh = idx / Wo % Ho, ot = idx / (Wo * Ho) % To,
                  o = idx / (Wo * Ho * To) % O, n = idx / (Wo * Ho * To * O);
    double acc = bv.empty() ? 0.0 : bv[o], mag = 0.0;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t a = 0; a < kt; ++a)
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j) {
            int64_t it = ot * opt.stride_t - opt.pad_front + a;
            int64_t ih = oh * opt.stride_h - opt.pad_top + i;
            int64_t iw = ow * opt.stride_w - opt.pad_left + j;
            if (opt.replicate) {
              it = std::clamp<int64_t>(it, 0, T - 1);
              ih = std::clamp<int64_t>(ih, 0, H - 1);
              iw = std::clamp<int64_t>(iw, 0, W - 1);
            } else if (it < 0 || it >= T || ih < 0 || ih >= H || iw < 0 || iw >= W) {
              continue;  // zero padding
            }
            const double p = static_cast<double>(xv[(((n * C + c) * T + it) * H + ih) * W + iw]) *
                             wv[(((o * C + c) * kt + a) * kh + i) * kw + j];
            acc += p;
            mag += std::fabs(p);
          }
    const double bmag = bv.empty() ? 0.0 : std::fabs(bv[o]);
    const double bound = (bf16 ? 1.0 / 256 : 1e-5) * mag + 1e-5 * bmag + 1e-30;
    const double err = std::fabs(yv[idx] - acc);
    if (!(err <= bound) && reported++ < 5) {
      ADD_FAILURE() << what << ": out[" << n << "," << o << "," << ot << "," << oh << "," << ow
                    << "] got " << yv[idx] << " expected " << acc << " (|err| " << err << " > "
                    << bound << ")";
    }
  }
}

Conv3dOptions opts(int st, int sh, int sw, int pf, int pb, int pt, int pbo, int pl, int pr,
                   bool replicate = false) {
  Conv3dOptions o;
  o.stride_t = st;
  o.stride_h = sh;
  o.stride_w = sw;
  o.pad_front = pf;
  o.pad_back = pb;
  o.pad_top = pt;
  o.pad_bottom = pbo;
  o.pad_left = pl;
  o.pad_right = pr;
  o.replicate = replicate;
  return o;
}

TEST(Conv3d, KernelsStridesAndPadding) {
  const std::vector<Case> cases = {
      // Wan causal 3×3×3: time padded 2 in front, space 1 on each side.
      {2, 3, 5, 7, 9, 4, 3, 3, 3, opts(1, 1, 1, 2, 0, 1, 1, 1, 1)},
      // HunyuanVideo causal conv: the same padding, replicated.
      {1, 3, 5, 7, 9, 4, 3, 3, 3, opts(1, 1, 1, 2, 0, 1, 1, 1, 1, true)},
      // HunyuanVideo downsample: replicate padding then stride 2 in time and space.
      {1, 4, 9, 10, 11, 3, 3, 3, 3, opts(2, 2, 2, 2, 0, 1, 1, 1, 1, true)},
      // Spatial-only stride (first HunyuanVideo down block).
      {1, 2, 3, 8, 6, 3, 3, 3, 3, opts(1, 2, 2, 2, 0, 1, 1, 1, 1, true)},
      // Wan time_conv (3, 1, 1): causal and the stride-2 downsampling form.
      {1, 5, 4, 3, 5, 10, 3, 1, 1, opts(1, 1, 1, 2, 0, 0, 0, 0, 0)},
      {1, 5, 5, 3, 5, 5, 3, 1, 1, opts(2, 1, 1, 0, 0, 0, 0, 0, 0)},
      // 1×1×1: the direct GEMM path, and 1×1×1 with a stride (not direct).
      {2, 6, 3, 4, 5, 7, 1, 1, 1, opts(1, 1, 1, 0, 0, 0, 0, 0, 0)},
      {1, 6, 5, 4, 5, 3, 1, 1, 1, opts(2, 1, 2, 0, 0, 0, 0, 0, 0)},
      // Non-cubic kernel, mixed strides and uneven padding on every side.
      {1, 2, 6, 5, 7, 3, 2, 3, 4, opts(2, 1, 3, 1, 2, 0, 2, 3, 1)},
      {1, 2, 6, 5, 7, 3, 2, 3, 4, opts(2, 1, 3, 1, 2, 0, 2, 3, 1, true)},
      // A single frame and a kernel larger than the input in every axis (padding covers it).
      {1, 3, 1, 2, 2, 2, 3, 3, 3, opts(1, 1, 1, 2, 0, 1, 1, 1, 1)},
      {1, 3, 1, 2, 2, 2, 3, 3, 3, opts(1, 1, 1, 2, 0, 1, 1, 1, 1, true)},
      // Replicate padding wider than the input (clamps repeatedly to the edge).
      {1, 2, 2, 2, 3, 3, 3, 5, 5, opts(1, 1, 1, 2, 1, 3, 2, 2, 4, true)},
  };
  uint32_t seed = 2000;
  for (const Case& c : cases) {
    Tensor x = random_tensor({c.N, c.C, c.T, c.H, c.W}, seed);
    Tensor w = random_tensor({c.O, c.C, c.kt, c.kh, c.kw}, seed + 1);
    Tensor b = random_tensor({c.O}, seed + 2);
    for (bool bf16 : {false, true}) {
      Tensor wt = bf16 ? w.to(DType::BF16) : w;
      check_conv(x, wt, b, c.opt, describe(c) + (bf16 ? " bf16" : " f32") + " +bias");
      check_conv(x, wt, {}, c.opt, describe(c) + (bf16 ? " bf16" : " f32"));
    }
    seed += 3;
  }
}

TEST(Conv3d, RowBlocksSpanningFrames) {
  // K·W' = 432·96 floats per output row: the im2col buffer holds ~101 rows of the 4·48 = 192
  // (frame, row) pairs, so blocks end in the middle of a frame. Every 7th output is checked.
  Tensor x = random_tensor({1, 16, 4, 48, 96}, 2100);
  Tensor w = random_tensor({8, 16, 3, 3, 3}, 2101);
  Tensor b = random_tensor({8}, 2102);
  const Conv3dOptions causal = opts(1, 1, 1, 2, 0, 1, 1, 1, 1);
  check_conv(x, w, b, causal, "large f32", 7);
  check_conv(x, w.to(DType::BF16), b, causal, "large bf16", 7);
  check_conv(x, w, b, opts(1, 1, 1, 2, 0, 1, 1, 1, 1, true), "large replicate", 7);
}

TEST(Conv3d, NonContiguousInput) {
  Tensor big = random_tensor({2, 5, 6, 7, 9}, 2200);
  Tensor x = big.slice(1, 1, 4).slice(2, 1, 5).slice(4, 2, 8);  // (2, 3, 4, 7, 6)
  ASSERT_FALSE(x.is_contiguous());
  Tensor w = random_tensor({4, 3, 3, 3, 3}, 2201);
  check_conv(x, w, random_tensor({4}, 2202), opts(1, 1, 1, 2, 0, 1, 1, 1, 1), "strided x");
  check_conv(x, w.to(DType::BF16), {}, opts(2, 2, 2, 2, 0, 1, 1, 1, 1, true), "strided x bf16");
}

TEST(Conv3d, BadArgumentsThrow) {
  Tensor x = random_tensor({1, 3, 4, 8, 8}, 2300);
  Tensor w = random_tensor({4, 3, 3, 3, 3}, 2301);
  const Conv3dOptions same = opts(1, 1, 1, 2, 0, 1, 1, 1, 1);
  EXPECT_NO_THROW(conv3d(x, w, {}, same));
  EXPECT_THROW(conv3d(x, random_tensor({4, 2, 3, 3, 3}, 2302), {}, same), Error);  // channels
  EXPECT_THROW(conv3d(x, w, random_tensor({5}, 2303), same), Error);               // bias size
  EXPECT_THROW(conv3d(random_tensor({1, 3, 8, 8}, 2304), w, {}, same), Error);     // 4-D x
  EXPECT_THROW(conv3d(x, random_tensor({4, 3, 3, 3}, 2305), {}, same), Error);     // 4-D w
  EXPECT_THROW(conv3d(x, w, {}, opts(0, 1, 1, 2, 0, 1, 1, 1, 1)), Error);          // stride 0
  EXPECT_THROW(conv3d(x, w, {}, opts(1, 1, 1, -1, 0, 1, 1, 1, 1)), Error);         // negative pad
  EXPECT_THROW(conv3d(random_tensor({1, 3, 2, 8, 8}, 2306), w, {}, {}), Error);    // kernel > T
  EXPECT_THROW(conv3d(x.to(DType::BF16), w, {}, same), Error);  // activations must be F32
  try {
    conv3d(x, random_tensor({4, 2, 3, 3, 3}, 2307), {}, same);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv3d"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace paradit::core
