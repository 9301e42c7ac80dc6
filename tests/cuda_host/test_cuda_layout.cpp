// Host-side checks of the CUDA backend's pure helpers (no GPU, no CUDA header needed): dims
// merging of strided copies, the cuBLASLt view of row-major GEMMs, the cuDNN attention tensor
// layout and eligibility rules, the lowering of convolutions to cuDNN. The kernels themselves
// are checked against the CPU by the backend-ops test on a machine with a GPU.

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "backend/cuda/attention.h"
#include "backend/cuda/conv.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/layout.h"

namespace paradit::backend::cuda::detail {
namespace {

// ---------------------------------------------------------------- layout.h

TEST(CudaLayout, GridForStaysInRange) {
  EXPECT_EQ(grid_for(0, 256), 1u);
  EXPECT_EQ(grid_for(1, 256), 1u);
  EXPECT_EQ(grid_for(257, 256), 2u);
  EXPECT_EQ(grid_for(int64_t{1} << 40, 256), 65536u);
}

TEST(CudaLayout, PointerAlignment) {
  EXPECT_EQ(pointer_alignment(reinterpret_cast<const void*>(uintptr_t{0x1000})), 256u);
  EXPECT_EQ(pointer_alignment(reinterpret_cast<const void*>(uintptr_t{0x1010})), 16u);
  EXPECT_EQ(pointer_alignment(reinterpret_cast<const void*>(uintptr_t{0x1002})), 2u);
  EXPECT_EQ(pointer_alignment(reinterpret_cast<const void*>(uintptr_t{0x1001})), 1u);
}

TEST(CudaLayout, MergeDimsCollapsesContiguous) {
  const int64_t shape[3] = {2, 3, 4};
  int64_t s[3];
  contiguous_strides(3, shape, s);
  EXPECT_EQ(s[0], 12);
  EXPECT_EQ(s[1], 4);
  EXPECT_EQ(s[2], 1);
  const MergedDims<2> m = merge_dims<2>(3, shape, {s, s});
  ASSERT_EQ(m.nd, 1);
  EXPECT_EQ(m.shape[0], 24);
  EXPECT_EQ(m.strides[0][0], 1);
  EXPECT_EQ(m.strides[1][0], 1);
  EXPECT_TRUE(is_dense(m, 0));
  EXPECT_TRUE(is_dense(m, 1));
}

TEST(CudaLayout, MergeDimsKeepsTransposeAndDropsOnes) {
  // src: a (4, 1, 3) view of a (3, 4) matrix transposed; dst contiguous.
  const int64_t shape[3] = {4, 1, 3};
  const int64_t src[3] = {1, 99, 4};
  int64_t dst[3];
  contiguous_strides(3, shape, dst);
  const MergedDims<2> m = merge_dims<2>(3, shape, {src, dst});
  ASSERT_EQ(m.nd, 2);
  EXPECT_EQ(m.shape[0], 4);
  EXPECT_EQ(m.shape[1], 3);
  EXPECT_EQ(m.strides[0][0], 1);
  EXPECT_EQ(m.strides[0][1], 4);
  EXPECT_EQ(m.strides[1][0], 3);
  EXPECT_EQ(m.strides[1][1], 1);
  EXPECT_FALSE(is_dense(m, 0));
  EXPECT_FALSE(is_dense(m, 1));
}

TEST(CudaLayout, MergeDimsWithBroadcast) {
  // out (2, 3, 4) contiguous, a the same, b broadcast along dim 1 ((2, 1, 4) expanded).
  const int64_t shape[3] = {2, 3, 4};
  int64_t out[3];
  contiguous_strides(3, shape, out);
  const int64_t b[3] = {4, 0, 1};
  const MergedDims<3> m = merge_dims<3>(3, shape, {out, out, b});
  ASSERT_EQ(m.nd, 3);  // the broadcast dim blocks merging on both sides
  // Every element's offsets agree with the unmerged index arithmetic.
  for (int64_t i = 0; i < 24; ++i) {
    int64_t rem = i, ob = 0;
    for (int k = m.nd - 1; k >= 0; --k) {
      ob += rem % m.shape[k] * m.strides[2][k];
      rem /= m.shape[k];
    }
    const int64_t i0 = i / 12, i2 = i % 4;
    EXPECT_EQ(ob, i0 * 4 + i2) << i;
  }
}

TEST(CudaLayout, MergeDimsRandomViewsAgree) {
  // Random shapes and permuted/sliced strides: merged offsets equal the original ones.
  std::mt19937 gen(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int nd = 1 + static_cast<int>(gen() % 5);
    int64_t shape[kMaxDims], a[kMaxDims], b[kMaxDims];
    for (int i = 0; i < nd; ++i) shape[i] = 1 + static_cast<int64_t>(gen() % 4);
    contiguous_strides(nd, shape, a);
    // b: strides of a larger buffer with padding on some dims.
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; --i) {
      b[i] = s;
      s *= shape[i] + static_cast<int64_t>(gen() % 2);
    }
    if (gen() % 2 && nd >= 2) std::swap(b[0], b[nd - 1]);
    const MergedDims<2> m = merge_dims<2>(nd, shape, {a, b});
    const int64_t n = numel(nd, shape);
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i, oa = 0, ob = 0, ma = 0, mb = 0;
      for (int k = nd - 1; k >= 0; --k) {
        oa += rem % shape[k] * a[k];
        ob += rem % shape[k] * b[k];
        rem /= shape[k];
      }
      rem = i;
      for (int k = m.nd - 1; k >= 0; --k) {
        ma += rem % m.shape[k] * m.strides[0][k];
        mb += rem % m.shape[k] * m.strides[1][k];
        rem /= m.shape[k];
      }
      ASSERT_EQ(oa, ma) << "trial " << trial << " element " << i;
      ASSERT_EQ(ob, mb) << "trial " << trial << " element " << i;
    }
  }
}

// ---------------------------------------------------------------- gemm.h

// D = op(A)·op(B) in cuBLASLt's column-major convention, op given by `transposed`.
std::vector<double> colmajor_gemm(const LtMatrix& ma, const std::vector<double>& a,
                                  const LtMatrix& mb, const std::vector<double>& b,
                                  const LtMatrix& mc) {
  auto at = [](const LtMatrix& m, const std::vector<double>& v, uint64_t i, uint64_t j) {
    // element (i, j) of op(M)
    return m.transposed ? v[j + i * m.ld] : v[i + j * m.ld];
  };
  const uint64_t k_a = ma.transposed ? ma.rows : ma.cols;
  const uint64_t k_b = mb.transposed ? mb.cols : mb.rows;
  EXPECT_EQ(k_a, k_b);
  std::vector<double> c(mc.ld * mc.cols, 0.0);
  for (uint64_t i = 0; i < mc.rows; ++i)
    for (uint64_t j = 0; j < mc.cols; ++j) {
      double s = 0;
      for (uint64_t k = 0; k < k_a; ++k) s += at(ma, a, i, k) * at(mb, b, k, j);
      c[i + j * mc.ld] = s;
    }
  return c;
}

void check_gemm_mapping(bool trans_b, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb,
                        int64_t ldc) {
  std::mt19937 gen(static_cast<uint32_t>(M * 131 + N * 17 + K));
  std::uniform_int_distribution<int> dist(-3, 3);
  std::vector<double> A(M * lda), B(trans_b ? N * ldb : K * ldb);
  for (auto& v : A) v = dist(gen);
  for (auto& v : B) v = dist(gen);
  GemmArgs g;
  g.trans_b = trans_b;
  g.M = M;
  g.N = N;
  g.K = K;
  g.lda = lda;
  g.ldb = ldb;
  g.ldc = ldc;
  const LtProblem p = lt_problem(g);
  // cuBLASLt's A is our B buffer, its B our A buffer; its C (N×M, ld ldc) our row-major C.
  const std::vector<double> c = colmajor_gemm(p.a, B, p.b, A, p.c);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double want = 0;
      for (int64_t k = 0; k < K; ++k)
        want += A[m * lda + k] * (trans_b ? B[n * ldb + k] : B[k * ldb + n]);
      ASSERT_EQ(c[m * ldc + n], want) << "m " << m << " n " << n << " trans_b " << trans_b;
    }
}

TEST(CudaGemm, ColumnMajorViewComputesTheRowMajorProduct) {
  check_gemm_mapping(true, 5, 7, 3, 3, 3, 7);    // linear, contiguous
  check_gemm_mapping(true, 4, 6, 5, 9, 8, 11);   // linear, padded rows
  check_gemm_mapping(false, 5, 7, 3, 3, 7, 7);   // matmul, B (K, N)
  check_gemm_mapping(false, 3, 4, 6, 8, 10, 5);  // matmul, padded rows
}

TEST(CudaGemm, LinearMapping) {
  LinearArgs l;
  l.M = 10;
  l.N = 20;
  l.K = 30;
  l.ldx = 32;
  l.ldw = 30;
  l.ldy = 24;
  l.x_dtype = l.w_dtype = DType::BF16;
  l.y_dtype = DType::F32;
  float bias = 0;
  l.bias = &bias;
  l.activation = Activation::kGeluTanh;
  const GemmArgs g = linear_gemm(l);
  EXPECT_TRUE(g.trans_b);
  EXPECT_EQ(g.lda, 32);
  EXPECT_EQ(g.ldb, 30);
  EXPECT_EQ(g.ldc, 24);
  EXPECT_EQ(g.ab_dtype, DType::BF16);
  EXPECT_EQ(g.c_dtype, DType::F32);
  EXPECT_EQ(g.epilogue, Epilogue::kBiasGeluTanh);
  const LtProblem p = lt_problem(g);
  EXPECT_EQ(p.a.rows, 30u);  // w (N, K) row-major = column-major (K×N), transposed
  EXPECT_EQ(p.a.cols, 20u);
  EXPECT_TRUE(p.a.transposed);
  EXPECT_EQ(p.b.rows, 30u);  // x (M, K) = column-major (K×M)
  EXPECT_EQ(p.b.cols, 10u);
  EXPECT_EQ(p.c.rows, 20u);  // yᵀ (N×M)
  EXPECT_EQ(p.c.cols, 10u);
  EXPECT_EQ(p.c.ld, 24);
}

TEST(CudaGemm, EpiloguesFuseOnlyTanhGelu) {
  EXPECT_EQ(linear_epilogue(false, Activation::kNone), Epilogue::kNone);
  EXPECT_EQ(linear_epilogue(true, Activation::kNone), Epilogue::kBias);
  EXPECT_EQ(linear_epilogue(false, Activation::kGeluTanh), Epilogue::kGeluTanh);
  EXPECT_EQ(linear_epilogue(true, Activation::kGeluTanh), Epilogue::kBiasGeluTanh);
  EXPECT_EQ(linear_epilogue(true, Activation::kGeluErf), Epilogue::kBias);
  EXPECT_EQ(linear_epilogue(false, Activation::kSilu), Epilogue::kNone);
}

TEST(CudaGemm, PlanKeysDifferInEveryField) {
  GemmPlanKey a;
  GemmPlanKey b = a;
  EXPECT_EQ(a, b);
  b.align_bias = 16;
  EXPECT_NE(a, b);
  b = a;
  b.epilogue = Epilogue::kBias;
  EXPECT_NE(a, b);
  b = a;
  b.ldc = 1;
  EXPECT_LT(a, b);
}

// ---------------------------------------------------------------- attention.h

const void* fake_ptr(uintptr_t v) { return reinterpret_cast<const void*>(v); }

// q, k, v views of a fused (B, S, 3, H, D) qkv buffer, as the DiT blocks make them.
AttentionArgs fused_qkv_args(int64_t B, int64_t S, int64_t H, int64_t D, DType dtype) {
  AttentionArgs a;
  a.batch = B;
  a.seq_q = a.seq_k = S;
  a.heads = H;
  a.head_dim = a.head_dim_v = D;
  const uintptr_t base = 0x100000;
  const int64_t es = dtype == DType::F32 ? 4 : 2;
  a.q = fake_ptr(base);
  a.k = fake_ptr(base + H * D * es);
  a.v = fake_ptr(base + 2 * H * D * es);
  a.q_stride_b = a.k_stride_b = a.v_stride_b = S * 3 * H * D;
  a.q_stride_s = a.k_stride_s = a.v_stride_s = 3 * H * D;
  a.q_stride_h = a.k_stride_h = a.v_stride_h = D;
  a.out = const_cast<void*>(fake_ptr(0x800000));
  a.dtype = dtype;
  a.scale = 0.125f;
  return a;
}

TEST(CudaAttention, SdpaLayoutAddressesTheSameElements) {
  AttentionArgs a = fused_qkv_args(2, 5, 3, 8, DType::BF16);
  a.seq_k = 7;  // cross attention: separate k, v buffers
  a.k_stride_b = 7 * 3 * 8;
  a.k_stride_s = 3 * 8;
  a.k_stride_h = 8;
  a.head_dim_v = 16;
  a.v_stride_b = 7 * 3 * 16;
  a.v_stride_s = 3 * 16;
  a.v_stride_h = 16;
  const SdpaLayout l = sdpa_layout(a);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t s = 0; s < 7; ++s)
        for (int64_t d = 0; d < 16; ++d) {
          if (s < 5 && d < 8) {
            EXPECT_EQ(b * l.q.strides[0] + h * l.q.strides[1] + s * l.q.strides[2] + d,
                      b * a.q_stride_b + s * a.q_stride_s + h * a.q_stride_h + d);
          }
          if (d < 8) {  // Kᵀ (b, h, d, s)
            EXPECT_EQ(b * l.kt.strides[0] + h * l.kt.strides[1] + d * l.kt.strides[2] +
                          s * l.kt.strides[3],
                      b * a.k_stride_b + s * a.k_stride_s + h * a.k_stride_h + d);
          }
          EXPECT_EQ(b * l.v.strides[0] + h * l.v.strides[1] + s * l.v.strides[2] + d,
                    b * a.v_stride_b + s * a.v_stride_s + h * a.v_stride_h + d);
          if (s < 5) {  // out (B, Sq, H, Dv) contiguous
            EXPECT_EQ(b * l.o.strides[0] + h * l.o.strides[1] + s * l.o.strides[2] + d,
                      ((b * 5 + s) * 3 + h) * 16 + d);
          }
        }
  EXPECT_EQ(l.kt.dims[2], 8);
  EXPECT_EQ(l.kt.dims[3], 7);
  EXPECT_EQ(l.s.dims[2], 5);
  EXPECT_EQ(l.s.dims[3], 7);
  // lse (B, H, Sq) contiguous as (b, h, s_q, 1)
  EXPECT_EQ(l.stats.strides[0], 15);
  EXPECT_EQ(l.stats.strides[1], 5);
  EXPECT_EQ(l.stats.strides[2], 1);
  EXPECT_FALSE(l.has_bias);
}

TEST(CudaAttention, SdpaBiasBroadcastDimsBecomeOnes) {
  AttentionArgs a = fused_qkv_args(2, 6, 4, 64, DType::F16);
  float bias = 0;
  a.bias = &bias;
  // (1, H, Sq, Sk) contiguous, shared over the batch.
  a.bias_stride_b = 0;
  a.bias_stride_h = 36;
  a.bias_stride_q = 6;
  a.bias_stride_k = 1;
  const SdpaLayout l = sdpa_layout(a);
  ASSERT_TRUE(l.has_bias);
  EXPECT_EQ(l.bias.dims[0], 1);
  EXPECT_EQ(l.bias.dims[1], 4);
  EXPECT_EQ(l.bias.dims[2], 6);
  EXPECT_EQ(l.bias.dims[3], 6);
  EXPECT_EQ(l.bias.strides[0], 144);  // packed value for the broadcast dim
  EXPECT_EQ(l.bias.strides[1], 36);
  EXPECT_EQ(l.bias.strides[2], 6);
  EXPECT_EQ(l.bias.strides[3], 1);
  // (B, 1, 1, Sk): a key mask given as a bias.
  a.bias_stride_b = 6;
  a.bias_stride_h = 0;
  a.bias_stride_q = 0;
  const SdpaLayout m = sdpa_layout(a);
  EXPECT_EQ(m.bias.dims[0], 2);
  EXPECT_EQ(m.bias.dims[1], 1);
  EXPECT_EQ(m.bias.dims[2], 1);
  EXPECT_EQ(m.bias.dims[3], 6);
  EXPECT_EQ(m.bias.strides[0], 6);
}

TEST(CudaAttention, CudnnEligibility) {
  AttentionArgs a = fused_qkv_args(1, 4608, 24, 128, DType::BF16);
  EXPECT_EQ(cudnn_unsupported_reason(a), nullptr);
  a.head_dim = a.head_dim_v = 72;  // PixArt
  a.q_stride_h = a.k_stride_h = a.v_stride_h = 72;
  a.q_stride_s = a.k_stride_s = a.v_stride_s = 3 * 24 * 72;
  a.k = fake_ptr(0x100000 + 24 * 72 * 2);
  a.v = fake_ptr(0x100000 + 2 * 24 * 72 * 2);
  EXPECT_EQ(cudnn_unsupported_reason(a), nullptr);
  AttentionArgs f = fused_qkv_args(1, 64, 2, 64, DType::F32);
  EXPECT_NE(cudnn_unsupported_reason(f), nullptr);
  AttentionArgs odd = fused_qkv_args(1, 64, 2, 36, DType::BF16);
  EXPECT_NE(cudnn_unsupported_reason(odd), nullptr);
  AttentionArgs big = fused_qkv_args(1, 64, 2, 512, DType::BF16);
  EXPECT_NE(cudnn_unsupported_reason(big), nullptr);
  AttentionArgs unnorm = fused_qkv_args(1, 64, 2, 64, DType::BF16);
  float rs = 0, rm = 0;
  unnorm.row_sum = &rs;
  unnorm.row_max = &rm;
  EXPECT_NE(cudnn_unsupported_reason(unnorm), nullptr);
  AttentionArgs misaligned = fused_qkv_args(1, 64, 2, 64, DType::BF16);
  misaligned.q = fake_ptr(0x100002);
  EXPECT_NE(cudnn_unsupported_reason(misaligned), nullptr);
  AttentionArgs strided_bias = fused_qkv_args(1, 64, 2, 64, DType::BF16);
  float bias = 0;
  strided_bias.bias = &bias;
  strided_bias.bias_stride_k = 2;
  EXPECT_NE(cudnn_unsupported_reason(strided_bias), nullptr);
}

TEST(CudaAttention, CudnnRefusesABiasWithAKeyMask) {
  AttentionArgs a = fused_qkv_args(2, 64, 2, 64, DType::BF16);
  a.bias = static_cast<const float*>(fake_ptr(0x900000));
  a.bias_stride_b = 64;
  a.bias_stride_k = 1;
  EXPECT_EQ(cudnn_unsupported_reason(a), nullptr);
  // With a key mask cuDNN sees compacted keys, which the bias columns no longer match.
  const uint8_t keep[2 * 64] = {};
  a.key_keep = keep;
  EXPECT_NE(cudnn_unsupported_reason(a), nullptr);
  a.bias = nullptr;
  EXPECT_EQ(cudnn_unsupported_reason(a), nullptr);
}

TEST(CudaAttention, CudnnBiasRowsAllOn16Bytes) {
  // A (B, 1, 1, Sk) key bias with Sk = 64: every row on a 16-byte boundary.
  AttentionArgs a = fused_qkv_args(2, 64, 2, 64, DType::BF16);
  a.bias = static_cast<const float*>(fake_ptr(0x900000));
  a.bias_stride_b = 64;
  a.bias_stride_k = 1;
  EXPECT_EQ(cudnn_unsupported_reason(a), nullptr);
  // Sk = 77: batch 1's row starts 308 bytes in, although the query stride (0) is aligned.
  AttentionArgs odd = a;
  odd.seq_k = 77;
  odd.k_stride_b = odd.v_stride_b = 77 * 3 * 2 * 64;
  odd.bias_stride_b = 77;
  EXPECT_NE(cudnn_unsupported_reason(odd), nullptr);
  AttentionArgs odd_h = a;
  odd_h.bias_stride_b = 0;
  odd_h.bias_stride_h = 6;
  EXPECT_NE(cudnn_unsupported_reason(odd_h), nullptr);
}

TEST(CudaAttention, FlashEligibility) {
  EXPECT_TRUE(flash_supported(fused_qkv_args(2, 100, 8, 64, DType::BF16)));
  EXPECT_TRUE(flash_supported(fused_qkv_args(2, 100, 8, 128, DType::F16)));
  EXPECT_FALSE(flash_supported(fused_qkv_args(2, 100, 8, 72, DType::BF16)));
  EXPECT_FALSE(flash_supported(fused_qkv_args(2, 100, 8, 64, DType::F32)));
  AttentionArgs b = fused_qkv_args(2, 100, 8, 64, DType::BF16);
  float bias = 0;
  b.bias = &bias;
  EXPECT_FALSE(flash_supported(b));
  AttentionArgs dv = fused_qkv_args(2, 100, 8, 64, DType::BF16);
  dv.head_dim_v = 128;
  EXPECT_FALSE(flash_supported(dv));
}

TEST(CudaAttention, PlanKeysSeparateWhatThePlanDependsOn) {
  const AttentionArgs a = fused_qkv_args(1, 256, 4, 64, DType::BF16);
  EXPECT_EQ(sdpa_plan_key(a, 0, false), sdpa_plan_key(a, 0, false));
  EXPECT_NE(sdpa_plan_key(a, 0, false), sdpa_plan_key(a, 0, true));
  EXPECT_NE(sdpa_plan_key(a, 0, false), sdpa_plan_key(a, 1, false));
  AttentionArgs l = a;
  float lse = 0;
  l.lse = &lse;
  EXPECT_NE(sdpa_plan_key(a, 0, false), sdpa_plan_key(l, 0, false));
  AttentionArgs s = a;
  s.scale = 0.5f;  // by value at execution: the same plan
  EXPECT_EQ(sdpa_plan_key(a, 0, false), sdpa_plan_key(s, 0, false));
  AttentionArgs strided = a;
  strided.k_stride_s = 4 * 64;
  EXPECT_NE(sdpa_plan_key(a, 0, false), sdpa_plan_key(strided, 0, false));
}

// ---------------------------------------------------------------- conv.h

TEST(CudaConv, SymmetricPaddingGoesToCudnn) {
  Conv2dGeometry g;
  g.N = 2;
  g.C = 4;
  g.H = 9;
  g.W = 7;
  g.O = 8;
  g.kh = g.kw = 3;
  g.pad_top = g.pad_bottom = g.pad_left = g.pad_right = 1;
  const ConvLowering l = lower_conv2d(g);
  EXPECT_FALSE(l.explicit_pad);
  EXPECT_EQ(l.spatial, 2);
  EXPECT_EQ(l.pad[0], 1);
  EXPECT_EQ(l.pad[1], 1);
  EXPECT_EQ(l.in[0], 9);
  EXPECT_EQ(l.out[0], g.out_h());
  EXPECT_EQ(l.out[1], g.out_w());
  EXPECT_EQ(l.in_elems_per_sample(), 4 * 9 * 7);
  EXPECT_EQ(l.out_elems_per_sample(), 8 * 9 * 7);
  EXPECT_EQ(l.batch_chunk, 2);
}

TEST(CudaConv, AsymmetricPaddingIsExplicit) {
  // The SD VAE downsampler: pad (0, 1, 0, 1), 3×3 stride 2.
  Conv2dGeometry g;
  g.N = 1;
  g.C = 128;
  g.H = 64;
  g.W = 48;
  g.O = 128;
  g.kh = g.kw = 3;
  g.stride_h = g.stride_w = 2;
  g.pad_bottom = g.pad_right = 1;
  const ConvLowering l = lower_conv2d(g);
  EXPECT_TRUE(l.explicit_pad);
  EXPECT_EQ(l.pad[0], 0);
  EXPECT_EQ(l.in[0], 65);
  EXPECT_EQ(l.in[1], 49);
  EXPECT_EQ(l.out[0], g.out_h());
  EXPECT_EQ(l.out[1], g.out_w());
  EXPECT_EQ(l.pad_geometry.T, 1);
  EXPECT_EQ(l.pad_geometry.H, 64);
  EXPECT_EQ(l.pad_geometry.W, 48);
  EXPECT_EQ(l.pad_geometry.top, 0);
  EXPECT_EQ(l.pad_geometry.bottom, 1);
  EXPECT_EQ(l.pad_geometry.right, 1);
  EXPECT_FALSE(l.pad_geometry.replicate);
}

TEST(CudaConv, CausalReplicatePaddingIsExplicit) {
  // A causal video VAE conv: time padded (2, 0) by replication, space (1, 1).
  Conv3dGeometry g;
  g.N = 1;
  g.C = 16;
  g.T = 5;
  g.H = 12;
  g.W = 10;
  g.O = 32;
  g.kt = g.kh = g.kw = 3;
  g.pad_front = 2;
  g.pad_top = g.pad_bottom = g.pad_left = g.pad_right = 1;
  g.replicate = true;
  const ConvLowering l = lower_conv3d(g);
  EXPECT_TRUE(l.explicit_pad);
  EXPECT_EQ(l.spatial, 3);
  EXPECT_EQ(l.in[0], 7);
  EXPECT_EQ(l.in[1], 14);
  EXPECT_EQ(l.in[2], 12);
  EXPECT_EQ(l.out[0], g.out_t());
  EXPECT_EQ(l.out[1], g.out_h());
  EXPECT_EQ(l.out[2], g.out_w());
  EXPECT_EQ(l.pad_geometry.T, 5);
  EXPECT_EQ(l.pad_geometry.front, 2);
  EXPECT_EQ(l.pad_geometry.back, 0);
  EXPECT_EQ(l.pad_geometry.top, 1);
  EXPECT_EQ(l.pad_geometry.left, 1);
  EXPECT_TRUE(l.pad_geometry.replicate);
  // Replicate without padding: nothing to do.
  g.pad_front = g.pad_top = g.pad_bottom = g.pad_left = g.pad_right = 0;
  EXPECT_FALSE(lower_conv3d(g).explicit_pad);
}

TEST(CudaConv, LargeBatchesRunInChunks) {
  Conv3dGeometry g;
  g.N = 3;
  g.C = 128;
  g.T = 21;
  g.H = 480;
  g.W = 832;
  g.O = 128;
  g.kt = g.kh = g.kw = 3;
  g.pad_front = g.pad_back = g.pad_top = g.pad_bottom = g.pad_left = g.pad_right = 1;
  const ConvLowering l = lower_conv3d(g);
  EXPECT_FALSE(l.explicit_pad);
  EXPECT_EQ(l.batch_chunk, 2);  // 1.07e9 elements per sample
  EXPECT_LE(l.batch_chunk * l.in_elems_per_sample(), kCudnnMaxElems);
  g.C = 512;
  EXPECT_EQ(lower_conv3d(g).batch_chunk, 0);  // one sample alone is too large
}

}  // namespace
}  // namespace paradit::backend::cuda::detail
