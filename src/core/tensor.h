#pragma once
// Tensor: shape (≤ 6 dims), dtype, device, shared storage and cheap strided views.
//
// Views (slice, reshape of a contiguous tensor, unsqueeze/squeeze) share storage. A permute is
// an explicit copy. Strides are in elements. Kernels take contiguous tensors unless their
// header says otherwise; call contiguous() to get one (a no-op when it already is).

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace paradit::core {

constexpr int kMaxDims = 6;
using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[2, 16, 64]"
int64_t shape_numel(const Shape& s);

// A block of memory. `owner` keeps the backing alive (heap buffer, mmap region, device buffer).
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device = Device::CPU;
  std::shared_ptr<void> owner;

  // 64-byte aligned host memory, uninitialized. Device::CUDA (builds with PARADIT_WITH_CUDA):
  // device memory from the CUDA backend's caching allocator (src/backend/cuda/allocator.h).
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device = Device::CPU);
  // Wraps memory kept alive by `owner` (e.g. a memory-mapped file).
  static std::shared_ptr<Storage> wrap(void* data, size_t nbytes, std::shared_ptr<void> owner,
                                       Device device = Device::CPU);
};

// Maps C++ element types to DType for the typed accessors.
template <typename T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::F64; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::I64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::I32; };
template <> struct DTypeOf<int16_t> { static constexpr DType value = DType::I16; };
template <> struct DTypeOf<int8_t> { static constexpr DType value = DType::I8; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::U8; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::Bool; };

class Tensor {
 public:
  Tensor() = default;  // undefined: used for "no tensor" (e.g. an absent bias)

  // ---- construction ----
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, float value, DType dtype = DType::F32,
                     Device device = Device::CPU);
  // Host values (F32 / I64), moved to `device`.
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                            Device device = Device::CPU);
  static Tensor from_vector_i64(const std::vector<int64_t>& values, const Shape& shape,
                                Device device = Device::CPU);
  // A view over existing storage; `offset_bytes` from the storage start, contiguous layout.
  static Tensor from_storage(std::shared_ptr<Storage> storage, size_t offset_bytes,
                             const Shape& shape, DType dtype);
  // A read-only stand-in of `shape` over one shared zeroed element (all strides 0): lets code
  // that only inspects shapes (make-model --dry-run at full size) run without allocating.
  static Tensor broadcast_placeholder(const Shape& shape, DType dtype = DType::F32);

  // ---- properties ----
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;     // negative i counts from the end
  int64_t stride(int i) const;  // negative i counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device : Device::CPU; }
  size_t itemsize() const { return dtype_size(dtype_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * itemsize(); }
  bool is_contiguous() const;
  std::string str() const;  // "F32[2, 16, 64]"
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t offset_bytes() const { return offset_; }

  // ---- element access (checks dtype) ----
  template <typename T>
  T* data() {
    check_dtype(DTypeOf<T>::value);
    return static_cast<T*>(raw_data());
  }
  template <typename T>
  const T* data() const {
    check_dtype(DTypeOf<T>::value);
    return static_cast<const T*>(raw_data());
  }
  void* raw_data() const { return static_cast<char*>(storage_->data) + offset_; }
  // Element as double, any dtype, by multi-index (slow; for tests and small tensors).
  double item_at(const std::vector<int64_t>& index) const;
  // Copies to a flat f32 vector in logical order (any dtype, any strides).
  std::vector<float> to_vector() const;
  // Copies an integer (or bool) tensor to a flat I64 vector in logical order (index metadata:
  // token ids, class labels).
  std::vector<int64_t> to_vector_i64() const;

  // ---- views (share storage) ----
  Tensor slice(int dim, int64_t start, int64_t end) const;
  Tensor select(int dim, int64_t index) const;  // drops the dim
  Tensor reshape(const Shape& shape) const;     // one -1 allowed; needs contiguous
  Tensor flatten_to_2d() const;                 // (prod(all but last), last)
  Tensor unsqueeze(int dim) const;
  Tensor squeeze(int dim) const;

  // ---- copies ----
  Tensor contiguous() const;  // self when already contiguous
  Tensor clone() const;       // always a new buffer
  Tensor to(DType dtype) const;  // self when already that dtype
  Tensor permute(const std::vector<int>& dims) const;  // explicit copy
  void copy_from(const Tensor& src);  // same shape; any strides; converts dtype
  // A copy on `device`: self when already there, else a new contiguous tensor. CUDA needs a
  // build with PARADIT_WITH_CUDA. copy_from, clone, contiguous, to() and permute run on the
  // tensors' device (the copy body of src/backend/*/ops.h); copy_from also between devices.
  // to_vector() and item_at() of a device tensor read it back to the host first.
  Tensor to_device(Device device) const;

 private:
  void check_dtype(DType expected) const;
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  Shape shape_;
  std::vector<int64_t> strides_;
  DType dtype_ = DType::F32;
};

// Where a model lives: the device of its weights and the dtype its matrices are kept in. On
// CUDA the activations run in that dtype too (BF16 by default); on the CPU they are F32 whatever
// the weights (F32 or BF16 matrices). Implicit from a DType: a CPU model with those matrices.
struct Placement {
  Device device = Device::CPU;
  DType dtype = DType::F32;
  Placement() = default;
  Placement(DType matrix_dtype) : dtype(matrix_dtype) {}  // NOLINT: implicit on purpose
  Placement(Device d, DType t) : device(d), dtype(t) {}
  // The dtype of activations on this placement.
  DType activation_dtype() const { return device == Device::CPU ? DType::F32 : dtype; }
  // `t` on this placement's device in its activation dtype (a no-op when it already is).
  Tensor activation(const Tensor& t) const;
};

// Contiguous strides for a shape.
std::vector<int64_t> contiguous_strides(const Shape& shape);

// Bytes that allocations on `device` can still get: the host's MemAvailable (/proc/meminfo;
// physical memory when unknown), or the current GPU's free memory plus the allocator's cache.
size_t available_memory(Device device);

}  // namespace paradit::core
