#pragma once
// Kernel launchers that the library-backed bodies (gemm.cpp, conv.cpp) use around their
// library calls. Host declarations, no CUDA header; defined in elementwise.cu. Each enqueues on
// current_stream(); dtypes F32, BF16, F16 (others fail naming the op).

#include <cstdint>

#include "backend/args.h"

namespace paradit::backend::cuda::detail {

// y (rows, cols) with row stride ldy: y = act((zero_input ? 0 : y) + bias[col]); bias F32 (cols)
// or null. The GEMM epilogues cuBLASLt does not fuse, and linear with K = 0.
void bias_activation(DType dtype, void* y, int64_t rows, int64_t cols, int64_t ldy,
                     const float* bias, Activation act, bool zero_input);

// y contiguous (outer, C, inner) += bias[c] (F32): a convolution's bias.
void channel_bias(DType dtype, void* y, int64_t outer, int64_t C, int64_t inner, const float* bias);

// Explicit padding of x contiguous (N, C, T, H, W) into y contiguous
// (N, C, T + front + back, H + top + bottom, W + left + right): zeros, or the nearest edge
// element (replicate). A 2-D input is T = 1 with no time padding.
struct PadGeometry {
  int64_t N = 0, C = 0, T = 1, H = 0, W = 0;
  int64_t front = 0, back = 0, top = 0, bottom = 0, left = 0, right = 0;
  bool replicate = false;
};
void pad_volume(DType dtype, const void* x, const PadGeometry& g, void* y);

}  // namespace paradit::backend::cuda::detail
