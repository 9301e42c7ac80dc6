// cuDNN's fused flash attention through the backend graph API (no cudnn-frontend here): the
// operation graph that cuDNN's runtime fusion engines recognise as scaled dot-product attention,
// an execution plan per shape/dtype/strides from the engine heuristics, and a variant pack per
// call. See attention.h for what reaches it.
//
// The graph (uids in parentheses; S tensors (b, h, s_q, s_k) F32 virtual, row tensors
// (b, h, s_q, 1) F32):
//   S0 = matmul(Q (1), Kᵀ (2))                   [m/n overrides = seq_q (8), seq_kv (9) w. mask]
//   S1 = S0 · scale (6, F32 by value)
//   S2 = S1 + bias (7, F32)                       only with a bias
//   S3 = select(S2, −inf (10, by value), row < seq_q && col < seq_kv)   only with a key mask
//   M = max_row(S3);  E = exp(S3 − M);  Z = sum_row(E)
//   stats (5) = M + log(Z)                        virtual without an LSE output
//   P = E / Z  (virtual, the io dtype);  O (4) = matmul(P, V (3))    [m/k overrides w. mask]
// which is what cudnn-frontend lowers its SDPA node to on cuDNN 9.

#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/allocator.h"
#include "backend/cuda/attention.h"
#include "backend/cuda/check.h"
#include "backend/cuda/cudnn_util.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda::detail {

#ifndef PARADIT_WITH_CUDNN

bool cudnn_built() { return false; }

std::string cudnn_sdpa_known_failure(const AttentionArgs&, bool) { return "built without cuDNN"; }

bool run_cudnn_sdpa(const AttentionArgs&, const int32_t*, const int32_t*, std::string* why) {
  *why = "built without cuDNN";
  return false;
}

#else

bool cudnn_built() { return true; }

namespace {

enum Uid : int64_t {
  kUidQ = 1,
  kUidK = 2,
  kUidV = 3,
  kUidO = 4,
  kUidStats = 5,
  kUidScale = 6,
  kUidBias = 7,
  kUidSeqQ = 8,
  kUidSeqKv = 9,
  kUidNegInf = 10,
  kUidFirstVirtual = 100,
};

// Collects the descriptors of one operation graph (kept alive with the plan built from them).
class SdpaGraph {
 public:
  cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t dt, const SdpaTensor& t,
                                  bool is_virtual, bool by_value, const char* name) {
    BackendDesc& d = add(CUDNN_BACKEND_TENSOR_DESCRIPTOR, name);
    d.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "DATA_TYPE");
    d.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, t.dims, "DIMENSIONS");
    d.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, t.strides, "STRIDES");
    d.set_i64(CUDNN_ATTR_TENSOR_UNIQUE_ID, uid, "UNIQUE_ID");
    d.set_i64(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, 16, "BYTE_ALIGNMENT");
    if (is_virtual) {
      const bool v = true;
      d.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v, "IS_VIRTUAL");
    }
    if (by_value) {
      const bool v = true;
      d.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &v, "IS_BY_VALUE");
    }
    d.finalize();
    return d.get();
  }

  cudnnBackendDescriptor_t virt(cudnnDataType_t dt, const SdpaTensor& t, const char* name) {
    return tensor(next_virtual_++, dt, t, /*is_virtual=*/true, /*by_value=*/false, name);
  }

  // c = a · b (batched over the leading dims), f32 accumulation; optional GEMM size overrides
  // (per-batch device tensors) for the padding mask.
  void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c,
              cudnnBackendDescriptor_t m_override, cudnnBackendDescriptor_t n_override,
              cudnnBackendDescriptor_t k_override, const char* name) {
    BackendDesc& md = add(CUDNN_BACKEND_MATMUL_DESCRIPTOR, name);
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    md.set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, "COMP_TYPE");
    md.finalize();
    BackendDesc& op = add(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, name);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, "ADESC");
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, "BDESC");
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, "CDESC");
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, md.get(), "DESC");
    if (m_override)
      set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, m_override, "M_OVERRIDE");
    if (n_override)
      set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, n_override, "N_OVERRIDE");
    if (k_override)
      set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, k_override, "K_OVERRIDE");
    op.finalize();
    ops_.push_back(op.get());
  }

  // y = mode(x[, b][, t]); axis for GEN_INDEX.
  void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t compute, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                 const char* name, int64_t axis = -1) {
    BackendDesc& pw = add(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, name);
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "MODE");
    pw.set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &compute, "MATH_PREC");
    if (mode == CUDNN_POINTWISE_GEN_INDEX) pw.set_i64(CUDNN_ATTR_POINTWISE_AXIS, axis, "AXIS");
    pw.finalize();
    BackendDesc& op = add(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, name);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw.get(), "PW_DESCRIPTOR");
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, "XDESC");
    if (b) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, "BDESC");
    if (t) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, "TDESC");
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, "YDESC");
    const float one = 1.0f;
    op.set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, "ALPHA1");
    op.set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, "ALPHA2");
    op.finalize();
    ops_.push_back(op.get());
  }

  // y (…, 1) = reduce(x) over the last dim, in f32.
  void reduction(cudnnReduceTensorOp_t red, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y,
                 const char* name) {
    BackendDesc& rd = add(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, name);
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    rd.set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, "COMP_TYPE");
    rd.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &red, "OPERATOR");
    rd.finalize();
    BackendDesc& op = add(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, name);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, rd.get(), "DESC");
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, "XDESC");
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, "YDESC");
    op.finalize();
    ops_.push_back(op.get());
  }

  cudnnBackendDescriptor_t finalize_graph(cudnnHandle_t handle) {
    BackendDesc& g = add(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "the SDPA operation graph");
    g.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
          static_cast<int64_t>(ops_.size()), ops_.data(), "OPS");
    g.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "HANDLE");
    g.finalize();
    return g.get();
  }

  BackendDesc& add(cudnnBackendDescriptorType_t type, const char* name) {
    return descs_.emplace_back(type, name);
  }

 private:
  static void set_desc(BackendDesc& d, cudnnBackendAttributeName_t attr, cudnnBackendDescriptor_t v,
                       const char* what) {
    d.set(attr, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v, what);
  }

  std::deque<BackendDesc> descs_;  // stable addresses; destroyed with the plan
  std::vector<cudnnBackendDescriptor_t> ops_;
  int64_t next_virtual_ = kUidFirstVirtual;
};

struct SdpaPlan {
  bool ok = false;
  std::string failure;                      // why no plan, when !ok
  SdpaGraph graph;                          // the descriptors the plan was built from
  cudnnBackendDescriptor_t plan = nullptr;  // owned by graph
  int64_t workspace = 0;
  std::string engine;  // which heuristic result, for the verbose log
};

// Builds the operation graph of a (see the top of the file) and the first execution plan the
// heuristics offer that finalizes. Throws paradit::Error naming the step that failed.
void build_plan(const AttentionArgs& a, bool padding, cudnnHandle_t handle, SdpaPlan* p) {
  SdpaGraph& g = p->graph;
  const SdpaLayout l = sdpa_layout(a);
  const cudnnDataType_t io = cudnn_dtype(a.dtype);
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  const SdpaTensor scalar{{1, 1, 1, 1}, {1, 1, 1, 1}};
  const SdpaTensor row = l.stats;  // (b, h, s_q, 1)

  const auto Q = g.tensor(kUidQ, io, l.q, false, false, "tensor Q");
  const auto Kt = g.tensor(kUidK, io, l.kt, false, false, "tensor Kᵀ");
  const auto V = g.tensor(kUidV, io, l.v, false, false, "tensor V");
  const auto O = g.tensor(kUidO, io, l.o, false, false, "tensor O");
  const auto scale = g.tensor(kUidScale, f32, scalar, false, true, "tensor scale");
  cudnnBackendDescriptor_t seq_q = nullptr, seq_kv = nullptr;
  if (padding) {
    const SdpaTensor lens{{a.batch, 1, 1, 1}, {1, 1, 1, 1}};
    seq_q = g.tensor(kUidSeqQ, CUDNN_DATA_INT32, lens, false, false, "tensor seq_len_q");
    seq_kv = g.tensor(kUidSeqKv, CUDNN_DATA_INT32, lens, false, false, "tensor seq_len_kv");
  }

  const auto s0 = g.virt(f32, l.s, "tensor S = Q·Kᵀ");
  g.matmul(Q, Kt, s0, seq_q, seq_kv, nullptr, "bmm1 Q·Kᵀ");
  auto s = g.virt(f32, l.s, "tensor S·scale");
  g.pointwise(CUDNN_POINTWISE_MUL, f32, s0, scale, nullptr, s, "attention scale");
  if (l.has_bias) {
    const auto bias = g.tensor(kUidBias, f32, l.bias, false, false, "tensor bias");
    const auto sb = g.virt(f32, l.s, "tensor S + bias");
    g.pointwise(CUDNN_POINTWISE_ADD, f32, s, bias, nullptr, sb, "bias add");
    s = sb;
  }
  if (padding) {
    const auto neg_inf = g.tensor(kUidNegInf, f32, scalar, false, true, "tensor −inf");
    const auto ri = g.virt(CUDNN_DATA_INT32, l.s, "tensor row index");
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, s, nullptr, nullptr, ri,
                "padding row index", 2);
    const auto ci = g.virt(CUDNN_DATA_INT32, l.s, "tensor column index");
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, s, nullptr, nullptr, ci,
                "padding column index", 3);
    const auto rm = g.virt(CUDNN_DATA_BOOLEAN, l.s, "tensor row < seq_len_q");
    g.pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, ri, seq_q, nullptr, rm,
                "padding row compare");
    const auto cm = g.virt(CUDNN_DATA_BOOLEAN, l.s, "tensor column < seq_len_kv");
    g.pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, ci, seq_kv, nullptr, cm,
                "padding column compare");
    const auto keep = g.virt(CUDNN_DATA_BOOLEAN, l.s, "tensor padding mask");
    g.pointwise(CUDNN_POINTWISE_LOGICAL_AND, CUDNN_DATA_BOOLEAN, rm, cm, nullptr, keep,
                "padding mask and");
    const auto sm = g.virt(f32, l.s, "tensor masked S");
    g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, f32, s, neg_inf, keep, sm, "padding select");
    s = sm;
  }

  // Softmax with its statistics.
  const auto m = g.virt(f32, row, "tensor row max");
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, s, m, "softmax max");
  const auto centered = g.virt(f32, l.s, "tensor S − max");
  g.pointwise(CUDNN_POINTWISE_SUB, f32, s, m, nullptr, centered, "softmax subtract");
  const auto e = g.virt(f32, l.s, "tensor exp(S − max)");
  g.pointwise(CUDNN_POINTWISE_EXP, f32, centered, nullptr, nullptr, e, "softmax exp");
  const auto z = g.virt(f32, row, "tensor row sum");
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, z, "softmax sum");
  // The stats branch is part of the pattern the flash fusion engine matches: without an LSE
  // output it still runs, into a virtual tensor (as cudnn-frontend lowers inference).
  const auto log_z = g.virt(f32, row, "tensor log(row sum)");
  g.pointwise(CUDNN_POINTWISE_LOG, f32, z, nullptr, nullptr, log_z, "softmax stats log");
  const auto stats = a.lse != nullptr
                         ? g.tensor(kUidStats, f32, l.stats, false, false, "tensor stats (LSE)")
                         : g.virt(f32, l.stats, "tensor stats (virtual)");
  g.pointwise(CUDNN_POINTWISE_ADD, f32, m, log_z, nullptr, stats, "softmax stats add");
  const auto P = g.virt(io, l.s, "tensor P");  // the second matmul reads P in the io dtype
  g.pointwise(CUDNN_POINTWISE_DIV, f32, e, z, nullptr, P, "softmax divide");
  g.matmul(P, V, O, seq_q, nullptr, seq_kv, "bmm2 P·V");

  const cudnnBackendDescriptor_t graph = g.finalize_graph(handle);

  // Engine configurations from the heuristics, best first; the first whose plan finalizes wins.
  std::string tried;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    const char* mode_name = mode == CUDNN_HEUR_MODE_A ? "A" : "FALLBACK";
    BackendDesc& heur = g.add(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "the engine heuristics");
    heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph,
             "OPERATION_GRAPH");
    heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "MODE");
    const cudnnStatus_t hst = heur.try_finalize();
    if (hst != CUDNN_STATUS_SUCCESS) {
      tried += std::string(" heuristics ") + mode_name + ": " + cudnn_status_text(hst) + ";";
      continue;
    }
    int64_t count = 0;
    PARADIT_CUDNN_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                                 nullptr));
    if (count <= 0) {
      tried += std::string(" heuristics ") + mode_name + ": no engine;";
      continue;
    }
    std::vector<cudnnBackendDescriptor_t> cfgs;
    for (int64_t i = 0; i < count; ++i)
      cfgs.push_back(g.add(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "an engine config").get());
    int64_t returned = 0;
    PARADIT_CUDNN_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned,
                                                 cfgs.data()));
    for (int64_t i = 0; i < returned; ++i) {
      BackendDesc& plan = g.add(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "an execution plan");
      plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "HANDLE");
      plan.set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgs[i],
               "ENGINE_CONFIG");
      const cudnnStatus_t st = plan.try_finalize();
      if (st != CUDNN_STATUS_SUCCESS) {
        tried += std::string(" ") + mode_name + "#" + std::to_string(i) + ": " +
                 cudnn_status_text(st) + ";";
        continue;
      }
      int64_t n = 0, ws = 0;
      PARADIT_CUDNN_CHECK(cudnnBackendGetAttribute(
          plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws));
      p->plan = plan.get();
      p->workspace = ws;
      p->engine = std::string("heuristics ") + mode_name + " result " + std::to_string(i) + " of " +
                  std::to_string(returned);
      p->ok = true;
      return;
    }
  }
  fail("cuDNN: no execution plan for the SDPA graph:", tried);
}

std::string describe(const AttentionArgs& a, bool padding) {
  return ::paradit::detail::concat("B=", a.batch, " H=", a.heads, " Sq=", a.seq_q, " Sk=", a.seq_k,
                                   " D=", a.head_dim, " Dv=", a.head_dim_v, " ",
                                   core::dtype_name(a.dtype), padding ? " key-mask" : "",
                                   a.bias ? " bias" : "", a.lse ? " lse" : "");
}

std::map<SdpaPlanKey, std::unique_ptr<SdpaPlan> >& plans() {
  static auto* p = new std::map<SdpaPlanKey, std::unique_ptr<SdpaPlan> >;  // lives until exit
  return *p;
}

// The plan of a (built on first use); call with cudnn_mutex() held.
SdpaPlan& plan_for(const AttentionArgs& a, bool padding, cudnnHandle_t handle) {
  const SdpaPlanKey key = sdpa_plan_key(a, current_device(), padding);
  auto it = plans().find(key);
  if (it != plans().end()) return *it->second;
  auto plan = std::make_unique<SdpaPlan>();
  try {
    build_plan(a, padding, handle, plan.get());
    log_verbose("cuDNN attention plan for " + describe(a, padding) + ": " + plan->engine +
                ", workspace " + std::to_string(plan->workspace) + " bytes");
  } catch (const Error& e) {
    plan->ok = false;
    plan->failure = e.what();
    log_verbose("cuDNN attention has no plan for " + describe(a, padding) + ": " + plan->failure);
  }
  return *plans().emplace(key, std::move(plan)).first->second;
}

}  // namespace

std::string cudnn_sdpa_known_failure(const AttentionArgs& a, bool padding) {
  std::lock_guard<std::mutex> lock(cudnn_mutex());
  const auto it = plans().find(sdpa_plan_key(a, current_device(), padding));
  return it != plans().end() && !it->second->ok ? it->second->failure : std::string();
}

bool run_cudnn_sdpa(const AttentionArgs& a, const int32_t* seq_q, const int32_t* seq_kv,
                    std::string* why) {
  const bool padding = seq_kv != nullptr;
  std::lock_guard<std::mutex> lock(cudnn_mutex());
  const cudnnHandle_t handle = cudnn_handle();
  SdpaPlan& plan = plan_for(a, padding, handle);
  if (!plan.ok) {
    *why = plan.failure;
    return false;
  }
  // Scratch for the plan, returned to the cache after enqueuing (reused only by later work on
  // this stream).
  std::shared_ptr<DeviceBuffer> workspace;
  if (plan.workspace > 0) workspace = allocate_storage(static_cast<size_t>(plan.workspace));
  void* ws = workspace ? workspace->data : nullptr;
  float scale = a.scale;  // by value: read during cudnnBackendExecute
  // cuDNN before 9.10 wants the lowest finite float as the masked score (as cudnn-frontend
  // passes it); a batch without keys is cleared afterwards either way.
  float neg_inf = cudnnGetVersion() < 91000 ? std::numeric_limits<float>::lowest() : -INFINITY;
  std::vector<int64_t> uids = {kUidQ, kUidK, kUidV, kUidO, kUidScale};
  std::vector<void*> ptrs = {const_cast<void*>(a.q), const_cast<void*>(a.k), const_cast<void*>(a.v),
                             a.out, &scale};
  if (a.lse != nullptr) {
    uids.push_back(kUidStats);
    ptrs.push_back(a.lse);
  }
  if (a.bias != nullptr) {
    uids.push_back(kUidBias);
    ptrs.push_back(const_cast<float*>(a.bias));
  }
  if (padding) {
    uids.insert(uids.end(), {kUidSeqQ, kUidSeqKv, kUidNegInf});
    ptrs.insert(ptrs.end(), {const_cast<int32_t*>(seq_q), const_cast<int32_t*>(seq_kv), &neg_inf});
  }
  BackendDesc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "the SDPA variant pack");
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, static_cast<int64_t>(uids.size()),
           uids.data(), "UNIQUE_IDS");
  pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
           static_cast<int64_t>(ptrs.size()), ptrs.data(), "DATA_POINTERS");
  pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws, "WORKSPACE");
  pack.finalize();
  const cudnnStatus_t st = cudnnBackendExecute(handle, plan.plan, pack.get());
  if (st != CUDNN_STATUS_SUCCESS) {
    // Remembered like a plan that cannot be built: kAuto falls back from now on, kCudnn fails
    // with this text.
    plan.ok = false;
    plan.failure = "cudnnBackendExecute failed: " + cudnn_status_text(st);
    log_verbose("cuDNN attention " + describe(a, padding) + ": " + plan.failure);
    *why = plan.failure;
    return false;
  }
  return true;
}

#endif  // PARADIT_WITH_CUDNN

}  // namespace paradit::backend::cuda::detail
