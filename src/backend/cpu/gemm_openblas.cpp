// gemm.h through CBLAS (OpenBLAS or any BLAS with a cblas.h): the fallback when oneDNN is absent.
//
// Debian's OpenBLAS has no usable bf16 GEMM, so bf16 operands are widened to f32 first. That
// costs a copy of B on every call; builds that care about bf16 speed use oneDNN.

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/gemm.h"
#include "core/dtype.h"
#include "core/error.h"

namespace paradit::backend::cpu {
namespace {

void check_args(const char* what, int64_t M, int64_t N, int64_t K) {
  PARADIT_CHECK(M >= 0 && N >= 0 && K >= 0, what, ": negative size M=", M, " N=", N, " K=", K);
}

// rows × cols bf16 block (row stride ld) → dense f32 (row stride cols).
std::vector<float> widen(int64_t rows, int64_t cols, const uint16_t* src, int64_t ld) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15) && !omp_in_parallel())
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) out[i * cols + j] = core::bf16_to_f32(src[i * ld + j]);
  }
  return out;
}

// Rounds A through bf16 so that results match the oneDNN path (which computes in bf16).
std::vector<float> round_through_bf16(int64_t rows, int64_t cols, const float* src, int64_t ld) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15) && !omp_in_parallel())
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      out[i * cols + j] = core::bf16_to_f32(core::f32_to_bf16(src[i * ld + j]));
    }
  }
  return out;
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // CBLAS rejects a leading dimension below the row length even when there is one row.
  lda = std::max<int64_t>(lda, std::max<int64_t>(1, trans_a ? M : K));
  ldb = std::max<int64_t>(ldb, std::max<int64_t>(1, trans_b ? K : N));
  ldc = std::max<int64_t>(ldc, std::max<int64_t>(1, N));
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(M), static_cast<int>(N),
              static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta,
              C, static_cast<int>(ldc));
}

void add_bias(int64_t M, int64_t N, const float* bias, float* C, int64_t ldc) {
  if (!bias) return;
#pragma omp parallel for schedule(static) if (M * N > (1 << 15) && !omp_in_parallel())
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] += bias[j];
  }
}

}  // namespace

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  check_args("gemm_f32", M, N, K);
  if (M == 0 || N == 0) return;
  sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_f32_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta,
                   float* C, int64_t ldc) {
  check_args("gemm_f32_bf16", M, N, K);
  if (M == 0 || N == 0) return;
  const int64_t a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
  const int64_t b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
  std::vector<float> a32 = round_through_bf16(a_rows, a_cols, A, lda);
  std::vector<float> b32 = widen(b_rows, b_cols, B, ldb);
  sgemm(trans_a, trans_b, M, N, K, alpha, a32.data(), a_cols, b32.data(), b_cols, beta, C, ldc);
}

void linear_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* W,
                int64_t ldw, const float* bias, float* C, int64_t ldc) {
  check_args("linear_f32", M, N, K);
  if (M == 0 || N == 0) return;
  sgemm(false, true, M, N, K, 1.0f, A, lda, W, ldw, 0.0f, C, ldc);
  add_bias(M, N, bias, C, ldc);
}

void linear_f32_bf16(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                     const uint16_t* W, int64_t ldw, const float* bias, float* C, int64_t ldc) {
  check_args("linear_f32_bf16", M, N, K);
  if (M == 0 || N == 0) return;
  gemm_f32_bf16(false, true, M, N, K, 1.0f, A, lda, W, ldw, 0.0f, C, ldc);
  add_bias(M, N, bias, C, ldc);
}

void gemm_batched_f32(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                      const float* A, int64_t stride_a, int64_t lda, const float* B,
                      int64_t stride_b, int64_t ldb, float* C, int64_t stride_c, int64_t ldc) {
  check_args("gemm_batched_f32", M, N, K);
  PARADIT_CHECK(batch >= 0, "gemm_batched_f32: negative batch ", batch);
  if (M == 0 || N == 0) return;
  for (int64_t b = 0; b < batch; ++b) {
    sgemm(trans_a, trans_b, M, N, K, 1.0f, A + b * stride_a, lda, B + b * stride_b, ldb, 0.0f,
          C + b * stride_c, ldc);
  }
}

const char* gemm_library_name() { return "OpenBLAS (CBLAS)"; }

}  // namespace paradit::backend::cpu
