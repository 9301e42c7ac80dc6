#pragma once
// The one entry point to the GEMM library (oneDNN, or OpenBLAS as a fallback). Row-major.
//   C(M×N) = alpha · op(A)(M×K) · op(B)(K×N) + beta · C
// op(X) = Xᵀ when the trans flag is set; lda/ldb/ldc are row strides in elements.

#include <cstdint>

namespace paradit::backend::cpu {

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc);

// A is F32 (converted to bf16 internally), B holds bf16 bits; f32 accumulate and output.
void gemm_f32_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta,
                   float* C, int64_t ldc);

// Name of the library behind gemm_* ("oneDNN 2.6.3", "OpenBLAS"), for benchmarks.
const char* gemm_library_name();

}  // namespace paradit::backend::cpu
