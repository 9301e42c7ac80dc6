// Device memory, copies and dtype conversion of the CUDA backend: the caching allocator, host↔
// device round trips, strided device copies against the host's, streams and events.

#include <gtest/gtest.h>

#ifdef PARADIT_WITH_CUDA

#include <cstring>

#include "backend/cuda/allocator.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/runtime.h"
#include "cuda/cuda_test_util.h"

namespace paradit::cuda_test {
namespace {

namespace cu = backend::cuda;

// Host-only: needs no device.
TEST(CudaMemory, SizeClasses) {
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
    if (n >= (size_t{1} << 20)) EXPECT_LE(c, n + n / 8) << n;  // ≤ 12.5% waste
    previous = c;
  }
}

// Host-only: a machine without a driver or device reports 0 devices instead of failing.
TEST(CudaMemory, DeviceCountNeverThrows) {
  int n = -1;
  EXPECT_NO_THROW(n = cu::device_count());
  EXPECT_GE(n, 0);
  EXPECT_EQ(cu::available(), n > 0);
}

// Host-only: without a device, asking for device memory is a clean paradit::Error.
TEST(CudaMemory, CleanErrorWithoutDevice) {
  if (cu::available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_THROW(Tensor::empty({4}, DType::F32, Device::CUDA), Error);
  EXPECT_THROW(Tensor::full({2}, 1.0f).to_device(Device::CUDA), Error);
}

TEST(CudaMemory, RoundTripIsExact) {
  PARADIT_REQUIRE_CUDA();
  const Tensor x = random_host({3, 5, 7}, 1);
  for (DType t : {DType::F32, DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_str(t));
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

TEST(CudaMemory, AllocatorReusesFreedBlocks) {
  PARADIT_REQUIRE_CUDA();
  constexpr size_t kBytes = 3 << 20;
  void* first = nullptr;
  {
    auto s = cu::allocate_storage(kBytes);
    EXPECT_EQ(s->device, Device::CUDA);
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

TEST(CudaMemory, StridedDeviceCopiesMatchHost) {
  PARADIT_REQUIRE_CUDA();
  const Tensor x = random_host({4, 6, 10}, 2);
  const Tensor d = x.to_device(Device::CUDA);
  // Views of a device tensor made contiguous on the device.
  const Tensor cases_host[] = {x.slice(1, 1, 5), x.slice(2, 3, 9), x.select(0, 2),
                               x.slice(0, 1, 3).slice(2, 0, 4)};
  const Tensor cases_dev[] = {d.slice(1, 1, 5), d.slice(2, 3, 9), d.select(0, 2),
                              d.slice(0, 1, 3).slice(2, 0, 4)};
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    const Tensor c = cu::contiguous(cases_dev[i]);
    EXPECT_TRUE(c.is_contiguous());
    EXPECT_EQ(rel_error(c, cases_host[i]), 0.0);
    EXPECT_EQ(rel_error(cases_dev[i].clone(), cases_host[i]), 0.0);
  }
  EXPECT_EQ(rel_error(d.permute({2, 0, 1}), x.permute({2, 0, 1})), 0.0);
  // Host → strided device destination, device → strided host destination.
  Tensor dst_dev = Tensor::empty({4, 6, 20}, DType::F32, Device::CUDA).slice(2, 5, 15);
  dst_dev.copy_from(x);
  EXPECT_EQ(rel_error(dst_dev, x), 0.0);
  Tensor dst_host = Tensor::empty({4, 8, 10}).slice(1, 2, 8);
  dst_host.copy_from(d);
  EXPECT_EQ(rel_error(dst_host, x), 0.0);
}

TEST(CudaMemory, ConversionsMatchHost) {
  PARADIT_REQUIRE_CUDA();
  Tensor x = random_host({5, 33}, 3, -300.0f, 300.0f);
  x.data<float>()[0] = 1.0f + 1.0f / 256.0f;  // a tie: rounds to even in bf16
  const Tensor d = x.to_device(Device::CUDA);
  for (DType t : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_str(t));
    const Tensor narrow = cu::convert(d, t);
    EXPECT_EQ(narrow.dtype(), t);
    const Tensor host_narrow = x.to(t);
    const Tensor back = narrow.to_device(Device::CPU);
    EXPECT_EQ(std::memcmp(back.raw_data(), host_narrow.raw_data(), back.nbytes()), 0);
    // And widening back through the device.
    EXPECT_EQ(rel_error(cu::convert(narrow, DType::F32), host_narrow.to(DType::F32)), 0.0);
    // Tensor::to on a device tensor stays on the device.
    EXPECT_EQ(d.to(t).device(), Device::CUDA);
  }
  // Bool and I64 to F32.
  Tensor mask = Tensor::empty({4}, DType::Bool);
  const uint8_t bits[4] = {1, 0, 0, 1};
  std::memcpy(mask.raw_data(), bits, 4);
  EXPECT_EQ(rel_error(cu::convert(mask.to_device(Device::CUDA), DType::F32),
                      Tensor::from_vector({1, 0, 0, 1}, {4})),
            0.0);
  const Tensor ids = Tensor::from_vector_i64({-2, 5, 9}, {3});
  EXPECT_EQ(rel_error(cu::convert(ids.to_device(Device::CUDA), DType::F32),
                      Tensor::from_vector({-2, 5, 9}, {3})),
            0.0);
}

TEST(CudaMemory, FillAndErrors) {
  PARADIT_REQUIRE_CUDA();
  const Tensor d = Tensor::empty({3, 4}, DType::BF16, Device::CUDA);
  cu::fill(d, 2.5f);
  EXPECT_EQ(rel_error(d, Tensor::full({3, 4}, 2.5f)), 0.0);
  const Tensor other = Tensor::empty({4, 3}, DType::F32, Device::CUDA);
  EXPECT_THROW(cu::copy(other, d), Error);
  // Kernels refuse host tensors with a message naming the op.
  try {
    cu::silu(Tensor::full({2}, 1.0f));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("silu"), std::string::npos) << e.what();
  }
}

TEST(CudaMemory, StreamsAndEvents) {
  PARADIT_REQUIRE_CUDA();
  cu::Stream stream;
  const Tensor x = random_host({256, 256}, 4);
  Tensor y;
  cu::Event start, stop;
  {
    cu::StreamGuard guard(stream);
    EXPECT_EQ(cu::current_stream(), stream.handle());
    start.record();
    y = cu::silu(x.to_device(Device::CUDA));
    stop.record();
    stream.synchronize();
  }
  EXPECT_EQ(cu::current_stream(), nullptr);
  stop.synchronize();
  EXPECT_GE(stop.elapsed_ms(start), 0.0f);
  EXPECT_EQ(y.to_device(Device::CPU).numel(), x.numel());
  cu::Stream moved = std::move(stream);
  EXPECT_NE(moved.handle(), nullptr);
  EXPECT_EQ(stream.handle(), nullptr);  // NOLINT(bugprone-use-after-move): checks the move
}

}  // namespace
}  // namespace paradit::cuda_test

#else  // !PARADIT_WITH_CUDA

#include "core/tensor.h"

TEST(CudaMemory, Skipped) { GTEST_SKIP() << "no CUDA device (built without PARADIT_WITH_CUDA)"; }

// Without the CUDA backend, Tensor::to_device is the identity for the host and an error naming
// the build option for CUDA.
TEST(CudaMemory, ToDeviceNeedsCudaBuild) {
  using paradit::core::Device;
  const paradit::core::Tensor x = paradit::core::Tensor::full({3}, 2.0f);
  EXPECT_EQ(x.to_device(Device::CPU).raw_data(), x.raw_data());
  try {
    x.to_device(Device::CUDA);
    FAIL() << "expected an error";
  } catch (const paradit::Error& e) {
    EXPECT_NE(std::string(e.what()).find("PARADIT_WITH_CUDA"), std::string::npos) << e.what();
  }
}

#endif
