// The CUDA convolution bodies (ops.h: conv2d, conv3d) through cuDNN's legacy
// cudnnConvolutionForward on NCHW / NCDHW tensors (see conv.h for the lowering). One plan per
// shape: descriptors and the algorithm from cudnnGetConvolutionForwardAlgorithm_v7 (the first,
// i.e. fastest predicted, that succeeds within the workspace limit), built once and cached.
// Math: f32 compute; BF16/F16 on tensor cores; F32 in full f32 (FMA math, never TF32). The bias
// is added by a kernel afterwards.

#include "backend/cuda/conv.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "backend/cuda/allocator.h"
#include "backend/cuda/check.h"
#include "backend/cuda/cudnn_util.h"
#include "backend/cuda/launch.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda {

using namespace detail;

namespace {

void check_dtypes(const char* op, DType x, DType w) {
  if (x != DType::F32 && x != DType::BF16 && x != DType::F16)
    fail(op, ": dtype ", core::dtype_name(x), " is not supported on CUDA (F32, BF16, F16)");
  if (w != x)
    fail(op, ": w is ", core::dtype_name(w), " but x is ", core::dtype_name(x),
         "; the CUDA body takes one dtype for both");
}

#ifdef PARADIT_WITH_CUDNN

// Largest workspace an algorithm may ask for.
constexpr size_t kMaxWorkspace = size_t{1} << 30;

struct ConvKey {
  int device = 0;
  DType dtype = DType::F32;
  int spatial = 2;
  int64_t n = 0, C = 0, O = 0;
  int64_t in[3] = {}, kernel[3] = {}, stride[3] = {}, pad[3] = {};
  auto operator<=>(const ConvKey&) const = default;
};

struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  size_t workspace = 0;
  ConvPlan() = default;
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;
  ~ConvPlan() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

// dims (n, c, spatial...) → int dims and packed strides.
void set_tensor(cudnnTensorDescriptor_t d, cudnnDataType_t dt, int nd, const int64_t* dims) {
  int idims[5], istrides[5];
  int64_t s = 1;
  for (int i = nd - 1; i >= 0; --i) {
    idims[i] = static_cast<int>(dims[i]);
    istrides[i] = static_cast<int>(s);
    s *= dims[i];
  }
  PARADIT_CUDNN_CHECK(cudnnSetTensorNdDescriptor(d, dt, nd, idims, istrides));
}

std::string describe(const ConvLowering& l, int64_t n, DType dtype) {
  std::string s = ::paradit::detail::concat("conv", l.spatial, "d n=", n, " C=", l.C, " O=", l.O,
                                            " ", core::dtype_name(dtype), " in");
  for (int i = 0; i < l.spatial; ++i) s += ::paradit::detail::concat(i ? "×" : " ", l.in[i]);
  s += " kernel";
  for (int i = 0; i < l.spatial; ++i) s += ::paradit::detail::concat(i ? "×" : " ", l.kernel[i]);
  s += " stride";
  for (int i = 0; i < l.spatial; ++i) s += ::paradit::detail::concat(i ? "×" : " ", l.stride[i]);
  s += " pad";
  for (int i = 0; i < l.spatial; ++i) s += ::paradit::detail::concat(i ? "×" : " ", l.pad[i]);
  return s;
}

std::unique_ptr<ConvPlan> build_plan(cudnnHandle_t handle, const ConvLowering& l, int64_t n,
                                     DType dtype) {
  auto p = std::make_unique<ConvPlan>();
  const cudnnDataType_t dt = cudnn_dtype(dtype);
  const int nd = l.spatial + 2;
  int64_t xd[5] = {n, l.C}, wd[5] = {l.O, l.C}, yd[5] = {n, l.O};
  int pad[3], stride[3], dil[3];
  for (int i = 0; i < l.spatial; ++i) {
    xd[2 + i] = l.in[i];
    wd[2 + i] = l.kernel[i];
    yd[2 + i] = l.out[i];
    pad[i] = static_cast<int>(l.pad[i]);
    stride[i] = static_cast<int>(l.stride[i]);
    dil[i] = 1;
  }
  PARADIT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  PARADIT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  PARADIT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  PARADIT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  set_tensor(p->x, dt, nd, xd);
  set_tensor(p->y, dt, nd, yd);
  int iw[5];
  for (int i = 0; i < nd; ++i) iw[i] = static_cast<int>(wd[i]);
  PARADIT_CUDNN_CHECK(cudnnSetFilterNdDescriptor(p->w, dt, CUDNN_TENSOR_NCHW, nd, iw));
  PARADIT_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(p->conv, l.spatial, pad, stride, dil,
                                                      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  const bool f32 = dtype == DType::F32;
  PARADIT_CUDNN_CHECK(
      cudnnSetConvolutionMathType(p->conv, f32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));

  // cuDNN's own idea of the output shape must be ours.
  int od[5] = {};
  PARADIT_CUDNN_CHECK(cudnnGetConvolutionNdForwardOutputDim(p->conv, p->x, p->w, nd, od));
  for (int i = 0; i < nd; ++i) {
    if (od[i] != yd[i])
      fail("conv: cuDNN computes output dim ", i, " = ", od[i], ", paradit ", yd[i], " for ",
           describe(l, n, dtype));
  }

  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT] = {};
  int returned = 0;
  PARADIT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
      handle, p->x, p->w, p->conv, p->y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
  for (int i = 0; i < returned; ++i) {
    const cudnnConvolutionFwdAlgoPerf_t& r = perf[i];
    if (r.status != CUDNN_STATUS_SUCCESS || r.memory > kMaxWorkspace) continue;
    // Full f32 for F32: the descriptor keeps FMA math, and algorithms that would use tensor
    // cores (TF32) are passed over.
    if (f32 && (r.mathType == CUDNN_TENSOR_OP_MATH ||
                r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
      continue;
    if (!f32) PARADIT_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, r.mathType));
    p->algo = r.algo;
    // The heuristic's estimate may differ from the real need: ask for the chosen algorithm.
    PARADIT_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, p->x, p->w, p->conv, p->y,
                                                                p->algo, &p->workspace));
    log_verbose(::paradit::detail::concat(describe(l, n, dtype), ": algorithm ",
                                          static_cast<int>(p->algo), " (heuristic rank ", i,
                                          "), workspace ", p->workspace, " bytes"));
    return p;
  }
  fail("conv: cuDNN offers no algorithm for ", describe(l, n, dtype), " (", returned,
       " candidates, none succeeded within ", kMaxWorkspace, " bytes of workspace",
       f32 ? " with FMA math" : "", ")");
}

class ConvEngine {
 public:
  // x: the (padded) input, out: the output, both contiguous (N, ·); chunks of batch_chunk
  // samples.
  void run(const ConvLowering& l, DType dtype, const void* x, const void* w, void* out) {
    const size_t es = dtype_size(dtype);
    std::lock_guard<std::mutex> lock(cudnn_mutex());
    const cudnnHandle_t handle = cudnn_handle();
    const float alpha = 1.0f, beta = 0.0f;
    for (int64_t first = 0; first < l.N; first += l.batch_chunk) {
      const int64_t n = std::min(l.batch_chunk, l.N - first);
      ConvPlan& p = plan(handle, l, n, dtype);
      std::shared_ptr<DeviceBuffer> ws;
      if (p.workspace > 0) ws = allocate_storage(p.workspace);
      const char* xs = static_cast<const char*>(x) + first * l.in_elems_per_sample() * es;
      char* ys = static_cast<char*>(out) + first * l.out_elems_per_sample() * es;
      PARADIT_CUDNN_CHECK(cudnnConvolutionForward(handle, &alpha, p.x, xs, p.w, w, p.conv, p.algo,
                                                  ws ? ws->data : nullptr, p.workspace, &beta, p.y,
                                                  ys));
    }
  }

 private:
  ConvPlan& plan(cudnnHandle_t handle, const ConvLowering& l, int64_t n, DType dtype) {
    ConvKey k;
    k.device = current_device();
    k.dtype = dtype;
    k.spatial = l.spatial;
    k.n = n;
    k.C = l.C;
    k.O = l.O;
    for (int i = 0; i < 3; ++i) {
      k.in[i] = l.in[i];
      k.kernel[i] = l.kernel[i];
      k.stride[i] = l.stride[i];
      k.pad[i] = l.pad[i];
    }
    auto it = plans_.find(k);
    if (it == plans_.end()) it = plans_.emplace(k, build_plan(handle, l, n, dtype)).first;
    return *it->second;
  }

  std::map<ConvKey, std::unique_ptr<ConvPlan>> plans_;  // guarded by cudnn_mutex()
};

ConvEngine& engine() {
  static ConvEngine* e = new ConvEngine;  // lives until exit, like the handles
  return *e;
}

void run_conv(const char* op, const ConvLowering& l, DType dtype, const void* x, const void* w,
              const float* bias, void* out) {
  if (l.N == 0 || l.O == 0 || l.out_elems_per_sample() == 0) return;
  if (l.batch_chunk == 0)
    fail(op, ": one sample of ", std::max(l.in_elems_per_sample(), l.out_elems_per_sample()),
         " elements exceeds cuDNN's int32 sizes");
  // Explicit padding into scratch (returned to the cache after enqueuing: reused only by later
  // work on this stream).
  std::shared_ptr<DeviceBuffer> padded;
  const void* input = x;
  if (l.explicit_pad) {
    padded =
        allocate_storage(static_cast<size_t>(l.N * l.in_elems_per_sample()) * dtype_size(dtype));
    pad_volume(dtype, x, l.pad_geometry, padded->data);
    input = padded->data;
  }
  engine().run(l, dtype, input, w, out);
  channel_bias(dtype, out, l.N, l.O, l.out[0] * l.out[1] * l.out[2], bias);
}

#else  // !PARADIT_WITH_CUDNN

void run_conv(const char* op, const ConvLowering&, DType, const void*, const void*, const float*,
              void*) {
  fail(op, ": this build has no cuDNN (the CUDA convolutions run through cuDNN)");
}

#endif

}  // namespace

void conv2d(const Conv2dArgs& a) {
  check_dtypes("conv2d", a.dtype, a.w_dtype);
  run_conv("conv2d", lower_conv2d(a.g), a.dtype, a.x, a.w, a.bias, a.out);
}

void conv3d(const Conv3dArgs& a) {
  check_dtypes("conv3d", a.dtype, a.w_dtype);
  run_conv("conv3d", lower_conv3d(a.g), a.dtype, a.x, a.w, a.bias, a.out);
}

}  // namespace paradit::backend::cuda
