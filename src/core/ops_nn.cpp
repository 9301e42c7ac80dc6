// Normalization, activations, softmax and rotary embedding: argument checks, then the CPU
// bodies in src/backend/cpu.

#include <vector>

#include "backend/cpu/kernels.h"
#include "core/ops.h"
#include "core/ops_common.h"

namespace paradit::core {

namespace cpu = backend::cpu;
using detail::as_rows;
using detail::check_f32;
using detail::vector_param;

namespace {

const float* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

Tensor activation(const char* op, const Tensor& x, cpu::Activation act) {
  check_f32(op, "x", x);
  int64_t rows, D, row_stride;
  const Tensor in = as_rows(x, &rows, &D, &row_stride);
  Tensor out = Tensor::empty(x.shape());
  cpu::activation_f32(act, in.data<float>(), row_stride, rows, D, out.data<float>());
  return out;
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  check_f32("layer_norm", "x", x);
  PARADIT_CHECK(x.ndim() >= 1, "layer_norm: x ", x.str(), " has no dims");
  int64_t rows, D, row_stride;
  const Tensor in = as_rows(x, &rows, &D, &row_stride);
  const Tensor w = vector_param("layer_norm", "weight", weight, D);
  const Tensor b = vector_param("layer_norm", "bias", bias, D);
  Tensor out = Tensor::empty(x.shape());  // same shape as x
  cpu::layer_norm_f32(in.data<float>(), row_stride, rows, D, ptr_or_null(w), ptr_or_null(b), eps,
                      out.data<float>());
  return out;
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  check_f32("rms_norm", "x", x);
  PARADIT_CHECK(x.ndim() >= 1, "rms_norm: x ", x.str(), " has no dims");
  int64_t rows, D, row_stride;
  const Tensor in = as_rows(x, &rows, &D, &row_stride);
  const Tensor w = vector_param("rms_norm", "weight", weight, D);
  Tensor out = Tensor::empty(x.shape());  // same shape as x
  cpu::rms_norm_f32(in.data<float>(), row_stride, rows, D, ptr_or_null(w), eps, out.data<float>());
  return out;
}

Tensor group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias,
                  float eps) {
  check_f32("group_norm", "x", x);
  PARADIT_CHECK(x.ndim() >= 2, "group_norm: x ", x.str(), " must be (N, C, *spatial)");
  const int64_t N = x.dim(0), C = x.dim(1);
  PARADIT_CHECK(groups > 0 && C % groups == 0, "group_norm: ", C, " channels of x ", x.str(),
                " do not split into ", groups, " groups");
  const Tensor w = vector_param("group_norm", "weight", weight, C);
  const Tensor b = vector_param("group_norm", "bias", bias, C);
  const Tensor in = x.contiguous();
  int64_t L = 1;  // prod(spatial)
  for (int i = 2; i < x.ndim(); ++i) L *= x.dim(i);
  std::vector<double> mean(static_cast<size_t>(N * groups)), var(mean.size());
  cpu::group_norm_stats_f32(in.data<float>(), N, C, L, groups, mean.data(), var.data());
  Tensor out = Tensor::empty(x.shape());  // (N, C, *spatial)
  cpu::group_norm_apply_f32(in.data<float>(), N, C, L, groups, mean.data(), var.data(), eps,
                            ptr_or_null(w), ptr_or_null(b), out.data<float>());
  return out;
}

Tensor gelu(const Tensor& x, bool tanh_approx) {
  return activation("gelu", x,
                    tanh_approx ? cpu::Activation::kGeluTanh : cpu::Activation::kGeluErf);
}

Tensor silu(const Tensor& x) { return activation("silu", x, cpu::Activation::kSilu); }

Tensor quick_gelu(const Tensor& x) {
  return activation("quick_gelu", x, cpu::Activation::kQuickGelu);
}

Tensor softmax(const Tensor& x) {
  check_f32("softmax", "x", x);
  int64_t rows, D, row_stride;
  const Tensor in = as_rows(x, &rows, &D, &row_stride);
  Tensor out = Tensor::empty(x.shape());
  cpu::softmax_f32(in.data<float>(), row_stride, rows, D, out.data<float>());
  return out;
}

Tensor apply_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, RopeStyle style) {
  check_f32("apply_rope", "x", x);
  check_f32("apply_rope", "cos", cos);
  check_f32("apply_rope", "sin", sin);
  PARADIT_CHECK(x.ndim() == 4, "apply_rope: x ", x.str(), " must be (B, S, H, D)");
  const int64_t B = x.dim(0), S = x.dim(1), H = x.dim(2), D = x.dim(3);
  PARADIT_CHECK(D % 2 == 0, "apply_rope: head dim ", D, " of x ", x.str(), " is odd");
  const Shape cs{S, D};
  PARADIT_CHECK(cos.shape() == cs && sin.shape() == cs, "apply_rope: cos ", cos.str(), " and sin ",
                sin.str(), " must both be ", shape_str(cs), " for x ", x.str());
  const Tensor in = D <= 1 || x.stride(3) == 1 ? x : x.contiguous();
  const Tensor c = cos.contiguous(), s = sin.contiguous();
  Tensor out = Tensor::empty(x.shape());  // (B, S, H, D)
  cpu::rope_f32(in.data<float>(), B, S, H, D, in.stride(0), in.stride(1), in.stride(2),
                c.data<float>(), s.data<float>(), style == RopeStyle::kInterleaved,
                out.data<float>());
  return out;
}

}  // namespace paradit::core
