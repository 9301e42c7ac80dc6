#pragma once
// Device-dispatched tensor ops. One front end per op (src/core/ops_*.cpp) checks its arguments
// once (a paradit::Error naming the op and the shapes on mismatch), sizes and allocates the
// output on the inputs' device, fills the op's argument struct (src/backend/args.h) and calls
// the body for (device, dtype): src/backend/cpu/ops.h or src/backend/cuda/ops.h. Which pairs
// exist: core::supports (op_registry.h); others fail with a line naming op, device and dtype.
//
// Conventions
// - All tensors of one call are on one device (the first input's); a mix is an Error.
// - Activations: F32 on the CPU; F32, BF16 or F16 on CUDA, where the result has the activation
//   dtype and the math runs in f32. Weights may be F32 or BF16 (CUDA: also F16) where stated;
//   on CUDA a linear/conv runs in the weight's dtype (x converted). Vector parameters (biases,
//   norm weights, cos/sin tables) are F32 or converted to it.
// - An absent optional tensor is an undefined Tensor ({}).
// - Inputs may be non-contiguous views unless the comment says "contiguous"; ops copy when
//   their kernel needs it. Outputs are new contiguous tensors.
// - Fusions (a linear's activation epilogue, a norm's adaLN modulation, a group norm's
//   activation) are options: CUDA fuses them, the CPU runs the same math as separate ops.

#include <initializer_list>
#include <utility>
#include <vector>

#include "backend/args.h"
#include "core/tensor.h"

namespace paradit::core {

using backend::Activation;
using backend::AttentionBackend;

// ---------------------------------------------------------------- GEMM
// x: (..., K)   w: (N, K) F32|BF16(|F16 on CUDA)   bias: (N) or {}   → act((..., N))
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = {},
              Activation act = Activation::kNone);
// a: (B, M, K)   b: (B|1, K, N), or (B|1, N, K) when trans_b   → (B, M, N)   (one dtype)
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_b = false);

// ---------------------------------------------------------------- normalization
// adaLN modulation fused into a norm: norm(x)·(1 + scale) + shift for x (B, S, D) with shift,
// scale (B, D) or (B, 1, D) (batch B or 1). Both undefined: none.
struct Modulation {
  Tensor shift, scale;
  bool defined() const { return shift.defined() || scale.defined(); }
};
// Over the last dim. weight/bias: (D) or {} (no affine).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                  const Modulation& mod = {});
// x / sqrt(mean(x²) + eps) * weight, over the last dim. weight: (D) or {}.
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps, const Modulation& mod = {});
// x: (N, C, *spatial)   weight/bias: (C) or {}   → act(group_norm(x)), same shape
Tensor group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias,
                  float eps, Activation act = Activation::kNone);
// x / max(‖x‖₂ over dim 1, eps)·scale·gamma[c] for x (N, C, *spatial), gamma (C): the Wan
// VAE's RMS_norm (F.normalize over the channels), the norm accumulated in double.
Tensor channel_norm(const Tensor& x, const Tensor& gamma, float scale, float eps = 1e-12f);
// The two halves of group_norm, for a patch-parallel caller that combines the statistics of
// its ranks in between: mean and population variance of each (n, group), (N·groups) F64 on x's
// device, accumulated in double.
struct GroupNormStats {
  Tensor mean, var;
};
GroupNormStats group_norm_stats(const Tensor& x, int groups);
Tensor group_norm_apply(const Tensor& x, int groups, const GroupNormStats& stats,
                        const Tensor& weight, const Tensor& bias, float eps,
                        Activation act = Activation::kNone);

// ---------------------------------------------------------------- activations
Tensor gelu(const Tensor& x, bool tanh_approx = false);
Tensor silu(const Tensor& x);
Tensor quick_gelu(const Tensor& x);  // x * sigmoid(1.702 x)
Tensor relu(const Tensor& x);        // max(x, 0)
Tensor exp(const Tensor& x);         // eˣ
Tensor sqrt(const Tensor& x);        // √x
Tensor tanh(const Tensor& x);        // tanh(x)
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
  // CUDA only: which implementation (kAuto: the process default, see
  // set_default_attention_backend, which starts as cuDNN where it takes the arguments).
  AttentionBackend backend = AttentionBackend::kAuto;
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
// Exact merge of unnormalized partials (AttentionOptions::unnormalized) over disjoint key blocks,
// in double on the partials' device (see backend::AttentionMergeAddArgs): with block i giving
// o_i = Σ_j 2^(s_j − m_i) v_j and l_i = Σ_j 2^(s_j − m_i), the result is
// Σ_i 2^(m_i − m) o_i / Σ_i 2^(m_i − m) l_i. Start from an empty state; every partial must
// have the first one's shape.
struct AttentionMergeState {
  Shape shape;       // (B, S, H, Dv) of the partials
  DType dtype = DType::F32;
  Tensor acc, ref, sum;  // F64 (B·S·H·Dv), (B·S·H), (B·S·H)
};
// out (B, S, H, Dv) with contiguous (H, Dv) rows; row_max, row_sum (B, H, S) F32, last dim
// contiguous.
void attention_merge_add(AttentionMergeState& state, const Tensor& out, const Tensor& row_max,
                         const Tensor& row_sum);
// (B, S, H, Dv) in the partials' dtype; zeros for rows that saw no key.
Tensor attention_merge_result(const AttentionMergeState& state);

// The implementation kAuto stands for on CUDA (`--attention_backend`); kAuto restores the
// default choice. Per process; the CPU ignores it.
void set_default_attention_backend(AttentionBackend backend);
AttentionBackend default_attention_backend();

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
// Numpy-style broadcasting of both operands; one dtype.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float s);        // x · s
void add_(Tensor& a, const Tensor& b);         // a += b (b broadcast to a; a contiguous)
// x: (B, S, D)   shift, scale: (B, D)   → x · (1 + scale) + shift
Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale);
// x, y: (B, S, D)   gate: (B, D)   → x + gate · y
Tensor gated_add(const Tensor& x, const Tensor& gate, const Tensor& y);
// (((c0·t0 + c1·t1) + …)·post_mul)/post_div, elementwise over tensors of one shape, each
// product and sum rounded to the dtype's f32 math in this order (the schedulers' update rules
// as diffusers evaluates them). Terms with an undefined tensor are skipped; at most 6 terms.
struct LincombPost {
  float mul = 1.0f, div = 1.0f;
};
Tensor lincomb(std::initializer_list<std::pair<float, Tensor>> terms, LincombPost post = {});
Tensor lincomb(const std::vector<std::pair<float, Tensor>>& terms, LincombPost post = {});
// min(max(x, lo), hi)
Tensor clamp(const Tensor& x, float lo, float hi);
// How many elements of x are NaN or ±inf (read back to the host: a sync point on the GPU).
int64_t count_non_finite(const Tensor& x);
// Per-channel affine map along `dim` (a, b: one value per channel, or one for all):
// kSubMul: (x − a)·b;  kDivAdd: x / b + a  (the VAEs' latent normalisation and its inverse).
using backend::AffineKind;
Tensor affine(const Tensor& x, int dim, AffineKind kind, const std::vector<float>& a,
              const std::vector<float>& b);

// ---------------------------------------------------------------- shape ops
Tensor concat(const std::vector<Tensor>& parts, int dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim);  // views
std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim);                        // views
// table: (V, D) F32|BF16   ids: (...) I64|I32 on the CPU (checked there, moved to the table's
// device)   → (..., D) F32 on the CPU, the table's dtype on CUDA. Out-of-range id → Error.
Tensor embedding(const Tensor& table, const Tensor& ids);

}  // namespace paradit::core
