// The CUDA backend's tensor kernels against the CPU ops of core/ops.h on random inputs, for
// F32, BF16 and F16 activations (error measure and tolerances: cuda_test_util.h).

#include <gtest/gtest.h>

#ifdef PARADIT_WITH_CUDA

#include "backend/cuda/kernels.h"
#include "core/ops.h"
#include "cuda/cuda_test_util.h"

namespace paradit::cuda_test {
namespace {

namespace cu = backend::cuda;

constexpr DType kDTypes[] = {DType::F32, DType::BF16, DType::F16};

TEST(CudaKernels, Activations) {
  PARADIT_REQUIRE_CUDA();
  const Tensor x = random_host({3, 17, 40}, 10, -4.0f, 4.0f);
  for (DType t : kDTypes) {
    SCOPED_TRACE(dtype_str(t));
    const Tensor xr = rounded(x, t);
    const Tensor xd = on_device(x, t);
    EXPECT_LE(rel_error(cu::gelu(xd), core::gelu(xr)), tolerance(t));
    EXPECT_LE(rel_error(cu::gelu(xd, true), core::gelu(xr, true)), tolerance(t));
    EXPECT_LE(rel_error(cu::silu(xd), core::silu(xr)), tolerance(t));
    EXPECT_EQ(cu::silu(xd).dtype(), t);
    // A strided view: a slice of the last dim.
    EXPECT_LE(rel_error(cu::silu(xd.slice(2, 5, 30)), core::silu(xr.slice(2, 5, 30))),
              tolerance(t));
  }
}

TEST(CudaKernels, Softmax) {
  PARADIT_REQUIRE_CUDA();
  const Tensor x = random_host({4, 9, 300}, 11, -8.0f, 8.0f);
  for (DType t : kDTypes) {
    SCOPED_TRACE(dtype_str(t));
    const Tensor xr = rounded(x, t);
    const Tensor xd = on_device(x, t);
    EXPECT_LE(rel_error(cu::softmax(xd), core::softmax(xr)), tolerance(t));
    EXPECT_LE(rel_error(cu::softmax(xd.slice(1, 2, 7)), core::softmax(xr.slice(1, 2, 7))),
              tolerance(t));
  }
  // Long rows (more elements than threads per block, several passes).
  const Tensor y = random_host({3, 5000}, 12, -3.0f, 3.0f);
  EXPECT_LE(rel_error(cu::softmax(y.to_device(Device::CUDA)), core::softmax(y)), 1e-5);
}

TEST(CudaKernels, LayerNormWithModulation) {
  PARADIT_REQUIRE_CUDA();
  const int64_t B = 2, S = 13, D = 96;
  // A large mean: the two-pass statistics must keep the variance accurate.
  const Tensor x = random_host({B, S, D}, 20, 2.0f, 6.0f);
  const Tensor w = random_host({D}, 21, 0.5f, 1.5f);
  const Tensor b = random_host({D}, 22);
  const Tensor shift = random_host({B, D}, 23);
  const Tensor scale = random_host({B, D}, 24);
  const float eps = 1e-6f;
  for (DType t : kDTypes) {
    SCOPED_TRACE(dtype_str(t));
    const Tensor xr = rounded(x, t);
    const Tensor xd = on_device(x, t);
    const Tensor wd = w.to_device(Device::CUDA), bd = b.to_device(Device::CUDA);
    const Tensor shd = shift.to_device(Device::CUDA), scd = scale.to_device(Device::CUDA);
    EXPECT_LE(rel_error(cu::layer_norm(xd, {}, {}, eps), core::layer_norm(xr, {}, {}, eps)),
              tolerance(t));
    EXPECT_LE(rel_error(cu::layer_norm(xd, wd, bd, eps), core::layer_norm(xr, w, b, eps)),
              tolerance(t));
    // Flux/SD3 style: LayerNorm without affine, then x·(1 + scale) + shift, fused.
    const Tensor want = core::modulate(core::layer_norm(xr, {}, {}, eps), shift, scale);
    EXPECT_LE(rel_error(cu::layer_norm(xd, {}, {}, eps, shd, scd), want), tolerance(t));
    // Parameters in bf16 are accepted (used as f32).
    const Tensor want_bf = core::modulate(core::layer_norm(xr, {}, {}, eps),
                                          rounded(shift, DType::BF16), rounded(scale, DType::BF16));
    EXPECT_LE(rel_error(cu::layer_norm(xd, {}, {}, eps, on_device(shift, DType::BF16),
                                       on_device(scale, DType::BF16)),
                        want_bf),
              tolerance(t));
  }
}

TEST(CudaKernels, RmsNorm) {
  PARADIT_REQUIRE_CUDA();
  const int64_t B = 2, S = 7, H = 3, D = 64;
  const Tensor x = random_host({B, S, H, D}, 30, -2.0f, 2.0f);
  const Tensor w = random_host({D}, 31, 0.5f, 1.5f);
  for (DType t : kDTypes) {
    SCOPED_TRACE(dtype_str(t));
    const Tensor xr = rounded(x, t);
    const Tensor xd = on_device(x, t);
    EXPECT_LE(
        rel_error(cu::rms_norm(xd, w.to_device(Device::CUDA), 1e-6f), core::rms_norm(xr, w, 1e-6f)),
        tolerance(t));
    EXPECT_LE(rel_error(cu::rms_norm(xd, {}, 1e-6f), core::rms_norm(xr, {}, 1e-6f)), tolerance(t));
  }
  // With modulation over (B, S·H·…) rows: x (B, S, D), shift/scale (B, D) and (1, D).
  const Tensor x3 = random_host({B, S, D}, 32);
  const Tensor shift = random_host({B, D}, 33), scale = random_host({1, D}, 34);
  const Tensor want =
      core::modulate(core::rms_norm(x3, w, 1e-6f), shift, core::concat({scale, scale}, 0));
  EXPECT_LE(rel_error(cu::rms_norm(x3.to_device(Device::CUDA), w.to_device(Device::CUDA), 1e-6f,
                                   shift.to_device(Device::CUDA), scale.to_device(Device::CUDA)),
                      want),
            1e-5);
}

TEST(CudaKernels, Rope) {
  PARADIT_REQUIRE_CUDA();
  const int64_t B = 2, S = 11, H = 3, D = 32;
  // q as a slice of a fused (B, S, 3·H, D) projection: strided over heads.
  const Tensor fused = random_host({B, S, 3 * H, D}, 40);
  const Tensor cos = random_host({S, D}, 41), sin = random_host({S, D}, 42);
  for (DType t : kDTypes) {
    SCOPED_TRACE(dtype_str(t));
    const Tensor fr = rounded(fused, t);
    const Tensor fd = on_device(fused, t);
    for (core::RopeStyle style : {core::RopeStyle::kInterleaved, core::RopeStyle::kHalfSplit}) {
      SCOPED_TRACE(static_cast<int>(style));
      const Tensor want = core::apply_rope(fr.slice(2, H, 2 * H), cos, sin, style);
      const Tensor got = cu::apply_rope(fd.slice(2, H, 2 * H), cos.to_device(Device::CUDA),
                                        sin.to_device(Device::CUDA), style);
      EXPECT_LE(rel_error(got, want), tolerance(t));
    }
  }
}

TEST(CudaKernels, BroadcastAddMul) {
  PARADIT_REQUIRE_CUDA();
  const Tensor a = random_host({2, 5, 8}, 50);
  const Tensor cases[] = {random_host({2, 5, 8}, 51), random_host({8}, 52),
                          random_host({2, 1, 8}, 53), random_host({5, 1}, 54)};
  for (DType t : kDTypes) {
    SCOPED_TRACE(dtype_str(t));
    const Tensor ar = rounded(a, t);
    const Tensor ad = on_device(a, t);
    for (const Tensor& b : cases) {
      SCOPED_TRACE(core::shape_str(b.shape()));
      const Tensor br = rounded(b, t);
      const Tensor bd = on_device(b, t);
      EXPECT_LE(rel_error(cu::add(ad, bd), core::add(ar, br)), tolerance(t));
      EXPECT_LE(rel_error(cu::mul(ad, bd), core::mul(ar, br)), tolerance(t));
      // Broadcasting on the left operand too.
      EXPECT_LE(rel_error(cu::add(bd, ad), core::add(br, ar)), tolerance(t));
    }
  }
  // Mixed dtypes compute in F32.
  const Tensor mixed = cu::add(on_device(a, DType::BF16), a.to_device(Device::CUDA));
  EXPECT_EQ(mixed.dtype(), DType::F32);
  EXPECT_LE(rel_error(mixed, core::add(rounded(a, DType::BF16), a)), 1e-5);
  // Shapes that do not broadcast.
  EXPECT_THROW(cu::add(a.to_device(Device::CUDA), random_host({3, 8}, 55).to_device(Device::CUDA)),
               Error);
}

TEST(CudaKernels, ModulateAndGatedAdd) {
  PARADIT_REQUIRE_CUDA();
  const int64_t B = 3, S = 10, D = 48;
  const Tensor x = random_host({B, S, D}, 60), y = random_host({B, S, D}, 61);
  const Tensor shift = random_host({B, D}, 62), scale = random_host({B, D}, 63);
  const Tensor gate = random_host({B, D}, 64);
  for (DType t : kDTypes) {
    SCOPED_TRACE(dtype_str(t));
    const Tensor xr = rounded(x, t), yr = rounded(y, t);
    const Tensor xd = on_device(x, t), yd = on_device(y, t);
    EXPECT_LE(
        rel_error(cu::modulate(xd, shift.to_device(Device::CUDA), scale.to_device(Device::CUDA)),
                  core::modulate(xr, shift, scale)),
        tolerance(t));
    EXPECT_LE(rel_error(cu::gated_add(xd, gate.to_device(Device::CUDA), yd),
                        core::gated_add(xr, gate, yr)),
              tolerance(t));
  }
  EXPECT_THROW(
      cu::gated_add(x.to_device(Device::CUDA), random_host({B + 1, D}, 65).to_device(Device::CUDA),
                    y.to_device(Device::CUDA)),
      Error);
}

}  // namespace
}  // namespace paradit::cuda_test

#endif  // PARADIT_WITH_CUDA
