// layer_norm, rms_norm, group_norm, the activations, softmax and apply_rope against plain
// double-precision loops on random inputs (fixed seeds).
//
// Tolerances. Normalized values x̂ = (x − mean)·rstd are O(1) whatever the input scale, and an
// f32 computation of them carries an error of a few ulp of O(1), not of |x̂| (the mean and rstd
// are shared by the row). So each element is compared with 1e-5·(|w|·max(1, |x̂|) + |b|). The
// activations are pointwise and are compared per element, 1e-5·|ref| plus an absolute 1e-7
// (below which outputs of O(1) inputs are negligible, e.g. gelu(−8) ≈ 5e-15 whose relative
// accuracy is limited by the rounding of x itself).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "core/ops.h"
#include "support/random.h"

namespace paradit::core {
namespace {

using paradit::testing::random_tensor;
using paradit::testing::random_values;

// Compares got with ref element by element: |got − ref| ≤ bound[i].
void expect_within(const std::vector<float>& got, const std::vector<double>& ref,
                   const std::vector<double>& bound, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - ref[i]);
    if (!(err <= bound[i]) && reported++ < 5) {
      ADD_FAILURE() << what << ": element " << i << " got " << got[i] << " expected " << ref[i]
                    << " (|err| " << err << " > " << bound[i] << ")";
    }
  }
}

// ---------------------------------------------------------------- norms

// Reference layer/rms norm over the last dim of a flat (rows, D) vector.
void reference_norm(const std::vector<float>& x, int64_t D, const std::vector<float>& w,
                    const std::vector<float>& b, float eps, bool rms, std::vector<double>* ref,
                    std::vector<double>* bound) {
  const int64_t rows = static_cast<int64_t>(x.size()) / D;
  ref->resize(x.size());
  bound->resize(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * D;
    double mean = 0.0;
    if (!rms) {
      for (int64_t i = 0; i < D; ++i) mean += xr[i];
      mean /= static_cast<double>(D);
    }
    double var = 0.0;
    for (int64_t i = 0; i < D; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= static_cast<double>(D);
    const double rstd = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < D; ++i) {
      const double xh = (xr[i] - mean) * rstd;
      const double wi = w.empty() ? 1.0 : w[i];
      const double bi = b.empty() ? 0.0 : b[i];
      (*ref)[r * D + i] = xh * wi + bi;
      (*bound)[r * D + i] = 1e-5 * (std::fabs(wi) * std::max(1.0, std::fabs(xh)) + std::fabs(bi));
    }
  }
}

void check_layer_norm(const Tensor& x, bool weight, bool bias, float eps, uint32_t seed,
                      bool rms = false) {
  const int64_t D = x.dim(-1);
  Tensor w = weight ? random_tensor({D}, seed, 0.5f, 2.0f) : Tensor();
  Tensor b = bias ? random_tensor({D}, seed + 1) : Tensor();
  Tensor y = rms ? rms_norm(x, w, eps) : layer_norm(x, w, b, eps);
  ASSERT_EQ(y.shape(), x.shape());
  ASSERT_TRUE(y.is_contiguous());
  std::vector<double> ref, bound;
  reference_norm(x.to_vector(), D, weight ? w.to_vector() : std::vector<float>(),
                 bias ? b.to_vector() : std::vector<float>(), eps, rms, &ref, &bound);
  expect_within(y.to_vector(), ref, bound,
                std::string(rms ? "rms_norm " : "layer_norm ") + x.str() + (weight ? " w" : "") +
                    (bias ? " b" : ""));
}

TEST(LayerNorm, ShapesAndAffine) {
  uint32_t seed = 1;
  for (const Shape& s : {Shape{1, 1}, Shape{3, 7}, Shape{2, 5, 33}, Shape{4, 1024}, Shape{17},
                         Shape{2, 3, 4, 129}, Shape{64, 768}}) {
    for (bool w : {false, true})
      for (bool b : {false, true}) {
        check_layer_norm(random_tensor(s, seed, -3, 3), w, b, 1e-6f, seed + 1);
        seed += 2;
      }
  }
}

TEST(LayerNorm, LargeMeanKeepsAccuracy) {
  // Rows whose mean is 1e4 times their spread: a one-pass E[x²] − E[x]² in f32 would lose
  // everything; the reference sees the same f32 inputs.
  std::vector<float> v = random_values(4 * 300, 11, -0.1f, 0.1f);
  for (auto& x : v) x += 1000.0f;
  Tensor x = Tensor::from_vector(v, {4, 300});
  check_layer_norm(x, true, true, 1e-6f, 12);
  check_layer_norm(x, false, false, 1e-6f, 13);
}

TEST(LayerNorm, EpsAndConstantRows) {
  // A constant row normalizes to 0 (then bias); eps dominates a tiny variance.
  Tensor x = Tensor::full({2, 8}, 3.0f);
  std::vector<float> y = layer_norm(x, {}, {}, 1e-5f).to_vector();
  for (float v : y) EXPECT_EQ(v, 0.0f);
  check_layer_norm(random_tensor({3, 50}, 20, -1e-3f, 1e-3f), true, true, 1e-2f, 21);
}

TEST(LayerNorm, NonContiguousInputs) {
  // Uniform rows: a slice of the last dim (row stride 40) and a select of a middle dim.
  Tensor big = random_tensor({6, 40}, 30, -2, 2);
  Tensor a = big.slice(1, 5, 38);  // (6, 33)
  ASSERT_FALSE(a.is_contiguous());
  check_layer_norm(a, true, true, 1e-6f, 31);
  check_layer_norm(a, true, false, 1e-6f, 32, /*rms=*/true);
  Tensor big3 = random_tensor({3, 4, 10}, 33, -2, 2);
  check_layer_norm(big3.select(1, 2), true, true, 1e-6f, 34);  // (3, 10), row stride 40
  // Rows that are not evenly spaced: (3, 3, 7) with strides (40, 10, 1).
  Tensor c = big3.slice(1, 0, 3).slice(2, 0, 7);
  check_layer_norm(c, true, true, 1e-6f, 35);
  check_layer_norm(c, true, false, 1e-6f, 36, /*rms=*/true);
}

TEST(RmsNorm, ShapesAndWeights) {
  uint32_t seed = 40;
  for (const Shape& s :
       {Shape{1, 1}, Shape{5, 3}, Shape{2, 7, 64}, Shape{3, 4, 2, 128}, Shape{33, 1000}}) {
    for (bool w : {false, true}) {
      check_layer_norm(random_tensor(s, seed, -3, 3), w, false, 1e-6f, seed + 1, true);
      seed += 2;
    }
  }
  // Large eps relative to a tiny mean square.
  check_layer_norm(random_tensor({2, 16}, 50, -1e-3f, 1e-3f), true, false, 1e-3f, 51, true);
}

TEST(Norms, BadArgumentsThrow) {
  Tensor x = random_tensor({2, 8}, 60);
  EXPECT_THROW(layer_norm(x, random_tensor({7}, 61), {}, 1e-5f), Error);
  EXPECT_THROW(layer_norm(x, {}, random_tensor({2, 8}, 62), 1e-5f), Error);
  EXPECT_THROW(rms_norm(x, random_tensor({9}, 63), 1e-5f), Error);
  EXPECT_THROW(layer_norm(Tensor::from_vector_i64({1, 2}, {2}), {}, {}, 1e-5f), Error);
  EXPECT_THROW(layer_norm(Tensor(), {}, {}, 1e-5f), Error);
  // A weight must be a float tensor (any float dtype is used as F32); BF16 activations have no
  // CPU body.
  EXPECT_THROW(rms_norm(x, Tensor::from_vector_i64({1, 2, 3, 4, 5, 6, 7, 8}, {8}), 1e-5f), Error);
  EXPECT_THROW(rms_norm(x.to(DType::BF16), {}, 1e-5f), Error);
}

// ---------------------------------------------------------------- group norm

void check_group_norm(const Tensor& x, int groups, bool affine, float eps, uint32_t seed) {
  const int64_t N = x.dim(0), C = x.dim(1);
  const int64_t L = x.numel() / (N * C);
  Tensor w = affine ? random_tensor({C}, seed, 0.5f, 2.0f) : Tensor();
  Tensor b = affine ? random_tensor({C}, seed + 1) : Tensor();
  Tensor y = group_norm(x, groups, w, b, eps);
  ASSERT_EQ(y.shape(), x.shape());
  const std::vector<float> xv = x.to_vector();
  const std::vector<float> wv = affine ? w.to_vector() : std::vector<float>();
  const std::vector<float> bv = affine ? b.to_vector() : std::vector<float>();
  std::vector<double> ref(xv.size()), bound(xv.size());
  const int64_t cpg = C / groups;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = (n * C + g * cpg) * L, count = cpg * L;
      double mean = 0.0, var = 0.0;
      for (int64_t i = 0; i < count; ++i) mean += xv[begin + i];
      mean /= static_cast<double>(count);
      for (int64_t i = 0; i < count; ++i) var += (xv[begin + i] - mean) * (xv[begin + i] - mean);
      var /= static_cast<double>(count);
      const double rstd = 1.0 / std::sqrt(var + eps);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t c = g * cpg + i / L;
        const double xh = (xv[begin + i] - mean) * rstd;
        const double wi = affine ? wv[c] : 1.0, bi = affine ? bv[c] : 0.0;
        ref[begin + i] = xh * wi + bi;
        bound[begin + i] = 1e-5 * (std::fabs(wi) * std::max(1.0, std::fabs(xh)) + std::fabs(bi));
      }
    }
  }
  expect_within(y.to_vector(), ref, bound,
                "group_norm " + x.str() + " groups " + std::to_string(groups));
}

TEST(GroupNorm, FourAndFiveDims) {
  check_group_norm(random_tensor({2, 6, 5, 7}, 70, -2, 2), 3, true, 1e-6f, 71);
  check_group_norm(random_tensor({2, 6, 5, 7}, 72, -2, 2), 6, false, 1e-6f, 73);
  check_group_norm(random_tensor({1, 8, 3, 4, 5}, 74, -2, 2), 4, true, 1e-6f, 75);
  check_group_norm(random_tensor({2, 4, 9}, 76, -2, 2), 2, true, 1e-6f, 77);
  check_group_norm(random_tensor({3, 5, 1, 1}, 78, -2, 2), 1, true, 1e-6f, 79);
  // A VAE-like case whose groups span several parallel chunks: (1, 64, 48, 48), 32 groups of
  // 2·2304 elements, and one group of 64·2304.
  check_group_norm(random_tensor({1, 64, 48, 48}, 80, -2, 2), 32, true, 1e-6f, 81);
  check_group_norm(random_tensor({1, 64, 48, 48}, 82, -2, 2), 1, true, 1e-6f, 83);
}

TEST(GroupNorm, LargeMeanAndNonContiguous) {
  std::vector<float> v = random_values(2 * 4 * 30, 90, -0.1f, 0.1f);
  for (auto& x : v) x += 500.0f;
  check_group_norm(Tensor::from_vector(v, {2, 4, 30}), 2, true, 1e-6f, 91);
  Tensor big = random_tensor({2, 6, 5, 9}, 92, -2, 2);
  Tensor x = big.slice(3, 2, 9);  // (2, 6, 5, 7), not contiguous
  check_group_norm(x, 3, true, 1e-6f, 93);
}

TEST(GroupNorm, BadArgumentsThrow) {
  Tensor x = random_tensor({2, 6, 3, 3}, 95);
  EXPECT_THROW(group_norm(x, 4, {}, {}, 1e-6f), Error);  // 6 channels into 4 groups
  EXPECT_THROW(group_norm(x, 0, {}, {}, 1e-6f), Error);
  EXPECT_THROW(group_norm(x, 3, random_tensor({5}, 96), {}, 1e-6f), Error);
  EXPECT_THROW(group_norm(random_tensor({6}, 97), 3, {}, {}, 1e-6f), Error);
}

// ---------------------------------------------------------------- activations

double ref_gelu(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double ref_gelu_tanh(double x) {
  const double u = std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x);
  return 0.5 * x * (1.0 + std::tanh(u));
}
double ref_silu(double x) { return x / (1.0 + std::exp(-x)); }
double ref_quick_gelu(double x) { return x / (1.0 + std::exp(-1.702 * x)); }

// Inputs: a dense sweep of [−12, 12], random values, and edge values.
std::vector<float> activation_inputs() {
  std::vector<float> v;
  for (int i = -2400; i <= 2400; ++i) v.push_back(static_cast<float>(i) * 0.005f);
  for (float r : random_values(5000, 100, -6.0f, 6.0f)) v.push_back(r);
  for (float e : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 30.0f, -30.0f, 90.0f, -90.0f, 200.0f,
                  -200.0f, 1e30f, -1e30f})
    v.push_back(e);
  return v;
}

template <typename Op, typename Ref>
void check_activation(Op op, Ref ref, const std::string& name) {
  const std::vector<float> in = activation_inputs();
  // Shaped as (rows, 7) plus a tail so that both row blocks and odd lengths are exercised.
  const Tensor x = Tensor::from_vector(in, {static_cast<int64_t>(in.size())});
  const std::vector<float> got = op(x).to_vector();
  std::vector<double> want(in.size()), bound(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    want[i] = ref(static_cast<double>(in[i]));
    bound[i] = 1e-5 * std::fabs(want[i]) + 1e-7;
  }
  expect_within(got, want, bound, name);
  // The same values through a strided 2-D view: (n/8, 7) of an (n/8, 8) tensor.
  const int64_t rows = static_cast<int64_t>(in.size()) / 8;
  Tensor v = x.slice(0, 0, rows * 8).reshape({rows, 8}).slice(1, 1, 8);
  const std::vector<float> vin = v.to_vector();
  const std::vector<float> vgot = op(v).to_vector();
  std::vector<double> vwant(vin.size()), vbound(vin.size());
  for (size_t i = 0; i < vin.size(); ++i) {
    vwant[i] = ref(static_cast<double>(vin[i]));
    vbound[i] = 1e-5 * std::fabs(vwant[i]) + 1e-7;
  }
  expect_within(vgot, vwant, vbound, name + " strided");
}

TEST(Activations, GeluExact) {
  check_activation([](const Tensor& x) { return gelu(x); }, ref_gelu, "gelu");
  // Known values (PyTorch): gelu(1) = 0.8413447, gelu(−1) = −0.1586553.
  std::vector<float> y = gelu(Tensor::from_vector({1.0f, -1.0f}, {2})).to_vector();
  EXPECT_NEAR(y[0], 0.8413447f, 1e-6f);
  EXPECT_NEAR(y[1], -0.1586553f, 1e-6f);
}

TEST(Activations, GeluTanh) {
  check_activation([](const Tensor& x) { return gelu(x, true); }, ref_gelu_tanh, "gelu tanh");
  std::vector<float> y = gelu(Tensor::from_vector({1.0f, -1.0f}, {2}), true).to_vector();
  EXPECT_NEAR(y[0], 0.8411920f, 1e-6f);
  EXPECT_NEAR(y[1], -0.1588080f, 1e-6f);
}

TEST(Activations, SiluAndQuickGelu) {
  check_activation([](const Tensor& x) { return silu(x); }, ref_silu, "silu");
  check_activation([](const Tensor& x) { return quick_gelu(x); }, ref_quick_gelu, "quick_gelu");
}

TEST(Activations, MultiDimShapeKept) {
  Tensor x = random_tensor({2, 3, 5}, 110, -4, 4);
  Tensor y = silu(x);
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_THROW(silu(Tensor::from_vector_i64({1}, {1})), Error);
}

// ---------------------------------------------------------------- softmax

void check_softmax(const Tensor& x, const std::string& what) {
  const int64_t D = x.dim(-1);
  const std::vector<float> xv = x.to_vector();
  std::vector<double> ref(xv.size()), bound(xv.size());
  for (size_t r = 0; r < xv.size() / D; ++r) {
    double m = -INFINITY;
    for (int64_t i = 0; i < D; ++i) m = std::max(m, static_cast<double>(xv[r * D + i]));
    double s = 0.0;
    for (int64_t i = 0; i < D; ++i) s += std::exp(xv[r * D + i] - m);
    for (int64_t i = 0; i < D; ++i) {
      ref[r * D + i] = std::exp(xv[r * D + i] - m) / s;
      // exp(x − m) carries the rounding of x − m, ≈ |x − m|·2⁻²⁴ relative.
      const double rel = 1e-5 + std::fabs(xv[r * D + i] - m) * 1.2e-7;
      bound[r * D + i] = rel * ref[r * D + i] + 1e-30;
    }
  }
  Tensor y = softmax(x);
  ASSERT_EQ(y.shape(), x.shape());
  expect_within(y.to_vector(), ref, bound, "softmax " + what);
}

TEST(Softmax, RowsOfManySizes) {
  uint32_t seed = 120;
  for (const Shape& s : {Shape{1, 1}, Shape{3, 17}, Shape{2, 1000}, Shape{2, 3, 64}, Shape{300, 77},
                         Shape{4, 20000}}) {
    check_softmax(random_tensor(s, seed++, -8, 8), shape_str(s));
  }
  // Large magnitudes: only the max-subtracted form survives.
  check_softmax(random_tensor({5, 33}, seed++, -1000, 1000), "large");
  check_softmax(random_tensor({5, 33}, seed++, 80, 90), "shifted");
}

TEST(Softmax, MaskedEntriesAndViews) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> y = softmax(Tensor::from_vector({0.0f, -inf, 1.0f, -inf}, {1, 4})).to_vector();
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[3], 0.0f);
  EXPECT_NEAR(y[0], 1.0 / (1.0 + std::exp(1.0)), 1e-7);
  EXPECT_NEAR(y[2], std::exp(1.0) / (1.0 + std::exp(1.0)), 1e-7);
  Tensor big = random_tensor({7, 50}, 130, -5, 5);
  check_softmax(big.slice(1, 3, 44), "slice");
  check_softmax(random_tensor({4, 6, 50}, 131, -5, 5).slice(1, 1, 4).slice(2, 0, 21), "2 slices");
}

// ---------------------------------------------------------------- rope

// out computed literally as diffusers writes it: x·cos + rotated(x)·sin with
// rotated = stack(−x_odd, x_even) (interleaved) or cat(−x2, x1) (half split).
std::vector<double> reference_rope(const Tensor& x, const Tensor& cos, const Tensor& sin,
                                   RopeStyle style) {
  const int64_t B = x.dim(0), S = x.dim(1), H = x.dim(2), D = x.dim(3);
  std::vector<double> out(static_cast<size_t>(x.numel()));
  std::vector<double> rot(static_cast<size_t>(D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t i = 0; i < D; ++i) {
          if (style == RopeStyle::kInterleaved) {
            rot[i] = i % 2 == 0 ? -x.item_at({b, s, h, i + 1}) : x.item_at({b, s, h, i - 1});
          } else {
            rot[i] = i < D / 2 ? -x.item_at({b, s, h, i + D / 2}) : x.item_at({b, s, h, i - D / 2});
          }
        }
        for (int64_t i = 0; i < D; ++i)
          out[((b * S + s) * H + h) * D + i] =
              x.item_at({b, s, h, i}) * cos.item_at({s, i}) + rot[i] * sin.item_at({s, i});
      }
  return out;
}

void check_rope(const Tensor& x, RopeStyle style, uint32_t seed) {
  const int64_t S = x.dim(1), D = x.dim(3);
  // Random tables (not repeat-interleaved) so that every cos/sin index is checked.
  Tensor cos = random_tensor({S, D}, seed);
  Tensor sin = random_tensor({S, D}, seed + 1);
  Tensor y = apply_rope(x, cos, sin, style);
  ASSERT_EQ(y.shape(), x.shape());
  const std::vector<double> ref = reference_rope(x, cos, sin, style);
  std::vector<double> bound(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) bound[i] = 1e-6 * (std::fabs(ref[i]) + 1.0);
  expect_within(
      y.to_vector(), ref, bound,
      "apply_rope " + x.str() + (style == RopeStyle::kInterleaved ? " interleaved" : " half"));
}

TEST(Rope, BothStylesContiguous) {
  uint32_t seed = 140;
  for (const Shape& s : {Shape{1, 1, 1, 2}, Shape{2, 5, 3, 8}, Shape{1, 33, 4, 64},
                         Shape{2, 7, 2, 128}, Shape{1, 3, 1, 6}}) {
    check_rope(random_tensor(s, seed), RopeStyle::kInterleaved, seed + 1);
    check_rope(random_tensor(s, seed + 2), RopeStyle::kHalfSplit, seed + 3);
    seed += 4;
  }
}

TEST(Rope, StridedViewOfFusedProjection) {
  // q as a slice of a fused (B, S, 3, H, D) projection viewed as (B, S, 3H, D).
  Tensor qkv = random_tensor({2, 9, 3 * 4, 16}, 150);
  Tensor k = qkv.slice(2, 4, 8);  // (2, 9, 4, 16), strides (1728, 192, 16, 1)
  ASSERT_FALSE(k.is_contiguous());
  check_rope(k, RopeStyle::kInterleaved, 151);
  check_rope(k, RopeStyle::kHalfSplit, 152);
}

TEST(Rope, FluxStyleTableIsARotation) {
  // With diffusers' repeat-interleaved tables, each pair is rotated by its angle: the pair's
  // norm is preserved and position 0 (angle 0) is the identity.
  const int64_t S = 4, D = 8;
  std::vector<float> c(S * D), sn(S * D);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t i = 0; i < D / 2; ++i) {
      const double theta = s * std::pow(10000.0, -2.0 * i / D);
      c[s * D + 2 * i] = c[s * D + 2 * i + 1] = static_cast<float>(std::cos(theta));
      sn[s * D + 2 * i] = sn[s * D + 2 * i + 1] = static_cast<float>(std::sin(theta));
    }
  Tensor x = random_tensor({1, S, 2, D}, 160);
  Tensor y = apply_rope(x, Tensor::from_vector(c, {S, D}), Tensor::from_vector(sn, {S, D}),
                        RopeStyle::kInterleaved);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < D; i += 2) {
        const double a = x.item_at({0, s, h, i}), b = x.item_at({0, s, h, i + 1});
        const double p = y.item_at({0, s, h, i}), q = y.item_at({0, s, h, i + 1});
        EXPECT_NEAR(p * p + q * q, a * a + b * b, 1e-5);
        if (s == 0) {
          EXPECT_EQ(p, a);
          EXPECT_EQ(q, b);
        }
      }
}

TEST(Rope, BadArgumentsThrow) {
  Tensor x = random_tensor({1, 4, 2, 8}, 170);
  Tensor t = random_tensor({4, 8}, 171);
  EXPECT_THROW(apply_rope(x, random_tensor({4, 4}, 172), t, RopeStyle::kInterleaved), Error);
  EXPECT_THROW(apply_rope(x, t, random_tensor({5, 8}, 173), RopeStyle::kHalfSplit), Error);
  EXPECT_THROW(apply_rope(random_tensor({4, 2, 8}, 174), t, t, RopeStyle::kHalfSplit), Error);
  EXPECT_THROW(apply_rope(random_tensor({1, 4, 2, 7}, 175), random_tensor({4, 7}, 176),
                          random_tensor({4, 7}, 177), RopeStyle::kInterleaved),
               Error);
}

}  // namespace
}  // namespace paradit::core
