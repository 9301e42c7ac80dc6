#pragma once
// The transformer fixtures (tests/data/transformer/<name>: config.json, weights, inputs and
// diffusers' outputs) as the golden tests read them, and the error they are held to.

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "io/safetensors.h"
#include "models/transformer.h"

namespace paradit::testing {

inline std::filesystem::path transformer_case_dir(const std::string& name) {
  return std::filesystem::path(PARADIT_TEST_DATA) / "transformer" / name;
}

// ‖a − b‖₂ / ‖b‖₂ in double; 1e30 (and a failure) when the shapes differ.
inline double rel_l2_err(const core::Tensor& a, const core::Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return 1e30;
  const auto x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    den += double(y[i]) * y[i];
  }
  return std::sqrt(num / den);
}

// Every tensor of a safetensors file, by name (owned copies).
inline models::NamedTensors read_all(const std::filesystem::path& file) {
  auto src = io::TensorSource::open(file);
  models::NamedTensors out;
  for (const auto& n : src.names()) out[n] = src.load(n).clone();
  return out;
}

// diffusers' output of a fixture case.
inline core::Tensor reference_sample(const std::filesystem::path& dir) {
  return io::TensorSource::open(dir / "outputs.safetensors").load("sample");
}

}  // namespace paradit::testing
