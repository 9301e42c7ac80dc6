#include "parallel/joint.h"

#include "comm/pack.h"
#include "core/ops.h"
#include "parallel/attention.h"

namespace paradit::parallel {

using core::Tensor;

namespace {

// [a; b] along dim 1 as a new contiguous tensor; either may have 0 rows.
Tensor cat_rows(const Tensor& a, const Tensor& b) {
  if (a.dim(1) == 0) return b;
  if (b.dim(1) == 0) return a;
  core::Shape shape = a.shape();
  shape[1] = a.dim(1) + b.dim(1);
  Tensor out = Tensor::empty(shape, a.dtype());
  comm::copy_bytes(out.slice(1, 0, a.dim(1)), a);
  comm::copy_bytes(out.slice(1, a.dim(1), shape[1]), b);
  return out;
}

}  // namespace

TokenLayout plan_tokens(int64_t batch, int64_t text_len, int64_t image_len,
                        const SequenceContext* ctx, bool text_first) {
  TokenLayout t;
  t.ctx = ctx;
  t.text_first = text_first;
  t.text_len = text_len;
  t.image_len = image_len;
  t.local_text = text_len;
  t.local_image = image_len;
  if (!t.parallel()) return t;
  const int p = ctx->degree();
  t.text_replicated = text_len % p != 0;
  t.local_text = t.text_replicated ? text_len : text_len / p;
  t.local_image = padded_length(image_len, p) / p;
  if (padded_length(image_len, p) != image_len) {
    t.image_key_mask = shard_key_mask(batch, image_len, *ctx);  // (B, local_image)
  }
  return t;
}

Tensor TokenLayout::shard_image(const Tensor& x, int dim) const {
  return parallel() ? shard_sequence(x, dim, *ctx) : x;
}

Tensor TokenLayout::shard_text(const Tensor& x, int dim) const {
  return parallel() && !text_replicated ? shard_sequence(x, dim, *ctx) : x;
}

Tensor TokenLayout::gather_image(const Tensor& local, int dim) const {
  return parallel() ? gather_sequence(local, dim, image_len, *ctx) : local;
}

Tensor joint_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                       const TokenLayout& layout) {
  if (!layout.parallel()) return core::attention(q, k, v).out;
  const SequenceContext& ctx = *layout.ctx;
  const int64_t n = q.dim(1), B = q.dim(0);
  const int64_t nt = layout.local_text, ni = n - nt;
  PARADIT_CHECK(ni == layout.local_image, "joint_attention: ", n, " rows, expected ",
                layout.local_text, " text + ", layout.local_image, " image rows");
  // Row ranges of the text and image parts of this rank's q/k/v.
  const int64_t t0 = layout.text_first ? 0 : ni, i0 = layout.text_first ? nt : 0;

  AttentionOptions opt;
  if (!layout.text_replicated) {
    // Text and image blocks together form this rank's block of the joint sequence.
    if (layout.image_key_mask.defined() && nt == 0) {
      opt.key_mask = layout.image_key_mask;  // (B, n)
    } else if (layout.image_key_mask.defined()) {
      Tensor ones = Tensor::full({B, nt}, 1.0f);
      opt.key_mask = layout.text_first ? cat_rows(ones, layout.image_key_mask)
                                       : cat_rows(layout.image_key_mask, ones);  // (B, n)
    }
    return attention(q, k, v, ctx, opt).out;  // (B, n, H, Dv)
  }

  // Replicated text: image rows are the sequence-parallel block, text rows the extras.
  opt.key_mask = layout.image_key_mask;
  if (nt > 0) {
    opt.extra_q = q.slice(1, t0, t0 + nt);  // (B, S_txt, H, D)
    opt.extra_k = k.slice(1, t0, t0 + nt);  // (B, S_txt, H, D)
    opt.extra_v = v.slice(1, t0, t0 + nt);  // (B, S_txt, H, Dv)
  }
  AttentionOutput o = attention(q.slice(1, i0, i0 + ni), k.slice(1, i0, i0 + ni),
                                v.slice(1, i0, i0 + ni), ctx, opt);  // out: (B, ni, H, Dv)
  if (nt == 0) return o.out;
  return layout.text_first ? cat_rows(o.extra_out, o.out) : cat_rows(o.out, o.extra_out);
}

}  // namespace paradit::parallel
