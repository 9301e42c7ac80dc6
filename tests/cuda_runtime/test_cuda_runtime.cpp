// The CUDA backend's runtime pieces that the backend-ops matrix does not reach: the caching
// allocator (size classes, reuse), byte-exact host↔device round trips, streams and events (ops
// enqueued on a non-default stream give the default stream's results), and the GEMM plan cache.
// Every op's numerics are tests/backend_ops' business. Tests that need a GPU skip, saying why,
// where none is visible (PARADIT_REQUIRE_GPU=1 makes that a failure); the host-only ones run in
// every CUDA build; a build without CUDA checks that device requests fail cleanly.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/ops.h"
#include "core/tensor.h"
#include "support/random.h"

#ifdef PARADIT_WITH_CUDA
#include "backend/cuda/allocator.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/runtime.h"
#endif

namespace paradit {
namespace {

using core::Device;
using core::DType;
using core::Tensor;

bool require_gpu() {
  const char* v = std::getenv("PARADIT_REQUIRE_GPU");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

#ifdef PARADIT_WITH_CUDA

namespace cu = backend::cuda;

#define SKIP_WITHOUT_GPU()                                                                      \
  do {                                                                                          \
    if (!cu::available()) {                                                                     \
      if (require_gpu()) FAIL() << "PARADIT_REQUIRE_GPU is set, but no CUDA device is visible"; \
      GTEST_SKIP() << "no CUDA device visible (backend::cuda::device_count() = 0)";             \
    }                                                                                           \
  } while (0)

// max |a − b| over two tensors of one shape (any devices, any float dtypes).
double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double m = x.size() == y.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    m = std::max(m, std::fabs(static_cast<double>(x[i]) - y[i]));
  }
  return m;
}

// Host-only: needs no device.
TEST(CudaAllocator, SizeClasses) {
  EXPECT_EQ(cu::size_class(0), 512u);
  EXPECT_EQ(cu::size_class(1), 512u);
  EXPECT_EQ(cu::size_class(512), 512u);
  EXPECT_EQ(cu::size_class(513), 1024u);
  EXPECT_EQ(cu::size_class(size_t{1} << 20), size_t{1} << 20);
  EXPECT_EQ(cu::size_class((size_t{1} << 20) + 1), (size_t{1} << 20) + (size_t{1} << 17));
  size_t previous = 0;
  for (size_t n = 1; n < (size_t{1} << 26); n = n * 5 / 4 + 7) {
    const size_t c = cu::size_class(n);
    EXPECT_GE(c, n);
    EXPECT_GE(c, previous);
    EXPECT_EQ(c % 512, 0u);
    if (n >= (size_t{1} << 20)) {
      EXPECT_LE(c, n + n / 8) << n;  // ≤ 12.5% waste
    }
    previous = c;
  }
}

// Host-only: a machine without a driver or device reports 0 devices instead of failing.
TEST(CudaRuntime, DeviceCountNeverThrows) {
  int n = -1;
  EXPECT_NO_THROW(n = cu::device_count());
  EXPECT_GE(n, 0);
  EXPECT_EQ(cu::available(), n > 0);
}

// Host-only: without a device, asking for device memory is a clean paradit::Error.
TEST(CudaRuntime, CleanErrorWithoutDevice) {
  if (cu::available()) GTEST_SKIP() << "a CUDA device is present (this checks the case without)";
  EXPECT_THROW(Tensor::empty({4}, DType::F32, Device::CUDA), Error);
  EXPECT_THROW(Tensor::full({2}, 1.0f).to_device(Device::CUDA), Error);
}

TEST(CudaRuntime, DeviceDescription) {
  SKIP_WITHOUT_GPU();
  const int d = cu::current_device();
  const int cc = cu::compute_capability(d);
  std::printf("CUDA device %d of %d: %s, sm_%d\n", d, cu::device_count(),
              cu::device_name(d).c_str(), cc);
  EXPECT_GE(cc, 80) << "the kernels are built for sm_80 and sm_90a";
}

TEST(CudaRuntime, RoundTripIsExact) {
  SKIP_WITHOUT_GPU();
  const Tensor x = testing::random_tensor({3, 5, 7}, 1);
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::F64}) {
    SCOPED_TRACE(std::string(core::dtype_name(t)));
    const Tensor h = x.to(t);
    const Tensor d = h.to_device(Device::CUDA);
    EXPECT_EQ(d.device(), Device::CUDA);
    EXPECT_EQ(d.dtype(), t);
    const Tensor back = d.to_device(Device::CPU);
    ASSERT_EQ(back.nbytes(), h.nbytes());
    EXPECT_EQ(std::memcmp(back.raw_data(), h.raw_data(), h.nbytes()), 0);
  }
  // I64 beyond 2^53 survives (a byte copy, never through floating point).
  const Tensor ids = Tensor::from_vector_i64({(int64_t{1} << 60) + 1, -3, 7}, {3});
  const Tensor ids_back = ids.to_device(Device::CUDA).to_device(Device::CPU);
  EXPECT_EQ(std::memcmp(ids_back.raw_data(), ids.raw_data(), ids.nbytes()), 0);
}

TEST(CudaAllocator, ReusesFreedBlocks) {
  SKIP_WITHOUT_GPU();
  constexpr size_t kBytes = 3 << 20;
  void* first = nullptr;
  {
    auto s = cu::allocate_storage(kBytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s->data) % 256, 0u);
    first = s->data;
  }
  const cu::AllocatorStats before = cu::allocator_stats();
  EXPECT_GE(before.cached_bytes, cu::size_class(kBytes));
  {
    auto s = cu::allocate_storage(kBytes - 100);  // same size class
    EXPECT_EQ(s->data, first);
    const cu::AllocatorStats during = cu::allocator_stats();
    EXPECT_EQ(during.device_mallocs, before.device_mallocs);
    EXPECT_EQ(during.cache_hits, before.cache_hits + 1);
    EXPECT_GE(during.in_use_bytes, cu::size_class(kBytes));
  }
  cu::empty_cache();
  EXPECT_EQ(cu::allocator_stats().cached_bytes, 0u);
}

// Ops enqueued on a stream of their own (StreamGuard) give what the default stream gives, and
// events time them.
TEST(CudaStreams, OpsOnAStreamMatchTheDefaultStream) {
  SKIP_WITHOUT_GPU();
  const Tensor x = testing::random_tensor({64, 256}, 4);
  const Tensor w = testing::random_tensor({96, 256}, 5);
  const Tensor xd = x.to_device(Device::CUDA), wd = w.to_device(Device::CUDA);
  const Tensor want = core::layer_norm(core::silu(core::linear(xd, wd)), {}, {}, 1e-6f);
  cu::Stream stream;
  Tensor got;
  cu::Event start, stop;
  {
    cu::StreamGuard guard(stream);
    EXPECT_EQ(cu::current_stream(), stream.handle());
    start.record();
    // Inputs copied onto this stream, then three ops in order.
    got = core::layer_norm(
        core::silu(core::linear(x.to_device(Device::CUDA), w.to_device(Device::CUDA))), {}, {},
        1e-6f);
    stop.record();
    stream.synchronize();
  }
  EXPECT_EQ(cu::current_stream(), nullptr);
  stop.synchronize();
  EXPECT_GE(stop.elapsed_ms(start), 0.0f);
  EXPECT_EQ(max_abs_diff(got, want), 0.0);
  cu::Stream moved = std::move(stream);
  EXPECT_NE(moved.handle(), nullptr);
  EXPECT_EQ(stream.handle(), nullptr);  // NOLINT(bugprone-use-after-move): checks the move
}

// One cuBLASLt plan per problem: the same shape reuses it, a new shape adds one.
TEST(CudaGemm, PlansAreCached) {
  SKIP_WITHOUT_GPU();
  const Tensor x = testing::random_tensor({50, 64}, 14).to(DType::BF16).to_device(Device::CUDA);
  const Tensor w = testing::random_tensor({96, 64}, 15).to(DType::BF16).to_device(Device::CUDA);
  core::linear(x, w);
  const size_t plans = cu::detail::gemm_plan_cache_size();
  for (int i = 0; i < 3; ++i) core::linear(x, w);
  EXPECT_EQ(cu::detail::gemm_plan_cache_size(), plans);
  const Tensor x2 = testing::random_tensor({51, 64}, 16).to(DType::BF16).to_device(Device::CUDA);
  core::linear(x2, w);  // a new shape
  EXPECT_EQ(cu::detail::gemm_plan_cache_size(), plans + 1);
}

#else  // !PARADIT_WITH_CUDA

TEST(CudaRuntime, Skipped) {
  if (require_gpu()) FAIL() << "PARADIT_REQUIRE_GPU is set, but this build has no CUDA backend";
  GTEST_SKIP() << "this build has no CUDA backend (configured with PARADIT_WITH_CUDA=OFF)";
}

// Without the CUDA backend, Tensor::to_device is the identity for the host and an error naming
// the build option for CUDA.
TEST(CudaRuntime, ToDeviceNeedsCudaBuild) {
  const Tensor x = Tensor::full({3}, 2.0f);
  EXPECT_EQ(x.to_device(Device::CPU).raw_data(), x.raw_data());
  try {
    x.to_device(Device::CUDA);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("PARADIT_WITH_CUDA"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tensor::empty({2}, DType::F32, Device::CUDA), Error);
}

#endif

}  // namespace
}  // namespace paradit
