// core::attention against a naive double-precision softmax(scale·QKᵀ + bias)·V over the
// visible keys.
//
// Tolerances: the output is a convex combination of V rows, so its error is measured against
// max|V|: 1e-5 · max|V| covers f32 dot products of D ≤ 256 terms, the f32 running sums and the
// kernel's exp2 (relative error < 1e-7), and is orders of magnitude below what a wrong key,
// head, mask or bias index produces. lse is compared with 1e-5 · (1 + |lse|).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/ops.h"
#include "support/random.h"

namespace paradit::core {
namespace {

// Values uniform in (−amplitude, amplitude).
Tensor random_tensor(const Shape& shape, uint64_t seed, float amplitude = 1.0f) {
  return paradit::testing::random_tensor(shape, seed, -amplitude, amplitude);
}


struct Reference {
  std::vector<double> out;  // (B, Sq, H, Dv)
  std::vector<double> lse;  // (B, H, Sq)
};

// Naive attention in double over flat copies (to_vector reads any strides in logical order).
Reference reference_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                              const AttentionOptions& opt) {
  const int64_t B = q.dim(0), Sq = q.dim(1), H = q.dim(2), D = q.dim(3);
  const int64_t Sk = k.dim(1), Dv = v.dim(3);
  const double scale = opt.scale != 0.0f ? opt.scale : 1.0 / std::sqrt(static_cast<double>(D));
  const std::vector<float> qv = q.to_vector(), kv = k.to_vector(), vv = v.to_vector();
  const std::vector<float> mask =
      opt.key_mask.defined() ? opt.key_mask.to_vector() : std::vector<float>();
  const std::vector<float> bias = opt.bias.defined() ? opt.bias.to_vector() : std::vector<float>();
  int64_t bs[4] = {0, 0, 0, 0};  // bias strides in its flat copy, 0 on broadcast dims
  if (opt.bias.defined()) {
    const Shape& sh = opt.bias.shape();
    bs[3] = sh[3] == 1 ? 0 : 1;
    bs[2] = sh[2] == 1 ? 0 : sh[3];
    bs[1] = sh[1] == 1 ? 0 : sh[2] * sh[3];
    bs[0] = sh[0] == 1 ? 0 : sh[1] * sh[2] * sh[3];
  }
  Reference r;
  r.out.assign(B * Sq * H * Dv, 0.0);
  r.lse.assign(B * H * Sq, -std::numeric_limits<double>::infinity());
  std::vector<double> s(Sk);
  std::vector<bool> vis(Sk);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < Sq; ++i) {
        const float* qi = &qv[((b * Sq + i) * H + h) * D];
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < Sk; ++j) {
          vis[j] = mask.empty() || mask[b * Sk + j] != 0.0f;
          if (!vis[j]) continue;
          const float* kj = &kv[((b * Sk + j) * H + h) * D];
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(qi[d]) * kj[d];
          s[j] = dot * scale;
          if (!bias.empty()) s[j] += bias[b * bs[0] + h * bs[1] + i * bs[2] + j * bs[3]];
          mx = std::max(mx, s[j]);
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // no visible key
        double sum = 0;
        for (int64_t j = 0; j < Sk; ++j) {
          if (vis[j]) sum += std::exp(s[j] - mx);
        }
        double* out = &r.out[((b * Sq + i) * H + h) * Dv];
        for (int64_t j = 0; j < Sk; ++j) {
          if (!vis[j]) continue;
          const double p = std::exp(s[j] - mx) / sum;
          if (p == 0.0) continue;
          const float* vj = &vv[((b * Sk + j) * H + h) * Dv];
          for (int64_t c = 0; c < Dv; ++c) out[c] += p * vj[c];
        }
        r.lse[(b * H + h) * Sq + i] = mx + std::log(sum);
      }
    }
  }
  return r;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (float x : t.to_vector()) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

void check_attention(const Tensor& q, const Tensor& k, const Tensor& v, AttentionOptions opt,
                     const std::string& what) {
  opt.return_lse = true;
  AttentionResult got = attention(q, k, v, opt);
  const int64_t B = q.dim(0), Sq = q.dim(1), H = q.dim(2), Dv = v.dim(3);
  ASSERT_EQ(got.out.shape(), (Shape{B, Sq, H, Dv})) << what;
  ASSERT_TRUE(got.lse.defined()) << what;
  ASSERT_EQ(got.lse.shape(), (Shape{B, H, Sq})) << what;
  Reference ref = reference_attention(q, k, v, opt);

  const double tol = 1e-5 * std::max(max_abs(v), 1e-30);
  std::vector<float> out = got.out.to_vector();
  int reported = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!(std::fabs(out[i] - ref.out[i]) <= tol) && reported++ < 5) {
      ADD_FAILURE() << what << ": out[" << i << "] = " << out[i] << ", expected " << ref.out[i];
    }
  }
  std::vector<float> lse = got.lse.to_vector();
  reported = 0;
  for (size_t i = 0; i < lse.size(); ++i) {
    const double want = ref.lse[i];
    const bool ok = std::isinf(want) ? (std::isinf(lse[i]) && lse[i] < 0)
                                     : std::fabs(lse[i] - want) <= 1e-5 * (1 + std::fabs(want));
    if (!ok && reported++ < 5) {
      ADD_FAILURE() << what << ": lse[" << i << "] = " << lse[i] << ", expected " << want;
    }
  }
  // Without return_lse the output is the same and no lse comes back.
  opt.return_lse = false;
  AttentionResult plain = attention(q, k, v, opt);
  EXPECT_FALSE(plain.lse.defined()) << what;
  EXPECT_EQ(plain.out.to_vector(), out) << what;

  // The unnormalized form: out / row_sum is the softmax average, (row_max + log2 row_sum)·ln 2
  // the lse, row_max an integer; a row without keys gets out 0, row_sum 0, row_max -inf.
  opt.unnormalized = true;
  AttentionResult un = attention(q, k, v, opt);
  ASSERT_TRUE(un.row_max.defined() && un.row_sum.defined()) << what;
  ASSERT_EQ(un.row_max.shape(), (Shape{B, H, Sq})) << what;
  ASSERT_EQ(un.row_sum.shape(), (Shape{B, H, Sq})) << what;
  const std::vector<float> uo = un.out.to_vector(), um = un.row_max.to_vector(),
                           us = un.row_sum.to_vector();
  reported = 0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < Sq; ++i) {
        const size_t r = static_cast<size_t>((b * H + h) * Sq + i);
        const double want_lse = ref.lse[r];
        if (std::isinf(want_lse)) {
          EXPECT_TRUE(us[r] == 0.0f && std::isinf(um[r]) && um[r] < 0) << what << " row " << r;
          continue;
        }
        const double lse_un = (um[r] + std::log2(static_cast<double>(us[r]))) * std::log(2.0);
        EXPECT_EQ(um[r], std::floor(um[r])) << what << " row " << r;
        EXPECT_NEAR(lse_un, want_lse, 1e-5 * (1 + std::fabs(want_lse))) << what << " row " << r;
        for (int64_t d = 0; d < Dv; ++d) {
          const size_t o = static_cast<size_t>(((b * Sq + i) * H + h) * Dv + d);
          const double avg = uo[o] / static_cast<double>(us[r]);
          if (!(std::fabs(avg - ref.out[o]) <= tol) && reported++ < 5) {
            ADD_FAILURE() << what << ": unnormalized out[" << o << "] / row_sum = " << avg
                          << ", expected " << ref.out[o];
          }
        }
      }
    }
  }
}

std::string name(int64_t B, int64_t Sq, int64_t Sk, int64_t H, int64_t D, int64_t Dv) {
  return "B=" + std::to_string(B) + " Sq=" + std::to_string(Sq) + " Sk=" + std::to_string(Sk) +
         " H=" + std::to_string(H) + " D=" + std::to_string(D) + " Dv=" + std::to_string(Dv);
}

TEST(Attention, ShapesAndHeadDims) {
  struct Case {
    int64_t B, Sq, Sk, H, D, Dv;
  };
  // Odd sequence lengths cross the 64-key and 96-query tiles; Dv values exercise every output
  // column chunk (16..128) and a tail chunk (200 = 128 + 72).
  const std::vector<Case> cases = {
      {2, 1, 5, 3, 16, 16},      {1, 5, 1, 2, 16, 16},    {1, 63, 130, 2, 64, 64},
      {2, 130, 63, 2, 128, 128}, {1, 97, 200, 1, 64, 40}, {1, 33, 65, 2, 72, 72},
      {1, 20, 70, 1, 32, 200},   {1, 7, 9, 1, 48, 80},    {1, 200, 129, 1, 16, 112},
      {1, 50, 40, 1, 24, 96},    {1, 6, 17, 1, 8, 32},    {1, 12, 12, 1, 128, 48}};
  uint32_t seed = 10;
  for (const Case& c : cases) {
    // Amplitude 2 gives peaked softmax rows (scores of several units).
    Tensor q = random_tensor({c.B, c.Sq, c.H, c.D}, seed++, 2.0f);
    Tensor k = random_tensor({c.B, c.Sk, c.H, c.D}, seed++, 2.0f);
    Tensor v = random_tensor({c.B, c.Sk, c.H, c.Dv}, seed++);
    check_attention(q, k, v, {}, name(c.B, c.Sq, c.Sk, c.H, c.D, c.Dv));
  }
}

TEST(Attention, ExplicitScaleAndLargeScores) {
  Tensor q = random_tensor({1, 40, 2, 64}, 100);
  Tensor k = random_tensor({1, 150, 2, 64}, 101);
  Tensor v = random_tensor({1, 150, 2, 64}, 102, 3.0f);
  AttentionOptions opt;
  opt.scale = 0.3f;
  check_attention(q, k, v, opt, "scale 0.3");
  // Scores of ±100: a naive (non-max-subtracted) exp would overflow.
  opt.scale = 5.0f;
  check_attention(q, k, v, opt, "scale 5");
}

TEST(Attention, KeyMaskF32AndBool) {
  const int64_t B = 3, Sq = 70, Sk = 130, H = 2, D = 64;
  Tensor q = random_tensor({B, Sq, H, D}, 200, 2.0f);
  Tensor k = random_tensor({B, Sk, H, D}, 201, 2.0f);
  Tensor v = random_tensor({B, Sk, H, D}, 202);
  std::mt19937 gen(203);
  std::vector<float> m(B * Sk);
  for (int64_t j = 0; j < Sk; ++j) {
    m[j] = (gen() % 3) != 0 ? 1.0f : 0.0f;  // batch 0: about a third dropped
    m[Sk + j] = j < 77 ? 1.0f : 0.0f;       // batch 1: text-style padding at the end
    m[2 * Sk + j] = 0.0f;                   // batch 2: nothing visible
  }
  AttentionOptions opt;
  opt.key_mask = Tensor::from_vector(m, {B, Sk});
  check_attention(q, k, v, opt, "f32 mask");

  Tensor mb = Tensor::empty({B, Sk}, DType::Bool);
  for (int64_t i = 0; i < B * Sk; ++i) mb.data<bool>()[i] = m[i] != 0.0f;
  opt.key_mask = mb;
  check_attention(q, k, v, opt, "bool mask");

  // The fully masked batch element: out = 0 exactly, lse = -inf.
  opt.return_lse = true;
  AttentionResult r = attention(q, k, v, opt);
  for (int64_t i = 0; i < Sq; ++i) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t c = 0; c < D; ++c) ASSERT_EQ(r.out.item_at({2, i, h, c}), 0.0);
      ASSERT_TRUE(std::isinf(r.lse.item_at({2, h, i})) && r.lse.item_at({2, h, i}) < 0);
    }
  }

  // Masked keys are excluded exactly: changing their K and V changes nothing.
  Tensor k2 = k.clone(), v2 = v.clone();
  for (int64_t j = 77; j < Sk; ++j) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t d = 0; d < D; ++d) {
        k2.data<float>()[((1 * Sk + j) * H + h) * D + d] = 1e4f;
        v2.data<float>()[((1 * Sk + j) * H + h) * D + d] = 1e4f;
      }
    }
  }
  AttentionResult r2 = attention(q, k2, v2, opt);
  EXPECT_EQ(r2.out.to_vector(), r.out.to_vector());
}

TEST(Attention, BiasBroadcastForms) {
  const int64_t B = 2, Sq = 37, Sk = 100, H = 3, D = 32;
  Tensor q = random_tensor({B, Sq, H, D}, 300, 2.0f);
  Tensor k = random_tensor({B, Sk, H, D}, 301, 2.0f);
  Tensor v = random_tensor({B, Sk, H, D}, 302);
  const std::vector<Shape> forms = {{B, H, Sq, Sk}, {1, H, Sq, Sk}, {B, 1, Sq, Sk},
                                    {1, 1, Sq, Sk}, {B, H, 1, Sk},  {1, 1, Sq, 1}};
  uint32_t seed = 310;
  for (const Shape& s : forms) {
    AttentionOptions opt;
    opt.bias = random_tensor(s, seed++, 3.0f);
    check_attention(q, k, v, opt, "bias " + shape_str(s));
  }
  // Bias together with a key mask (masked-key compaction must keep the bias indices right).
  AttentionOptions opt;
  opt.bias = random_tensor({B, H, Sq, Sk}, 320, 3.0f);
  std::vector<float> m(B * Sk);
  for (int64_t i = 0; i < B * Sk; ++i) m[i] = (i % 5 == 1 || i % 7 == 3) ? 0.0f : 1.0f;
  opt.key_mask = Tensor::from_vector(m, {B, Sk});
  check_attention(q, k, v, opt, "bias + mask");
}

TEST(Attention, CausalInfiniteBias) {
  // -inf bias entries (a causal mask): row i sees keys 0..i; with Sq > Sk the rows past the
  // keys see all of them.
  const int64_t Sq = 130, Sk = 130, H = 2, D = 64;
  Tensor q = random_tensor({1, Sq, H, D}, 400, 2.0f);
  Tensor k = random_tensor({1, Sk, H, D}, 401, 2.0f);
  Tensor v = random_tensor({1, Sk, H, D}, 402);
  std::vector<float> bias(Sq * Sk);
  for (int64_t i = 0; i < Sq; ++i) {
    for (int64_t j = 0; j < Sk; ++j) {
      bias[i * Sk + j] = j <= i ? 0.0f : -std::numeric_limits<float>::infinity();
    }
  }
  AttentionOptions opt;
  opt.bias = Tensor::from_vector(bias, {1, 1, Sq, Sk});
  check_attention(q, k, v, opt, "causal");
  // A row whose every bias entry is -inf behaves as a row with no visible key.
  for (int64_t j = 0; j < Sk; ++j) bias[5 * Sk + j] = -std::numeric_limits<float>::infinity();
  opt.bias = Tensor::from_vector(bias, {1, 1, Sq, Sk});
  check_attention(q, k, v, opt, "row fully -inf");
}

TEST(Attention, StridedViewsOfFusedQkv) {
  // A fused projection (B, S, H, 3D) sliced along the last dim, as a model would do it.
  const int64_t B = 2, S = 75, H = 3, D = 64;
  Tensor qkv = random_tensor({B, S, H, 3 * D}, 500, 2.0f);
  Tensor q = qkv.slice(-1, 0, D), k = qkv.slice(-1, D, 2 * D), v = qkv.slice(-1, 2 * D, 3 * D);
  ASSERT_FALSE(q.is_contiguous());
  check_attention(q, k, v, {}, "qkv (B,S,H,3D) slices");

  // (B, S, 3, H, D) layout: select along the "3" dim.
  Tensor qkv2 = random_tensor({B, S, 3, H, D}, 501, 2.0f);
  check_attention(qkv2.select(2, 0), qkv2.select(2, 1), qkv2.select(2, 2), {},
                  "qkv (B,S,3,H,D) selects");

  // A sequence slice (ring-attention style chunk) and a head slice.
  Tensor big_k = random_tensor({B, 2 * S, H + 2, D}, 502, 2.0f);
  Tensor big_v = random_tensor({B, 2 * S, H + 2, D + 16}, 503);
  Tensor ks = big_k.slice(1, 10, 10 + S).slice(2, 1, 1 + H);
  Tensor vs = big_v.slice(1, 10, 10 + S).slice(2, 1, 1 + H).slice(3, 8, 8 + D);
  AttentionOptions opt;
  opt.bias = random_tensor({1, H, S, S}, 504);
  check_attention(q, ks, vs, opt, "sequence/head slices with bias");
}

TEST(Attention, NoKeysGivesZeroAndMinusInf) {
  Tensor q = random_tensor({2, 3, 2, 16}, 600);
  Tensor k = Tensor::empty({2, 0, 2, 16}), v = Tensor::empty({2, 0, 2, 8});
  AttentionOptions opt;
  opt.return_lse = true;
  AttentionResult r = attention(q, k, v, opt);
  ASSERT_EQ(r.out.shape(), (Shape{2, 3, 2, 8}));
  for (float x : r.out.to_vector()) EXPECT_EQ(x, 0.0f);
  for (float x : r.lse.to_vector()) EXPECT_TRUE(std::isinf(x) && x < 0);
}

TEST(Attention, BadArgumentsThrow) {
  Tensor q = random_tensor({1, 4, 2, 16}, 1), k = random_tensor({1, 6, 2, 16}, 2);
  Tensor v = random_tensor({1, 6, 2, 16}, 3);
  EXPECT_THROW(attention(q, random_tensor({1, 6, 2, 8}, 4), v), Error);   // D mismatch
  EXPECT_THROW(attention(q, random_tensor({1, 6, 3, 16}, 4), v), Error);  // H mismatch
  EXPECT_THROW(attention(q, k, random_tensor({1, 5, 2, 16}, 4)), Error);  // Sk mismatch
  EXPECT_THROW(attention(random_tensor({4, 2, 16}, 5), k, v), Error);     // 3-D q
  AttentionOptions opt;
  opt.key_mask = random_tensor({1, 5}, 6);
  EXPECT_THROW(attention(q, k, v, opt), Error);
  opt = {};
  opt.bias = random_tensor({1, 2, 4, 5}, 7);
  EXPECT_THROW(attention(q, k, v, opt), Error);
  try {
    attention(q, random_tensor({1, 6, 2, 8}, 4), v);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("attention"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[1, 6, 2, 8]"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace paradit::core
