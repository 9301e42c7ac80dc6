// Broadcasting arithmetic, adaLN modulation and gated residuals: argument checks, then the CPU
// bodies in src/backend/cpu.

#include <algorithm>

#include "backend/cpu/kernels.h"
#include "core/ops.h"
#include "core/ops_common.h"

namespace paradit::core {

namespace cpu = backend::cpu;
using detail::check_f32;

namespace {

// Numpy broadcasting: shapes aligned at the right; each pair of dims equal or one of them 1.
Shape broadcast_shape(const char* op, const Tensor& a, const Tensor& b) {
  const int nd = std::max(a.ndim(), b.ndim());
  Shape out(static_cast<size_t>(nd));
  for (int i = 0; i < nd; ++i) {
    const int ia = i - (nd - a.ndim()), ib = i - (nd - b.ndim());
    const int64_t da = ia >= 0 ? a.dim(ia) : 1, db = ib >= 0 ? b.dim(ib) : 1;
    PARADIT_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a.shape()), " and ",
                  shape_str(b.shape()), " do not broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Strides of `t` as seen through broadcasting to `shape`: 0 along missing and stretched dims.
std::vector<int64_t> broadcast_strides(const Tensor& t, const Shape& shape) {
  const int nd = static_cast<int>(shape.size());
  std::vector<int64_t> s(static_cast<size_t>(nd), 0);
  for (int i = 0; i < t.ndim(); ++i) {
    const int o = i + nd - t.ndim();
    s[o] = t.dim(i) == 1 && shape[o] != 1 ? 0 : t.stride(i);
  }
  return s;
}

Tensor binary(const char* op, cpu::BinaryOp kind, const Tensor& a, const Tensor& b) {
  check_f32(op, "a", a);
  check_f32(op, "b", b);
  const Shape shape = broadcast_shape(op, a, b);
  const auto sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
  Tensor out = Tensor::empty(shape);  // broadcast(a, b)
  cpu::binary_f32(kind, static_cast<int>(shape.size()), shape.data(), a.data<float>(), sa.data(),
                  b.data<float>(), sb.data(), out.data<float>());
  return out;
}

// The per-batch rows of a modulation parameter (shift, scale, gate) for x (B, S, D): accepts
// (B, D) and (B, 1, D), with batch size B or 1, any row stride. Returns the tensor to read and
// its batch stride (0 when one row serves the whole batch).
Tensor batch_rows(const char* op, const char* name, const Tensor& p, int64_t B, int64_t D,
                  int64_t* bstride) {
  check_f32(op, name, p);
  const bool shape_ok = (p.ndim() == 2 || (p.ndim() == 3 && p.dim(1) == 1)) &&
                        (p.dim(0) == B || p.dim(0) == 1) && p.dim(-1) == D;
  PARADIT_CHECK(shape_ok, op, ": ", name, " has shape ", shape_str(p.shape()), ", expected [", B,
                ", ", D, "] or [", B, ", 1, ", D, "]");
  const Tensor t = D <= 1 || p.stride(-1) == 1 ? p : p.contiguous();
  *bstride = t.dim(0) == 1 ? 0 : t.stride(0);
  return t;
}

void check_bsd(const char* op, const char* name, const Tensor& x) {
  check_f32(op, name, x);
  PARADIT_CHECK(x.ndim() == 3, op, ": ", name, " ", x.str(), " must be (B, S, D)");
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary("add", cpu::BinaryOp::kAdd, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary("sub", cpu::BinaryOp::kSub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", cpu::BinaryOp::kMul, a, b); }

Tensor scale(const Tensor& x, float s) {
  check_f32("scale", "x", x);
  int64_t rows, D, row_stride;
  const Tensor in = detail::as_rows(x, &rows, &D, &row_stride);
  Tensor out = Tensor::empty(x.shape());
  cpu::scale_f32(in.data<float>(), row_stride, rows, D, s, out.data<float>());
  return out;
}

void add_(Tensor& a, const Tensor& b) {
  check_f32("add_", "a", a);
  check_f32("add_", "b", b);
  PARADIT_CHECK(a.is_contiguous(), "add_: a ", a.str(), " must be contiguous");
  PARADIT_CHECK(broadcast_shape("add_", a, b) == a.shape(), "add_: b ", b.str(),
                " does not broadcast to a ", a.str());
  const auto sa = a.strides();
  const auto sb = broadcast_strides(b, a.shape());
  // b may share a's storage (e.g. add_(x, x)); a copy keeps the reads ahead of the writes.
  const bool overlap = b.storage() == a.storage();
  const Tensor bb = overlap ? b.clone() : b;
  const auto sbb = overlap ? broadcast_strides(bb, a.shape()) : sb;
  cpu::binary_f32(cpu::BinaryOp::kAdd, a.ndim(), a.shape().data(), a.data<float>(), sa.data(),
                  bb.data<float>(), sbb.data(), a.data<float>());
}

Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) {
  check_bsd("modulate", "x", x);
  const int64_t B = x.dim(0), S = x.dim(1), D = x.dim(2);
  int64_t shift_bs, scale_bs;
  const Tensor sh = batch_rows("modulate", "shift", shift, B, D, &shift_bs);
  const Tensor sc = batch_rows("modulate", "scale", scale, B, D, &scale_bs);
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape());  // (B, S, D)
  cpu::modulate_f32(xc.data<float>(), B, S, D, sh.data<float>(), shift_bs, sc.data<float>(),
                    scale_bs, out.data<float>());
  return out;
}

Tensor gated_add(const Tensor& x, const Tensor& gate, const Tensor& y) {
  check_bsd("gated_add", "x", x);
  check_bsd("gated_add", "y", y);
  PARADIT_CHECK(x.shape() == y.shape(), "gated_add: x ", x.str(), " and y ", y.str(),
                " differ in shape");
  const int64_t B = x.dim(0), S = x.dim(1), D = x.dim(2);
  int64_t gate_bs;
  const Tensor g = batch_rows("gated_add", "gate", gate, B, D, &gate_bs);
  const Tensor xc = x.contiguous(), yc = y.contiguous();
  Tensor out = Tensor::empty(x.shape());  // (B, S, D)
  cpu::gated_add_f32(xc.data<float>(), g.data<float>(), gate_bs, yc.data<float>(), B, S, D,
                     out.data<float>());
  return out;
}

}  // namespace paradit::core
