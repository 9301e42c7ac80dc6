// core::attention: the front end (checks, layout, key mask as bytes on the device), then the
// flash-style body of the tensors' device (backend/cpu/attention, backend/cuda: cuDNN or
// paradit's flash kernel).

#include <atomic>
#include <cmath>
#include <limits>

#include "core/ops.h"
#include "core/ops_common.h"

namespace paradit::core {

using namespace detail;

namespace {

std::atomic<AttentionBackend> g_default_backend{AttentionBackend::kAuto};

// q/k/v: 4-D on `dev` with a contiguous last dim; other strides are free.
Tensor check_qkv(const char* name, const Tensor& t, Device dev, DType dtype) {
  check_input(Op::kAttention, name, t, dev);
  PARADIT_CHECK(t.ndim() == 4 && t.dtype() == dtype, "attention: ", name, " ", t.str(),
                " must be ", dtype_name(dtype), " (batch, seq, heads, head_dim)");
  if (t.dim(3) > 1 && t.stride(3) != 1) return t.contiguous();
  return t;
}

// Stride of dim i for broadcasting a size-1 dim against `target` (stride 0).
int64_t bcast_stride(const Tensor& t, int i, int64_t target) {
  return (t.dim(i) == 1 && target != 1) ? 0 : t.stride(i);
}

}  // namespace

void set_default_attention_backend(AttentionBackend backend) { g_default_backend = backend; }
AttentionBackend default_attention_backend() { return g_default_backend; }

AttentionResult attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                          const AttentionOptions& options) {
  check_first(Op::kAttention, "q", q_in);
  const Device dev = q_in.device();
  const Tensor q = check_qkv("q", q_in, dev, q_in.dtype());
  const Tensor k = check_qkv("k", k_in, dev, q_in.dtype());
  const Tensor v = check_qkv("v", v_in, dev, q_in.dtype());
  const int64_t B = q.dim(0), Sq = q.dim(1), H = q.dim(2), D = q.dim(3);
  const int64_t Sk = k.dim(1), Dv = v.dim(3);
  PARADIT_CHECK(k.dim(0) == B && k.dim(2) == H && k.dim(3) == D, "attention: k ", k.str(),
                " does not match q ", q.str(), " (expected [", B, ", Sk, ", H, ", ", D, "])");
  PARADIT_CHECK(v.dim(0) == B && v.dim(1) == Sk && v.dim(2) == H, "attention: v ", v.str(),
                " does not match k ", k.str(), " (expected [", B, ", ", Sk, ", ", H, ", Dv])");

  backend::AttentionArgs a;
  a.batch = B;
  a.seq_q = Sq;
  a.seq_k = Sk;
  a.heads = H;
  a.head_dim = D;
  a.head_dim_v = Dv;
  a.q = q.raw_data();
  a.q_stride_b = q.stride(0);
  a.q_stride_s = q.stride(1);
  a.q_stride_h = q.stride(2);
  a.k = k.raw_data();
  a.k_stride_b = k.stride(0);
  a.k_stride_s = k.stride(1);
  a.k_stride_h = k.stride(2);
  a.v = v.raw_data();
  a.v_stride_b = v.stride(0);
  a.v_stride_s = v.stride(1);
  a.v_stride_h = v.stride(2);
  a.scale = options.scale != 0.0f ? options.scale
                                  : (D > 0 ? 1.0f / std::sqrt(static_cast<float>(D)) : 1.0f);
  a.dtype = q.dtype();
  a.backend =
      options.backend != AttentionBackend::kAuto ? options.backend : default_attention_backend();

  // key_mask → one keep byte per (b, key), contiguous on the device (nonzero = keep).
  Tensor keep;
  if (options.key_mask.defined()) {
    const Tensor& m = options.key_mask;
    check_device(Op::kAttention, "key_mask", m, dev);
    PARADIT_CHECK(m.ndim() == 2 && m.dim(0) == B && m.dim(1) == Sk, "attention: key_mask ", m.str(),
                  " must be [", B, ", ", Sk, "] for k ", k.str());
    PARADIT_CHECK(is_floating(m.dtype()) || m.dtype() == DType::Bool, "attention: key_mask ",
                  m.str(), " must be a float tensor (1 keep / 0 drop) or BOOL");
    keep = m.to(DType::Bool).contiguous();
    a.key_keep = static_cast<const uint8_t*>(keep.raw_data());
  }

  Tensor bias;
  if (options.bias.defined()) {
    bias = options.bias;
    check_device(Op::kAttention, "bias", bias, dev);
    PARADIT_CHECK(is_floating(bias.dtype()) && bias.ndim() == 4, "attention: bias ", bias.str(),
                  " must be a float tensor (B|1, H|1, Sq, Sk)");
    const int64_t want[4] = {B, H, Sq, Sk};
    for (int i = 0; i < 4; ++i) {
      PARADIT_CHECK(bias.dim(i) == want[i] || bias.dim(i) == 1, "attention: bias ", bias.str(),
                    " does not broadcast to [", B, ", ", H, ", ", Sq, ", ", Sk, "]");
    }
    bias = bias.to(DType::F32);
    a.bias = static_cast<const float*>(bias.raw_data());
    a.bias_stride_b = bcast_stride(bias, 0, B);
    a.bias_stride_h = bcast_stride(bias, 1, H);
    a.bias_stride_q = bcast_stride(bias, 2, Sq);
    a.bias_stride_k = bcast_stride(bias, 3, Sk);
  }

  AttentionResult result;
  result.out = Tensor::empty({B, Sq, H, Dv}, q.dtype(), dev);  // (B, Sq, H, Dv)
  a.out = result.out.raw_data();
  if (options.return_lse) {
    result.lse = Tensor::empty({B, H, Sq}, DType::F32, dev);  // (B, H, Sq)
    a.lse = static_cast<float*>(result.lse.raw_data());
  }
  if (options.unnormalized) {
    result.row_max = Tensor::empty({B, H, Sq}, DType::F32, dev);  // (B, H, Sq)
    result.row_sum = Tensor::empty({B, H, Sq}, DType::F32, dev);  // (B, H, Sq)
    a.row_max = static_cast<float*>(result.row_max.raw_data());
    a.row_sum = static_cast<float*>(result.row_sum.raw_data());
  }
  if (B * Sq * H == 0) return result;
  if (dev == Device::CPU) cpu::attention(a); else if constexpr (kCudaBuilt) cuda::attention(a);
  return result;
}

void attention_merge_add(AttentionMergeState& state, const Tensor& out, const Tensor& row_max,
                         const Tensor& row_sum) {
  const Op op = Op::kAttentionMerge;
  check_first(op, "out", out);
  const Device dev = out.device();
  PARADIT_CHECK(out.ndim() == 4 && row_max.defined() && row_sum.defined() && row_max.ndim() == 3 &&
                    row_sum.shape() == row_max.shape() &&
                    row_max.shape() == Shape({out.dim(0), out.dim(2), out.dim(1)}) &&
                    row_max.dtype() == DType::F32 && row_sum.dtype() == DType::F32,
                "attention_merge: partial ", out.str(), " / ",
                row_max.defined() ? row_max.str() : "undefined", " / ",
                row_sum.defined() ? row_sum.str() : "undefined",
                " must be (B, S, H, Dv), (B, H, S) F32, (B, H, S) F32");
  check_device(op, "row_max", row_max, dev);
  check_device(op, "row_sum", row_sum, dev);
  const int64_t B = out.dim(0), S = out.dim(1), H = out.dim(2), Dv = out.dim(3);
  PARADIT_CHECK(out.stride(3) == 1 && out.stride(2) == Dv && row_max.stride(2) == 1 &&
                    row_sum.stride(2) == 1,
                "attention_merge: partial ", out.str(), " needs contiguous rows");
  if (!state.acc.defined()) {
    state.shape = out.shape();
    state.dtype = out.dtype();
    state.acc = Tensor::zeros({B * S * H * Dv}, DType::F64, dev);
    state.ref = Tensor::full({B * S * H}, -std::numeric_limits<float>::infinity(), DType::F64, dev);
    state.sum = Tensor::zeros({B * S * H}, DType::F64, dev);
  }
  PARADIT_CHECK(out.shape() == state.shape && out.dtype() == state.dtype &&
                    state.acc.device() == dev,
                "attention_merge: partial ", out.str(), " does not match the first partial's ",
                dtype_name(state.dtype), shape_str(state.shape));
  if (B * S * H * Dv == 0) return;
  backend::AttentionMergeAddArgs a;
  a.B = B;
  a.S = S;
  a.H = H;
  a.Dv = Dv;
  a.out = out.raw_data();
  a.out_stride_b = out.stride(0);
  a.out_stride_s = out.stride(1);
  a.dtype = out.dtype();
  a.row_max = static_cast<const float*>(row_max.raw_data());
  a.max_stride_b = row_max.stride(0);
  a.max_stride_h = row_max.stride(1);
  a.row_sum = static_cast<const float*>(row_sum.raw_data());
  a.sum_stride_b = row_sum.stride(0);
  a.sum_stride_h = row_sum.stride(1);
  a.acc = static_cast<double*>(state.acc.raw_data());
  a.ref = static_cast<double*>(state.ref.raw_data());
  a.sum = static_cast<double*>(state.sum.raw_data());
  if (dev == Device::CPU) cpu::attention_merge_add(a); else if constexpr (kCudaBuilt) cuda::attention_merge_add(a);
}

Tensor attention_merge_result(const AttentionMergeState& state) {
  PARADIT_CHECK(state.acc.defined(), "attention_merge: no partial was added");
  const Device dev = state.acc.device();
  require_support(Op::kAttentionMerge, dev, state.dtype);
  Tensor out = Tensor::empty(state.shape, state.dtype, dev);  // (B, S, H, Dv)
  if (out.numel() == 0) return out;
  backend::AttentionMergeOutArgs a;
  a.rows = state.sum.numel();
  a.Dv = state.shape[3];
  a.acc = static_cast<const double*>(state.acc.raw_data());
  a.sum = static_cast<const double*>(state.sum.raw_data());
  a.dtype = state.dtype;
  a.out = out.raw_data();
  if (dev == Device::CPU) cpu::attention_merge_out(a); else if constexpr (kCudaBuilt) cuda::attention_merge_out(a);
  return out;
}

}  // namespace paradit::core
