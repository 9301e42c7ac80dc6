#pragma once
// Device-dispatched tensor ops. Each op checks its arguments (a paradit::Error naming the op
// and the shapes on mismatch) and calls the backend body (src/backend/cpu for host tensors).
//
// Conventions
// - Activations are F32 on the CPU backend. Weights may be F32 or BF16 where stated.
// - An absent optional tensor is an undefined Tensor ({}).
// - Inputs may be non-contiguous views unless the comment says "contiguous"; ops copy when
//   their kernel needs it. Outputs are new contiguous tensors.

#include <vector>

#include "core/tensor.h"

namespace paradit::core {

// ---------------------------------------------------------------- GEMM
// x: (..., K) F32   w: (N, K) F32|BF16   bias: (N) F32 or {}   → (..., N) F32
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = {});
// a: (B, M, K)   b: (B, K, N), or (B, N, K) when trans_b   → (B, M, N)   (all F32)
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_b = false);

// ---------------------------------------------------------------- normalization
// Over the last dim. weight/bias: (D) or {} (no affine).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);
// x / sqrt(mean(x²) + eps) * weight, over the last dim. weight: (D) or {}.
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);
// x: (N, C, *spatial)   weight/bias: (C) or {}   → same shape
Tensor group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias,
                  float eps);

// ---------------------------------------------------------------- activations
Tensor gelu(const Tensor& x, bool tanh_approx = false);
Tensor silu(const Tensor& x);
Tensor quick_gelu(const Tensor& x);  // x * sigmoid(1.702 x)
Tensor softmax(const Tensor& x);     // over the last dim

// ---------------------------------------------------------------- rotary embedding
enum class RopeStyle {
  kInterleaved,  // pairs (x[2i], x[2i+1]) rotate together (Flux); cos/sin repeat per pair
  kHalfSplit,    // pairs (x[i], x[i + D/2]) rotate together (GPT-NeoX style)
};
// x: (B, S, H, D)   cos, sin: (S, D) as diffusers builds them   → (B, S, H, D)
Tensor apply_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, RopeStyle style);

// ---------------------------------------------------------------- attention
struct AttentionOptions {
  float scale = 0.0f;  // 0 → 1/sqrt(D)
  Tensor key_mask;     // (B, Sk) F32 (1 keep / 0 drop) or Bool; {} = all keys
  Tensor bias;         // additive, (B|1, H|1, Sq, Sk) F32; {} = none
  bool return_lse = false;
  // The kernel's unnormalized form, for merging partials over key blocks exactly (ring
  // attention; backend::cpu::AttentionArgs::row_sum): out holds Σ_j 2^(s_j − row_max) v_j, with
  // s_j the base-2 scores and row_max an integer ≥ max_j s_j, instead of the softmax average.
  bool unnormalized = false;
};
struct AttentionResult {
  Tensor out;  // (B, Sq, H, Dv)
  Tensor lse;  // (B, H, Sq) F32, natural log-sum-exp of the scaled scores; -inf for a row
               // with no visible key (its out row is 0). Defined only when return_lse.
  // (B, H, Sq) F32, defined only when unnormalized: row_sum = Σ_j 2^(s_j − row_max); a row with
  // no visible key has out 0, row_sum 0, row_max -inf.
  Tensor row_max, row_sum;
};
// Flash-style: tiled, online softmax, never materializes Sq×Sk.
// q: (B, Sq, H, D)   k: (B, Sk, H, D)   v: (B, Sk, H, Dv); each may be a strided view whose
// last dim is contiguous (e.g. a slice of a fused qkv projection).
AttentionResult attention(const Tensor& q, const Tensor& k, const Tensor& v,
                          const AttentionOptions& options = {});

// ---------------------------------------------------------------- convolution / resampling
struct Conv2dOptions {
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;  // zero padding
  static Conv2dOptions same(int stride, int pad) {
    return {stride, stride, pad, pad, pad, pad};
  }
};
// x: (N, C, H, W)   w: (O, C, kh, kw) F32|BF16   bias: (O) or {}   → (N, O, H', W')
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& opt);
// x: (N, C, H, W) → (N, C, H·factor, W·factor)
Tensor upsample_nearest2d(const Tensor& x, int factor);

// 3-D convolution of the causal video VAEs. A causal conv pads time at the front only
// (pad_front = kt − 1 or 2·pad, pad_back = 0), or passes the previous chunk's cached frames
// concatenated in front of x with a smaller pad_front.
struct Conv3dOptions {
  int stride_t = 1, stride_h = 1, stride_w = 1;
  int pad_front = 0, pad_back = 0;  // time
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  bool replicate = false;  // pad by repeating edge elements (F.pad mode "replicate"), not zeros
};
// x: (N, C, T, H, W)   w: (O, C, kt, kh, kw) F32|BF16   bias: (O) or {}   → (N, O, T', H', W')
Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dOptions& opt);

// ---------------------------------------------------------------- elementwise
// Numpy-style broadcasting of both operands; F32.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float s);        // x · s
void add_(Tensor& a, const Tensor& b);         // a += b (b broadcast to a; a contiguous)
// x: (B, S, D)   shift, scale: (B, D)   → x · (1 + scale) + shift
Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale);
// x, y: (B, S, D)   gate: (B, D)   → x + gate · y
Tensor gated_add(const Tensor& x, const Tensor& gate, const Tensor& y);

// ---------------------------------------------------------------- shape ops
Tensor concat(const std::vector<Tensor>& parts, int dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim);  // views
std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim);                        // views
// table: (V, D) F32|BF16   ids: (...) I64|I32   → (..., D) F32. Out-of-range id → Error.
Tensor embedding(const Tensor& table, const Tensor& ids);

}  // namespace paradit::core
