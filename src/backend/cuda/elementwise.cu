// Elementwise CUDA bodies (ops.h): copy with dtype conversion, fill, broadcast binary, scale,
// activations, modulation, gated residual, linear combinations, per-channel affine maps,
// embedding lookup, nearest upsampling; and the launchers of launch.h (bias + activation,
// channel bias, explicit padding). One thread per element in grid-stride loops; math in f32
// (double where a conversion from an integer or F64 needs it), one rounding on output.

#include <cmath>
#include <cstring>

#include "backend/cuda/allocator.h"
#include "backend/cuda/check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/launch.h"
#include "backend/cuda/layout.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda {

using namespace detail;

namespace {

constexpr int kThreads = 256;

// ---------------------------------------------------------------- strided copy

// Per-dim element strides of both sides after merge_dims.
struct CopyLayout {
  int nd = 0;
  int64_t shape[kMaxDims] = {};
  int64_t src[kMaxDims] = {};
  int64_t dst[kMaxDims] = {};
};

__device__ __forceinline__ void copy_offsets(const CopyLayout& l, int64_t i, int64_t* so,
                                             int64_t* dof) {
  int64_t rem = i, s = 0, d = 0;
#pragma unroll
  for (int k = kMaxDims - 1; k >= 0; --k) {
    if (k >= l.nd) continue;
    const int64_t idx = rem % l.shape[k];
    rem /= l.shape[k];
    s += idx * l.src[k];
    d += idx * l.dst[k];
  }
  *so = s;
  *dof = d;
}

// A Bool destination element: its own type so that a U8 source (also uint8_t) is still
// normalised to 0/1.
struct BoolByte {
  uint8_t v;
};

// Conversions of copy: D is float, __nv_bfloat16, __half, double or BoolByte; S any source
// element type (uint8_t covers U8 and Bool sources).
template <typename S>
__device__ __forceinline__ double to_double(S v) {
  if constexpr (kIsF32Family<S>) {
    return static_cast<double>(to_float(v));
  } else {
    return static_cast<double>(v);
  }
}

template <typename D, typename S>
__device__ __forceinline__ D convert_value(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<D, BoolByte>) {  // nonzero (and NaN) → 1
    if constexpr (kIsF32Family<S>) {
      return BoolByte{static_cast<uint8_t>(to_float(v) != 0.0f)};
    } else {
      return BoolByte{static_cast<uint8_t>(v != S{0})};
    }
  } else if constexpr (std::is_same_v<D, double>) {
    return to_double(v);
  } else if constexpr (kIsF32Family<S>) {
    return from_float<D>(to_float(v));  // float → float: one rounding
  } else {
    // Integers and F64 go through double so that narrowing rounds once.
    const double d = static_cast<double>(v);
    if constexpr (std::is_same_v<D, float>) {
      return static_cast<float>(d);
    } else if constexpr (std::is_same_v<D, __nv_bfloat16>) {
      return __double2bfloat16(d);
    } else {
      return __double2half(d);
    }
  }
}

template <typename D, typename S>
__global__ void copy_kernel(D* dst, const S* src, CopyLayout l, int64_t n, bool dense) {
  if (dense) {
    PARADIT_GRID_STRIDE(i, n) { dst[i] = convert_value<D>(src[i]); }
    return;
  }
  PARADIT_GRID_STRIDE(i, n) {
    int64_t so, dof;
    copy_offsets(l, i, &so, &dof);
    dst[dof] = convert_value<D>(src[so]);
  }
}

template <typename D, typename S>
void launch_copy(void* dst, const void* src, const CopyLayout& l, int64_t n, bool dense) {
  copy_kernel<D, S><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
      static_cast<D*>(dst), static_cast<const S*>(src), l, n, dense);
  PARADIT_CUDA_CHECK_LAUNCH("copy_kernel");
}

// Calls fn(S{}) with S the element type of a copy source dtype.
template <typename Fn>
void dispatch_copy_source(DType t, DType dst, Fn&& fn) {
  switch (t) {
    case DType::F32:
      return fn(float{});
    case DType::BF16:
      return fn(__nv_bfloat16{});
    case DType::F16:
      return fn(__half{});
    case DType::F64:
      return fn(double{});
    case DType::I64:
      return fn(int64_t{});
    case DType::I32:
      return fn(int32_t{});
    case DType::I16:
      return fn(int16_t{});
    case DType::I8:
      return fn(int8_t{});
    case DType::U8:
    case DType::Bool:
      return fn(uint8_t{});
    default:
      fail("copy: conversion from ", core::dtype_name(t), " to ", core::dtype_name(dst),
           " is not supported on CUDA");
  }
}

// ---------------------------------------------------------------- fill

template <typename U>
__global__ void fill_kernel(U* x, int64_t n, U v) {
  PARADIT_GRID_STRIDE(i, n) { x[i] = v; }
}

template <typename U>
void launch_fill(void* x, int64_t n, U v) {
  fill_kernel<U>
      <<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(static_cast<U*>(x), n, v);
  PARADIT_CUDA_CHECK_LAUNCH("fill_kernel");
}

// ---------------------------------------------------------------- binary

struct BinaryLayout {
  int nd = 0;
  int64_t shape[kMaxDims] = {};
  int64_t a[kMaxDims] = {};
  int64_t b[kMaxDims] = {};
};

template <BinaryOp Op>
__device__ __forceinline__ float binary_op(float a, float b) {
  if constexpr (Op == BinaryOp::kAdd) {
    return a + b;
  } else if constexpr (Op == BinaryOp::kSub) {
    return a - b;
  } else if constexpr (Op == BinaryOp::kMul) {
    return a * b;
  } else {
    return __fdiv_rn(a, b);
  }
}

// out contiguous; a and b through the layout (dense: both at offset i).
template <BinaryOp Op, typename T>
__global__ void binary_kernel(const T* a, const T* b, BinaryLayout l, int64_t n, bool dense,
                              T* out) {
  if (dense) {
    PARADIT_GRID_STRIDE(i, n) {
      out[i] = from_float<T>(binary_op<Op>(to_float(a[i]), to_float(b[i])));
    }
    return;
  }
  PARADIT_GRID_STRIDE(i, n) {
    int64_t rem = i, oa = 0, ob = 0;
#pragma unroll
    for (int k = kMaxDims - 1; k >= 0; --k) {
      if (k >= l.nd) continue;
      const int64_t idx = rem % l.shape[k];
      rem /= l.shape[k];
      oa += idx * l.a[k];
      ob += idx * l.b[k];
    }
    out[i] = from_float<T>(binary_op<Op>(to_float(a[oa]), to_float(b[ob])));
  }
}

// ---------------------------------------------------------------- rows: scale, activation

// y contiguous (rows, D) = f(x row r at x + r·row_stride).
template <typename T>
__global__ void scale_kernel(const T* x, int64_t row_stride, int64_t rows, int64_t D, float s,
                             T* y) {
  PARADIT_ROWS_COLS(r, d, rows, D) {
    y[r * D + d] = from_float<T>(to_float(x[r * row_stride + d]) * s);
  }
}

template <Activation A, typename T>
__global__ void activation_kernel(const T* x, int64_t row_stride, int64_t rows, int64_t D, T* y) {
  PARADIT_ROWS_COLS(r, d, rows, D) {
    y[r * D + d] = from_float<T>(activate<A>(to_float(x[r * row_stride + d])));
  }
}

// ---------------------------------------------------------------- modulation, gated residual

// out = x · (1 + scale[b]) + shift[b]   x, out: contiguous (B, S, D) as B·S rows; parameter
// rows of dtype P.
template <typename T, typename P>
__global__ void modulate_kernel(const T* x, const P* shift, int64_t shift_bs, const P* scale,
                                int64_t scale_bs, int64_t S, int64_t rows, int64_t D, T* out) {
  PARADIT_ROWS_COLS(r, d, rows, D) {
    const int64_t b = r / S, i = r * D + d;
    const float sc = to_float(scale[b * scale_bs + d]), sh = to_float(shift[b * shift_bs + d]);
    out[i] = from_float<T>(to_float(x[i]) * (1.0f + sc) + sh);
  }
}

// out = x + gate[b] · y   x, y, out: contiguous (B, S, D) as B·S rows.
template <typename T, typename P>
__global__ void gated_add_kernel(const T* x, const P* gate, int64_t gate_bs, const T* y, int64_t S,
                                 int64_t rows, int64_t D, T* out) {
  PARADIT_ROWS_COLS(r, d, rows, D) {
    const int64_t b = r / S, i = r * D + d;
    out[i] = from_float<T>(to_float(x[i]) + to_float(gate[b * gate_bs + d]) * to_float(y[i]));
  }
}

// ---------------------------------------------------------------- lincomb, affine

struct LincombTerms {
  int terms = 0;
  float coef[kMaxTerms] = {};
  const void* t[kMaxTerms] = {};
  float post_mul = 1.0f, post_div = 1.0f;
};

// out = ((c0·t0 + c1·t1) + c2·t2) + …, each product and sum rounded to f32 (no contraction into
// FMA: __fmul_rn/__fadd_rn are never fused), terms with a null t skipped.
template <typename T>
__global__ void lincomb_kernel(LincombTerms c, int64_t n, T* out) {
  PARADIT_GRID_STRIDE(i, n) {
    float acc = 0.0f;
    bool first = true;
#pragma unroll
    for (int k = 0; k < kMaxTerms; ++k) {
      if (k >= c.terms || c.t[k] == nullptr) continue;
      const float p = __fmul_rn(c.coef[k], to_float(static_cast<const T*>(c.t[k])[i]));
      acc = first ? p : __fadd_rn(acc, p);
      first = false;
    }
    // ·post_mul then /post_div, each rounded (both exact when 1).
    acc = __fdiv_rn(__fmul_rn(acc, c.post_mul), c.post_div);
    out[i] = from_float<T>(acc);
  }
}

// y = min(max(x, lo), hi) over n elements.
template <typename T>
__global__ void clamp_kernel(const T* x, int64_t n, float lo, float hi, T* y) {
  PARADIT_GRID_STRIDE(i, n) { y[i] = from_float<T>(fminf(fmaxf(to_float(x[i]), lo), hi)); }
}

// *count += the non-finite elements among x's n (one atomic per thread that saw any).
template <typename T>
__global__ void count_non_finite_kernel(const T* x, int64_t n, unsigned long long* count) {
  unsigned long long local = 0;
  PARADIT_GRID_STRIDE(i, n) { local += isfinite(to_float(x[i])) ? 0 : 1; }
  if (local != 0) atomicAdd(count, local);
}

// x, y contiguous (outer, C, inner) as outer·C rows of `inner`.
template <AffineKind K, typename T>
__global__ void affine_kernel(const T* x, int64_t C, int64_t rows, int64_t inner, const float* a,
                              const float* b, T* y) {
  PARADIT_ROWS_COLS(r, j, rows, inner) {
    const int64_t c = r % C, i = r * inner + j;
    const float v = to_float(x[i]);
    float r;
    if constexpr (K == AffineKind::kSubMul) {
      r = __fmul_rn(__fsub_rn(v, a[c]), b[c]);  // (x − a)·b
    } else {
      r = __fadd_rn(__fdiv_rn(v, b[c]), a[c]);  // x / b + a, a true division
    }
    y[i] = from_float<T>(r);
  }
}

// ---------------------------------------------------------------- lookups, resampling

// out (n, D) = table[ids[i]] converted.
template <typename T, typename U>
__global__ void embedding_kernel(const T* table, const int64_t* ids, int64_t D, int64_t total,
                                 U* out) {
  PARADIT_GRID_STRIDE(i, total) {
    const int64_t row = i / D, d = i % D;
    out[i] = from_float<U>(to_float(table[ids[row] * D + d]));
  }
}

// y (planes, H·f, W·f) = x (planes, H, W) repeated f×f.
template <typename T>
__global__ void upsample_kernel(const T* x, int64_t H, int64_t W, int f, int64_t n, T* y) {
  const int64_t Wo = W * f, Ho = H * f;
  PARADIT_GRID_STRIDE(i, n) {
    const int64_t j = i % Wo;
    const int64_t rest = i / Wo;
    const int64_t r = rest % Ho, p = rest / Ho;
    y[i] = x[(p * H + r / f) * W + j / f];
  }
}

// ---------------------------------------------------------------- launch.h kernels

template <Activation A, typename T>
__global__ void bias_activation_kernel(T* y, int64_t rows, int64_t cols, int64_t ldy,
                                       const float* bias, bool zero_input) {
  PARADIT_ROWS_COLS(r, c, rows, cols) {
    T* p = y + r * ldy + c;
    float v = zero_input ? 0.0f : to_float(*p);
    if (bias) v += bias[c];
    *p = from_float<T>(activate<A>(v));
  }
}

// y (outer·C rows of `inner`) += bias[row % C].
template <typename T>
__global__ void channel_bias_kernel(T* y, int64_t C, int64_t rows, int64_t inner,
                                    const float* bias) {
  PARADIT_ROWS_COLS(r, j, rows, inner) {
    T* p = y + r * inner + j;
    *p = from_float<T>(to_float(*p) + bias[r % C]);
  }
}

template <typename T>
__global__ void pad_kernel(const T* x, PadGeometry g, int64_t n, T* y) {
  const int64_t To = g.T + g.front + g.back, Ho = g.H + g.top + g.bottom,
                Wo = g.W + g.left + g.right;
  PARADIT_GRID_STRIDE(i, n) {
    int64_t rest = i;
    const int64_t w = rest % Wo;
    rest /= Wo;
    const int64_t h = rest % Ho;
    rest /= Ho;
    const int64_t t = rest % To;
    const int64_t plane = rest / To;  // n·C + c
    int64_t st = t - g.front, sh = h - g.top, sw = w - g.left;
    const bool inside = st >= 0 && st < g.T && sh >= 0 && sh < g.H && sw >= 0 && sw < g.W;
    if (!inside && !g.replicate) {
      y[i] = from_float<T>(0.0f);
      continue;
    }
    st = st < 0 ? 0 : (st >= g.T ? g.T - 1 : st);
    sh = sh < 0 ? 0 : (sh >= g.H ? g.H - 1 : sh);
    sw = sw < 0 ? 0 : (sw >= g.W ? g.W - 1 : sw);
    y[i] = x[((plane * g.T + st) * g.H + sh) * g.W + sw];
  }
}

}  // namespace

// ---------------------------------------------------------------- bodies

void copy(const CopyArgs& a) {
  const int64_t n = numel(a.ndim, a.shape);
  if (n == 0) return;
  const MergedDims<2> m = merge_dims<2>(a.ndim, a.shape, {a.src_strides, a.dst_strides});
  const bool dense = is_dense(m, 0) && is_dense(m, 1);
  if (a.src_dtype == a.dst_dtype && dense) {
    PARADIT_CUDA_CHECK(cudaMemcpyAsync(a.dst, a.src,
                                       static_cast<size_t>(n) * dtype_size(a.dst_dtype),
                                       cudaMemcpyDeviceToDevice, current_stream()));
    return;
  }
  CopyLayout l;
  l.nd = m.nd;
  for (int k = 0; k < m.nd; ++k) {
    l.shape[k] = m.shape[k];
    l.src[k] = m.strides[0][k];
    l.dst[k] = m.strides[1][k];
  }
  if (a.src_dtype == a.dst_dtype) {
    // Any dtype, moved as unsigned integers of the element size.
    switch (dtype_size(a.dst_dtype)) {
      case 1:
        return launch_copy<uint8_t, uint8_t>(a.dst, a.src, l, n, dense);
      case 2:
        return launch_copy<uint16_t, uint16_t>(a.dst, a.src, l, n, dense);
      case 4:
        return launch_copy<uint32_t, uint32_t>(a.dst, a.src, l, n, dense);
      case 8:
        return launch_copy<uint64_t, uint64_t>(a.dst, a.src, l, n, dense);
      default:
        fail("copy: element size ", dtype_size(a.dst_dtype), " of ", core::dtype_name(a.dst_dtype),
             " is not supported on CUDA");
    }
  }
  auto with_dst = [&]<typename D>(D) {
    dispatch_copy_source(a.src_dtype, a.dst_dtype,
                         [&]<typename S>(S) { launch_copy<D, S>(a.dst, a.src, l, n, dense); });
  };
  switch (a.dst_dtype) {
    case DType::F32:
      return with_dst(float{});
    case DType::BF16:
      return with_dst(__nv_bfloat16{});
    case DType::F16:
      return with_dst(__half{});
    case DType::F64:
      return with_dst(double{});
    case DType::Bool:
      return with_dst(BoolByte{});
    default:
      fail("copy: conversion from ", core::dtype_name(a.src_dtype), " to ",
           core::dtype_name(a.dst_dtype), " is not supported on CUDA");
  }
}

void fill(const FillArgs& a) {
  if (a.n == 0) return;
  const size_t bytes = static_cast<size_t>(a.n) * dtype_size(a.dtype);
  if (a.value == 0.0 && !std::signbit(a.value)) {
    // +0 is all zero bits in every dtype.
    PARADIT_CUDA_CHECK(cudaMemsetAsync(a.x, 0, bytes, current_stream()));
    return;
  }
  switch (a.dtype) {
    case DType::F32:
      return launch_fill<float>(a.x, a.n, static_cast<float>(a.value));
    case DType::BF16:
      return launch_fill<uint16_t>(a.x, a.n, core::f32_to_bf16(static_cast<float>(a.value)));
    case DType::F16:
      return launch_fill<uint16_t>(a.x, a.n, core::f32_to_f16(static_cast<float>(a.value)));
    case DType::F64:
      return launch_fill<double>(a.x, a.n, a.value);
    case DType::I64:
      return launch_fill<int64_t>(a.x, a.n, static_cast<int64_t>(a.value));
    case DType::I32:
      return launch_fill<int32_t>(a.x, a.n, static_cast<int32_t>(a.value));
    case DType::I16:
      return launch_fill<int16_t>(a.x, a.n, static_cast<int16_t>(a.value));
    case DType::I8:
      return launch_fill<int8_t>(a.x, a.n, static_cast<int8_t>(a.value));
    case DType::U8:
      return launch_fill<uint8_t>(a.x, a.n, static_cast<uint8_t>(a.value));
    case DType::Bool:
      return launch_fill<uint8_t>(a.x, a.n, uint8_t{a.value != 0.0});
    default:
      fail("fill: dtype ", core::dtype_name(a.dtype), " is not supported on CUDA");
  }
}

void binary(const BinaryArgs& a) {
  const int64_t n = numel(a.ndim, a.shape);
  if (n == 0) return;
  int64_t out_strides[kMaxDims];
  contiguous_strides(a.ndim, a.shape, out_strides);
  const MergedDims<3> m = merge_dims<3>(a.ndim, a.shape, {out_strides, a.a_strides, a.b_strides});
  BinaryLayout l;
  l.nd = m.nd;
  for (int k = 0; k < m.nd; ++k) {
    l.shape[k] = m.shape[k];
    l.a[k] = m.strides[1][k];
    l.b[k] = m.strides[2][k];
  }
  const bool dense = is_dense(m, 1) && is_dense(m, 2);
  dispatch_float(a.dtype, "binary", [&]<typename T>(T) {
    const T* pa = static_cast<const T*>(a.a);
    const T* pb = static_cast<const T*>(a.b);
    T* po = static_cast<T*>(a.out);
    const unsigned grid = grid_for(n, kThreads);
    switch (a.op) {
      case BinaryOp::kAdd:
        binary_kernel<BinaryOp::kAdd, T>
            <<<grid, kThreads, 0, current_stream()>>>(pa, pb, l, n, dense, po);
        break;
      case BinaryOp::kSub:
        binary_kernel<BinaryOp::kSub, T>
            <<<grid, kThreads, 0, current_stream()>>>(pa, pb, l, n, dense, po);
        break;
      case BinaryOp::kMul:
        binary_kernel<BinaryOp::kMul, T>
            <<<grid, kThreads, 0, current_stream()>>>(pa, pb, l, n, dense, po);
        break;
      case BinaryOp::kDiv:
        binary_kernel<BinaryOp::kDiv, T>
            <<<grid, kThreads, 0, current_stream()>>>(pa, pb, l, n, dense, po);
        break;
    }
    PARADIT_CUDA_CHECK_LAUNCH("binary_kernel");
  });
}

void scale(const ScaleArgs& a) {
  const int64_t n = a.rows * a.D;
  if (n == 0) return;
  const int threads = rows_cols_threads(a.D);
  const dim3 grid = rows_cols_grid(a.rows, a.D, threads);
  dispatch_float(a.dtype, "scale", [&]<typename T>(T) {
    scale_kernel<T><<<grid, threads, 0, current_stream()>>>(
        static_cast<const T*>(a.x), a.row_stride, a.rows, a.D, a.s, static_cast<T*>(a.y));
    PARADIT_CUDA_CHECK_LAUNCH("scale_kernel");
  });
}

void activation(const ActivationArgs& a) {
  const int64_t n = a.rows * a.D;
  if (n == 0) return;
  const int threads = rows_cols_threads(a.D);
  const dim3 grid = rows_cols_grid(a.rows, a.D, threads);
  dispatch_float(a.dtype, "activation", [&]<typename T>(T) {
    dispatch_activation(a.act, [&](auto act) {
      activation_kernel<decltype(act)::value, T><<<grid, threads, 0, current_stream()>>>(
          static_cast<const T*>(a.x), a.row_stride, a.rows, a.D, static_cast<T*>(a.y));
      PARADIT_CUDA_CHECK_LAUNCH("activation_kernel");
    });
  });
}

void modulate(const ModulateArgs& a) {
  const int64_t n = a.B * a.S * a.D;
  if (n == 0) return;
  const int threads = rows_cols_threads(a.D);
  const dim3 grid = rows_cols_grid(a.B * a.S, a.D, threads);
  dispatch_float(a.dtype, "modulate", [&]<typename T>(T) {
    dispatch_float(a.param_dtype, "modulate (shift/scale)", [&]<typename P>(P) {
      modulate_kernel<T, P><<<grid, threads, 0, current_stream()>>>(
          static_cast<const T*>(a.x), static_cast<const P*>(a.shift), a.shift_bstride,
          static_cast<const P*>(a.scale), a.scale_bstride, a.S, a.B * a.S, a.D,
          static_cast<T*>(a.out));
      PARADIT_CUDA_CHECK_LAUNCH("modulate_kernel");
    });
  });
}

void gated_add(const GatedAddArgs& a) {
  const int64_t n = a.B * a.S * a.D;
  if (n == 0) return;
  const int threads = rows_cols_threads(a.D);
  const dim3 grid = rows_cols_grid(a.B * a.S, a.D, threads);
  dispatch_float(a.dtype, "gated_add", [&]<typename T>(T) {
    dispatch_float(a.gate_dtype, "gated_add (gate)", [&]<typename P>(P) {
      gated_add_kernel<T, P><<<grid, threads, 0, current_stream()>>>(
          static_cast<const T*>(a.x), static_cast<const P*>(a.gate), a.gate_bstride,
          static_cast<const T*>(a.y), a.S, a.B * a.S, a.D, static_cast<T*>(a.out));
      PARADIT_CUDA_CHECK_LAUNCH("gated_add_kernel");
    });
  });
}

void lincomb(const LincombArgs& a) {
  if (a.n == 0) return;
  PARADIT_CHECK(a.terms >= 0 && a.terms <= kMaxTerms, "lincomb: ", a.terms, " terms (at most ",
                kMaxTerms, ")");
  LincombTerms c;
  c.terms = a.terms;
  for (int k = 0; k < a.terms; ++k) {
    c.coef[k] = a.coef[k];
    c.t[k] = a.t[k];
  }
  c.post_mul = a.post_mul;
  c.post_div = a.post_div;
  dispatch_float(a.dtype, "lincomb", [&]<typename T>(T) {
    lincomb_kernel<T><<<grid_for(a.n, kThreads), kThreads, 0, current_stream()>>>(
        c, a.n, static_cast<T*>(a.out));
    PARADIT_CUDA_CHECK_LAUNCH("lincomb_kernel");
  });
}

void clamp(const ClampArgs& a) {
  if (a.n == 0) return;
  dispatch_float(a.dtype, "clamp", [&]<typename T>(T) {
    clamp_kernel<T><<<grid_for(a.n, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<const T*>(a.x), a.n, a.lo, a.hi, static_cast<T*>(a.y));
    PARADIT_CUDA_CHECK_LAUNCH("clamp_kernel");
  });
}

void count_non_finite(const CountNonFiniteArgs& a) {
  *a.count = 0;
  if (a.n == 0) return;
  const auto counter = allocate_storage(sizeof(unsigned long long));
  auto* d_count = static_cast<unsigned long long*>(counter->data);
  PARADIT_CUDA_CHECK(cudaMemsetAsync(d_count, 0, sizeof(unsigned long long), current_stream()));
  dispatch_float(a.dtype, "count_non_finite", [&]<typename T>(T) {
    count_non_finite_kernel<T><<<grid_for(a.n, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<const T*>(a.x), a.n, d_count);
    PARADIT_CUDA_CHECK_LAUNCH("count_non_finite_kernel");
  });
  unsigned long long host = 0;
  copy_bytes(&host, core::Device::CPU, d_count, core::Device::CUDA, sizeof(host));
  *a.count = static_cast<int64_t>(host);
}

void affine(const AffineArgs& a) {
  const int64_t n = a.outer * a.C * a.inner;
  if (n == 0) return;
  const int64_t rows = a.outer * a.C;
  const int threads = rows_cols_threads(a.inner);
  const dim3 grid = rows_cols_grid(rows, a.inner, threads);
  dispatch_float(a.dtype, "affine", [&]<typename T>(T) {
    const T* x = static_cast<const T*>(a.x);
    T* y = static_cast<T*>(a.y);
    if (a.kind == AffineKind::kSubMul) {
      affine_kernel<AffineKind::kSubMul, T>
          <<<grid, threads, 0, current_stream()>>>(x, a.C, rows, a.inner, a.a, a.b, y);
    } else {
      affine_kernel<AffineKind::kDivAdd, T>
          <<<grid, threads, 0, current_stream()>>>(x, a.C, rows, a.inner, a.a, a.b, y);
    }
    PARADIT_CUDA_CHECK_LAUNCH("affine_kernel");
  });
}

void embedding(const EmbeddingArgs& a) {
  const int64_t total = a.n * a.D;
  if (total == 0) return;
  dispatch_float(a.table_dtype, "embedding (table)", [&]<typename T>(T) {
    dispatch_float(a.out_dtype, "embedding (out)", [&]<typename U>(U) {
      embedding_kernel<T, U><<<grid_for(total, kThreads), kThreads, 0, current_stream()>>>(
          static_cast<const T*>(a.table), a.ids, a.D, total, static_cast<U*>(a.out));
      PARADIT_CUDA_CHECK_LAUNCH("embedding_kernel");
    });
  });
}

void upsample_nearest2d(const UpsampleArgs& a) {
  const int64_t n = a.planes * a.H * a.factor * a.W * a.factor;
  if (n == 0) return;
  dispatch_float(a.dtype, "upsample_nearest2d", [&]<typename T>(T) {
    upsample_kernel<T><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<const T*>(a.x), a.H, a.W, a.factor, n, static_cast<T*>(a.y));
    PARADIT_CUDA_CHECK_LAUNCH("upsample_kernel");
  });
}

// ---------------------------------------------------------------- launch.h

namespace detail {

void bias_activation(DType dtype, void* y, int64_t rows, int64_t cols, int64_t ldy,
                     const float* bias, Activation act, bool zero_input) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  const int threads = rows_cols_threads(cols);
  const dim3 grid = rows_cols_grid(rows, cols, threads);
  dispatch_float(dtype, "linear (bias/activation)", [&]<typename T>(T) {
    dispatch_activation(act, [&](auto a) {
      bias_activation_kernel<decltype(a)::value, T><<<grid, threads, 0, current_stream()>>>(
          static_cast<T*>(y), rows, cols, ldy, bias, zero_input);
      PARADIT_CUDA_CHECK_LAUNCH("bias_activation_kernel");
    });
  });
}

void channel_bias(DType dtype, void* y, int64_t outer, int64_t C, int64_t inner,
                  const float* bias) {
  const int64_t n = outer * C * inner;
  if (n == 0 || bias == nullptr) return;
  const int threads = rows_cols_threads(inner);
  const dim3 grid = rows_cols_grid(outer * C, inner, threads);
  dispatch_float(dtype, "conv (bias)", [&]<typename T>(T) {
    channel_bias_kernel<T>
        <<<grid, threads, 0, current_stream()>>>(static_cast<T*>(y), C, outer * C, inner, bias);
    PARADIT_CUDA_CHECK_LAUNCH("channel_bias_kernel");
  });
}

void pad_volume(DType dtype, const void* x, const PadGeometry& g, void* y) {
  const int64_t n =
      g.N * g.C * (g.T + g.front + g.back) * (g.H + g.top + g.bottom) * (g.W + g.left + g.right);
  if (n == 0) return;
  dispatch_float(dtype, "conv (padding)", [&]<typename T>(T) {
    pad_kernel<T><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<const T*>(x), g, n, static_cast<T*>(y));
    PARADIT_CUDA_CHECK_LAUNCH("pad_kernel");
  });
}

}  // namespace detail

}  // namespace paradit::backend::cuda
