// Elementwise kernels of the CUDA backend (see kernels.h): copies with dtype conversion,
// activations, broadcast arithmetic, modulation and gated residual.

#include <algorithm>
#include <cmath>

#include "backend/cuda/allocator.h"
#include "backend/cuda/check.h"
#include "backend/cuda/common.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda {

using core::Device;
using core::DType;
using core::Shape;
using core::Tensor;
using namespace detail;

namespace {

constexpr int kThreads = 256;

// ---------------------------------------------------------------- strided copy

// Shape and element strides of both sides, dims merged where possible.
struct CopyLayout {
  int nd = 0;
  int64_t shape[core::kMaxDims] = {};
  int64_t src[core::kMaxDims] = {};
  int64_t dst[core::kMaxDims] = {};
};

// Merges adjacent dims that are contiguous with each other on both sides, and drops size-1
// dims: fewer dims to decompose per element.
CopyLayout make_layout(const Tensor& dst, const Tensor& src) {
  CopyLayout l;
  for (int i = 0; i < dst.ndim(); ++i) {
    if (dst.dim(i) == 1) continue;
    if (l.nd > 0 && l.src[l.nd - 1] == src.stride(i) * src.dim(i) &&
        l.dst[l.nd - 1] == dst.stride(i) * dst.dim(i)) {
      l.shape[l.nd - 1] *= dst.dim(i);
      l.src[l.nd - 1] = src.stride(i);
      l.dst[l.nd - 1] = dst.stride(i);
      continue;
    }
    l.shape[l.nd] = dst.dim(i);
    l.src[l.nd] = src.stride(i);
    l.dst[l.nd] = dst.stride(i);
    l.nd++;
  }
  return l;
}

template <typename D, typename S>
__device__ __forceinline__ D convert_element(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else {
    return from_float<D>(to_float(v));
  }
}

template <typename D, typename S>
__global__ void strided_copy_kernel(D* dst, const S* src, CopyLayout l, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t rem = i, so = 0, dof = 0;
#pragma unroll
    for (int d = core::kMaxDims - 1; d >= 0; --d) {
      if (d >= l.nd) continue;
      const int64_t idx = rem % l.shape[d];
      rem /= l.shape[d];
      so += idx * l.src[d];
      dof += idx * l.dst[d];
    }
    dst[dof] = convert_element<D>(src[so]);
  }
}

template <typename D, typename S>
void launch_copy(const Tensor& dst, const Tensor& src) {
  const CopyLayout l = make_layout(dst, src);
  const int64_t n = dst.numel();
  strided_copy_kernel<D, S><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
      static_cast<D*>(dst.raw_data()), static_cast<const S*>(src.raw_data()), l, n);
  PARADIT_CUDA_CHECK_LAUNCH("strided_copy_kernel");
}

// Same dtype: moves elements as unsigned integers of the element size.
void device_copy_same(const Tensor& dst, const Tensor& src) {
  switch (dst.itemsize()) {
    case 1:
      launch_copy<uint8_t, uint8_t>(dst, src);
      return;
    case 2:
      launch_copy<uint16_t, uint16_t>(dst, src);
      return;
    case 4:
      launch_copy<uint32_t, uint32_t>(dst, src);
      return;
    case 8:
      launch_copy<uint64_t, uint64_t>(dst, src);
      return;
    default:
      fail("copy: element size ", dst.itemsize(), " of ", dst.str(), " is not supported");
  }
}

template <typename D>
void device_convert_from(const Tensor& dst, const Tensor& src) {
  switch (src.dtype()) {
    case DType::F32:
      launch_copy<D, float>(dst, src);
      return;
    case DType::BF16:
      launch_copy<D, __nv_bfloat16>(dst, src);
      return;
    case DType::F16:
      launch_copy<D, __half>(dst, src);
      return;
    case DType::Bool:
    case DType::U8:
      launch_copy<D, uint8_t>(dst, src);
      return;
    case DType::I32:
      launch_copy<D, int32_t>(dst, src);
      return;
    case DType::I64:
      launch_copy<D, int64_t>(dst, src);
      return;
    default:
      fail("copy: conversion from ", core::dtype_name(src.dtype()), " to ",
           core::dtype_name(dst.dtype()), " is not supported on CUDA");
  }
}

void device_copy(const Tensor& dst, const Tensor& src) {
  if (dst.dtype() == src.dtype()) {
    if (dst.is_contiguous() && src.is_contiguous()) {
      copy_bytes(dst.raw_data(), Device::CUDA, src.raw_data(), Device::CUDA, dst.nbytes());
    } else {
      device_copy_same(dst, src);
    }
    return;
  }
  switch (dst.dtype()) {
    case DType::F32:
      device_convert_from<float>(dst, src);
      return;
    case DType::BF16:
      device_convert_from<__nv_bfloat16>(dst, src);
      return;
    case DType::F16:
      device_convert_from<__half>(dst, src);
      return;
    default:
      fail("copy: conversion from ", core::dtype_name(src.dtype()), " to ",
           core::dtype_name(dst.dtype()), " is not supported on CUDA");
  }
}

}  // namespace

void copy(const Tensor& dst, const Tensor& src) {
  PARADIT_CHECK(dst.defined() && src.defined(), "copy: undefined tensor");
  PARADIT_CHECK(dst.shape() == src.shape(), "copy: shape ", src.str(), " into ", dst.str());
  if (dst.numel() == 0) return;
  const bool dst_dev = dst.device() == Device::CUDA;
  const bool src_dev = src.device() == Device::CUDA;
  if (!dst_dev && !src_dev) {
    Tensor d = dst;
    d.copy_from(src);
    return;
  }
  if (dst_dev && src_dev) {
    device_copy(dst, src);
    return;
  }
  if (dst_dev) {
    // Host → device: the host side packed in its own dtype, converted on the device.
    const Tensor hs = src.contiguous();
    if (dst.dtype() == src.dtype() && dst.is_contiguous()) {
      copy_bytes(dst.raw_data(), Device::CUDA, hs.raw_data(), Device::CPU, dst.nbytes());
      return;
    }
    const Tensor staged = Tensor::empty(src.shape(), src.dtype(), Device::CUDA);
    copy_bytes(staged.raw_data(), Device::CUDA, hs.raw_data(), Device::CPU, staged.nbytes());
    device_copy(dst, staged);
    return;
  }
  // Device → host: converted and packed on the device, then one transfer.
  Tensor packed = src;
  if (src.dtype() != dst.dtype() || !src.is_contiguous()) {
    packed = Tensor::empty(src.shape(), dst.dtype(), Device::CUDA);
    device_copy(packed, src);
  }
  if (dst.is_contiguous()) {
    copy_bytes(dst.raw_data(), Device::CPU, packed.raw_data(), Device::CUDA, dst.nbytes());
    return;
  }
  Tensor host = Tensor::empty(src.shape(), dst.dtype());
  copy_bytes(host.raw_data(), Device::CPU, packed.raw_data(), Device::CUDA, host.nbytes());
  Tensor d = dst;
  d.copy_from(host);
}

Tensor convert(const Tensor& x, DType dtype) {
  check_device("convert", "x", x);
  if (x.dtype() == dtype && x.is_contiguous()) return x;
  Tensor out = Tensor::empty(x.shape(), dtype, Device::CUDA);
  device_copy(out, x);
  return out;
}

Tensor contiguous(const Tensor& x) { return convert(x, x.dtype()); }

namespace {

template <typename T>
__global__ void fill_kernel(T* x, int64_t n, float value) {
  const T v = from_float<T>(value);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    x[i] = v;
}

}  // namespace

void fill(const Tensor& x, float value) {
  check_float("fill", "x", x);
  PARADIT_CHECK(x.is_contiguous(), "fill: ", x.str(), " is not contiguous");
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_float(x.dtype(), "fill", [&]<typename T>(T) {
    fill_kernel<T><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<T*>(x.raw_data()), n, value);
    PARADIT_CUDA_CHECK_LAUNCH("fill_kernel");
  });
}

// ---------------------------------------------------------------- activations

namespace {

enum class Act { kGeluErf, kGeluTanh, kSilu };

template <Act A>
__device__ __forceinline__ float activate(float v) {
  if constexpr (A == Act::kGeluErf) {
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  } else if constexpr (A == Act::kGeluTanh) {
    constexpr float kC = 0.79788456080286536f;  // √(2/π)
    return 0.5f * v * (1.0f + tanhf(kC * (v + 0.044715f * v * v * v)));
  } else {
    return v / (1.0f + expf(-v));
  }
}

// y: contiguous (rows, D); x rows at x + r·row_stride.
template <Act A, typename T>
__global__ void activation_kernel(const T* x, int64_t row_stride, int64_t D, int64_t n, T* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t src = row_stride == D ? i : i / D * row_stride + i % D;
    y[i] = from_float<T>(activate<A>(to_float(x[src])));
  }
}

template <Act A>
Tensor activation(const char* op, const Tensor& x) {
  check_float(op, "x", x);
  int64_t rows, D, row_stride;
  const Tensor xr = as_rows(x, &rows, &D, &row_stride);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);  // same shape as x
  const int64_t n = rows * D;
  if (n == 0) return y;
  dispatch_float(x.dtype(), op, [&]<typename T>(T) {
    activation_kernel<A, T><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<const T*>(xr.raw_data()), row_stride, D, n, static_cast<T*>(y.raw_data()));
    PARADIT_CUDA_CHECK_LAUNCH("activation_kernel");
  });
  return y;
}

}  // namespace

Tensor gelu(const Tensor& x, bool tanh_approx) {
  return tanh_approx ? activation<Act::kGeluTanh>("gelu", x) : activation<Act::kGeluErf>("gelu", x);
}

Tensor silu(const Tensor& x) { return activation<Act::kSilu>("silu", x); }

// ---------------------------------------------------------------- broadcast arithmetic

namespace {

struct BroadcastLayout {
  int nd = 0;
  int64_t shape[core::kMaxDims] = {};
  int64_t sa[core::kMaxDims] = {};
  int64_t sb[core::kMaxDims] = {};
};

template <bool kMul, typename T>
__global__ void binary_kernel(const T* a, const T* b, BroadcastLayout l, int64_t n, T* out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t rem = i, oa = 0, ob = 0;
#pragma unroll
    for (int d = core::kMaxDims - 1; d >= 0; --d) {
      if (d >= l.nd) continue;
      const int64_t idx = rem % l.shape[d];
      rem /= l.shape[d];
      oa += idx * l.sa[d];
      ob += idx * l.sb[d];
    }
    const float va = to_float(a[oa]), vb = to_float(b[ob]);
    out[i] = from_float<T>(kMul ? va * vb : va + vb);
  }
}

template <bool kMul>
Tensor binary(const char* op, const Tensor& a_in, const Tensor& b_in) {
  check_float(op, "a", a_in);
  check_float(op, "b", b_in);
  Tensor a = a_in, b = b_in;
  if (a.dtype() != b.dtype()) {
    a = convert(a, DType::F32);
    b = convert(b, DType::F32);
  }
  const int nd = std::max(a.ndim(), b.ndim());
  Shape shape(nd);
  BroadcastLayout l;
  l.nd = nd;
  for (int i = 0; i < nd; ++i) {
    const int ia = i - (nd - a.ndim()), ib = i - (nd - b.ndim());
    const int64_t da = ia >= 0 ? a.dim(ia) : 1, db = ib >= 0 ? b.dim(ib) : 1;
    PARADIT_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", core::shape_str(a.shape()),
                  " and ", core::shape_str(b.shape()), " do not broadcast");
    shape[i] = std::max(da, db);
    if (da == 0 || db == 0) shape[i] = 0;
    l.shape[i] = shape[i];
    l.sa[i] = ia >= 0 && da != 1 ? a.stride(ia) : 0;
    l.sb[i] = ib >= 0 && db != 1 ? b.stride(ib) : 0;
  }
  Tensor out = Tensor::empty(shape, a.dtype(), Device::CUDA);  // broadcast shape
  const int64_t n = out.numel();
  if (n == 0) return out;
  dispatch_float(a.dtype(), op, [&]<typename T>(T) {
    binary_kernel<kMul, T><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<const T*>(a.raw_data()), static_cast<const T*>(b.raw_data()), l, n,
        static_cast<T*>(out.raw_data()));
    PARADIT_CUDA_CHECK_LAUNCH("binary_kernel");
  });
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary<false>("add", a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary<true>("mul", a, b); }

// ---------------------------------------------------------------- modulation, gated residual

namespace {

void check_bsd(const char* op, const char* name, const Tensor& t) {
  check_float(op, name, t);
  PARADIT_CHECK(t.ndim() == 3, op, ": ", name, " has shape ", core::shape_str(t.shape()),
                ", expected (B, S, D)");
}

// out = x · (1 + scale[b]) + shift[b]   x, out: contiguous (B, S, D)
template <typename T>
__global__ void modulate_kernel(const T* x, const float* shift, int64_t shift_bs,
                                const float* scale, int64_t scale_bs, int64_t S, int64_t D,
                                int64_t n, T* out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t d = i % D, b = i / (S * D);
    const float v = to_float(x[i]);
    out[i] = from_float<T>(v * (1.0f + scale[b * scale_bs + d]) + shift[b * shift_bs + d]);
  }
}

// out = x + gate[b] · y   x, y, out: contiguous (B, S, D)
template <typename T>
__global__ void gated_add_kernel(const T* x, const float* gate, int64_t gate_bs, const T* y,
                                 int64_t S, int64_t D, int64_t n, T* out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t d = i % D, b = i / (S * D);
    out[i] = from_float<T>(to_float(x[i]) + gate[b * gate_bs + d] * to_float(y[i]));
  }
}

}  // namespace

Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) {
  check_bsd("modulate", "x", x);
  const int64_t B = x.dim(0), S = x.dim(1), D = x.dim(2);
  int64_t shift_bs, scale_bs;
  const Tensor sh = batch_param("modulate", "shift", shift, B, D, &shift_bs);
  const Tensor sc = batch_param("modulate", "scale", scale, B, D, &scale_bs);
  const Tensor xc = contiguous(x);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);  // (B, S, D)
  const int64_t n = out.numel();
  if (n == 0) return out;
  dispatch_float(x.dtype(), "modulate", [&]<typename T>(T) {
    modulate_kernel<T><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<const T*>(xc.raw_data()), static_cast<const float*>(sh.raw_data()), shift_bs,
        static_cast<const float*>(sc.raw_data()), scale_bs, S, D, n,
        static_cast<T*>(out.raw_data()));
    PARADIT_CUDA_CHECK_LAUNCH("modulate_kernel");
  });
  return out;
}

Tensor gated_add(const Tensor& x, const Tensor& gate, const Tensor& y) {
  check_bsd("gated_add", "x", x);
  check_bsd("gated_add", "y", y);
  PARADIT_CHECK(x.shape() == y.shape(), "gated_add: x ", x.str(), " and y ", y.str(),
                " differ in shape");
  const int64_t B = x.dim(0), S = x.dim(1), D = x.dim(2);
  int64_t gate_bs;
  const Tensor g = batch_param("gated_add", "gate", gate, B, D, &gate_bs);
  const Tensor xc = contiguous(x);
  const Tensor yc = y.dtype() == x.dtype() ? contiguous(y) : convert(y, x.dtype());
  Tensor out = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);  // (B, S, D)
  const int64_t n = out.numel();
  if (n == 0) return out;
  dispatch_float(x.dtype(), "gated_add", [&]<typename T>(T) {
    gated_add_kernel<T><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<const T*>(xc.raw_data()), static_cast<const float*>(g.raw_data()), gate_bs,
        static_cast<const T*>(yc.raw_data()), S, D, n, static_cast<T*>(out.raw_data()));
    PARADIT_CUDA_CHECK_LAUNCH("gated_add_kernel");
  });
  return out;
}

}  // namespace paradit::backend::cuda
