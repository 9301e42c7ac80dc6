#pragma once
// CPU bodies of the core ops other than GEMM and attention: raw pointers, sizes in elements,
// OpenMP over rows. They check nothing (src/core/ops_*.cpp checks shapes and dtypes before
// calling them) and know nothing of Tensor.
//
// "Rows" layout: `rows` rows of `D` contiguous floats, row r at x + r·row_stride. It covers a
// contiguous (..., D) tensor (row_stride = D) and views such as slices of the last dim.

#include <cstddef>
#include <cstdint>

#include "backend/args.h"

namespace paradit::backend::cpu {

// ---------------------------------------------------------------- normalization
// y: contiguous (rows, D). weight/bias: (D) or nullptr. Statistics are accumulated in double
// in two passes (mean, then Σ(x − mean)²), so rows with a large mean keep their accuracy.
void layer_norm_f32(const float* x, int64_t row_stride, int64_t rows, int64_t D,
                    const float* weight, const float* bias, float eps, float* y);
void rms_norm_f32(const float* x, int64_t row_stride, int64_t rows, int64_t D, const float* weight,
                  float eps, float* y);

// Channel norm (backend::ChannelNormArgs): y = x / max(‖x[n, :, l]‖₂, eps)·scale·gamma[c] over
// x, y contiguous (N, C, L).
void channel_norm_f32(const float* x, int64_t N, int64_t C, int64_t L, const float* gamma,
                      float scale, float eps, float* y);

// Group norm over x: contiguous (N, C, L) with L = prod(spatial); C % groups == 0.
// Split into statistics and application so that a patch-parallel caller can combine
// statistics across ranks before applying them.
// mean, var: (N·groups) double, population variance of each group's C/groups·L elements.
void group_norm_stats_f32(const float* x, int64_t N, int64_t C, int64_t L, int64_t groups,
                          double* mean, double* var);
// y = (x − mean)·rstd·weight[c] + bias[c] with rstd = 1/sqrt(var + eps); y: contiguous (N, C, L)
// and may alias x.
void group_norm_apply_f32(const float* x, int64_t N, int64_t C, int64_t L, int64_t groups,
                          const double* mean, const double* var, float eps, const float* weight,
                          const float* bias, float* y);

// ---------------------------------------------------------------- activations
enum class Activation {
  kGeluErf,   // 0.5·x·(1 + erf(x/√2))
  kGeluTanh,  // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
  kSilu,      // x·sigmoid(x)
  kQuickGelu,  // x·sigmoid(1.702·x)
  kRelu,       // max(x, 0)
  kExp,        // eˣ
  kSqrt,       // √x
  kTanh        // tanh(x)
};
// y: contiguous (rows, D); may alias x when x is contiguous.
void activation_f32(Activation act, const float* x, int64_t row_stride, int64_t rows, int64_t D,
                    float* y);
// Softmax over each row, max-subtracted. y: contiguous (rows, D).
void softmax_f32(const float* x, int64_t row_stride, int64_t rows, int64_t D, float* y);

// ---------------------------------------------------------------- rotary embedding
// x: (B, S, H, D) with element strides (sb, ss, sh, 1); cos, sin: contiguous (S, D);
// out: contiguous (B, S, H, D). interleaved: pairs (2i, 2i+1); otherwise pairs (i, i + D/2).
void rope_f32(const float* x, int64_t B, int64_t S, int64_t H, int64_t D, int64_t sb, int64_t ss,
              int64_t sh, const float* cos, const float* sin, bool interleaved, float* out);

// out[o·out_stride + p] = tmp[p·O + o] + bias[o] (bias may be null): the (P, O) result of a
// rows·wᵀ GEMM scattered into channel planes, as conv2d/conv3d's bf16-weight paths need.
void transpose_add_bias(const float* tmp, int64_t P, int64_t O, const float* bias, float* out,
                        int64_t out_stride);

// ---------------------------------------------------------------- convolution / resampling
using Conv2dGeometry = backend::Conv2dGeometry;
// x: contiguous (N, C, H, W) F32; w: contiguous (O, C, kh, kw), F32 or (w_bf16) bf16 bits;
// bias: (O) or nullptr; out: contiguous (N, O, out_h, out_w). im2col in bounded blocks of
// output rows + GEMM (gemm_f32, or gemm_f32_bf16 for bf16 weights).
void conv2d_f32(const float* x, const void* w, bool w_bf16, const float* bias,
                const Conv2dGeometry& g, float* out);
// x: contiguous (planes, H, W) → y: contiguous (planes, H·factor, W·factor).
void upsample_nearest2d_f32(const float* x, int64_t planes, int64_t H, int64_t W, int factor,
                            float* y);

// ---------------------------------------------------------------- elementwise
enum class BinaryOp { kAdd, kSub, kMul, kDiv };
// out[i] = a[i] op b[i] over `shape` (ndim ≤ 8); a/b strides in elements, 0 along broadcast
// dims. out: contiguous `shape`; it may alias a when a is contiguous with this shape.
void binary_f32(BinaryOp op, int ndim, const int64_t* shape, const float* a,
                const int64_t* a_strides, const float* b, const int64_t* b_strides, float* out);
// y = x·s over rows (see above); y contiguous (rows, D).
void scale_f32(const float* x, int64_t row_stride, int64_t rows, int64_t D, float s, float* y);
// x, out: contiguous (B, S, D). shift/scale/gate rows: batch b at p + b·bstride (bstride 0
// broadcasts one row over the batch).
// out = x·(1 + scale) + shift
void modulate_f32(const float* x, int64_t B, int64_t S, int64_t D, const float* shift,
                  int64_t shift_bstride, const float* scale, int64_t scale_bstride, float* out);
// out = x + gate·y; y: contiguous (B, S, D).
void gated_add_f32(const float* x, const float* gate, int64_t gate_bstride, const float* y,
                   int64_t B, int64_t S, int64_t D, float* out);

// out = (((c0·t0 + c1·t1) + …)·post_mul)/post_div over n contiguous elements, each product and
// sum rounded to f32 (see backend::LincombArgs); a null term is skipped. out may alias a term.
void lincomb_f32(int terms, const float* coef, const float* const* t, float post_mul,
                 float post_div, int64_t n, float* out);
// y = min(max(x, lo), hi); y may alias x.
void clamp_f32(const float* x, int64_t n, float lo, float hi, float* y);
// NaN and ±inf among n values.
int64_t count_non_finite_f32(const float* x, int64_t n);
// x, y contiguous (outer, C, inner): div_add: y = x / b[c] + a[c]; else y = (x − a[c])·b[c].
void affine_f32(bool div_add, const float* x, int64_t outer, int64_t C, int64_t inner,
                const float* a, const float* b, float* y);

// ---------------------------------------------------------------- copies
// dst[idx] = src[idx] for every multi-index of `shape` (ndim ≤ 8); strides in elements,
// elements of `itemsize` bytes (1, 2, 4, 8 or any other size); src and dst must not overlap.
// Adjacent dims that are contiguous in both are merged; rows of contiguous inner elements are
// memcpy'd.
void strided_copy(int ndim, const int64_t* shape, const void* src, const int64_t* src_strides,
                  void* dst, const int64_t* dst_strides, size_t itemsize);
// As strided_copy, converting each element from src_dtype to dst_dtype (through double; the
// F32↔BF16 pair of contiguous tensors directly). Bool destinations get nonzero → 1.
void convert_copy(int ndim, const int64_t* shape, const void* src, const int64_t* src_strides,
                  core::DType src_dtype, void* dst, const int64_t* dst_strides,
                  core::DType dst_dtype);
// One element at p as double / stored from double (any dtype; F8 cannot be stored: Error).
double load_as_double(const void* p, core::DType t);
void store_from_double(void* p, core::DType t, double v);
// n contiguous elements of dtype set to value.
void fill_values(void* x, int64_t n, double value, core::DType dtype);
// out[i, :] = table[ids[i], :] as f32. table: contiguous (V, D), f32 or (bf16) bf16 bits; ids
// already checked to lie in [0, V).
void embedding_f32(const void* table, bool table_bf16, int64_t D, const int64_t* ids, int64_t n,
                   float* out);

}  // namespace paradit::backend::cpu
