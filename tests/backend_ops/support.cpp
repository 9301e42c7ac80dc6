// Helpers of the backend-ops cases: input specs, formatting, host values, activation
// functions and roundings in double (backend_ops.h).

#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>

#include "backend_ops.h"
#include "support/random.h"

namespace paradit::backend_ops {

std::string Run::name() const {
  return std::string(device == Device::CPU ? "CPU " : "CUDA ") +
         std::string(core::dtype_name(dtype));
}

std::string Case::describe() const { return std::string(core::op_name(op())) + "(" + vars() + ")"; }

double dtype_tolerance(DType t) { return t == DType::BF16 || t == DType::F16 ? 1e-2 : 1e-5; }

DType coarser(DType a, DType b) {
  if (a == DType::BF16 || b == DType::BF16) return DType::BF16;
  if (a == DType::F16 || b == DType::F16) return DType::F16;
  return a;
}

double Case::tolerance(const Run& r) const { return dtype_tolerance(r.dtype); }

InputSpec act(std::string name, Shape shape, float lo, float hi) {
  InputSpec s;
  s.name = std::move(name);
  s.shape = std::move(shape);
  s.role = Role::kAct;
  s.lo = lo;
  s.hi = hi;
  return s;
}

InputSpec f32(std::string name, Shape shape, float lo, float hi) {
  InputSpec s = act(std::move(name), std::move(shape), lo, hi);
  s.role = Role::kF32;
  return s;
}

InputSpec weight(std::string name, Shape shape, DType dtype, bool follows_act, float lo, float hi) {
  InputSpec s = act(std::move(name), std::move(shape), lo, hi);
  s.role = Role::kWeight;
  s.dtype = dtype;
  s.follows_act = follows_act;
  return s;
}

InputSpec weight(std::string name, Shape shape, WeightType w, float lo, float hi) {
  const DType d = w == WeightType::kBF16  ? DType::BF16
                  : w == WeightType::kF16 ? DType::F16
                                          : DType::F32;
  return weight(std::move(name), std::move(shape), d, w == WeightType::kAct, lo, hi);
}

InputSpec fixed(std::string name, Shape shape, DType dtype, ValueFn values, float lo, float hi) {
  InputSpec s = act(std::move(name), std::move(shape), lo, hi);
  s.role = Role::kFixed;
  s.dtype = dtype;
  s.values = std::move(values);
  return s;
}

InputSpec host(std::string name, Shape shape, DType dtype, ValueFn values) {
  InputSpec s = act(std::move(name), std::move(shape));
  s.role = Role::kHost;
  s.dtype = dtype;
  s.values = std::move(values);
  return s;
}

std::string to_string(WeightType w) {
  switch (w) {
    case WeightType::kAct:
      return "act";
    case WeightType::kF32:
      return "F32";
    case WeightType::kBF16:
      return "BF16";
    case WeightType::kF16:
      return "F16";
  }
  return "?";
}
std::string fmt(WeightType w) { return to_string(w); }

DType weight_dtype(WeightType w, DType act_dtype) {
  switch (w) {
    case WeightType::kAct:
      return act_dtype;
    case WeightType::kF32:
      return DType::F32;
    case WeightType::kBF16:
      return DType::BF16;
    case WeightType::kF16:
      return DType::F16;
  }
  return act_dtype;
}

std::vector<double> values(const Tensor& t) {
  const Tensor h = t.to_device(Device::CPU);
  if (h.dtype() == DType::F64) {
    const Tensor c = h.contiguous();
    const double* p = c.data<double>();
    return std::vector<double>(p, p + c.numel());
  }
  if (h.dtype() == DType::I64) {
    const std::vector<int64_t> v = h.to_vector_i64();
    return std::vector<double>(v.begin(), v.end());
  }
  const std::vector<float> v = h.to_vector();
  return std::vector<double>(v.begin(), v.end());
}

Tensor host_f32(const Tensor& t) { return t.to_device(Device::CPU).to(DType::F32).contiguous(); }

RefOutput ref_output(std::string name, Shape shape, std::vector<double> v) {
  return {std::move(name), std::move(shape), std::move(v)};
}

std::string fmt(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(s[i]);
  }
  return out + "]";
}
std::string fmt(bool b) { return b ? "1" : "0"; }
std::string fmt(DType t) { return std::string(core::dtype_name(t)); }
std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
std::string fmt(const std::string& s) { return s; }
std::string fmt(core::Activation a) {
  using core::Activation;
  switch (a) {
    case Activation::kNone:
      return "none";
    case Activation::kGeluErf:
      return "gelu";
    case Activation::kGeluTanh:
      return "gelu_tanh";
    case Activation::kSilu:
      return "silu";
    case Activation::kQuickGelu:
      return "quick_gelu";
    case Activation::kRelu:
      return "relu";
    case Activation::kExp:
      return "exp";
    case Activation::kSqrt:
      return "sqrt";
    case Activation::kTanh:
      return "tanh";
  }
  return "?";
}

double activate(core::Activation a, double x) {
  using core::Activation;
  switch (a) {
    case Activation::kNone:
      return x;
    case Activation::kGeluErf:
      return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2));
    case Activation::kGeluTanh: {
      const double k = std::sqrt(2.0 / std::numbers::pi);
      return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
    }
    case Activation::kSilu:
      return x / (1.0 + std::exp(-x));
    case Activation::kQuickGelu:
      return x / (1.0 + std::exp(-1.702 * x));
    case Activation::kRelu:
      return x > 0 ? x : 0.0;
    case Activation::kExp:
      return std::exp(x);
    case Activation::kSqrt:
      return std::sqrt(x);
    case Activation::kTanh:
      return std::tanh(x);
  }
  return x;
}

ValueFn uniform(float lo, float hi) {
  return [lo, hi](size_t n, uint64_t seed) { return testing::random_values(n, seed, lo, hi); };
}

ValueFn signed_magnitude(float lo, float hi) {
  return [lo, hi](size_t n, uint64_t seed) {
    std::vector<float> v = testing::random_values(n, seed, lo, hi);
    for (size_t i = 0; i < n; i += 2) v[i] = -v[i];
    return v;
  };
}

namespace {

float bf16_round(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return f;  // NaN stays NaN
  // Round to nearest, ties to even, on the upper 16 bits.
  const uint32_t lsb = (bits >> 16) & 1u;
  bits += 0x7fffu + lsb;
  bits &= 0xffff0000u;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

}  // namespace

double round_to(DType t, double v) {
  switch (t) {
    case DType::F32:
      return static_cast<float>(v);
    case DType::BF16:
      return bf16_round(static_cast<float>(v));
    case DType::F16:
#if defined(__FLT16_MAX__)
      return static_cast<float>(static_cast<_Float16>(static_cast<float>(v)));
#else
      return core::f16_to_f32(core::f32_to_f16(static_cast<float>(v)));
#endif
    case DType::Bool:
      return v != 0.0 ? 1.0 : 0.0;
    default:
      return v;
  }
}

}  // namespace paradit::backend_ops
