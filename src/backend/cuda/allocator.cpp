#include "backend/cuda/allocator.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <bit>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda {

size_t size_class(size_t nbytes) {
  constexpr size_t kSmallStep = 512;
  constexpr size_t kLarge = size_t{1} << 20;
  const size_t n = std::max<size_t>(nbytes, 1);
  if (n < kLarge) return (n + kSmallStep - 1) / kSmallStep * kSmallStep;
  const size_t step = std::bit_floor(n) / 8;  // eight classes per power of two
  return (n + step - 1) / step * step;
}

namespace {

struct Block {
  void* ptr = nullptr;
  size_t size = 0;  // the size class
  int device = 0;
  StreamHandle stream = nullptr;
};

struct DeviceStats {
  size_t in_use = 0, cached = 0, peak = 0;
  uint64_t mallocs = 0, hits = 0;
};

class CachingAllocator {
 public:
  Block acquire(size_t nbytes) {
    const size_t size = size_class(nbytes);
    const int device = current_device();
    const StreamHandle stream = current_stream();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find({device, stream, size});
      if (it != free_.end() && !it->second.empty()) {
        Block b{it->second.back(), size, device, stream};
        it->second.pop_back();
        DeviceStats& st = stats_[device];
        st.cached -= size;
        st.hits++;
        note_in_use(st, size);
        return b;
      }
    }
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it; the retry decides
      release_cached();
      err = cudaMalloc(&p, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      const AllocatorStats s = stats();
      fail("CUDA out of memory: allocating ", nbytes, " bytes (class ", size, ") on device ",
           device, " failed; in use ", s.in_use_bytes, " bytes, cached ", s.cached_bytes,
           " bytes");
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      fail("cudaMalloc of ", size, " bytes on device ", device, " failed: ", cudaGetErrorName(err),
           " (", cudaGetErrorString(err), ")");
    }
    std::lock_guard<std::mutex> lock(mu_);
    DeviceStats& st = stats_[device];
    st.mallocs++;
    note_in_use(st, size);
    return Block{p, size, device, stream};
  }

  void release(const Block& b) {
    std::lock_guard<std::mutex> lock(mu_);
    free_[{b.device, b.stream, b.size}].push_back(b.ptr);
    DeviceStats& st = stats_[b.device];
    st.in_use -= b.size;
    st.cached += b.size;
  }

  // Frees every cached block; waits for the devices first (a cached block may still be read
  // by work enqueued before it was freed).
  void release_cached() {
    std::lock_guard<std::mutex> lock(mu_);
    int previous = 0;
    if (cudaGetDevice(&previous) != cudaSuccess) return;
    for (auto& [key, ptrs] : free_) {
      const int device = std::get<0>(key);
      if (ptrs.empty()) continue;
      cudaSetDevice(device);
      cudaDeviceSynchronize();
      for (void* p : ptrs) cudaFree(p);
      stats_[device].cached -= ptrs.size() * std::get<2>(key);
      ptrs.clear();
    }
    free_.clear();
    cudaSetDevice(previous);
  }

  AllocatorStats stats() {
    const int device = current_device();
    std::lock_guard<std::mutex> lock(mu_);
    const DeviceStats& st = stats_[device];
    AllocatorStats s;
    s.in_use_bytes = st.in_use;
    s.cached_bytes = st.cached;
    s.peak_in_use_bytes = st.peak;
    s.device_mallocs = st.mallocs;
    s.cache_hits = st.hits;
    return s;
  }

  void reset_peak() {
    const int device = current_device();
    std::lock_guard<std::mutex> lock(mu_);
    DeviceStats& st = stats_[device];
    st.peak = st.in_use;
  }

 private:
  static void note_in_use(DeviceStats& st, size_t size) {
    st.in_use += size;
    st.peak = std::max(st.peak, st.in_use);
  }

  std::mutex mu_;
  std::map<std::tuple<int, StreamHandle, size_t>, std::vector<void*>> free_;
  std::map<int, DeviceStats> stats_;
};

// Never destroyed: storages may be released during static destruction, after any allocator
// object with a destructor would be gone; the driver reclaims the memory at exit.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator;
  return *a;
}

}  // namespace

std::shared_ptr<DeviceBuffer> allocate_storage(size_t nbytes) {
  const Block b = allocator().acquire(nbytes);
  auto s = std::make_shared<DeviceBuffer>();
  s->data = b.ptr;
  s->nbytes = nbytes;
  s->owner = std::shared_ptr<void>(b.ptr, [b](void*) { allocator().release(b); });
  return s;
}

AllocatorStats allocator_stats() { return allocator().stats(); }
void reset_peak_stats() { allocator().reset_peak(); }
void empty_cache() { allocator().release_cached(); }

size_t free_memory_bytes() {
  size_t free = 0, total = 0;
  PARADIT_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return free + allocator().stats().cached_bytes;
}

void copy_bytes(void* dst, core::Device dst_device, const void* src, core::Device src_device,
                size_t nbytes) {
  if (nbytes == 0) return;
  const bool dst_dev = dst_device == core::Device::CUDA;
  const bool src_dev = src_device == core::Device::CUDA;
  const cudaMemcpyKind kind = dst_dev
                                  ? (src_dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                  : (src_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  const StreamHandle stream = current_stream();
  PARADIT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, kind, stream));
  // A device→device copy is ordered on the stream like any kernel; the others involve host
  // memory that the caller may touch as soon as we return.
  if (kind != cudaMemcpyDeviceToDevice) PARADIT_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace paradit::backend::cuda
