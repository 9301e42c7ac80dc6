// The shared model pieces (models/common/embeddings.h, modules.h) against direct double-precision
// loops written from diffusers' formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "models/common/embeddings.h"
#include "models/common/modules.h"

namespace paradit {
namespace {

using core::Tensor;
using namespace models::common;

double max_abs_diff(const Tensor& a, const std::vector<double>& ref) {
  const auto v = a.to_vector();
  EXPECT_EQ(v.size(), ref.size());
  double m = 0;
  for (size_t i = 0; i < v.size() && i < ref.size(); ++i) m = std::max(m, std::abs(v[i] - ref[i]));
  return m;
}

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f, float shift = 0.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = shift + scale * dist(gen);
  return v;
}

Tensor rand_tensor(const core::Shape& shape, uint32_t seed, float scale = 1.0f,
                   float shift = 0.0f) {
  return Tensor::from_vector(randn(core::shape_numel(shape), seed, scale, shift), shape);
}

std::vector<double> as_double(const Tensor& t) {
  auto v = t.to_vector();
  return {v.begin(), v.end()};
}

// A WeightProvider over tensors held in memory.
class MapWeights : public WeightProvider {
 public:
  std::map<std::string, Tensor> tensors;
  Tensor get(const std::string& name, const core::Shape& expected,
             core::DType dtype) const override {
    auto it = tensors.find(name);
    if (it == tensors.end()) fail("test weights: '", name, "' is missing");
    if (it->second.shape() != expected) {
      fail("test weights: '", name, "' has shape ", core::shape_str(it->second.shape()),
           ", expected ", core::shape_str(expected));
    }
    return it->second.to(dtype);
  }
  bool has(const std::string& name) const override { return tensors.count(name) != 0; }
  // Adds a random linear layer `prefix`.weight (out, in) and .bias (out).
  void add_linear(const std::string& prefix, int64_t in, int64_t out, uint32_t seed) {
    tensors[prefix + ".weight"] = rand_tensor({out, in}, seed, 1.0f / std::sqrt(float(in)));
    tensors[prefix + ".bias"] = rand_tensor({out}, seed + 1, 0.05f);
  }
};

// ---- double-precision references
// x: (N, K)   w: (O, K)   b: (O) → (N, O)
std::vector<double> linear_ref(const std::vector<double>& x, int64_t N, int64_t K, const Tensor& w,
                               const Tensor& b) {
  const auto W = as_double(w), Bv = as_double(b);
  const int64_t O = w.dim(0);
  std::vector<double> y(N * O);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      double acc = Bv[o];
      for (int64_t k = 0; k < K; ++k) acc += x[n * K + k] * W[o * K + k];
      y[n * O + o] = acc;
    }
  return y;
}

double silu_ref(double x) { return x / (1 + std::exp(-x)); }
double gelu_ref(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_ref(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

// Layer norm without affine over rows of width D.
std::vector<double> layer_norm_ref(const std::vector<double>& x, int64_t D, double eps) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / D; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < D; ++i) mean += x[r * D + i];
    mean /= D;
    for (int64_t i = 0; i < D; ++i) var += (x[r * D + i] - mean) * (x[r * D + i] - mean);
    var /= D;
    for (int64_t i = 0; i < D; ++i) y[r * D + i] = (x[r * D + i] - mean) / std::sqrt(var + eps);
  }
  return y;
}

// ---------------------------------------------------------------- sinusoidal tables
void check_timestep_embedding(int64_t dim, bool flip, double shift, double scale) {
  const std::vector<float> ts = {0.0f, 1.5f, 37.25f, 421.5f, 999.0f};
  Tensor t = Tensor::from_vector(ts, {5});
  Tensor e = get_timestep_embedding(t, dim, flip, shift, scale);
  ASSERT_EQ(e.shape(), (core::Shape{5, dim}));
  const int64_t half = dim / 2;
  std::vector<double> ref(5 * dim, 0.0);
  for (int b = 0; b < 5; ++b)
    for (int64_t i = 0; i < half; ++i) {
      const double freq = std::exp(-std::log(10000.0) * i / (half - shift));
      const double a = scale * ts[b] * freq;
      ref[b * dim + (flip ? half : 0) + i] = std::sin(a);
      ref[b * dim + (flip ? 0 : half) + i] = std::cos(a);
    }
  // diffusers rounds the argument (up to ~1000) to float32: an absolute error of ~1e-4.
  EXPECT_LE(max_abs_diff(e, ref), 2e-4) << "dim " << dim << " flip " << flip;
}

TEST(CommonEmbeddings, TimestepEmbeddingMatchesFormula) {
  check_timestep_embedding(256, true, 0.0, 1.0);  // Flux / SD3 / PixArt
  check_timestep_embedding(256, true, 1.0, 1.0);  // DiT
  check_timestep_embedding(64, false, 1.0, 1.0);  // sin first
  check_timestep_embedding(33, true, 0.0, 1.0);   // odd: zero-padded last column
  check_timestep_embedding(32, false, 0.0, 0.5);  // scaled
}

TEST(CommonEmbeddings, TimestepEmbeddingOddDimPadsZero) {
  Tensor e = get_timestep_embedding(Tensor::from_vector({123.0f}, {1}), 7, true, 0.0);
  EXPECT_EQ(e.item_at({0, 6}), 0.0);
  EXPECT_NE(e.item_at({0, 0}), 0.0);
}

// diffusers get_2d_sincos_pos_embed written out directly: the first half encodes the column
// coordinate, the second half the row coordinate, each as [sin | cos] of D/4 frequencies.
std::vector<double> sincos_2d_ref(int64_t D, int64_t gh, int64_t gw, double base, double interp) {
  const int64_t q = D / 4;
  std::vector<double> ref(gh * gw * D);
  for (int64_t i = 0; i < gh; ++i)
    for (int64_t j = 0; j < gw; ++j) {
      const double col = j / (double(gw) / base) / interp;
      const double row = i / (double(gh) / base) / interp;
      double* r = &ref[(i * gw + j) * D];
      for (int64_t k = 0; k < q; ++k) {
        const double omega = 1.0 / std::pow(10000.0, double(k) / q);
        r[k] = std::sin(col * omega);
        r[q + k] = std::cos(col * omega);
        r[2 * q + k] = std::sin(row * omega);
        r[3 * q + k] = std::cos(row * omega);
      }
    }
  return ref;
}

TEST(CommonEmbeddings, SinCos2dMatchesFormula) {
  struct Case {
    int64_t D, gh, gw;
    double base, interp;
  };
  for (const Case& c : {Case{64, 4, 4, 4, 1}, Case{32, 3, 5, 8, 2}, Case{48, 6, 2, 4, 0.5},
                        Case{1152, 8, 8, 64, 2}}) {
    Tensor e = get_2d_sincos_pos_embed(c.D, c.gh, c.gw, c.base, c.interp);
    ASSERT_EQ(e.shape(), (core::Shape{c.gh * c.gw, c.D}));
    EXPECT_LE(max_abs_diff(e, sincos_2d_ref(c.D, c.gh, c.gw, c.base, c.interp)), 2e-6)
        << c.D << " " << c.gh << "x" << c.gw;
  }
}

TEST(CommonEmbeddings, RotaryTablesMatchFormula) {
  const std::vector<double> pos = {0, 1, 2, 7, 31.5};
  for (bool interleave : {true, false}) {
    auto [c, s] = get_1d_rotary_pos_embed(8, pos, 10000.0, interleave);
    ASSERT_EQ(c.shape(), (core::Shape{5, 8}));
    std::vector<double> rc(40), rs(40);
    for (int p = 0; p < 5; ++p)
      for (int j = 0; j < 8; ++j) {
        const int i = interleave ? j / 2 : j % 4;  // frequency index of column j
        const double a = pos[p] / std::pow(10000.0, 2.0 * i / 8);
        rc[p * 8 + j] = std::cos(a);
        rs[p * 8 + j] = std::sin(a);
      }
    EXPECT_LE(max_abs_diff(c, rc), 1e-6);
    EXPECT_LE(max_abs_diff(s, rs), 1e-6);
  }
}

// ---------------------------------------------------------------- patches
TEST(CommonModules, PatchifyAndUnpatchifyMatchIndexFormulas) {
  const int64_t B = 2, C = 3, H = 4, W = 6, p = 2, h = H / p, w = W / p;
  Tensor x = rand_tensor({B, C, H, W}, 1);
  const auto xv = x.to_vector();
  Tensor pt = patchify(x, p);
  ASSERT_EQ(pt.shape(), (core::Shape{B, h * w, C * p * p}));
  std::vector<double> ref(pt.numel());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t py = 0; py < p; ++py)
            for (int64_t px = 0; px < p; ++px)
              ref[((b * h * w) + i * w + j) * C * p * p + (c * p + py) * p + px] =
                  xv[((b * C + c) * H + i * p + py) * W + j * p + px];
  EXPECT_EQ(max_abs_diff(pt, ref), 0.0);

  // unpatchify reads the feature dim as (py, px, c): diffusers' "nhwpqc->nchpwq".
  Tensor y = rand_tensor({B, h * w, p * p * C}, 2);
  const auto yv = y.to_vector();
  Tensor img = unpatchify(y, h, w, p, C);
  ASSERT_EQ(img.shape(), (core::Shape{B, C, H, W}));
  std::vector<double> ref2(img.numel());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t yy = 0; yy < H; ++yy)
        for (int64_t xx = 0; xx < W; ++xx)
          ref2[((b * C + c) * H + yy) * W + xx] =
              yv[(b * h * w + (yy / p) * w + xx / p) * p * p * C + ((yy % p) * p + xx % p) * C + c];
  EXPECT_EQ(max_abs_diff(img, ref2), 0.0);
}

TEST(CommonModules, SplitAndMergeHeads) {
  Tensor x = rand_tensor({2, 5, 12}, 3);
  Tensor h = split_heads(x, 3);
  EXPECT_EQ(h.shape(), (core::Shape{2, 5, 3, 4}));
  EXPECT_EQ(h.item_at({1, 2, 2, 1}), x.item_at({1, 2, 9}));
  EXPECT_EQ(max_abs_diff(merge_heads(h), as_double(x)), 0.0);
  EXPECT_THROW(split_heads(x, 5), Error);
}

// PatchEmbed with SD3's cropped table: conv (as a direct loop) + the centre crop of the table.
TEST(CommonModules, PatchEmbedCroppedMatchesDirectConv) {
  const int64_t B = 2, C = 3, D = 8, p = 2, M = 5, H = 6, W = 4, h = H / p, w = W / p;
  MapWeights mw;
  mw.tensors["pe.proj.weight"] = rand_tensor({D, C, p, p}, 10, 0.5f);
  mw.tensors["pe.proj.bias"] = rand_tensor({D}, 11, 0.05f);
  mw.tensors["pe.pos_embed"] = rand_tensor({1, M * M, D}, 12);
  PatchEmbedOptions o;
  o.height = o.width = 8;
  o.patch_size = p;
  o.in_channels = C;
  o.embed_dim = D;
  o.pos_embed = PosEmbedKind::kCropped;
  o.pos_embed_max_size = M;
  PatchEmbed pe;
  pe.bind(WeightScope(mw, "pe"), o);
  Tensor x = rand_tensor({B, C, H, W}, 13);
  Tensor y = pe(x);
  ASSERT_EQ(y.shape(), (core::Shape{B, h * w, D}));

  const auto xv = as_double(x), wv = as_double(mw.tensors["pe.proj.weight"]),
             bv = as_double(mw.tensors["pe.proj.bias"]), tv = as_double(mw.tensors["pe.pos_embed"]);
  const int64_t top = (M - h) / 2, left = (M - w) / 2;
  std::vector<double> ref(y.numel());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j)
        for (int64_t d = 0; d < D; ++d) {
          double acc = bv[d];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t ky = 0; ky < p; ++ky)
              for (int64_t kx = 0; kx < p; ++kx)
                acc += wv[((d * C + c) * p + ky) * p + kx] *
                       xv[((b * C + c) * H + i * p + ky) * W + j * p + kx];
          acc += tv[((top + i) * M + left + j) * D + d];
          ref[((b * h + i) * w + j) * D + d] = acc;
        }
  EXPECT_LE(max_abs_diff(y, ref), 1e-5);
  EXPECT_THROW(pe(rand_tensor({1, C, 12, 4}, 14)), Error);  // 6 patches > pos_embed_max_size 5
}

// PatchEmbed in PixArt/DiT mode: the sincos table is computed at the input's grid.
TEST(CommonModules, PatchEmbedSinCosAddsTableAtInputGrid) {
  const int64_t C = 2, D = 16, p = 2;
  MapWeights mw;
  mw.tensors["proj.weight"] = Tensor::zeros({D, C, p, p});
  mw.tensors["proj.bias"] = Tensor::zeros({D});
  PatchEmbedOptions o;
  o.height = o.width = 8;  // base_size 4
  o.patch_size = p;
  o.in_channels = C;
  o.embed_dim = D;
  o.interpolation_scale = 2.0;
  PatchEmbed pe;
  pe.bind(WeightScope(mw), o);
  Tensor y = pe(rand_tensor({1, C, 6, 10}, 20));  // grid 3 x 5
  EXPECT_LE(max_abs_diff(y, sincos_2d_ref(D, 3, 5, 4, 2.0)), 2e-6);
}

// ---------------------------------------------------------------- FeedForward
void check_feed_forward(const std::string& fn, bool gated) {
  const int64_t N = 6, D = 8, inner = 24, out = 5;
  MapWeights mw;
  mw.add_linear("ff.net.0.proj", D, gated ? 2 * inner : inner, 30);
  mw.add_linear("ff.net.2", inner, out, 32);
  FeedForward ff;
  ff.bind(WeightScope(mw) / "ff", D, feed_forward_kind_from_name(fn, "test"), out, inner);
  Tensor x = rand_tensor({2, 3, D}, 34);
  Tensor y = ff(x);
  ASSERT_EQ(y.shape(), (core::Shape{2, 3, out}));
  auto h = linear_ref(as_double(x), N, D, mw.tensors["ff.net.0.proj.weight"],
                      mw.tensors["ff.net.0.proj.bias"]);
  std::vector<double> a(N * inner);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < inner; ++i) {
      if (fn == "gelu-approximate") a[n * inner + i] = gelu_tanh_ref(h[n * inner + i]);
      if (fn == "gelu") a[n * inner + i] = gelu_ref(h[n * inner + i]);
      if (fn == "geglu")
        a[n * inner + i] = h[n * 2 * inner + i] * gelu_ref(h[n * 2 * inner + inner + i]);
      if (fn == "swiglu")
        a[n * inner + i] = h[n * 2 * inner + i] * silu_ref(h[n * 2 * inner + inner + i]);
    }
  auto ref = linear_ref(a, N, inner, mw.tensors["ff.net.2.weight"], mw.tensors["ff.net.2.bias"]);
  EXPECT_LE(max_abs_diff(y, ref), 1e-5) << fn;
}

TEST(CommonModules, FeedForwardMatchesReference) {
  check_feed_forward("gelu-approximate", false);
  check_feed_forward("gelu", false);
  check_feed_forward("geglu", true);
  check_feed_forward("swiglu", true);
  EXPECT_THROW(feed_forward_kind_from_name("relu6", "cfg"), Error);
}

// ---------------------------------------------------------------- adaLN
TEST(CommonModules, AdaLayerNormZeroMatchesReference) {
  const int64_t B = 2, S = 3, D = 8;
  MapWeights mw;
  mw.add_linear("norm1.linear", D, 6 * D, 40);
  AdaLayerNormZero norm;
  norm.bind(WeightScope(mw) / "norm1", D);
  Tensor x = rand_tensor({B, S, D}, 42, 2.0f, 0.5f);
  Tensor emb = rand_tensor({B, D}, 43);
  auto out = norm(x, emb);

  std::vector<double> se = as_double(emb);
  for (auto& v : se) v = silu_ref(v);
  auto m = linear_ref(se, B, D, mw.tensors["norm1.linear.weight"], mw.tensors["norm1.linear.bias"]);
  auto chunk = [&](int k) {  // (B, D) slice k of the 6
    std::vector<double> c(B * D);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t d = 0; d < D; ++d) c[b * D + d] = m[b * 6 * D + k * D + d];
    return c;
  };
  auto ln = layer_norm_ref(as_double(x), D, 1e-6);
  auto shift = chunk(0), scale = chunk(1);
  std::vector<double> ref(B * S * D);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t d = 0; d < D; ++d) {
        const int64_t i = (b * S + s) * D + d;
        ref[i] = ln[i] * (1 + scale[b * D + d]) + shift[b * D + d];
      }
  EXPECT_LE(max_abs_diff(out.x, ref), 1e-5);
  EXPECT_LE(max_abs_diff(out.gate_msa, chunk(2)), 1e-5);
  EXPECT_LE(max_abs_diff(out.shift_mlp, chunk(3)), 1e-5);
  EXPECT_LE(max_abs_diff(out.scale_mlp, chunk(4)), 1e-5);
  EXPECT_LE(max_abs_diff(out.gate_mlp, chunk(5)), 1e-5);
}

// AdaLayerNormContinuous takes (scale, shift) in that order, unlike the adaLN-Zero family.
TEST(CommonModules, AdaLayerNormContinuousMatchesReference) {
  const int64_t B = 2, S = 4, D = 8, Cd = 6;
  MapWeights mw;
  mw.add_linear("norm_out.linear", Cd, 2 * D, 50);
  AdaLayerNormContinuous norm;
  norm.bind(WeightScope(mw) / "norm_out", D, Cd, /*elementwise_affine=*/false, 1e-6f);
  Tensor x = rand_tensor({B, S, D}, 52, 1.5f, -0.3f);
  Tensor cond = rand_tensor({B, Cd}, 53);
  Tensor y = norm(x, cond);

  std::vector<double> sc = as_double(cond);
  for (auto& v : sc) v = silu_ref(v);
  auto m = linear_ref(sc, B, Cd, mw.tensors["norm_out.linear.weight"],
                      mw.tensors["norm_out.linear.bias"]);
  auto ln = layer_norm_ref(as_double(x), D, 1e-6);
  std::vector<double> ref(B * S * D);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t d = 0; d < D; ++d) {
        const int64_t i = (b * S + s) * D + d;
        ref[i] = ln[i] * (1 + m[b * 2 * D + d]) + m[b * 2 * D + D + d];
      }
  EXPECT_LE(max_abs_diff(y, ref), 1e-5);
}

// ---------------------------------------------------------------- embeddings with weights
TEST(CommonEmbeddings, CombinedTimestepGuidanceTextProjMatchesReference) {
  const int64_t B = 2, D = 8, P = 5;
  MapWeights mw;
  mw.add_linear("tte.timestep_embedder.linear_1", 256, D, 60);
  mw.add_linear("tte.timestep_embedder.linear_2", D, D, 62);
  mw.add_linear("tte.guidance_embedder.linear_1", 256, D, 64);
  mw.add_linear("tte.guidance_embedder.linear_2", D, D, 66);
  mw.add_linear("tte.text_embedder.linear_1", P, D, 68);
  mw.add_linear("tte.text_embedder.linear_2", D, D, 70);
  CombinedTimestepTextProjEmbeddings tte;
  tte.bind(WeightScope(mw) / "tte", D, P, /*guidance=*/true);
  const std::vector<float> ts = {750.0f, 12.5f}, gs = {3500.0f, 1000.0f};
  Tensor pooled = rand_tensor({B, P}, 72);
  Tensor y = tte(Tensor::from_vector(ts, {B}), pooled, Tensor::from_vector(gs, {B}));

  auto mlp = [&](const std::string& name, std::vector<double> in, int64_t K) {
    auto h = linear_ref(in, B, K, mw.tensors[name + ".linear_1.weight"],
                        mw.tensors[name + ".linear_1.bias"]);
    for (auto& v : h) v = silu_ref(v);
    return linear_ref(h, B, D, mw.tensors[name + ".linear_2.weight"],
                      mw.tensors[name + ".linear_2.bias"]);
  };
  auto sinus = [&](const std::vector<float>& t) {  // flip_sin_to_cos, shift 0: [cos | sin]
    std::vector<double> e(B * 256);
    for (int64_t b = 0; b < B; ++b)
      for (int i = 0; i < 128; ++i) {
        const double a = t[b] * std::exp(-std::log(10000.0) * i / 128.0);
        e[b * 256 + i] = std::cos(a);
        e[b * 256 + 128 + i] = std::sin(a);
      }
    return e;
  };
  auto te = mlp("tte.timestep_embedder", sinus(ts), 256);
  auto ge = mlp("tte.guidance_embedder", sinus(gs), 256);
  auto pe = mlp("tte.text_embedder", as_double(pooled), P);
  std::vector<double> ref(B * D);
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = te[i] + ge[i] + pe[i];
  // float32 arguments up to 3500 (as diffusers rounds them) move the sinusoids by ~1e-4.
  EXPECT_LE(max_abs_diff(y, ref), 1e-3);
  EXPECT_THROW(tte(Tensor::from_vector(ts, {B}), pooled), Error);  // guidance required
}

TEST(CommonModules, HeadNormKinds) {
  EXPECT_EQ(head_norm_kind_from_name("", "c"), HeadNormKind::kNone);
  EXPECT_EQ(head_norm_kind_from_name("rms_norm", "c"), HeadNormKind::kRMSNorm);
  EXPECT_EQ(head_norm_kind_from_name("layer_norm", "c"), HeadNormKind::kLayerNorm);
  try {
    head_norm_kind_from_name("l2", "some/config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("some/config.json"), std::string::npos);
  }
}

TEST(CommonModules, BatchVectorBroadcastsAndRejects) {
  Tensor one = batch_vector(Tensor::from_vector({5.0f}, {1}), 3, "timestep", "M");
  EXPECT_EQ(one.to_vector(), (std::vector<float>{5, 5, 5}));
  EXPECT_THROW(batch_vector(Tensor::from_vector({1, 2}, {2}), 3, "timestep", "M"), Error);
}

}  // namespace
}  // namespace paradit
