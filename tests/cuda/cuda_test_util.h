#pragma once
// Helpers of the CUDA backend tests: skip without a device, random host tensors, and the error
// measure every test uses.
//
// Error measure: max|got − want| / max|want| over the tensor (got read back to the host as
// f32). Tolerances per dtype: F32 1e-5, BF16/F16 1e-2 (the output rounding alone is 2⁻⁹ resp.
// 2⁻¹¹ of an element; a wrong index, stride or formula gives O(1)). The CPU op (core/ops.h) is
// the reference, run in f32 on the same values the device saw (inputs rounded to the device
// dtype first).

#ifdef PARADIT_WITH_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "backend/cuda/runtime.h"
#include "core/tensor.h"

// Every test that needs a GPU starts with this.
#define PARADIT_REQUIRE_CUDA()                                                    \
  do {                                                                            \
    if (!::paradit::backend::cuda::available()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

namespace paradit::cuda_test {

using core::Device;
using core::DType;
using core::Shape;
using core::Tensor;

inline Tensor random_host(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(core::shape_numel(shape)));
  for (auto& x : v) x = dist(gen);
  return Tensor::from_vector(v, shape);
}

// The f32 values a tensor of `dtype` holds after rounding x (host, F32).
inline Tensor rounded(const Tensor& x, DType dtype) {
  return dtype == DType::F32 ? x : x.to(dtype).to(DType::F32);
}

// x (host F32) rounded to `dtype` and moved to the device.
inline Tensor on_device(const Tensor& x, DType dtype) {
  return x.to(dtype).to_device(Device::CUDA);
}

inline double tolerance(DType t) { return t == DType::F32 ? 1e-5 : 1e-2; }

// max|got − want| / max|want|; got may be on the device and of any float dtype.
inline double rel_error(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  const std::vector<float> a = got.to_vector(), b = want.to_vector();
  if (a.size() != b.size()) return INFINITY;
  double diff = 0.0, mag = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(b[i]) && a[i] == b[i]) continue;  // −inf lse of an empty row
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    if (std::isfinite(b[i])) mag = std::max(mag, std::fabs(static_cast<double>(b[i])));
  }
  return diff / std::max(mag, 1e-30);
}

inline const char* dtype_str(DType t) { return core::dtype_name(t).data(); }

}  // namespace paradit::cuda_test

#endif  // PARADIT_WITH_CUDA
