// Normalization, activations, softmax and rotary embedding: the front ends (checks, sizes,
// output allocation), then the body of the tensors' device.

#include <vector>

#include "core/ops.h"
#include "core/ops_common.h"

namespace paradit::core {

using namespace detail;

namespace {

Tensor activation_op(Op op, const Tensor& x, Activation act) {
  check_first(op, "x", x);
  int64_t rows, D, row_stride;
  const Tensor in = as_rows(x, &rows, &D, &row_stride);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());  // same shape as x
  if (out.numel() == 0) return out;
  backend::ActivationArgs a;
  a.act = act;
  a.x = in.raw_data();
  a.rows = rows;
  a.D = D;
  a.row_stride = row_stride;
  a.dtype = x.dtype();
  a.y = out.raw_data();
  if (x.device() == Device::CPU) cpu::activation(a); else if constexpr (kCudaBuilt) cuda::activation(a);
  return out;
}

Op activation_op_id(Activation act) {
  switch (act) {
    case Activation::kGeluErf:
    case Activation::kGeluTanh: return Op::kGelu;
    case Activation::kSilu: return Op::kSilu;
    case Activation::kQuickGelu: return Op::kQuickGelu;
    case Activation::kRelu: return Op::kRelu;
    case Activation::kExp: return Op::kExp;
    case Activation::kSqrt: return Op::kSqrt;
    case Activation::kTanh: return Op::kTanh;
    case Activation::kNone: break;
  }
  fail("activation: kNone is not an op");
}

// Layer or RMS norm over the last dim with an optional fused modulation.
Tensor norm(Op op, backend::NormKind kind, const Tensor& x, const Tensor& weight,
            const Tensor& bias, float eps, const Modulation& mod) {
  check_first(op, "x", x);
  PARADIT_CHECK(x.ndim() >= 1, op_name(op), ": x ", x.str(), " has no dims");
  const Device dev = x.device();
  int64_t rows, D, row_stride;
  const Tensor in = as_rows(x, &rows, &D, &row_stride);
  const Tensor w = vector_param(op, "weight", weight, D, dev);
  const Tensor b = vector_param(op, "bias", bias, D, dev);
  backend::NormArgs a;
  a.kind = kind;
  a.x = in.raw_data();
  a.rows = rows;
  a.D = D;
  a.row_stride = row_stride;
  a.weight = f32_or_null(w);
  a.bias = f32_or_null(b);
  a.eps = eps;
  a.dtype = x.dtype();
  Tensor shift, scale;
  const bool fused = mod.defined() && dev == Device::CUDA;
  if (mod.defined()) {
    PARADIT_CHECK(mod.shift.defined() && mod.scale.defined(), op_name(op),
                  ": a modulation needs both shift and scale");
    PARADIT_CHECK(x.ndim() == 3, op_name(op), ": a modulated x ", x.str(), " must be (B, S, D)");
    if (fused) {
      shift = batch_rows(op, "shift", mod.shift, x.dim(0), D, dev, &a.shift_bstride);
      scale = batch_rows(op, "scale", mod.scale, x.dim(0), D, dev, &a.scale_bstride);
      PARADIT_CHECK(shift.dtype() == scale.dtype(), op_name(op), ": shift ", shift.str(),
                    " and scale ", scale.str(), " differ in dtype");
      a.shift = shift.raw_data();
      a.scale = scale.raw_data();
      a.mod_dtype = shift.dtype();
      a.rows_per_batch = x.dim(1);
    }
  }
  Tensor out = Tensor::empty(x.shape(), x.dtype(), dev);  // same shape as x
  if (out.numel() == 0) return out;
  a.y = out.raw_data();
  if (dev == Device::CPU) cpu::norm(a); else if constexpr (kCudaBuilt) cuda::norm(a);
  // The CPU runs the modulation as its own op (same math, unfused).
  if (mod.defined() && !fused) return modulate(out, mod.shift, mod.scale);
  return out;
}

void check_group_norm(Op op, const Tensor& x, int groups) {
  check_first(op, "x", x);
  PARADIT_CHECK(x.ndim() >= 2, op_name(op), ": x ", x.str(), " must be (N, C, *spatial)");
  PARADIT_CHECK(groups > 0 && x.dim(1) % groups == 0, op_name(op), ": ", x.dim(1),
                " channels of x ", x.str(), " do not split into ", groups, " groups");
}

int64_t spatial_size(const Tensor& x) {
  int64_t L = 1;  // prod(spatial)
  for (int i = 2; i < x.ndim(); ++i) L *= x.dim(i);
  return L;
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                  const Modulation& mod) {
  return norm(Op::kLayerNorm, backend::NormKind::kLayer, x, weight, bias, eps, mod);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps, const Modulation& mod) {
  return norm(Op::kRmsNorm, backend::NormKind::kRms, x, weight, {}, eps, mod);
}

GroupNormStats group_norm_stats(const Tensor& x, int groups) {
  check_group_norm(Op::kGroupNormStats, x, groups);
  const int64_t N = x.dim(0);
  const Tensor in = x.contiguous();
  GroupNormStats s;
  s.mean = Tensor::empty({N * groups}, DType::F64, x.device());  // (N·groups)
  s.var = Tensor::empty({N * groups}, DType::F64, x.device());   // (N·groups)
  if (x.numel() == 0) return s;
  backend::GroupNormStatsArgs a;
  a.x = in.raw_data();
  a.N = N;
  a.C = x.dim(1);
  a.L = spatial_size(x);
  a.groups = groups;
  a.dtype = x.dtype();
  a.mean = static_cast<double*>(s.mean.raw_data());
  a.var = static_cast<double*>(s.var.raw_data());
  if (x.device() == Device::CPU) cpu::group_norm_stats(a); else if constexpr (kCudaBuilt) cuda::group_norm_stats(a);
  return s;
}

Tensor group_norm_apply(const Tensor& x, int groups, const GroupNormStats& stats,
                        const Tensor& weight, const Tensor& bias, float eps, Activation act) {
  const Op op = Op::kGroupNormApply;
  check_group_norm(op, x, groups);
  const Device dev = x.device();
  const int64_t N = x.dim(0), C = x.dim(1);
  for (const Tensor* t : {&stats.mean, &stats.var}) {
    PARADIT_CHECK(t->defined() && t->dtype() == DType::F64 && t->numel() == N * groups,
                  "group_norm_apply: statistics must be F64[", N * groups, "], got ",
                  t->defined() ? t->str() : std::string("undefined"));
    check_device(op, "statistics", *t, dev);
  }
  const Tensor mean = stats.mean.contiguous(), var = stats.var.contiguous();
  const Tensor w = vector_param(op, "weight", weight, C, dev);
  const Tensor b = vector_param(op, "bias", bias, C, dev);
  const Tensor in = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), dev);  // (N, C, *spatial)
  if (out.numel() == 0) return out;
  backend::GroupNormApplyArgs a;
  a.x = in.raw_data();
  a.N = N;
  a.C = C;
  a.L = spatial_size(x);
  a.groups = groups;
  a.mean = static_cast<const double*>(mean.raw_data());
  a.var = static_cast<const double*>(var.raw_data());
  a.eps = eps;
  a.weight = f32_or_null(w);
  a.bias = f32_or_null(b);
  a.dtype = x.dtype();
  a.y = out.raw_data();
  // The activation is fused on CUDA; the CPU runs it as its own op (in place on the output).
  const bool fused = dev == Device::CUDA;
  a.activation = fused ? act : Activation::kNone;
  if (dev == Device::CPU) cpu::group_norm_apply(a); else if constexpr (kCudaBuilt) cuda::group_norm_apply(a);
  if (!fused && act != Activation::kNone) return activation_op(activation_op_id(act), out, act);
  return out;
}

Tensor group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, float eps,
                  Activation act) {
  check_group_norm(Op::kGroupNorm, x, groups);
  return group_norm_apply(x, groups, group_norm_stats(x, groups), weight, bias, eps, act);
}

Tensor gelu(const Tensor& x, bool tanh_approx) {
  return activation_op(Op::kGelu, x, tanh_approx ? Activation::kGeluTanh : Activation::kGeluErf);
}

Tensor silu(const Tensor& x) { return activation_op(Op::kSilu, x, Activation::kSilu); }

Tensor quick_gelu(const Tensor& x) {
  return activation_op(Op::kQuickGelu, x, Activation::kQuickGelu);
}

Tensor relu(const Tensor& x) { return activation_op(Op::kRelu, x, Activation::kRelu); }

Tensor exp(const Tensor& x) { return activation_op(Op::kExp, x, Activation::kExp); }

Tensor sqrt(const Tensor& x) { return activation_op(Op::kSqrt, x, Activation::kSqrt); }

Tensor tanh(const Tensor& x) { return activation_op(Op::kTanh, x, Activation::kTanh); }

Tensor channel_norm(const Tensor& x, const Tensor& gamma, float scale, float eps) {
  const Op op = Op::kChannelNorm;
  check_first(op, "x", x);
  PARADIT_CHECK(x.ndim() >= 2, "channel_norm: x ", x.str(), " must be (N, C, *spatial)");
  const int64_t N = x.dim(0), C = x.dim(1);
  PARADIT_CHECK(gamma.defined(), "channel_norm: gamma is undefined");
  const Tensor g = vector_param(op, "gamma", gamma, C, x.device());
  const Tensor in = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());  // same shape as x
  if (out.numel() == 0) return out;
  backend::ChannelNormArgs a;
  a.x = in.raw_data();
  a.N = N;
  a.C = C;
  a.L = spatial_size(x);
  a.gamma = static_cast<const float*>(g.raw_data());
  a.scale = scale;
  a.eps = eps;
  a.dtype = x.dtype();
  a.y = out.raw_data();
  if (x.device() == Device::CPU) cpu::channel_norm(a); else if constexpr (kCudaBuilt) cuda::channel_norm(a);
  return out;
}

Tensor softmax(const Tensor& x) {
  check_first(Op::kSoftmax, "x", x);
  int64_t rows, D, row_stride;
  const Tensor in = as_rows(x, &rows, &D, &row_stride);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (out.numel() == 0) return out;
  backend::SoftmaxArgs a;
  a.x = in.raw_data();
  a.rows = rows;
  a.D = D;
  a.row_stride = row_stride;
  a.dtype = x.dtype();
  a.y = out.raw_data();
  if (x.device() == Device::CPU) cpu::softmax(a); else if constexpr (kCudaBuilt) cuda::softmax(a);
  return out;
}

Tensor apply_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, RopeStyle style) {
  const Op op = Op::kApplyRope;
  check_first(op, "x", x);
  PARADIT_CHECK(x.ndim() == 4, "apply_rope: x ", x.str(), " must be (B, S, H, D)");
  const int64_t B = x.dim(0), S = x.dim(1), H = x.dim(2), D = x.dim(3);
  PARADIT_CHECK(D % 2 == 0, "apply_rope: head dim ", D, " of x ", x.str(), " is odd");
  const Shape cs{S, D};
  PARADIT_CHECK(cos.defined() && sin.defined() && cos.shape() == cs && sin.shape() == cs,
                "apply_rope: cos ", cos.defined() ? cos.str() : "undefined", " and sin ",
                sin.defined() ? sin.str() : "undefined", " must both be ", shape_str(cs),
                " for x ", x.str());
  check_device(op, "cos", cos, x.device());
  check_device(op, "sin", sin, x.device());
  PARADIT_CHECK(is_floating(cos.dtype()) && is_floating(sin.dtype()),
                "apply_rope: cos and sin must be float tensors");
  const Tensor in = D <= 1 || x.stride(3) == 1 ? x : x.contiguous();
  const Tensor c = cos.to(DType::F32).contiguous(), s = sin.to(DType::F32).contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());  // (B, S, H, D)
  if (out.numel() == 0) return out;
  backend::RopeArgs a;
  a.x = in.raw_data();
  a.B = B;
  a.S = S;
  a.H = H;
  a.D = D;
  a.stride_b = in.stride(0);
  a.stride_s = in.stride(1);
  a.stride_h = in.stride(2);
  a.cos = static_cast<const float*>(c.raw_data());
  a.sin = static_cast<const float*>(s.raw_data());
  a.interleaved = style == RopeStyle::kInterleaved;
  a.dtype = x.dtype();
  a.out = out.raw_data();
  if (x.device() == Device::CPU) cpu::rope(a); else if constexpr (kCudaBuilt) cuda::rope(a);
  return out;
}

}  // namespace paradit::core
