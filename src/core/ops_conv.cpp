// conv2d and nearest upsampling: argument checks, then the CPU bodies in src/backend/cpu.

#include "backend/cpu/kernels.h"
#include "core/ops.h"
#include "core/ops_common.h"

namespace paradit::core {

using detail::check_f32;

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& opt) {
  check_f32("conv2d", "x", x);
  PARADIT_CHECK(w.defined() && (w.dtype() == DType::F32 || w.dtype() == DType::BF16),
                "conv2d: weight must be F32 or BF16, got ",
                w.defined() ? w.str() : std::string("undefined"));
  PARADIT_CHECK(w.device() == Device::CPU, "conv2d: weight is on ", device_name(w.device()),
                "; this op has only a CPU body");
  PARADIT_CHECK(x.ndim() == 4, "conv2d: x ", x.str(), " must be (N, C, H, W)");
  PARADIT_CHECK(w.ndim() == 4, "conv2d: weight ", w.str(), " must be (O, C, kh, kw)");
  PARADIT_CHECK(w.dim(1) == x.dim(1), "conv2d: weight ", w.str(), " expects ", w.dim(1),
                " input channels, x ", x.str(), " has ", x.dim(1));
  PARADIT_CHECK(opt.stride_h >= 1 && opt.stride_w >= 1, "conv2d: stride (", opt.stride_h, ", ",
                opt.stride_w, ") must be positive");
  PARADIT_CHECK(opt.pad_top >= 0 && opt.pad_bottom >= 0 && opt.pad_left >= 0 && opt.pad_right >= 0,
                "conv2d: padding (top ", opt.pad_top, ", bottom ", opt.pad_bottom, ", left ",
                opt.pad_left, ", right ", opt.pad_right, ") must not be negative");
  backend::cpu::Conv2dGeometry g;
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
  Tensor b;
  if (bias.defined()) b = detail::vector_param("conv2d", "bias", bias, g.O);
  const Tensor xc = x.contiguous();
  const Tensor wc = w.contiguous();
  Tensor out = Tensor::empty({g.N, g.O, g.out_h(), g.out_w()});  // (N, O, H', W')
  backend::cpu::conv2d_f32(xc.data<float>(), wc.raw_data(), w.dtype() == DType::BF16,
                           b.defined() ? b.data<float>() : nullptr, g, out.data<float>());
  return out;
}

Tensor upsample_nearest2d(const Tensor& x, int factor) {
  check_f32("upsample_nearest2d", "x", x);
  PARADIT_CHECK(x.ndim() == 4, "upsample_nearest2d: x ", x.str(), " must be (N, C, H, W)");
  PARADIT_CHECK(factor >= 1, "upsample_nearest2d: factor ", factor, " must be >= 1");
  const Tensor xc = x.contiguous();
  const int64_t H = x.dim(2), W = x.dim(3);
  Tensor out = Tensor::empty({x.dim(0), x.dim(1), H * factor, W * factor});  // (N, C, H·f, W·f)
  backend::cpu::upsample_nearest2d_f32(xc.data<float>(), x.dim(0) * x.dim(1), H, W, factor,
                                       out.data<float>());
  return out;
}

}  // namespace paradit::core
