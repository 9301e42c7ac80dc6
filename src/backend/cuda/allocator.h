#pragma once
// Device memory for tensors: a caching allocator over cudaMalloc (never managed memory).
//
// Freed blocks are kept in free lists keyed by (device, stream, size class) and handed out
// again to an allocation of the same class on the same stream. Reuse is therefore safe without
// synchronizing: work enqueued later on that stream runs after the work that used the block
// before. A tensor used on a second stream must be kept alive (or that stream synchronized)
// until the work there is done. When cudaMalloc runs out of memory, the cache is emptied and
// the allocation tried once more.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/dtype.h"

namespace paradit::backend::cuda {

// A block of device memory from the caching allocator; it returns to the cache when the last
// reference drops.
struct DeviceBuffer {
  void* data = nullptr;
  size_t nbytes = 0;
  std::shared_ptr<void> owner;  // releases the block
};

// Device memory of at least `nbytes` (256-byte aligned) on the current device, for the current
// stream (core::Storage::allocate wraps it for device tensors). Out of memory → paradit::Error
// with the sizes.
std::shared_ptr<DeviceBuffer> allocate_storage(size_t nbytes);

// The size class an allocation of `nbytes` is rounded up to: multiples of 512 bytes below
// 1 MiB, above it eight classes per power of two (at most 12.5% waste).
size_t size_class(size_t nbytes);

struct AllocatorStats {
  size_t in_use_bytes = 0;       // handed out (size classes), on the current device
  size_t cached_bytes = 0;       // in the free lists
  size_t peak_in_use_bytes = 0;  // since start or reset_peak_stats()
  uint64_t device_mallocs = 0;   // cudaMalloc calls
  uint64_t cache_hits = 0;       // allocations served from the free lists
};
AllocatorStats allocator_stats();
void reset_peak_stats();
// Returns every cached block of every device to the driver (after a device synchronize).
void empty_cache();
// Bytes the current device can still hand out: the driver's free memory plus this allocator's
// cached blocks.
size_t free_memory_bytes();

// Host↔device and device↔device byte copy on the current stream; returns once `dst` holds
// the bytes (a host destination can be read at once, a host source reused).
void copy_bytes(void* dst, core::Device dst_device, const void* src, core::Device src_device,
                size_t nbytes);

}  // namespace paradit::backend::cuda
