#include "core/tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <sstream>

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops.h"
#include "backend/cuda/ops.h"
#include "core/op_registry.h"
#ifdef PARADIT_WITH_CUDA
#include "backend/cuda/allocator.h"
#endif

namespace paradit::core {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::vector<int64_t> contiguous_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t acc = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    strides[i] = acc;
    acc *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

size_t available_memory(Device device) {
#ifdef PARADIT_WITH_CUDA
  if (device == Device::CUDA) return backend::cuda::free_memory_bytes();
#endif
  PARADIT_CHECK(device == Device::CPU, "available_memory: no backend for ", device_name(device));
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  size_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGE_SIZE));
}

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kHugeAllocMin = size_t{8} << 20;  // rounding up to 2 MiB wastes ≤ 25%
}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
#ifdef PARADIT_WITH_CUDA
  if (device == Device::CUDA) {
    auto block = backend::cuda::allocate_storage(nbytes);  // the block owns the memory
    void* data = block->data;
    return wrap(data, nbytes, std::move(block), Device::CUDA);
  }
#endif
  PARADIT_CHECK(device == Device::CPU, "Storage::allocate: device ", device_name(device),
                " needs its backend's allocator");
  auto s = std::make_shared<Storage>();
  // Large buffers come fresh from mmap, and every op writes its output into a new one: with
  // 4 KiB pages the first-touch page faults cost more than the op itself (≈0.5 GB/s measured
  // on the 2-core VM). Huge pages (transparent, on request) cut the faults 512-fold.
  const bool huge = nbytes >= kHugeAllocMin;
  const size_t align = huge ? kHugePage : 64;
  size_t rounded = (std::max<size_t>(nbytes, 1) + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (!p) fail("out of memory allocating ", nbytes, " bytes");
#ifdef MADV_HUGEPAGE
  if (huge) madvise(p, rounded, MADV_HUGEPAGE);  // advisory: failure just keeps small pages
#endif
  s->data = p;
  s->nbytes = nbytes;
  s->device = device;
  s->owner = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  return s;
}

std::shared_ptr<Storage> Storage::wrap(void* data, size_t nbytes, std::shared_ptr<void> owner,
                                       Device device) {
  auto s = std::make_shared<Storage>();
  s->data = data;
  s->nbytes = nbytes;
  s->device = device;
  s->owner = std::move(owner);
  return s;
}

static void check_shape(const Shape& shape) {
  PARADIT_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), "tensor shape ", shape_str(shape),
                " has more than ", kMaxDims, " dims");
  for (int64_t d : shape) PARADIT_CHECK(d >= 0, "tensor shape ", shape_str(shape), " is negative");
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape(shape);
  Tensor t;
  t.storage_ = Storage::allocate(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

namespace {

// The fill body of the tensor's device: n contiguous elements set to value.
void fill_contiguous(const Tensor& t, double value) {
  if (t.numel() == 0) return;
  require_support(Op::kFill, t.device(), t.dtype());
  backend::FillArgs a;
  a.x = t.raw_data();
  a.n = t.numel();
  a.value = value;
  a.dtype = t.dtype();
  if (t.device() == Device::CPU) backend::cpu::fill(a); else if constexpr (kCudaBuilt) backend::cuda::fill(a);
}

}  // namespace

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  fill_contiguous(t, 0.0);
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  fill_contiguous(t, value);
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, Device device) {
  PARADIT_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ",
                values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::F32);
  std::copy(values.begin(), values.end(), t.data<float>());
  return t.to_device(device);
}

Tensor Tensor::from_vector_i64(const std::vector<int64_t>& values, const Shape& shape,
                               Device device) {
  PARADIT_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector_i64: ",
                values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::I64);
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t.to_device(device);
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, size_t offset_bytes,
                            const Shape& shape, DType dtype) {
  check_shape(shape);
  PARADIT_CHECK(offset_bytes + static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype) <=
                    storage->nbytes,
                "tensor view ", shape_str(shape), " at offset ", offset_bytes,
                " runs past its storage of ", storage->nbytes, " bytes");
  Tensor t;
  t.storage_ = std::move(storage);
  t.offset_ = offset_bytes;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::broadcast_placeholder(const Shape& shape, DType dtype) {
  check_shape(shape);
  Tensor t;
  t.storage_ = Storage::allocate(dtype_size(dtype));
  std::memset(t.storage_->data, 0, dtype_size(dtype));
  t.shape_ = shape;
  t.strides_.assign(shape.size(), 0);
  t.dtype_ = dtype;
  return t;
}

static int wrap_dim(int dim, int ndim, const char* what) {
  int d = dim < 0 ? dim + ndim : dim;
  PARADIT_CHECK(d >= 0 && d < ndim, what, ": dim ", dim, " out of range for ", ndim, " dims");
  return d;
}

int64_t Tensor::dim(int i) const { return shape_[wrap_dim(i, ndim(), "Tensor::dim")]; }
int64_t Tensor::stride(int i) const { return strides_[wrap_dim(i, ndim(), "Tensor::stride")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

std::string Tensor::str() const {
  return std::string(dtype_name(dtype_)) + shape_str(shape_);
}

void Tensor::check_dtype(DType expected) const {
  PARADIT_CHECK(defined(), "access to an undefined tensor");
  PARADIT_CHECK(dtype_ == expected, "tensor ", str(), " accessed as ", dtype_name(expected));
}

double Tensor::item_at(const std::vector<int64_t>& index) const {
  PARADIT_CHECK(static_cast<int>(index.size()) == ndim(), "item_at: index rank ", index.size(),
                " for ", str());
  if (device() != Device::CPU) return to_device(Device::CPU).item_at(index);
  int64_t off = 0;
  for (int i = 0; i < ndim(); ++i) {
    PARADIT_CHECK(index[i] >= 0 && index[i] < shape_[i], "item_at: index out of range for ", str());
    off += index[i] * strides_[i];
  }
  return backend::cpu::load_as_double(static_cast<const char*>(raw_data()) + off * itemsize(),
                                      dtype_);
}

// Calls fn(src_element_offset, linear_index) for every element in logical order.
template <typename Fn>
static void for_each_offset(const Shape& shape, const std::vector<int64_t>& strides, Fn&& fn) {
  const int nd = static_cast<int>(shape.size());
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  for (int64_t linear = 0; linear < n; ++linear) {
    fn(off, linear);
    for (int d = nd - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

std::vector<float> Tensor::to_vector() const {
  if (device() != Device::CPU) return to_device(Device::CPU).to_vector();
  std::vector<float> out(static_cast<size_t>(numel()));
  if (dtype_ == DType::F32 && is_contiguous()) {
    std::copy_n(static_cast<const float*>(raw_data()), out.size(), out.data());
    return out;
  }
  const char* base = static_cast<const char*>(raw_data());
  const size_t isz = itemsize();
  for_each_offset(shape_, strides_, [&](int64_t off, int64_t i) {
    out[i] = static_cast<float>(backend::cpu::load_as_double(base + off * isz, dtype_));
  });
  return out;
}

std::vector<int64_t> Tensor::to_vector_i64() const {
  PARADIT_CHECK(!is_floating(dtype_), "to_vector_i64: ", str(), " is not an integer tensor");
  const Tensor t = to_device(Device::CPU).to(DType::I64).contiguous();
  const int64_t* p = static_cast<const int64_t*>(t.raw_data());
  return std::vector<int64_t>(p, p + numel());
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end) const {
  int d = wrap_dim(dim, ndim(), "slice");
  PARADIT_CHECK(0 <= start && start <= end && end <= shape_[d], "slice [", start, ", ", end,
                ") out of range for dim ", d, " of ", str());
  Tensor t = *this;
  t.offset_ += static_cast<size_t>(start * strides_[d]) * itemsize();
  t.shape_[d] = end - start;
  return t;
}

Tensor Tensor::select(int dim, int64_t index) const {
  int d = wrap_dim(dim, ndim(), "select");
  Tensor t = slice(d, index, index + 1);
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      PARADIT_CHECK(infer < 0, "reshape ", str(), " to ", shape_str(shape), ": two -1 dims");
      infer = static_cast<int>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) s[infer] = known ? numel() / known : 0;
  PARADIT_CHECK(shape_numel(s) == numel(), "reshape ", str(), " to ", shape_str(shape),
                ": element counts differ");
  check_shape(s);
  Tensor t = *this;
  // Every element of an all-zero-stride tensor (broadcast_placeholder) is the same one, so any
  // reshape of it is again all-zero-stride: no copy needed.
  if (!is_contiguous() && !strides_.empty() &&
      std::all_of(strides_.begin(), strides_.end(), [](int64_t st) { return st == 0; })) {
    t.shape_ = s;
    t.strides_.assign(s.size(), 0);
    return t;
  }
  PARADIT_CHECK(is_contiguous(), "reshape of non-contiguous ", str(), "; call contiguous() first");
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::flatten_to_2d() const {
  PARADIT_CHECK(ndim() >= 1, "flatten_to_2d of a scalar");
  return reshape({-1, shape_.back()});
}

Tensor Tensor::unsqueeze(int dim) const {
  int d = dim < 0 ? dim + ndim() + 1 : dim;
  PARADIT_CHECK(d >= 0 && d <= ndim(), "unsqueeze: dim ", dim, " for ", str());
  Tensor t = *this;
  int64_t st = d < ndim() ? strides_[d] * shape_[d] : 1;
  t.shape_.insert(t.shape_.begin() + d, 1);
  t.strides_.insert(t.strides_.begin() + d, st);
  check_shape(t.shape_);
  return t;
}

Tensor Tensor::squeeze(int dim) const {
  int d = wrap_dim(dim, ndim(), "squeeze");
  PARADIT_CHECK(shape_[d] == 1, "squeeze: dim ", d, " of ", str(), " is not 1");
  Tensor t = *this;
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

namespace {

// dst ← src on one device (any strides, converting dtype): the copy body of that device.
void device_copy(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  PARADIT_CHECK(dst.ndim() <= backend::kMaxDims, "copy: ", dst.ndim(), " dims");
  require_support(Op::kCopy, dst.device(), dst.dtype());
  backend::CopyArgs a;
  a.ndim = dst.ndim();
  std::copy(dst.shape().begin(), dst.shape().end(), a.shape);
  a.src = src.raw_data();
  std::copy(src.strides().begin(), src.strides().end(), a.src_strides);
  a.src_dtype = src.dtype();
  a.dst = dst.raw_data();
  std::copy(dst.strides().begin(), dst.strides().end(), a.dst_strides);
  a.dst_dtype = dst.dtype();
  if (dst.device() == Device::CPU) backend::cpu::copy(a); else if constexpr (kCudaBuilt) backend::cuda::copy(a);
}

// The bytes of a contiguous tensor to a contiguous one of the same dtype and size on another
// device.
void transfer(const Tensor& dst, const Tensor& src) {
#ifdef PARADIT_WITH_CUDA
  backend::cuda::copy_bytes(dst.raw_data(), dst.device(), src.raw_data(), src.device(),
                            dst.nbytes());
#else
  fail("copy: tensor ", src.str(), " from ", device_name(src.device()), " to ",
       device_name(dst.device()), ": this build has no CUDA backend (PARADIT_WITH_CUDA is off)");
#endif
}

}  // namespace

void Tensor::copy_from(const Tensor& src) {
  PARADIT_CHECK(src.shape_ == shape_, "copy_from: shape ", src.str(), " into ", str());
  if (numel() == 0) return;
  if (device() == src.device()) {
    device_copy(*this, src);
    return;
  }
  // Between devices: the bytes move once, packed in the source's dtype; any conversion or
  // scatter into strides runs on the device side.
  if (src.device() == Device::CPU) {
    const Tensor packed = src.contiguous();
    if (dtype_ == src.dtype_ && is_contiguous()) {
      transfer(*this, packed);
      return;
    }
    const Tensor staged = empty(shape_, src.dtype_, device());
    transfer(staged, packed);
    device_copy(*this, staged);
    return;
  }
  Tensor packed = src;
  if (src.dtype_ != dtype_ || !src.is_contiguous()) {
    packed = empty(shape_, dtype_, src.device());
    device_copy(packed, src);
  }
  if (is_contiguous()) {
    transfer(*this, packed);
    return;
  }
  const Tensor host = empty(shape_, dtype_, device());
  transfer(host, packed);
  device_copy(*this, host);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to_device(Device device) const {
  PARADIT_CHECK(defined(), "to_device: undefined tensor");
  if (device == this->device()) return *this;
  PARADIT_CHECK(kCudaBuilt || device == Device::CPU, "to_device: tensor ", str(), " to ",
                device_name(device), ": this build has no CUDA backend (PARADIT_WITH_CUDA is off)");
  Tensor t = empty(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

Tensor Placement::activation(const Tensor& t) const {
  if (!t.defined()) return t;
  return t.to_device(device).to(activation_dtype());
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
  PARADIT_CHECK(static_cast<int>(dims.size()) == ndim(), "permute: ", dims.size(),
                " dims for ", str());
  std::vector<bool> seen(ndim(), false);
  Tensor view = *this;
  for (int i = 0; i < ndim(); ++i) {
    int d = wrap_dim(dims[i], ndim(), "permute");
    PARADIT_CHECK(!seen[d], "permute: dim ", d, " repeated");
    seen[d] = true;
    view.shape_[i] = shape_[d];
    view.strides_[i] = strides_[d];
  }
  return view.clone();
}

}  // namespace paradit::core
