// core::linear and core::matmul: argument checks, then one library GEMM (backend/cpu/gemm.h).

#include "backend/cpu/gemm.h"
#include "core/ops.h"

namespace paradit::core {
namespace {

void check_cpu(const char* op, const char* name, const Tensor& t) {
  PARADIT_CHECK(t.device() == Device::CPU, op, ": ", name, " ", t.str(), " is on ",
                device_name(t.device()), "; only the CPU backend is built");
}

// A matrix view the GEMM can take as is: unit stride along columns. Returns a contiguous copy
// otherwise (e.g. a transposed view).
Tensor rows_unit_stride(const Tensor& t) {
  if (t.stride(-1) == 1 || t.dim(-1) <= 1) return t;
  return t.contiguous();
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  PARADIT_CHECK(x.defined() && w.defined(), "linear: input and weight must be defined");
  PARADIT_CHECK(x.dtype() == DType::F32, "linear: input ", x.str(), " must be F32");
  PARADIT_CHECK(w.dtype() == DType::F32 || w.dtype() == DType::BF16, "linear: weight ", w.str(),
                " must be F32 or BF16");
  PARADIT_CHECK(x.ndim() >= 1, "linear: input ", x.str(), " has no feature dim");
  PARADIT_CHECK(w.ndim() == 2, "linear: weight ", w.str(), " must be (out, in)");
  const int64_t K = x.dim(-1), N = w.dim(0);
  PARADIT_CHECK(w.dim(1) == K, "linear: input ", x.str(), " has ", K, " features, weight ", w.str(),
                " expects ", w.dim(1));
  if (bias.defined()) {
    PARADIT_CHECK(bias.dtype() == DType::F32 && bias.ndim() == 1 && bias.dim(0) == N,
                  "linear: bias ", bias.str(), " must be F32[", N, "] for weight ", w.str());
  }
  check_cpu("linear", "input", x);
  check_cpu("linear", "weight", w);

  Tensor xc = x.contiguous();
  Tensor wc = rows_unit_stride(w);
  Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor y = Tensor::empty(out_shape);  // (..., N)
  const int64_t M = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  const int64_t ldw = N > 1 ? wc.stride(0) : K;
  const float* b = bc.defined() ? bc.data<float>() : nullptr;
  // x (M, K) · wᵀ (K, N) + b → y (M, N)
  if (wc.dtype() == DType::F32) {
    backend::cpu::linear_f32(M, N, K, xc.data<float>(), K, wc.data<float>(), ldw, b,
                             y.data<float>(), N);
  } else {
    backend::cpu::linear_f32_bf16(M, N, K, xc.data<float>(), K,
                                  static_cast<const uint16_t*>(wc.raw_data()), ldw, b,
                                  y.data<float>(), N);
  }
  return y;
}

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_b) {
  PARADIT_CHECK(a.defined() && b.defined(), "matmul: both operands must be defined");
  PARADIT_CHECK(a.dtype() == DType::F32 && b.dtype() == DType::F32, "matmul: operands ", a.str(),
                " and ", b.str(), " must be F32");
  PARADIT_CHECK(a.ndim() == 3 && b.ndim() == 3, "matmul: operands ", a.str(), " and ", b.str(),
                " must be 3-D (batch, rows, cols)");
  const int64_t B = a.dim(0), M = a.dim(1), K = a.dim(2);
  const int64_t kb = trans_b ? b.dim(2) : b.dim(1);
  const int64_t N = trans_b ? b.dim(1) : b.dim(2);
  PARADIT_CHECK(b.dim(0) == B || b.dim(0) == 1, "matmul: batch of ", b.str(), " must be ", B,
                " (or 1) to match ", a.str());
  PARADIT_CHECK(kb == K, "matmul: inner dims differ: ", a.str(), " · ", b.str(), trans_b ? "ᵀ" : "",
                " (", K, " vs ", kb, ")");
  check_cpu("matmul", "a", a);
  check_cpu("matmul", "b", b);

  Tensor ac = rows_unit_stride(a);
  Tensor bc = rows_unit_stride(b);
  Tensor c = Tensor::empty({B, M, N});  // (B, M, N)
  // Leading dims of size-1 rows may hold any stride; give the library a valid one.
  const int64_t lda = M > 1 ? ac.stride(1) : K;
  const int64_t ldb = bc.dim(1) > 1 ? bc.stride(1) : bc.dim(2);
  const int64_t stride_b = bc.dim(0) == 1 ? 0 : bc.stride(0);
  backend::cpu::gemm_batched_f32(false, trans_b, B, M, N, K, ac.data<float>(), ac.stride(0), lda,
                                 bc.data<float>(), stride_b, ldb, c.data<float>(), M * N, N);
  return c;
}

}  // namespace paradit::core
