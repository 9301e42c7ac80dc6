#pragma once
// The CPU bodies of the core ops (src/core/ops.h): one function per op, taking the op's
// argument struct (src/backend/args.h) — the same structs as the CUDA bodies. Activations F32;
// weights F32 or BF16 where args.h says so. They forward to the kernels of kernels.h, gemm.h,
// attention.h and conv3d.h (raw pointers, OpenMP).

#include "backend/args.h"

namespace paradit::backend::cpu {

void linear(const LinearArgs& a);  // activation kNone (the front end runs it after)
void matmul(const MatmulArgs& a);
void norm(const NormArgs& a);  // no modulation (the front end runs it after)
void group_norm_stats(const GroupNormStatsArgs& a);
void group_norm_apply(const GroupNormApplyArgs& a);  // activation kNone
void activation(const ActivationArgs& a);
void softmax(const SoftmaxArgs& a);
void channel_norm(const ChannelNormArgs& a);
void rope(const RopeArgs& a);
void attention(const backend::AttentionArgs& a);
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

}  // namespace paradit::backend::cpu
