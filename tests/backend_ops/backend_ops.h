#pragma once
// The backend-ops test (in the manner of ggml's tests/test-backend-ops.cpp): a registry of small
// cases, each a struct whose constructor arguments describe it completely (shapes, views, masks,
// fused options, eps …) and which prints them; the driver (test_backend_ops.cpp) runs every case
// on every built backend × dtype against the CPU F32 result on the same (rounded) inputs, with
// fresh random inputs and poisoned outputs for every run, and checks the CPU F32 result itself
// against the case's plain loop in double (the reference that makes the program fail on a
// machine without a GPU, where CPU-against-CPU would prove nothing).
//
// A case declares
//   ops()         the ops it exercises (core::Op; the first is the one it is filed under),
//   vars()        its parameters as "name=value,…" (printed, and part of the gtest name),
//   inputs()      its input tensors: shape, role (how the driver places them) and value range,
//   views()       the views of the inputs the op takes (slices …), applied alike on every device,
//   run()         the op on the inputs (all on one device) → named outputs,
//   reference()   the same outputs from plain loops in double on the host (optional),
// and optionally its tolerance, whether its result is exactly rounded ("exact": the result must
// equal the reference rounded to the output dtype bit for bit), and why it cannot run on a
// backend beyond core::supports (e.g. F16 weights on the CPU).

#include <cstdint>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/op_registry.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace paradit::backend_ops {

using core::Device;
using core::DType;
using core::Op;
using core::Shape;
using core::Tensor;

// One backend × dtype of the matrix: where a run happens and the activation dtype it uses.
struct Run {
  Device device = Device::CPU;
  DType dtype = DType::F32;
  std::string name() const;  // "CPU F32", "CUDA BF16"
  bool is_reference() const { return device == Device::CPU && dtype == DType::F32; }
};

// How the driver makes an input of a run from its host F32 values.
enum class Role : uint8_t {
  kAct,     // an activation: the run's dtype, on the run's device
  kF32,     // an F32 parameter (norm weight, bias, cos/sin table, F32 mask) on the run's device
  kWeight,  // a matrix: `dtype` (or the run's dtype when follows_act) on the run's device
  kFixed,   // its own `dtype` whatever the run (masks, statistics, copy sources), on the device
  kHost,    // its own `dtype`, left on the CPU (embedding ids)
};

// Values of an input: n values for a seed (default: uniform in [lo, hi)).
using ValueFn = std::function<std::vector<float>(size_t n, uint64_t seed)>;

struct InputSpec {
  std::string name;
  Shape shape;
  Role role = Role::kAct;
  float lo = -1.0f, hi = 1.0f;
  DType dtype = DType::F32;
  bool follows_act = false;
  ValueFn values;
};

InputSpec act(std::string name, Shape shape, float lo = -1.0f, float hi = 1.0f);
InputSpec f32(std::string name, Shape shape, float lo = -1.0f, float hi = 1.0f);
// w: a matrix in `dtype`; with follows_act, in the run's activation dtype.
InputSpec weight(std::string name, Shape shape, DType dtype, bool follows_act, float lo = -1.0f,
                 float hi = 1.0f);
InputSpec fixed(std::string name, Shape shape, DType dtype, ValueFn values = {}, float lo = -1.0f,
                float hi = 1.0f);
InputSpec host(std::string name, Shape shape, DType dtype, ValueFn values);

// The weight dtype a case asks for: the activation's, or a fixed one.
enum class WeightType : uint8_t { kAct, kF32, kBF16, kF16 };
InputSpec weight(std::string name, Shape shape, WeightType w, float lo = -1.0f, float hi = 1.0f);
std::string to_string(WeightType w);
// The dtype of a weight of type w in a run of activation dtype `act`.
DType weight_dtype(WeightType w, DType act);

struct Output {
  std::string name;
  Tensor t;
};
struct Result {
  std::vector<Output> outputs;
  // A property of the op's contract the run found violated (beyond comparing values), e.g.
  // "row_max not an integer"; empty when none.
  std::string contract;
};
struct RefOutput {
  std::string name;
  Shape shape;
  std::vector<double> v;
};

class Case {
 public:
  virtual ~Case() = default;
  virtual std::vector<Op> ops() const = 0;
  Op op() const { return ops().front(); }
  virtual std::string vars() const = 0;
  std::string describe() const;  // "linear(x=[2,37,96],N=70,…)"

  virtual std::vector<InputSpec> inputs() const = 0;
  virtual std::vector<Tensor> views(const std::vector<Tensor>& in) const { return in; }
  virtual Result run(const std::vector<Tensor>& in, const Run& r) const = 0;
  // Plain loops in double on the host inputs (after views), or empty when the case has none.
  virtual std::vector<RefOutput> reference(const std::vector<Tensor>& in) const { return {}; }
  virtual bool has_reference() const { return true; }

  // Why the case cannot run on r beyond core::supports; empty when it can.
  virtual std::string unsupported(const Run& r) const { return {}; }
  // Run once per device (the F32 row) instead of per dtype: the case fixes its own dtypes.
  virtual bool fixed_dtype() const { return false; }
  // Exactly rounded: compared bit for bit (after rounding the reference to the output dtype).
  virtual bool exact() const { return false; }
  // Largest error (max-normalised and RMS-normalised) against the CPU F32 result.
  virtual double tolerance(const Run& r) const;
  // Largest error of the CPU F32 result against the plain loop.
  virtual double reference_tolerance() const { return 1e-5; }
};

using CaseList = std::vector<std::unique_ptr<Case>>;

// Tolerance of a run whose math rounds through `t`: F32 1e-5, BF16/F16 1e-2.
double dtype_tolerance(DType t);
// The lower-precision one of two dtypes for the tolerance (F32 < BF16/F16).
DType coarser(DType a, DType b);

// ---------------------------------------------------------------- the registry
void add_linear_cases(CaseList& cases);       // linear, matmul
void add_norm_cases(CaseList& cases);         // layer/rms/group/channel norms
void add_activation_cases(CaseList& cases);   // activations, softmax, rope
void add_attention_cases(CaseList& cases);    // attention, attention_merge
void add_conv_cases(CaseList& cases);         // conv2d, conv3d, upsample
void add_elementwise_cases(CaseList& cases);  // add … affine
void add_data_cases(CaseList& cases);         // concat, split, chunk, embedding, copy, fill
const CaseList& all_cases();

// Whether this build has cuDNN's fused attention (CUDA builds; false otherwise).
bool cudnn_built();

// ---------------------------------------------------------------- helpers for cases
std::vector<double> values(const Tensor& t);  // host values in logical order, any dtype/strides
Tensor host_f32(const Tensor& t);             // t on the host as contiguous F32
RefOutput ref_output(std::string name, Shape shape, std::vector<double> v);

std::string fmt(const Shape& s);
std::string fmt(bool b);
std::string fmt(DType t);
std::string fmt(core::Activation a);
std::string fmt(double v);
std::string fmt(const std::string& s);
inline std::string fmt(const char* s) { return s; }
template <typename T>
requires std::is_integral_v<T> std::string fmt(T v) { return std::to_string(v); }
std::string fmt(WeightType w);
// "out", 2 → "out2"
inline std::string indexed(const char* base, size_t i) {
  std::string s = base;
  s += std::to_string(i);
  return s;
}

// vars("M", 37, "N", 70) → "M=37,N=70"
inline void vars_append(std::ostringstream&) {}
template <typename V, typename... Rest>
void vars_append(std::ostringstream& os, const char* name, const V& value, const Rest&... rest) {
  if (os.tellp() > 0) os << ',';
  os << name << '=' << fmt(value);
  vars_append(os, rest...);
}
template <typename... Args>
std::string vars(const Args&... args) {
  std::ostringstream os;
  vars_append(os, args...);
  return os.str();
}

// Activation functions in double, as args.h defines them.
double activate(core::Activation a, double x);

// Value generators.
ValueFn uniform(float lo, float hi);
// |v| uniform in [lo, hi), sign alternating by index: denominators away from zero.
ValueFn signed_magnitude(float lo, float hi);

// Rounding of an f32 value to a dtype and back, independent of core's conversions (bf16 by bit
// arithmetic, f16 through the compiler's _Float16), for the exact comparisons.
double round_to(DType t, double v);

}  // namespace paradit::backend_ops
