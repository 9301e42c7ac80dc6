// core::linear and core::matmul: the front ends, then one library GEMM on the tensors' device
// (backend/cpu: oneDNN or OpenBLAS; backend/cuda: cuBLASLt).

#include "core/ops.h"
#include "core/ops_common.h"

namespace paradit::core {

using namespace detail;

namespace {

// A matrix view the GEMM can take as is: unit stride along columns. Returns a contiguous copy
// otherwise (e.g. a transposed view).
Tensor rows_unit_stride(const Tensor& t) {
  if (t.stride(-1) == 1 || t.dim(-1) <= 1) return t;
  return t.contiguous();
}

Op activation_op(Activation act) {
  return act == Activation::kSilu        ? Op::kSilu
         : act == Activation::kQuickGelu ? Op::kQuickGelu
         : act == Activation::kRelu      ? Op::kRelu
         : act == Activation::kExp       ? Op::kExp
         : act == Activation::kSqrt      ? Op::kSqrt
         : act == Activation::kTanh      ? Op::kTanh
                                         : Op::kGelu;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, Activation act) {
  const Op op = Op::kLinear;
  check_first(op, "input", x);
  const Device dev = x.device();
  PARADIT_CHECK(w.defined(), "linear: weight is undefined");
  check_device(op, "weight", w, dev);
  const bool w_ok = w.dtype() == DType::F32 || w.dtype() == DType::BF16 ||
                    (dev == Device::CUDA && w.dtype() == DType::F16);
  PARADIT_CHECK(w_ok, "linear: weight ", w.str(), " must be F32 or BF16",
                dev == Device::CUDA ? " or F16" : "");
  PARADIT_CHECK(x.ndim() >= 1, "linear: input ", x.str(), " has no feature dim");
  PARADIT_CHECK(w.ndim() == 2, "linear: weight ", w.str(), " must be (out, in)");
  const int64_t K = x.dim(-1), N = w.dim(0);
  PARADIT_CHECK(w.dim(1) == K, "linear: input ", x.str(), " has ", K, " features, weight ", w.str(),
                " expects ", w.dim(1));
  if (bias.defined()) {
    PARADIT_CHECK(bias.ndim() == 1 && bias.dim(0) == N, "linear: bias ", bias.str(),
                  " must be [", N, "] for weight ", w.str());
  }
  const Tensor b = vector_param(op, "bias", bias, N, dev);

  // The CPU multiplies F32 activations by F32 or BF16 weights; CUDA runs in the weight's dtype.
  const Tensor xc = (dev == Device::CUDA ? x.to(w.dtype()) : x).contiguous();
  const Tensor wc = rows_unit_stride(w);
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor y = Tensor::empty(out_shape, xc.dtype(), dev);  // (..., N)
  const int64_t M = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  if (y.numel() == 0) return y;
  backend::LinearArgs a;
  a.M = M;
  a.N = N;
  a.K = K;
  a.x = xc.raw_data();
  a.ldx = K;
  a.w = wc.raw_data();
  a.ldw = N > 1 ? wc.stride(0) : K;  // leading dim of a 1-row weight: any valid one
  a.bias = f32_or_null(b);
  a.y = y.raw_data();
  a.ldy = N;
  a.x_dtype = xc.dtype();
  a.w_dtype = wc.dtype();
  a.y_dtype = y.dtype();
  // x (M, K) · wᵀ (K, N) + b → y (M, N); the activation is a fused epilogue on CUDA.
  if (dev == Device::CPU) {
    cpu::linear(a);
    if (act != Activation::kNone) {
      backend::ActivationArgs g;
      g.act = act;
      g.x = y.raw_data();
      g.rows = M;
      g.D = N;
      g.row_stride = N;
      g.dtype = y.dtype();
      g.y = y.raw_data();  // in place
      require_support(activation_op(act), dev, y.dtype());
      cpu::activation(g);
    }
  } else if constexpr (kCudaBuilt) {
    a.activation = act;
    cuda::linear(a);
  }
  return y;
}

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_b) {
  const Op op = Op::kMatmul;
  check_first(op, "a", a);
  check_input(op, "b", b, a.device());
  PARADIT_CHECK(a.dtype() == b.dtype(), "matmul: operands ", a.str(), " and ", b.str(),
                " differ in dtype");
  PARADIT_CHECK(a.ndim() == 3 && b.ndim() == 3, "matmul: operands ", a.str(), " and ", b.str(),
                " must be 3-D (batch, rows, cols)");
  const int64_t B = a.dim(0), M = a.dim(1), K = a.dim(2);
  const int64_t kb = trans_b ? b.dim(2) : b.dim(1);
  const int64_t N = trans_b ? b.dim(1) : b.dim(2);
  PARADIT_CHECK(b.dim(0) == B || b.dim(0) == 1, "matmul: batch of ", b.str(), " must be ", B,
                " (or 1) to match ", a.str());
  PARADIT_CHECK(kb == K, "matmul: inner dims differ: ", a.str(), " · ", b.str(), trans_b ? "ᵀ" : "",
                " (", K, " vs ", kb, ")");

  const Tensor ac = rows_unit_stride(a);
  const Tensor bc = rows_unit_stride(b);
  Tensor c = Tensor::empty({B, M, N}, a.dtype(), a.device());  // (B, M, N)
  if (c.numel() == 0) return c;
  backend::MatmulArgs m;
  m.trans_b = trans_b;
  m.batch = B;
  m.M = M;
  m.N = N;
  m.K = K;
  m.a = ac.raw_data();
  // Leading dims of size-1 rows may hold any stride; give the library a valid one.
  m.lda = M > 1 ? ac.stride(1) : K;
  m.stride_a = ac.stride(0);
  m.b = bc.raw_data();
  m.ldb = bc.dim(1) > 1 ? bc.stride(1) : bc.dim(2);
  m.stride_b = bc.dim(0) == 1 ? 0 : bc.stride(0);
  m.c = c.raw_data();
  m.ldc = N;
  m.stride_c = M * N;
  m.dtype = a.dtype();
  if (a.device() == Device::CPU) cpu::matmul(m); else if constexpr (kCudaBuilt) cuda::matmul(m);
  return c;
}

}  // namespace paradit::core
