#pragma once
// The CUDA backend's tensor kernels: copies and dtype conversion, activations, broadcast
// arithmetic, the modulation and gated residual of the DiT blocks, norms, softmax and rotary
// embedding. Each takes device tensors, checks them (a paradit::Error naming the op, the tensor
// and the expected vs found shape or dtype), enqueues on current_stream() and returns a new
// contiguous device tensor.
//
// Activations are F32, BF16 or F16; the math is done in f32 and rounded once on output.
// Parameters (norm weights, shift/scale/gate, cos/sin) may be any of the three float dtypes;
// they are used as f32. Inputs may be strided views; kernels that need contiguous rows copy.

#include "core/ops.h"
#include "core/tensor.h"

namespace paradit::backend::cuda {

// ---------------------------------------------------------------- copies
// dst ← src element by element; same shape, any strides. At least one of them on the device;
// the other may be on the host. Same dtype: any dtype (a byte copy). Different dtypes: dst
// F32/BF16/F16, src one of those or Bool/U8/I32/I64 (round to nearest even when narrowing).
void copy(const core::Tensor& dst, const core::Tensor& src);
// A contiguous device copy of x converted to `dtype` (x itself when it already is both).
core::Tensor convert(const core::Tensor& x, core::DType dtype);
// x itself when contiguous, else a contiguous device copy.
core::Tensor contiguous(const core::Tensor& x);
// Sets every element of a contiguous float device tensor to `value`.
void fill(const core::Tensor& x, float value);

// ---------------------------------------------------------------- elementwise
core::Tensor gelu(const core::Tensor& x, bool tanh_approx = false);
core::Tensor silu(const core::Tensor& x);
// Numpy-style broadcasting of both operands. Same dtype → that dtype; mixed → F32.
core::Tensor add(const core::Tensor& a, const core::Tensor& b);
core::Tensor mul(const core::Tensor& a, const core::Tensor& b);
// x: (B, S, D)   shift, scale: (B, D), (1, D) or (D)   → x · (1 + scale) + shift
core::Tensor modulate(const core::Tensor& x, const core::Tensor& shift, const core::Tensor& scale);
// x, y: (B, S, D)   gate: (B, D), (1, D) or (D)   → x + gate · y
core::Tensor gated_add(const core::Tensor& x, const core::Tensor& gate, const core::Tensor& y);

// ---------------------------------------------------------------- normalization
// Over the last dim of x (..., D). weight/bias: (D) or {} (no affine). Optional fused
// modulation of the DiT blocks: with shift and scale given ((B, D), (1, D) or (D), where the
// rows of x split evenly into B batches: x (B, S, D)), the result is
// norm(x) · (1 + scale) + shift.
core::Tensor layer_norm(const core::Tensor& x, const core::Tensor& weight, const core::Tensor& bias,
                        float eps, const core::Tensor& shift = {}, const core::Tensor& scale = {});
// x / sqrt(mean(x²) + eps) · weight, then the optional modulation as above.
core::Tensor rms_norm(const core::Tensor& x, const core::Tensor& weight, float eps,
                      const core::Tensor& shift = {}, const core::Tensor& scale = {});
core::Tensor softmax(const core::Tensor& x);  // over the last dim

// ---------------------------------------------------------------- rotary embedding
// x: (B, S, H, D), last dim contiguous (strided views allowed)   cos, sin: (S, D)
// → (B, S, H, D), the same formulas as core::apply_rope.
core::Tensor apply_rope(const core::Tensor& x, const core::Tensor& cos, const core::Tensor& sin,
                        core::RopeStyle style);

}  // namespace paradit::backend::cuda
