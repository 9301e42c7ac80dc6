// Attention on the device against core::attention (CPU, f32, on the same rounded values):
// the flash kernel for BF16/F16 at head dims 64 and 128, with sequence tails, key masks, rows
// that see no key, strided views and the LSE; the reference kernel for the other cases.

#include <gtest/gtest.h>

#ifdef PARADIT_WITH_CUDA

#include <cmath>
#include <cstring>

#include "backend/cuda/attention.h"
#include "backend/cuda/kernels.h"
#include "core/ops.h"
#include "cuda/cuda_test_util.h"

namespace paradit::cuda_test {
namespace {

namespace cu = backend::cuda;

// Key mask (B, Sk) F32: batch 0 keeps every third key dropped, batch 1 keeps none.
Tensor make_mask(int64_t B, int64_t Sk) {
  std::vector<float> m(static_cast<size_t>(B * Sk), 1.0f);
  for (int64_t j = 0; j < Sk; ++j) m[j] = j % 3 == 1 ? 0.0f : 1.0f;
  for (int64_t b = 1; b < B; ++b) {
    for (int64_t j = 0; j < Sk; ++j) m[b * Sk + j] = b == 1 ? 0.0f : 1.0f;
  }
  return Tensor::from_vector(m, {B, Sk});
}

struct Case {
  DType dtype;
  int64_t D;
};

TEST(CudaAttention, FlashMatchesCpu) {
  PARADIT_REQUIRE_CUDA();
  const int64_t B = 3, Sq = 77, Sk = 131, H = 2;  // tails in both sequences
  for (Case c : {Case{DType::BF16, 64}, Case{DType::BF16, 128}, Case{DType::F16, 64},
                 Case{DType::F16, 128}}) {
    SCOPED_TRACE(std::string(dtype_str(c.dtype)) + " D=" + std::to_string(c.D));
    const Tensor q = random_host({B, Sq, H, c.D}, 1, -2.0f, 2.0f);
    const Tensor k = random_host({B, Sk, H, c.D}, 2, -2.0f, 2.0f);
    const Tensor v = random_host({B, Sk, H, c.D}, 3);
    const Tensor qd = on_device(q, c.dtype), kd = on_device(k, c.dtype), vd = on_device(v, c.dtype);
    ASSERT_TRUE(cu::flash_attention_supported(qd, kd, vd));
    for (bool masked : {false, true}) {
      SCOPED_TRACE(masked ? "key mask" : "no mask");
      core::AttentionOptions host_opt, dev_opt;
      host_opt.return_lse = dev_opt.return_lse = true;
      if (masked) {
        host_opt.key_mask = make_mask(B, Sk);
        dev_opt.key_mask = host_opt.key_mask.to_device(Device::CUDA);
      }
      const core::AttentionResult want =
          core::attention(rounded(q, c.dtype), rounded(k, c.dtype), rounded(v, c.dtype), host_opt);
      const core::AttentionResult got = cu::attention(qd, kd, vd, dev_opt);
      EXPECT_EQ(got.out.dtype(), c.dtype);
      EXPECT_LE(rel_error(got.out, want.out), tolerance(c.dtype));
      EXPECT_LE(rel_error(got.lse, want.lse), 1e-3);
      if (masked) {
        // Batch 1 sees no key: its rows are 0 and its lse −inf.
        const std::vector<float> out = got.out.select(0, 1).contiguous().to_vector();
        for (float x : out) ASSERT_EQ(x, 0.0f);
        const std::vector<float> lse = got.lse.select(0, 1).contiguous().to_vector();
        for (float x : lse) ASSERT_TRUE(std::isinf(x) && x < 0);
      }
    }
  }
}

TEST(CudaAttention, FlashOnFusedProjectionViews) {
  PARADIT_REQUIRE_CUDA();
  const int64_t B = 2, S = 100, H = 3, D = 128;
  // q, k, v as head slices of one (B, S, 3·H, D) tensor: strided, last dim contiguous.
  const Tensor qkv = random_host({B, S, 3 * H, D}, 4, -2.0f, 2.0f);
  const Tensor r = rounded(qkv, DType::BF16);
  const Tensor d = on_device(qkv, DType::BF16);
  core::AttentionOptions opt;
  opt.scale = 0.05f;
  const core::AttentionResult want =
      core::attention(r.slice(2, 0, H), r.slice(2, H, 2 * H), r.slice(2, 2 * H, 3 * H), opt);
  const core::AttentionResult got =
      cu::attention(d.slice(2, 0, H), d.slice(2, H, 2 * H), d.slice(2, 2 * H, 3 * H), opt);
  EXPECT_LE(rel_error(got.out, want.out), 1e-2);
  EXPECT_FALSE(got.lse.defined());
}

TEST(CudaAttention, FlashMatchesReferenceKernelOnLongSequences) {
  PARADIT_REQUIRE_CUDA();
  const int64_t B = 1, S = 1100, H = 2, D = 128;
  const Tensor q = on_device(random_host({B, S, H, D}, 5, -3.0f, 3.0f), DType::BF16);
  const Tensor k = on_device(random_host({B, S, H, D}, 6, -3.0f, 3.0f), DType::BF16);
  const Tensor v = on_device(random_host({B, S, H, D}, 7), DType::BF16);
  core::AttentionOptions opt;
  opt.return_lse = true;
  const core::AttentionResult flash = cu::attention(q, k, v, opt);
  const core::AttentionResult ref = cu::attention_reference(q, k, v, opt);
  EXPECT_LE(rel_error(flash.out, ref.out.to_device(Device::CPU).to(DType::F32)), 1e-2);
  EXPECT_LE(rel_error(flash.lse, ref.lse.to_device(Device::CPU)), 1e-3);
}

TEST(CudaAttention, ReferenceKernelF32WithMaskAndBias) {
  PARADIT_REQUIRE_CUDA();
  const int64_t B = 2, Sq = 19, Sk = 23, H = 3, D = 40, Dv = 24;
  const Tensor q = random_host({B, Sq, H, D}, 8);
  const Tensor k = random_host({B, Sk, H, D}, 9);
  const Tensor v = random_host({B, Sk, H, Dv}, 10);
  const Tensor bias = random_host({1, H, Sq, Sk}, 11);
  core::AttentionOptions host_opt;
  host_opt.key_mask = make_mask(B, Sk);
  host_opt.bias = bias;
  host_opt.return_lse = true;
  core::AttentionOptions dev_opt = host_opt;
  dev_opt.key_mask = host_opt.key_mask.to_device(Device::CUDA);
  dev_opt.bias = bias.to_device(Device::CUDA);
  const Tensor qd = q.to_device(Device::CUDA), kd = k.to_device(Device::CUDA);
  const Tensor vd = v.to_device(Device::CUDA);
  EXPECT_FALSE(cu::flash_attention_supported(qd, kd, vd, dev_opt));
  const core::AttentionResult want = core::attention(q, k, v, host_opt);
  const core::AttentionResult got = cu::attention(qd, kd, vd, dev_opt);  // falls back
  EXPECT_LE(rel_error(got.out, want.out), 1e-5);
  EXPECT_LE(rel_error(got.lse, want.lse), 1e-5);
}

TEST(CudaAttention, BadArguments) {
  PARADIT_REQUIRE_CUDA();
  const Tensor q = Tensor::empty({1, 8, 2, 64}, DType::BF16, Device::CUDA);
  const Tensor k = Tensor::empty({1, 9, 2, 64}, DType::BF16, Device::CUDA);
  EXPECT_THROW(cu::attention(q, k, Tensor::empty({1, 10, 2, 64}, DType::BF16, Device::CUDA)),
               Error);                                         // Sk mismatch
  EXPECT_THROW(cu::attention(q, k, k.to(DType::F16)), Error);  // mixed dtypes
  core::AttentionOptions opt;
  opt.key_mask = Tensor::full({1, 9}, 1.0f);  // on the host
  EXPECT_THROW(cu::attention(q, k, k, opt), Error);
}

}  // namespace
}  // namespace paradit::cuda_test

#endif  // PARADIT_WITH_CUDA
