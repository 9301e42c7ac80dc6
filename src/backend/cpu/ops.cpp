// The CPU bodies of the core ops (ops.h): each takes the op's argument struct and runs the
// kernels of kernels.h, gemm.h, attention.h and conv3d.h.

#include "backend/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/conv3d.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"
#include "core/error.h"

namespace paradit::backend::cpu {

using core::DType;

namespace {

const float* f32(const void* p) { return static_cast<const float*>(p); }
float* f32(void* p) { return static_cast<float*>(p); }

void require_f32(const char* op, DType t) {
  PARADIT_CHECK(t == DType::F32, op, ": the CPU body computes in F32, got ",
                core::dtype_name(t));
}

cpu::Activation cpu_activation(backend::Activation a) {
  switch (a) {
    case backend::Activation::kGeluErf: return cpu::Activation::kGeluErf;
    case backend::Activation::kGeluTanh: return cpu::Activation::kGeluTanh;
    case backend::Activation::kSilu: return cpu::Activation::kSilu;
    case backend::Activation::kQuickGelu: return cpu::Activation::kQuickGelu;
    case backend::Activation::kRelu: return cpu::Activation::kRelu;
    case backend::Activation::kExp: return cpu::Activation::kExp;
    case backend::Activation::kSqrt: return cpu::Activation::kSqrt;
    case backend::Activation::kTanh: return cpu::Activation::kTanh;
    case backend::Activation::kNone: break;
  }
  paradit::fail("cpu activation: kNone has no kernel");
}

}  // namespace

void linear(const LinearArgs& a) {
  require_f32("linear", a.x_dtype);
  require_f32("linear", a.y_dtype);
  PARADIT_CHECK(a.activation == backend::Activation::kNone,
                "linear: the CPU body runs no fused activation");
  if (a.w_dtype == DType::F32) {
    linear_f32(a.M, a.N, a.K, f32(a.x), a.ldx, f32(a.w), a.ldw, a.bias, f32(a.y), a.ldy);
  } else {
    PARADIT_CHECK(a.w_dtype == DType::BF16, "linear: CPU weights are F32 or BF16, got ",
                  core::dtype_name(a.w_dtype));
    linear_f32_bf16(a.M, a.N, a.K, f32(a.x), a.ldx, static_cast<const uint16_t*>(a.w), a.ldw,
                    a.bias, f32(a.y), a.ldy);
  }
}

void matmul(const MatmulArgs& a) {
  require_f32("matmul", a.dtype);
  gemm_batched_f32(false, a.trans_b, a.batch, a.M, a.N, a.K, f32(a.a), a.stride_a, a.lda, f32(a.b),
                   a.stride_b, a.ldb, f32(a.c), a.stride_c, a.ldc);
}

void norm(const NormArgs& a) {
  require_f32("norm", a.dtype);
  PARADIT_CHECK(a.shift == nullptr && a.scale == nullptr,
                "norm: the CPU body runs no fused modulation");
  if (a.kind == NormKind::kLayer) {
    layer_norm_f32(f32(a.x), a.row_stride, a.rows, a.D, a.weight, a.bias, a.eps, f32(a.y));
  } else {
    rms_norm_f32(f32(a.x), a.row_stride, a.rows, a.D, a.weight, a.eps, f32(a.y));
  }
}

void channel_norm(const ChannelNormArgs& a) {
  require_f32("channel_norm", a.dtype);
  channel_norm_f32(f32(a.x), a.N, a.C, a.L, a.gamma, a.scale, a.eps, f32(a.y));
}

void group_norm_stats(const GroupNormStatsArgs& a) {
  require_f32("group_norm_stats", a.dtype);
  group_norm_stats_f32(f32(a.x), a.N, a.C, a.L, a.groups, a.mean, a.var);
}

void group_norm_apply(const GroupNormApplyArgs& a) {
  require_f32("group_norm_apply", a.dtype);
  PARADIT_CHECK(a.activation == backend::Activation::kNone,
                "group_norm_apply: the CPU body runs no fused activation");
  group_norm_apply_f32(f32(a.x), a.N, a.C, a.L, a.groups, a.mean, a.var, a.eps, a.weight, a.bias,
                       f32(a.y));
}

void activation(const ActivationArgs& a) {
  require_f32("activation", a.dtype);
  activation_f32(cpu_activation(a.act), f32(a.x), a.row_stride, a.rows, a.D, f32(a.y));
}

void softmax(const SoftmaxArgs& a) {
  require_f32("softmax", a.dtype);
  softmax_f32(f32(a.x), a.row_stride, a.rows, a.D, f32(a.y));
}

void rope(const RopeArgs& a) {
  require_f32("apply_rope", a.dtype);
  rope_f32(f32(a.x), a.B, a.S, a.H, a.D, a.stride_b, a.stride_s, a.stride_h, a.cos, a.sin,
           a.interleaved, f32(a.out));
}

void attention(const backend::AttentionArgs& a) {
  require_f32("attention", a.dtype);
  cpu::AttentionArgs c;
  c.batch = a.batch;
  c.seq_q = a.seq_q;
  c.seq_k = a.seq_k;
  c.heads = a.heads;
  c.head_dim = a.head_dim;
  c.head_dim_v = a.head_dim_v;
  c.q = f32(a.q);
  c.q_stride_b = a.q_stride_b;
  c.q_stride_s = a.q_stride_s;
  c.q_stride_h = a.q_stride_h;
  c.k = f32(a.k);
  c.k_stride_b = a.k_stride_b;
  c.k_stride_s = a.k_stride_s;
  c.k_stride_h = a.k_stride_h;
  c.v = f32(a.v);
  c.v_stride_b = a.v_stride_b;
  c.v_stride_s = a.v_stride_s;
  c.v_stride_h = a.v_stride_h;
  c.key_keep = a.key_keep;
  c.bias = a.bias;
  c.bias_stride_b = a.bias_stride_b;
  c.bias_stride_h = a.bias_stride_h;
  c.bias_stride_q = a.bias_stride_q;
  c.bias_stride_k = a.bias_stride_k;
  c.scale = a.scale;
  c.out = f32(a.out);
  c.lse = a.lse;
  c.row_max = a.row_max;
  c.row_sum = a.row_sum;
  attention_f32(c);
}

void attention_merge_add(const AttentionMergeAddArgs& a) {
  require_f32("attention_merge", a.dtype);
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  const float* po = f32(a.out);
  const int64_t B = a.B, S = a.S, H = a.H, Dv = a.Dv;
#pragma omp parallel for collapse(2) if (B * S * H * Dv > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t h = 0; h < H; ++h) {
        const float m = a.row_max[b * a.max_stride_b + h * a.max_stride_h + s];
        if (m == -std::numeric_limits<float>::infinity()) continue;  // no visible key here
        const int64_t row = (b * S + s) * H + h;
        double* o = a.acc + row * Dv;
        // Factors are powers of two: the products are exact.
        if (m > a.ref[row]) {  // rescale what is accumulated to the new reference
          if (a.ref[row] != kNegInf) {
            const double c = std::ldexp(1.0, static_cast<int>(a.ref[row] - m));
            for (int64_t d = 0; d < Dv; ++d) o[d] *= c;
            a.sum[row] *= c;
          }
          a.ref[row] = m;
        }
        const double c = std::ldexp(1.0, static_cast<int>(m - a.ref[row]));
        const float* p = po + b * a.out_stride_b + s * a.out_stride_s + h * Dv;
        for (int64_t d = 0; d < Dv; ++d) o[d] += c * static_cast<double>(p[d]);
        a.sum[row] += c * static_cast<double>(a.row_sum[b * a.sum_stride_b + h * a.sum_stride_h + s]);
      }
    }
  }
}

void attention_merge_out(const AttentionMergeOutArgs& a) {
  require_f32("attention_merge", a.dtype);
  float* dst = f32(a.out);
#pragma omp parallel for if (a.rows * a.Dv > (1 << 15))
  for (int64_t r = 0; r < a.rows; ++r) {
    for (int64_t d = 0; d < a.Dv; ++d) {
      dst[r * a.Dv + d] =
          a.sum[r] == 0.0 ? 0.0f : static_cast<float>(a.acc[r * a.Dv + d] / a.sum[r]);
    }
  }
}

void conv2d(const Conv2dArgs& a) {
  require_f32("conv2d", a.dtype);
  conv2d_f32(f32(a.x), a.w, a.w_dtype == DType::BF16, a.bias, a.g, f32(a.out));
}

void conv3d(const Conv3dArgs& a) {
  require_f32("conv3d", a.dtype);
  conv3d_f32(f32(a.x), a.w, a.w_dtype == DType::BF16, a.bias, a.g, f32(a.out));
}

void upsample_nearest2d(const UpsampleArgs& a) {
  require_f32("upsample_nearest2d", a.dtype);
  upsample_nearest2d_f32(f32(a.x), a.planes, a.H, a.W, a.factor, f32(a.y));
}

void binary(const BinaryArgs& a) {
  require_f32("binary", a.dtype);
  const cpu::BinaryOp op = a.op == backend::BinaryOp::kAdd   ? cpu::BinaryOp::kAdd
                           : a.op == backend::BinaryOp::kSub ? cpu::BinaryOp::kSub
                           : a.op == backend::BinaryOp::kMul ? cpu::BinaryOp::kMul
                                                             : cpu::BinaryOp::kDiv;
  binary_f32(op, a.ndim, a.shape, f32(a.a), a.a_strides, f32(a.b), a.b_strides, f32(a.out));
}

void scale(const ScaleArgs& a) {
  require_f32("scale", a.dtype);
  scale_f32(f32(a.x), a.row_stride, a.rows, a.D, a.s, f32(a.y));
}

void modulate(const ModulateArgs& a) {
  require_f32("modulate", a.dtype);
  require_f32("modulate", a.param_dtype);
  modulate_f32(f32(a.x), a.B, a.S, a.D, f32(a.shift), a.shift_bstride, f32(a.scale),
               a.scale_bstride, f32(a.out));
}

void gated_add(const GatedAddArgs& a) {
  require_f32("gated_add", a.dtype);
  require_f32("gated_add", a.gate_dtype);
  gated_add_f32(f32(a.x), f32(a.gate), a.gate_bstride, f32(a.y), a.B, a.S, a.D, f32(a.out));
}

void lincomb(const LincombArgs& a) {
  require_f32("lincomb", a.dtype);
  lincomb_f32(a.terms, a.coef, reinterpret_cast<const float* const*>(a.t), a.post_mul, a.post_div,
              a.n, f32(a.out));
}

void count_non_finite(const CountNonFiniteArgs& a) {
  require_f32("count_non_finite", a.dtype);
  *a.count = count_non_finite_f32(f32(a.x), a.n);
}

void clamp(const ClampArgs& a) {
  require_f32("clamp", a.dtype);
  clamp_f32(f32(a.x), a.n, a.lo, a.hi, f32(a.y));
}

void affine(const AffineArgs& a) {
  require_f32("affine", a.dtype);
  affine_f32(a.kind == AffineKind::kDivAdd, f32(a.x), a.outer, a.C, a.inner, a.a, a.b, f32(a.y));
}

void copy(const CopyArgs& a) {
  if (a.src_dtype == a.dst_dtype) {
    strided_copy(a.ndim, a.shape, a.src, a.src_strides, a.dst, a.dst_strides,
                 core::dtype_size(a.src_dtype));
    return;
  }
  convert_copy(a.ndim, a.shape, a.src, a.src_strides, a.src_dtype, a.dst, a.dst_strides,
               a.dst_dtype);
}

void fill(const FillArgs& a) { fill_values(a.x, a.n, a.value, a.dtype); }

void embedding(const EmbeddingArgs& a) {
  require_f32("embedding", a.out_dtype);
  PARADIT_CHECK(a.table_dtype == DType::F32 || a.table_dtype == DType::BF16,
                "embedding: CPU tables are F32 or BF16, got ", core::dtype_name(a.table_dtype));
  embedding_f32(a.table, a.table_dtype == DType::BF16, a.D, a.ids, a.n, f32(a.out));
}

}  // namespace paradit::backend::cpu
