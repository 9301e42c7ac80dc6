#pragma once
// The operations of the VAEs whose result at a pixel depends on pixels outside its own row, as
// an interface the VAE models call (models/vae/*) and the patch-parallel decode implements
// (parallel/vae_patch.h, video_vae_patch.h): the local implementation calls the core ops; a
// row-split one receives this rank's rows and returns its rows of the whole-image result (halo
// exchanges for convolutions, group-wide GroupNorm statistics, gathered attention keys). The
// models depend on this layer as the transformers depend on parallel::TokenLayout.

#include "core/ops.h"

namespace paradit::parallel {

// Image VAEs (AutoencoderKL). Tensors are (N, C, H, W) images or (B, S, 1, C) token sequences.
class SpatialOps {
 public:
  virtual ~SpatialOps() = default;
  // x: (N, C, H, W)   w: (O, C, kh, kw)   bias: (O) or {}   → (N, O, H', W')
  virtual core::Tensor conv2d(const core::Tensor& x, const core::Tensor& w,
                              const core::Tensor& bias, const core::Conv2dOptions& opt) const;
  // x: (N, C, H, W); the statistics cover the whole image.   → (N, C, H, W)
  virtual core::Tensor group_norm(const core::Tensor& x, int groups, const core::Tensor& weight,
                                  const core::Tensor& bias, float eps) const;
  // q: (B, Sq, 1, C)   k, v: (B, Sk, 1, C); the keys and values of the whole image are visible.
  // → (B, Sq, 1, C)
  virtual core::Tensor attention(const core::Tensor& q, const core::Tensor& k,
                                 const core::Tensor& v, float scale) const;
};
// Single-process: the core ops unchanged.
const SpatialOps& local_spatial_ops();

// Video VAEs (Wan, HunyuanVideo): a row-split implementation receives this rank's rows (dim 3
// of (N, C, T, H, W)) and returns its rows of the whole-frame result.
class VideoSpatialOps {
 public:
  virtual ~VideoSpatialOps() = default;
  // x: (N, C, T, H, W)   w: (O, C, kt, kh, kw)   bias: (O) or {}   → (N, O, T', H', W')
  virtual core::Tensor conv3d(const core::Tensor& x, const core::Tensor& w,
                              const core::Tensor& bias, const core::Conv3dOptions& opt) const;
  // x: (N, C, T, H, W); the statistics cover the whole frames.   → same shape
  virtual core::Tensor group_norm(const core::Tensor& x, int groups, const core::Tensor& weight,
                                  const core::Tensor& bias, float eps) const;
  // x holds this rank's pixels of each frame along `dim` (its rows, row-major) → the pixels of
  // every row along `dim` (whole frames, row-major); x itself on one process.
  virtual core::Tensor gather_rows(const core::Tensor& x, int dim) const;
};
// Single-process: the core ops unchanged.
const VideoSpatialOps& local_video_ops();

}  // namespace paradit::parallel
