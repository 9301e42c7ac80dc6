#pragma once
// GEMM on the device through cuBLASLt: F32, BF16 or F16 inputs with f32 accumulation, output
// in F32 or the input dtype, fused bias and bias+GELU epilogues. The algorithm for each
// problem (shape, leading dims, dtypes, epilogue, pointer alignment) is chosen once by
// cuBLASLt's heuristic and cached. F32 GEMMs use full f32 math (no TF32).

#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace paradit::backend::cuda {

enum class Epilogue {
  kNone,
  kBias,          // + bias[n] on every row
  kGeluTanh,      // gelu_tanh(·)  (cuBLASLt's GELU is the tanh approximation)
  kBiasGeluTanh,  // gelu_tanh(· + bias[n])
};

// Row-major strided-batched GEMM on device pointers, for b < batch:
//   C_b (M×N) = alpha · op(A_b)(M×K) · op(B_b)(K×N) + beta · C_b,   X_b = X + b·stride_x
// op(X) = Xᵀ when its trans flag is set; lda/ldb/ldc are row strides in elements; a stride of
// 0 shares one matrix over the batch. A and B have `ab_dtype` (F32, BF16 or F16); C has
// `c_dtype` (F32 or ab_dtype); bias: N elements of c_dtype, for the bias epilogues.
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  int64_t batch = 1;
  const void* A = nullptr;
  int64_t lda = 0, stride_a = 0;
  const void* B = nullptr;
  int64_t ldb = 0, stride_b = 0;
  void* C = nullptr;
  int64_t ldc = 0, stride_c = 0;
  core::DType ab_dtype = core::DType::F32;
  core::DType c_dtype = core::DType::F32;
  float alpha = 1.0f, beta = 0.0f;
  Epilogue epilogue = Epilogue::kNone;
  const void* bias = nullptr;
};
// Enqueues on current_stream(). Error when cuBLASLt has no algorithm for the combination.
void gemm(const GemmArgs& args);
// As gemm(), but returns false instead of failing when cuBLASLt has no algorithm.
bool try_gemm(const GemmArgs& args);

struct LinearOptions {
  bool gelu_tanh = false;                // fuse gelu_tanh after the bias
  std::optional<core::DType> out_dtype;  // default: x's dtype
};
// x: (..., K)   w: (N, K) (the checkpoint layout)   bias: (N) or {}   → (..., N)
// All on the device, float dtypes. The product runs in w's dtype (x converted when it
// differs) with f32 accumulation. Epilogues that cuBLASLt cannot fuse for the combination
// run as separate kernels.
core::Tensor linear(const core::Tensor& x, const core::Tensor& w, const core::Tensor& bias = {},
                    const LinearOptions& options = {});
// a: (B, M, K)   b: (B, K, N), or (B, N, K) when trans_b   → (B, M, N) in a's dtype.
core::Tensor matmul(const core::Tensor& a, const core::Tensor& b, bool trans_b = false);

// Number of cached GEMM plans (for tests of the cache).
size_t gemm_plan_cache_size();

}  // namespace paradit::backend::cuda
