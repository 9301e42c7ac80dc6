#include "parallel/spatial_ops.h"

namespace paradit::parallel {

using core::Tensor;

Tensor SpatialOps::conv2d(const Tensor& x, const Tensor& w, const Tensor& bias,
                          const core::Conv2dOptions& opt) const {
  return core::conv2d(x, w, bias, opt);
}

Tensor SpatialOps::group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias,
                              float eps) const {
  return core::group_norm(x, groups, weight, bias, eps);
}

Tensor SpatialOps::attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale) const {
  core::AttentionOptions options;
  options.scale = scale;
  return core::attention(q, k, v, options).out;
}

const SpatialOps& local_spatial_ops() {
  static const SpatialOps ops;
  return ops;
}

Tensor VideoSpatialOps::conv3d(const Tensor& x, const Tensor& w, const Tensor& bias,
                               const core::Conv3dOptions& opt) const {
  return core::conv3d(x, w, bias, opt);
}

Tensor VideoSpatialOps::group_norm(const Tensor& x, int groups, const Tensor& weight,
                                   const Tensor& bias, float eps) const {
  return core::group_norm(x, groups, weight, bias, eps);
}

Tensor VideoSpatialOps::gather_rows(const Tensor& x, int dim) const { return x; }

const VideoSpatialOps& local_video_ops() {
  static const VideoSpatialOps ops;
  return ops;
}

}  // namespace paradit::parallel
