#pragma once
// Device-side helpers shared by the backend's .cu files: element conversions, warp and block
// reductions, the activations of args.h, grid-stride loops and dtype dispatch for the host
// launchers.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "backend/args.h"
#include "core/dtype.h"
#include "core/error.h"

namespace paradit::backend::cuda::detail {

// ---------------------------------------------------------------- conversions
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

// The 16- and 32-bit float types, whose math runs in f32.
template <typename T>
inline constexpr bool kIsF32Family =
    std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

// ---------------------------------------------------------------- activations (args.h)
__device__ __forceinline__ float sigmoid_mul(float v, float k) { return v / (1.0f + expf(-k * v)); }

template <Activation A>
__device__ __forceinline__ float activate(float v) {
  if constexpr (A == Activation::kGeluErf) {
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  } else if constexpr (A == Activation::kGeluTanh) {
    constexpr float kC = 0.79788456080286536f;  // √(2/π)
    return 0.5f * v * (1.0f + tanhf(kC * (v + 0.044715f * v * v * v)));
  } else if constexpr (A == Activation::kSilu) {
    return sigmoid_mul(v, 1.0f);
  } else if constexpr (A == Activation::kQuickGelu) {
    return sigmoid_mul(v, 1.702f);
  } else if constexpr (A == Activation::kRelu) {
    return v > 0.0f ? v : 0.0f;
  } else if constexpr (A == Activation::kExp) {
    return expf(v);
  } else if constexpr (A == Activation::kSqrt) {
    return sqrtf(v);
  } else if constexpr (A == Activation::kTanh) {
    return tanhf(v);
  } else {
    return v;
  }
}

// Calls fn(std::integral_constant<Activation, A>{}) for the runtime activation `a`.
template <typename Fn>
void dispatch_activation(Activation a, Fn&& fn) {
  switch (a) {
    case Activation::kNone:
      fn(std::integral_constant<Activation, Activation::kNone>{});
      return;
    case Activation::kGeluErf:
      fn(std::integral_constant<Activation, Activation::kGeluErf>{});
      return;
    case Activation::kGeluTanh:
      fn(std::integral_constant<Activation, Activation::kGeluTanh>{});
      return;
    case Activation::kSilu:
      fn(std::integral_constant<Activation, Activation::kSilu>{});
      return;
    case Activation::kQuickGelu:
      fn(std::integral_constant<Activation, Activation::kQuickGelu>{});
      return;
    case Activation::kRelu:
      fn(std::integral_constant<Activation, Activation::kRelu>{});
      return;
    case Activation::kExp:
      fn(std::integral_constant<Activation, Activation::kExp>{});
      return;
    case Activation::kSqrt:
      fn(std::integral_constant<Activation, Activation::kSqrt>{});
      return;
    case Activation::kTanh:
      fn(std::integral_constant<Activation, Activation::kTanh>{});
      return;
  }
  fail("activation ", static_cast<int>(a), " is not known to the CUDA backend");
}

// ---------------------------------------------------------------- reductions
struct SumOp {
  template <typename V>
  __device__ __forceinline__ V operator()(V a, V b) const {
    return a + b;
  }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename V, typename Op>
__device__ __forceinline__ V warp_reduce(V v, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Reduction over the whole block (blockDim.x a multiple of 32, ≤ 1024); every thread gets the
// result. May be called several times in a row.
template <typename V, typename Op>
__device__ __forceinline__ V block_reduce(V v, Op op, V identity) {
  __shared__ V scratch[33];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  v = warp_reduce(v, op);
  __syncthreads();  // a previous call may still be reading scratch[32]
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    V w = lane < warps ? scratch[lane] : identity;
    w = warp_reduce(w, op);
    if (lane == 0) scratch[32] = w;
  }
  __syncthreads();
  return scratch[32];
}

// ---------------------------------------------------------------- loops
// for (i = first index of this thread; i < n; i += grid size)
#define PARADIT_GRID_STRIDE(i, n)                                           \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += int64_t{gridDim.x} * blockDim.x)

// Rows × columns loops without a division per element: blockIdx.y strides over the rows,
// the x dimension of the grid over the columns. Launch with rows_cols_grid().
#define PARADIT_ROWS_COLS(r, c, rows, cols)                                      \
  for (int64_t r = blockIdx.y; r < (rows); r += gridDim.y)                       \
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < (cols); \
         c += int64_t{gridDim.x} * blockDim.x)

// Threads per block for rows of `cols` elements: 256, or fewer (a multiple of 32) for short rows.
inline int rows_cols_threads(int64_t cols) {
  if (cols >= 256) return 256;
  return cols <= 32 ? 32 : static_cast<int>((cols + 31) / 32 * 32);
}

inline dim3 rows_cols_grid(int64_t rows, int64_t cols, int threads) {
  const int64_t x = (cols + threads - 1) / threads;
  const int64_t y = rows < 65535 ? rows : 65535;
  // Enough blocks to fill the device a few times over; the loops cover the rest.
  const int64_t max_x = y >= 1024 ? 1 : 1024;
  return dim3(static_cast<unsigned>(x < 1 ? 1 : (x > max_x ? max_x : x)),
              static_cast<unsigned>(y < 1 ? 1 : y));
}

// ---------------------------------------------------------------- dispatch
// Calls fn(T{}) with T the CUDA element type of a float dtype; other dtypes fail naming `op`.
template <typename Fn>
void dispatch_float(core::DType t, const char* op, Fn&& fn) {
  switch (t) {
    case core::DType::F32:
      fn(float{});
      return;
    case core::DType::BF16:
      fn(__nv_bfloat16{});
      return;
    case core::DType::F16:
      fn(__half{});
      return;
    default:
      fail(op, ": dtype ", core::dtype_name(t), " is not supported on CUDA (F32, BF16, F16)");
  }
}

}  // namespace paradit::backend::cuda::detail
