// The CUDA attention body (ops.h: attention, attention_backend_for) and paradit's own
// attention kernels; cuDNN's fused attention is in cudnn_attention.cpp (see attention.h).
//
// Flash kernel layout. A block has 4 warps and owns 64 query rows of one (batch, head); warp w
// owns rows 16w..16w+15 and keeps them in registers as mma A fragments for the whole key loop.
// Per tile of 64 keys, each warp computes its 16×64 scores with m16n8k16 MMAs, applies scale,
// key mask and sequence end, updates its running row max m and row sum l, rescales its 16×D
// output accumulator and adds P·V: the f32 score fragments are repacked in registers as the A
// operand (the C layout of two n-tiles is the A layout of one k-step), V's B fragments come
// from shared memory through ldmatrix.trans. Scores are kept in the log2 domain
// (scale·log2 e folded in) so every exponential is one exp2.
//
// mma.sync m16n8k16 fragments (g = lane / 4, t = lane % 4), two 16-bit elements per register,
// the lower index in the low half:
//   A (16×16, row): a0 = (g, 2t..2t+1)  a1 = (g+8, 2t..)  a2 = (g, 2t+8..)  a3 = (g+8, 2t+8..)
//   B (16×8, col):  b0 = (k 2t..2t+1, n g)  b1 = (k 2t+8..2t+9, n g)
//   C (16×8, f32):  c0, c1 = (g, 2t), (g, 2t+1)   c2, c3 = (g+8, 2t), (g+8, 2t+1)

#include <cmath>
#include <memory>
#include <string>

#include "backend/cuda/allocator.h"
#include "backend/cuda/attention.h"
#include "backend/cuda/check.h"
#include "backend/cuda/cudnn_util.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/ops.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda {

using namespace detail;

namespace {

constexpr int kBlockM = 64;  // query rows per block
constexpr int kBlockN = 64;  // keys per tile
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Output of both paradit kernels: out (B, Sq, H, Dv) contiguous; lse, row_max, row_sum
// (B, H, Sq) contiguous or null (row_max given with row_sum: the unnormalized form of args.h).
struct AttentionOut {
  void* out = nullptr;
  float* lse = nullptr;
  float* row_max = nullptr;
  float* row_sum = nullptr;
};

struct FlashParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  AttentionOut o;
  const uint8_t* keep = nullptr;  // (B, Sk) contiguous, 0 = drop; or null
  int64_t q_sb = 0, q_ss = 0, q_sh = 0;
  int64_t k_sb = 0, k_ss = 0, k_sh = 0;
  int64_t v_sb = 0, v_ss = 0, v_sh = 0;
  int Sq = 0, Sk = 0, H = 0;
  float scale_log2 = 0.0f;  // softmax scale · log2(e)
};

// ---- PTX wrappers (sm_80+)

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;  // 0: fill the 16 bytes with zeros
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4_trans(const void* smem, uint32_t& r0, uint32_t& r1,
                                                  uint32_t& r2, uint32_t& r3) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(s));
}

// c += a · b on one 16×8×16 tile.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats as a register of two 16-bit elements, `lo` in the low half.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

__device__ __forceinline__ uint32_t lds32(const void* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// Rows [row0, row0 + kRows) of a (rows, D) matrix (row stride in elements, 16-byte aligned) into
// shared memory with row stride D + 8; rows at or past `limit` become zeros.
template <typename T, int D, int kRows>
__device__ __forceinline__ void load_tile(T* smem, const T* base, int64_t row_stride, int row0,
                                          int limit) {
  constexpr int kStride = D + 8;
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
#pragma unroll
  for (int c = threadIdx.x; c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = c % kChunks * 8;
    const bool valid = row0 + r < limit;
    const T* src = valid ? base + static_cast<int64_t>(row0 + r) * row_stride + col : base;
    cp_async_16(smem + r * kStride + col, src, valid);
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) flash_attention_kernel(FlashParams p) {
  constexpr int kStride = D + 8;  // shared row stride: conflict-free fragment loads
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);  // (kBlockM, kStride)
  T* sK = sQ + kBlockM * kStride;          // 2 stages of (kBlockN, kStride)
  T* sV = sK + 2 * kBlockN * kStride;      // 2 stages of (kBlockN, kStride)

  const int m_block = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const T* q = static_cast<const T*>(p.q) + b * p.q_sb + h * p.q_sh;
  const T* k = static_cast<const T*>(p.k) + b * p.k_sb + h * p.k_sh;
  const T* v = static_cast<const T*>(p.v) + b * p.v_sb + h * p.v_sh;
  const uint8_t* keep = p.keep ? p.keep + static_cast<int64_t>(b) * p.Sk : nullptr;
  const int q0 = m_block * kBlockM;
  const int n_tiles = (p.Sk + kBlockN - 1) / kBlockN;

  load_tile<T, D, kBlockM>(sQ, q, p.q_ss, q0, p.Sq);
  if (n_tiles > 0) {
    load_tile<T, D, kBlockN>(sK, k, p.k_ss, 0, p.Sk);
    load_tile<T, D, kBlockN>(sV, v, p.v_ss, 0, p.Sk);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  // This warp's 16 query rows as A fragments, one per 16-wide slice of the head dim.
  uint32_t qf[D / 16][4];
  {
    const T* sq = sQ + warp * 16 * kStride;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      qf[kk][0] = lds32(sq + g * kStride + kk * 16 + 2 * t);
      qf[kk][1] = lds32(sq + (g + 8) * kStride + kk * 16 + 2 * t);
      qf[kk][2] = lds32(sq + g * kStride + kk * 16 + 8 + 2 * t);
      qf[kk][3] = lds32(sq + (g + 8) * kStride + kk * 16 + 8 + 2 * t);
    }
  }

  float o[D / 8][4];  // output accumulator: 16 rows × D, n-tiles of 8 columns
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY};  // running max of rows g, g + 8 (log2 domain)
  float l_run[2] = {0.0f, 0.0f};            // this thread's part of the running row sums

  for (int j = 0; j < n_tiles; ++j) {
    const int stage = j & 1;
    // Prefetch the next tile into the other stage (freed by the barrier ending iteration j−1).
    if (j + 1 < n_tiles) {
      load_tile<T, D, kBlockN>(sK + (stage ^ 1) * kBlockN * kStride, k, p.k_ss, (j + 1) * kBlockN,
                               p.Sk);
      load_tile<T, D, kBlockN>(sV + (stage ^ 1) * kBlockN * kStride, v, p.v_ss, (j + 1) * kBlockN,
                               p.Sk);
    }
    cp_async_commit();
    cp_async_wait<1>();  // tile j has landed (only the prefetch may be in flight)
    __syncthreads();
    const T* sk = sK + stage * kBlockN * kStride;
    const T* sv = sV + stage * kBlockN * kStride;

    // s = q · kᵀ for 16 rows × 64 keys.
    float s[kBlockN / 8][4];
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
      const T* krow = sk + (nt * 8 + g) * kStride + 2 * t;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        mma_16816<T>(s[nt], qf[kk], lds32(krow + kk * 16), lds32(krow + kk * 16 + 8));
    }

    // Scale into the log2 domain; hide keys past the end and masked keys.
    const int key0 = j * kBlockN;
    const bool check_keys = keep != nullptr || key0 + kBlockN > p.Sk;
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float val = s[nt][e] * p.scale_log2;
        if (check_keys) {
          const int key = key0 + nt * 8 + 2 * t + (e & 1);
          const bool visible = key < p.Sk && (keep == nullptr || keep[key] != 0);
          val = visible ? val : -INFINITY;
        }
        s[nt][e] = val;
      }
    }

    // Online softmax: new row max (the 4 threads of a quad share a row), rescale the past.
    float m_new[2] = {m_run[0], m_run[1]};
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
      m_new[0] = fmaxf(m_new[0], fmaxf(s[nt][0], s[nt][1]));
      m_new[1] = fmaxf(m_new[1], fmaxf(s[nt][2], s[nt][3]));
    }
    float base[2], corr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      m_new[r] = fmaxf(m_new[r], __shfl_xor_sync(0xffffffffu, m_new[r], 1));
      m_new[r] = fmaxf(m_new[r], __shfl_xor_sync(0xffffffffu, m_new[r], 2));
      // A row with no visible key yet keeps m = −inf; exponentiate against 0 then (all 0).
      base[r] = m_new[r] == -INFINITY ? 0.0f : m_new[r];
      corr[r] = exp2f(m_run[r] - base[r]);
      m_run[r] = m_new[r];
      l_run[r] *= corr[r];
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= corr[0];
      o[dt][1] *= corr[0];
      o[dt][2] *= corr[1];
      o[dt][3] *= corr[1];
    }

    // p = exp2(s − m), and o += p · v with p repacked as A fragments (16 keys per k-step).
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      float pr[2][4];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          pr[half][e] = exp2f(s[2 * kk + half][e] - base[e >> 1]);
          l_run[e >> 1] += pr[half][e];
        }
      }
      const uint32_t a[4] = {pack2<T>(pr[0][0], pr[0][1]), pack2<T>(pr[0][2], pr[0][3]),
                             pack2<T>(pr[1][0], pr[1][1]), pack2<T>(pr[1][2], pr[1][3])};
      // Lane L addresses row (L % 8) + 8·((L / 8) % 2) of the 16 keys, columns 8·(L / 16) on:
      // matrices 0/1 are b0/b1 of n-tile dt, matrices 2/3 those of n-tile dt + 1.
      const T* vrow =
          sv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kStride + (lane >> 4) * 8;
#pragma unroll
      for (int dt = 0; dt < D / 8; dt += 2) {
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4_trans(vrow + dt * 8, b0, b1, b2, b3);
        mma_16816<T>(o[dt], a, b0, b1);
        mma_16816<T>(o[dt + 1], a, b2, b3);
      }
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }

  // Finish: full row sums across the quad, then either the softmax average (with the LSE) or the
  // unnormalized form against an integer reference (args.h).
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
  }
  const int row_base = q0 + warp * 16 + g;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row_base + 8 * r;
    if (row >= p.Sq) continue;
    const bool seen = l_run[r] > 0.0f;
    const float ref = seen ? ceilf(m_run[r]) : -INFINITY;  // unnormalized: integer row max
    float factor;
    if (p.o.row_sum) {
      factor = seen ? exp2f(m_run[r] - ref) : 0.0f;  // from reference m_run to ref
    } else {
      factor = seen ? 1.0f / l_run[r] : 0.0f;
    }
    T* orow = static_cast<T*>(p.o.out) + ((static_cast<int64_t>(b) * p.Sq + row) * p.H + h) * D;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      *reinterpret_cast<uint32_t*>(orow + dt * 8 + 2 * t) =
          pack2<T>(o[dt][2 * r] * factor, o[dt][2 * r + 1] * factor);
    }
    if (t == 0) {
      const int64_t stat = (static_cast<int64_t>(b) * p.H + h) * p.Sq + row;
      if (p.o.lse) p.o.lse[stat] = seen ? (m_run[r] + log2f(l_run[r])) * kLn2 : -INFINITY;
      if (p.o.row_sum) {
        p.o.row_sum[stat] = seen ? l_run[r] * factor : 0.0f;
        p.o.row_max[stat] = ref;
      }
    }
  }
}

template <typename T, int D>
void launch_flash(const FlashParams& p, int B) {
  constexpr int kStride = D + 8;
  constexpr size_t kSmem = static_cast<size_t>(kBlockM + 4 * kBlockN) * kStride * sizeof(T);
  auto kernel = flash_attention_kernel<T, D>;
  PARADIT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(kSmem)));
  const dim3 grid((p.Sq + kBlockM - 1) / kBlockM, p.H, B);
  kernel<<<grid, kThreads, kSmem, current_stream()>>>(p);
  PARADIT_CUDA_CHECK_LAUNCH("flash_attention_kernel");
}

// ---------------------------------------------------------------- reference kernel

constexpr int kRefChunk = 64;  // output dims accumulated per pass over the keys

struct RefParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  AttentionOut o;
  const uint8_t* keep = nullptr;  // (B, Sk) contiguous or null
  const float* bias = nullptr;    // F32 with the strides below
  int64_t bias_sb = 0, bias_sh = 0, bias_sq = 0, bias_sk = 0;
  int64_t q_sb = 0, q_ss = 0, q_sh = 0;
  int64_t k_sb = 0, k_ss = 0, k_sh = 0;
  int64_t v_sb = 0, v_ss = 0, v_sh = 0;
  int64_t B = 0, Sq = 0, Sk = 0, H = 0, D = 0, Dv = 0;
  float scale_log2 = 0.0f;  // scale · log2(e)
};

// One thread per (b, h, query row), in base 2 as the CPU body: s_j = log2(e)·(scale·q·k_j +
// bias). Pass 1 finds the row max; then one pass over the keys per chunk of kRefChunk output
// dims accumulates 2^(s_j − ref)·v_j (the first also the row sum), ref = the max, or for the
// unnormalized form its ceiling.
template <typename T>
__global__ void attention_reference_kernel(RefParams p) {
  const int64_t rows = p.B * p.H * p.Sq;
  PARADIT_GRID_STRIDE(idx, rows) {
    const int64_t i = idx % p.Sq;
    const int64_t h = idx / p.Sq % p.H;
    const int64_t b = idx / (p.Sq * p.H);
    const T* q = static_cast<const T*>(p.q) + b * p.q_sb + i * p.q_ss + h * p.q_sh;
    auto visible = [&](int64_t j) { return p.keep == nullptr || p.keep[b * p.Sk + j] != 0; };
    auto score = [&](int64_t j) {
      const T* kr = static_cast<const T*>(p.k) + b * p.k_sb + j * p.k_ss + h * p.k_sh;
      float dot = 0.0f;
      for (int64_t d = 0; d < p.D; ++d) dot += to_float(q[d]) * to_float(kr[d]);
      float s = dot * p.scale_log2;
      if (p.bias)
        s += p.bias[b * p.bias_sb + h * p.bias_sh + i * p.bias_sq + j * p.bias_sk] * kLog2e;
      return s;
    };
    float m = -INFINITY;
    for (int64_t j = 0; j < p.Sk; ++j)
      if (visible(j)) m = fmaxf(m, score(j));
    const bool unnormalized = p.o.row_sum != nullptr;
    const float ref = m == -INFINITY ? 0.0f : (unnormalized ? ceilf(m) : m);
    float l = 0.0f;
    T* out = static_cast<T*>(p.o.out) + ((b * p.Sq + i) * p.H + h) * p.Dv;
    for (int64_t d0 = 0; d0 == 0 || d0 < p.Dv; d0 += kRefChunk) {  // once even for Dv = 0
      const int64_t dn = p.Dv - d0 < kRefChunk ? p.Dv - d0 : kRefChunk;
      float acc[kRefChunk];
      for (int64_t d = 0; d < dn; ++d) acc[d] = 0.0f;
      for (int64_t j = 0; j < p.Sk && m != -INFINITY; ++j) {
        if (!visible(j)) continue;
        const float w = exp2f(score(j) - ref);
        if (d0 == 0) l += w;
        const T* vr = static_cast<const T*>(p.v) + b * p.v_sb + j * p.v_ss + h * p.v_sh + d0;
        for (int64_t d = 0; d < dn; ++d) acc[d] += w * to_float(vr[d]);
      }
      const float f = unnormalized ? 1.0f : (l > 0.0f ? 1.0f / l : 0.0f);
      for (int64_t d = 0; d < dn; ++d) out[d0 + d] = from_float<T>(l > 0.0f ? acc[d] * f : 0.0f);
    }
    const int64_t stat = (b * p.H + h) * p.Sq + i;
    if (p.o.lse) p.o.lse[stat] = l > 0.0f ? (ref + log2f(l)) * kLn2 : -INFINITY;
    if (unnormalized) {
      p.o.row_sum[stat] = l;
      p.o.row_max[stat] = l > 0.0f ? ref : -INFINITY;
    }
  }
}

// ---------------------------------------------------------------- key compaction (cuDNN mask)

// One block per batch b: idx[b, 0..L) = the indices of b's visible keys in order, seq_kv[b] = L,
// seq_q[b] = Sq. cuDNN's padding mask then hides keys L.. of the compacted K and V; attention
// does not depend on the order of the keys.
__global__ void compact_keys_kernel(const uint8_t* keep, int64_t Sk, int32_t Sq, int32_t* idx,
                                    int32_t* seq_q, int32_t* seq_kv) {
  __shared__ int warp_offset[32];
  __shared__ int chunk_total;
  const int64_t b = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const uint8_t* kb = keep + b * Sk;
  int32_t* ib = idx + b * Sk;
  int base = 0;
  for (int64_t j0 = 0; j0 < Sk; j0 += blockDim.x) {
    const int64_t j = j0 + threadIdx.x;
    const bool flag = j < Sk && kb[j] != 0;
    const unsigned mask = __ballot_sync(0xffffffffu, flag);
    if (lane == 0) warp_offset[warp] = __popc(mask);
    __syncthreads();
    if (threadIdx.x == 0) {  // exclusive prefix over the warps
      int s = 0;
      for (int w = 0; w < warps; ++w) {
        const int c = warp_offset[w];
        warp_offset[w] = s;
        s += c;
      }
      chunk_total = s;
    }
    __syncthreads();
    if (flag)
      ib[base + warp_offset[warp] + __popc(mask & ((1u << lane) - 1u))] = static_cast<int32_t>(j);
    base += chunk_total;
    __syncthreads();  // warp_offset and chunk_total are rewritten by the next chunk
  }
  if (threadIdx.x == 0) {
    seq_kv[b] = base;
    seq_q[b] = Sq;
  }
}

// dst (B, Sk, H, D) contiguous: row p of batch b = src row idx[b, p] for p < seq_kv[b], else 0.
template <typename T>
__global__ void gather_keys_kernel(const T* src, int64_t sb, int64_t ss, int64_t sh, int64_t Sk,
                                   int64_t H, int64_t D, const int32_t* idx, const int32_t* seq_kv,
                                   int64_t n, T* dst) {
  PARADIT_GRID_STRIDE(e, n) {
    const int64_t d = e % D;
    int64_t rest = e / D;
    const int64_t h = rest % H;
    rest /= H;
    const int64_t pos = rest % Sk, b = rest / Sk;
    dst[e] =
        pos < seq_kv[b] ? src[b * sb + idx[b * Sk + pos] * ss + h * sh + d] : from_float<T>(0.0f);
  }
}

// A batch with no visible key: out rows 0 and LSE −inf (args.h), whatever cuDNN made of it.
template <typename T>
__global__ void clear_unseen_kernel(const int32_t* seq_kv, int64_t per_batch_out,
                                    int64_t per_batch_lse, int64_t n_out, int64_t n_lse, T* out,
                                    float* lse) {
  const int64_t n = n_out > n_lse ? n_out : n_lse;
  PARADIT_GRID_STRIDE(e, n) {
    if (e < n_out && seq_kv[e / per_batch_out] == 0) out[e] = from_float<T>(0.0f);
    if (lse && e < n_lse && seq_kv[e / per_batch_lse] == 0) lse[e] = -INFINITY;
  }
}

// ---------------------------------------------------------------- dispatch helpers

std::string describe(const AttentionArgs& a) {
  return ::paradit::detail::concat(
      "B=", a.batch, " H=", a.heads, " Sq=", a.seq_q, " Sk=", a.seq_k, " D=", a.head_dim,
      " Dv=", a.head_dim_v, " ", core::dtype_name(a.dtype), a.key_keep ? " key-mask" : "",
      a.bias ? " bias" : "", a.lse ? " lse" : "", a.row_sum ? " unnormalized" : "");
}

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// The arguments cuDNN sees for a: with a key mask, K and V compacted into contiguous
// (B, Sk, H, D) buffers (pointers set by the caller) and the mask given as sequence lengths.
AttentionArgs cudnn_view(const AttentionArgs& a) {
  AttentionArgs c = a;
  if (a.key_keep != nullptr) {
    c.key_keep = nullptr;
    c.k_stride_b = a.seq_k * a.heads * a.head_dim;
    c.k_stride_s = a.heads * a.head_dim;
    c.k_stride_h = a.head_dim;
    c.v_stride_b = a.seq_k * a.heads * a.head_dim_v;
    c.v_stride_s = a.heads * a.head_dim_v;
    c.v_stride_h = a.head_dim_v;
  }
  return c;
}

// Why cuDNN's fused attention will not run a here; empty when it will (as far as is known
// before running: a plan that fails for a new shape is found out by the first call).
std::string cudnn_refusal(const AttentionArgs& a) {
  if (!cudnn_built()) return "this build has no cuDNN";
  if (const char* r = cudnn_unsupported_reason(a)) return r;
  if (a.seq_q > 0x7fffffff || a.seq_k > 0x7fffffff) return "sequence lengths beyond int32";
  const int cc = compute_capability(current_device());
  if (cc < 80)
    return "device sm_" + std::to_string(cc) + " (cuDNN's fused attention needs sm_80 or later)";
  return cudnn_sdpa_known_failure(cudnn_view(a), a.key_keep != nullptr);
}

bool run_cudnn(const AttentionArgs& a, std::string* why) {
  if (a.key_keep == nullptr) return run_cudnn_sdpa(a, nullptr, nullptr, why);
  const int64_t B = a.batch, Sk = a.seq_k, H = a.heads;
  const size_t es = dtype_size(a.dtype);
  // Scratch, returned to the cache after enqueuing (reused only by later work on this stream).
  const auto kbuf = allocate_storage(static_cast<size_t>(B * Sk * H * a.head_dim) * es);
  const auto vbuf = allocate_storage(static_cast<size_t>(B * Sk * H * a.head_dim_v) * es);
  const auto ibuf = allocate_storage(static_cast<size_t>(B * Sk) * sizeof(int32_t));
  // seq_q and seq_kv each start on a 256-byte boundary (cuDNN reads them as 16-byte aligned).
  const int64_t lens_stride = round_up(B, 64);
  const auto lens = allocate_storage(static_cast<size_t>(2 * lens_stride) * sizeof(int32_t));
  int32_t* idx = static_cast<int32_t*>(ibuf->data);
  int32_t* seq_q = static_cast<int32_t*>(lens->data);
  int32_t* seq_kv = seq_q + lens_stride;
  compact_keys_kernel<<<static_cast<unsigned>(B), 1024, 0, current_stream()>>>(
      a.key_keep, Sk, static_cast<int32_t>(a.seq_q), idx, seq_q, seq_kv);
  PARADIT_CUDA_CHECK_LAUNCH("compact_keys_kernel");
  dispatch_float(a.dtype, "attention", [&]<typename T>(T) {
    const int64_t nk = B * Sk * H * a.head_dim, nv = B * Sk * H * a.head_dim_v;
    gather_keys_kernel<T><<<grid_for(nk, 256), 256, 0, current_stream()>>>(
        static_cast<const T*>(a.k), a.k_stride_b, a.k_stride_s, a.k_stride_h, Sk, H, a.head_dim,
        idx, seq_kv, nk, static_cast<T*>(kbuf->data));
    PARADIT_CUDA_CHECK_LAUNCH("gather_keys_kernel (k)");
    gather_keys_kernel<T><<<grid_for(nv, 256), 256, 0, current_stream()>>>(
        static_cast<const T*>(a.v), a.v_stride_b, a.v_stride_s, a.v_stride_h, Sk, H, a.head_dim_v,
        idx, seq_kv, nv, static_cast<T*>(vbuf->data));
    PARADIT_CUDA_CHECK_LAUNCH("gather_keys_kernel (v)");
  });
  AttentionArgs c = cudnn_view(a);
  c.k = kbuf->data;
  c.v = vbuf->data;
  if (!run_cudnn_sdpa(c, seq_q, seq_kv, why)) return false;
  dispatch_float(a.dtype, "attention", [&]<typename T>(T) {
    const int64_t per_out = a.seq_q * H * a.head_dim_v, per_lse = H * a.seq_q;
    const int64_t n_out = B * per_out, n_lse = a.lse ? B * per_lse : 0;
    clear_unseen_kernel<T><<<grid_for(n_out, 256), 256, 0, current_stream()>>>(
        seq_kv, per_out, per_lse, n_out, n_lse, static_cast<T*>(a.out), a.lse);
    PARADIT_CUDA_CHECK_LAUNCH("clear_unseen_kernel");
  });
  return true;
}

void run_flash(const AttentionArgs& a) {
  FlashParams p;
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.o = {a.out, a.lse, a.row_max, a.row_sum};
  p.keep = a.key_keep;
  p.q_sb = a.q_stride_b;
  p.q_ss = a.q_stride_s;
  p.q_sh = a.q_stride_h;
  p.k_sb = a.k_stride_b;
  p.k_ss = a.k_stride_s;
  p.k_sh = a.k_stride_h;
  p.v_sb = a.v_stride_b;
  p.v_ss = a.v_stride_s;
  p.v_sh = a.v_stride_h;
  p.Sq = static_cast<int>(a.seq_q);
  p.Sk = static_cast<int>(a.seq_k);
  p.H = static_cast<int>(a.heads);
  p.scale_log2 = a.scale * kLog2e;
  const int B = static_cast<int>(a.batch);
  if (a.dtype == DType::BF16) {
    if (a.head_dim == 64)
      launch_flash<__nv_bfloat16, 64>(p, B);
    else
      launch_flash<__nv_bfloat16, 128>(p, B);
  } else {
    if (a.head_dim == 64)
      launch_flash<__half, 64>(p, B);
    else
      launch_flash<__half, 128>(p, B);
  }
}

void run_reference(const AttentionArgs& a) {
  RefParams p;
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.o = {a.out, a.lse, a.row_max, a.row_sum};
  p.keep = a.key_keep;
  p.bias = a.bias;
  p.bias_sb = a.bias_stride_b;
  p.bias_sh = a.bias_stride_h;
  p.bias_sq = a.bias_stride_q;
  p.bias_sk = a.bias_stride_k;
  p.q_sb = a.q_stride_b;
  p.q_ss = a.q_stride_s;
  p.q_sh = a.q_stride_h;
  p.k_sb = a.k_stride_b;
  p.k_ss = a.k_stride_s;
  p.k_sh = a.k_stride_h;
  p.v_sb = a.v_stride_b;
  p.v_ss = a.v_stride_s;
  p.v_sh = a.v_stride_h;
  p.B = a.batch;
  p.Sq = a.seq_q;
  p.Sk = a.seq_k;
  p.H = a.heads;
  p.D = a.head_dim;
  p.Dv = a.head_dim_v;
  p.scale_log2 = a.scale * kLog2e;
  constexpr int kRefThreads = 128;
  const int64_t rows = a.batch * a.heads * a.seq_q;
  dispatch_float(a.dtype, "attention", [&]<typename T>(T) {
    attention_reference_kernel<T>
        <<<grid_for(rows, kRefThreads), kRefThreads, 0, current_stream()>>>(p);
    PARADIT_CUDA_CHECK_LAUNCH("attention_reference_kernel");
  });
}

// No keys at all: every row sees nothing.
void run_without_keys(const AttentionArgs& a) {
  const int64_t n_out = a.batch * a.seq_q * a.heads * a.head_dim_v;
  const int64_t n_stat = a.batch * a.heads * a.seq_q;
  fill({a.out, n_out, 0.0, a.dtype});
  if (a.lse) fill({a.lse, n_stat, -INFINITY, DType::F32});
  if (a.row_sum) {
    fill({a.row_sum, n_stat, 0.0, DType::F32});
    fill({a.row_max, n_stat, -INFINITY, DType::F32});
  }
}

}  // namespace

AttentionBackend attention_backend_for(const AttentionArgs& a) {
  if (a.backend != AttentionBackend::kAuto) return a.backend;
  return cudnn_refusal(a).empty() ? AttentionBackend::kCudnn : AttentionBackend::kParadit;
}

void attention(const AttentionArgs& a) {
  if (a.batch * a.heads * a.seq_q == 0) return;
  if (a.seq_k == 0) return run_without_keys(a);
  if (a.backend != AttentionBackend::kParadit) {
    const std::string refusal = cudnn_refusal(a);
    if (refusal.empty()) {
      std::string why;
      if (run_cudnn(a, &why)) return;
      // kAuto: the failure is remembered, later calls of this shape come here no more.
      if (a.backend == AttentionBackend::kCudnn)
        fail("attention: cuDNN has no plan for ", describe(a), ": ", why);
      log_verbose("attention " + describe(a) + ": paradit's kernels instead of cuDNN");
    } else if (a.backend == AttentionBackend::kCudnn) {
      fail("attention: the cuDNN backend cannot run ", describe(a), ": ", refusal);
    }
  }
  if (flash_supported(a)) {
    run_flash(a);
  } else {
    run_reference(a);
  }
}

}  // namespace paradit::backend::cuda
