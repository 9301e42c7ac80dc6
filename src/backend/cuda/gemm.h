#pragma once
// Internals of the CUDA GEMM bodies (ops.h: linear, matmul): one cuBLASLt engine with a plan
// per problem. Host code, no CUDA header; the layout mapping is inline so that tests/cuda_host
// checks it without a GPU.
//
// F32, BF16 or F16 inputs with f32 accumulation (CUBLAS_COMPUTE_32F: full f32 for F32 inputs,
// never TF32), output F32 or the input dtype, fused bias and bias+GELU(tanh) epilogues. The
// algorithm for each problem (shape, leading dims, dtypes, epilogue, pointer alignment) is
// chosen once by cuBLASLt's heuristic and cached with its descriptors.

#include <compare>
#include <cstdint>

#include "backend/args.h"

namespace paradit::backend::cuda::detail {

enum class Epilogue : uint8_t {
  kNone,
  kBias,          // + bias[n] on every row
  kGeluTanh,      // gelu_tanh(·)  (cuBLASLt's GELU is the tanh approximation)
  kBiasGeluTanh,  // gelu_tanh(· + bias[n])
};

inline bool has_bias(Epilogue e) { return e == Epilogue::kBias || e == Epilogue::kBiasGeluTanh; }

// Row-major strided-batched GEMM on device pointers, for b < batch:
//   C_b (M×N) = A_b (M×K) · op(B_b) (+ bias, activation),  X_b = X + b·stride_x
// op(B) = Bᵀ (B stored (N, K)) when trans_b, else B stored (K, N); lda/ldb/ldc are row strides
// in elements; a stride of 0 shares one matrix over the batch. A and B have `ab_dtype`; C has
// `c_dtype` (F32 or ab_dtype); bias: N F32 values, for the bias epilogues (batch 1).
struct GemmArgs {
  bool trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  int64_t batch = 1;
  const void* A = nullptr;
  int64_t lda = 0, stride_a = 0;
  const void* B = nullptr;
  int64_t ldb = 0, stride_b = 0;
  void* C = nullptr;
  int64_t ldc = 0, stride_c = 0;
  DType ab_dtype = DType::F32;
  DType c_dtype = DType::F32;
  Epilogue epilogue = Epilogue::kNone;
  const float* bias = nullptr;
};

// A matrix as cuBLASLt sees it: column-major rows × cols with leading dim ld, and whether the
// operation transposes it.
struct LtMatrix {
  uint64_t rows = 0, cols = 0;
  int64_t ld = 0;
  bool transposed = false;
};
// The row-major problem as cuBLASLt's column-major one: Cᵀ (N×M) = op(B)ᵀ · Aᵀ, i.e. cuBLASLt's
// "A" is our B buffer and its "B" our A buffer, both read as stored; C is read as Cᵀ (N×M).
struct LtProblem {
  LtMatrix a, b, c;
};
inline LtProblem lt_problem(const GemmArgs& g) {
  LtProblem p;
  // Our B: stored (N, K) row-major = column-major (K×N), transposed by the op when trans_b;
  // stored (K, N) row-major = column-major (N×K), used as is.
  p.a = g.trans_b ? LtMatrix{static_cast<uint64_t>(g.K), static_cast<uint64_t>(g.N), g.ldb, true}
                  : LtMatrix{static_cast<uint64_t>(g.N), static_cast<uint64_t>(g.K), g.ldb, false};
  // Our A: stored (M, K) row-major = column-major (K×M).
  p.b = {static_cast<uint64_t>(g.K), static_cast<uint64_t>(g.M), g.lda, false};
  p.c = {static_cast<uint64_t>(g.N), static_cast<uint64_t>(g.M), g.ldc, false};
  return p;
}

// What the engine fuses for a linear layer: tanh-GELU has a cuBLASLt epilogue, the other
// activations run as a kernel afterwards.
inline Epilogue linear_epilogue(bool bias, Activation act) {
  const bool gelu = act == Activation::kGeluTanh;
  return bias ? (gelu ? Epilogue::kBiasGeluTanh : Epilogue::kBias)
              : (gelu ? Epilogue::kGeluTanh : Epilogue::kNone);
}

// y (M, N) = x (M, K) · wᵀ as a GemmArgs: A = x, B = w (N, K) transposed, C = y.
inline GemmArgs linear_gemm(const LinearArgs& l) {
  GemmArgs g;
  g.trans_b = true;
  g.M = l.M;
  g.N = l.N;
  g.K = l.K;
  g.A = l.x;
  g.lda = l.ldx;
  g.B = l.w;
  g.ldb = l.ldw;
  g.C = l.y;
  g.ldc = l.ldy;
  g.ab_dtype = l.x_dtype;
  g.c_dtype = l.y_dtype;
  g.epilogue = linear_epilogue(l.bias != nullptr, l.activation);
  g.bias = l.bias;
  return g;
}

// How the epilogue is run, tried in this order when a plan is built (the first for which
// cuBLASLt's heuristic offers an algorithm is kept):
enum class EpilogueMode : uint8_t {
  kFused,     // as asked; an F32 bias as is (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = CUDA_R_32F)
  kCastBias,  // fused, the bias converted to the output dtype for each call (bias epilogues
              // with a BF16/F16 output only)
  kKernel,    // plain product, then a bias (+ GELU) kernel
};

// Everything the algorithm choice depends on.
struct GemmPlanKey {
  int device = 0;
  bool trans_b = false;
  int64_t M = 0, N = 0, K = 0, batch = 1, lda = 0, ldb = 0, ldc = 0;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  DType ab = DType::F32, c = DType::F32;
  Epilogue epilogue = Epilogue::kNone;
  uint32_t align_a = 0, align_b = 0, align_c = 0, align_bias = 0;
  auto operator<=>(const GemmPlanKey&) const = default;
};

// Enqueues g on current_stream(); an epilogue cuBLASLt cannot fuse for the combination runs as
// kernels. Fails when cuBLASLt has no algorithm at all. Defined in gemm.cpp.
void gemm(const GemmArgs& g);
// Number of cached GEMM plans (tests of the cache).
size_t gemm_plan_cache_size();

}  // namespace paradit::backend::cuda::detail
