// conv2d (same padding, strides, asymmetric padding, 1×1, patch embedding, odd channel counts,
// weight dtypes, a strided input), conv3d (causal time padding, replicate padding, strides, bf16
// weights) and upsample_nearest2d.

#include <algorithm>

#include "backend_ops.h"

namespace paradit::backend_ops {
namespace {

// With BF16 weights the input is rounded to BF16 too: the CPU's BF16 GEMM converts it
// (backend/cpu/gemm.h), CUDA runs the convolution in the weight's dtype.
std::vector<double> bf16_rounded_if(std::vector<double> v, bool round) {
  if (round) {
    for (double& e : v) e = round_to(DType::BF16, e);
  }
  return v;
}

struct Conv2dCase : Case {
  int64_t N, C, H, W, O, kh, kw;
  core::Conv2dOptions opt;
  bool bias;
  WeightType w;
  bool strided;  // x a slice of the last dim of a wider tensor
  Conv2dCase(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw,
             core::Conv2dOptions opt, bool bias, WeightType w = WeightType::kAct,
             bool strided = false)
      : N(N),
        C(C),
        H(H),
        W(W),
        O(O),
        kh(kh),
        kw(kw),
        opt(opt),
        bias(bias),
        w(w),
        strided(strided) {}
  std::vector<Op> ops() const override { return {Op::kConv2d}; }
  std::string vars() const override {
    return backend_ops::vars("x", Shape{N, C, H, W}, "w", Shape{O, C, kh, kw}, "stride",
                             Shape{opt.stride_h, opt.stride_w}, "pad_tblr",
                             Shape{opt.pad_top, opt.pad_bottom, opt.pad_left, opt.pad_right},
                             "bias", bias, "wdtype", w, "strided", strided);
  }
  std::vector<InputSpec> inputs() const override {
    std::vector<InputSpec> in = {act("x", {N, C, H, strided ? W + 4 : W}),
                                 weight("w", {O, C, kh, kw}, w)};
    if (bias) in.push_back(f32("bias", {O}));
    return in;
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    std::vector<Tensor> v = in;
    if (strided) v[0] = in[0].slice(3, 1, 1 + W);
    return v;
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::conv2d(in[0], in[1], bias ? in[2] : Tensor(), opt)}}, {}};
  }
  int64_t OH() const { return (H + opt.pad_top + opt.pad_bottom - kh) / opt.stride_h + 1; }
  int64_t OW() const { return (W + opt.pad_left + opt.pad_right - kw) / opt.stride_w + 1; }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> x = bf16_rounded_if(values(in[0]), in[1].dtype() == DType::BF16);
    const std::vector<double> wv = values(in[1]);
    const std::vector<double> b = bias ? values(in[2]) : std::vector<double>(O, 0.0);
    const int64_t oh = OH(), ow = OW();
    std::vector<double> y(N * O * oh * ow);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j) {
            double s = b[o];
            for (int64_t c = 0; c < C; ++c)
              for (int64_t u = 0; u < kh; ++u)
                for (int64_t t = 0; t < kw; ++t) {
                  const int64_t yy = i * opt.stride_h - opt.pad_top + u;
                  const int64_t xx = j * opt.stride_w - opt.pad_left + t;
                  if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                  s += x[((n * C + c) * H + yy) * W + xx] * wv[((o * C + c) * kh + u) * kw + t];
                }
            y[((n * O + o) * oh + i) * ow + j] = s;
          }
    return {ref_output("y", {N, O, oh, ow}, y)};
  }
  std::string unsupported(const Run& r) const override {
    if (r.device == Device::CPU && w == WeightType::kF16) {
      return "the CPU conv2d takes F32 or BF16 weights";
    }
    return {};
  }
  double tolerance(const Run& r) const override {
    return dtype_tolerance(coarser(r.dtype, weight_dtype(w, r.dtype)));
  }
};

struct Conv3dCase : Case {
  int64_t N, C, T, H, W, O, kt, kh, kw;
  core::Conv3dOptions opt;
  bool bias;
  WeightType w;
  Conv3dCase(int64_t N, int64_t C, int64_t T, int64_t H, int64_t W, int64_t O, int64_t kt,
             int64_t kh, int64_t kw, core::Conv3dOptions opt, bool bias,
             WeightType w = WeightType::kAct)
      : N(N), C(C), T(T), H(H), W(W), O(O), kt(kt), kh(kh), kw(kw), opt(opt), bias(bias), w(w) {}
  std::vector<Op> ops() const override { return {Op::kConv3d}; }
  std::string vars() const override {
    return backend_ops::vars("x", Shape{N, C, T, H, W}, "w", Shape{O, C, kt, kh, kw}, "stride",
                             Shape{opt.stride_t, opt.stride_h, opt.stride_w}, "pad_fbtblr",
                             Shape{opt.pad_front, opt.pad_back, opt.pad_top, opt.pad_bottom,
                                   opt.pad_left, opt.pad_right},
                             "replicate", opt.replicate, "bias", bias, "wdtype", w);
  }
  std::vector<InputSpec> inputs() const override {
    std::vector<InputSpec> in = {act("x", {N, C, T, H, W}), weight("w", {O, C, kt, kh, kw}, w)};
    if (bias) in.push_back(f32("bias", {O}));
    return in;
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::conv3d(in[0], in[1], bias ? in[2] : Tensor(), opt)}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> x = bf16_rounded_if(values(in[0]), in[1].dtype() == DType::BF16);
    const std::vector<double> wv = values(in[1]);
    const std::vector<double> b = bias ? values(in[2]) : std::vector<double>(O, 0.0);
    const int64_t ot = (T + opt.pad_front + opt.pad_back - kt) / opt.stride_t + 1;
    const int64_t oh = (H + opt.pad_top + opt.pad_bottom - kh) / opt.stride_h + 1;
    const int64_t ow = (W + opt.pad_left + opt.pad_right - kw) / opt.stride_w + 1;
    std::vector<double> y(N * O * ot * oh * ow);
    // An input coordinate in the padded volume: replicate clamps to the edge, zeros drop it.
    auto src = [&](int64_t p, int64_t size, int64_t* out) {
      if (p >= 0 && p < size) {
        *out = p;
        return true;
      }
      if (!opt.replicate) return false;
      *out = std::clamp<int64_t>(p, 0, size - 1);
      return true;
    };
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o)
        for (int64_t a = 0; a < ot; ++a)
          for (int64_t i = 0; i < oh; ++i)
            for (int64_t j = 0; j < ow; ++j) {
              double s = b[o];
              for (int64_t c = 0; c < C; ++c)
                for (int64_t u = 0; u < kt; ++u)
                  for (int64_t v = 0; v < kh; ++v)
                    for (int64_t q = 0; q < kw; ++q) {
                      int64_t tt, yy, xx;
                      if (!src(a * opt.stride_t - opt.pad_front + u, T, &tt) ||
                          !src(i * opt.stride_h - opt.pad_top + v, H, &yy) ||
                          !src(j * opt.stride_w - opt.pad_left + q, W, &xx)) {
                        continue;
                      }
                      s += x[(((n * C + c) * T + tt) * H + yy) * W + xx] *
                           wv[(((o * C + c) * kt + u) * kh + v) * kw + q];
                    }
              y[(((n * O + o) * ot + a) * oh + i) * ow + j] = s;
            }
    return {ref_output("y", {N, O, ot, oh, ow}, y)};
  }
  std::string unsupported(const Run& r) const override {
    if (r.device == Device::CPU && w == WeightType::kF16) {
      return "the CPU conv3d takes F32 or BF16 weights";
    }
    return {};
  }
  double tolerance(const Run& r) const override {
    return dtype_tolerance(coarser(r.dtype, weight_dtype(w, r.dtype)));
  }
};

struct UpsampleCase : Case {
  Shape x;
  int factor;
  bool strided;
  UpsampleCase(Shape x, int factor, bool strided = false)
      : x(std::move(x)), factor(factor), strided(strided) {}
  std::vector<Op> ops() const override { return {Op::kUpsampleNearest2d}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, "factor", factor, "strided", strided);
  }
  std::vector<InputSpec> inputs() const override {
    Shape s = x;
    if (strided) s[2] += 2;
    return {act("x", s)};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    return {strided ? in[0].slice(2, 1, 1 + x[2]) : in[0]};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::upsample_nearest2d(in[0], factor)}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> v = values(in[0]);
    const int64_t P = x[0] * x[1], H = x[2], W = x[3], f = factor;
    std::vector<double> y(P * H * f * W * f);
    for (int64_t p = 0; p < P; ++p)
      for (int64_t i = 0; i < H * f; ++i)
        for (int64_t j = 0; j < W * f; ++j)
          y[(p * H * f + i) * W * f + j] = v[(p * H + i / f) * W + j / f];
    return {ref_output("y", {x[0], x[1], H * f, W * f}, y)};
  }
  bool exact() const override { return true; }
};

core::Conv2dOptions c2(int sh, int sw, int t, int b, int l, int r) { return {sh, sw, t, b, l, r}; }

core::Conv3dOptions c3(int st, int sh, int sw, int f, int bk, int t, int b, int l, int r,
                       bool replicate) {
  core::Conv3dOptions o;
  o.stride_t = st;
  o.stride_h = sh;
  o.stride_w = sw;
  o.pad_front = f;
  o.pad_back = bk;
  o.pad_top = t;
  o.pad_bottom = b;
  o.pad_left = l;
  o.pad_right = r;
  o.replicate = replicate;
  return o;
}

}  // namespace

void add_conv_cases(CaseList& c) {
  using W = WeightType;
  auto conv2d = [&](int64_t N, int64_t C, int64_t H, int64_t Wd, int64_t O, int64_t kh, int64_t kw,
                    core::Conv2dOptions o, bool bias, W w = W::kAct, bool strided = false) {
    c.push_back(std::make_unique<Conv2dCase>(N, C, H, Wd, O, kh, kw, o, bias, w, strided));
  };
  conv2d(2, 3, 9, 11, 5, 3, 3, core::Conv2dOptions::same(1, 1), true);
  conv2d(2, 3, 9, 11, 5, 3, 3, core::Conv2dOptions::same(1, 1), false);
  conv2d(1, 4, 10, 12, 6, 3, 3, c2(2, 2, 0, 1, 0, 1), true);  // VAE downsample: pad (0,1,0,1)
  conv2d(2, 64, 6, 5, 32, 1, 1, {}, true);
  conv2d(2, 4, 8, 12, 32, 2, 2, c2(2, 2, 0, 0, 0, 0), true);  // patch embedding
  conv2d(1, 3, 9, 9, 8, 4, 4, core::Conv2dOptions::same(2, 1), true);
  conv2d(1, 1, 7, 5, 7, 3, 1, c2(1, 1, 1, 1, 0, 0), true);
  conv2d(1, 5, 6, 7, 3, 2, 3, c2(1, 2, 0, 1, 2, 0), false);
  conv2d(1, 128, 8, 8, 64, 3, 3, core::Conv2dOptions::same(1, 1), true);
  conv2d(2, 3, 9, 11, 5, 3, 3, core::Conv2dOptions::same(1, 1), true, W::kAct, true);
  for (W w : {W::kBF16, W::kF16, W::kF32}) {
    conv2d(2, 8, 9, 11, 16, 3, 3, core::Conv2dOptions::same(1, 1), true, w);
  }

  auto conv3d = [&](int64_t N, int64_t C, int64_t T, int64_t H, int64_t Wd, int64_t O, int64_t kt,
                    int64_t kh, int64_t kw, core::Conv3dOptions o, bool bias, W w = W::kAct) {
    c.push_back(std::make_unique<Conv3dCase>(N, C, T, H, Wd, O, kt, kh, kw, o, bias, w));
  };
  conv3d(1, 4, 5, 6, 7, 6, 3, 3, 3, c3(1, 1, 1, 2, 0, 1, 1, 1, 1, false), true);  // causal (Wan)
  conv3d(1, 4, 5, 6, 7, 6, 3, 3, 3, c3(1, 1, 1, 2, 0, 1, 1, 1, 1, true), true);   // Hunyuan
  conv3d(2, 3, 4, 9, 8, 5, 3, 3, 3, c3(1, 2, 2, 2, 0, 0, 1, 0, 1, false), true);
  conv3d(1, 3, 7, 5, 5, 4, 3, 1, 1, c3(2, 1, 1, 0, 0, 0, 0, 0, 0, false), true);
  conv3d(1, 8, 3, 4, 5, 16, 1, 1, 1, {}, true);
  conv3d(1, 4, 3, 6, 6, 4, 1, 3, 3, c3(1, 1, 1, 0, 0, 1, 1, 1, 1, false), false);
  conv3d(1, 4, 5, 7, 6, 3, 3, 3, 3, c3(1, 2, 2, 2, 0, 1, 1, 1, 1, true), true);
  conv3d(1, 4, 5, 6, 7, 6, 3, 3, 3, c3(1, 1, 1, 2, 0, 1, 1, 1, 1, false), true, W::kBF16);
  conv3d(1, 4, 5, 6, 7, 6, 3, 3, 3, c3(1, 1, 1, 2, 0, 1, 1, 1, 1, true), true, W::kF32);

  c.push_back(std::make_unique<UpsampleCase>(Shape{2, 3, 5, 7}, 2));
  c.push_back(std::make_unique<UpsampleCase>(Shape{1, 4, 3, 3}, 3));
  c.push_back(std::make_unique<UpsampleCase>(Shape{1, 2, 4, 4}, 1));
  c.push_back(std::make_unique<UpsampleCase>(Shape{2, 3, 5, 7}, 2, true));
}

}  // namespace paradit::backend_ops
