#include "backend/cuda/gemm.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <compare>
#include <map>
#include <memory>
#include <mutex>

#include "backend/cuda/allocator.h"
#include "backend/cuda/check.h"
#include "backend/cuda/common.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda {

using core::Device;
using core::DType;
using core::Tensor;

namespace {

// Hopper wants 32 MiB for its best kernels; plenty for Ampere too.
constexpr size_t kWorkspaceBytes = size_t{32} << 20;

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32:
      return CUDA_R_32F;
    case DType::BF16:
      return CUDA_R_16BF;
    case DType::F16:
      return CUDA_R_16F;
    default:
      fail("gemm: dtype ", core::dtype_name(t), " is not supported (F32, BF16, F16)");
  }
}

cublasLtEpilogue_t lt_epilogue(Epilogue e) {
  switch (e) {
    case Epilogue::kNone:
      return CUBLASLT_EPILOGUE_DEFAULT;
    case Epilogue::kBias:
      return CUBLASLT_EPILOGUE_BIAS;
    case Epilogue::kGeluTanh:
      return CUBLASLT_EPILOGUE_GELU;
    case Epilogue::kBiasGeluTanh:
      return CUBLASLT_EPILOGUE_GELU_BIAS;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

bool has_bias(Epilogue e) { return e == Epilogue::kBias || e == Epilogue::kBiasGeluTanh; }

// Largest power of two (≤ 256) dividing the address: cuBLASLt picks kernels by alignment.
uint32_t alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

// Everything the algorithm choice depends on.
struct PlanKey {
  int device;
  bool trans_a, trans_b;
  int64_t M, N, K, batch, lda, ldb, ldc, stride_a, stride_b, stride_c;
  DType ab, c;
  Epilogue epilogue;
  uint32_t align_a, align_b, align_c, align_bias;
  auto operator<=>(const PlanKey&) const = default;
};

struct Plan {
  bool ok = false;  // false: cuBLASLt has no algorithm for this problem
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;  // the heuristic's answer when !ok
  cublasLtMatmulAlgo_t algo{};
};

// RAII holders for the descriptors of one call.
struct MatmulDesc {
  cublasLtMatmulDesc_t d = nullptr;
  ~MatmulDesc() {
    if (d) cublasLtMatmulDescDestroy(d);
  }
};
struct Layout {
  cublasLtMatrixLayout_t d = nullptr;
  ~Layout() {
    if (d) cublasLtMatrixLayoutDestroy(d);
  }
};
struct Preference {
  cublasLtMatmulPreference_t d = nullptr;
  ~Preference() {
    if (d) cublasLtMatmulPreferenceDestroy(d);
  }
};

void make_layout(Layout& l, DType t, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                 int64_t stride) {
  PARADIT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l.d, cuda_type(t), static_cast<uint64_t>(rows),
                                                  static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    PARADIT_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l.d, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                          &count, sizeof(count)));
    PARADIT_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
        l.d, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
}

class GemmEngine {
 public:
  // False (and *status the heuristic's answer) when cuBLASLt offers no algorithm.
  bool run(const GemmArgs& a, cublasStatus_t* status) {
    const int device = current_device();
    const StreamHandle stream = current_stream();
    const PlanKey key{device,
                      a.trans_a,
                      a.trans_b,
                      a.M,
                      a.N,
                      a.K,
                      a.batch,
                      a.lda,
                      a.ldb,
                      a.ldc,
                      a.batch > 1 ? a.stride_a : 0,
                      a.batch > 1 ? a.stride_b : 0,
                      a.batch > 1 ? a.stride_c : 0,
                      a.ab_dtype,
                      a.c_dtype,
                      a.epilogue,
                      alignment(a.A),
                      alignment(a.B),
                      alignment(a.C),
                      has_bias(a.epilogue) ? alignment(a.bias) : 256u};
    std::lock_guard<std::mutex> lock(mu_);
    cublasLtHandle_t handle = handle_for(device);
    void* workspace = workspace_for(device, stream);

    // The row-major problem as cuBLASLt's column-major one: Cᵀ (N×M) = op(B)ᵀ · op(A)ᵀ, i.e.
    // cuBLASLt's "A" is our B buffer and its "B" our A buffer, both read as stored.
    MatmulDesc op;
    PARADIT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op.d, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t op_l = a.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_r = a.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    PARADIT_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(op.d, CUBLASLT_MATMUL_DESC_TRANSA, &op_l, sizeof(op_l)));
    PARADIT_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(op.d, CUBLASLT_MATMUL_DESC_TRANSB, &op_r, sizeof(op_r)));
    const cublasLtEpilogue_t epi = lt_epilogue(a.epilogue);
    PARADIT_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(op.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (has_bias(a.epilogue)) {
      PARADIT_CHECK(a.bias != nullptr, "gemm: bias epilogue without a bias");
      PARADIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                          &a.bias, sizeof(a.bias)));
    }
    Layout l, r, c;
    if (a.trans_b) {
      make_layout(l, a.ab_dtype, a.K, a.N, a.ldb, a.batch, a.stride_b);
    } else {
      make_layout(l, a.ab_dtype, a.N, a.K, a.ldb, a.batch, a.stride_b);
    }
    if (a.trans_a) {
      make_layout(r, a.ab_dtype, a.M, a.K, a.lda, a.batch, a.stride_a);
    } else {
      make_layout(r, a.ab_dtype, a.K, a.M, a.lda, a.batch, a.stride_a);
    }
    make_layout(c, a.c_dtype, a.N, a.M, a.ldc, a.batch, a.stride_c);

    auto it = plans_.find(key);
    if (it == plans_.end()) {
      Preference pref;
      PARADIT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.d));
      const uint64_t ws = kWorkspaceBytes;
      PARADIT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
          pref.d, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
      const cublasLtMatmulPreferenceAttributes_t align_attrs[] = {
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
      const uint32_t aligns[] = {key.align_b, key.align_a, key.align_c, key.align_c};
      for (int i = 0; i < 4; ++i) {
        PARADIT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.d, align_attrs[i],
                                                                  &aligns[i], sizeof(uint32_t)));
      }
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle, op.d, l.d, r.d, c.d, c.d,
                                                               pref.d, 1, &result, &found);
      // A combination cuBLASLt does not take (NOT_SUPPORTED, or INVALID_VALUE for some
      // epilogue/dtype pairs) is remembered as such: the caller may fall back.
      Plan plan;
      if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
        plan.ok = true;
        plan.algo = result.algo;
      } else {
        plan.status = st != CUBLAS_STATUS_SUCCESS ? st : CUBLAS_STATUS_NOT_SUPPORTED;
      }
      it = plans_.emplace(key, plan).first;
    }
    if (!it->second.ok) {
      *status = it->second.status;
      return false;
    }
    PARADIT_CUBLAS_CHECK(cublasLtMatmul(handle, op.d, &a.alpha, a.B, l.d, a.A, r.d, &a.beta, a.C,
                                        c.d, a.C, c.d, &it->second.algo, workspace, kWorkspaceBytes,
                                        stream));
    return true;
  }

  size_t cache_size() {
    std::lock_guard<std::mutex> lock(mu_);
    return plans_.size();
  }

 private:
  cublasLtHandle_t handle_for(int device) {
    auto it = handles_.find(device);
    if (it != handles_.end()) return it->second;
    cublasLtHandle_t h = nullptr;
    PARADIT_CUBLAS_CHECK(cublasLtCreate(&h));
    handles_[device] = h;
    return h;
  }

  // One workspace per (device, stream): GEMMs on different streams may run at once.
  void* workspace_for(int device, StreamHandle stream) {
    auto& ws = workspaces_[{device, stream}];
    if (!ws) ws = allocate_storage(kWorkspaceBytes);
    return ws->data;
  }

  std::mutex mu_;
  std::map<PlanKey, Plan> plans_;
  std::map<int, cublasLtHandle_t> handles_;
  std::map<std::pair<int, StreamHandle>, std::shared_ptr<core::Storage>> workspaces_;
};

// Never destroyed (handles and workspaces live until exit, like the allocator).
GemmEngine& engine() {
  static GemmEngine* e = new GemmEngine;
  return *e;
}

void check_args(const GemmArgs& a) {
  PARADIT_CHECK(a.M >= 0 && a.N >= 0 && a.K >= 0 && a.batch >= 1, "gemm: bad sizes M=", a.M,
                " N=", a.N, " K=", a.K, " batch=", a.batch);
  PARADIT_CHECK(a.c_dtype == DType::F32 || a.c_dtype == a.ab_dtype, "gemm: output dtype ",
                core::dtype_name(a.c_dtype), " with ", core::dtype_name(a.ab_dtype),
                " inputs; expected F32 or ", core::dtype_name(a.ab_dtype));
  PARADIT_CHECK(a.batch <= 0x7fffffff, "gemm: batch ", a.batch, " too large");
}

}  // namespace

bool try_gemm(const GemmArgs& args) {
  check_args(args);
  if (args.M == 0 || args.N == 0) return true;
  cublasStatus_t status;
  return engine().run(args, &status);
}

void gemm(const GemmArgs& args) {
  check_args(args);
  if (args.M == 0 || args.N == 0) return;
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  if (!engine().run(args, &status)) {
    fail("gemm: cuBLASLt has no algorithm (", cublasLtGetStatusName(status), ") for M=", args.M,
         " N=", args.N, " K=", args.K, " batch=", args.batch, " lda=", args.lda, " ldb=", args.ldb,
         " ldc=", args.ldc, " ", core::dtype_name(args.ab_dtype), "→",
         core::dtype_name(args.c_dtype), " epilogue ", static_cast<int>(args.epilogue));
  }
}

size_t gemm_plan_cache_size() { return engine().cache_size(); }

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in,
              const LinearOptions& options) {
  detail::check_float("linear", "x", x_in);
  detail::check_float("linear", "w", w_in);
  PARADIT_CHECK(x_in.ndim() >= 1, "linear: x is a scalar");
  PARADIT_CHECK(w_in.ndim() == 2 && w_in.dim(1) == x_in.dim(-1), "linear: w ", w_in.str(),
                " does not match x ", x_in.str(), " (expected [N, ", x_in.dim(-1), "])");
  const int64_t N = w_in.dim(0), K = w_in.dim(1);
  const DType compute = w_in.dtype();
  const DType out_dtype = options.out_dtype.value_or(x_in.dtype());
  PARADIT_CHECK(detail::is_float_dtype(out_dtype), "linear: output dtype ",
                core::dtype_name(out_dtype), " is not F32, BF16 or F16");
  // cuBLASLt writes F32 or the compute dtype; another request is converted afterwards.
  const DType c_dtype = out_dtype == DType::F32 || out_dtype == compute ? out_dtype : DType::F32;

  int64_t rows, D, lda;
  Tensor x =
      detail::as_rows(x_in.dtype() == compute ? x_in : convert(x_in, compute), &rows, &D, &lda);
  Tensor w = w_in.stride(1) == 1 && w_in.stride(0) >= K ? w_in : contiguous(w_in);
  Tensor bias;
  if (bias_in.defined()) {
    bias = detail::vector_param("linear", "bias", bias_in, N);  // F32 contiguous
    if (c_dtype != DType::F32) bias = convert(bias, c_dtype);
  }
  core::Shape out_shape = x_in.shape();
  out_shape.back() = N;
  Tensor out = Tensor::empty(out_shape, c_dtype, Device::CUDA);  // (..., N)
  if (rows == 0 || N == 0) return out_dtype == c_dtype ? out : convert(out, out_dtype);
  if (K == 0) {
    fill(out, 0.0f);
    Tensor y = bias.defined() ? cuda::add(out, bias) : out;
    if (options.gelu_tanh) y = cuda::gelu(y, true);
    return convert(y, out_dtype);
  }

  GemmArgs a;
  a.trans_b = true;
  a.M = rows;
  a.N = N;
  a.K = K;
  a.A = x.raw_data();
  a.lda = lda;
  a.B = w.raw_data();
  a.ldb = w.stride(0);
  a.C = out.raw_data();
  a.ldc = N;
  a.ab_dtype = compute;
  a.c_dtype = c_dtype;
  a.bias = bias.defined() ? bias.raw_data() : nullptr;
  a.epilogue = bias.defined() ? (options.gelu_tanh ? Epilogue::kBiasGeluTanh : Epilogue::kBias)
                              : (options.gelu_tanh ? Epilogue::kGeluTanh : Epilogue::kNone);
  Tensor y = out;
  if (!try_gemm(a)) {
    // No fused kernel for this combination: plain product, then the epilogue as kernels.
    a.epilogue = Epilogue::kNone;
    gemm(a);
    if (bias.defined()) y = cuda::add(y, bias);
    if (options.gelu_tanh) y = cuda::gelu(y, true);
  }
  return out_dtype == c_dtype ? y : convert(y, out_dtype);
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in, bool trans_b) {
  detail::check_float("matmul", "a", a_in);
  detail::check_float("matmul", "b", b_in);
  PARADIT_CHECK(a_in.ndim() == 3 && b_in.ndim() == 3, "matmul: a ", a_in.str(), " and b ",
                b_in.str(), " must be 3-D");
  const int64_t B = a_in.dim(0), M = a_in.dim(1), K = a_in.dim(2);
  const int64_t N = trans_b ? b_in.dim(1) : b_in.dim(2);
  const int64_t Kb = trans_b ? b_in.dim(2) : b_in.dim(1);
  PARADIT_CHECK(b_in.dim(0) == B && Kb == K, "matmul: a ", a_in.str(), " and b ", b_in.str(),
                " do not match", trans_b ? " (b transposed)" : "");
  const Tensor a = contiguous(a_in);
  const Tensor b = b_in.dtype() == a.dtype() ? contiguous(b_in) : convert(b_in, a.dtype());
  Tensor out = Tensor::empty({B, M, N}, a.dtype(), Device::CUDA);  // (B, M, N)
  if (B == 0 || M == 0 || N == 0) return out;
  if (K == 0) {
    fill(out, 0.0f);
    return out;
  }
  GemmArgs g;
  g.trans_b = trans_b;
  g.M = M;
  g.N = N;
  g.K = K;
  g.batch = B;
  g.A = a.raw_data();
  g.lda = K;
  g.stride_a = M * K;
  g.B = b.raw_data();
  g.ldb = trans_b ? K : N;
  g.stride_b = K * N;
  g.C = out.raw_data();
  g.ldc = N;
  g.stride_c = M * N;
  g.ab_dtype = a.dtype();
  g.c_dtype = a.dtype();
  gemm(g);
  return out;
}

}  // namespace paradit::backend::cuda
