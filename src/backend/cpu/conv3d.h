#pragma once
// CPU body of conv3d (the causal video VAEs' convolution): raw pointers, sizes in elements; it
// checks nothing (src/core/ops_conv3d.cpp does) and knows nothing of Tensor.

#include <cstdint>

namespace paradit::backend::cpu {

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

// x: contiguous (N, C, T, H, W) F32; w: contiguous (O, C, kt, kh, kw), F32 or (w_bf16) bf16
// bits; bias: (O) or nullptr; out: contiguous (N, O, out_t, out_h, out_w). im2col over bounded
// blocks of output rows (a row is one (frame, h) pair, so a block may span frames) + one GEMM
// per block with K = C·kt·kh·kw; a 1×1×1 unpadded stride-1 conv is a single GEMM.
void conv3d_f32(const float* x, const void* w, bool w_bf16, const float* bias,
                const Conv3dGeometry& g, float* out);

}  // namespace paradit::backend::cpu
