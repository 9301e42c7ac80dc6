// Every activation op, softmax (long rows, -inf entries, strided rows) and apply_rope (both
// styles; q/k as head slices of a fused projection and as sequence slices).

#include <cmath>
#include <limits>

#include "backend_ops.h"
#include "support/random.h"

namespace paradit::backend_ops {
namespace {

using core::Activation;

enum class View : uint8_t {
  kNone,
  kCols,  // a slice of the last dim of a wider tensor (uniform rows, stride > D)
  kRows,  // a slice of dim 0 of a 3-D tensor's middle... : a slice of dim 1 (non-uniform rows)
};
std::string fmt_view(View v) {
  return v == View::kNone ? "none" : v == View::kCols ? "cols" : "rows";
}

Tensor apply_view(const Tensor& t, View v, const Shape& want) {
  if (v == View::kCols) return t.slice(-1, 2, 2 + want.back());
  if (v == View::kRows) return t.slice(1, 1, 1 + want[1]);
  return t;
}
Shape base_shape(Shape s, View v) {
  if (v == View::kCols) s.back() += 5;
  if (v == View::kRows) s[1] += 3;
  return s;
}

Op op_of(Activation a) {
  switch (a) {
    case Activation::kGeluErf:
    case Activation::kGeluTanh:
      return Op::kGelu;
    case Activation::kSilu:
      return Op::kSilu;
    case Activation::kQuickGelu:
      return Op::kQuickGelu;
    case Activation::kRelu:
      return Op::kRelu;
    case Activation::kExp:
      return Op::kExp;
    case Activation::kSqrt:
      return Op::kSqrt;
    case Activation::kTanh:
      return Op::kTanh;
    case Activation::kNone:
      break;
  }
  return Op::kGelu;
}

Tensor apply(Activation a, const Tensor& x) {
  switch (a) {
    case Activation::kGeluErf:
      return core::gelu(x);
    case Activation::kGeluTanh:
      return core::gelu(x, true);
    case Activation::kSilu:
      return core::silu(x);
    case Activation::kQuickGelu:
      return core::quick_gelu(x);
    case Activation::kRelu:
      return core::relu(x);
    case Activation::kExp:
      return core::exp(x);
    case Activation::kSqrt:
      return core::sqrt(x);
    case Activation::kTanh:
      return core::tanh(x);
    case Activation::kNone:
      break;
  }
  return x;
}

struct ActivationCase : Case {
  Activation act;
  Shape x;
  float lo, hi;
  View view;
  ActivationCase(Activation act, Shape x, float lo, float hi, View view = View::kNone)
      : act(act), x(std::move(x)), lo(lo), hi(hi), view(view) {}
  std::vector<Op> ops() const override { return {op_of(act)}; }
  std::string vars() const override {
    return backend_ops::vars("act", act, "x", x, "lo", double(lo), "hi", double(hi), "view",
                             fmt_view(view));
  }
  std::vector<InputSpec> inputs() const override {
    return {backend_ops::act("x", base_shape(x, view), lo, hi)};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    return {apply_view(in[0], view, x)};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", apply(act, in[0])}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    std::vector<double> v = values(in[0]);
    for (double& e : v) e = activate(act, e);
    return {ref_output("y", x, v)};
  }
  // max(x, 0) is exact.
  bool exact() const override { return act == Activation::kRelu; }
};

// Softmax over the last dim.
struct SoftmaxCase : Case {
  Shape x;
  float amplitude;
  View view;
  bool masked;  // every fifth element (index % 5 == 3) is -inf, as a masked score
  SoftmaxCase(Shape x, float amplitude, View view = View::kNone, bool masked = false)
      : x(std::move(x)), amplitude(amplitude), view(view), masked(masked) {}
  std::vector<Op> ops() const override { return {Op::kSoftmax}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, "amplitude", double(amplitude), "view", fmt_view(view),
                             "masked", masked);
  }
  std::vector<InputSpec> inputs() const override {
    InputSpec s = act("x", base_shape(x, view), -amplitude, amplitude);
    if (masked) {
      const float a = amplitude;
      s.values = [a](size_t n, uint64_t seed) {
        std::vector<float> v = testing::random_values(n, seed, -a, a);
        for (size_t i = 3; i < n; i += 5) v[i] = -std::numeric_limits<float>::infinity();
        return v;
      };
    }
    return {s};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    return {apply_view(in[0], view, x)};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::softmax(in[0])}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    std::vector<double> v = values(in[0]);
    const size_t D = static_cast<size_t>(x.back());
    for (size_t r = 0; r + D <= v.size() && D > 0; r += D) {
      double m = -INFINITY, s = 0;
      for (size_t j = 0; j < D; ++j) m = std::max(m, v[r + j]);
      for (size_t j = 0; j < D; ++j) s += std::exp(v[r + j] - m);
      for (size_t j = 0; j < D; ++j) v[r + j] = std::exp(v[r + j] - m) / s;
    }
    return {ref_output("y", x, v)};
  }
};

enum class RopeView : uint8_t {
  kNone,
  kHeads,  // x = heads [H, 2H) of a fused (B, S, 3H, D) projection (k of qkv)
  kSeq,    // x = tokens [2, 2 + S) of (B, S + 3, H, D) (the image part of a joint sequence)
};
std::string fmt_rope(RopeView v) {
  return v == RopeView::kNone ? "none" : v == RopeView::kHeads ? "heads" : "seq";
}

struct RopeCase : Case {
  core::RopeStyle style;
  int64_t B, S, H, D;
  RopeView view;
  RopeCase(core::RopeStyle style, int64_t B, int64_t S, int64_t H, int64_t D,
           RopeView view = RopeView::kNone)
      : style(style), B(B), S(S), H(H), D(D), view(view) {}
  bool interleaved() const { return style == core::RopeStyle::kInterleaved; }
  std::vector<Op> ops() const override { return {Op::kApplyRope}; }
  std::string vars() const override {
    return backend_ops::vars("style", std::string(interleaved() ? "interleaved" : "half_split"),
                             "B", B, "S", S, "H", H, "D", D, "view", fmt_rope(view));
  }
  std::vector<InputSpec> inputs() const override {
    Shape xs{B, S, H, D};
    if (view == RopeView::kHeads) xs[2] = 3 * H;
    if (view == RopeView::kSeq) xs[1] = S + 3;
    return {act("x", xs), f32("cos", {S, D}), f32("sin", {S, D})};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    std::vector<Tensor> v = in;
    if (view == RopeView::kHeads) v[0] = in[0].slice(2, H, 2 * H);
    if (view == RopeView::kSeq) v[0] = in[0].slice(1, 2, 2 + S);
    return v;
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::apply_rope(in[0], in[1], in[2], style)}}, {}};
  }
  // diffusers' apply_rotary_emb: out = x·cos + rotate(x)·sin with rotate pairing (2i, 2i+1)
  // (use_real_unbind_dim = −1) or (i, i + D/2) (rotate_half).
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> x = values(in[0]), c = values(in[1]), s = values(in[2]);
    std::vector<double> y(x.size());
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < S; ++t) {
        for (int64_t h = 0; h < H; ++h) {
          const double* xr = x.data() + ((b * S + t) * H + h) * D;
          double* o = y.data() + ((b * S + t) * H + h) * D;
          const double* cr = c.data() + t * D;
          const double* sr = s.data() + t * D;
          for (int64_t i = 0; i < D; ++i) {
            double rot;
            if (interleaved()) {
              rot = i % 2 == 0 ? -xr[i + 1] : xr[i - 1];
            } else {
              rot = i < D / 2 ? -xr[i + D / 2] : xr[i - D / 2];
            }
            o[i] = xr[i] * cr[i] + rot * sr[i];
          }
        }
      }
    }
    return {ref_output("y", {B, S, H, D}, y)};
  }
};

}  // namespace

void add_activation_cases(CaseList& c) {
  using A = Activation;
  struct Range {
    A act;
    float lo, hi;
  };
  // The usual range of each, then the tails.
  for (Range r : {Range{A::kGeluErf, -4, 4}, Range{A::kGeluTanh, -4, 4}, Range{A::kSilu, -6, 6},
                  Range{A::kQuickGelu, -6, 6}, Range{A::kRelu, -2, 2}, Range{A::kExp, -6, 6},
                  Range{A::kSqrt, 0, 9}, Range{A::kTanh, -3, 3}}) {
    c.push_back(std::make_unique<ActivationCase>(r.act, Shape{3, 17, 40}, r.lo, r.hi));
    c.push_back(std::make_unique<ActivationCase>(r.act, Shape{3, 17, 40}, r.lo, r.hi, View::kCols));
    c.push_back(std::make_unique<ActivationCase>(r.act, Shape{3, 17, 40}, r.lo, r.hi, View::kRows));
    c.push_back(std::make_unique<ActivationCase>(r.act, Shape{7}, r.lo, r.hi));
  }
  for (Range r : {Range{A::kGeluErf, -12, 12}, Range{A::kGeluTanh, -12, 12},
                  Range{A::kSilu, -40, 40}, Range{A::kQuickGelu, -40, 40}, Range{A::kExp, -60, 60},
                  Range{A::kTanh, -25, 25}, Range{A::kSqrt, 0, 1e-3f}}) {
    c.push_back(std::make_unique<ActivationCase>(r.act, Shape{5, 4097}, r.lo, r.hi));
  }
  c.push_back(std::make_unique<ActivationCase>(A::kSilu, Shape{0, 5}, -1, 1));

  // softmax
  c.push_back(std::make_unique<SoftmaxCase>(Shape{4, 9, 300}, 8.0f));
  c.push_back(std::make_unique<SoftmaxCase>(Shape{4, 9, 300}, 8.0f, View::kCols));
  c.push_back(std::make_unique<SoftmaxCase>(Shape{4, 9, 300}, 8.0f, View::kRows));
  c.push_back(std::make_unique<SoftmaxCase>(Shape{3, 5000}, 3.0f));
  c.push_back(std::make_unique<SoftmaxCase>(Shape{6, 1}, 3.0f));
  c.push_back(std::make_unique<SoftmaxCase>(Shape{2, 3, 77}, 80.0f));
  c.push_back(std::make_unique<SoftmaxCase>(Shape{2, 3, 77}, 4.0f, View::kNone, true));

  // apply_rope
  for (core::RopeStyle s : {core::RopeStyle::kInterleaved, core::RopeStyle::kHalfSplit}) {
    c.push_back(std::make_unique<RopeCase>(s, 2, 11, 3, 64));
    c.push_back(std::make_unique<RopeCase>(s, 2, 11, 3, 128, RopeView::kHeads));
    c.push_back(std::make_unique<RopeCase>(s, 2, 9, 2, 72, RopeView::kSeq));
    c.push_back(std::make_unique<RopeCase>(s, 1, 5, 1, 2));
    c.push_back(std::make_unique<RopeCase>(s, 3, 4, 5, 6, RopeView::kHeads));
  }
}

}  // namespace paradit::backend_ops
