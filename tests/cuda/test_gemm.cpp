// cuBLASLt GEMM of the CUDA backend against core::linear / core::matmul (CPU) on random
// inputs. For BF16/F16 the reference multiplies the rounded values in f32 (what the tensor
// cores multiply; the products are exact in f32), so only the accumulation order and the
// output rounding differ.

#include <gtest/gtest.h>

#ifdef PARADIT_WITH_CUDA

#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "core/ops.h"
#include "cuda/cuda_test_util.h"

namespace paradit::cuda_test {
namespace {

namespace cu = backend::cuda;

TEST(CudaGemm, LinearF32) {
  PARADIT_REQUIRE_CUDA();
  const Tensor x = random_host({2, 37, 96}, 1);
  const Tensor w = random_host({70, 96}, 2);
  const Tensor b = random_host({70}, 3);
  const Tensor xd = x.to_device(Device::CUDA), wd = w.to_device(Device::CUDA);
  const Tensor bd = b.to_device(Device::CUDA);
  EXPECT_LE(rel_error(cu::linear(xd, wd), core::linear(x, w)), 1e-5);
  const Tensor y = cu::linear(xd, wd, bd);
  EXPECT_EQ(y.shape(), (Shape{2, 37, 70}));
  EXPECT_EQ(y.dtype(), DType::F32);
  EXPECT_LE(rel_error(y, core::linear(x, w, b)), 1e-5);
  // A strided x: a slice of the last dim (row stride 96 > K = 40).
  const Tensor w40 = random_host({24, 40}, 4);
  EXPECT_LE(rel_error(cu::linear(xd.slice(2, 10, 50), w40.to_device(Device::CUDA)),
                      core::linear(x.slice(2, 10, 50), w40)),
            1e-5);
}

TEST(CudaGemm, LinearHalfPrecision) {
  PARADIT_REQUIRE_CUDA();
  const Tensor x = random_host({45, 128}, 5);
  const Tensor w = random_host({72, 128}, 6);
  const Tensor b = random_host({72}, 7);
  for (DType t : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_str(t));
    const Tensor want = core::linear(rounded(x, t), rounded(w, t), b);
    const Tensor xd = on_device(x, t), wd = on_device(w, t), bd = b.to_device(Device::CUDA);
    const Tensor y = cu::linear(xd, wd, bd);  // output in x's dtype
    EXPECT_EQ(y.dtype(), t);
    EXPECT_LE(rel_error(y, want), tolerance(t));
    // F32 output: only the accumulation order differs from the CPU.
    cu::LinearOptions f32_out;
    f32_out.out_dtype = DType::F32;
    const Tensor y32 = cu::linear(xd, wd, bd, f32_out);
    EXPECT_EQ(y32.dtype(), DType::F32);
    EXPECT_LE(rel_error(y32, want), 1e-5);
    // F32 activations with half-precision weights: x is rounded to the weight dtype.
    EXPECT_LE(rel_error(cu::linear(x.to_device(Device::CUDA), wd, bd), want), 1e-5);
  }
}

TEST(CudaGemm, BiasGeluEpilogue) {
  PARADIT_REQUIRE_CUDA();
  const Tensor x = random_host({33, 64}, 8);
  const Tensor w = random_host({80, 64}, 9);
  const Tensor b = random_host({80}, 10);
  cu::LinearOptions gelu;
  gelu.gelu_tanh = true;
  for (DType t : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_str(t));
    const Tensor want = core::gelu(core::linear(rounded(x, t), rounded(w, t), b), true);
    const Tensor got =
        cu::linear(on_device(x, t), on_device(w, t), b.to_device(Device::CUDA), gelu);
    EXPECT_LE(rel_error(got, want), tolerance(t));
    const Tensor want_nb = core::gelu(core::linear(rounded(x, t), rounded(w, t)), true);
    EXPECT_LE(rel_error(cu::linear(on_device(x, t), on_device(w, t), {}, gelu), want_nb),
              tolerance(t));
  }
}

TEST(CudaGemm, MatmulBatched) {
  PARADIT_REQUIRE_CUDA();
  const Tensor a = random_host({3, 20, 48}, 11);
  const Tensor b = random_host({3, 48, 36}, 12);
  const Tensor bt = random_host({3, 36, 48}, 13);
  EXPECT_LE(rel_error(cu::matmul(a.to_device(Device::CUDA), b.to_device(Device::CUDA)),
                      core::matmul(a, b)),
            1e-5);
  EXPECT_LE(rel_error(cu::matmul(a.to_device(Device::CUDA), bt.to_device(Device::CUDA), true),
                      core::matmul(a, bt, true)),
            1e-5);
  const Tensor want = core::matmul(rounded(a, DType::BF16), rounded(b, DType::BF16));
  EXPECT_LE(rel_error(cu::matmul(on_device(a, DType::BF16), on_device(b, DType::BF16)), want),
            1e-2);
}

TEST(CudaGemm, PlansAreCached) {
  PARADIT_REQUIRE_CUDA();
  const Tensor x = on_device(random_host({50, 64}, 14), DType::BF16);
  const Tensor w = on_device(random_host({96, 64}, 15), DType::BF16);
  cu::linear(x, w);
  const size_t plans = cu::gemm_plan_cache_size();
  for (int i = 0; i < 3; ++i) cu::linear(x, w);
  EXPECT_EQ(cu::gemm_plan_cache_size(), plans);
  cu::linear(on_device(random_host({51, 64}, 16), DType::BF16), w);  // a new shape
  EXPECT_EQ(cu::gemm_plan_cache_size(), plans + 1);
}

TEST(CudaGemm, BadArguments) {
  PARADIT_REQUIRE_CUDA();
  const Tensor x = Tensor::empty({4, 8}, DType::F32, Device::CUDA);
  EXPECT_THROW(cu::linear(x, Tensor::empty({5, 9}, DType::F32, Device::CUDA)), Error);
  EXPECT_THROW(cu::linear(x, Tensor::full({5, 8}, 1.0f)), Error);  // host weight
  EXPECT_THROW(cu::matmul(x, x), Error);                           // not 3-D
}

}  // namespace
}  // namespace paradit::cuda_test

#endif  // PARADIT_WITH_CUDA
