#include "parallel/joint.h"

#include <vector>

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
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  comm::copy_bytes(out.slice(1, 0, a.dim(1)), a);
  comm::copy_bytes(out.slice(1, a.dim(1), shape[1]), b);
  return out;
}

}  // namespace

TokenLayout plan_tokens(int64_t batch, int64_t text_len, int64_t image_len,
                        const SequenceContext* ctx, bool text_first, const PassPlan* plan,
                        core::Device device) {
  TokenLayout t;
  t.ctx = ctx;
  t.text_first = text_first;
  t.text_len = text_len;
  t.image_len = image_len;
  t.full_image_len = image_len;
  if (plan != nullptr) {
    // PipeFusion: the pass's tokens are one patch of the image (or all of it).
    const PatchGrid& grid = *plan->grid;
    PARADIT_CHECK(image_len == grid.tokens(), "PipeFusion: the image has ", image_len,
                  " tokens, the patch grid ", grid.rows, " × ", grid.cols);
    PARADIT_CHECK(plan->patch >= -1 && plan->patch < grid.count, "PipeFusion: patch ",
                  plan->patch, " of ", grid.count);
    t.kv_store = plan->kv;
    if (plan->patch >= 0) {
      t.image_offset = grid.token_begin(plan->patch);
      t.image_len = grid.patch_tokens(plan->patch);
    }
  }
  t.local_text = text_len;
  t.local_image = t.image_len;
  if (!t.parallel()) return t;
  const int p = ctx->degree();
  t.text_replicated = text_len % p != 0;
  t.local_text = t.text_replicated ? text_len : text_len / p;
  t.local_image = padded_length(t.image_len, p) / p;
  if (padded_length(t.image_len, p) != t.image_len) {
    t.image_key_mask =
        shard_key_mask(batch, t.image_len, *ctx).to_device(device);  // (B, local_image)
  }
  return t;
}

TokenLayout TokenLayout::for_layer(int64_t index) const {
  TokenLayout t = *this;
  t.kv = kv_store ? &kv_store->layer(index) : nullptr;
  t.kv_slot = 0;
  return t;
}

TokenLayout TokenLayout::image_only() const {
  TokenLayout t = *this;
  t.local_text = 0;
  t.text_len = 0;
  t.text_replicated = false;
  t.kv_slot = 1;
  return t;
}

Tensor TokenLayout::shard_image(const Tensor& x, int dim) const {
  const int d = dim < 0 ? dim + x.ndim() : dim;
  // The pass's rows of the whole image's sequence.
  const Tensor rows =
      x.dim(d) == image_len ? x : x.slice(d, image_offset, image_offset + image_len);
  return parallel() ? shard_sequence(rows, d, *ctx) : rows;
}

Tensor TokenLayout::shard_text(const Tensor& x, int dim) const {
  return parallel() && !text_replicated ? shard_sequence(x, dim, *ctx) : x;
}

Tensor TokenLayout::gather_image(const Tensor& local, int dim) const {
  return parallel() ? gather_sequence(local, dim, image_len, *ctx) : local;
}

namespace {

// PipeFusion's attention: the pass's K/V (gathered over the sequence group) go into the layer's
// buffer at their token positions, then this rank's queries attend over the whole buffer: fresh
// rows for this pass, stale ones for the other patches. q, k, v as joint_attention's.
Tensor stale_kv_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                          const TokenLayout& layout) {
  const int64_t B = q.dim(0), n = q.dim(1), H = k.dim(2);
  const int64_t nt = layout.local_text, ni = n - nt;
  PARADIT_CHECK(ni == layout.local_image, "joint_attention: ", n, " rows, expected ",
                layout.local_text, " text + ", layout.local_image, " image rows");
  const int64_t t0 = layout.text_first ? 0 : ni, i0 = layout.text_first ? nt : 0;
  const int64_t S_txt = layout.text_len, S_img = layout.full_image_len;
  // Buffer rows as an ordinary forward orders its tokens.
  const int64_t buf_text = layout.text_first ? 0 : S_img;
  const int64_t buf_image = layout.text_first ? S_txt : 0;
  KVBuffer& buf = layout.kv->slot[layout.kv_slot];
  const core::Shape kshape{B, S_txt + S_img, H, k.dim(3)}, vshape{B, S_txt + S_img, H, v.dim(3)};
  if (!buf.k.defined()) {
    buf.k = Tensor::zeros(kshape, k.dtype(), k.device());
    buf.v = Tensor::zeros(vshape, v.dtype(), v.device());
  }
  PARADIT_CHECK(buf.k.shape() == kshape && buf.v.shape() == vshape,
                "PipeFusion: stale K/V buffer ", buf.k.str(), " does not match this pass ",
                core::shape_str(kshape));
  // The pass's whole rows (every rank's) into the buffer.
  const auto put = [&](const Tensor& dst, const Tensor& src) {
    const Tensor img = layout.gather_image(src.slice(1, i0, i0 + ni).contiguous(), 1);
    const int64_t at = buf_image + layout.image_offset;
    comm::copy_bytes(dst.slice(1, at, at + layout.image_len), img);  // (B, image_len, H, D)
    if (nt == 0) return;
    const Tensor txt = layout.parallel() && !layout.text_replicated
                           ? gather_sequence(src.slice(1, t0, t0 + nt).contiguous(), 1, S_txt,
                                             *layout.ctx)
                           : src.slice(1, t0, t0 + nt);
    comm::copy_bytes(dst.slice(1, buf_text, buf_text + S_txt), txt);  // (B, S_txt, H, D)
  };
  put(buf.k, k);
  put(buf.v, v);
  // This rank's rows (padded ones included; they are dropped when gathered) against every key,
  // padded prompt tokens masked (Qwen-Image's [negative, prompt] batch of two text lengths).
  core::AttentionOptions options;
  if (layout.text_key_mask.defined()) {
    const Tensor text = layout.text_key_mask.to_device(q.device()).to(core::DType::F32);
    const Tensor image = Tensor::full({B, S_img}, 1.0f, core::DType::F32, q.device());
    options.key_mask = layout.text_first ? cat_rows(text, image) : cat_rows(image, text);  // (B, S)
  }
  return core::attention(q, buf.k, buf.v, options).out;  // (B, n, H, Dv)
}

}  // namespace

Tensor joint_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                       const TokenLayout& layout) {
  const bool text_masked = layout.text_key_mask.defined();
  if (layout.kv != nullptr) return stale_kv_attention(q, k, v, layout);
  const int64_t n = q.dim(1), B = q.dim(0);
  const int64_t nt = layout.local_text, ni = n - nt;
  if (text_masked) {
    PARADIT_CHECK(layout.text_key_mask.ndim() == 2 && layout.text_key_mask.dim(0) == B &&
                      layout.text_key_mask.dim(1) == layout.text_len,
                  "joint_attention: text_key_mask ", layout.text_key_mask.str(), " must be [", B,
                  ", ", layout.text_len, "]");
  }
  // This rank's joint key mask (B, n) in its row order, or {} when every key is visible.
  const auto joint_mask = [&](const Tensor& text_keep) {
    if (!layout.image_key_mask.defined() && !text_keep.defined()) return Tensor();
    if (nt == 0) return layout.image_key_mask;  // (B, n)
    const Tensor image =
        layout.image_key_mask.defined()
            ? layout.image_key_mask.to_device(q.device()).to(core::DType::F32)
            : Tensor::full({B, ni}, 1.0f, core::DType::F32, q.device());
    const Tensor text = text_keep.defined()
                            ? text_keep.to_device(q.device()).to(core::DType::F32)
                            : Tensor::full({B, nt}, 1.0f, core::DType::F32, q.device());
    return layout.text_first ? cat_rows(text, image) : cat_rows(image, text);  // (B, n)
  };
  if (!layout.parallel()) {
    if (!text_masked) return core::attention(q, k, v).out;  // (B, n, H, Dv)
    core::AttentionOptions options;
    options.key_mask = joint_mask(layout.text_key_mask);  // (B, n) or {}
    return core::attention(q, k, v, options).out;         // (B, n, H, Dv)
  }
  const SequenceContext& ctx = *layout.ctx;
  PARADIT_CHECK(ni == layout.local_image, "joint_attention: ", n, " rows, expected ",
                layout.local_text, " text + ", layout.local_image, " image rows");
  // Row ranges of the text and image parts of this rank's q/k/v.
  const int64_t t0 = layout.text_first ? 0 : ni, i0 = layout.text_first ? nt : 0;

  AttentionOptions opt;
  if (!layout.text_replicated) {
    // Text and image blocks together form this rank's block of the joint sequence.
    opt.key_mask = joint_mask(text_masked ? layout.shard_text(layout.text_key_mask, 1)
                                          : Tensor());  // (B, n) or {}
    return attention(q, k, v, ctx, opt).out;            // (B, n, H, Dv)
  }

  // Replicated text: image rows are the sequence-parallel block, text rows the extras.
  opt.key_mask = layout.image_key_mask;
  if (nt > 0) opt.extra_key_mask = layout.text_key_mask;  // (B, S_txt) or {}
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
