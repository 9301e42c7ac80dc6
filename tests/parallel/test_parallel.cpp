// Sequence-parallel attention (Ulysses, Ring, USP) and the sequence helpers. Runs alone (a world
// of one) and under mpirun -np 2 and 4 (parallel.cmake), where every (ulysses, ring) layout
// whose product divides the world is tried (the rest of the world as data parallel). Each
// parallel result, gathered back, must equal single-process core::attention on the full tensors
// (≤ 1e-5 relative) and a plain double-precision softmax(QKᵀ)V.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "comm/mpi_test_env.h"
#include "comm/process_mesh.h"
#include "comm/runtime.h"
#include "core/ops.h"
#include "parallel/attention.h"
#include "parallel/lse_merge.h"
#include "parallel/sequence.h"
#include "support/tensor_checks.h"

PARADIT_REGISTER_COMM_TEST_ENVIRONMENT();

namespace paradit::parallel {
namespace {

using core::Shape;
using core::Tensor;
using testing::random_tensor;

// [a; b] along dim 1 (test-side, element by element).
Tensor cat1(const Tensor& a, const Tensor& b) {
  if (!b.defined()) return a;
  Shape s = a.shape();
  s[1] += b.dim(1);
  Tensor out = Tensor::empty(s, a.dtype());
  out.slice(1, 0, a.dim(1)).copy_from(a);
  out.slice(1, a.dim(1), s[1]).copy_from(b);
  return out;
}

// Plain double-precision attention: out (B, Sq, H, Dv) and lse (B, H, Sq); masked keys are
// excluded; a row with no visible key gives 0 and −inf.
struct Ref {
  std::vector<double> out, lse;
};
Ref reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                        double scale) {
  const int64_t B = q.dim(0), Sq = q.dim(1), H = q.dim(2), D = q.dim(3), Sk = k.dim(1),
                Dv = v.dim(3);
  if (scale == 0) scale = 1.0 / std::sqrt(static_cast<double>(D));
  Ref r;
  r.out.assign(B * Sq * H * Dv, 0.0);
  r.lse.assign(B * H * Sq, -std::numeric_limits<double>::infinity());
  std::vector<double> s(Sk);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < Sk; ++j) {
          if (mask.defined() && mask.item_at({b, j}) == 0) {
            s[j] = -std::numeric_limits<double>::infinity();
            continue;
          }
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += q.item_at({b, i, h, d}) * k.item_at({b, j, h, d});
          s[j] = dot * scale;
          m = std::max(m, s[j]);
        }
        if (m == -std::numeric_limits<double>::infinity()) continue;
        double sum = 0;
        for (int64_t j = 0; j < Sk; ++j) sum += std::exp(s[j] - m);
        r.lse[(b * H + h) * Sq + i] = m + std::log(sum);
        for (int64_t j = 0; j < Sk; ++j) {
          const double p = std::exp(s[j] - m) / sum;
          if (p == 0) continue;
          for (int64_t d = 0; d < Dv; ++d)
            r.out[((b * Sq + i) * H + h) * Dv + d] += p * v.item_at({b, j, h, d});
        }
      }
  return r;
}

// max |a − b| / max |b|.
double rel_error(const std::vector<float>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

std::vector<double> widen(const Tensor& t) {
  const auto v = t.to_vector();
  return std::vector<double>(v.begin(), v.end());
}

// ---------------------------------------------------------------- exact merge (no communication)

TEST(ExactMerge, MergedBlocksEqualAttentionOverTheUnion) {
  const int64_t B = 3, Sq = 5, H = 3, D = 4, Sk = 9;
  const Tensor q = random_tensor({B, Sq, H, D}, 1);
  const Tensor k = random_tensor({B, Sk, H, D}, 2);
  const Tensor v = random_tensor({B, Sk, H, D}, 3);
  // Batch 0 sees every key; batch 1 only key 7, so its rows see no key in two of the three
  // blocks; batch 2 sees none at all (its rows stay 0).
  std::vector<float> m(B * Sk, 1.0f);
  for (int64_t j = 0; j < Sk; ++j) {
    m[Sk + j] = j == 7 ? 1.0f : 0.0f;
    m[2 * Sk + j] = 0.0f;
  }
  const Tensor mask = Tensor::from_vector(m, {B, Sk});
  const Ref full = reference_attention(q, k, v, mask, 0);

  // Blocks [0, 4), [4, 6), [6, 9) merged in a scrambled order.
  const int64_t cuts[4] = {0, 4, 6, 9};
  parallel::ExactAttentionMerger merger;
  for (int blk : {2, 0, 1}) {
    const int64_t a = cuts[blk], e = cuts[blk + 1];
    core::AttentionOptions opt;
    opt.key_mask = mask.slice(1, a, e);
    opt.unnormalized = true;
    const core::AttentionResult part = core::attention(q, k.slice(1, a, e), v.slice(1, a, e), opt);
    merger.add(part.out, part.row_max, part.row_sum);
  }
  const Tensor out = merger.out();
  ASSERT_EQ(out.shape(), core::Shape({B, Sq, H, D}));
  EXPECT_LT(rel_error(out.to_vector(), full.out), 1e-6);
  const std::vector<float> o = out.to_vector();
  for (int64_t i = 2 * Sq * H * D; i < B * Sq * H * D; ++i) EXPECT_EQ(o[i], 0.0f) << i;
}

// ---------------------------------------------------------------- sequence helpers

TEST(Sequence, PadShardGatherRoundTrip) {
  const comm::Communicator& w = comm::world();
  comm::ProcessMesh mesh(w, {1, 1, 1, 1, w.size()});
  const SequenceContext ctx = SequenceContext::from_mesh(mesh);
  const int p = ctx.degree();
  EXPECT_EQ(padded_length(13, 4), 16);
  EXPECT_EQ(padded_length(12, 4), 12);
  const int64_t S = 2 * p + 1;  // never divisible by p > 1
  const Tensor x = random_tensor({2, S, 3}, 7);
  const Tensor local = shard_sequence(x, 1, ctx);
  const int64_t block = padded_length(S, p) / p;
  ASSERT_EQ(local.shape(), Shape({2, block, 3}));
  const int64_t start = ctx.shard_index() * block;
  for (int64_t i = 0; i < block; ++i) {
    const double expect = start + i < S ? x.item_at({1, start + i, 2}) : 0.0;
    EXPECT_EQ(local.item_at({1, i, 2}), expect);
  }
  const Tensor mask = shard_key_mask(2, S, ctx);
  for (int64_t i = 0; i < block; ++i) EXPECT_EQ(mask.item_at({0, i}), start + i < S ? 1.0 : 0.0);
  const Tensor back = gather_sequence(local, 1, S, ctx);
  EXPECT_EQ(back.to_vector(), x.to_vector());
  const Tensor padded = pad_sequence(x, 1, S + 2);
  EXPECT_EQ(padded.item_at({0, S + 1, 0}), 0.0);
  EXPECT_EQ(padded.item_at({0, S - 1, 1}), x.item_at({0, S - 1, 1}));
}

// ---------------------------------------------------------------- parallel attention

struct Case {
  const char* name;
  int64_t B, S, H, D, Dv;
  bool mask;          // a key mask with some zeros (on top of padding)
  bool masked_batch;  // batch 1 sees no key at all
  int64_t xq, xk;     // extra (replicated) queries / keys; 0 = none
  bool xmask;
  float scale;
  bool strided;  // local q/k/v as views into a fused (B, S, H, 3·D) tensor
};

const Case kCases[] = {
    {"masked", 2, 13, 4, 8, 8, true, false, 0, 0, false, 0.0f, false},
    {"unmasked_divisible", 1, 16, 4, 8, 8, false, false, 0, 0, false, 0.0f, false},
    {"joint_text", 2, 11, 4, 8, 6, true, false, 5, 6, true, 0.3f, false},
    {"joint_kv_only", 1, 9, 4, 4, 4, false, false, 0, 3, false, 0.0f, true},
    {"fully_masked_batch", 2, 10, 4, 8, 8, true, true, 0, 0, false, 0.0f, true},
    // Head counts that Ulysses 2 and 4 do not divide (uneven head shares), and one head, where
    // some Ulysses ranks compute none.
    {"three_heads_joint", 2, 11, 3, 8, 6, true, false, 5, 6, true, 0.0f, false},
    {"five_heads", 1, 13, 5, 4, 4, false, false, 0, 0, false, 0.0f, true},
    {"one_head_joint", 2, 7, 1, 4, 4, true, false, 3, 3, false, 0.0f, false},
};

// The world split as dp × ring × ulysses for every (ulysses, ring) whose product divides it.
std::vector<std::pair<int, int>> layouts(int world) {
  std::vector<std::pair<int, int>> out;
  for (int u = 1; u <= world; ++u)
    for (int r = 1; r <= world; ++r)
      if (world % (u * r) == 0) out.push_back({u, r});
  return out;
}

void check_case(const Case& c, int uly, int ring) {
  const comm::Communicator& w = comm::world();
  comm::ProcessMesh mesh(w, {w.size() / (uly * ring), 1, 1, ring, uly});
  const SequenceContext ctx = SequenceContext::from_mesh(mesh);
  ASSERT_EQ(ctx.ulysses_degree(), uly);
  ASSERT_EQ(ctx.ring_degree(), ring);
  const std::string what =
      std::string(c.name) + " ulysses=" + std::to_string(uly) + " ring=" + std::to_string(ring);

  // Full inputs, identical on every rank.
  const Tensor q = random_tensor({c.B, c.S, c.H, c.D}, 11);
  const Tensor k = random_tensor({c.B, c.S, c.H, c.D}, 12);
  const Tensor v = random_tensor({c.B, c.S, c.H, c.Dv}, 13);
  Tensor mask;
  if (c.mask) {
    std::vector<float> m(c.B * c.S, 1.0f);
    for (int64_t j = 0; j < c.S; ++j) {
      if (j < 4 || j % 3 == 2) m[j] = 0.0f;  // batch 0: a whole leading block and more
      if (c.B > 1) m[c.S + j] = c.masked_batch ? 0.0f : (j % 4 == 1 ? 0.0f : 1.0f);
    }
    mask = Tensor::from_vector(m, {c.B, c.S});
  }
  Tensor xq, xk, xv, xmask;
  if (c.xq) xq = random_tensor({c.B, c.xq, c.H, c.D}, 14);
  if (c.xk) {
    xk = random_tensor({c.B, c.xk, c.H, c.D}, 15);
    xv = random_tensor({c.B, c.xk, c.H, c.Dv}, 16);
    if (c.xmask) {
      std::vector<float> m(c.B * c.xk, 1.0f);
      m[1] = 0.0f;
      xmask = Tensor::from_vector(m, {c.B, c.xk});
    }
  }

  // Single process: core::attention over [image; text] tokens.
  Tensor full_mask;
  if (mask.defined() || xmask.defined()) {
    full_mask =
        cat1(mask.defined() ? mask : Tensor::full({c.B, c.S}, 1.0f),
             xk.defined() ? (xmask.defined() ? xmask : Tensor::full({c.B, c.xk}, 1.0f)) : Tensor());
  }
  core::AttentionOptions copt;
  copt.scale = c.scale;
  copt.key_mask = full_mask;
  const Tensor q_all = cat1(q, xq), k_all = cat1(k, xk), v_all = cat1(v, xv);
  const Tensor expect = core::attention(q_all, k_all, v_all, copt).out;  // (B, S + xq, H, Dv)
  const Ref ref = reference_attention(q_all, k_all, v_all, full_mask, c.scale);

  // Parallel: this rank's blocks.
  Tensor lq = shard_sequence(q, 1, ctx), lk = shard_sequence(k, 1, ctx),
         lv = shard_sequence(v, 1, ctx);
  if (c.strided) {
    Shape fs = lq.shape();
    fs[3] = 2 * c.D + c.Dv;
    Tensor fused = Tensor::empty(fs);
    fused.slice(3, 0, c.D).copy_from(lq);
    fused.slice(3, c.D, 2 * c.D).copy_from(lk);
    fused.slice(3, 2 * c.D, 2 * c.D + c.Dv).copy_from(lv);
    lq = fused.slice(3, 0, c.D);
    lk = fused.slice(3, c.D, 2 * c.D);
    lv = fused.slice(3, 2 * c.D, 2 * c.D + c.Dv);
  }
  AttentionOptions opt;
  opt.scale = c.scale;
  if (mask.defined() || c.S % ctx.degree() != 0) opt.key_mask = shard_key_mask(c.B, c.S, ctx, mask);
  opt.extra_q = xq;
  opt.extra_k = xk;
  opt.extra_v = xv;
  opt.extra_key_mask = xmask;
  const AttentionOutput got = attention(lq, lk, lv, ctx, opt);
  ASSERT_EQ(got.out.shape(), Shape({c.B, lq.dim(1), c.H, c.Dv})) << what;
  const Tensor out = gather_sequence(got.out, 1, c.S, ctx);  // (B, S, H, Dv)

  const Tensor expect_img = expect.slice(1, 0, c.S);
  const double err = rel_error(out.to_vector(), widen(expect_img));
  EXPECT_LE(err, 1e-5) << what << " vs core::attention";
  // Ulysses alone splits only heads, and attention is per head: the same sums as one process.
  if (ring == 1) EXPECT_LE(err, 1e-6) << what << " vs core::attention (Ulysses only)";
  if (!c.xq) {
    EXPECT_LE(rel_error(out.to_vector(), ref.out), 1e-5) << what << " vs double";
  }
  if (c.masked_batch) {
    for (float x : out.slice(0, 1, 2).to_vector()) ASSERT_EQ(x, 0.0f) << what;
  }

  if (c.xq) {
    ASSERT_TRUE(got.extra_out.defined()) << what;
    ASSERT_EQ(got.extra_out.shape(), Shape({c.B, c.xq, c.H, c.Dv})) << what;
    EXPECT_LE(rel_error(got.extra_out.to_vector(), widen(expect.slice(1, c.S, c.S + c.xq))), 1e-5)
        << what << " extra_out vs core::attention";
    EXPECT_LE(rel_error(cat1(out, got.extra_out).to_vector(), ref.out), 1e-5)
        << what << " vs double";
    // Replicated output: bit-identical on every rank of the sequence group.
    Tensor root = got.extra_out.clone();
    mesh.sequence_group().broadcast(root, 0);
    EXPECT_EQ(std::memcmp(root.raw_data(), got.extra_out.raw_data(), root.nbytes()), 0) << what;
  } else {
    EXPECT_FALSE(got.extra_out.defined()) << what;
  }
}

TEST(ParallelAttention, EveryLayoutMatchesSingleProcess) {
  const int world = comm::world().size();
  for (const auto& [uly, ring] : layouts(world))
    for (const Case& c : kCases) check_case(c, uly, ring);
}

// Any head count over any Ulysses degree: contiguous shares covering every head once, sizes
// differing by at most one (none when H < U).
TEST(ParallelAttention, UlyssesHeadSharesAreBalanced) {
  for (int64_t H : {1, 3, 4, 5, 24, 30, 38})
    for (int u = 1; u <= 8; ++u) {
      int64_t next = 0, lo = H, hi = 0;
      for (int r = 0; r < u; ++r) {
        const HeadRange h = ulysses_heads(H, u, r);
        EXPECT_EQ(h.begin, next) << H << " heads, degree " << u << ", rank " << r;
        next = h.begin + h.count;
        lo = std::min(lo, h.count);
        hi = std::max(hi, h.count);
      }
      EXPECT_EQ(next, H) << H << " heads, degree " << u;
      EXPECT_LE(hi - lo, 1) << H << " heads, degree " << u;
    }
  EXPECT_THROW(ulysses_heads(4, 2, 2), Error);
}

TEST(ParallelAttention, SingleProcessIsPlainAttention) {
  const Tensor q = random_tensor({1, 6, 2, 4}, 1), k = random_tensor({1, 7, 2, 4}, 2),
               v = random_tensor({1, 7, 2, 4}, 3);
  const Tensor a = attention(q, k, v, SequenceContext{}).out;
  const Tensor b = core::attention(q, k, v).out;
  EXPECT_EQ(a.to_vector(), b.to_vector());
  AttentionOptions bad;
  bad.extra_k = k;
  EXPECT_THROW(attention(q, k, v, SequenceContext{}, bad), Error);  // extra_v missing
}

// Bytes handed to other ranks for one attention call, against the analytic volumes:
// Ulysses: 4 tensors (q, k, v, out) of S/P·d elements, all but the own 1/P chunk:
//   4·(S/P)·d·(P−1)/P;  Ring: K and V blocks of S/P·d, P−1 times: 2·S·d·(P−1)/P.
TEST(ParallelAttention, BytesMatchAnalyticVolumes) {
  const comm::Communicator& w = comm::world();
  const int p = w.size();
  if (p == 1) GTEST_SKIP() << "nothing is sent in a world of one";
  const int64_t B = 1, S = 8 * p, H = 2 * p, D = 8;  // H divides by P: equal shares
  const int64_t d = H * D, elem = sizeof(float);
  const Tensor q = random_tensor({B, S / p, H, D}, 1 + w.rank());
  for (int uly : {p, 1}) {
    const int ring = p / uly;
    comm::ProcessMesh mesh(w, {1, 1, 1, ring, uly});
    const SequenceContext ctx = SequenceContext::from_mesh(mesh);
    mesh.group(comm::MeshDim::kUlysses).reset_bytes();
    mesh.group(comm::MeshDim::kRing).reset_bytes();
    attention(q, q, q, ctx);
    const uint64_t uly_bytes = mesh.group(comm::MeshDim::kUlysses).bytes().total();
    const uint64_t ring_bytes = mesh.group(comm::MeshDim::kRing).bytes().total();
    if (uly == p) {
      EXPECT_EQ(uly_bytes, static_cast<uint64_t>(4 * (S / p) * d * (p - 1) / p * elem));
      EXPECT_EQ(ring_bytes, 0u);
    } else {
      EXPECT_EQ(ring_bytes, static_cast<uint64_t>(2 * S * d * (p - 1) / p * elem));
      EXPECT_EQ(uly_bytes, 0u);
    }
  }
  // Uneven heads (H = P + 1 over Ulysses P, rank r computes h_r): q, k, v each send the other
  // ranks' heads of the local block, (S/P)·(H − h_r)·D; the output sends the own heads of the
  // other ranks' blocks, (S/P)·h_r·D·(P − 1).
  const int64_t Hu = p + 1, hr = ulysses_heads(Hu, p, w.rank()).count;
  const Tensor x = random_tensor({B, S / p, Hu, D}, 7 + w.rank());
  comm::ProcessMesh mesh(w, {1, 1, 1, 1, p});
  const SequenceContext ctx = SequenceContext::from_mesh(mesh);
  mesh.group(comm::MeshDim::kUlysses).reset_bytes();
  attention(x, x, x, ctx);
  EXPECT_EQ(mesh.group(comm::MeshDim::kUlysses).bytes().total(),
            static_cast<uint64_t>((3 * (S / p) * (Hu - hr) * D + (S / p) * hr * D * (p - 1)) * elem));
}

// Figures for a report, not a check (disabled in CI):
//   mpirun -np 4 test_parallel --gtest_also_run_disabled_tests --gtest_filter='*Figures*'
// Flux-like attention (B 1, H 24, D 128; S from PARADIT_FIGURES_S, default 1024): bytes each rank
// hands to others and the wall time of one call, Ulysses vs Ring.
TEST(ParallelAttention, DISABLED_BytesAndTimeFigures) {
  const comm::Communicator& w = comm::world();
  const int p = w.size();
  const char* s_env = std::getenv("PARADIT_FIGURES_S");
  const int64_t B = 1, H = 24, D = 128, S = s_env ? std::atoll(s_env) : 1024;
  const int64_t d = H * D, elem = sizeof(float);
  const Tensor x = random_tensor({B, S / p, H, D}, 1 + w.rank());
  for (int uly : {p, 1}) {
    const int ring = p / uly;
    comm::ProcessMesh mesh(w, {1, 1, 1, ring, uly});
    const SequenceContext ctx = SequenceContext::from_mesh(mesh);
    attention(x, x, x, ctx);  // warm-up
    mesh.group(comm::MeshDim::kUlysses).reset_bytes();
    mesh.group(comm::MeshDim::kRing).reset_bytes();
    w.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    attention(x, x, x, ctx);
    w.barrier();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t bytes = mesh.group(comm::MeshDim::kUlysses).bytes().total() +
                           mesh.group(comm::MeshDim::kRing).bytes().total();
    const double analytic =
        uly == p ? 4.0 * (S / p) * d * (p - 1) / p * elem : 2.0 * S * d * (p - 1) / p * elem;
    if (w.rank() == 0) {
      std::printf("P=%d S=%lld H=%lld D=%lld %-8s sent/rank %.3f MiB, analytic %s = %.3f MiB", p,
                  static_cast<long long>(S), static_cast<long long>(H), static_cast<long long>(D),
                  uly == p ? "ulysses" : "ring", bytes / 1048576.0,
                  uly == p ? "4·(S/P)·d·(P−1)/P" : "2·S·d·(P−1)/P", analytic / 1048576.0);
      if (uly == p)
        std::printf(" (4·S·d/P with the own chunk: %.3f MiB)", 4.0 * S * d / p * elem / 1048576.0);
      std::printf(", one call %.1f ms\n", ms);
    }
  }
}

}  // namespace
}  // namespace paradit::parallel
