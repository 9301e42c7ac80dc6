// Broadcasting arithmetic, adaLN modulation, gated residuals, linear combinations, clamping and
// per-channel affine maps: the front ends, then the body of the tensors' device.

#include <algorithm>

#include "core/ops.h"
#include "core/ops_common.h"

namespace paradit::core {

using namespace detail;

namespace {

// Numpy broadcasting: shapes aligned at the right; each pair of dims equal or one of them 1.
Shape broadcast_shape(Op op, const Tensor& a, const Tensor& b) {
  const int nd = std::max(a.ndim(), b.ndim());
  Shape out(static_cast<size_t>(nd));
  for (int i = 0; i < nd; ++i) {
    const int ia = i - (nd - a.ndim()), ib = i - (nd - b.ndim());
    const int64_t da = ia >= 0 ? a.dim(ia) : 1, db = ib >= 0 ? b.dim(ib) : 1;
    PARADIT_CHECK(da == db || da == 1 || db == 1, op_name(op), ": shapes ", shape_str(a.shape()),
                  " and ", shape_str(b.shape()), " do not broadcast (dim ", i, ": ", da, " vs ",
                  db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Strides of `t` as seen through broadcasting to `shape`: 0 along missing and stretched dims.
void broadcast_strides(const Tensor& t, const Shape& shape, int64_t* s) {
  const int nd = static_cast<int>(shape.size());
  std::fill_n(s, nd, 0);
  for (int i = 0; i < t.ndim(); ++i) {
    const int o = i + nd - t.ndim();
    s[o] = t.dim(i) == 1 && shape[o] != 1 ? 0 : t.stride(i);
  }
}

void check_same_dtype(Op op, const Tensor& a, const Tensor& b) {
  PARADIT_CHECK(a.dtype() == b.dtype(), op_name(op), ": operands ", a.str(), " and ", b.str(),
                " differ in dtype");
}

void run_binary(const backend::BinaryArgs& a, Device dev) {
  if (dev == Device::CPU) cpu::binary(a); else if constexpr (kCudaBuilt) cuda::binary(a);
}

Tensor binary(Op op, backend::BinaryOp kind, const Tensor& a, const Tensor& b) {
  check_first(op, "a", a);
  check_input(op, "b", b, a.device());
  check_same_dtype(op, a, b);
  const Shape shape = broadcast_shape(op, a, b);
  PARADIT_CHECK(shape.size() <= static_cast<size_t>(backend::kMaxDims), op_name(op), ": ",
                shape.size(), " dims");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());  // broadcast(a, b)
  if (out.numel() == 0) return out;
  backend::BinaryArgs args;
  args.op = kind;
  args.ndim = static_cast<int>(shape.size());
  std::copy(shape.begin(), shape.end(), args.shape);
  broadcast_strides(a, shape, args.a_strides);
  broadcast_strides(b, shape, args.b_strides);
  args.a = a.raw_data();
  args.b = b.raw_data();
  args.dtype = a.dtype();
  args.out = out.raw_data();
  run_binary(args, a.device());
  return out;
}

void check_bsd(Op op, const char* name, const Tensor& x, Device dev) {
  check_input(op, name, x, dev);
  PARADIT_CHECK(x.ndim() == 3, op_name(op), ": ", name, " ", x.str(), " must be (B, S, D)");
}

}  // namespace

namespace detail {

Tensor batch_rows(Op op, const char* name, const Tensor& p, int64_t B, int64_t D, Device device,
                  int64_t* bstride) {
  PARADIT_CHECK(p.defined(), op_name(op), ": ", name, " is undefined");
  check_device(op, name, p, device);
  PARADIT_CHECK(is_floating(p.dtype()), op_name(op), ": ", name, " must be a float tensor, got ",
                p.str());
  const bool shape_ok = (p.ndim() == 2 || (p.ndim() == 3 && p.dim(1) == 1)) &&
                        (p.dim(0) == B || p.dim(0) == 1) && p.dim(-1) == D;
  PARADIT_CHECK(shape_ok, op_name(op), ": ", name, " has shape ", shape_str(p.shape()),
                ", expected [", B, ", ", D, "] or [", B, ", 1, ", D, "]");
  Tensor t = device == Device::CPU ? p.to(DType::F32) : p;
  if (D > 1 && t.stride(-1) != 1) t = t.contiguous();
  *bstride = t.dim(0) == 1 ? 0 : t.stride(0);
  return t;
}

}  // namespace detail

Tensor add(const Tensor& a, const Tensor& b) {
  return binary(Op::kAdd, backend::BinaryOp::kAdd, a, b);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary(Op::kSub, backend::BinaryOp::kSub, a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary(Op::kMul, backend::BinaryOp::kMul, a, b);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary(Op::kDiv, backend::BinaryOp::kDiv, a, b);
}

Tensor scale(const Tensor& x, float s) {
  check_first(Op::kScale, "x", x);
  int64_t rows, D, row_stride;
  const Tensor in = as_rows(x, &rows, &D, &row_stride);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (out.numel() == 0) return out;
  backend::ScaleArgs a;
  a.x = in.raw_data();
  a.rows = rows;
  a.D = D;
  a.row_stride = row_stride;
  a.s = s;
  a.dtype = x.dtype();
  a.y = out.raw_data();
  if (x.device() == Device::CPU) cpu::scale(a); else if constexpr (kCudaBuilt) cuda::scale(a);
  return out;
}

void add_(Tensor& a, const Tensor& b) {
  const Op op = Op::kAddInPlace;
  check_first(op, "a", a);
  check_input(op, "b", b, a.device());
  check_same_dtype(op, a, b);
  PARADIT_CHECK(a.is_contiguous(), "add_: a ", a.str(), " must be contiguous");
  PARADIT_CHECK(broadcast_shape(op, a, b) == a.shape(), "add_: b ", b.str(),
                " does not broadcast to a ", a.str());
  PARADIT_CHECK(a.ndim() <= backend::kMaxDims, "add_: ", a.ndim(), " dims");
  if (a.numel() == 0) return;
  // b may share a's storage (e.g. add_(x, x)); a copy keeps the reads ahead of the writes.
  const Tensor bb = b.storage() == a.storage() ? b.clone() : b;
  backend::BinaryArgs args;
  args.op = backend::BinaryOp::kAdd;
  args.ndim = a.ndim();
  std::copy(a.shape().begin(), a.shape().end(), args.shape);
  std::copy(a.strides().begin(), a.strides().end(), args.a_strides);
  broadcast_strides(bb, a.shape(), args.b_strides);
  args.a = a.raw_data();
  args.b = bb.raw_data();
  args.dtype = a.dtype();
  args.out = a.raw_data();
  run_binary(args, a.device());
}

Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) {
  const Op op = Op::kModulate;
  check_first(op, "x", x);
  check_bsd(op, "x", x, x.device());
  const int64_t B = x.dim(0), S = x.dim(1), D = x.dim(2);
  backend::ModulateArgs a;
  const Tensor sh = batch_rows(op, "shift", shift, B, D, x.device(), &a.shift_bstride);
  const Tensor sc = batch_rows(op, "scale", scale, B, D, x.device(), &a.scale_bstride);
  PARADIT_CHECK(sh.dtype() == sc.dtype(), "modulate: shift ", sh.str(), " and scale ", sc.str(),
                " differ in dtype");
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());  // (B, S, D)
  if (out.numel() == 0) return out;
  a.x = xc.raw_data();
  a.B = B;
  a.S = S;
  a.D = D;
  a.shift = sh.raw_data();
  a.scale = sc.raw_data();
  a.dtype = x.dtype();
  a.param_dtype = sh.dtype();
  a.out = out.raw_data();
  if (x.device() == Device::CPU) cpu::modulate(a); else if constexpr (kCudaBuilt) cuda::modulate(a);
  return out;
}

Tensor gated_add(const Tensor& x, const Tensor& gate, const Tensor& y) {
  const Op op = Op::kGatedAdd;
  check_first(op, "x", x);
  check_bsd(op, "x", x, x.device());
  check_bsd(op, "y", y, x.device());
  PARADIT_CHECK(x.shape() == y.shape(), "gated_add: x ", x.str(), " and y ", y.str(),
                " differ in shape");
  check_same_dtype(op, x, y);
  const int64_t B = x.dim(0), S = x.dim(1), D = x.dim(2);
  backend::GatedAddArgs a;
  const Tensor g = batch_rows(op, "gate", gate, B, D, x.device(), &a.gate_bstride);
  const Tensor xc = x.contiguous(), yc = y.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());  // (B, S, D)
  if (out.numel() == 0) return out;
  a.x = xc.raw_data();
  a.gate = g.raw_data();
  a.y = yc.raw_data();
  a.B = B;
  a.S = S;
  a.D = D;
  a.dtype = x.dtype();
  a.gate_dtype = g.dtype();
  a.out = out.raw_data();
  if (x.device() == Device::CPU) cpu::gated_add(a); else if constexpr (kCudaBuilt) cuda::gated_add(a);
  return out;
}

Tensor lincomb(std::initializer_list<std::pair<float, Tensor>> terms, LincombPost post) {
  return lincomb(std::vector<std::pair<float, Tensor>>(terms), post);
}

Tensor lincomb(const std::vector<std::pair<float, Tensor>>& terms, LincombPost post) {
  const Op op = Op::kLincomb;
  PARADIT_CHECK(terms.size() <= static_cast<size_t>(backend::kMaxTerms), "lincomb: ",
                terms.size(), " terms, at most ", backend::kMaxTerms);
  const Tensor* first = nullptr;
  for (const auto& term : terms) {
    if (term.second.defined()) {
      first = &term.second;
      break;
    }
  }
  PARADIT_CHECK(first != nullptr, "lincomb: every term is undefined");
  check_first(op, "term 0", *first);
  backend::LincombArgs a;
  std::vector<Tensor> keep;  // contiguous operands, alive until the body ran
  for (const auto& [coef, t] : terms) {
    if (!t.defined()) continue;
    check_input(op, "a term", t, first->device());
    PARADIT_CHECK(t.shape() == first->shape() && t.dtype() == first->dtype(), "lincomb: term ",
                  t.str(), " differs from ", first->str());
    keep.push_back(t.contiguous());
    a.coef[a.terms] = coef;
    a.t[a.terms] = keep.back().raw_data();
    ++a.terms;
  }
  Tensor out = Tensor::empty(first->shape(), first->dtype(), first->device());
  if (out.numel() == 0) return out;
  a.post_mul = post.mul;
  a.post_div = post.div;
  a.n = out.numel();
  a.dtype = out.dtype();
  a.out = out.raw_data();
  if (out.device() == Device::CPU) cpu::lincomb(a); else if constexpr (kCudaBuilt) cuda::lincomb(a);
  return out;
}

Tensor clamp(const Tensor& x, float lo, float hi) {
  check_first(Op::kClamp, "x", x);
  PARADIT_CHECK(lo <= hi, "clamp: lower bound ", lo, " above upper bound ", hi);
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (out.numel() == 0) return out;
  backend::ClampArgs a;
  a.x = xc.raw_data();
  a.n = x.numel();
  a.lo = lo;
  a.hi = hi;
  a.dtype = x.dtype();
  a.y = out.raw_data();
  if (x.device() == Device::CPU) cpu::clamp(a); else if constexpr (kCudaBuilt) cuda::clamp(a);
  return out;
}

int64_t count_non_finite(const Tensor& x) {
  check_first(Op::kCountNonFinite, "x", x);
  const Tensor xc = x.contiguous();
  int64_t count = 0;
  if (x.numel() == 0) return count;
  backend::CountNonFiniteArgs a;
  a.x = xc.raw_data();
  a.n = x.numel();
  a.dtype = x.dtype();
  a.count = &count;
  if (x.device() == Device::CPU) {
    cpu::count_non_finite(a);
  } else if constexpr (kCudaBuilt) {
    cuda::count_non_finite(a);
  }
  return count;
}

Tensor affine(const Tensor& x, int dim, AffineKind kind, const std::vector<float>& a,
              const std::vector<float>& b) {
  const Op op = Op::kAffine;
  check_first(op, "x", x);
  const int d = dim < 0 ? dim + x.ndim() : dim;
  PARADIT_CHECK(d >= 0 && d < x.ndim(), "affine: dim ", dim, " out of range for ", x.str());
  const int64_t C = x.dim(d);
  auto per_channel = [&](const std::vector<float>& v, const char* name) {
    PARADIT_CHECK(v.size() == 1 || static_cast<int64_t>(v.size()) == C, "affine: ", v.size(), " ",
                  name, " values for ", C, " channels (dim ", d, ") of x ", x.str());
    std::vector<float> full(static_cast<size_t>(C), v[0]);
    if (v.size() != 1) full = v;
    return Tensor::from_vector(full, {C}, x.device());
  };
  const Tensor ta = per_channel(a, "a"), tb = per_channel(b, "b");
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= x.dim(i);
  for (int i = d + 1; i < x.ndim(); ++i) inner *= x.dim(i);
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (out.numel() == 0) return out;
  backend::AffineArgs args;
  args.kind = kind;
  args.x = xc.raw_data();
  args.outer = outer;
  args.C = C;
  args.inner = inner;
  args.a = static_cast<const float*>(ta.raw_data());
  args.b = static_cast<const float*>(tb.raw_data());
  args.dtype = x.dtype();
  args.y = out.raw_data();
  if (x.device() == Device::CPU) cpu::affine(args); else if constexpr (kCudaBuilt) cuda::affine(args);
  return out;
}

}  // namespace paradit::core
