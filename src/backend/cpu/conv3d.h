#pragma once
// CPU body of conv3d (the causal video VAEs' convolution): raw pointers, sizes in elements; it
// checks nothing (src/core/ops_conv3d.cpp does) and knows nothing of Tensor.

#include <cstdint>

#include "backend/args.h"

namespace paradit::backend::cpu {

using Conv3dGeometry = backend::Conv3dGeometry;

// x: contiguous (N, C, T, H, W) F32; w: contiguous (O, C, kt, kh, kw), F32 or (w_bf16) bf16
// bits; bias: (O) or nullptr; out: contiguous (N, O, out_t, out_h, out_w). im2col over bounded
// blocks of output rows (a row is one (frame, h) pair, so a block may span frames) + one GEMM
// per block with K = C·kt·kh·kw; a 1×1×1 unpadded stride-1 conv is a single GEMM.
void conv3d_f32(const float* x, const void* w, bool w_bf16, const float* bias,
                const Conv3dGeometry& g, float* out);

}  // namespace paradit::backend::cpu
