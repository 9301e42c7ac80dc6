// add / sub / mul / div with every broadcast pattern and strided operands, scale, add_ (also onto
// itself), modulate and gated_add with every parameter layout, lincomb (1–6 terms, skipped
// terms, post mul/div), clamp and affine (both kinds, per channel or one value, any dim). The
// arithmetic that is exactly rounded by contract is compared bit for bit.

#include <cmath>

#include "backend_ops.h"
#include "support/random.h"

namespace paradit::backend_ops {
namespace {

// An operand as the op sees it: its shape, and whether it is a view of a larger tensor.
enum class OperandView : uint8_t {
  kNone,
  kCols,    // a slice of the last dim of a wider tensor
  kSelect,  // one index of an extra leading dim (offset storage)
};
std::string fmt_ov(OperandView v) {
  return v == OperandView::kNone ? "" : v == OperandView::kCols ? "cols" : "select";
}
Shape operand_base(Shape s, OperandView v) {
  if (v == OperandView::kCols) {
    if (s.empty()) s = {1};
    s.back() += 3;
  }
  if (v == OperandView::kSelect) s.insert(s.begin(), 2);
  return s;
}
Tensor operand_view(const Tensor& t, OperandView v, const Shape& s) {
  if (v == OperandView::kCols) return t.slice(-1, 1, 1 + s.back());
  if (v == OperandView::kSelect) return t.select(0, 1);
  return t;
}

// Index of `t`'s element (shape ts, right-aligned) for an index of the broadcast shape.
int64_t bcast_index(const Shape& out, const Shape& ts, const std::vector<int64_t>& idx) {
  int64_t off = 0;
  const size_t lead = out.size() - ts.size();
  for (size_t i = 0; i < ts.size(); ++i) off = off * ts[i] + (ts[i] == 1 ? 0 : idx[lead + i]);
  return off;
}

Shape broadcast(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i + a.size() >= n ? a[i + a.size() - n] : 1;
    const int64_t db = i + b.size() >= n ? b[i + b.size() - n] : 1;
    out[i] = da == 1 ? db : da;
  }
  return out;
}

struct BinaryCase : Case {
  Op kind;
  Shape a, b;
  OperandView va, vb;
  BinaryCase(Op kind, Shape a, Shape b, OperandView va = OperandView::kNone,
             OperandView vb = OperandView::kNone)
      : kind(kind), a(std::move(a)), b(std::move(b)), va(va), vb(vb) {}
  std::vector<Op> ops() const override { return {kind}; }
  std::string vars() const override {
    return backend_ops::vars("a", a, "b", b, "a_view", fmt_ov(va), "b_view", fmt_ov(vb));
  }
  std::vector<InputSpec> inputs() const override {
    InputSpec sb = act("b", operand_base(b, vb));
    if (kind == Op::kDiv) sb.values = signed_magnitude(0.5f, 2.0f);
    return {act("a", operand_base(a, va)), sb};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    return {operand_view(in[0], va, a), operand_view(in[1], vb, b)};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    Tensor y;
    switch (kind) {
      case Op::kAdd:
        y = core::add(in[0], in[1]);
        break;
      case Op::kSub:
        y = core::sub(in[0], in[1]);
        break;
      case Op::kMul:
        y = core::mul(in[0], in[1]);
        break;
      default:
        y = core::div(in[0], in[1]);
        break;
    }
    return {{{"y", y}}, {}};
  }
  // In f32, each result rounded once (IEEE), as every body computes it.
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> av = values(in[0]), bv = values(in[1]);
    const Shape out = broadcast(a, b);
    const int64_t n = core::shape_numel(out);
    std::vector<double> y(static_cast<size_t>(n));
    std::vector<int64_t> idx(out.size(), 0);
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i;
      for (int d = static_cast<int>(out.size()) - 1; d >= 0; --d) {
        idx[d] = rem % out[d];
        rem /= out[d];
      }
      const float x = static_cast<float>(av[bcast_index(out, a, idx)]);
      const float z = static_cast<float>(bv[bcast_index(out, b, idx)]);
      float r;
      switch (kind) {
        case Op::kAdd:
          r = x + z;
          break;
        case Op::kSub:
          r = x - z;
          break;
        case Op::kMul:
          r = x * z;
          break;
        default:
          r = x / z;
          break;
      }
      y[i] = r;
    }
    return {ref_output("y", out, y)};
  }
  bool exact() const override { return true; }
};

struct ScaleCase : Case {
  Shape x;
  float s;
  bool strided;
  ScaleCase(Shape x, float s, bool strided) : x(std::move(x)), s(s), strided(strided) {}
  std::vector<Op> ops() const override { return {Op::kScale}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, "s", double(s), "strided", strided);
  }
  std::vector<InputSpec> inputs() const override {
    return {act("x", operand_base(x, strided ? OperandView::kCols : OperandView::kNone))};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    return {operand_view(in[0], strided ? OperandView::kCols : OperandView::kNone, x)};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::scale(in[0], s)}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    std::vector<double> v = values(in[0]);
    for (double& e : v) e = static_cast<float>(static_cast<float>(e) * s);
    return {ref_output("y", x, v)};
  }
  bool exact() const override { return true; }
};

// a += b, a contiguous; b broadcast, or a itself.
struct AddInPlaceCase : Case {
  Shape a, b;
  bool self;  // add_(a, a)
  AddInPlaceCase(Shape a, Shape b, bool self = false)
      : a(std::move(a)), b(std::move(b)), self(self) {}
  std::vector<Op> ops() const override { return {Op::kAddInPlace}; }
  std::string vars() const override {
    return self ? backend_ops::vars("a", a, "b", std::string("a"))
                : backend_ops::vars("a", a, "b", b);
  }
  std::vector<InputSpec> inputs() const override {
    if (self) return {act("a", a)};
    return {act("a", a), act("b", b)};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    Tensor x = in[0].clone();  // the op writes into its operand: a fresh copy of the input
    core::add_(x, self ? x : in[1]);
    return {{{"a", x}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> av = values(in[0]);
    const std::vector<double> bv = self ? av : values(in[1]);
    const Shape bs = self ? a : b;
    std::vector<double> y(av.size());
    std::vector<int64_t> idx(a.size(), 0);
    for (size_t i = 0; i < av.size(); ++i) {
      int64_t rem = static_cast<int64_t>(i);
      for (int d = static_cast<int>(a.size()) - 1; d >= 0; --d) {
        idx[d] = rem % a[d];
        rem /= a[d];
      }
      y[i] = static_cast<float>(static_cast<float>(av[i]) +
                                static_cast<float>(bv[bcast_index(a, bs, idx)]));
    }
    return {ref_output("a", a, y)};
  }
  bool exact() const override { return true; }
};

// The layouts of a modulation parameter (shift, scale, gate) for x (B, S, D).
enum class ParamKind : uint8_t {
  kBD,     // (B, D)
  kB1D,    // (B, 1, D)
  kOneD,   // (1, D)
  kChunk,  // a (B, D) slice of a (B, 6·D) embedding
};
std::string fmt_param(ParamKind p) {
  switch (p) {
    case ParamKind::kBD:
      return "BD";
    case ParamKind::kB1D:
      return "B1D";
    case ParamKind::kOneD:
      return "1D";
    case ParamKind::kChunk:
      return "chunk";
  }
  return "?";
}
Shape param_base(ParamKind p, int64_t B, int64_t D) {
  switch (p) {
    case ParamKind::kBD:
      return {B, D};
    case ParamKind::kB1D:
      return {B, 1, D};
    case ParamKind::kOneD:
      return {1, D};
    case ParamKind::kChunk:
      return {B, 6 * D};
  }
  return {};
}
Tensor param_view(const Tensor& t, ParamKind p, int64_t D, int chunk) {
  return p == ParamKind::kChunk ? t.slice(1, chunk * D, (chunk + 1) * D) : t;
}

struct ModulateCase : Case {
  int64_t B, S, D;
  ParamKind p;
  bool param_act;      // parameters in the activation dtype (else F32)
  bool scale_one_row;  // scale (1, D) whatever p: shift and scale with their own batch strides
  ModulateCase(int64_t B, int64_t S, int64_t D, ParamKind p, bool param_act,
               bool scale_one_row = false)
      : B(B), S(S), D(D), p(p), param_act(param_act), scale_one_row(scale_one_row) {}
  std::vector<Op> ops() const override { return {Op::kModulate}; }
  std::string vars() const override {
    return backend_ops::vars("x", Shape{B, S, D}, "shift", fmt_param(p), "scale",
                             fmt_param(scale_kind()), "param_dtype",
                             std::string(param_act ? "act" : "F32"));
  }
  ParamKind scale_kind() const { return scale_one_row ? ParamKind::kOneD : p; }
  InputSpec param(const std::string& n, ParamKind k) const {
    return param_act ? act(n, param_base(k, B, D)) : f32(n, param_base(k, B, D));
  }
  std::vector<InputSpec> inputs() const override {
    return {act("x", {B, S, D}), param("shift", p), param("scale", scale_kind())};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    return {in[0], param_view(in[1], p, D, 0), param_view(in[2], scale_kind(), D, 1)};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::modulate(in[0], in[1], in[2])}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> x = values(in[0]), sh = values(in[1]), sc = values(in[2]);
    std::vector<double> y(x.size());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t d = 0; d < D; ++d) {
          const int64_t hi = (p == ParamKind::kOneD ? 0 : b) * D + d;
          const int64_t ci = (scale_kind() == ParamKind::kOneD ? 0 : b) * D + d;
          y[(b * S + s) * D + d] = x[(b * S + s) * D + d] * (1.0 + sc[ci]) + sh[hi];
        }
    return {ref_output("y", {B, S, D}, y)};
  }
};

struct GatedAddCase : Case {
  int64_t B, S, D;
  ParamKind p;
  bool gate_act;
  GatedAddCase(int64_t B, int64_t S, int64_t D, ParamKind p, bool gate_act)
      : B(B), S(S), D(D), p(p), gate_act(gate_act) {}
  std::vector<Op> ops() const override { return {Op::kGatedAdd}; }
  std::string vars() const override {
    return backend_ops::vars("x", Shape{B, S, D}, "gate", fmt_param(p), "gate_dtype",
                             std::string(gate_act ? "act" : "F32"));
  }
  std::vector<InputSpec> inputs() const override {
    return {act("x", {B, S, D}),
            gate_act ? act("gate", param_base(p, B, D)) : f32("gate", param_base(p, B, D)),
            act("y", {B, S, D})};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    return {in[0], param_view(in[1], p, D, 2), in[2]};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"out", core::gated_add(in[0], in[1], in[2])}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> x = values(in[0]), g = values(in[1]), y = values(in[2]);
    std::vector<double> o(x.size());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t d = 0; d < D; ++d) {
          const int64_t i = (b * S + s) * D + d;
          o[i] = x[i] + g[(p == ParamKind::kOneD ? 0 : b) * D + d] * y[i];
        }
    return {ref_output("out", {B, S, D}, o)};
  }
};

// ((c0·t0 + c1·t1) + …)·post_mul / post_div, each step rounded to f32 in this order.
struct LincombCase : Case {
  Shape x;
  std::vector<float> coef;
  std::vector<bool> present;  // false: the term's tensor is undefined (skipped)
  float post_mul, post_div;
  LincombCase(Shape x, std::vector<float> coef, std::vector<bool> present, float post_mul = 1.0f,
              float post_div = 1.0f)
      : x(std::move(x)),
        coef(std::move(coef)),
        present(std::move(present)),
        post_mul(post_mul),
        post_div(post_div) {}
  std::vector<Op> ops() const override { return {Op::kLincomb}; }
  std::string vars() const override {
    std::string c;
    for (size_t i = 0; i < coef.size(); ++i) {
      {
        if (i) c += ";";
        c += present[i] ? fmt(double(coef[i])) : std::string("skip");
      }
    }
    return backend_ops::vars("x", x, "coef", c, "post_mul", double(post_mul), "post_div",
                             double(post_div));
  }
  std::vector<InputSpec> inputs() const override {
    std::vector<InputSpec> in;
    for (size_t i = 0; i < coef.size(); ++i) {
      if (present[i]) in.push_back(act(indexed("t", i), x, -2.0f, 2.0f));
    }
    return in;
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    std::vector<std::pair<float, Tensor>> terms;
    size_t k = 0;
    for (size_t i = 0; i < coef.size(); ++i)
      terms.push_back({coef[i], present[i] ? in[k++] : Tensor()});
    return {{{"y", core::lincomb(terms, {post_mul, post_div})}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    std::vector<std::vector<double>> t;
    for (const Tensor& e : in) t.push_back(values(e));
    const size_t n = static_cast<size_t>(core::shape_numel(x));
    std::vector<double> y(n);
    for (size_t j = 0; j < n; ++j) {
      float acc = 0.0f;
      bool first = true;
      size_t k = 0;
      for (size_t i = 0; i < coef.size(); ++i) {
        if (!present[i]) continue;
        // volatile: each product and sum rounded on its own (no contraction into an FMA).
        volatile float prod = coef[i] * static_cast<float>(t[k++][j]);
        acc = first ? static_cast<float>(prod) : acc + prod;
        first = false;
      }
      acc = acc * post_mul;
      acc = acc / post_div;
      y[j] = acc;
    }
    return {ref_output("y", x, y)};
  }
  bool exact() const override { return true; }
};

struct ClampCase : Case {
  Shape x;
  float lo, hi;
  ClampCase(Shape x, float lo, float hi) : x(std::move(x)), lo(lo), hi(hi) {}
  std::vector<Op> ops() const override { return {Op::kClamp}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, "lo", double(lo), "hi", double(hi));
  }
  std::vector<InputSpec> inputs() const override { return {act("x", x, -2.0f, 2.0f)}; }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::clamp(in[0], lo, hi)}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    std::vector<double> v = values(in[0]);
    for (double& e : v) e = std::min<double>(std::max<double>(e, lo), hi);
    return {ref_output("y", x, v)};
  }
  bool exact() const override { return true; }
};

// count_non_finite: about one value in seven of a seeded pattern NaN, +inf or −inf (exact in every
// dtype), the rest finite; the count read back to the host.
struct CountNonFiniteCase : Case {
  Shape x;
  bool strided;
  CountNonFiniteCase(Shape x, bool strided) : x(std::move(x)), strided(strided) {}
  std::vector<Op> ops() const override { return {Op::kCountNonFinite}; }
  std::string vars() const override { return backend_ops::vars("x", x, "strided", strided); }
  std::vector<InputSpec> inputs() const override {
    InputSpec in = act("x", operand_base(x, strided ? OperandView::kCols : OperandView::kNone));
    in.values = [](size_t n, uint64_t seed) {
      std::vector<float> v = testing::random_values(n, seed, -4.0f, 4.0f);
      const float specials[] = {std::nanf(""), INFINITY, -INFINITY};
      for (size_t i = 0; i < n; ++i) {
        const uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
        if (h % 7 == 0) v[i] = specials[(h >> 8) % 3];
      }
      return v;
    };
    return {in};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    return {operand_view(in[0], strided ? OperandView::kCols : OperandView::kNone, x)};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    const int64_t count = core::count_non_finite(in[0]);
    return {{{"count", Tensor::from_vector(std::vector<float>{static_cast<float>(count)}, {1})}},
            {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    double count = 0;
    for (double e : values(in[0])) count += std::isfinite(e) ? 0 : 1;
    return {ref_output("count", {1}, {count})};
  }
  bool exact() const override { return true; }
};

struct AffineCase : Case {
  Shape x;
  int dim;
  core::AffineKind kind;
  bool per_channel;
  bool strided;  // x a slice of the last dim (the front end copies)
  AffineCase(Shape x, int dim, core::AffineKind kind, bool per_channel, bool strided = false)
      : x(std::move(x)), dim(dim), kind(kind), per_channel(per_channel), strided(strided) {}
  std::vector<Op> ops() const override { return {Op::kAffine}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, "dim", dim, "kind",
                             std::string(kind == core::AffineKind::kSubMul ? "(x-a)*b" : "x/b+a"),
                             "per_channel", per_channel, "strided", strided);
  }
  int d() const { return dim < 0 ? dim + static_cast<int>(x.size()) : dim; }
  int64_t C() const { return x[d()]; }
  std::vector<float> params(uint64_t seed, float lo, float hi) const {
    return testing::random_values(per_channel ? C() : 1, seed, lo, hi);
  }
  std::vector<float> a() const { return params(11, -1.0f, 1.0f); }
  std::vector<float> b() const {
    std::vector<float> v = params(12, 0.3f, 3.0f);
    if (v.size() > 1) v[1] = -v[1];
    return v;
  }
  std::vector<InputSpec> inputs() const override {
    return {act("x", operand_base(x, strided ? OperandView::kCols : OperandView::kNone))};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    return {operand_view(in[0], strided ? OperandView::kCols : OperandView::kNone, x)};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::affine(in[0], dim, kind, a(), b())}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    std::vector<double> v = values(in[0]);
    const std::vector<float> av = a(), bv = b();
    int64_t inner = 1;
    for (size_t i = static_cast<size_t>(d()) + 1; i < x.size(); ++i) inner *= x[i];
    for (size_t i = 0; i < v.size(); ++i) {
      const int64_t c = per_channel ? static_cast<int64_t>(i) / inner % C() : 0;
      const float e = static_cast<float>(v[i]);
      v[i] = kind == core::AffineKind::kSubMul ? static_cast<float>((e - av[c]) * bv[c])
                                               : static_cast<float>(e / bv[c] + av[c]);
    }
    return {ref_output("y", x, v)};
  }
  // (x − a)·b and x / b + a: two f32 roundings each, no contraction possible.
  bool exact() const override { return true; }
};

}  // namespace

void add_elementwise_cases(CaseList& c) {
  using V = OperandView;
  struct Pattern {
    Shape a, b;
    V va, vb;
  };
  const Pattern patterns[] = {
      {{2, 5, 8}, {2, 5, 8}, V::kNone, V::kNone},
      {{2, 5, 8}, {8}, V::kNone, V::kNone},
      {{2, 5, 8}, {2, 1, 8}, V::kNone, V::kNone},
      {{2, 5, 8}, {5, 1}, V::kNone, V::kNone},
      {{8}, {2, 5, 8}, V::kNone, V::kNone},  // the left operand broadcast
      {{2, 1, 8}, {1, 5, 1}, V::kNone, V::kNone},
      {{3, 7, 33}, {1}, V::kNone, V::kNone},
      {{2, 1, 3, 1, 2, 4}, {1, 3, 3, 5, 1, 1}, V::kNone, V::kNone},
      {{4, 6, 10}, {4, 6, 10}, V::kCols, V::kSelect},
      {{4, 6, 10}, {6, 1}, V::kSelect, V::kCols},
  };
  for (Op op : {Op::kAdd, Op::kSub, Op::kMul, Op::kDiv}) {
    for (const Pattern& p : patterns) {
      c.push_back(std::make_unique<BinaryCase>(op, p.a, p.b, p.va, p.vb));
    }
  }
  c.push_back(std::make_unique<BinaryCase>(Op::kAdd, Shape{0, 4}, Shape{4}));
  c.push_back(std::make_unique<BinaryCase>(Op::kMul, Shape{100003}, Shape{100003}));

  c.push_back(std::make_unique<ScaleCase>(Shape{3, 17, 40}, -0.5f, false));
  c.push_back(std::make_unique<ScaleCase>(Shape{3, 17, 40}, 3.7f, true));
  c.push_back(std::make_unique<ScaleCase>(Shape{7}, 0.0f, false));

  c.push_back(std::make_unique<AddInPlaceCase>(Shape{2, 5, 8}, Shape{2, 5, 8}));
  c.push_back(std::make_unique<AddInPlaceCase>(Shape{2, 5, 8}, Shape{8}));
  c.push_back(std::make_unique<AddInPlaceCase>(Shape{2, 5, 8}, Shape{2, 1, 8}));
  c.push_back(std::make_unique<AddInPlaceCase>(Shape{3, 33}, Shape{3, 33}, true));

  for (ParamKind p : {ParamKind::kBD, ParamKind::kB1D, ParamKind::kOneD, ParamKind::kChunk}) {
    c.push_back(std::make_unique<ModulateCase>(2, 13, 96, p, false));
    c.push_back(std::make_unique<GatedAddCase>(2, 13, 96, p, false));
  }
  c.push_back(std::make_unique<ModulateCase>(3, 7, 33, ParamKind::kBD, true));
  c.push_back(std::make_unique<ModulateCase>(3, 7, 33, ParamKind::kChunk, true));
  c.push_back(std::make_unique<ModulateCase>(3, 7, 33, ParamKind::kChunk, false, true));
  c.push_back(std::make_unique<ModulateCase>(2, 5, 40, ParamKind::kBD, true, true));
  c.push_back(std::make_unique<GatedAddCase>(3, 7, 33, ParamKind::kB1D, true));

  c.push_back(std::make_unique<LincombCase>(Shape{3, 50}, std::vector<float>{0.7f},
                                            std::vector<bool>{true}));
  c.push_back(std::make_unique<LincombCase>(Shape{2, 5, 17}, std::vector<float>{1.0f, -0.3f},
                                            std::vector<bool>{true, true}));
  c.push_back(std::make_unique<LincombCase>(Shape{2, 5, 17}, std::vector<float>{1.5f, -0.25f, 2.0f},
                                            std::vector<bool>{true, false, true}, 1.0f, 0.7f));
  c.push_back(std::make_unique<LincombCase>(
      Shape{1000}, std::vector<float>{0.1f, 0.2f, -0.3f, 0.4f, -0.5f, 0.6f},
      std::vector<bool>{true, true, true, true, true, true}, -1.3f, 3.0f));
  c.push_back(std::make_unique<LincombCase>(Shape{4, 9}, std::vector<float>{2.0f, 1.0f},
                                            std::vector<bool>{true, true}, 0.3f, 1.0f));
  c.push_back(std::make_unique<LincombCase>(Shape{4, 9}, std::vector<float>{-1.0f, 1.0f, 0.5f},
                                            std::vector<bool>{false, true, true}));

  c.push_back(std::make_unique<ClampCase>(Shape{3, 17, 40}, -0.5f, 0.5f));
  c.push_back(std::make_unique<ClampCase>(Shape{9}, 0.25f, 0.25f));
  c.push_back(std::make_unique<ClampCase>(Shape{2, 33}, -5.0f, 5.0f));

  using K = core::AffineKind;
  c.push_back(std::make_unique<CountNonFiniteCase>(Shape{1000}, false));
  c.push_back(std::make_unique<CountNonFiniteCase>(Shape{3, 70001}, false));
  c.push_back(std::make_unique<CountNonFiniteCase>(Shape{4, 9, 33}, true));
  c.push_back(std::make_unique<AffineCase>(Shape{2, 4, 3, 5}, 1, K::kSubMul, true));
  c.push_back(std::make_unique<AffineCase>(Shape{2, 4, 3, 5}, 1, K::kDivAdd, true));
  c.push_back(std::make_unique<AffineCase>(Shape{2, 4, 3, 5}, 1, K::kDivAdd, false));
  c.push_back(std::make_unique<AffineCase>(Shape{2, 16, 2, 3, 4}, 1, K::kSubMul, true));
  c.push_back(std::make_unique<AffineCase>(Shape{3, 6}, -1, K::kDivAdd, true, true));
  c.push_back(std::make_unique<AffineCase>(Shape{5, 2, 3}, 0, K::kSubMul, true));
}

}  // namespace paradit::backend_ops
