// Layer norm, RMS norm and group norm bodies (see kernels.h).

#include <cmath>
#include <vector>

#include "backend/cpu/kernels.h"

namespace paradit::backend::cpu {

namespace {

// Rows smaller than this many elements in total run on one thread: a parallel region costs
// more than the work.
constexpr int64_t kParallelMin = 1 << 15;

double row_sum(const float* x, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}

double row_centered_sq(const float* x, int64_t n, double mean) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    s += d * d;
  }
  return s;
}

double row_sq(const float* x, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

// y = (x − mean)·rstd·w + b in float. x − mean_f is computed in float against mean rounded to
// float; `corr` = (mean − mean_f)·rstd restores the part that rounding lost, so the result is
// accurate relative to |x − mean| even when |mean| ≫ std.
void normalize_row(const float* x, int64_t n, double mean, double rstd, const float* w,
                   const float* b, float* y) {
  const float mean_f = static_cast<float>(mean);
  const float rstd_f = static_cast<float>(rstd);
  const float corr = static_cast<float>((mean - static_cast<double>(mean_f)) * rstd);
  if (w && b) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = ((x[i] - mean_f) * rstd_f - corr) * w[i] + b[i];
  } else if (w) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = ((x[i] - mean_f) * rstd_f - corr) * w[i];
  } else if (b) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = ((x[i] - mean_f) * rstd_f - corr) + b[i];
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean_f) * rstd_f - corr;
  }
}

}  // namespace

void layer_norm_f32(const float* x, int64_t row_stride, int64_t rows, int64_t D,
                    const float* weight, const float* bias, float eps, float* y) {
  if (D == 0) return;
#pragma omp parallel for schedule(static) if (rows * D >= kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * row_stride;
    const double mean = row_sum(xr, D) / static_cast<double>(D);
    const double var = row_centered_sq(xr, D, mean) / static_cast<double>(D);
    const double rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    normalize_row(xr, D, mean, rstd, weight, bias, y + r * D);
  }
}

void rms_norm_f32(const float* x, int64_t row_stride, int64_t rows, int64_t D, const float* weight,
                  float eps, float* y) {
  if (D == 0) return;
#pragma omp parallel for schedule(static) if (rows * D >= kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * row_stride;
    float* yr = y + r * D;
    const double ms = row_sq(xr, D) / static_cast<double>(D);
    const float rstd = static_cast<float>(1.0 / std::sqrt(ms + static_cast<double>(eps)));
    if (weight) {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * rstd * weight[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * rstd;
    }
  }
}

void group_norm_stats_f32(const float* x, int64_t N, int64_t C, int64_t L, int64_t groups,
                          double* mean, double* var) {
  const int64_t per_group = C / groups * L;  // a group's channels are adjacent in memory
  const int64_t count = N * groups;
  if (per_group == 0) {
    for (int64_t i = 0; i < count; ++i) mean[i] = var[i] = 0.0;
    return;
  }
  // Few groups (N·groups is often 32) but long ones: each group is summed in chunks so that
  // both threads have work even when count is odd or small.
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (per_group + kChunk - 1) / kChunk;
  const int64_t tasks = count * chunks;
  const bool parallel = count * per_group >= kParallelMin;
  // Pass 1: means.
  std::vector<double> partial(static_cast<size_t>(tasks));
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t gi = t / chunks, ci = t % chunks;
    const int64_t begin = ci * kChunk;
    const int64_t len = begin + kChunk < per_group ? kChunk : per_group - begin;
    partial[t] = row_sum(x + gi * per_group + begin, len);
  }
  for (int64_t gi = 0; gi < count; ++gi) {
    double s = 0.0;
    for (int64_t ci = 0; ci < chunks; ++ci) s += partial[gi * chunks + ci];
    mean[gi] = s / static_cast<double>(per_group);
  }
  // Pass 2: centered second moments.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t gi = t / chunks, ci = t % chunks;
    const int64_t begin = ci * kChunk;
    const int64_t len = begin + kChunk < per_group ? kChunk : per_group - begin;
    partial[t] = row_centered_sq(x + gi * per_group + begin, len, mean[gi]);
  }
  for (int64_t gi = 0; gi < count; ++gi) {
    double s = 0.0;
    for (int64_t ci = 0; ci < chunks; ++ci) s += partial[gi * chunks + ci];
    var[gi] = s / static_cast<double>(per_group);
  }
}

void group_norm_apply_f32(const float* x, int64_t N, int64_t C, int64_t L, int64_t groups,
                          const double* mean, const double* var, float eps, const float* weight,
                          const float* bias, float* y) {
  const int64_t cpg = C / groups;
  const int64_t planes = N * C;
#pragma omp parallel for schedule(static) if (planes * L >= kParallelMin && planes > 1)
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t n = p / C, c = p % C;
    const int64_t gi = n * groups + c / cpg;
    const double rstd = 1.0 / std::sqrt(var[gi] + static_cast<double>(eps));
    // Fold the channel's affine into one scale and shift: y = x·a + b'.
    const double w = weight ? weight[c] : 1.0;
    const double b = bias ? bias[c] : 0.0;
    const float a = static_cast<float>(rstd * w);
    const float mean_f = static_cast<float>(mean[gi]);
    const float shift = static_cast<float>(b - (mean[gi] - mean_f) * rstd * w);
    const float* xp = x + p * L;
    float* yp = y + p * L;
#pragma omp simd
    for (int64_t i = 0; i < L; ++i) yp[i] = (xp[i] - mean_f) * a + shift;
  }
}

void channel_norm_f32(const float* x, int64_t N, int64_t C, int64_t L, const float* gamma,
                      float scale, float eps, float* y) {
  constexpr int64_t kBlock = 256;  // positions per task; their channel sums stay in cache
  const int64_t blocks = (L + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (N * C * L >= (1 << 15))
  for (int64_t t = 0; t < N * blocks; ++t) {
    const int64_t n = t / blocks, l0 = t % blocks * kBlock, l1 = std::min(L, l0 + kBlock);
    const float* xn = x + n * C * L;
    float* yn = y + n * C * L;
    double ss[kBlock] = {};
    for (int64_t c = 0; c < C; ++c) {
      const float* row = xn + c * L;
      for (int64_t l = l0; l < l1; ++l) ss[l - l0] += static_cast<double>(row[l]) * row[l];
    }
    float denom[kBlock];
    for (int64_t l = l0; l < l1; ++l) {
      // F.normalize: x / max(‖x‖₂, eps) with the norm rounded to f32.
      denom[l - l0] = std::max(static_cast<float>(std::sqrt(ss[l - l0])), eps);
    }
    for (int64_t c = 0; c < C; ++c) {
      const float* row = xn + c * L;
      float* out_row = yn + c * L;
      const float gc = gamma[c];
      for (int64_t l = l0; l < l1; ++l) out_row[l] = row[l] / denom[l - l0] * scale * gc;
    }
  }
}

}  // namespace paradit::backend::cpu
