#include "parallel/attention.h"

#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "comm/pack.h"
#include "core/ops.h"
#include "parallel/lse_merge.h"

namespace paradit::parallel {

using core::Tensor;

namespace {

// Message tags of the ring's K/V/mask blocks. One message per tag per step between a pair, and
// MPI keeps their order, so the tags need not carry the step.
constexpr int kTagK = 11;
constexpr int kTagV = 12;
constexpr int kTagMask = 13;

// [a; b] along the sequence dim 1 (either may be undefined), as a new contiguous tensor.
Tensor concat_seq(const Tensor& a, const Tensor& b) {
  if (!b.defined()) return a;
  if (!a.defined()) return b;
  core::Shape shape = a.shape();
  shape[1] = a.dim(1) + b.dim(1);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  comm::copy_bytes(out.slice(1, 0, a.dim(1)), a);
  comm::copy_bytes(out.slice(1, a.dim(1), shape[1]), b);
  return out;
}

// A key mask as F32 on the device of the tensors it masks.
Tensor f32_mask(const Tensor& m, core::Device device) {
  return m.defined() ? m.to_device(device).to(core::DType::F32).contiguous() : m;
}

// A mask of ones (B, n), standing in for an absent mask next to a present one.
Tensor ones_mask(int64_t batch, int64_t n, core::Device device) {
  return Tensor::full({batch, n}, 1.0f, core::DType::F32, device);
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  PARADIT_CHECK(q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4, "parallel attention: q ", q.str(),
                ", k ", k.str(), ", v ", v.str(), " must be (B, S, H, D)");
  PARADIT_CHECK(core::is_floating(q.dtype()) && k.dtype() == q.dtype() && v.dtype() == q.dtype() &&
                    k.device() == q.device() && v.device() == q.device(),
                "parallel attention: q ", q.str(), ", k ", k.str(), ", v ", v.str(),
                " must be float tensors of one dtype on one device");
  const int64_t B = q.dim(0), H = q.dim(2), D = q.dim(3);
  PARADIT_CHECK(k.dim(0) == B && k.dim(2) == H && k.dim(3) == D && v.dim(0) == B &&
                    v.dim(1) == k.dim(1) && v.dim(2) == H,
                "parallel attention: q ", q.str(), ", k ", k.str(), ", v ", v.str(),
                " disagree in batch, length, heads or head dim");
  if (o.key_mask.defined()) {
    PARADIT_CHECK(o.key_mask.shape() == core::Shape({B, k.dim(1)}), "parallel attention: key_mask ",
                  o.key_mask.str(), " does not match (B, Sk_local) = (", B, ", ", k.dim(1), ")");
  }
  if (o.extra_q.defined()) {
    PARADIT_CHECK(o.extra_q.ndim() == 4 && o.extra_q.dim(0) == B && o.extra_q.dim(2) == H &&
                      o.extra_q.dim(3) == D,
                  "parallel attention: extra_q ", o.extra_q.str(), " does not match q ", q.str());
  }
  PARADIT_CHECK(o.extra_k.defined() == o.extra_v.defined(), "parallel attention: extra_k ",
                o.extra_k.defined() ? o.extra_k.str() : "{}", " and extra_v ",
                o.extra_v.defined() ? o.extra_v.str() : "{}", " must be given together");
  if (o.extra_k.defined()) {
    const Tensor& xk = o.extra_k;
    const Tensor& xv = o.extra_v;
    PARADIT_CHECK(xk.ndim() == 4 && xv.ndim() == 4 && xk.dim(0) == B && xk.dim(2) == H &&
                      xk.dim(3) == D && xv.dim(0) == B && xv.dim(1) == xk.dim(1) &&
                      xv.dim(2) == H && xv.dim(3) == v.dim(3),
                  "parallel attention: extra_k ", xk.str(), " / extra_v ", xv.str(),
                  " do not match k ", k.str(), " / v ", v.str());
    if (o.extra_key_mask.defined()) {
      PARADIT_CHECK(o.extra_key_mask.shape() == core::Shape({B, xk.dim(1)}),
                    "parallel attention: extra_key_mask ", o.extra_key_mask.str(),
                    " does not match (B, Sx) = (", B, ", ", xk.dim(1), ")");
    }
  } else {
    PARADIT_CHECK(!o.extra_key_mask.defined(),
                  "parallel attention: extra_key_mask given without extra_k/extra_v");
  }
}

// Inputs of one stage (after the Ulysses exchange): this rank's queries, its key block, and the
// replicated extras, all restricted to the heads this rank computes.
struct Stage {
  Tensor q, k, v, mask;      // (B, Sq, h, D) (B, Sk, h, D) (B, Sk, h, Dv) (B, Sk) | {}
  Tensor xq, xk, xv, xmask;  // (B, Sxq, h, D) (B, Sx, h, D) (B, Sx, h, Dv) (B, Sx) | {}
  float scale = 0.0f;
};

struct StageResult {
  Tensor out;   // (B, Sq, h, Dv)
  Tensor xout;  // (B, Sxq, h, Dv) | {}
};

// No ring: one attention call over [local keys; extra keys] for [queries; extra queries].
StageResult local_stage(const Stage& s) {
  const int64_t B = s.q.dim(0), nq = s.q.dim(1);
  Tensor mask;
  if (s.mask.defined() || s.xmask.defined()) {
    Tensor m0 = s.mask.defined() ? s.mask : ones_mask(B, s.k.dim(1), s.q.device());
    Tensor m1 = s.xk.defined()
                    ? (s.xmask.defined() ? s.xmask : ones_mask(B, s.xk.dim(1), s.q.device()))
                    : Tensor();
    mask = concat_seq(m0, m1);  // (B, Sk + Sx)
  }
  core::AttentionOptions opt;
  opt.scale = s.scale;
  opt.key_mask = mask;
  const Tensor q = concat_seq(s.q, s.xq);          // (B, Sq + Sxq, h, D)
  const Tensor k = concat_seq(s.k, s.xk);          // (B, Sk + Sx, h, D)
  const Tensor v = concat_seq(s.v, s.xv);          // (B, Sk + Sx, h, Dv)
  Tensor out = core::attention(q, k, v, opt).out;  // (B, Sq + Sxq, h, Dv)
  StageResult r;
  if (!s.xq.defined()) {
    r.out = out;
    return r;
  }
  r.out = out.slice(1, 0, nq).contiguous();            // (B, Sq, h, Dv)
  r.xout = out.slice(1, nq, out.dim(1)).contiguous();  // (B, Sxq, h, Dv)
  return r;
}

// One key block's unnormalized partial for the ring: out (B, S, h, Dv) = Σ_j 2^(s_j − m) v_j,
// row_max m and row_sum (B, h, S) (see backend::cpu::AttentionArgs::row_sum).
struct BlockPartial {
  Tensor out, row_max, row_sum;
};

// core::attention on q (B, Sq, h, D), k (B, Sk, h, D), v (B, Sk, h, Dv) with an optional F32
// key mask (B, Sk), in the unnormalized form that ExactAttentionMerger merges; the scale is
// resolved as in every other call, so the scores are the bits one process computes.
BlockPartial block_partial(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                           float scale) {
  core::AttentionOptions opt;
  opt.scale = scale;
  opt.key_mask = mask;
  opt.unnormalized = true;
  core::AttentionResult r = core::attention(q, k, v, opt);
  // out (B, Sq, h, Dv); row_max, row_sum (B, h, Sq)
  return BlockPartial{std::move(r.out), std::move(r.row_max), std::move(r.row_sum)};
}

// Ring over R > 1 stages: the key block held here travels to rank+1 while the block of rank−1
// arrives; each step's attention runs while the next block is in flight.
StageResult ring_stage(const Stage& s, const comm::Communicator& ring) {
  const int R = ring.size(), me = ring.rank();
  const int next = (me + 1) % R, prev = (me - 1 + R) % R;
  const int64_t nq = s.q.dim(1);
  const bool masked = s.mask.defined();
  const Tensor q = concat_seq(s.q, s.xq);  // (B, Sq + Sxq, h, D)
  auto run = [&](const Tensor& k, const Tensor& v, const Tensor& mask) {
    return block_partial(q, k, v, mask, s.scale);  // over Sq + Sxq query rows
  };
  // Unnormalized partials merged exactly in double (ExactAttentionMerger): the result hardly
  // depends on the order the blocks come in, and differs from one process only by how the
  // kernel's f32 sums are grouped.
  ExactAttentionMerger acc;
  // Extra-query rows are replicated: every rank must produce them bit-identically, so their
  // partials are kept per block and merged in one fixed order at the end, not in ring order.
  std::vector<std::optional<BlockPartial>> xparts(R + 1);
  auto take = [&](const BlockPartial& r, int block) {
    acc.add(r.out.slice(1, 0, nq), r.row_max.slice(2, 0, nq), r.row_sum.slice(2, 0, nq));
    if (s.xq.defined()) {
      const int64_t n = r.out.dim(1);
      xparts[block] =
          BlockPartial{r.out.slice(1, nq, n), r.row_max.slice(2, nq, n), r.row_sum.slice(2, nq, n)};
    }
  };

  Tensor cur_k = s.k.contiguous(), cur_v = s.v.contiguous(), cur_m = masked ? s.mask : Tensor();
  // Two receive buffer sets used alternately (the caller's k/v are never overwritten).
  Tensor buf_k[2], buf_v[2], buf_m[2];
  for (int step = 0; step < R; ++step) {
    const int block = (me - step + R) % R;  // whose keys cur_* are
    std::vector<comm::Request> requests;
    Tensor nk, nv, nm;
    if (step + 1 < R) {
      Tensor& bk = buf_k[step % 2];
      Tensor& bv = buf_v[step % 2];
      Tensor& bm = buf_m[step % 2];
      if (!bk.defined()) {
        bk = Tensor::empty(cur_k.shape(), cur_k.dtype(), cur_k.device());
        bv = Tensor::empty(cur_v.shape(), cur_v.dtype(), cur_v.device());
        if (masked) bm = Tensor::empty(cur_m.shape(), cur_m.dtype(), cur_m.device());
      }
      nk = bk;
      nv = bv;
      nm = bm;
      requests.push_back(ring.irecv(nk, prev, kTagK));
      requests.push_back(ring.irecv(nv, prev, kTagV));
      if (masked) requests.push_back(ring.irecv(nm, prev, kTagMask));
      requests.push_back(ring.isend(cur_k, next, kTagK));
      requests.push_back(ring.isend(cur_v, next, kTagV));
      if (masked) requests.push_back(ring.isend(cur_m, next, kTagMask));
      ring.flush();  // NCCL: start the transfers now, overlapping this step's attention
    }
    take(run(cur_k, cur_v, cur_m), block);
    comm::wait_all(requests);
    if (step + 1 < R) {
      cur_k = nk;
      cur_v = nv;
      cur_m = nm;
    }
  }
  // The replicated extra keys: one block of their own, seen once by every query.
  if (s.xk.defined()) take(run(s.xk, s.xv, s.xmask), R);

  StageResult result;
  result.out = acc.out();
  if (s.xq.defined()) {
    ExactAttentionMerger x;
    // Fixed order: the extra keys' block, then key blocks 0..R−1.
    if (xparts[R]) x.add(xparts[R]->out, xparts[R]->row_max, xparts[R]->row_sum);
    for (int b = 0; b < R; ++b) x.add(xparts[b]->out, xparts[b]->row_max, xparts[b]->row_sum);
    result.xout = x.out();
  }
  return result;
}

// The stage of a rank that computes no heads: outputs with 0 heads.
StageResult empty_stage(const Stage& s) {
  const int64_t B = s.q.dim(0), Dv = s.v.dim(3);
  StageResult r;
  r.out = Tensor::empty({B, s.q.dim(1), 0, Dv}, s.q.dtype(), s.q.device());  // (B, Sq, 0, Dv)
  if (s.xq.defined()) {
    r.xout = Tensor::empty({B, s.xq.dim(1), 0, Dv}, s.q.dtype(), s.q.device());  // (B, Sxq, 0, Dv)
  }
  return r;
}

}  // namespace

AttentionOutput attention(const Tensor& q, const Tensor& k, const Tensor& v,
                          const SequenceContext& ctx, const AttentionOptions& options) {
  check_inputs(q, k, v, options);
  const int U = ctx.ulysses_degree(), R = ctx.ring_degree();
  const int64_t H = q.dim(2);

  Stage s;
  s.scale = options.scale;
  s.xk = options.extra_k;
  s.xv = options.extra_v;
  s.xq = options.extra_q;
  s.xmask = f32_mask(options.extra_key_mask, q.device());
  const Tensor mask = f32_mask(options.key_mask, q.device());

  // Ulysses head split, balanced for any head count: rank j computes heads[j] heads (maybe
  // none when H < U); the all-to-alls carry each destination's count.
  std::vector<int64_t> heads;
  if (U > 1) {
    const comm::Communicator& uly = *ctx.ulysses;
    for (int j = 0; j < U; ++j) heads.push_back(ulysses_heads(H, U, j).count);
    const HeadRange mine = ulysses_heads(H, U, uly.rank());
    const int64_t h0 = mine.begin, h1 = mine.begin + mine.count;
    s.q = uly.all_to_all(q, 2, 1, heads, {});              // (B, U·Sq_local, h, D)
    s.k = uly.all_to_all(k, 2, 1, heads, {});              // (B, U·Sk_local, h, D)
    s.v = uly.all_to_all(v, 2, 1, heads, {});              // (B, U·Sk_local, h, Dv)
    if (mask.defined()) s.mask = uly.all_gather(mask, 1);  // (B, U·Sk_local)
    // This rank's head shard of the replicated extras (views).
    if (s.xq.defined()) s.xq = s.xq.slice(2, h0, h1);  // (B, Sxq, h, D)
    if (s.xk.defined()) {
      s.xk = s.xk.slice(2, h0, h1);  // (B, Sx, h, D)
      s.xv = s.xv.slice(2, h0, h1);  // (B, Sx, h, Dv)
    }
  } else {
    s.q = q;
    s.k = k;
    s.v = v;
    s.mask = mask;
  }

  // A rank without heads (H < U) has nothing to compute; its ring (the same Ulysses rank at
  // every stage) has none either, so the whole ring skips together.
  StageResult r = s.q.dim(2) == 0 ? empty_stage(s)
                  : R > 1         ? ring_stage(s, *ctx.ring)
                                  : local_stage(s);

  AttentionOutput result;
  if (U > 1) {
    const comm::Communicator& uly = *ctx.ulysses;
    result.out = uly.all_to_all(r.out, 1, 2, {}, heads);  // (B, Sq_local, H, Dv)
    if (r.xout.defined()) result.extra_out = uly.all_gather(r.xout, 2, heads);  // (B, Sxq, H, Dv)
  } else {
    result.out = r.out;
    result.extra_out = r.xout;
  }
  return result;
}

}  // namespace paradit::parallel
