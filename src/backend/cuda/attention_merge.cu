// The exact merge of unnormalized attention partials (ring attention) on the device: the CPU
// body's arithmetic (backend/cpu/ops.cpp) with one thread block per (b, s, h) row, accumulating
// in double. Rescaling factors are exact powers of two (ldexp).

#include <cmath>

#include "backend/cuda/check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/layout.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda {

using namespace detail;

namespace {

constexpr int kMergeThreads = 128;

// grid: one block per row (b, s, h), strided; threads over Dv. Thread 0 decides the new
// reference; every thread rescales and adds its columns.
template <typename T>
__global__ void merge_add_kernel(AttentionMergeAddArgs a, int64_t rows) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t h = row % a.H, bs = row / a.H, s = bs % a.S, b = bs / a.S;
    const float m = a.row_max[b * a.max_stride_b + h * a.max_stride_h + s];
    if (m == -INFINITY) continue;  // no visible key in this block for this row (uniform branch)
    const double ref = a.ref[row];
    // New reference: the larger of the two; what is accumulated is rescaled to it.
    const double new_ref = ref == -INFINITY || m > ref ? static_cast<double>(m) : ref;
    const double c_old = ref == -INFINITY ? 0.0 : ldexp(1.0, static_cast<int>(ref - new_ref));
    const double c_new = ldexp(1.0, static_cast<int>(static_cast<double>(m) - new_ref));
    double* o = a.acc + row * a.Dv;
    const T* p = static_cast<const T*>(a.out) + b * a.out_stride_b + s * a.out_stride_s + h * a.Dv;
    for (int64_t d = threadIdx.x; d < a.Dv; d += blockDim.x) {
      const double prev = ref == -INFINITY ? 0.0 : o[d] * c_old;
      o[d] = prev + c_new * static_cast<double>(to_float(p[d]));
    }
    __syncthreads();  // every column read `ref` before thread 0 moves it
    if (threadIdx.x == 0) {
      const double prev_sum = ref == -INFINITY ? 0.0 : a.sum[row] * c_old;
      a.sum[row] =
          prev_sum + c_new * static_cast<double>(a.row_sum[b * a.sum_stride_b + h * a.sum_stride_h + s]);
      a.ref[row] = new_ref;
    }
  }
}

template <typename T>
__global__ void merge_out_kernel(const double* acc, const double* sum, int64_t rows, int64_t Dv,
                                 T* out) {
  PARADIT_GRID_STRIDE(i, rows * Dv) {
    const double s = sum[i / Dv];
    out[i] = from_float<T>(s == 0.0 ? 0.0f : static_cast<float>(acc[i] / s));
  }
}

}  // namespace

void attention_merge_add(const AttentionMergeAddArgs& a) {
  const int64_t rows = a.B * a.S * a.H;
  if (rows == 0 || a.Dv == 0) return;
  const unsigned grid = static_cast<unsigned>(rows < 65535 * 8 ? rows : 65535 * 8);
  dispatch_float(a.dtype, "attention_merge", [&]<typename T>(T) {
    merge_add_kernel<T><<<grid, kMergeThreads, 0, current_stream()>>>(a, rows);
    PARADIT_CUDA_CHECK_LAUNCH("merge_add_kernel");
  });
}

void attention_merge_out(const AttentionMergeOutArgs& a) {
  const int64_t n = a.rows * a.Dv;
  if (n == 0) return;
  constexpr int kThreads = 256;
  dispatch_float(a.dtype, "attention_merge", [&]<typename T>(T) {
    merge_out_kernel<T><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
        a.acc, a.sum, a.rows, a.Dv, static_cast<T*>(a.out));
    PARADIT_CUDA_CHECK_LAUNCH("merge_out_kernel");
  });
}

}  // namespace paradit::backend::cuda
