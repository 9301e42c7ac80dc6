// Attention kernels of the CUDA backend (see attention.h).
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

#include "backend/cuda/attention.h"
#include "backend/cuda/check.h"
#include "backend/cuda/common.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda {

using core::AttentionOptions;
using core::AttentionResult;
using core::Device;
using core::DType;
using core::Tensor;
using namespace detail;

namespace {

constexpr int kBlockM = 64;  // query rows per block
constexpr int kBlockN = 64;  // keys per tile
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct FlashParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;          // (B, Sq, H, D) contiguous
  float* lse = nullptr;         // (B, H, Sq) or nullptr
  const float* keep = nullptr;  // (B, Sk) contiguous, 0 = drop; or nullptr
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
  const float* keep = p.keep ? p.keep + static_cast<int64_t>(b) * p.Sk : nullptr;
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
          const bool visible = key < p.Sk && (keep == nullptr || keep[key] != 0.0f);
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

  // Finish: full row sums across the quad, normalize, store.
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
    const float inv = l_run[r] > 0.0f ? 1.0f / l_run[r] : 0.0f;
    T* orow = static_cast<T*>(p.out) + ((static_cast<int64_t>(b) * p.Sq + row) * p.H + h) * D;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      *reinterpret_cast<uint32_t*>(orow + dt * 8 + 2 * t) =
          pack2<T>(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
    }
    if (p.lse && t == 0) {
      p.lse[(static_cast<int64_t>(b) * p.H + h) * p.Sq + row] =
          l_run[r] > 0.0f ? (m_run[r] + log2f(l_run[r])) * kLn2 : -INFINITY;
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

constexpr int kRefMaxDim = 256;

struct RefParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;  // (B, Sq, H, Dv) contiguous
  float* lse = nullptr;
  const float* keep = nullptr;  // (B, Sk) contiguous or nullptr
  const float* bias = nullptr;  // F32 with the strides below
  int64_t bias_sb = 0, bias_sh = 0, bias_sq = 0, bias_sk = 0;
  int64_t q_sb = 0, q_ss = 0, q_sh = 0;
  int64_t k_sb = 0, k_ss = 0, k_sh = 0;
  int64_t v_sb = 0, v_ss = 0, v_sh = 0;
  int B = 0, Sq = 0, Sk = 0, H = 0, D = 0, Dv = 0;
  float scale = 0.0f;
};

// One thread per (b, h, query row); two passes over the keys (max, then sums).
template <typename T>
__global__ void attention_reference_kernel(RefParams p) {
  const int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (idx >= static_cast<int64_t>(p.B) * p.H * p.Sq) return;
  const int i = static_cast<int>(idx % p.Sq);
  const int h = static_cast<int>(idx / p.Sq % p.H);
  const int b = static_cast<int>(idx / (static_cast<int64_t>(p.Sq) * p.H));
  const T* q = static_cast<const T*>(p.q) + b * p.q_sb + i * p.q_ss + h * p.q_sh;
  float qv[kRefMaxDim], acc[kRefMaxDim];
  for (int d = 0; d < p.D; ++d) qv[d] = to_float(q[d]);
  for (int d = 0; d < p.Dv; ++d) acc[d] = 0.0f;
  auto score = [&](int j, bool* visible) {
    *visible = p.keep == nullptr || p.keep[static_cast<int64_t>(b) * p.Sk + j] != 0.0f;
    const T* kr = static_cast<const T*>(p.k) + b * p.k_sb + j * p.k_ss + h * p.k_sh;
    float dot = 0.0f;
    for (int d = 0; d < p.D; ++d) dot += qv[d] * to_float(kr[d]);
    float s = dot * p.scale;
    if (p.bias) s += p.bias[b * p.bias_sb + h * p.bias_sh + i * p.bias_sq + j * p.bias_sk];
    return s;
  };
  float m = -INFINITY;
  for (int j = 0; j < p.Sk; ++j) {
    bool visible;
    const float s = score(j, &visible);
    if (visible) m = fmaxf(m, s);
  }
  float l = 0.0f;
  if (m != -INFINITY) {
    for (int j = 0; j < p.Sk; ++j) {
      bool visible;
      const float s = score(j, &visible);
      if (!visible) continue;
      const float w = expf(s - m);
      l += w;
      const T* vr = static_cast<const T*>(p.v) + b * p.v_sb + j * p.v_ss + h * p.v_sh;
      for (int d = 0; d < p.Dv; ++d) acc[d] += w * to_float(vr[d]);
    }
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  T* o = static_cast<T*>(p.out) + ((static_cast<int64_t>(b) * p.Sq + i) * p.H + h) * p.Dv;
  for (int d = 0; d < p.Dv; ++d) o[d] = from_float<T>(acc[d] * inv);
  if (p.lse)
    p.lse[(static_cast<int64_t>(b) * p.H + h) * p.Sq + i] = l > 0.0f ? m + logf(l) : -INFINITY;
}

// ---------------------------------------------------------------- argument handling

struct Checked {
  Tensor q, k, v;
  int64_t B, Sq, Sk, H, D, Dv;
  Tensor keep;  // F32 (B, Sk) contiguous, or undefined
  float scale;
};

// A q/k/v view whose last dim is contiguous (a copy otherwise).
Tensor with_unit_last_stride(const Tensor& t) {
  return t.dim(3) > 1 && t.stride(3) != 1 ? contiguous(t) : t;
}

Checked check_args(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                   const AttentionOptions& options) {
  for (const Tensor* t : {&q_in, &k_in, &v_in}) {
    const char* name = t == &q_in ? "q" : (t == &k_in ? "k" : "v");
    check_float("attention", name, *t);
    PARADIT_CHECK(t->ndim() == 4, "attention: ", name, " has shape ", core::shape_str(t->shape()),
                  ", expected (B, S, H, D)");
    PARADIT_CHECK(t->dtype() == q_in.dtype(), "attention: ", name, " is ", t->str(), " but q is ",
                  q_in.str(), "; q, k and v must share a dtype");
  }
  Checked c;
  c.q = with_unit_last_stride(q_in);
  c.k = with_unit_last_stride(k_in);
  c.v = with_unit_last_stride(v_in);
  c.B = c.q.dim(0);
  c.Sq = c.q.dim(1);
  c.H = c.q.dim(2);
  c.D = c.q.dim(3);
  c.Sk = c.k.dim(1);
  c.Dv = c.v.dim(3);
  PARADIT_CHECK(c.k.dim(0) == c.B && c.k.dim(2) == c.H && c.k.dim(3) == c.D, "attention: k ",
                c.k.str(), " does not match q ", c.q.str(), " (expected [", c.B, ", Sk, ", c.H,
                ", ", c.D, "])");
  PARADIT_CHECK(c.v.dim(0) == c.B && c.v.dim(1) == c.Sk && c.v.dim(2) == c.H, "attention: v ",
                c.v.str(), " does not match k ", c.k.str(), " (expected [", c.B, ", ", c.Sk, ", ",
                c.H, ", Dv])");
  PARADIT_CHECK(c.Sq <= 0x7fffffff && c.Sk <= 0x7fffffff && c.H <= 65535 && c.B <= 65535,
                "attention: sizes of q ", c.q.str(), " / k ", c.k.str(), " exceed the grid");
  c.scale = options.scale != 0.0f ? options.scale
                                  : (c.D > 0 ? 1.0f / std::sqrt(static_cast<float>(c.D)) : 1.0f);
  if (options.key_mask.defined()) {
    const Tensor& m = options.key_mask;
    check_device("attention", "key_mask", m);
    PARADIT_CHECK(m.ndim() == 2 && m.dim(0) == c.B && m.dim(1) == c.Sk, "attention: key_mask ",
                  m.str(), " must be [", c.B, ", ", c.Sk, "] for k ", c.k.str());
    PARADIT_CHECK(m.dtype() == DType::F32 || m.dtype() == DType::Bool, "attention: key_mask ",
                  m.str(), " must be F32 (1 keep / 0 drop) or BOOL");
    c.keep = convert(m, DType::F32);
  }
  return c;
}

bool flash_eligible(const Checked& c, const AttentionOptions& options) {
  return (c.q.dtype() == DType::BF16 || c.q.dtype() == DType::F16) && (c.D == 64 || c.D == 128) &&
         c.Dv == c.D && !options.bias.defined();
}

// cp.async moves 16-byte chunks: every row start must be 16-byte aligned.
Tensor aligned_rows(const Tensor& t) {
  const auto addr = reinterpret_cast<uintptr_t>(t.raw_data());
  const bool ok =
      addr % 16 == 0 && t.stride(0) % 8 == 0 && t.stride(1) % 8 == 0 && t.stride(2) % 8 == 0;
  return ok ? t : t.clone();  // a fresh buffer: 256-byte aligned, strides multiples of D
}

}  // namespace

bool flash_attention_supported(const Tensor& q, const Tensor& k, const Tensor& v,
                               const AttentionOptions& options) {
  return flash_eligible(check_args(q, k, v, options), options);
}

AttentionResult attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                          const AttentionOptions& options) {
  Checked c = check_args(q_in, k_in, v_in, options);
  if (!flash_eligible(c, options)) return attention_reference(q_in, k_in, v_in, options);
  const Tensor q = aligned_rows(c.q), k = aligned_rows(c.k), v = aligned_rows(c.v);
  AttentionResult result;
  result.out = Tensor::empty({c.B, c.Sq, c.H, c.D}, q.dtype(), Device::CUDA);  // (B, Sq, H, D)
  if (options.return_lse) {
    result.lse = Tensor::empty({c.B, c.H, c.Sq}, DType::F32, Device::CUDA);  // (B, H, Sq)
  }
  if (c.B == 0 || c.Sq == 0 || c.H == 0) return result;
  if (c.Sk == 0) {
    // No keys: every row sees nothing.
    fill(result.out, 0.0f);
    if (result.lse.defined()) fill(result.lse, -INFINITY);
    return result;
  }
  FlashParams p;
  p.q = q.raw_data();
  p.k = k.raw_data();
  p.v = v.raw_data();
  p.out = result.out.raw_data();
  p.lse = result.lse.defined() ? static_cast<float*>(result.lse.raw_data()) : nullptr;
  p.keep = c.keep.defined() ? static_cast<const float*>(c.keep.raw_data()) : nullptr;
  p.q_sb = q.stride(0);
  p.q_ss = q.stride(1);
  p.q_sh = q.stride(2);
  p.k_sb = k.stride(0);
  p.k_ss = k.stride(1);
  p.k_sh = k.stride(2);
  p.v_sb = v.stride(0);
  p.v_ss = v.stride(1);
  p.v_sh = v.stride(2);
  p.Sq = static_cast<int>(c.Sq);
  p.Sk = static_cast<int>(c.Sk);
  p.H = static_cast<int>(c.H);
  p.scale_log2 = c.scale * kLog2e;
  const int B = static_cast<int>(c.B);
  if (q.dtype() == DType::BF16) {
    if (c.D == 64)
      launch_flash<__nv_bfloat16, 64>(p, B);
    else
      launch_flash<__nv_bfloat16, 128>(p, B);
  } else {
    if (c.D == 64)
      launch_flash<__half, 64>(p, B);
    else
      launch_flash<__half, 128>(p, B);
  }
  return result;
}

AttentionResult attention_reference(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                    const AttentionOptions& options) {
  Checked c = check_args(q_in, k_in, v_in, options);
  PARADIT_CHECK(c.D <= kRefMaxDim && c.Dv <= kRefMaxDim, "attention: head dims ", c.D, "/", c.Dv,
                " exceed ", kRefMaxDim, " (reference kernel)");
  RefParams p;
  Tensor bias;
  if (options.bias.defined()) {
    check_device("attention", "bias", options.bias);
    const Tensor& bi = options.bias;
    PARADIT_CHECK(bi.dtype() == DType::F32 && bi.ndim() == 4, "attention: bias ", bi.str(),
                  " must be F32 (B|1, H|1, Sq, Sk)");
    const int64_t want[4] = {c.B, c.H, c.Sq, c.Sk};
    for (int i = 0; i < 4; ++i) {
      PARADIT_CHECK(bi.dim(i) == want[i] || bi.dim(i) == 1, "attention: bias ", bi.str(),
                    " does not broadcast to [", c.B, ", ", c.H, ", ", c.Sq, ", ", c.Sk, "]");
    }
    bias = contiguous(bi);
    auto bstride = [&](int i) { return bias.dim(i) == 1 ? int64_t{0} : bias.stride(i); };
    p.bias = static_cast<const float*>(bias.raw_data());
    p.bias_sb = bstride(0);
    p.bias_sh = bstride(1);
    p.bias_sq = bstride(2);
    p.bias_sk = bstride(3);
  }
  AttentionResult result;
  result.out = Tensor::empty({c.B, c.Sq, c.H, c.Dv}, c.q.dtype(), Device::CUDA);  // (B,Sq,H,Dv)
  if (options.return_lse) {
    result.lse = Tensor::empty({c.B, c.H, c.Sq}, DType::F32, Device::CUDA);  // (B, H, Sq)
  }
  const int64_t rows = c.B * c.H * c.Sq;
  if (rows == 0) return result;
  p.q = c.q.raw_data();
  p.k = c.k.raw_data();
  p.v = c.v.raw_data();
  p.out = result.out.raw_data();
  p.lse = result.lse.defined() ? static_cast<float*>(result.lse.raw_data()) : nullptr;
  p.keep = c.keep.defined() ? static_cast<const float*>(c.keep.raw_data()) : nullptr;
  p.q_sb = c.q.stride(0);
  p.q_ss = c.q.stride(1);
  p.q_sh = c.q.stride(2);
  p.k_sb = c.k.stride(0);
  p.k_ss = c.k.stride(1);
  p.k_sh = c.k.stride(2);
  p.v_sb = c.v.stride(0);
  p.v_ss = c.v.stride(1);
  p.v_sh = c.v.stride(2);
  p.B = static_cast<int>(c.B);
  p.Sq = static_cast<int>(c.Sq);
  p.Sk = static_cast<int>(c.Sk);
  p.H = static_cast<int>(c.H);
  p.D = static_cast<int>(c.D);
  p.Dv = static_cast<int>(c.Dv);
  p.scale = c.scale;
  constexpr int kRefThreads = 128;
  const unsigned grid = static_cast<unsigned>((rows + kRefThreads - 1) / kRefThreads);
  dispatch_float(c.q.dtype(), "attention", [&]<typename T>(T) {
    attention_reference_kernel<T><<<grid, kRefThreads, 0, current_stream()>>>(p);
    PARADIT_CUDA_CHECK_LAUNCH("attention_reference_kernel");
  });
  return result;
}

}  // namespace paradit::backend::cuda
