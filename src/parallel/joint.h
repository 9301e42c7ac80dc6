#pragma once
// Joint text + image attention (Flux, SD3) and sharded image self-attention under sequence
// parallelism: how the tokens of one forward are laid out on a rank, and the attention call
// that keeps that layout exact.
//
// The image tokens are padded to a multiple of P = ring × ulysses and cut into P blocks
// (shard_sequence); padded keys are masked. The text tokens either
//   - are split with the image tokens when the text length divides by P: each rank holds a
//     text block and an image block, and the pair is its block of the joint sequence
//     (attention is over a set of keys, so the order of the blocks does not matter); or
//   - are replicated on every rank otherwise: their q/k/v go through parallel::attention's
//     extra_q/extra_k/extra_v path, so they enter every softmax exactly once.
// Without a context (or with P = 1) the layout is the single-process one and the call is
// core::attention.
//
// PipeFusion (a PassPlan): a pass holds one patch of the image tokens (or all of them, a warm-up
// pass), sharded as above. The attention then gathers the pass's K/V over the sequence group,
// writes them into the layer's stale buffer (the whole image in token order, every head), and
// this rank's queries attend over the buffer (parallel/pipefusion.h).

#include <cstdint>

#include "core/tensor.h"
#include "parallel/pipefusion.h"
#include "parallel/sequence.h"

namespace paradit::parallel {

struct TokenLayout {
  const SequenceContext* ctx = nullptr;  // null or degree 1: single process
  bool text_first = true;                // Flux: [text, image]; SD3: [image, text]
  int64_t text_len = 0;                  // all text tokens
  int64_t image_len = 0;                 // all image tokens (before padding)
  bool text_replicated = false;          // text whole on every rank (length not divisible by P)
  int64_t local_text = 0;                // text rows this rank holds
  int64_t local_image = 0;               // image rows this rank holds (padded block)
  core::Tensor image_key_mask;           // (B, local_image) F32 when padded, else {}
  // Optional, set by the model: (B, text_len) F32 over the whole text, 1 keep / 0 drop (padded
  // prompt tokens, HunyuanVideo, Qwen-Image); {} = every text key visible.
  core::Tensor text_key_mask;

  // ---- PipeFusion (plan_tokens with a PassPlan); the defaults describe an ordinary forward.
  // image_len is then the pass's image tokens: one patch's, or all of them.
  int64_t image_offset = 0;     // first image token of this pass in the whole image
  int64_t full_image_len = 0;   // the whole image's tokens
  StaleKV* kv_store = nullptr;  // the stage's buffers; null: no stale K/V
  LayerKV* kv = nullptr;        // this layer's buffers (set by for_layer)
  int kv_slot = 0;              // which of them this attention uses

  bool parallel() const { return ctx != nullptr && ctx->parallel(); }
  // The layout that layer `index`'s joint / self-attention uses (its stale buffer, if any).
  TokenLayout for_layer(int64_t index) const;
  // The same rows without text, for an image-only attention (SD3.5's attn2: buffer slot 1).
  TokenLayout image_only() const;
  // This rank's rows of a full image sequence x along `dim` (padded block); x when not parallel.
  // Under PipeFusion x may be the whole image's or the pass's sequence: the pass's rows of it.
  core::Tensor shard_image(const core::Tensor& x, int dim) const;
  // This rank's rows of a full text sequence (its block, or all when replicated / not parallel).
  core::Tensor shard_text(const core::Tensor& x, int dim) const;
  // The pass's whole image sequence from every rank's block (drops the padding). Collective.
  core::Tensor gather_image(const core::Tensor& local, int dim) const;
};

// The layout for `batch` samples with text_len text and image_len image tokens. text_len may be
// 0 (image self-attention only: DiT, PixArt). With a PassPlan (PipeFusion), image_len is the
// whole image's, which must equal the plan's grid, and the layout holds the plan's patch (or
// the whole image).
// The layout's masks are made on `device` (the model's).
TokenLayout plan_tokens(int64_t batch, int64_t text_len, int64_t image_len,
                        const SequenceContext* ctx, bool text_first,
                        const PassPlan* plan = nullptr, core::Device device = core::Device::CPU);

// Attention over this rank's joint rows. q, k, v: (B, n, H, D) with n = local_text +
// local_image rows ordered as the layout says (text rows may be 0) → (B, n, H, Dv), this rank's
// rows of softmax(q kᵀ·scale) v over the whole joint sequence.
core::Tensor joint_attention(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                             const TokenLayout& layout);

}  // namespace paradit::parallel
