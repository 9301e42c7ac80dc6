#include "models/common/random_weights.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace paradit::models::common {

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += kGolden);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) {
    for (auto& word : s_) word = splitmix64(seed);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void random_tensor_values(uint64_t seed, const std::string& name, const core::Shape& shape,
                          float* out) {
  const int64_t n = core::shape_numel(shape);
  // How a standard normal maps to the value: fixture-style initialization by tensor role.
  double mul = 1.0, add = 0.0;
  if (shape.size() >= 2) {
    int64_t fan_in = 1;
    for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
    mul = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(fan_in, 1)));
  } else if (ends_with(name, "bias")) {
    mul = 0.05;
  } else {
    mul = 0.1;
    add = 1.0;
  }
  const uint64_t base = fnv1a64(name) ^ (seed * kGolden);
  const int64_t chunks = (n + kRandomChunk - 1) / kRandomChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    Xoshiro256 rng(base + static_cast<uint64_t>(c));
    const int64_t begin = c * kRandomChunk;
    const int64_t end = std::min(n, begin + kRandomChunk);
    for (int64_t i = begin; i < end; i += 2) {
      const double u1 = 1.0 - rng.uniform();  // (0, 1]: log stays finite
      const double u2 = rng.uniform();
      const double r = std::sqrt(-2.0 * std::log(u1));
      const double angle = 2.0 * std::numbers::pi * u2;
      out[i] = static_cast<float>(add + mul * r * std::cos(angle));
      if (i + 1 < end) out[i + 1] = static_cast<float>(add + mul * r * std::sin(angle));
    }
  }
}

RandomWeights::RandomWeights(uint64_t seed, core::DType storage_dtype, bool dry_run)
    : seed_(seed), storage_dtype_(storage_dtype), dry_run_(dry_run) {
  PARADIT_CHECK(storage_dtype == core::DType::F32 || storage_dtype == core::DType::BF16,
                "random weights: storage dtype ", core::dtype_name(storage_dtype),
                " is not supported (expected F32 or BF16)");
}

core::Tensor RandomWeights::get(const std::string& name, const core::Shape& expected,
                                core::DType dtype) const {
  auto it = index_.find(name);
  if (it != index_.end()) {
    const Entry& e = entries_[it->second];
    PARADIT_CHECK(e.shape == expected, "random weights: tensor '", name, "' requested as ",
                  core::shape_str(expected), " after ", core::shape_str(e.shape));
    return dry_run_ ? core::Tensor::broadcast_placeholder(expected, dtype) : e.stored.to(dtype);
  }
  Entry e{name, expected, {}};
  if (!dry_run_) {
    core::Tensor values = fixed_ ? fixed_(name, expected) : core::Tensor{};
    if (values.defined()) {
      PARADIT_CHECK(values.shape() == expected, "random weights: fixed values for '", name,
                    "' have shape ", core::shape_str(values.shape()), ", expected ",
                    core::shape_str(expected));
    } else {
      values = core::Tensor::empty(expected, core::DType::F32);  // expected
      random_tensor_values(seed_, name, expected, values.data<float>());
    }
    e.stored = values.to(storage_dtype_);
  }
  index_[name] = entries_.size();
  entries_.push_back(e);
  return dry_run_ ? core::Tensor::broadcast_placeholder(expected, dtype) : e.stored.to(dtype);
}

int64_t RandomWeights::parameter_count() const {
  int64_t n = 0;
  for (const auto& e : entries_) n += core::shape_numel(e.shape);
  return n;
}

uint64_t RandomWeights::stored_bytes() const {
  return static_cast<uint64_t>(parameter_count()) * core::dtype_size(storage_dtype_);
}

}  // namespace paradit::models::common
