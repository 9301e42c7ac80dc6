#pragma once
// Flash-style attention on the CPU: tiled over queries and keys with an online softmax, so the
// Sq×Sk score matrix never exists; only one (query block × key block) tile per thread does.

#include <cstdint>

namespace paradit::backend::cpu {

// Strides are in elements. q, k, v rows (the D or Dv values of one token and head) must be
// contiguous; the batch, sequence and head dims may have any strides (views of a fused qkv).
struct AttentionArgs {
  int64_t batch = 0, seq_q = 0, seq_k = 0, heads = 0, head_dim = 0, head_dim_v = 0;

  const float* q = nullptr;  // (B, Sq, H, D)
  int64_t q_stride_b = 0, q_stride_s = 0, q_stride_h = 0;
  const float* k = nullptr;  // (B, Sk, H, D)
  int64_t k_stride_b = 0, k_stride_s = 0, k_stride_h = 0;
  const float* v = nullptr;  // (B, Sk, H, Dv)
  int64_t v_stride_b = 0, v_stride_s = 0, v_stride_h = 0;

  // (B, Sk) contiguous, nonzero = keep; nullptr = every key visible. Dropped keys are left out
  // of the softmax entirely (not given a large negative score).
  const uint8_t* key_keep = nullptr;

  // Additive bias indexed [b, h, i, j] through these strides; a broadcast dim has stride 0.
  const float* bias = nullptr;
  int64_t bias_stride_b = 0, bias_stride_h = 0, bias_stride_q = 0, bias_stride_k = 0;

  float scale = 1.0f;  // multiplies q·k (the caller resolves "0 → 1/sqrt(D)")

  float* out = nullptr;  // (B, Sq, H, Dv) contiguous, written
  float* lse = nullptr;  // (B, H, Sq) contiguous natural-log LSE, or nullptr

  // Unnormalized form, for merging partials over key blocks exactly (ring attention): when
  // row_sum is given, out holds Σ_j 2^(s_j − row_max) v_j instead of the softmax average, with
  // s_j the base-2 scores (log2(e)·scale·q·k_j + log2(e)·bias), row_max an integer ≥ max_j s_j
  // (so that rescaling a partial to another block's reference is exact) and
  // row_sum = Σ_j 2^(s_j − row_max). A row that sees no key gets out 0, row_sum 0, row_max
  // -inf. Both (B, H, Sq) contiguous; row_max must be given with row_sum.
  float* row_max = nullptr;
  float* row_sum = nullptr;
};

// out = softmax(scale · q kᵀ + bias over the visible keys) v; a query row that sees no key gets
// out = 0 and lse = -inf. Parallel (OpenMP) over (batch, head, query block).
//
// Each probability is 2^(s_j − m) against an integer reference m (the running max rounded up),
// computed as 2^frac(s_j) · 2^(round(s_j) − m): the same bits whatever m is, so the rescaling
// between key panels (and between key blocks merged from row_max/row_sum) is by exact powers
// of two and splitting the keys changes only the summation grouping.
void attention_f32(const AttentionArgs& args);

}  // namespace paradit::backend::cpu
