// Row kernels of the CUDA backend (see kernels.h): layer/RMS norm with the fused DiT
// modulation, softmax, rotary embedding. One thread block per row; statistics in f32.

#include <algorithm>
#include <cmath>

#include "backend/cuda/check.h"
#include "backend/cuda/common.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda {

using core::Device;
using core::DType;
using core::Tensor;
using namespace detail;

namespace {

int row_threads(int64_t D) { return D >= 2048 ? 512 : (D >= 512 ? 256 : 128); }

// Per-row affine and modulation parameters (all optional, F32).
struct NormParams {
  const float* weight = nullptr;
  const float* bias = nullptr;
  const float* shift = nullptr;
  const float* scale = nullptr;
  int64_t shift_bs = 0, scale_bs = 0;
  int64_t rows_per_batch = 1;
  float eps = 0.0f;
};

// y: contiguous (rows, D); x rows at x + r·row_stride. Two passes over the row for the
// statistics (mean, then Σ(x − mean)²) so rows with a large mean keep their accuracy.
template <bool kRms, typename T>
__global__ void norm_kernel(const T* x, int64_t row_stride, int64_t D, NormParams p, T* y) {
  const int64_t r = blockIdx.x;
  const T* xr = x + r * row_stride;
  T* yr = y + r * D;
  float mean = 0.0f;
  if constexpr (!kRms) {
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += to_float(xr[i]);
    mean = block_reduce(s, SumOp{}, 0.0f) / static_cast<float>(D);
  }
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float d = to_float(xr[i]) - mean;
    ss += d * d;
  }
  const float var = block_reduce(ss, SumOp{}, 0.0f) / static_cast<float>(D);
  const float rstd = 1.0f / sqrtf(var + p.eps);
  const int64_t b = r / p.rows_per_batch;
  const float* shift = p.shift ? p.shift + b * p.shift_bs : nullptr;
  const float* scale = p.scale ? p.scale + b * p.scale_bs : nullptr;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    float v = (to_float(xr[i]) - mean) * rstd;
    if (p.weight) v *= p.weight[i];
    if (p.bias) v += p.bias[i];
    if (scale) v *= 1.0f + scale[i];
    if (shift) v += shift[i];
    yr[i] = from_float<T>(v);
  }
}

template <bool kRms>
Tensor norm(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
            const Tensor& shift, const Tensor& scale) {
  check_float(op, "x", x);
  PARADIT_CHECK(x.ndim() >= 1, op, ": x is a scalar");
  int64_t rows, D, row_stride;
  const Tensor xr = as_rows(x, &rows, &D, &row_stride);
  const Tensor w = vector_param(op, "weight", weight, D);
  const Tensor b = vector_param(op, "bias", bias, D);
  NormParams p;
  p.weight = w.defined() ? static_cast<const float*>(w.raw_data()) : nullptr;
  p.bias = b.defined() ? static_cast<const float*>(b.raw_data()) : nullptr;
  p.eps = eps;
  Tensor sh, sc;
  if (shift.defined() || scale.defined()) {
    // Modulation: the rows of x split into B batches of rows_per_batch rows.
    const Tensor& any = shift.defined() ? shift : scale;
    const int64_t B = any.ndim() == 2 ? any.dim(0) : 1;
    PARADIT_CHECK(B > 0 && rows % B == 0, op, ": modulation ", any.str(), " has ", B,
                  " batches but x ", x.str(), " has ", rows, " rows");
    p.rows_per_batch = std::max<int64_t>(rows / B, 1);
    if (shift.defined()) {
      sh = batch_param(op, "shift", shift, B, D, &p.shift_bs);
      p.shift = static_cast<const float*>(sh.raw_data());
    }
    if (scale.defined()) {
      sc = batch_param(op, "scale", scale, B, D, &p.scale_bs);
      p.scale = static_cast<const float*>(sc.raw_data());
    }
  }
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);  // same shape as x
  if (rows == 0 || D == 0) return y;
  PARADIT_CHECK(rows <= 0x7fffffff, op, ": ", rows, " rows exceed the grid");
  const int threads = row_threads(D);
  dispatch_float(x.dtype(), op, [&]<typename T>(T) {
    norm_kernel<kRms, T><<<static_cast<unsigned>(rows), threads, 0, current_stream()>>>(
        static_cast<const T*>(xr.raw_data()), row_stride, D, p, static_cast<T*>(y.raw_data()));
    PARADIT_CUDA_CHECK_LAUNCH("norm_kernel");
  });
  return y;
}

// y: contiguous (rows, D) = softmax of each row of x.
template <typename T>
__global__ void softmax_kernel(const T* x, int64_t row_stride, int64_t D, T* y) {
  const int64_t r = blockIdx.x;
  const T* xr = x + r * row_stride;
  T* yr = y + r * D;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) m = fmaxf(m, to_float(xr[i]));
  m = block_reduce(m, MaxOp{}, -INFINITY);
  // A row of −inf: shifting by 0 avoids −inf − (−inf); the sum is 0 and the row NaN, as in torch.
  const float shift = m == -INFINITY ? 0.0f : m;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += expf(to_float(xr[i]) - shift);
  s = block_reduce(s, SumOp{}, 0.0f);
  const float inv = 1.0f / s;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
    yr[i] = from_float<T>(expf(to_float(xr[i]) - shift) * inv);
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                  const Tensor& shift, const Tensor& scale) {
  return norm<false>("layer_norm", x, weight, bias, eps, shift, scale);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& shift,
                const Tensor& scale) {
  return norm<true>("rms_norm", x, weight, Tensor{}, eps, shift, scale);
}

Tensor softmax(const Tensor& x) {
  check_float("softmax", "x", x);
  int64_t rows, D, row_stride;
  const Tensor xr = as_rows(x, &rows, &D, &row_stride);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);  // same shape as x
  if (rows == 0 || D == 0) return y;
  PARADIT_CHECK(rows <= 0x7fffffff, "softmax: ", rows, " rows exceed the grid");
  const int threads = row_threads(D);
  dispatch_float(x.dtype(), "softmax", [&]<typename T>(T) {
    softmax_kernel<T><<<static_cast<unsigned>(rows), threads, 0, current_stream()>>>(
        static_cast<const T*>(xr.raw_data()), row_stride, D, static_cast<T*>(y.raw_data()));
    PARADIT_CUDA_CHECK_LAUNCH("softmax_kernel");
  });
  return y;
}

// ---------------------------------------------------------------- rotary embedding

namespace {

struct RopeLayout {
  int64_t S = 0, H = 0, D = 0;
  int64_t sb = 0, ss = 0, sh = 0;  // element strides of x's B, S, H dims
};

// One thread per rotated pair. out: contiguous (B, S, H, D); cos, sin: contiguous (S, D) F32.
template <bool kInterleaved, typename T>
__global__ void rope_kernel(const T* x, RopeLayout l, const float* cos, const float* sin,
                            int64_t pairs, T* out) {
  const int64_t half = l.D / 2;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < pairs;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t p = i % half;
    int64_t rest = i / half;
    const int64_t h = rest % l.H;
    rest /= l.H;
    const int64_t s = rest % l.S;
    const int64_t b = rest / l.S;
    const T* xr = x + b * l.sb + s * l.ss + h * l.sh;
    T* o = out + ((b * l.S + s) * l.H + h) * l.D;
    const float* c = cos + s * l.D;
    const float* sn = sin + s * l.D;
    // Interleaved: pairs (2p, 2p+1) as diffusers' apply_rotary_emb (Flux); half-split: pairs
    // (p, p + D/2), rotate_half.
    const int64_t i0 = kInterleaved ? 2 * p : p;
    const int64_t i1 = kInterleaved ? 2 * p + 1 : p + half;
    const float x0 = to_float(xr[i0]), x1 = to_float(xr[i1]);
    o[i0] = from_float<T>(x0 * c[i0] - x1 * sn[i0]);
    o[i1] = from_float<T>(x1 * c[i1] + x0 * sn[i1]);
  }
}

}  // namespace

Tensor apply_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, core::RopeStyle style) {
  check_float("apply_rope", "x", x);
  PARADIT_CHECK(x.ndim() == 4, "apply_rope: x has shape ", core::shape_str(x.shape()),
                ", expected (B, S, H, D)");
  const int64_t B = x.dim(0), S = x.dim(1), H = x.dim(2), D = x.dim(3);
  PARADIT_CHECK(D % 2 == 0, "apply_rope: head dim ", D, " of x ", x.str(), " is odd");
  for (const Tensor* t : {&cos, &sin}) {
    const char* name = t == &cos ? "cos" : "sin";
    check_float("apply_rope", name, *t);
    PARADIT_CHECK(t->ndim() == 2 && t->dim(0) == S && t->dim(1) == D, "apply_rope: ", name,
                  " has shape ", core::shape_str(t->shape()), ", expected [", S, ", ", D, "]");
  }
  const Tensor xs = x.stride(3) == 1 || D <= 1 ? x : contiguous(x);
  const Tensor c = convert(cos, DType::F32), s = convert(sin, DType::F32);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);  // (B, S, H, D)
  const int64_t pairs = B * S * H * (D / 2);
  if (pairs == 0) return out;
  RopeLayout l{S, H, D, xs.stride(0), xs.stride(1), xs.stride(2)};
  dispatch_float(x.dtype(), "apply_rope", [&]<typename T>(T) {
    const T* xp = static_cast<const T*>(xs.raw_data());
    const float* cp = static_cast<const float*>(c.raw_data());
    const float* sp = static_cast<const float*>(s.raw_data());
    T* op = static_cast<T*>(out.raw_data());
    const unsigned grid = grid_for(pairs, 256);
    if (style == core::RopeStyle::kInterleaved) {
      rope_kernel<true, T><<<grid, 256, 0, current_stream()>>>(xp, l, cp, sp, pairs, op);
    } else {
      rope_kernel<false, T><<<grid, 256, 0, current_stream()>>>(xp, l, cp, sp, pairs, op);
    }
    PARADIT_CUDA_CHECK_LAUNCH("rope_kernel");
  });
  return out;
}

}  // namespace paradit::backend::cuda
