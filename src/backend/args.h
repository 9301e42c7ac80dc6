#pragma once
// The argument structs of the ops' device bodies: one struct per op, taken by the CPU body
// (src/backend/cpu/ops.h) and the CUDA body (src/backend/cuda/ops.h) alike.
//
// The front end of each op (src/core/ops_*.cpp) checks its tensors, computes every size and
// stride, allocates the output on the input's device and fills one of these; a body checks
// nothing and knows nothing of Tensor. Raw pointers (all on the device that runs the body),
// sizes and strides in elements, dtype tags. Which (device, dtype) pairs have a body is
// core::supports(op, device, dtype) (src/core/op_registry.h).
//
// Numerics every body follows: math in f32 (double where a struct says so), one rounding to
// the output dtype at the end; parameters (norm weights, biases, cos/sin tables) are F32.

#include <cstdint>

#include "core/dtype.h"

namespace paradit::backend {

using core::DType;

constexpr int kMaxDims = 8;   // strided copies and broadcasts
constexpr int kMaxTerms = 6;  // lincomb

enum class Activation : uint8_t {
  kNone,
  kGeluErf,   // 0.5·x·(1 + erf(x/√2))
  kGeluTanh,  // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
  kSilu,       // x·sigmoid(x)
  kQuickGelu,  // x·sigmoid(1.702·x)
  kRelu,       // max(x, 0)
  kExp,        // eˣ
  kSqrt,       // √x
  kTanh,       // tanh(x)
};

// ---------------------------------------------------------------- GEMM
// y (M, N) = act(x (M, K) · wᵀ + bias), w (N, K) in the checkpoint layout. Row strides ldx,
// ldw, ldy (elements); every row's elements contiguous. bias: N F32 values or null.
// CPU: x, y F32; w F32 or BF16. CUDA: x, w, y one of F32/BF16/F16, x_dtype == w_dtype (the
// front end converts x); the activation is a fused epilogue where cuBLASLt has one.
struct LinearArgs {
  int64_t M = 0, N = 0, K = 0;
  const void* x = nullptr;
  int64_t ldx = 0;
  const void* w = nullptr;
  int64_t ldw = 0;
  const float* bias = nullptr;
  void* y = nullptr;
  int64_t ldy = 0;
  DType x_dtype = DType::F32, w_dtype = DType::F32, y_dtype = DType::F32;
  Activation activation = Activation::kNone;
};

// For b < batch: C_b (M, N) = A_b (M, K) · op(B_b), op(B) = Bᵀ (B stored (N, K)) when trans_b,
// else B stored (K, N). X_b = X + b·stride_x; stride_b 0 shares one B over the batch. One
// dtype for A, B and C; C is overwritten.
struct MatmulArgs {
  bool trans_b = false;
  int64_t batch = 1, M = 0, N = 0, K = 0;
  const void* a = nullptr;
  int64_t lda = 0, stride_a = 0;
  const void* b = nullptr;
  int64_t ldb = 0, stride_b = 0;
  void* c = nullptr;
  int64_t ldc = 0, stride_c = 0;
  DType dtype = DType::F32;
};

// ---------------------------------------------------------------- rows
// "Rows" of an op below: `rows` rows of `D` contiguous elements, row r at x + r·row_stride; the
// output y is contiguous (rows, D).

// Layer norm ((x − mean)/√(var + eps), statistics from two passes) or RMS norm
// (x/√(mean(x²) + eps)), then ·weight (+ bias, layer norm only). Optional fused adaLN
// modulation: y = norm(x)·(1 + scale[b]) + shift[b], b = r / rows_per_batch, the parameter row
// of batch b at p + b·*_bstride (0: one row for every batch), dtype mod_dtype. The CPU front
// end runs the modulation as a separate op (bodies see shift = scale = null there).
enum class NormKind : uint8_t { kLayer, kRms };
struct NormArgs {
  NormKind kind = NormKind::kLayer;
  const void* x = nullptr;
  int64_t rows = 0, D = 0, row_stride = 0;
  const float* weight = nullptr;  // (D) or null
  const float* bias = nullptr;    // (D) or null
  float eps = 0.0f;
  const void* shift = nullptr;  // modulation, both or neither
  const void* scale = nullptr;
  int64_t shift_bstride = 0, scale_bstride = 0, rows_per_batch = 1;
  DType mod_dtype = DType::F32;
  DType dtype = DType::F32;  // x and y
  void* y = nullptr;
};

// Group norm of x contiguous (N, C, L), L = prod(spatial), C % groups == 0, in two steps so a
// patch-parallel caller can combine statistics across ranks in between.
// Statistics: mean and population variance of each (n, group)'s C/groups·L elements, computed
// in double: mean, var (N·groups) F64 on the body's device.
struct GroupNormStatsArgs {
  const void* x = nullptr;
  int64_t N = 0, C = 0, L = 0, groups = 0;
  DType dtype = DType::F32;
  double* mean = nullptr;
  double* var = nullptr;
};
// Apply: y = act((x − mean)·rstd·weight[c] + bias[c]), rstd = 1/√(var + eps); y contiguous
// (N, C, L), may alias x. The activation is fused on CUDA; the CPU front end runs it after.
struct GroupNormApplyArgs {
  const void* x = nullptr;
  int64_t N = 0, C = 0, L = 0, groups = 0;
  const double* mean = nullptr;
  const double* var = nullptr;
  float eps = 0.0f;
  const float* weight = nullptr;  // (C) or null
  const float* bias = nullptr;    // (C) or null
  Activation activation = Activation::kNone;
  DType dtype = DType::F32;
  void* y = nullptr;
};

// y = act(x) over rows (act != kNone); y may alias x when x is contiguous.
struct ActivationArgs {
  Activation act = Activation::kGeluErf;
  const void* x = nullptr;
  int64_t rows = 0, D = 0, row_stride = 0;
  DType dtype = DType::F32;
  void* y = nullptr;
};

// Channel norm of x contiguous (N, C, L) (the Wan VAE's RMS_norm, F.normalize over dim 1):
// y[n, c, l] = x[n, c, l] / max(‖x[n, :, l]‖₂, eps) · scale · gamma[c], the norm accumulated in
// double and rounded to f32. y contiguous (N, C, L).
struct ChannelNormArgs {
  const void* x = nullptr;
  int64_t N = 0, C = 0, L = 0;
  const float* gamma = nullptr;  // (C)
  float scale = 1.0f;
  float eps = 1e-12f;
  DType dtype = DType::F32;
  void* y = nullptr;
};

// Softmax over each row, max-subtracted.
struct SoftmaxArgs {
  const void* x = nullptr;
  int64_t rows = 0, D = 0, row_stride = 0;
  DType dtype = DType::F32;
  void* y = nullptr;
};

// ---------------------------------------------------------------- rotary embedding
// x: (B, S, H, D) at element strides (stride_b, stride_s, stride_h, 1); cos, sin: contiguous
// (S, D) F32; out contiguous (B, S, H, D). interleaved: pairs (2i, 2i+1) rotate together;
// otherwise pairs (i, i + D/2).
struct RopeArgs {
  const void* x = nullptr;
  int64_t B = 0, S = 0, H = 0, D = 0;
  int64_t stride_b = 0, stride_s = 0, stride_h = 0;
  const float* cos = nullptr;
  const float* sin = nullptr;
  bool interleaved = true;
  DType dtype = DType::F32;
  void* out = nullptr;
};

// ---------------------------------------------------------------- attention
// Which implementation runs attention on CUDA (ignored on the CPU): cuDNN's fused flash
// attention (graph API), or paradit's own flash kernel. kAuto: cuDNN where it takes the
// arguments, else paradit's.
enum class AttentionBackend : uint8_t { kAuto, kCudnn, kParadit };

// out = softmax(scale·q kᵀ + bias over the visible keys) v.
// q (B, Sq, H, D), k (B, Sk, H, D), v (B, Sk, H, Dv) at the given element strides, each token's
// head vector contiguous; one dtype for q, k, v and out. key_keep: (B, Sk) contiguous bytes,
// nonzero = keep, or null (every key visible); dropped keys are left out of the softmax. bias:
// F32 additive, indexed [b, h, i, j] through its strides (0 along broadcast dims), or null.
// out: (B, Sq, H, Dv) contiguous. lse (B, H, Sq) F32 natural-log LSE of the scaled scores, or
// null; a row with no visible key gets out 0 and lse −inf.
// Unnormalized form (row_sum given, with row_max; the CPU's exact ring merge): out holds
// Σ_j 2^(s_j − row_max) v_j with s_j the base-2 scores, row_max an integer ≥ max_j s_j and
// row_sum = Σ_j 2^(s_j − row_max) (see backend/cpu/attention.h).
struct AttentionArgs {
  int64_t batch = 0, seq_q = 0, seq_k = 0, heads = 0, head_dim = 0, head_dim_v = 0;
  const void* q = nullptr;
  int64_t q_stride_b = 0, q_stride_s = 0, q_stride_h = 0;
  const void* k = nullptr;
  int64_t k_stride_b = 0, k_stride_s = 0, k_stride_h = 0;
  const void* v = nullptr;
  int64_t v_stride_b = 0, v_stride_s = 0, v_stride_h = 0;
  const uint8_t* key_keep = nullptr;
  const float* bias = nullptr;
  int64_t bias_stride_b = 0, bias_stride_h = 0, bias_stride_q = 0, bias_stride_k = 0;
  float scale = 1.0f;  // resolved by the front end (0 → 1/√D)
  void* out = nullptr;
  float* lse = nullptr;
  float* row_max = nullptr;
  float* row_sum = nullptr;
  DType dtype = DType::F32;
  AttentionBackend backend = AttentionBackend::kAuto;
};

// Exact merge of unnormalized attention partials over disjoint key blocks (ring attention),
// accumulated in double on the partials' device. State, (rows = B·S·H) rows of Dv:
// acc (rows, Dv) Σ_i 2^(m_i − ref)·o_i, ref (rows) the largest m_i so far (−inf before any
// visible key), sum (rows) Σ_i 2^(m_i − ref)·l_i. Row (b, s, h) = (b·S + s)·H + h.
// Add one partial: out (B, S, H, Dv) at strides (out_stride_b, out_stride_s, Dv, 1) in `dtype`,
// row_max / row_sum (B, H, S) F32 at strides (stride_b, stride_h, 1). The rescalings are exact
// powers of two.
struct AttentionMergeAddArgs {
  int64_t B = 0, S = 0, H = 0, Dv = 0;
  const void* out = nullptr;
  int64_t out_stride_b = 0, out_stride_s = 0;
  DType dtype = DType::F32;
  const float* row_max = nullptr;
  int64_t max_stride_b = 0, max_stride_h = 0;
  const float* row_sum = nullptr;
  int64_t sum_stride_b = 0, sum_stride_h = 0;
  double* acc = nullptr;
  double* ref = nullptr;
  double* sum = nullptr;
};
// The merged output: out (rows, Dv) contiguous in `dtype` = acc / sum rounded once (0 where
// sum is 0: a row no partial saw a key for).
struct AttentionMergeOutArgs {
  int64_t rows = 0, Dv = 0;
  const double* acc = nullptr;
  const double* sum = nullptr;
  DType dtype = DType::F32;
  void* out = nullptr;
};

// ---------------------------------------------------------------- convolution / resampling
struct Conv2dGeometry {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input (N, C, H, W)
  int64_t O = 0, kh = 0, kw = 0;       // weight (O, C, kh, kw)
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;  // zeros
  int64_t out_h() const { return (H + pad_top + pad_bottom - kh) / stride_h + 1; }
  int64_t out_w() const { return (W + pad_left + pad_right - kw) / stride_w + 1; }
};
// x contiguous (N, C, H, W); w contiguous (O, C, kh, kw); bias (O) F32 or null; out contiguous
// (N, O, out_h, out_w) in x's dtype. CPU: x F32, w F32 or BF16. CUDA: x and w one dtype.
struct Conv2dArgs {
  Conv2dGeometry g;
  const void* x = nullptr;
  const void* w = nullptr;
  const float* bias = nullptr;
  void* out = nullptr;
  DType dtype = DType::F32;  // x and out
  DType w_dtype = DType::F32;
};

struct Conv3dGeometry {
  int64_t N = 0, C = 0, T = 0, H = 0, W = 0;  // input (N, C, T, H, W)
  int64_t O = 0, kt = 0, kh = 0, kw = 0;      // weight (O, C, kt, kh, kw)
  int64_t stride_t = 1, stride_h = 1, stride_w = 1;
  int64_t pad_front = 0, pad_back = 0, pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  bool replicate = false;  // padding repeats the edge element instead of zeros
  int64_t out_t() const { return (T + pad_front + pad_back - kt) / stride_t + 1; }
  int64_t out_h() const { return (H + pad_top + pad_bottom - kh) / stride_h + 1; }
  int64_t out_w() const { return (W + pad_left + pad_right - kw) / stride_w + 1; }
};
// As Conv2dArgs, 3-D: x (N, C, T, H, W), w (O, C, kt, kh, kw), out (N, O, T', H', W').
struct Conv3dArgs {
  Conv3dGeometry g;
  const void* x = nullptr;
  const void* w = nullptr;
  const float* bias = nullptr;
  void* out = nullptr;
  DType dtype = DType::F32;
  DType w_dtype = DType::F32;
};

// x contiguous (planes, H, W) → y contiguous (planes, H·factor, W·factor).
struct UpsampleArgs {
  const void* x = nullptr;
  int64_t planes = 0, H = 0, W = 0;
  int factor = 1;
  DType dtype = DType::F32;
  void* y = nullptr;
};

// ---------------------------------------------------------------- elementwise
// out[i] = a[i] op b[i] over `shape` (ndim ≤ kMaxDims); strides of a and b in elements, 0
// along broadcast dims. out contiguous `shape`; it may alias a (add_). One dtype for all.
enum class BinaryOp : uint8_t { kAdd, kSub, kMul, kDiv };
struct BinaryArgs {
  BinaryOp op = BinaryOp::kAdd;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  const void* a = nullptr;
  int64_t a_strides[kMaxDims] = {};
  const void* b = nullptr;
  int64_t b_strides[kMaxDims] = {};
  DType dtype = DType::F32;
  void* out = nullptr;
};

// y = x·s over rows.
struct ScaleArgs {
  const void* x = nullptr;
  int64_t rows = 0, D = 0, row_stride = 0;
  float s = 1.0f;
  DType dtype = DType::F32;
  void* y = nullptr;
};

// x, out contiguous (B, S, D): out = x·(1 + scale[b]) + shift[b]; the parameter row of batch b
// at p + b·*_bstride (0 broadcasts one row), dtype param_dtype.
struct ModulateArgs {
  const void* x = nullptr;
  int64_t B = 0, S = 0, D = 0;
  const void* shift = nullptr;
  int64_t shift_bstride = 0;
  const void* scale = nullptr;
  int64_t scale_bstride = 0;
  DType dtype = DType::F32;
  DType param_dtype = DType::F32;
  void* out = nullptr;
};

// x, y, out contiguous (B, S, D): out = x + gate[b]·y, gate rows as ModulateArgs.
struct GatedAddArgs {
  const void* x = nullptr;
  const void* gate = nullptr;
  int64_t gate_bstride = 0;
  const void* y = nullptr;
  int64_t B = 0, S = 0, D = 0;
  DType dtype = DType::F32;
  DType gate_dtype = DType::F32;
  void* out = nullptr;
};

// out = (((c0·t0 + c1·t1) + c2·t2) + …)·post_mul / post_div, n contiguous elements each,
// evaluated left to right in f32 with each product, sum and the final multiply and divide
// rounded to f32 (no fused multiply-add; a true division), as the schedulers' Python
// expressions evaluate in diffusers (x − σ·v, c·(a − b), (x − σ·ε)/α …). Multiplying and
// dividing by 1 are exact, so the defaults leave the sum as it is.
struct LincombArgs {
  int terms = 0;
  float coef[kMaxTerms] = {};
  const void* t[kMaxTerms] = {};
  float post_mul = 1.0f, post_div = 1.0f;
  int64_t n = 0;
  DType dtype = DType::F32;  // every t and out
  void* out = nullptr;
};

// y = min(max(x, lo), hi) over n contiguous elements (the schedulers' sample clipping).
struct ClampArgs {
  const void* x = nullptr;
  int64_t n = 0;
  float lo = 0.0f, hi = 0.0f;
  DType dtype = DType::F32;
  void* y = nullptr;
};

// *count = the number of NaN or ±inf among n contiguous elements of x (a host int64).
struct CountNonFiniteArgs {
  const void* x = nullptr;
  int64_t n = 0;
  DType dtype = DType::F32;
  int64_t* count = nullptr;
};

// Per-channel affine map of x contiguous (outer, C, inner), in f32 with one rounding per op:
// kSubMul: y = (x − a[c])·b[c];  kDivAdd: y = x / b[c] + a[c]  (the VAEs' latent
// normalisation and its inverse, as diffusers writes them). a, b: C F32 values.
enum class AffineKind : uint8_t { kSubMul, kDivAdd };
struct AffineArgs {
  AffineKind kind = AffineKind::kSubMul;
  const void* x = nullptr;
  int64_t outer = 0, C = 0, inner = 0;
  const float* a = nullptr;
  const float* b = nullptr;
  DType dtype = DType::F32;
  void* y = nullptr;
};

// ---------------------------------------------------------------- copies, fills, lookups
// dst[idx] = convert(src[idx]) for every multi-index of `shape` (ndim ≤ kMaxDims), strides in
// elements; src and dst on the same device and not overlapping. Same dtype: any dtype (moved
// as bytes). Converting: float and integer dtypes to F32/BF16/F16/F64, and any numeric dtype to
// Bool (nonzero → 1).
struct CopyArgs {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  const void* src = nullptr;
  int64_t src_strides[kMaxDims] = {};
  DType src_dtype = DType::F32;
  void* dst = nullptr;
  int64_t dst_strides[kMaxDims] = {};
  DType dst_dtype = DType::F32;
};

// n contiguous elements of x set to value (converted to dtype).
struct FillArgs {
  void* x = nullptr;
  int64_t n = 0;
  double value = 0.0;
  DType dtype = DType::F32;
};

// out[i, :] = table[ids[i], :] converted to out_dtype. table contiguous (V, D); ids: n I64
// values already checked to lie in [0, V), on the body's device.
struct EmbeddingArgs {
  const void* table = nullptr;
  int64_t V = 0, D = 0;
  DType table_dtype = DType::F32;
  const int64_t* ids = nullptr;
  int64_t n = 0;
  DType out_dtype = DType::F32;
  void* out = nullptr;
};

}  // namespace paradit::backend
