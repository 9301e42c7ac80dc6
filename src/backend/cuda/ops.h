#pragma once
// The CUDA bodies of the core ops (src/core/ops.h): one function per op, taking the op's
// argument struct (src/backend/args.h), enqueuing on current_stream() (runtime.h). Pointers are
// device pointers. Activations F32, BF16 or F16 (math in f32, one rounding on output). No CUDA
// header is needed to include this file; only builds with PARADIT_WITH_CUDA define the bodies.
//
// Libraries first: GEMMs through cuBLASLt (plans cached per shape), attention through cuDNN's
// fused flash attention (graph API, plans cached per shape) or paradit's flash kernel,
// convolutions through cuDNN; own kernels for norms + modulation, RoPE, elementwise, GroupNorm,
// copies and layout.

#include "backend/args.h"

namespace paradit::backend::cuda {

void linear(const LinearArgs& a);
void matmul(const MatmulArgs& a);
void norm(const NormArgs& a);
void group_norm_stats(const GroupNormStatsArgs& a);
void group_norm_apply(const GroupNormApplyArgs& a);
void activation(const ActivationArgs& a);
void softmax(const SoftmaxArgs& a);
void channel_norm(const ChannelNormArgs& a);
void rope(const RopeArgs& a);
void attention(const AttentionArgs& a);
void attention_merge_add(const AttentionMergeAddArgs& a);
void attention_merge_out(const AttentionMergeOutArgs& a);
void conv2d(const Conv2dArgs& a);
void conv3d(const Conv3dArgs& a);
void upsample_nearest2d(const UpsampleArgs& a);
void binary(const BinaryArgs& a);
void scale(const ScaleArgs& a);
void modulate(const ModulateArgs& a);
void gated_add(const GatedAddArgs& a);
void lincomb(const LincombArgs& a);
void clamp(const ClampArgs& a);
void count_non_finite(const CountNonFiniteArgs& a);
void affine(const AffineArgs& a);
void copy(const CopyArgs& a);
void fill(const FillArgs& a);
void embedding(const EmbeddingArgs& a);

// Which attention implementation runs `a` (a.backend resolved: kAuto → kCudnn where cuDNN takes
// the arguments — a build with cuDNN, BF16/F16, head dims it supports, no unnormalized output —
// else kParadit). Never kAuto.
AttentionBackend attention_backend_for(const AttentionArgs& a);

}  // namespace paradit::backend::cuda
