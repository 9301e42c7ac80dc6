// core::attention: argument checks and layout for the flash-style kernel (backend/cpu/attention).

#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/attention.h"
#include "core/ops.h"

namespace paradit::core {
namespace {

// q/k/v must be 4-D F32 on the CPU with a contiguous last dim; other strides are free.
Tensor check_qkv(const char* name, const Tensor& t) {
  PARADIT_CHECK(t.defined(), "attention: ", name, " is undefined");
  PARADIT_CHECK(t.dtype() == DType::F32 && t.ndim() == 4, "attention: ", name, " ", t.str(),
                " must be F32 (batch, seq, heads, head_dim)");
  PARADIT_CHECK(t.device() == Device::CPU, "attention: ", name, " ", t.str(), " is on ",
                device_name(t.device()), "; only the CPU backend is built");
  if (t.dim(3) > 1 && t.stride(3) != 1) return t.contiguous();
  return t;
}

// Stride of dim i for broadcasting a size-1 dim against `target` (stride 0).
int64_t bcast_stride(const Tensor& t, int i, int64_t target) {
  return (t.dim(i) == 1 && target != 1) ? 0 : t.stride(i);
}

}  // namespace

AttentionResult attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                          const AttentionOptions& options) {
  const Tensor q = check_qkv("q", q_in);
  const Tensor k = check_qkv("k", k_in);
  const Tensor v = check_qkv("v", v_in);
  const int64_t B = q.dim(0), Sq = q.dim(1), H = q.dim(2), D = q.dim(3);
  const int64_t Sk = k.dim(1), Dv = v.dim(3);
  PARADIT_CHECK(k.dim(0) == B && k.dim(2) == H && k.dim(3) == D, "attention: k ", k.str(),
                " does not match q ", q.str(), " (expected [", B, ", Sk, ", H, ", ", D, "])");
  PARADIT_CHECK(v.dim(0) == B && v.dim(1) == Sk && v.dim(2) == H, "attention: v ", v.str(),
                " does not match k ", k.str(), " (expected [", B, ", ", Sk, ", ", H, ", Dv])");

  backend::cpu::AttentionArgs a;
  a.batch = B;
  a.seq_q = Sq;
  a.seq_k = Sk;
  a.heads = H;
  a.head_dim = D;
  a.head_dim_v = Dv;
  a.q = q.data<float>();
  a.q_stride_b = q.stride(0);
  a.q_stride_s = q.stride(1);
  a.q_stride_h = q.stride(2);
  a.k = k.data<float>();
  a.k_stride_b = k.stride(0);
  a.k_stride_s = k.stride(1);
  a.k_stride_h = k.stride(2);
  a.v = v.data<float>();
  a.v_stride_b = v.stride(0);
  a.v_stride_s = v.stride(1);
  a.v_stride_h = v.stride(2);
  a.scale = options.scale != 0.0f ? options.scale
                                  : (D > 0 ? 1.0f / std::sqrt(static_cast<float>(D)) : 1.0f);

  // key_mask → one keep byte per (b, key).
  std::vector<uint8_t> keep;
  if (options.key_mask.defined()) {
    const Tensor& m = options.key_mask;
    PARADIT_CHECK(m.ndim() == 2 && m.dim(0) == B && m.dim(1) == Sk, "attention: key_mask ", m.str(),
                  " must be [", B, ", ", Sk, "] for k ", k.str());
    PARADIT_CHECK(m.dtype() == DType::F32 || m.dtype() == DType::Bool, "attention: key_mask ",
                  m.str(), " must be F32 (1 keep / 0 drop) or BOOL");
    keep.resize(static_cast<size_t>(B * Sk));
    if (m.dtype() == DType::Bool) {
      const uint8_t* p = static_cast<const uint8_t*>(m.raw_data());
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t j = 0; j < Sk; ++j)
          keep[b * Sk + j] = p[b * m.stride(0) + j * m.stride(1)] != 0;
      }
    } else {
      const float* p = m.data<float>();
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t j = 0; j < Sk; ++j)
          keep[b * Sk + j] = p[b * m.stride(0) + j * m.stride(1)] != 0.0f;
      }
    }
    a.key_keep = keep.data();
  }

  if (options.bias.defined()) {
    const Tensor& bias = options.bias;
    PARADIT_CHECK(bias.dtype() == DType::F32 && bias.ndim() == 4, "attention: bias ", bias.str(),
                  " must be F32 (B|1, H|1, Sq, Sk)");
    const int64_t want[4] = {B, H, Sq, Sk};
    for (int i = 0; i < 4; ++i) {
      PARADIT_CHECK(bias.dim(i) == want[i] || bias.dim(i) == 1, "attention: bias ", bias.str(),
                    " does not broadcast to [", B, ", ", H, ", ", Sq, ", ", Sk, "]");
    }
    a.bias = bias.data<float>();
    a.bias_stride_b = bcast_stride(bias, 0, B);
    a.bias_stride_h = bcast_stride(bias, 1, H);
    a.bias_stride_q = bcast_stride(bias, 2, Sq);
    a.bias_stride_k = bcast_stride(bias, 3, Sk);
  }

  AttentionResult result;
  result.out = Tensor::empty({B, Sq, H, Dv});  // (B, Sq, H, Dv)
  a.out = result.out.data<float>();
  if (options.return_lse) {
    result.lse = Tensor::empty({B, H, Sq});  // (B, H, Sq)
    a.lse = result.lse.data<float>();
  }
  if (options.unnormalized) {
    result.row_max = Tensor::empty({B, H, Sq});  // (B, H, Sq)
    result.row_sum = Tensor::empty({B, H, Sq});  // (B, H, Sq)
    a.row_max = result.row_max.data<float>();
    a.row_sum = result.row_sum.data<float>();
  }
  backend::cpu::attention_f32(a);
  return result;
}

}  // namespace paradit::core
