// Data movement: concat (any dim, empty and strided parts), split / chunk (views, read back and
// made contiguous on the device), embedding (F32/BF16/act tables, I64/I32 ids), copies (strided
// sources and destinations, permute, host↔device, every conversion of CopyArgs including Bool,
// rounding ties and overflow) and fills of every dtype. All exact.

#include <cmath>
#include <limits>

#include "backend_ops.h"
#include "support/random.h"

namespace paradit::backend_ops {
namespace {

struct ConcatCase : Case {
  std::vector<Shape> parts;
  int dim;
  bool strided;  // the second part is a slice of a wider tensor along its last dim
  ConcatCase(std::vector<Shape> parts, int dim, bool strided = false)
      : parts(std::move(parts)), dim(dim), strided(strided) {}
  std::vector<Op> ops() const override { return {Op::kConcat}; }
  std::string vars() const override {
    std::string p;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i) p += "+";
      p += fmt(parts[i]);
    }
    return backend_ops::vars("parts", p, "dim", dim, "strided", strided);
  }
  std::vector<InputSpec> inputs() const override {
    std::vector<InputSpec> in;
    for (size_t i = 0; i < parts.size(); ++i) {
      Shape s = parts[i];
      if (strided && i == 1) s.back() += 4;
      in.push_back(act(indexed("part", i), s));
    }
    return in;
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    std::vector<Tensor> v = in;
    if (strided && v.size() > 1) v[1] = in[1].slice(-1, 2, 2 + parts[1].back());
    return v;
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::concat(in, dim)}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const int d = dim < 0 ? dim + static_cast<int>(parts[0].size()) : dim;
    Shape out = parts[0];
    out[d] = 0;
    for (const Shape& s : parts) out[d] += s[d];
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < d; ++i) outer *= out[i];
    for (size_t i = static_cast<size_t>(d) + 1; i < out.size(); ++i) inner *= out[i];
    std::vector<double> y;
    std::vector<std::vector<double>> pv;
    for (const Tensor& t : in) pv.push_back(values(t));
    for (int64_t o = 0; o < outer; ++o) {
      for (size_t p = 0; p < parts.size(); ++p) {
        const int64_t block = parts[p][d] * inner;
        y.insert(y.end(), pv[p].begin() + o * block, pv[p].begin() + (o + 1) * block);
      }
    }
    return {ref_output("y", out, y)};
  }
  bool exact() const override { return true; }
};

// split / chunk: each piece (a view) read back, and made contiguous on its device.
struct SplitCase : Case {
  bool is_chunk;
  Shape x;
  std::vector<int64_t> sizes;  // split sizes, or {chunks} for chunk
  int dim;
  SplitCase(bool is_chunk, Shape x, std::vector<int64_t> sizes, int dim)
      : is_chunk(is_chunk), x(std::move(x)), sizes(std::move(sizes)), dim(dim) {}
  std::vector<Op> ops() const override { return {is_chunk ? Op::kChunk : Op::kSplit, Op::kCopy}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, is_chunk ? "chunks" : "sizes", fmt(Shape(sizes)), "dim", dim);
  }
  std::vector<InputSpec> inputs() const override { return {act("x", x)}; }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    const std::vector<Tensor> pieces = is_chunk
                                           ? core::chunk(in[0], static_cast<int>(sizes[0]), dim)
                                           : core::split(in[0], sizes, dim);
    Result r;
    for (size_t i = 0; i < pieces.size(); ++i) {
      r.outputs.push_back({indexed("view", i), pieces[i]});
      r.outputs.push_back({indexed("contiguous", i), pieces[i].contiguous()});
    }
    return r;
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const int d = dim < 0 ? dim + static_cast<int>(x.size()) : dim;
    std::vector<int64_t> lens;
    if (is_chunk) {
      const int64_t n = x[d], step = (n + sizes[0] - 1) / sizes[0];
      if (step == 0) lens.assign(static_cast<size_t>(sizes[0]), 0);
      for (int64_t s = 0; step > 0 && s < n; s += step) lens.push_back(std::min(step, n - s));
    } else {
      lens = sizes;
    }
    const std::vector<double> v = values(in[0]);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < d; ++i) outer *= x[i];
    for (size_t i = static_cast<size_t>(d) + 1; i < x.size(); ++i) inner *= x[i];
    std::vector<RefOutput> r;
    int64_t start = 0;
    for (size_t p = 0; p < lens.size(); ++p) {
      Shape s = x;
      s[d] = lens[p];
      std::vector<double> piece;
      for (int64_t o = 0; o < outer; ++o) {
        const auto b = v.begin() + (o * x[d] + start) * inner;
        piece.insert(piece.end(), b, b + lens[p] * inner);
      }
      r.push_back(ref_output(indexed("view", p), s, piece));
      r.push_back(ref_output(indexed("contiguous", p), s, piece));
      start += lens[p];
    }
    return r;
  }
  bool exact() const override { return true; }
};

struct EmbeddingCase : Case {
  int64_t V, D;
  Shape ids;
  WeightType table;
  DType id_dtype;
  EmbeddingCase(int64_t V, int64_t D, Shape ids, WeightType table, DType id_dtype)
      : V(V), D(D), ids(std::move(ids)), table(table), id_dtype(id_dtype) {}
  std::vector<Op> ops() const override { return {Op::kEmbedding}; }
  std::string vars() const override {
    return backend_ops::vars("table", Shape{V, D}, "table_dtype", table, "ids", ids, "id_dtype",
                             id_dtype);
  }
  std::vector<InputSpec> inputs() const override {
    const int64_t v = V;
    // Every id in range, the first and last rows included, some repeated.
    ValueFn idv = [v](size_t n, uint64_t seed) {
      std::vector<float> r = testing::random_values(n, seed, 0.0f, static_cast<float>(v));
      for (float& e : r) e = std::floor(e);
      if (n > 0) r[0] = 0;
      if (n > 1) r[n - 1] = static_cast<float>(v - 1);
      if (n > 3) r[2] = r[1];
      return r;
    };
    return {weight("table", {V, D}, table), host("ids", ids, id_dtype, idv)};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::embedding(in[0], in[1])}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> t = values(in[0]), id = values(in[1]);
    std::vector<double> y;
    for (double i : id) {
      const auto b = t.begin() + static_cast<int64_t>(i) * D;
      y.insert(y.end(), b, b + D);
    }
    Shape s = ids;
    s.push_back(D);
    return {ref_output("y", s, y)};
  }
  std::string unsupported(const Run& r) const override {
    if (r.device == Device::CPU && table == WeightType::kF16) {
      return "the CPU embedding takes F32 or BF16 tables";
    }
    return {};
  }
  bool exact() const override { return true; }
};

// ---------------------------------------------------------------- copies

enum class CopyKind : uint8_t {
  kClone,        // a strided view made contiguous (Tensor::contiguous / clone)
  kIntoStrided,  // copy_from into a slice of a larger destination
  kPermute,      // the explicit-copy permute
  kToHost,       // a strided device view to the host, then into a strided host destination
  kFromHost,     // a strided host view into a strided destination on the device
};
std::string fmt_copy(CopyKind k) {
  switch (k) {
    case CopyKind::kClone:
      return "clone_of_view";
    case CopyKind::kIntoStrided:
      return "into_strided";
    case CopyKind::kPermute:
      return "permute";
    case CopyKind::kToHost:
      return "device_to_host";
    case CopyKind::kFromHost:
      return "host_to_device";
  }
  return "?";
}

// Layout copies in the run's dtype.
struct CopyLayoutCase : Case {
  CopyKind kind;
  Shape x;  // the logical shape copied
  CopyLayoutCase(CopyKind kind, Shape x) : kind(kind), x(std::move(x)) {}
  std::vector<Op> ops() const override { return {Op::kCopy}; }
  std::string vars() const override { return backend_ops::vars("kind", fmt_copy(kind), "x", x); }
  std::vector<InputSpec> inputs() const override {
    Shape s = x;
    s.back() += 5;
    s[0] += 1;
    return {act("src", s)};
  }
  Tensor view_of(const Tensor& t) const {
    return t.slice(0, 1, 1 + x[0]).slice(-1, 3, 3 + x.back());
  }
  std::vector<int> perm() const {
    std::vector<int> p;
    for (int i = static_cast<int>(x.size()) - 1; i >= 0; --i) p.push_back(i);
    if (p.size() > 2) std::swap(p[0], p[1]);
    return p;
  }
  Result run(const std::vector<Tensor>& in, const Run& r) const override {
    const Tensor src = view_of(in[0]);
    Tensor y;
    switch (kind) {
      case CopyKind::kClone:
        y = src.contiguous();
        break;
      case CopyKind::kIntoStrided: {
        Shape big = x;
        big.back() += 7;
        y = Tensor::empty(big, src.dtype(), r.device).slice(-1, 4, 4 + x.back());
        y.copy_from(src);
        break;
      }
      case CopyKind::kPermute:
        y = src.permute(perm());
        break;
      case CopyKind::kToHost: {
        Shape big = x;
        big[0] += 2;
        y = Tensor::empty(big, src.dtype()).slice(0, 2, 2 + x[0]);
        y.copy_from(src);
        break;
      }
      case CopyKind::kFromHost: {
        const Tensor hs = view_of(in[0].to_device(Device::CPU));
        Shape big = x;
        big.back() += 2;
        y = Tensor::empty(big, src.dtype(), r.device).slice(-1, 1, 1 + x.back());
        y.copy_from(hs);
        break;
      }
    }
    return {{{"y", y}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const Tensor src = view_of(in[0]);
    std::vector<double> v = values(src);
    Shape s = x;
    if (kind == CopyKind::kPermute) {
      const std::vector<int> p = perm();
      Shape ps;
      for (int i : p) ps.push_back(x[i]);
      std::vector<double> out(v.size());
      std::vector<int64_t> idx(x.size());
      for (size_t o = 0; o < v.size(); ++o) {
        int64_t rem = static_cast<int64_t>(o);
        for (int d = static_cast<int>(ps.size()) - 1; d >= 0; --d) {
          idx[p[d]] = rem % ps[d];
          rem /= ps[d];
        }
        int64_t flat = 0;
        for (size_t d = 0; d < x.size(); ++d) flat = flat * x[d] + idx[d];
        out[o] = v[flat];
      }
      v = out;
      s = ps;
    }
    return {ref_output("y", s, v)};
  }
  bool exact() const override { return true; }
};

// Values that exercise a conversion: ordinary ones, and for narrowing float targets rounding
// ties, overflow to inf, subnormals and signed zeros.
ValueFn conversion_values(DType src, DType dst) {
  return [src, dst](size_t n, uint64_t seed) {
    std::vector<float> v;
    if (src == DType::Bool || dst == DType::Bool) {
      v = testing::random_values(n, seed, -1.0f, 1.0f);
      for (size_t i = 0; i < n; ++i) v[i] = i % 3 == 0 ? 0.0f : (src == DType::Bool ? 1.0f : v[i]);
      return v;
    }
    if (!core::is_floating(src)) {
      v = testing::random_values(n, seed, -100.0f, 100.0f);
      if (src == DType::U8) v = testing::random_values(n, seed, 0.0f, 255.0f);
      for (float& e : v) e = std::round(e);
      return v;
    }
    v = testing::random_values(n, seed, -3.0f, 3.0f);
    const float specials[] = {1.0f + 1.0f / 256,
                              1.0f + 3.0f / 256,
                              -(1.0f + 1.0f / 256),
                              1.0f + 1.0f / 2048,
                              70000.0f,
                              -1e-6f,
                              3.0e38f,
                              0.0f,
                              -0.0f,
                              65504.0f,
                              1e-40f,
                              6.1e-5f};
    const bool narrow = dst == DType::BF16 || dst == DType::F16;
    for (size_t i = 0; narrow && i < std::size(specials) && i * 7 < n; ++i) {
      float s = specials[i];
      // Only values the source dtype holds (the input is rounded to it first).
      if (src == DType::F16 && std::fabs(s) > 65504.0f) s = 1.0f;
      v[i * 7] = s;
    }
    return v;
  };
}

// src (its own dtype, a strided view on the device) → dst dtype.
struct ConvertCase : Case {
  DType src, dst;
  Shape x;
  ConvertCase(DType src, DType dst, Shape x) : src(src), dst(dst), x(std::move(x)) {}
  std::vector<Op> ops() const override { return {Op::kCopy}; }
  std::string vars() const override {
    return backend_ops::vars("convert", fmt(src) + "->" + fmt(dst), "x", x);
  }
  std::vector<InputSpec> inputs() const override {
    Shape s = x;
    s.back() += 1;
    return {fixed("src", s, src, conversion_values(src, dst))};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    return {in[0].slice(-1, 1, 1 + x.back())};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", in[0].to(dst)}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    std::vector<double> v = values(in[0]);
    for (double& e : v) e = round_to(dst, e);
    return {ref_output("y", x, v)};
  }
  bool fixed_dtype() const override { return true; }
  bool exact() const override { return true; }
};

struct FillCase : Case {
  Shape x;
  float value;
  bool fixed;  // dtype fixed (else the run's)
  DType dtype;
  bool zeros;  // Tensor::zeros instead of full
  FillCase(Shape x, float value, bool fixed, DType dtype = DType::F32, bool zeros = false)
      : x(std::move(x)), value(value), fixed(fixed), dtype(dtype), zeros(zeros) {}
  std::vector<Op> ops() const override { return {Op::kFill}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, "value", zeros ? std::string("zeros") : fmt(double(value)),
                             "dtype", fixed ? fmt(dtype) : std::string("act"));
  }
  std::vector<InputSpec> inputs() const override { return {}; }
  Result run(const std::vector<Tensor>&, const Run& r) const override {
    const DType t = fixed ? dtype : r.dtype;
    return {{{"y", zeros ? Tensor::zeros(x, t, r.device) : Tensor::full(x, value, t, r.device)}},
            {}};
  }
  // The value as the dtype stores it (store_from_double's rule: float targets round, integer
  // targets truncate toward zero, Bool is "nonzero").
  std::vector<RefOutput> reference(const std::vector<Tensor>&) const override {
    const DType t = fixed ? dtype : DType::F32;
    double v = zeros ? 0.0 : value;
    if (core::is_floating(t)) {
      v = round_to(t, v);
    } else if (t == DType::Bool) {
      v = v != 0.0 ? 1.0 : 0.0;
    } else {
      v = std::trunc(v);
    }
    return {ref_output("y", x, std::vector<double>(static_cast<size_t>(core::shape_numel(x)), v))};
  }
  bool fixed_dtype() const override { return fixed; }
  bool exact() const override { return true; }
};

}  // namespace

void add_data_cases(CaseList& c) {
  c.push_back(std::make_unique<ConcatCase>(std::vector<Shape>{{2, 1, 4}, {2, 5, 4}, {2, 2, 4}}, 1));
  c.push_back(std::make_unique<ConcatCase>(std::vector<Shape>{{3, 7}, {3, 0}, {3, 2}}, -1));
  c.push_back(std::make_unique<ConcatCase>(std::vector<Shape>{{5}}, 0));
  c.push_back(std::make_unique<ConcatCase>(std::vector<Shape>{{2, 7, 3, 16}, {2, 40, 3, 16}}, 1));
  c.push_back(std::make_unique<ConcatCase>(std::vector<Shape>{{1, 6, 3}, {4, 6, 3}}, 0, true));
  c.push_back(
      std::make_unique<ConcatCase>(std::vector<Shape>{{4, 6, 3}, {4, 6, 5}, {4, 6, 1}}, 2, true));

  c.push_back(std::make_unique<SplitCase>(false, Shape{3, 7, 4}, std::vector<int64_t>{2, 0, 5}, 1));
  c.push_back(std::make_unique<SplitCase>(false, Shape{6, 10}, std::vector<int64_t>{3, 3}, 0));
  c.push_back(std::make_unique<SplitCase>(true, Shape{2, 3, 7}, std::vector<int64_t>{3}, -1));
  c.push_back(std::make_unique<SplitCase>(true, Shape{2, 6, 96}, std::vector<int64_t>{6}, -1));
  c.push_back(std::make_unique<SplitCase>(true, Shape{5, 2}, std::vector<int64_t>{8}, 0));

  using W = WeightType;
  c.push_back(std::make_unique<EmbeddingCase>(50, 33, Shape{2, 7}, W::kF32, DType::I64));
  c.push_back(std::make_unique<EmbeddingCase>(50, 33, Shape{2, 7}, W::kBF16, DType::I32));
  c.push_back(std::make_unique<EmbeddingCase>(50, 33, Shape{9}, W::kAct, DType::I64));
  c.push_back(std::make_unique<EmbeddingCase>(1000, 64, Shape{3, 77}, W::kF16, DType::I64));

  for (CopyKind k : {CopyKind::kClone, CopyKind::kIntoStrided, CopyKind::kPermute,
                     CopyKind::kToHost, CopyKind::kFromHost}) {
    c.push_back(std::make_unique<CopyLayoutCase>(k, Shape{3, 5, 7}));
    c.push_back(std::make_unique<CopyLayoutCase>(k, Shape{2, 3, 4, 33}));
  }
  c.push_back(std::make_unique<CopyLayoutCase>(CopyKind::kClone, Shape{2, 70000}));

  const std::pair<DType, DType> conversions[] = {
      {DType::F32, DType::BF16},  {DType::BF16, DType::F32},  {DType::F32, DType::F16},
      {DType::F16, DType::F32},   {DType::BF16, DType::F16},  {DType::F16, DType::BF16},
      {DType::F32, DType::F64},   {DType::F64, DType::F32},   {DType::F64, DType::BF16},
      {DType::I64, DType::F32},   {DType::I32, DType::BF16},  {DType::I16, DType::F16},
      {DType::I8, DType::F32},    {DType::U8, DType::F32},    {DType::Bool, DType::F32},
      {DType::Bool, DType::BF16}, {DType::F32, DType::Bool},  {DType::BF16, DType::Bool},
      {DType::F16, DType::Bool},  {DType::I64, DType::Bool},  {DType::U8, DType::Bool},
      {DType::I64, DType::I64},   {DType::Bool, DType::Bool}, {DType::U8, DType::U8},
      {DType::I16, DType::I16},   {DType::F64, DType::F64},
  };
  for (const auto& [s, d] : conversions) {
    c.push_back(std::make_unique<ConvertCase>(s, d, Shape{3, 61}));
  }

  c.push_back(std::make_unique<FillCase>(Shape{3, 17}, 2.5f, false));
  c.push_back(std::make_unique<FillCase>(Shape{3, 17}, 0.1f, false));
  c.push_back(std::make_unique<FillCase>(Shape{3, 17}, 0.0f, false, DType::F32, true));
  c.push_back(std::make_unique<FillCase>(Shape{100001}, -3.0f, false));
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::F64}) {
    c.push_back(std::make_unique<FillCase>(Shape{5, 9}, 1e10f, true, t));
    c.push_back(std::make_unique<FillCase>(Shape{5, 9}, -0.3f, true, t));
  }
  c.push_back(std::make_unique<FillCase>(Shape{5, 9}, -std::numeric_limits<float>::infinity(), true,
                                         DType::F32));
  c.push_back(std::make_unique<FillCase>(Shape{5, 9}, 7.0f, true, DType::I64));
  c.push_back(std::make_unique<FillCase>(Shape{5, 9}, -3.0f, true, DType::I32));
  c.push_back(std::make_unique<FillCase>(Shape{5, 9}, 200.0f, true, DType::U8));
  c.push_back(std::make_unique<FillCase>(Shape{5, 9}, 0.5f, true, DType::Bool));
  c.push_back(std::make_unique<FillCase>(Shape{5, 9}, 0.0f, true, DType::Bool, true));
  c.push_back(std::make_unique<FillCase>(Shape{5, 9}, 0.0f, true, DType::I64, true));
}

}  // namespace paradit::backend_ops
