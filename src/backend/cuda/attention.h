#pragma once
// Internals of the CUDA attention body (ops.h: attention, attention_backend_for). Host code, no
// CUDA header; the pure helpers are inline so that tests/cuda_host checks them without a GPU.
//
// Three implementations take an AttentionArgs:
// - cuDNN's fused flash attention (cudnn_attention.cpp), built through the backend graph API:
//   BF16/F16, head dims multiples of 8 up to 256, key mask (keys compacted to the front and
//   given as per-batch sequence lengths), F32 additive bias (not with a key mask), LSE output.
//   The default.
// - paradit's flash kernel (attention.cu): BF16/F16, D = Dv ∈ {64, 128}, key mask, LSE or the
//   unnormalized form, no bias.
// - paradit's reference kernel (attention.cu): one thread per query row, any float dtype and
//   head dim, key mask, bias, LSE and the unnormalized form. Slow; for everything else.

#include <compare>
#include <cstdint>
#include <string>

#include "backend/args.h"
#include "backend/cuda/layout.h"

namespace paradit::backend::cuda::detail {

inline bool is_half_dtype(DType t) { return t == DType::BF16 || t == DType::F16; }

// q, k and v rows start on 16-byte boundaries: base pointers 16-byte aligned and every stride a
// multiple of 8 elements (16 bytes of a 16-bit dtype). cp.async and cuDNN need it.
inline bool qkv_rows_16b_aligned(const AttentionArgs& a) {
  const int64_t strides[] = {a.q_stride_b, a.q_stride_s, a.q_stride_h, a.k_stride_b, a.k_stride_s,
                             a.k_stride_h, a.v_stride_b, a.v_stride_s, a.v_stride_h};
  for (int64_t s : strides)
    if (s % 8 != 0) return false;
  return pointer_alignment(a.q) >= 16 && pointer_alignment(a.k) >= 16 &&
         pointer_alignment(a.v) >= 16 && pointer_alignment(a.out) >= 16;
}

// Whether paradit's flash kernel takes a (else the reference kernel runs).
inline bool flash_supported(const AttentionArgs& a) {
  return is_half_dtype(a.dtype) && (a.head_dim == 64 || a.head_dim == 128) &&
         a.head_dim_v == a.head_dim && a.bias == nullptr && qkv_rows_16b_aligned(a) &&
         a.seq_q <= 0x7fffffff && a.seq_k <= 0x7fffffff && a.heads <= 65535 && a.batch <= 65535;
}

// Why cuDNN's fused attention cannot take a, judged from the arguments alone; nullptr when it
// can (the device and the plan may still refuse: see attention_backend_for).
inline const char* cudnn_unsupported_reason(const AttentionArgs& a) {
  if (!is_half_dtype(a.dtype)) return "cuDNN's fused attention takes BF16/F16 only";
  if (a.row_sum != nullptr) return "the unnormalized form (row_max/row_sum) is paradit's only";
  if (a.head_dim % 8 != 0 || a.head_dim_v % 8 != 0 || a.head_dim <= 0 || a.head_dim_v <= 0 ||
      a.head_dim > 256 || a.head_dim_v > 256)
    return "cuDNN takes head dims that are multiples of 8 up to 256";
  if (!qkv_rows_16b_aligned(a)) return "q/k/v rows are not 16-byte aligned";
  if (a.bias != nullptr) {
    // The key mask compacts K and V (attention.cu): bias column j would no longer be key j.
    if (a.key_keep != nullptr) return "a bias together with a key mask";
    const bool k_ok = a.bias_stride_k == 1 || a.seq_k == 1;
    // F32 rows on 16-byte boundaries: every row starts at b·sb + h·sh + i·sq.
    const bool rows_ok =
        a.bias_stride_b % 4 == 0 && a.bias_stride_h % 4 == 0 && a.bias_stride_q % 4 == 0;
    if (!k_ok || !rows_ok || pointer_alignment(a.bias) < 16)
      return "the bias rows are not contiguous and 16-byte aligned";
  }
  return nullptr;
}

// ---------------------------------------------------------------- cuDNN SDPA layout
// cuDNN's attention tensors are 4-D (b, h, s, d) with arbitrary strides; the (B, S, H, D)
// layout of AttentionArgs is the same memory with h and s swapped. K enters as Kᵀ (b, h, d, s).
struct SdpaTensor {
  int64_t dims[4] = {};
  int64_t strides[4] = {};
};
struct SdpaLayout {
  SdpaTensor q, kt, v, o, s, stats, bias;
  bool has_bias = false;
};

inline SdpaLayout sdpa_layout(const AttentionArgs& a) {
  const int64_t B = a.batch, H = a.heads, Sq = a.seq_q, Sk = a.seq_k, D = a.head_dim,
                Dv = a.head_dim_v;
  SdpaLayout l;
  l.q = {{B, H, Sq, D}, {a.q_stride_b, a.q_stride_h, a.q_stride_s, 1}};
  l.kt = {{B, H, D, Sk}, {a.k_stride_b, a.k_stride_h, 1, a.k_stride_s}};
  l.v = {{B, H, Sk, Dv}, {a.v_stride_b, a.v_stride_h, a.v_stride_s, 1}};
  l.o = {{B, H, Sq, Dv}, {Sq * H * Dv, Dv, H * Dv, 1}};  // out (B, Sq, H, Dv) contiguous
  l.s = {{B, H, Sq, Sk}, {H * Sq * Sk, Sq * Sk, Sk, 1}};
  l.stats = {{B, H, Sq, 1}, {H * Sq, Sq, 1, 1}};  // lse (B, H, Sq) contiguous
  if (a.bias != nullptr) {
    l.has_bias = true;
    // A broadcast dim (stride 0) becomes a dim of size 1; its stride is then immaterial and is
    // given the packed value.
    const int64_t full[4] = {B, H, Sq, Sk};
    const int64_t given[4] = {a.bias_stride_b, a.bias_stride_h, a.bias_stride_q, a.bias_stride_k};
    int64_t inner = 1;
    for (int i = 3; i >= 0; --i) {
      const bool broadcast = given[i] == 0 || full[i] == 1;
      l.bias.dims[i] = broadcast ? 1 : full[i];
      l.bias.strides[i] = broadcast ? inner : given[i];
      inner = l.bias.strides[i] * l.bias.dims[i];
    }
  }
  return l;
}

// Everything an SDPA execution plan depends on (pointers go in at execution).
struct SdpaPlanKey {
  int device = 0;
  DType dtype = DType::BF16;
  int64_t B = 0, H = 0, Sq = 0, Sk = 0, D = 0, Dv = 0;
  int64_t q_strides[3] = {}, k_strides[3] = {}, v_strides[3] = {};
  int64_t bias_dims[4] = {}, bias_strides[4] = {};
  bool bias = false, lse = false, padding = false;
  auto operator<=>(const SdpaPlanKey&) const = default;
};

inline SdpaPlanKey sdpa_plan_key(const AttentionArgs& a, int device, bool padding) {
  SdpaPlanKey k;
  k.device = device;
  k.dtype = a.dtype;
  k.B = a.batch;
  k.H = a.heads;
  k.Sq = a.seq_q;
  k.Sk = a.seq_k;
  k.D = a.head_dim;
  k.Dv = a.head_dim_v;
  const int64_t q[3] = {a.q_stride_b, a.q_stride_s, a.q_stride_h};
  const int64_t kk[3] = {a.k_stride_b, a.k_stride_s, a.k_stride_h};
  const int64_t v[3] = {a.v_stride_b, a.v_stride_s, a.v_stride_h};
  for (int i = 0; i < 3; ++i) {
    k.q_strides[i] = q[i];
    k.k_strides[i] = kk[i];
    k.v_strides[i] = v[i];
  }
  if (a.bias != nullptr) {
    const SdpaLayout l = sdpa_layout(a);
    for (int i = 0; i < 4; ++i) {
      k.bias_dims[i] = l.bias.dims[i];
      k.bias_strides[i] = l.bias.strides[i];
    }
  }
  k.bias = a.bias != nullptr;
  k.lse = a.lse != nullptr;
  k.padding = padding;
  return k;
}

// ---------------------------------------------------------------- cuDNN entry points
// Defined in cudnn_attention.cpp (stubs there without cuDNN).

// Whether this build has cuDNN.
bool cudnn_built();
// The failure remembered for a's plan (empty when none was tried or it worked).
std::string cudnn_sdpa_known_failure(const AttentionArgs& a, bool padding);
// Runs a through cuDNN. With padding, k and v hold the visible keys of batch b in their first
// seq_kv[b] rows and seq_q[b] = Sq (B int32 values each, on the device). Returns false with
// *why when no plan can be built or cuDNN refuses to execute it (remembered for the shape).
bool run_cudnn_sdpa(const AttentionArgs& a, const int32_t* seq_q, const int32_t* seq_kv,
                    std::string* why);

}  // namespace paradit::backend::cuda::detail
