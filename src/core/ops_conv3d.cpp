// conv3d: argument checks, then the CPU body in src/backend/cpu/conv3d.cpp.

#include "backend/cpu/conv3d.h"
#include "core/ops.h"
#include "core/ops_common.h"

namespace paradit::core {

Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dOptions& opt) {
  detail::check_f32("conv3d", "x", x);
  PARADIT_CHECK(w.defined() && (w.dtype() == DType::F32 || w.dtype() == DType::BF16),
                "conv3d: weight must be F32 or BF16, got ",
                w.defined() ? w.str() : std::string("undefined"));
  PARADIT_CHECK(w.device() == Device::CPU, "conv3d: weight is on ", device_name(w.device()),
                "; this op has only a CPU body");
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
  backend::cpu::Conv3dGeometry g;
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
  Tensor b;
  if (bias.defined()) b = detail::vector_param("conv3d", "bias", bias, g.O);
  const Tensor xc = x.contiguous();
  const Tensor wc = w.contiguous();
  Tensor out = Tensor::empty({g.N, g.O, g.out_t(), g.out_h(), g.out_w()});  // (N, O, T', H', W')
  backend::cpu::conv3d_f32(xc.data<float>(), wc.raw_data(), w.dtype() == DType::BF16,
                           b.defined() ? b.data<float>() : nullptr, g, out.data<float>());
  return out;
}

}  // namespace paradit::core
