// conv2d, conv3d and nearest upsampling: the front ends, then the body of the tensors' device
// (backend/cpu: im2col + GEMM; backend/cuda: cuDNN).

#include "core/ops.h"
#include "core/ops_common.h"

namespace paradit::core {

using namespace detail;

namespace {

// The weight of a convolution on x's device: F32 or BF16 on the CPU (any float dtype there is
// converted to F32); on CUDA the conv runs in the weight's dtype.
void check_conv_weight(Op op, const Tensor& w, Device dev) {
  PARADIT_CHECK(w.defined() && is_floating(w.dtype()), op_name(op),
                ": weight must be a float tensor, got ",
                w.defined() ? w.str() : std::string("undefined"));
  check_device(op, "weight", w, dev);
}

Tensor conv_weight(const Tensor& w, Device dev) {
  if (dev == Device::CPU) {
    return (w.dtype() == DType::BF16 ? w : w.to(DType::F32)).contiguous();
  }
  return w.contiguous();
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& opt) {
  const Op op = Op::kConv2d;
  check_first(op, "x", x);
  const Device dev = x.device();
  check_conv_weight(op, w, dev);
  PARADIT_CHECK(x.ndim() == 4, "conv2d: x ", x.str(), " must be (N, C, H, W)");
  PARADIT_CHECK(w.ndim() == 4, "conv2d: weight ", w.str(), " must be (O, C, kh, kw)");
  PARADIT_CHECK(w.dim(1) == x.dim(1), "conv2d: weight ", w.str(), " expects ", w.dim(1),
                " input channels, x ", x.str(), " has ", x.dim(1));
  PARADIT_CHECK(opt.stride_h >= 1 && opt.stride_w >= 1, "conv2d: stride (", opt.stride_h, ", ",
                opt.stride_w, ") must be positive");
  PARADIT_CHECK(opt.pad_top >= 0 && opt.pad_bottom >= 0 && opt.pad_left >= 0 && opt.pad_right >= 0,
                "conv2d: padding (top ", opt.pad_top, ", bottom ", opt.pad_bottom, ", left ",
                opt.pad_left, ", right ", opt.pad_right, ") must not be negative");
  backend::Conv2dArgs a;
  backend::Conv2dGeometry& g = a.g;
  g.N = x.dim(0);
  g.C = x.dim(1);
  g.H = x.dim(2);
  g.W = x.dim(3);
  g.O = w.dim(0);
  g.kh = w.dim(2);
  g.kw = w.dim(3);
  g.stride_h = opt.stride_h;
  g.stride_w = opt.stride_w;
  g.pad_top = opt.pad_top;
  g.pad_bottom = opt.pad_bottom;
  g.pad_left = opt.pad_left;
  g.pad_right = opt.pad_right;
  PARADIT_CHECK(g.kh >= 1 && g.kw >= 1, "conv2d: weight ", w.str(), " has an empty kernel");
  PARADIT_CHECK(g.H + g.pad_top + g.pad_bottom >= g.kh && g.W + g.pad_left + g.pad_right >= g.kw,
                "conv2d: kernel ", g.kh, "x", g.kw, " is larger than the padded input of x ",
                x.str());
  const Tensor b = vector_param(op, "bias", bias, g.O, dev);
  const Tensor wc = conv_weight(w, dev);
  // CUDA runs in the weight's dtype: x converted to it.
  const Tensor xc = (dev == Device::CUDA ? x.to(wc.dtype()) : x).contiguous();
  Tensor out = Tensor::empty({g.N, g.O, g.out_h(), g.out_w()}, xc.dtype(), dev);  // (N, O, H', W')
  if (out.numel() == 0) return out;
  a.x = xc.raw_data();
  a.w = wc.raw_data();
  a.bias = f32_or_null(b);
  a.out = out.raw_data();
  a.dtype = xc.dtype();
  a.w_dtype = wc.dtype();
  if (dev == Device::CPU) cpu::conv2d(a); else if constexpr (kCudaBuilt) cuda::conv2d(a);
  return out;
}

Tensor upsample_nearest2d(const Tensor& x, int factor) {
  check_first(Op::kUpsampleNearest2d, "x", x);
  PARADIT_CHECK(x.ndim() == 4, "upsample_nearest2d: x ", x.str(), " must be (N, C, H, W)");
  PARADIT_CHECK(factor >= 1, "upsample_nearest2d: factor ", factor, " must be >= 1");
  const Tensor xc = x.contiguous();
  const int64_t H = x.dim(2), W = x.dim(3);
  Tensor out = Tensor::empty({x.dim(0), x.dim(1), H * factor, W * factor}, x.dtype(),
                             x.device());  // (N, C, H·f, W·f)
  if (out.numel() == 0) return out;
  backend::UpsampleArgs a;
  a.x = xc.raw_data();
  a.planes = x.dim(0) * x.dim(1);
  a.H = H;
  a.W = W;
  a.factor = factor;
  a.dtype = x.dtype();
  a.y = out.raw_data();
  if (x.device() == Device::CPU) cpu::upsample_nearest2d(a); else if constexpr (kCudaBuilt) cuda::upsample_nearest2d(a);
  return out;
}

Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dOptions& opt) {
  const Op op = Op::kConv3d;
  check_first(op, "x", x);
  const Device dev = x.device();
  check_conv_weight(op, w, dev);
  PARADIT_CHECK(x.ndim() == 5, "conv3d: x ", x.str(), " must be (N, C, T, H, W)");
  PARADIT_CHECK(w.ndim() == 5, "conv3d: weight ", w.str(), " must be (O, C, kt, kh, kw)");
  PARADIT_CHECK(w.dim(1) == x.dim(1), "conv3d: weight ", w.str(), " expects ", w.dim(1),
                " input channels, x ", x.str(), " has ", x.dim(1));
  PARADIT_CHECK(opt.stride_t >= 1 && opt.stride_h >= 1 && opt.stride_w >= 1, "conv3d: stride (",
                opt.stride_t, ", ", opt.stride_h, ", ", opt.stride_w, ") must be positive");
  PARADIT_CHECK(opt.pad_front >= 0 && opt.pad_back >= 0 && opt.pad_top >= 0 &&
                    opt.pad_bottom >= 0 && opt.pad_left >= 0 && opt.pad_right >= 0,
                "conv3d: padding (front ", opt.pad_front, ", back ", opt.pad_back, ", top ",
                opt.pad_top, ", bottom ", opt.pad_bottom, ", left ", opt.pad_left, ", right ",
                opt.pad_right, ") must not be negative");
  backend::Conv3dArgs a;
  backend::Conv3dGeometry& g = a.g;
  g.N = x.dim(0);
  g.C = x.dim(1);
  g.T = x.dim(2);
  g.H = x.dim(3);
  g.W = x.dim(4);
  g.O = w.dim(0);
  g.kt = w.dim(2);
  g.kh = w.dim(3);
  g.kw = w.dim(4);
  g.stride_t = opt.stride_t;
  g.stride_h = opt.stride_h;
  g.stride_w = opt.stride_w;
  g.pad_front = opt.pad_front;
  g.pad_back = opt.pad_back;
  g.pad_top = opt.pad_top;
  g.pad_bottom = opt.pad_bottom;
  g.pad_left = opt.pad_left;
  g.pad_right = opt.pad_right;
  g.replicate = opt.replicate;
  PARADIT_CHECK(g.kt >= 1 && g.kh >= 1 && g.kw >= 1, "conv3d: weight ", w.str(),
                " has an empty kernel");
  PARADIT_CHECK(g.T + g.pad_front + g.pad_back >= g.kt && g.H + g.pad_top + g.pad_bottom >= g.kh &&
                    g.W + g.pad_left + g.pad_right >= g.kw,
                "conv3d: kernel ", g.kt, "x", g.kh, "x", g.kw,
                " is larger than the padded input of x ", x.str());
  // Replicate padding needs an edge element to repeat.
  PARADIT_CHECK(!g.replicate || (g.T >= 1 && g.H >= 1 && g.W >= 1), "conv3d: x ", x.str(),
                " is empty; replicate padding needs at least one element per axis");
  const Tensor b = vector_param(op, "bias", bias, g.O, dev);
  const Tensor wc = conv_weight(w, dev);
  const Tensor xc = (dev == Device::CUDA ? x.to(wc.dtype()) : x).contiguous();
  Tensor out = Tensor::empty({g.N, g.O, g.out_t(), g.out_h(), g.out_w()}, xc.dtype(),
                             dev);  // (N, O, T', H', W')
  if (out.numel() == 0) return out;
  a.x = xc.raw_data();
  a.w = wc.raw_data();
  a.bias = f32_or_null(b);
  a.out = out.raw_data();
  a.dtype = xc.dtype();
  a.w_dtype = wc.dtype();
  if (dev == Device::CPU) cpu::conv3d(a); else if constexpr (kCudaBuilt) cuda::conv3d(a);
  return out;
}

}  // namespace paradit::core
