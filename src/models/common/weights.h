#pragma once
// Typed modules bound to checkpoint names. A model's members bind themselves from a WeightScope
// (a checkpoint plus a name prefix) by their diffusers names; the forward stays typed.

#include <string>

#include "core/ops.h"
#include "io/safetensors.h"

namespace paradit::models::common {

// Where a model's parameters come from: a checkpoint, or (for make-model) a generator that
// records each requested name and shape and returns random values.
class WeightProvider {
 public:
  virtual ~WeightProvider() = default;
  // The tensor `name` in `dtype`, checked against `expected`; Error naming it otherwise.
  virtual core::Tensor get(const std::string& name, const core::Shape& expected,
                           core::DType dtype) const = 0;
  virtual bool has(const std::string& name) const = 0;
  // Entries [begin, end) along `dim` of the tensor `name` (checked against the whole `expected`
  // shape), in `dtype`: a tensor-parallel rank's share. The default takes them from get(); a
  // checkpoint reads only the share's bytes.
  virtual core::Tensor get_slice(const std::string& name, const core::Shape& expected,
                                 core::DType dtype, int dim, int64_t begin, int64_t end) const;
};

// Reads a checkpoint (lazily: only the tensors a model binds are read).
class CheckpointWeights : public WeightProvider {
 public:
  explicit CheckpointWeights(const io::TensorSource& source) : source_(&source) {}
  core::Tensor get(const std::string& name, const core::Shape& expected,
                   core::DType dtype) const override;
  bool has(const std::string& name) const override { return source_->has(name); }
  core::Tensor get_slice(const std::string& name, const core::Shape& expected, core::DType dtype,
                         int dim, int64_t begin, int64_t end) const override;

 private:
  const io::TensorSource* source_;
};

// A provider plus a name prefix. Model structure must come from config.json alone, never from
// has(): make-model binds the same code against a generator.
class WeightScope {
 public:
  // `place`: the device every weight is moved to, and the dtype 2-D+ weights are kept in (F32,
  // or BF16 for bf16 GEMMs; on CUDA also F16); vectors (biases, norm scales) are always F32.
  WeightScope(const WeightProvider& provider, std::string prefix = "",
              const core::Placement& place = {});

  // The scope of a child module: prefix + "." + child.
  WeightScope operator/(const std::string& child) const;
  WeightScope operator/(int index) const { return *this / std::to_string(index); }

  std::string full_name(const std::string& name) const;
  bool has(const std::string& name) const;
  // Loads `name` checking its shape; Error "<file>: tensor 'p.name' has shape [..], the
  // architecture expects [..]" or "<file>: tensor 'p.name' is missing".
  core::Tensor matrix(const std::string& name, const core::Shape& expected) const;
  core::Tensor vector(const std::string& name, const core::Shape& expected) const;
  // Entries [begin, end) along `dim` of a matrix / vector whose whole shape is `expected`.
  core::Tensor matrix_slice(const std::string& name, const core::Shape& expected, int dim,
                            int64_t begin, int64_t end) const;
  core::Tensor vector_slice(const std::string& name, const core::Shape& expected, int64_t begin,
                            int64_t end) const;
  // A parameter that meets activations in elementwise ops (scale-shift tables, learned position
  // embeddings): in the placement's activation dtype (F32 on the CPU, the compute dtype on CUDA).
  core::Tensor param(const std::string& name, const core::Shape& expected) const;
  core::DType matrix_dtype() const { return place_.dtype; }
  const core::Placement& placement() const { return place_; }
  const WeightProvider& provider() const { return *provider_; }

 private:
  const WeightProvider* provider_;
  std::string prefix_;
  core::Placement place_;
};

// y = x Wᵀ + b.   weight: (out, in)   bias: (out) or none
struct Linear {
  core::Tensor weight, bias;
  void bind(const WeightScope& w, int64_t in, int64_t out, bool has_bias = true);
  // Tensor parallel, column-parallel: output features [begin, end) (rows of the weight, the
  // bias's entries). x: (..., in) → (..., end − begin).
  void bind_columns(const WeightScope& w, int64_t in, int64_t out, int64_t begin, int64_t end,
                    bool has_bias = true);
  // Tensor parallel, row-parallel: input features [begin, end) (columns of the weight); the
  // bias only where `with_bias` (one rank), so that the all-reduce adds it once.
  // x: (..., end − begin) → (..., out), a partial sum.
  void bind_rows(const WeightScope& w, int64_t in, int64_t out, int64_t begin, int64_t end,
                 bool with_bias);
  core::Tensor operator()(const core::Tensor& x) const { return core::linear(x, weight, bias); }
  int64_t out_features() const { return weight.dim(0); }
};

struct LayerNorm {
  core::Tensor weight, bias;  // undefined when elementwise_affine=False
  float eps = 1e-5f;
  void bind(const WeightScope& w, int64_t dim, float eps, bool affine = true,
            bool has_bias = true);
  core::Tensor operator()(const core::Tensor& x, const core::Modulation& mod = {}) const {
    return core::layer_norm(x, weight, bias, eps, mod);
  }
};

struct RMSNorm {
  core::Tensor weight;
  float eps = 1e-6f;
  void bind(const WeightScope& w, int64_t dim, float eps, bool affine = true);
  core::Tensor operator()(const core::Tensor& x, const core::Modulation& mod = {}) const {
    return core::rms_norm(x, weight, eps, mod);
  }
};

}  // namespace paradit::models::common
