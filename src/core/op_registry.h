#pragma once
// The ops of src/core/ops.h (and Tensor's copies and fills) by name, and which (device, dtype)
// pairs have a body: the front ends ask before dispatching, the backend-ops test asks to report
// "unsupported" instead of failing, and enumerates every op to find the ones without a case.

#include <span>
#include <string_view>

#include "core/dtype.h"

namespace paradit::core {

enum class Op : uint8_t {
  kLinear,
  kMatmul,
  kLayerNorm,
  kRmsNorm,
  kGroupNorm,
  kChannelNorm,
  kGroupNormStats,
  kGroupNormApply,
  kGelu,
  kSilu,
  kQuickGelu,
  kRelu,
  kExp,
  kSqrt,
  kTanh,
  kSoftmax,
  kApplyRope,
  kAttention,
  kAttentionMerge,
  kConv2d,
  kUpsampleNearest2d,
  kConv3d,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kScale,
  kAddInPlace,
  kModulate,
  kGatedAdd,
  kLincomb,
  kClamp,
  kCountNonFinite,
  kAffine,
  kConcat,
  kSplit,
  kChunk,
  kEmbedding,
  kCopy,  // Tensor::copy_from / contiguous / clone / to / to_device / permute
  kFill,  // Tensor::zeros / full
};

// Every op, in declaration order.
std::span<const Op> all_ops();
std::string_view op_name(Op op);  // "layer_norm", "add_", "copy" …

// Whether a body of `op` runs on `device` for tensors of `dtype` (the activation dtype: the
// dtype of x, q, a …; for copy/fill/concat/split/chunk any dtype the device can hold). CPU: F32
// activations (weights F32 or BF16 where ops.h says so); CUDA (builds with PARADIT_WITH_CUDA):
// F32, BF16 and F16.
bool supports(Op op, Device device, DType dtype);
// Error "<op>: no <device> body for <dtype> (<what it has>)" unless supports(...).
void require_support(Op op, Device device, DType dtype);

// Whether this build has the CUDA backend.
#ifdef PARADIT_WITH_CUDA
inline constexpr bool kCudaBuilt = true;
#else
inline constexpr bool kCudaBuilt = false;
#endif

}  // namespace paradit::core
