// Row and plane CUDA bodies (ops.h): layer/RMS norm with the fused adaLN modulation, softmax,
// rotary embedding, group norm (statistics in double, apply with a fused activation), and the
// sums of a relative L1 distance (in double, like the group statistics).

#include <cmath>
#include <memory>

#include "backend/cuda/allocator.h"
#include "backend/cuda/check.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/layout.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda {

using namespace detail;

namespace {

int row_threads(int64_t D) { return D >= 2048 ? 512 : (D >= 512 ? 256 : 128); }

// ---------------------------------------------------------------- layer / RMS norm

// Per-row affine and modulation parameters; shift and scale of dtype P.
template <typename P>
struct NormParams {
  const float* weight = nullptr;
  const float* bias = nullptr;
  const P* shift = nullptr;
  const P* scale = nullptr;
  int64_t shift_bs = 0, scale_bs = 0;
  int64_t rows_per_batch = 1;
  float eps = 0.0f;
};

// One block per row. y: contiguous (rows, D); x rows at x + r·row_stride. Two passes over the
// row for the statistics (mean, then Σ(x − mean)²) so rows with a large mean keep their accuracy.
template <bool kRms, typename T, typename P>
__global__ void norm_kernel(const T* x, int64_t row_stride, int64_t D, NormParams<P> p, T* y) {
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
  const P* shift = p.shift ? p.shift + b * p.shift_bs : nullptr;
  const P* scale = p.scale ? p.scale + b * p.scale_bs : nullptr;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    float v = (to_float(xr[i]) - mean) * rstd;
    if (p.weight) v *= p.weight[i];
    if (p.bias) v += p.bias[i];
    if (scale) v *= 1.0f + to_float(scale[i]);
    if (shift) v += to_float(shift[i]);
    yr[i] = from_float<T>(v);
  }
}

// ---------------------------------------------------------------- softmax

// One block per row. y: contiguous (rows, D) = softmax of each row of x.
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

// ---------------------------------------------------------------- rotary embedding

struct RopeLayout {
  int64_t S = 0, H = 0, D = 0;
  int64_t sb = 0, ss = 0, sh = 0;  // element strides of x's B, S, H dims
};

// One thread per rotated pair: rows (b, s) of x, columns (h, pair). out: contiguous
// (B, S, H, D); cos, sin: contiguous (S, D) F32.
template <bool kInterleaved, typename T>
__global__ void rope_kernel(const T* x, RopeLayout l, const float* cos, const float* sin,
                            int64_t rows, T* out) {
  const int half = static_cast<int>(l.D / 2);
  const int64_t cols = l.H * half;  // < 2³¹: int math below
  PARADIT_ROWS_COLS(r, c, rows, cols) {
    const int64_t b = r / l.S, s = r % l.S;
    const int h = static_cast<int>(c) / half, p = static_cast<int>(c) % half;
    const T* xr = x + b * l.sb + s * l.ss + h * l.sh;
    T* o = out + (r * l.H + h) * l.D;
    const float* cs = cos + s * l.D;
    const float* sn = sin + s * l.D;
    // Interleaved: pairs (2p, 2p+1) as diffusers' apply_rotary_emb (Flux); half-split: pairs
    // (p, p + D/2), rotate_half.
    const int i0 = kInterleaved ? 2 * p : p;
    const int i1 = kInterleaved ? 2 * p + 1 : p + half;
    const float x0 = to_float(xr[i0]), x1 = to_float(xr[i1]);
    o[i0] = from_float<T>(x0 * cs[i0] - x1 * sn[i0]);
    o[i1] = from_float<T>(x1 * cs[i1] + x0 * sn[i1]);
  }
}

// ---------------------------------------------------------------- group norm

// The statistics run over each (n, group)'s len = C/groups·L contiguous elements, cut into
// chunks so that a few long groups still fill the device: per chunk a partial sum in double
// (pass 1: Σx; pass 2: Σ(x − mean)²), then one thread per group adds its chunks in order.
constexpr int64_t kGroupChunk = 1 << 14;
constexpr int kStatThreads = 256;

// grid (x: chunks, y: groups, strided): partial[g·chunks + c] = Σ over chunk c of group g of
// (x − mean[g])² (centered) or x.
template <bool kCentered, typename T>
__global__ void group_partial_kernel(const T* x, int64_t len, int64_t chunks, int64_t count,
                                     const double* mean, double* partial) {
  const int64_t c = blockIdx.x;
  const int64_t begin = c * kGroupChunk;
  const int64_t end = begin + kGroupChunk < len ? begin + kGroupChunk : len;
  for (int64_t g = blockIdx.y; g < count; g += gridDim.y) {
    const T* xg = x + g * len;
    const double m = kCentered ? mean[g] : 0.0;
    double s = 0.0;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      const double v = static_cast<double>(to_float(xg[i]));
      s += kCentered ? (v - m) * (v - m) : v;
    }
    s = block_reduce(s, SumOp{}, 0.0);
    if (threadIdx.x == 0) partial[g * chunks + c] = s;
  }
}

// out[g] = Σ_c partial[g·chunks + c] / len, one thread per group.
__global__ void group_finish_kernel(const double* partial, int64_t chunks, int64_t count,
                                    int64_t len, double* out) {
  const int64_t g = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (g >= count) return;
  double s = 0.0;
  for (int64_t c = 0; c < chunks; ++c) s += partial[g * chunks + c];
  out[g] = s / static_cast<double>(len);
}

// ---------------------------------------------------------------- L1 sums
// One block per chunk of kGroupChunk elements: partial[2c] = Σ|x − ref|, partial[2c + 1] = Σ|ref|
// over chunk c, in double.
template <typename T>
__global__ void l1_partial_kernel(const T* x, const T* ref, int64_t n, double* partial) {
  const int64_t c = blockIdx.x;
  const int64_t begin = c * kGroupChunk;
  const int64_t end = begin + kGroupChunk < n ? begin + kGroupChunk : n;
  double d = 0.0, r = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double xv = static_cast<double>(to_float(x[i]));
    const double rv = static_cast<double>(to_float(ref[i]));
    d += fabs(xv - rv);
    r += fabs(rv);
  }
  d = block_reduce(d, SumOp{}, 0.0);
  r = block_reduce(r, SumOp{}, 0.0);
  if (threadIdx.x == 0) {
    partial[2 * c] = d;
    partial[2 * c + 1] = r;
  }
}

// out[k] = Σ_c partial[2c + k] in chunk order (one thread each): a fixed order, so the result
// does not depend on how the blocks were scheduled.
__global__ void l1_finish_kernel(const double* partial, int64_t chunks, double* out) {
  const int k = threadIdx.x;
  if (k >= 2) return;
  double s = 0.0;
  for (int64_t c = 0; c < chunks; ++c) s += partial[2 * c + k];
  out[k] = s;
}

// grid (x: blocks over L, y: planes n·C + c, strided). Per plane, the CPU body's folding:
// y = (x − mean_f)·a + shift with a = rstd·w, shift = b − (mean − mean_f)·rstd·w in double,
// then the activation.
template <Activation A, typename T>
__global__ void group_apply_kernel(const T* x, int64_t C, int64_t L, int64_t cpg, int64_t groups,
                                   int64_t planes, const double* mean, const double* var, float eps,
                                   const float* weight, const float* bias, T* y) {
  for (int64_t p = blockIdx.y; p < planes; p += gridDim.y) {
    const int64_t n = p / C, c = p % C;
    const int64_t gi = n * groups + c / cpg;
    const double rstd = 1.0 / sqrt(var[gi] + static_cast<double>(eps));
    const double w = weight ? weight[c] : 1.0;
    const double b = bias ? bias[c] : 0.0;
    const float a = static_cast<float>(rstd * w);
    const float mean_f = static_cast<float>(mean[gi]);
    const float shift = static_cast<float>(b - (mean[gi] - mean_f) * rstd * w);
    const T* xp = x + p * L;
    T* yp = y + p * L;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < L;
         i += int64_t{gridDim.x} * blockDim.x)
      yp[i] = from_float<T>(activate<A>((to_float(xp[i]) - mean_f) * a + shift));
  }
}

// ---------------------------------------------------------------- channel norm

// One thread per position (n, l): the sum of squares over the C channels (stride L) in double,
// the norm rounded to f32 and clamped to eps, then y = x / norm · scale · gamma[c] — the CPU
// body's order of operations. Positions of one n are adjacent, so a warp reads coalesced rows.
template <typename T>
__global__ void channel_norm_kernel(const T* x, int64_t C, int64_t L, int64_t positions,
                                    const float* gamma, float scale, float eps, T* y) {
  PARADIT_GRID_STRIDE(p, positions) {
    const int64_t n = p / L, l = p % L;
    const T* xp = x + n * C * L + l;
    T* yp = y + n * C * L + l;
    double ss = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      const double v = static_cast<double>(to_float(xp[c * L]));
      ss += v * v;
    }
    const float denom = fmaxf(static_cast<float>(sqrt(ss)), eps);
    for (int64_t c = 0; c < C; ++c) {
      yp[c * L] = from_float<T>(__fmul_rn(__fmul_rn(__fdiv_rn(to_float(xp[c * L]), denom), scale),
                                          gamma[c]));
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- bodies

void channel_norm(const ChannelNormArgs& a) {
  const int64_t positions = a.N * a.L;
  if (positions == 0 || a.C == 0) return;
  constexpr int kThreads = 256;
  dispatch_float(a.dtype, "channel_norm", [&]<typename T>(T) {
    channel_norm_kernel<T><<<grid_for(positions, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<const T*>(a.x), a.C, a.L, positions, a.gamma, a.scale, a.eps,
        static_cast<T*>(a.y));
    PARADIT_CUDA_CHECK_LAUNCH("channel_norm_kernel");
  });
}

void norm(const NormArgs& a) {
  if (a.rows == 0 || a.D == 0) return;
  PARADIT_CHECK(a.rows <= 0x7fffffff, "norm: ", a.rows, " rows exceed the grid");
  const int threads = row_threads(a.D);
  const unsigned grid = static_cast<unsigned>(a.rows);
  const bool modulated = a.shift != nullptr || a.scale != nullptr;
  dispatch_float(a.dtype, "norm", [&]<typename T>(T) {
    // Without modulation the parameter dtype is immaterial: instantiate it as T.
    dispatch_float(modulated ? a.mod_dtype : a.dtype, "norm (shift/scale)", [&]<typename P>(P) {
      NormParams<P> p;
      p.weight = a.weight;
      p.bias = a.kind == NormKind::kLayer ? a.bias : nullptr;
      p.shift = static_cast<const P*>(a.shift);
      p.scale = static_cast<const P*>(a.scale);
      p.shift_bs = a.shift_bstride;
      p.scale_bs = a.scale_bstride;
      p.rows_per_batch = a.rows_per_batch > 0 ? a.rows_per_batch : 1;
      p.eps = a.eps;
      const T* x = static_cast<const T*>(a.x);
      T* y = static_cast<T*>(a.y);
      if (a.kind == NormKind::kRms) {
        norm_kernel<true, T, P><<<grid, threads, 0, current_stream()>>>(x, a.row_stride, a.D, p, y);
      } else {
        norm_kernel<false, T, P>
            <<<grid, threads, 0, current_stream()>>>(x, a.row_stride, a.D, p, y);
      }
      PARADIT_CUDA_CHECK_LAUNCH("norm_kernel");
    });
  });
}

void softmax(const SoftmaxArgs& a) {
  if (a.rows == 0 || a.D == 0) return;
  PARADIT_CHECK(a.rows <= 0x7fffffff, "softmax: ", a.rows, " rows exceed the grid");
  const int threads = row_threads(a.D);
  dispatch_float(a.dtype, "softmax", [&]<typename T>(T) {
    softmax_kernel<T><<<static_cast<unsigned>(a.rows), threads, 0, current_stream()>>>(
        static_cast<const T*>(a.x), a.row_stride, a.D, static_cast<T*>(a.y));
    PARADIT_CUDA_CHECK_LAUNCH("softmax_kernel");
  });
}

void rope(const RopeArgs& a) {
  const int64_t rows = a.B * a.S, cols = a.H * (a.D / 2);
  if (rows == 0 || cols == 0) return;
  PARADIT_CHECK(cols <= 0x7fffffff, "rope: ", a.H, " heads of ", a.D, " exceed int32 indexing");
  const RopeLayout l{a.S, a.H, a.D, a.stride_b, a.stride_s, a.stride_h};
  const int threads = rows_cols_threads(cols);
  const dim3 grid = rows_cols_grid(rows, cols, threads);
  dispatch_float(a.dtype, "rope", [&]<typename T>(T) {
    const T* x = static_cast<const T*>(a.x);
    T* out = static_cast<T*>(a.out);
    if (a.interleaved) {
      rope_kernel<true, T><<<grid, threads, 0, current_stream()>>>(x, l, a.cos, a.sin, rows, out);
    } else {
      rope_kernel<false, T><<<grid, threads, 0, current_stream()>>>(x, l, a.cos, a.sin, rows, out);
    }
    PARADIT_CUDA_CHECK_LAUNCH("rope_kernel");
  });
}

void group_norm_stats(const GroupNormStatsArgs& a) {
  const int64_t count = a.N * a.groups;
  if (count == 0) return;
  const int64_t len = a.C / a.groups * a.L;  // a group's channels are adjacent in memory
  if (len == 0) {
    PARADIT_CUDA_CHECK(cudaMemsetAsync(a.mean, 0, count * sizeof(double), current_stream()));
    PARADIT_CUDA_CHECK(cudaMemsetAsync(a.var, 0, count * sizeof(double), current_stream()));
    return;
  }
  const int64_t chunks = (len + kGroupChunk - 1) / kGroupChunk;
  // Scratch for the partial sums; freed after enqueuing (the caching allocator hands the block
  // out again only to later work on this stream).
  const auto partial = allocate_storage(static_cast<size_t>(count * chunks) * sizeof(double));
  double* part = static_cast<double*>(partial->data);
  PARADIT_CHECK(chunks <= 0x7fffffff, "group_norm: groups of ", len, " elements exceed the grid");
  const dim3 grid(static_cast<unsigned>(chunks),
                  static_cast<unsigned>(std::min<int64_t>(count, 65535)));
  const unsigned finish_grid = static_cast<unsigned>((count + 127) / 128);
  dispatch_float(a.dtype, "group_norm", [&]<typename T>(T) {
    const T* x = static_cast<const T*>(a.x);
    group_partial_kernel<false, T>
        <<<grid, kStatThreads, 0, current_stream()>>>(x, len, chunks, count, nullptr, part);
    PARADIT_CUDA_CHECK_LAUNCH("group_partial_kernel (sum)");
    group_finish_kernel<<<finish_grid, 128, 0, current_stream()>>>(part, chunks, count, len,
                                                                   a.mean);
    PARADIT_CUDA_CHECK_LAUNCH("group_finish_kernel (mean)");
    group_partial_kernel<true, T>
        <<<grid, kStatThreads, 0, current_stream()>>>(x, len, chunks, count, a.mean, part);
    PARADIT_CUDA_CHECK_LAUNCH("group_partial_kernel (centered)");
    group_finish_kernel<<<finish_grid, 128, 0, current_stream()>>>(part, chunks, count, len, a.var);
    PARADIT_CUDA_CHECK_LAUNCH("group_finish_kernel (var)");
  });
}

void l1_sums(const L1SumsArgs& a) {
  if (a.n == 0) {
    PARADIT_CUDA_CHECK(cudaMemsetAsync(a.out, 0, 2 * sizeof(double), current_stream()));
    return;
  }
  const int64_t chunks = (a.n + kGroupChunk - 1) / kGroupChunk;
  PARADIT_CHECK(chunks <= 0x7fffffff, "l1_sums: ", a.n, " elements exceed the grid");
  // Scratch freed after enqueuing (the caching allocator hands it out again only to later work
  // on this stream).
  const auto partial = allocate_storage(static_cast<size_t>(2 * chunks) * sizeof(double));
  double* part = static_cast<double*>(partial->data);
  dispatch_float(a.dtype, "l1_sums", [&]<typename T>(T) {
    l1_partial_kernel<T><<<static_cast<unsigned>(chunks), kStatThreads, 0, current_stream()>>>(
        static_cast<const T*>(a.x), static_cast<const T*>(a.ref), a.n, part);
    PARADIT_CUDA_CHECK_LAUNCH("l1_partial_kernel");
  });
  l1_finish_kernel<<<1, 32, 0, current_stream()>>>(part, chunks, a.out);
  PARADIT_CUDA_CHECK_LAUNCH("l1_finish_kernel");
}

void group_norm_apply(const GroupNormApplyArgs& a) {
  const int64_t planes = a.N * a.C;
  if (planes == 0 || a.L == 0) return;
  constexpr int kThreads = 256;
  const int64_t x_blocks = std::min<int64_t>((a.L + kThreads - 1) / kThreads, 1024);
  const dim3 grid(static_cast<unsigned>(x_blocks),
                  static_cast<unsigned>(std::min<int64_t>(planes, 65535)));
  const int64_t cpg = a.C / a.groups;
  dispatch_float(a.dtype, "group_norm", [&]<typename T>(T) {
    dispatch_activation(a.activation, [&](auto act) {
      group_apply_kernel<decltype(act)::value, T><<<grid, kThreads, 0, current_stream()>>>(
          static_cast<const T*>(a.x), a.C, a.L, cpg, a.groups, planes, a.mean, a.var, a.eps,
          a.weight, a.bias, static_cast<T*>(a.y));
      PARADIT_CUDA_CHECK_LAUNCH("group_apply_kernel");
    });
  });
}

}  // namespace paradit::backend::cuda
