#pragma once
// Sequence-parallel attention: the one call a model makes for attention, whatever the
// parallel layout. On one process it is core::attention; with a SequenceContext it runs
// Ulysses, Ring or USP (both) on this rank's sequence block and returns this rank's block of
// the result, equal to single-process attention over the whole sequence up to floating-point
// reassociation.
//
//   Ulysses (degree U): all-to-all q, k, v from sequence-sharded (B, S/P, H, D) to head-sharded
//     (B, S/R, h, D), local attention, all-to-all back. Any H: Ulysses rank j computes the
//     balanced share ulysses_heads(H, U, j) (H/U rounded down or up; none when H < U).
//   Ring (degree R): K/V blocks travel round the ring (isend/irecv of the next block posted
//     before computing the current one), partials merged exactly by their log-sum-exp.
//   USP: Ulysses inside each ring stage (the Ulysses group is contiguous ranks).
//
// Joint text tokens (Flux, SD3): text K/V replicated on every rank go in extra_k/extra_v and
// enter every softmax exactly once (after Ulysses each rank joins its head shard; in the ring
// they form one block of their own). Text queries replicated on every rank go in extra_q; their
// output comes back whole (all heads) and identical on every rank in extra_out.

#include "core/tensor.h"
#include "parallel/sequence.h"

namespace paradit::parallel {

struct AttentionOptions {
  float scale = 0.0f;  // 0 → 1/sqrt(D)
  // (B, Sk_local) F32 (1 keep / 0 drop) or Bool for this rank's k/v block, e.g. from
  // shard_key_mask; {} = all keys visible. Give one on every rank of the context or on none.
  core::Tensor key_mask;
  // Replicated (identical on every rank) joint tokens; each {} when absent.
  core::Tensor extra_q;         // (B, Sx_q, H, D)
  core::Tensor extra_k;         // (B, Sx, H, D)
  core::Tensor extra_v;         // (B, Sx, H, Dv)
  core::Tensor extra_key_mask;  // (B, Sx) F32 or Bool
};

struct AttentionOutput {
  core::Tensor out;        // (B, Sq_local, H, Dv): this rank's query block
  core::Tensor extra_out;  // (B, Sx_q, H, Dv) for extra_q (replicated); {} without extra_q
};

// q: (B, Sq_local, H, D)   k: (B, Sk_local, H, D)   v: (B, Sk_local, H, Dv), F32; strided views
// with a contiguous last dim are fine. Collective over ctx's groups: every rank calls it with
// the same shapes and options present.
AttentionOutput attention(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                          const SequenceContext& ctx, const AttentionOptions& options = {});

}  // namespace paradit::parallel
