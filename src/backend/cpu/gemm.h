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

// ---- additions (gemm helper): the shapes the ops layer needs, fused where the library can ----

// Linear layer: C(M×N) = A(M×K) · Wᵀ + bias, W (N×K) row-major with row stride ldw (the
// checkpoint layout). bias: N floats or nullptr. Fused into one library call where possible.
void linear_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* W,
                int64_t ldw, const float* bias, float* C, int64_t ldc);
// Same with W holding bf16 bits (A converted to bf16 internally, f32 accumulate and output).
void linear_f32_bf16(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                     const uint16_t* W, int64_t ldw, const float* bias, float* C, int64_t ldc);

// Batched: for b < batch, C_b = op(A_b) · op(B_b) with X_b = X + b · stride_x (strides in
// elements; stride_b = 0 broadcasts one B over the batch). C_b is overwritten (beta = 0).
void gemm_batched_f32(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                      const float* A, int64_t stride_a, int64_t lda, const float* B,
                      int64_t stride_b, int64_t ldb, float* C, int64_t stride_c, int64_t ldc);

}  // namespace paradit::backend::cpu
