#pragma once
// Internals of the CUDA convolution bodies (ops.h: conv2d, conv3d): how a convolution of
// args.h is handed to cuDNN's legacy cudnnConvolutionForward (NCHW / NCDHW). Host code, no CUDA
// header; inline so that tests/cuda_host checks it without a GPU.
//
// cuDNN pads symmetrically with zeros. Asymmetric padding (the VAE downsamplers' (0, 1, 0, 1))
// and replicate padding (the causal video VAEs) are done by a padding kernel into a scratch
// tensor first, followed by an unpadded convolution. cuDNN's legacy descriptors take int
// sizes; a batch whose tensors exceed 2³¹ − 1 elements runs in chunks of samples.

#include <algorithm>
#include <cstdint>

#include "backend/args.h"
#include "backend/cuda/launch.h"

namespace paradit::backend::cuda::detail {

struct ConvLowering {
  int spatial = 2;  // 2: (H, W); 3: (T, H, W)
  int64_t N = 0, C = 0, O = 0;
  // Spatial dims as cuDNN sees them: the input after explicit padding, if any.
  int64_t in[3] = {1, 1, 1}, kernel[3] = {1, 1, 1}, stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0};
  int64_t out[3] = {1, 1, 1};
  bool explicit_pad = false;
  PadGeometry pad_geometry;  // x → the padded input, when explicit_pad
  int64_t batch_chunk = 0;   // samples per cuDNN call; 0: one sample alone is too large

  int64_t in_elems_per_sample() const { return C * in[0] * in[1] * in[2]; }
  int64_t out_elems_per_sample() const { return O * out[0] * out[1] * out[2]; }
};

constexpr int64_t kCudnnMaxElems = 0x7fffffff;

// lo[i], hi[i]: the padding before and after spatial dim i; dims: the input's spatial dims.
inline ConvLowering lower_conv(int spatial, int64_t N, int64_t C, int64_t O, const int64_t* dims,
                               const int64_t* kernel, const int64_t* stride, const int64_t* lo,
                               const int64_t* hi, bool replicate) {
  ConvLowering l;
  l.spatial = spatial;
  l.N = N;
  l.C = C;
  l.O = O;
  bool asymmetric = false, any_pad = false;
  for (int i = 0; i < spatial; ++i) {
    asymmetric = asymmetric || lo[i] != hi[i];
    any_pad = any_pad || lo[i] != 0 || hi[i] != 0;
  }
  l.explicit_pad = any_pad && (asymmetric || replicate);
  for (int i = 0; i < spatial; ++i) {
    l.kernel[i] = kernel[i];
    l.stride[i] = stride[i];
    l.in[i] = l.explicit_pad ? dims[i] + lo[i] + hi[i] : dims[i];
    l.pad[i] = l.explicit_pad ? 0 : lo[i];
    l.out[i] = (l.in[i] + 2 * l.pad[i] - kernel[i]) / stride[i] + 1;
  }
  if (l.explicit_pad) {
    PadGeometry& g = l.pad_geometry;
    g.N = N;
    g.C = C;
    g.replicate = replicate;
    // 2-D: (H, W) are dims 0, 1 and T = 1; 3-D: (T, H, W).
    const int o = spatial == 3 ? 1 : 0;
    if (spatial == 3) {
      g.T = dims[0];
      g.front = lo[0];
      g.back = hi[0];
    }
    g.H = dims[o];
    g.top = lo[o];
    g.bottom = hi[o];
    g.W = dims[o + 1];
    g.left = lo[o + 1];
    g.right = hi[o + 1];
  }
  const int64_t per = std::max(l.in_elems_per_sample(), l.out_elems_per_sample());
  l.batch_chunk = per > 0 ? std::min<int64_t>(N, kCudnnMaxElems / per) : N;
  return l;
}

inline ConvLowering lower_conv2d(const Conv2dGeometry& g) {
  const int64_t dims[2] = {g.H, g.W}, kernel[2] = {g.kh, g.kw},
                stride[2] = {g.stride_h, g.stride_w};
  const int64_t lo[2] = {g.pad_top, g.pad_left}, hi[2] = {g.pad_bottom, g.pad_right};
  return lower_conv(2, g.N, g.C, g.O, dims, kernel, stride, lo, hi, false);
}

inline ConvLowering lower_conv3d(const Conv3dGeometry& g) {
  const int64_t dims[3] = {g.T, g.H, g.W}, kernel[3] = {g.kt, g.kh, g.kw};
  const int64_t stride[3] = {g.stride_t, g.stride_h, g.stride_w};
  const int64_t lo[3] = {g.pad_front, g.pad_top, g.pad_left};
  const int64_t hi[3] = {g.pad_back, g.pad_bottom, g.pad_right};
  return lower_conv(3, g.N, g.C, g.O, dims, kernel, stride, lo, hi, g.replicate);
}

}  // namespace paradit::backend::cuda::detail
