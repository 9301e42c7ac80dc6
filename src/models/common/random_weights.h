#pragma once
// RandomWeights: the WeightProvider behind `paradit make-model`. It records every (name, shape)
// a model asks for, in order, and answers with deterministic random values, drawn like the
// reference fixtures: matrices randn / sqrt(fan_in), 1-D biases 0.05·randn, other 1-D tensors
// (norm scales) 1 + 0.1·randn, so nothing is zero and no norm scale is exactly 1.
//
// Generator (documented so other tools can reproduce a checkpoint): each tensor is cut into
// chunks of kRandomChunk elements; chunk c of tensor `name` draws from xoshiro256** whose state
// is filled by SplitMix64 seeded with fnv1a64(name) ^ (seed · φ) + c, where φ =
// 0x9E3779B97F4A7C15. Normals come from Box–Muller on pairs of uniforms u = (x >> 11) · 2⁻⁵³
// (u1 shifted into (0, 1]); each pair gives two values (cos then sin). Values are rounded from
// f32 to the storage dtype. The result depends on seed and name only, not on thread count or the
// order in which tensors are requested.
//
// Dry-run mode hands out shape-only placeholders (Tensor::broadcast_placeholder) so a full-size
// model can be bound to count its parameters without allocating them.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/common/weights.h"

namespace paradit::models::common {

constexpr int64_t kRandomChunk = 1 << 16;

// Fills `out` (n floats) with the fixture-style random values of tensor `name` of `shape`.
void random_tensor_values(uint64_t seed, const std::string& name, const core::Shape& shape,
                          float* out);

class RandomWeights : public WeightProvider {
 public:
  struct Entry {
    std::string name;
    core::Shape shape;
    core::Tensor stored;  // in the storage dtype; undefined in dry-run mode
  };

  // Values for tensors that are not learned (e.g. SD3's stored sin-cos pos_embed buffer): given
  // a name and shape, an F32 tensor of that shape, or an undefined tensor to draw random values.
  using FixedValues = std::function<core::Tensor(const std::string&, const core::Shape&)>;

  // `storage_dtype`: F32 or BF16, the dtype the checkpoint is written in.
  explicit RandomWeights(uint64_t seed, core::DType storage_dtype = core::DType::F32,
                         bool dry_run = false);
  void set_fixed_values(FixedValues fixed) { fixed_ = std::move(fixed); }

  core::Tensor get(const std::string& name, const core::Shape& expected,
                   core::DType dtype) const override;
  // True for names already handed out (models must not decide structure from has()).
  bool has(const std::string& name) const override { return index_.count(name) != 0; }

  // Every tensor handed out, in the order first requested.
  const std::vector<Entry>& entries() const { return entries_; }
  int64_t parameter_count() const;
  // Bytes of the tensors in the storage dtype (what the checkpoint's data section holds).
  uint64_t stored_bytes() const;
  core::DType storage_dtype() const { return storage_dtype_; }
  bool dry_run() const { return dry_run_; }

 private:
  uint64_t seed_;
  core::DType storage_dtype_;
  bool dry_run_;
  FixedValues fixed_;
  // get() is const in the interface; recording is this provider's whole purpose.
  mutable std::vector<Entry> entries_;
  mutable std::map<std::string, size_t> index_;
};

}  // namespace paradit::models::common
