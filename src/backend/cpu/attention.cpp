// Flash-style attention (see attention.h).
//
// Layout of the work:
// - K and V of a group of (batch, head) pairs are first packed once: only the visible keys
//   (key_mask compaction, so masked keys cost nothing and are excluded exactly), K as panels of
//   kKeyBlock keys stored d-major (panel[d][key]) so the score kernel reads whole vectors of
//   keys, V as rows padded to a multiple of the vector width.
// - Each work item is (pair, block of kQueryBlock queries). It walks the key panels: scores of
//   the tile (register-blocked kernel), online softmax per row (running max m and sum l, in
//   base 2: q is pre-scaled by log2(e) so exp becomes exp2), then O += P·V (register-blocked).
// Tiles: Q block 96×D, K panel D×64, V block 64×Dv, S 96×64, O 96×Dv: ≤ ~200 KiB for D = 128,
// well inside the 1 MiB L2 of a Zen 4 core; the micro-kernels stream from L1.

#include "backend/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
// GCC 12 reports the _mm512_undefined_ps() inside its own intrinsics (reductions, permutes) as
// "maybe uninitialized" wherever they inline: a compiler false positive, silenced here only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace paradit::backend::cpu {
namespace {

constexpr int64_t kKeyBlock = 64;    // keys per panel: 4 AVX-512 vectors
constexpr int64_t kQueryBlock = 96;  // queries per work item (a multiple of every row tile)
constexpr int64_t kVec = 16;         // floats per vector; V rows are padded to a multiple
constexpr int kScoreRows = 6;        // rows of the score micro-tile (6 × 4 vectors = 24 acc.)
constexpr int kMaxOutVecs = 8;       // widest output column chunk of the P·V tile
constexpr size_t kPackBudgetBytes = size_t{64} << 20;  // packed K/V per group of pairs

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Rows of the P·V tile for a chunk of `vecs` output vectors: R·vecs accumulators plus R
// broadcasts plus one V vector stay within the 32 vector registers.
constexpr int pv_rows(int vecs) {
  constexpr int kRows[kMaxOutVecs + 1] = {1, 12, 8, 6, 6, 4, 4, 3, 3};
  return kRows[vecs];
}

// ---------------------------------------------------------------- micro-kernels
#if defined(__AVX512F__)

// 2^f for f ∈ [-½, ½] (and NaN): its degree-7 Taylor series in f·ln2 (truncation < 1e-8, so
// within a few float ulps).
inline __m512 exp2_frac_ps(__m512 f) {
  __m512 p = _mm512_set1_ps(1.5252733804059840e-05f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381606e-04f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-01f));
  return _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
}

// 2^(s − ref) for an integer ref: 2^f · 2^(n − ref) with n = round(s), f = s − n (exact), so
// the result is the same 2^f scaled by an exact power of two for every ref; scalef flushes to
// 0 below 2^-150, so scores more than 150 below ref (and −inf, dropped keys) give 0.
inline __m512 exp2_ref_ps(__m512 s, __m512 ref) {
  s = _mm512_max_ps(_mm512_sub_ps(ref, _mm512_set1_ps(150.0f)), s);  // NaN in s stays NaN
  const __m512 n = _mm512_roundscale_ps(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_scalef_ps(exp2_frac_ps(_mm512_sub_ps(s, n)), _mm512_sub_ps(n, ref));
}

// s[r][0..64) = Σ_d q[r][d] · panel[d][0..64)   for R rows; s row stride kKeyBlock.
template <int R>
inline void score_tile(const float* q, int64_t ldq, const float* panel, int64_t D, float* s) {
  __m512 acc[R][4];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  for (int64_t d = 0; d < D; ++d) {
    const float* kd = panel + d * kKeyBlock;
    const __m512 k0 = _mm512_loadu_ps(kd), k1 = _mm512_loadu_ps(kd + 16);
    const __m512 k2 = _mm512_loadu_ps(kd + 32), k3 = _mm512_loadu_ps(kd + 48);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 qr = _mm512_set1_ps(q[r * ldq + d]);
      acc[r][0] = _mm512_fmadd_ps(qr, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(qr, k1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(qr, k2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(qr, k3, acc[r][3]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) _mm512_storeu_ps(s + r * kKeyBlock + c * 16, acc[r][c]);
  }
}

// o[r][chunk] = alpha[r] · o[r][chunk] + Σ_{j<nk} p[r][j] · v[j][chunk]   (V vectors of the
// chunk: V columns [0, 16·CV) from `v`, row stride ldv; o row stride ldo; p row stride 64).
template <int R, int CV>
inline void pv_tile(const float* p, const float* v, int64_t ldv, int64_t nk, const float* alpha,
                    float* o, int64_t ldo) {
  __m512 acc[R][CV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r]);
#pragma GCC unroll 8
    for (int c = 0; c < CV; ++c)
      acc[r][c] = _mm512_mul_ps(_mm512_loadu_ps(o + r * ldo + c * 16), a);
  }
  for (int64_t j = 0; j < nk; ++j) {
    __m512 pr[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) pr[r] = _mm512_set1_ps(p[r * kKeyBlock + j]);
    const float* vj = v + j * ldv;
#pragma GCC unroll 8
    for (int c = 0; c < CV; ++c) {
      __m512 vc = _mm512_loadu_ps(vj + c * 16);
      // Keep vc in a register: GCC would otherwise fold the load into each of the R FMAs,
      // R loads per vector instead of one, and the kernel becomes load-bound.
      asm("" : "+v"(vc));
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_fmadd_ps(pr[r], vc, acc[r][c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < CV; ++c) _mm512_storeu_ps(o + r * ldo + c * 16, acc[r][c]);
  }
}

// Online-softmax step for `rows` rows of 64 scores (already -inf past the valid keys): turns
// the scores into probabilities relative to each row's new reference m (the running max
// rounded up to an integer), sets alpha = 2^(m_old − m_new) (an exact power of two, the factor
// for what was accumulated so far) and updates l. A row whose scores are all -inf so far gets
// probabilities 0 (computed against a stand-in reference of 0).
// Done in phases over all rows so that the rows' long dependency chains (reductions, exp2)
// overlap instead of running one after another.
inline void softmax_rows(float* s, int64_t rows, float* m, float* l, float* alpha) {
  alignas(64) float block_max[kQueryBlock];
  alignas(64) float ref[kQueryBlock];
  for (int64_t r = 0; r < rows; ++r) {
    const float* sr = s + r * kKeyBlock;
    const __m512 mx =
        _mm512_max_ps(_mm512_max_ps(_mm512_loadu_ps(sr), _mm512_loadu_ps(sr + 16)),
                      _mm512_max_ps(_mm512_loadu_ps(sr + 32), _mm512_loadu_ps(sr + 48)));
    block_max[r] = _mm512_reduce_max_ps(mx);
  }
  const __m512 neg_inf = _mm512_set1_ps(kNegInf);
  for (int64_t r = 0; r < rows; r += 16) {
    const __mmask16 k = rows - r >= 16 ? __mmask16(0xffff) : __mmask16((1u << (rows - r)) - 1);
    const __m512 m_old = _mm512_maskz_loadu_ps(k, m + r);
    const __m512 m_blk = _mm512_roundscale_ps(_mm512_maskz_loadu_ps(k, block_max + r),
                                              _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    const __m512 m_new = _mm512_max_ps(m_old, m_blk);
    const __mmask16 none = _mm512_cmp_ps_mask(m_new, neg_inf, _CMP_EQ_OQ);
    const __m512 m_ref = _mm512_mask_blend_ps(none, m_new, _mm512_setzero_ps());
    _mm512_mask_storeu_ps(ref + r, k, m_ref);
    // 2^(integer difference), -inf → 0
    _mm512_mask_storeu_ps(alpha + r, k,
                          _mm512_scalef_ps(_mm512_set1_ps(1.0f), _mm512_sub_ps(m_old, m_ref)));
    _mm512_mask_storeu_ps(m + r, k, m_new);
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* sr = s + r * kKeyBlock;
    const __m512 mv = _mm512_set1_ps(ref[r]);
    const __m512 p0 = exp2_ref_ps(_mm512_loadu_ps(sr), mv);
    const __m512 p1 = exp2_ref_ps(_mm512_loadu_ps(sr + 16), mv);
    const __m512 p2 = exp2_ref_ps(_mm512_loadu_ps(sr + 32), mv);
    const __m512 p3 = exp2_ref_ps(_mm512_loadu_ps(sr + 48), mv);
    _mm512_storeu_ps(sr, p0);
    _mm512_storeu_ps(sr + 16, p1);
    _mm512_storeu_ps(sr + 32, p2);
    _mm512_storeu_ps(sr + 48, p3);
    l[r] = l[r] * alpha[r] +
           _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(p0, p1), _mm512_add_ps(p2, p3)));
  }
}

#else  // portable versions (the compiler vectorizes the inner loops)

template <int R>
inline void score_tile(const float* q, int64_t ldq, const float* panel, int64_t D, float* s) {
  for (int r = 0; r < R; ++r) {
    float acc[kKeyBlock] = {};
    for (int64_t d = 0; d < D; ++d) {
      const float qv = q[r * ldq + d];
      const float* kd = panel + d * kKeyBlock;
      for (int64_t j = 0; j < kKeyBlock; ++j) acc[j] += qv * kd[j];
    }
    std::copy_n(acc, kKeyBlock, s + r * kKeyBlock);
  }
}

template <int R, int CV>
inline void pv_tile(const float* p, const float* v, int64_t ldv, int64_t nk, const float* alpha,
                    float* o, int64_t ldo) {
  for (int r = 0; r < R; ++r) {
    float acc[CV * kVec];
    for (int c = 0; c < CV * kVec; ++c) acc[c] = o[r * ldo + c] * alpha[r];
    for (int64_t j = 0; j < nk; ++j) {
      const float pj = p[r * kKeyBlock + j];
      const float* vj = v + j * ldv;
      for (int c = 0; c < CV * kVec; ++c) acc[c] += pj * vj[c];
    }
    std::copy_n(acc, CV * kVec, o + r * ldo);
  }
}

inline void softmax_rows(float* s, int64_t rows, float* m, float* l, float* alpha) {
  for (int64_t r = 0; r < rows; ++r) {
    float* sr = s + r * kKeyBlock;
    float block_max = kNegInf;
    for (int64_t j = 0; j < kKeyBlock; ++j) block_max = std::max(block_max, sr[j]);
    const float m_new = std::max(m[r], std::ceil(block_max));
    const float m_ref = m_new == kNegInf ? 0.0f : m_new;
    float sum = 0.0f;
    for (int64_t j = 0; j < kKeyBlock; ++j) {
      // 2^frac · 2^(n − ref): the same bits for every integer ref (see exp2_ref_ps)
      const float x = std::max(sr[j], m_ref - 150.0f);
      const float n = std::nearbyint(x);
      sr[j] = std::ldexp(std::exp2(x - n), static_cast<int>(n - m_ref));
      sum += sr[j];
    }
    alpha[r] = m[r] == kNegInf ? 0.0f : std::ldexp(1.0f, static_cast<int>(m[r] - m_ref));
    l[r] = l[r] * alpha[r] + sum;
    m[r] = m_new;
  }
}

#endif

// Dispatches a P·V chunk of `vecs` vectors (1..8) to its register-blocked instance, over
// `rows` rows (a multiple of pv_rows(vecs)).
template <int CV>
void pv_rows_loop(int64_t rows, const float* p, const float* v, int64_t ldv, int64_t nk,
                  const float* alpha, float* o, int64_t ldo) {
  constexpr int R = pv_rows(CV);
  for (int64_t r = 0; r < rows; r += R) {
    pv_tile<R, CV>(p + r * kKeyBlock, v, ldv, nk, alpha + r, o + r * ldo, ldo);
  }
}

void pv_chunk(int vecs, int64_t rows, const float* p, const float* v, int64_t ldv, int64_t nk,
              const float* alpha, float* o, int64_t ldo) {
  switch (vecs) {
    case 1:
      return pv_rows_loop<1>(rows, p, v, ldv, nk, alpha, o, ldo);
    case 2:
      return pv_rows_loop<2>(rows, p, v, ldv, nk, alpha, o, ldo);
    case 3:
      return pv_rows_loop<3>(rows, p, v, ldv, nk, alpha, o, ldo);
    case 4:
      return pv_rows_loop<4>(rows, p, v, ldv, nk, alpha, o, ldo);
    case 5:
      return pv_rows_loop<5>(rows, p, v, ldv, nk, alpha, o, ldo);
    case 6:
      return pv_rows_loop<6>(rows, p, v, ldv, nk, alpha, o, ldo);
    case 7:
      return pv_rows_loop<7>(rows, p, v, ldv, nk, alpha, o, ldo);
    default:
      return pv_rows_loop<8>(rows, p, v, ldv, nk, alpha, o, ldo);
  }
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Packed K/V and the visible-key lists shared by the work items of one group of pairs.
struct Packed {
  int64_t key_pad = 0;   // keys per pair in the packed buffers (multiple of kKeyBlock)
  int64_t dv_pad = 0;    // V row length (multiple of kVec)
  std::vector<float> k;  // [pair][panel][d][kKeyBlock]
  std::vector<float> v;  // [pair][key][dv_pad]
};

struct Work {
  const AttentionArgs& a;
  const std::vector<std::vector<int32_t>>& visible;  // per batch: original key indices
  bool all_visible;
};

void pack_pair(const Work& w, int64_t b, int64_t h, float* kp, float* vp, int64_t dv_pad) {
  const AttentionArgs& a = w.a;
  const int64_t D = a.head_dim, Dv = a.head_dim_v;
  const int64_t nvis = w.all_visible ? a.seq_k : static_cast<int64_t>(w.visible[b].size());
  const int64_t panels = (nvis + kKeyBlock - 1) / kKeyBlock;
  const float* kb = a.k + b * a.k_stride_b + h * a.k_stride_h;
  const float* vb = a.v + b * a.v_stride_b + h * a.v_stride_h;
  for (int64_t pnl = 0; pnl < panels; ++pnl) {
    float* panel = kp + pnl * kKeyBlock * D;  // (D, 64)
    const int64_t nk = std::min(kKeyBlock, nvis - pnl * kKeyBlock);
    for (int64_t jj = 0; jj < kKeyBlock; ++jj) {
      if (jj >= nk) {
        for (int64_t d = 0; d < D; ++d) panel[d * kKeyBlock + jj] = 0.0f;
        continue;
      }
      const int64_t j = pnl * kKeyBlock + jj;
      const int64_t key = w.all_visible ? j : w.visible[b][j];
      const float* src = kb + key * a.k_stride_s;
      for (int64_t d = 0; d < D; ++d) panel[d * kKeyBlock + jj] = src[d];
      const float* vsrc = vb + key * a.v_stride_s;
      float* vdst = vp + j * dv_pad;
      std::copy_n(vsrc, Dv, vdst);
      std::fill(vdst + Dv, vdst + dv_pad, 0.0f);
    }
  }
}

// Per-thread tiles.
struct Scratch {
  std::vector<float> q, s, o, m, l, alpha;
  Scratch(int64_t D, int64_t dv_pad)
      : q(kQueryBlock * std::max<int64_t>(D, 1)),
        s(kQueryBlock * kKeyBlock),
        o(kQueryBlock * std::max<int64_t>(dv_pad, 1)),
        m(kQueryBlock),
        l(kQueryBlock),
        alpha(kQueryBlock) {}
};

void run_item(const Work& w, int64_t b, int64_t h, int64_t q0, const float* kp, const float* vp,
              int64_t dv_pad, Scratch& t) {
  const AttentionArgs& a = w.a;
  const int64_t D = a.head_dim, Dv = a.head_dim_v, H = a.heads;
  const int64_t rows = std::min(kQueryBlock, a.seq_q - q0);
  const int64_t nvis = w.all_visible ? a.seq_k : static_cast<int64_t>(w.visible[b].size());
  const int64_t panels = (nvis + kKeyBlock - 1) / kKeyBlock;
  const int out_vecs = static_cast<int>(dv_pad / kVec);

  // Tiles cover rows padded to the row-tile height; padded rows are zero queries whose results
  // are never written out.
  const int64_t rows_s = round_up(rows, kScoreRows);
  int64_t rows_pv = rows;
  for (int c0 = 0; c0 < out_vecs; c0 += kMaxOutVecs) {
    rows_pv = std::max(rows_pv, round_up(rows, pv_rows(std::min(kMaxOutVecs, out_vecs - c0))));
  }
  const int64_t rows_pad = std::max(rows_s, rows_pv);

  // Q block, pre-scaled so that scores come out in base-2 units: (rows_pad, D)
  const float qscale = a.scale * kLog2e;
  for (int64_t r = 0; r < rows_pad; ++r) {
    float* dst = t.q.data() + r * D;
    if (r < rows) {
      const float* src = a.q + b * a.q_stride_b + (q0 + r) * a.q_stride_s + h * a.q_stride_h;
      for (int64_t d = 0; d < D; ++d) dst[d] = src[d] * qscale;
    } else {
      std::fill_n(dst, D, 0.0f);
    }
  }
  std::fill_n(t.o.data(), rows_pad * dv_pad, 0.0f);
  std::fill_n(t.m.data(), rows_pad, kNegInf);
  std::fill_n(t.l.data(), rows_pad, 0.0f);
  std::fill_n(t.alpha.data(), rows_pad, 1.0f);

  const float* bias_bh =
      a.bias ? a.bias + b * a.bias_stride_b + h * a.bias_stride_h + q0 * a.bias_stride_q : nullptr;
  const int32_t* keys = w.all_visible ? nullptr : w.visible[b].data();

  for (int64_t pnl = 0; pnl < panels; ++pnl) {
    const int64_t j0 = pnl * kKeyBlock;
    const int64_t nk = std::min(kKeyBlock, nvis - j0);
    const float* panel = kp + j0 * D;
    float* s = t.s.data();
    // scores S (rows_s, 64) = Q · panel
    for (int64_t r = 0; r < rows_s; r += kScoreRows) {
      score_tile<kScoreRows>(t.q.data() + r * D, D, panel, D, s + r * kKeyBlock);
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* sr = s + r * kKeyBlock;
      if (bias_bh) {
        const float* br = bias_bh + r * a.bias_stride_q;
        const int64_t bk = a.bias_stride_k;
        if (keys) {
          for (int64_t j = 0; j < nk; ++j) sr[j] += br[keys[j0 + j] * bk] * kLog2e;
        } else {
          for (int64_t j = 0; j < nk; ++j) sr[j] += br[(j0 + j) * bk] * kLog2e;
        }
      }
      std::fill(sr + nk, sr + kKeyBlock, kNegInf);
    }
    softmax_rows(s, rows, t.m.data(), t.l.data(), t.alpha.data());
    // O (rows, Dv) = alpha · O + P · V_panel
    const float* vpanel = vp + j0 * dv_pad;
    for (int c0 = 0; c0 < out_vecs; c0 += kMaxOutVecs) {
      const int vecs = std::min(kMaxOutVecs, out_vecs - c0);
      pv_chunk(vecs, round_up(rows, pv_rows(vecs)), s, vpanel + c0 * kVec, dv_pad, nk,
               t.alpha.data(), t.o.data() + c0 * kVec, dv_pad);
    }
  }

  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = q0 + r;
    float* dst = a.out + ((b * a.seq_q + i) * H + h) * Dv;
    const float l = t.l[r];
    if (a.row_sum) {  // unnormalized partial (see attention.h)
      std::copy_n(t.o.data() + r * dv_pad, Dv, dst);
      a.row_sum[(b * H + h) * a.seq_q + i] = l;
      a.row_max[(b * H + h) * a.seq_q + i] = l > 0.0f ? t.m[r] : kNegInf;
    } else if (l > 0.0f) {
      // One rounding (a correctly rounded o / l), as the exact merge of partials has.
      const double dl = l;
      const float* src = t.o.data() + r * dv_pad;
      for (int64_t c = 0; c < Dv; ++c) dst[c] = static_cast<float>(src[c] / dl);
    } else {
      std::fill_n(dst, Dv, 0.0f);
    }
    if (a.lse) {
      a.lse[(b * H + h) * a.seq_q + i] = l > 0.0f ? (t.m[r] + std::log2(l)) * kLn2 : kNegInf;
    }
  }
}

}  // namespace

void attention_f32(const AttentionArgs& a) {
  const int64_t B = a.batch, H = a.heads, Sq = a.seq_q, Sk = a.seq_k;
  const int64_t D = a.head_dim, Dv = a.head_dim_v;
  if (B == 0 || H == 0 || Sq == 0) return;

  // Visible keys per batch element (all of them when there is no mask).
  std::vector<std::vector<int32_t>> visible;
  int64_t max_visible = Sk;
  if (a.key_keep) {
    visible.resize(B);
    max_visible = 0;
    for (int64_t b = 0; b < B; ++b) {
      const uint8_t* keep = a.key_keep + b * Sk;
      for (int64_t j = 0; j < Sk; ++j) {
        if (keep[j]) visible[b].push_back(static_cast<int32_t>(j));
      }
      max_visible = std::max<int64_t>(max_visible, visible[b].size());
    }
  }
  const Work work{a, visible, a.key_keep == nullptr};

  const int64_t key_pad = round_up(std::max<int64_t>(max_visible, 1), kKeyBlock);
  const int64_t dv_pad = round_up(Dv, kVec);
  const int64_t pair_floats = key_pad * (D + dv_pad);
  const int64_t pairs = B * H;
  const int64_t group = std::clamp<int64_t>(
      static_cast<int64_t>(kPackBudgetBytes / sizeof(float)) / std::max<int64_t>(pair_floats, 1), 1,
      pairs);
  const int64_t q_blocks = (Sq + kQueryBlock - 1) / kQueryBlock;

  std::vector<float> kpack(static_cast<size_t>(group * key_pad * D));
  std::vector<float> vpack(static_cast<size_t>(group * key_pad * dv_pad));

  for (int64_t p0 = 0; p0 < pairs; p0 += group) {
    const int64_t np = std::min(group, pairs - p0);
#pragma omp parallel
    {
#pragma omp for schedule(dynamic, 1)
      for (int64_t p = 0; p < np; ++p) {
        const int64_t pair = p0 + p;
        pack_pair(work, pair / H, pair % H, kpack.data() + p * key_pad * D,
                  vpack.data() + p * key_pad * dv_pad, dv_pad);
      }
      Scratch scratch(D, dv_pad);
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < np * q_blocks; ++item) {
        const int64_t p = item / q_blocks, qb = item % q_blocks;
        const int64_t pair = p0 + p;
        run_item(work, pair / H, pair % H, qb * kQueryBlock, kpack.data() + p * key_pad * D,
                 vpack.data() + p * key_pad * dv_pad, dv_pad, scratch);
      }
    }
  }
}

}  // namespace paradit::backend::cpu
