#pragma once
// Attention on the device.
//
// attention(): a flash-attention forward of our own (FlashAttention-2 style): one thread block
// per 64 query rows of one (batch, head), K/V tiles of 64 keys streamed through shared memory
// with cp.async double buffering, QKᵀ and PV on tensor cores (mma.sync m16n8k16, BF16 or F16
// in, f32 accumulate), online softmax in f32 registers; the Sq×Sk scores never exist in
// memory. It takes BF16/F16 q, k, v with head dim 64 or 128 (Dv = D) and no additive bias;
// other cases (F32, other head dims, a bias) run attention_reference().
//
// attention_reference(): one thread per query row, plain f32 loops; any float dtype, D and Dv
// up to 256, key mask and additive bias. Slow; for tests and odd shapes.

#include "core/ops.h"
#include "core/tensor.h"

namespace paradit::backend::cuda {

// q: (B, Sq, H, D)   k: (B, Sk, H, D)   v: (B, Sk, H, Dv), device tensors of one dtype; each
// may be a strided view whose last dim is contiguous. Options as core::attention: scale (0 →
// 1/√D), key_mask (B, Sk) F32 or Bool, bias (B|1, H|1, Sq, Sk), return_lse.
// → out (B, Sq, H, Dv) in q's dtype; lse (B, H, Sq) F32 (−inf for a row with no visible key,
// whose out row is 0).
core::AttentionResult attention(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                                const core::AttentionOptions& options = {});
core::AttentionResult attention_reference(const core::Tensor& q, const core::Tensor& k,
                                          const core::Tensor& v,
                                          const core::AttentionOptions& options = {});
// Whether attention() takes the flash kernel for these arguments.
bool flash_attention_supported(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                               const core::AttentionOptions& options = {});

}  // namespace paradit::backend::cuda
