// Activations and softmax (see kernels.h). The inner loops are vectorized through the
// branch-free functions of vec_math.h.

#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/kernels.h"
#include "backend/cpu/vec_math.h"

namespace paradit::backend::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 14;
constexpr int64_t kBlock = 1 << 13;  // elements per task when a row is long

template <typename Fn>
void apply_rows(const float* x, int64_t row_stride, int64_t rows, int64_t D, float* y, Fn fn) {
  if (rows == 0 || D == 0) return;
  // Tasks are blocks of a row, so that one long row (a flat contiguous tensor) still splits.
  const int64_t blocks = (D + kBlock - 1) / kBlock;
  const int64_t tasks = rows * blocks;
#pragma omp parallel for schedule(static) if (rows * D >= kParallelMin && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t r = t / blocks;
    const int64_t begin = t % blocks * kBlock;
    const int64_t end = std::min(begin + kBlock, D);
    const float* xr = x + r * row_stride;
    float* yr = y + r * D;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) yr[i] = fn(xr[i]);
  }
}

}  // namespace

void activation_f32(Activation act, const float* x, int64_t row_stride, int64_t rows, int64_t D,
                    float* y) {
  switch (act) {
    case Activation::kGeluErf:
      apply_rows(x, row_stride, rows, D, y, [](float v) { return gelu_erf_f32(v); });
      break;
    case Activation::kGeluTanh:
      apply_rows(x, row_stride, rows, D, y, [](float v) { return gelu_tanh_f32(v); });
      break;
    case Activation::kSilu:
      apply_rows(x, row_stride, rows, D, y, [](float v) { return x_sigmoid_f32(v, 1.0f); });
      break;
    case Activation::kQuickGelu:
      apply_rows(x, row_stride, rows, D, y, [](float v) { return x_sigmoid_f32(v, 1.702f); });
      break;
    case Activation::kRelu:
      apply_rows(x, row_stride, rows, D, y, [](float v) { return v > 0.0f ? v : 0.0f; });
      break;
    case Activation::kExp:
      // std::exp (not the vectorized approximation): the VAEs' exp(0.5·logvar) as torch rounds it.
      apply_rows(x, row_stride, rows, D, y, [](float v) { return std::exp(v); });
      break;
    case Activation::kSqrt:
      apply_rows(x, row_stride, rows, D, y, [](float v) { return std::sqrt(v); });
      break;
    case Activation::kTanh:
      apply_rows(x, row_stride, rows, D, y, [](float v) { return std::tanh(v); });
      break;
  }
}

void scale_f32(const float* x, int64_t row_stride, int64_t rows, int64_t D, float s, float* y) {
  apply_rows(x, row_stride, rows, D, y, [s](float v) { return v * s; });
}

void softmax_f32(const float* x, int64_t row_stride, int64_t rows, int64_t D, float* y) {
  if (D == 0) return;
#pragma omp parallel for schedule(static) if (rows * D >= kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * row_stride;
    float* yr = y + r * D;
    float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t i = 0; i < D; ++i) m = std::max(m, xr[i]);
    // Sum in double: D can be in the tens of thousands (attention-sized rows).
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) {
      const float e = exp_f32(xr[i] - m);
      yr[i] = e;
      s += e;
    }
    // A row of all -inf gives m = -inf and NaNs, as PyTorch does.
    const float inv = static_cast<float>(1.0 / s);
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) yr[i] *= inv;
  }
}

}  // namespace paradit::backend::cpu
