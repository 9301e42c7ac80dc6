// The CUDA GEMM bodies (ops.h: linear, matmul) over one cuBLASLt engine (gemm.h).

#include "backend/cuda/gemm.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "backend/cuda/allocator.h"
#include "backend/cuda/check.h"
#include "backend/cuda/cudnn_util.h"
#include "backend/cuda/launch.h"
#include "backend/cuda/layout.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda {

namespace detail {

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
      fail("gemm: dtype ", core::dtype_name(t), " is not supported on CUDA (F32, BF16, F16)");
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

const char* epilogue_name(Epilogue e) {
  switch (e) {
    case Epilogue::kNone:
      return "none";
    case Epilogue::kBias:
      return "bias";
    case Epilogue::kGeluTanh:
      return "gelu_tanh";
    case Epilogue::kBiasGeluTanh:
      return "bias+gelu_tanh";
  }
  return "?";
}

const char* mode_name(EpilogueMode m) {
  switch (m) {
    case EpilogueMode::kFused:
      return "fused";
    case EpilogueMode::kCastBias:
      return "fused with the bias cast to the output dtype";
    case EpilogueMode::kKernel:
      return "separate kernel";
  }
  return "?";
}

// RAII holders of cuBLASLt descriptors.
struct MatmulDesc {
  cublasLtMatmulDesc_t d = nullptr;
  MatmulDesc() = default;
  MatmulDesc(const MatmulDesc&) = delete;
  MatmulDesc& operator=(const MatmulDesc&) = delete;
  ~MatmulDesc() {
    if (d) cublasLtMatmulDescDestroy(d);
  }
};
struct Layout {
  cublasLtMatrixLayout_t d = nullptr;
  Layout() = default;
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
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

void make_layout(Layout& l, DType t, const LtMatrix& m, int64_t batch, int64_t stride) {
  PARADIT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l.d, cuda_type(t), m.rows, m.cols, m.ld));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    PARADIT_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l.d, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                          &count, sizeof(count)));
    PARADIT_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
        l.d, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
}

// The descriptors and algorithm of one problem, built once.
struct Plan {
  bool ok = false;                                // false: cuBLASLt has no algorithm at all
  bool proven = false;                            // a product has run with it
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;  // the heuristic's last answer when !ok
  EpilogueMode mode = EpilogueMode::kFused;
  Epilogue epilogue = Epilogue::kNone;  // what cuBLASLt runs (kNone in kKernel mode)
  MatmulDesc op;
  Layout a, b, c;
  cublasLtMatmulAlgo_t algo{};
};

class GemmEngine {
 public:
  void run(const GemmArgs& g) {
    const int device = current_device();
    const StreamHandle stream = current_stream();
    const GemmPlanKey key = plan_key(g, device);
    std::lock_guard<std::mutex> lock(mu_);
    const cublasLtHandle_t handle = handle_for(device);
    void* workspace = workspace_for(device, stream);
    auto it = plans_.find(key);
    if (it == plans_.end()) it = plans_.emplace(key, build(handle, g, key, modes(g))).first;
    for (;;) {
      Plan& p = *it->second;
      if (!p.ok) {
        fail("gemm: cuBLASLt has no algorithm (", cublasLtGetStatusName(p.status), ") for M=", g.M,
             " N=", g.N, " K=", g.K, " batch=", g.batch, " lda=", g.lda, " ldb=", g.ldb,
             " ldc=", g.ldc, " ", core::dtype_name(g.ab_dtype), "→", core::dtype_name(g.c_dtype),
             g.trans_b ? " B transposed" : "", " epilogue ", epilogue_name(g.epilogue));
      }
      const cublasStatus_t st = enqueue(handle, g, p, workspace, stream);
      if (st == CUBLAS_STATUS_SUCCESS) {
        p.proven = true;
        break;
      }
      // A mode whose first product cuBLASLt refuses although its heuristic offered an algorithm:
      // the plan moves on to the next mode.
      std::vector<EpilogueMode> rest = modes(g);
      std::erase_if(rest, [&](EpilogueMode m) { return m <= p.mode; });
      if (p.proven || rest.empty() ||
          (st != CUBLAS_STATUS_NOT_SUPPORTED && st != CUBLAS_STATUS_INVALID_VALUE)) {
        fail_cublas(st, "cublasLtMatmul", __FILE__, __LINE__);
      }
      log_verbose(::paradit::detail::concat("GEMM M=", g.M, " N=", g.N, " K=", g.K,
                                            ": cublasLtMatmul ", cublasLtGetStatusName(st),
                                            " in mode ", mode_name(p.mode), ", trying the next"));
      it->second = build(handle, g, key, rest);
    }
    const Plan& p = *it->second;
    if (p.mode == EpilogueMode::kKernel && g.epilogue != Epilogue::kNone) {
      const Activation act =
          g.epilogue == Epilogue::kGeluTanh || g.epilogue == Epilogue::kBiasGeluTanh
              ? Activation::kGeluTanh
              : Activation::kNone;
      bias_activation(g.c_dtype, g.C, g.M, g.N, g.ldc, has_bias(g.epilogue) ? g.bias : nullptr, act,
                      /*zero_input=*/false);
    }
  }

  // The product of g under plan p (bias pointer set, a cast bias made first); the status of
  // cublasLtMatmul.
  static cublasStatus_t enqueue(cublasLtHandle_t handle, const GemmArgs& g, Plan& p,
                                void* workspace, StreamHandle stream) {
    // A cast bias lives until the product is enqueued; the caching allocator hands its block out
    // again only to later work on this stream.
    std::shared_ptr<DeviceBuffer> cast_bias;
    if (has_bias(p.epilogue)) {
      const void* bias = g.bias;
      if (p.mode == EpilogueMode::kCastBias) {
        cast_bias = allocate_storage(static_cast<size_t>(g.N) * dtype_size(g.c_dtype));
        CopyArgs c;
        c.ndim = 1;
        c.shape[0] = g.N;
        c.src = g.bias;
        c.src_strides[0] = 1;
        c.src_dtype = DType::F32;
        c.dst = cast_bias->data;
        c.dst_strides[0] = 1;
        c.dst_dtype = g.c_dtype;
        copy(c);
        bias = cast_bias->data;
      }
      PARADIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                          &bias, sizeof(bias)));
    }
    const float alpha = 1.0f, beta = 0.0f;
    return cublasLtMatmul(handle, p.op.d, &alpha, g.B, p.a.d, g.A, p.b.d, &beta, g.C, p.c.d, g.C,
                          p.c.d, &p.algo, workspace, kWorkspaceBytes, stream);
  }

  size_t cache_size() {
    std::lock_guard<std::mutex> lock(mu_);
    return plans_.size();
  }

 private:
  static GemmPlanKey plan_key(const GemmArgs& g, int device) {
    GemmPlanKey k;
    k.device = device;
    k.trans_b = g.trans_b;
    k.M = g.M;
    k.N = g.N;
    k.K = g.K;
    k.batch = g.batch;
    k.lda = g.lda;
    k.ldb = g.ldb;
    k.ldc = g.ldc;
    k.stride_a = g.batch > 1 ? g.stride_a : 0;
    k.stride_b = g.batch > 1 ? g.stride_b : 0;
    k.stride_c = g.batch > 1 ? g.stride_c : 0;
    k.ab = g.ab_dtype;
    k.c = g.c_dtype;
    k.epilogue = g.epilogue;
    k.align_a = pointer_alignment(g.A);
    k.align_b = pointer_alignment(g.B);
    k.align_c = pointer_alignment(g.C);
    k.align_bias = has_bias(g.epilogue) ? pointer_alignment(g.bias) : 256u;
    return k;
  }

  // The epilogue modes that apply to g, in the order they are tried (gemm.h).
  static std::vector<EpilogueMode> modes(const GemmArgs& g) {
    std::vector<EpilogueMode> m = {EpilogueMode::kFused};
    if (has_bias(g.epilogue) && g.c_dtype != DType::F32) m.push_back(EpilogueMode::kCastBias);
    if (g.epilogue != Epilogue::kNone) m.push_back(EpilogueMode::kKernel);
    return m;
  }

  // Tries `modes` in order and keeps the first for which cuBLASLt's heuristic has an algorithm.
  std::unique_ptr<Plan> build(cublasLtHandle_t handle, const GemmArgs& g, const GemmPlanKey& key,
                              const std::vector<EpilogueMode>& candidates) {
    std::unique_ptr<Plan> p;
    for (const EpilogueMode mode : candidates) {
      p = std::make_unique<Plan>();
      p->mode = mode;
      p->epilogue = mode == EpilogueMode::kKernel ? Epilogue::kNone : g.epilogue;
      if (try_build(handle, g, key, p.get())) {
        log_verbose(::paradit::detail::concat("GEMM plan M=", g.M, " N=", g.N, " K=", g.K,
                                              " batch=", g.batch, " ", core::dtype_name(g.ab_dtype),
                                              "→", core::dtype_name(g.c_dtype), " epilogue ",
                                              epilogue_name(g.epilogue), ": ", mode_name(mode)));
        return p;
      }
    }
    return p;  // !ok, with the last heuristic status
  }

  static bool try_build(cublasLtHandle_t handle, const GemmArgs& g, const GemmPlanKey& key,
                        Plan* p) {
    PARADIT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op.d, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const LtProblem lt = lt_problem(g);
    const cublasOperation_t op_a = lt.a.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = lt.b.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
    PARADIT_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->op.d, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
    PARADIT_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->op.d, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
    const cublasLtEpilogue_t epi = lt_epilogue(p->epilogue);
    PARADIT_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->op.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (has_bias(p->epilogue)) {
      const cudaDataType_t bias_type =
          p->mode == EpilogueMode::kCastBias ? cuda_type(g.c_dtype) : CUDA_R_32F;
      PARADIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
          p->op.d, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
      // A placeholder of the right alignment for the heuristic; the real one is set per call.
      const void* bias = g.bias;
      PARADIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
          p->op.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    }
    make_layout(p->a, g.ab_dtype, lt.a, g.batch, g.stride_b);  // cuBLASLt's A = our B
    make_layout(p->b, g.ab_dtype, lt.b, g.batch, g.stride_a);  // cuBLASLt's B = our A
    make_layout(p->c, g.c_dtype, lt.c, g.batch, g.stride_c);

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
      PARADIT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.d, align_attrs[i], &aligns[i],
                                                                sizeof(uint32_t)));
    }
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(
        handle, p->op.d, p->a.d, p->b.d, p->c.d, p->c.d, pref.d, 1, &result, &found);
    // A combination cuBLASLt does not take (NOT_SUPPORTED, or INVALID_VALUE for some
    // epilogue/dtype pairs) moves on to the next mode.
    if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
      p->ok = true;
      p->algo = result.algo;
      return true;
    }
    p->status = st != CUBLAS_STATUS_SUCCESS ? st : CUBLAS_STATUS_NOT_SUPPORTED;
    return false;
  }

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
  std::map<GemmPlanKey, std::unique_ptr<Plan>> plans_;
  std::map<int, cublasLtHandle_t> handles_;
  std::map<std::pair<int, StreamHandle>, std::shared_ptr<DeviceBuffer>> workspaces_;
};

// Never destroyed (handles and workspaces live until exit, like the allocator).
GemmEngine& engine() {
  static GemmEngine* e = new GemmEngine;
  return *e;
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.M == 0 || g.N == 0 || g.batch == 0) return;
  PARADIT_CHECK(g.c_dtype == DType::F32 || g.c_dtype == g.ab_dtype, "gemm: output dtype ",
                core::dtype_name(g.c_dtype), " with ", core::dtype_name(g.ab_dtype),
                " inputs; expected F32 or ", core::dtype_name(g.ab_dtype));
  PARADIT_CHECK(g.batch <= 0x7fffffff, "gemm: batch ", g.batch, " exceeds cuBLASLt's int32");
  PARADIT_CHECK(g.batch == 1 || !has_bias(g.epilogue), "gemm: a bias epilogue with batch ",
                g.batch);
  engine().run(g);
}

size_t gemm_plan_cache_size() { return engine().cache_size(); }

}  // namespace detail

using namespace detail;

void linear(const LinearArgs& l) {
  if (l.M == 0 || l.N == 0) return;
  if (l.x_dtype != l.w_dtype) {
    fail("linear: x is ", core::dtype_name(l.x_dtype), " but w is ", core::dtype_name(l.w_dtype),
         "; the CUDA body takes one dtype (the front end converts x)");
  }
  if (l.x_dtype != DType::F32 && l.x_dtype != DType::BF16 && l.x_dtype != DType::F16)
    fail("linear: dtype ", core::dtype_name(l.x_dtype),
         " is not supported on CUDA (F32, BF16, F16)");
  if (l.K == 0) {
    // An empty product: y = act(bias or 0).
    bias_activation(l.y_dtype, l.y, l.M, l.N, l.ldy, l.bias, l.activation, /*zero_input=*/true);
    return;
  }
  GemmArgs g = linear_gemm(l);
  // cuBLASLt writes F32 or the input dtype; another output dtype goes through F32 scratch
  // (returned to the cache after enqueuing: reused only by later work on this stream).
  std::shared_ptr<DeviceBuffer> scratch;
  if (l.y_dtype != DType::F32 && l.y_dtype != l.x_dtype) {
    scratch = allocate_storage(static_cast<size_t>(l.M * l.N) * sizeof(float));
    g.C = scratch->data;
    g.ldc = l.N;
    g.c_dtype = DType::F32;
  }
  gemm(g);
  if (l.activation != Activation::kNone && l.activation != Activation::kGeluTanh) {
    bias_activation(g.c_dtype, g.C, l.M, l.N, g.ldc, nullptr, l.activation,
                    /*zero_input=*/false);
  }
  if (scratch) {
    CopyArgs c;
    c.ndim = 2;
    c.shape[0] = l.M;
    c.shape[1] = l.N;
    c.src = scratch->data;
    c.src_strides[0] = l.N;
    c.src_strides[1] = 1;
    c.src_dtype = DType::F32;
    c.dst = l.y;
    c.dst_strides[0] = l.ldy;
    c.dst_strides[1] = 1;
    c.dst_dtype = l.y_dtype;
    copy(c);
  }
}

void matmul(const MatmulArgs& m) {
  if (m.batch == 0 || m.M == 0 || m.N == 0) return;
  if (m.K == 0) {
    // An empty product: C = 0 in every batch.
    for (int64_t b = 0; b < m.batch; ++b) {
      void* c =
          static_cast<char*>(m.c) + b * m.stride_c * static_cast<int64_t>(dtype_size(m.dtype));
      bias_activation(m.dtype, c, m.M, m.N, m.ldc, nullptr, Activation::kNone,
                      /*zero_input=*/true);
    }
    return;
  }
  GemmArgs g;
  g.trans_b = m.trans_b;
  g.M = m.M;
  g.N = m.N;
  g.K = m.K;
  g.batch = m.batch;
  g.A = m.a;
  g.lda = m.lda;
  g.stride_a = m.stride_a;
  g.B = m.b;
  g.ldb = m.ldb;
  g.stride_b = m.stride_b;
  g.C = m.c;
  g.ldc = m.ldc;
  g.stride_c = m.stride_c;
  g.ab_dtype = m.dtype;
  g.c_dtype = m.dtype;
  gemm(g);
}

}  // namespace paradit::backend::cuda
