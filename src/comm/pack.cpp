#include "comm/pack.h"

#include <cstring>
#include <vector>

namespace paradit::comm {

using core::Tensor;

void copy_bytes(const Tensor& dst, const Tensor& src) {
  PARADIT_CHECK(dst.shape() == src.shape(), "copy_bytes: shape ", src.str(), " into ", dst.str());
  PARADIT_CHECK(dst.itemsize() == src.itemsize(), "copy_bytes: dtype ", src.str(), " into ",
                dst.str());
  PARADIT_CHECK(dst.device() == src.device(), "copy_bytes: ", src.str(), " on ",
                core::device_name(src.device()), " into ", dst.str(), " on ",
                core::device_name(dst.device()), ": the devices differ");
  const int64_t n = src.numel();
  if (n == 0) return;
  if (dst.device() != core::Device::CPU) {
    // Equal dtypes: the device copy body moves raw bits (no conversion), so this is exact.
    PARADIT_CHECK(dst.dtype() == src.dtype(), "copy_bytes: dtype ", src.str(), " into ", dst.str(),
                  " on ", core::device_name(dst.device()));
    Tensor d = dst;
    d.copy_from(src);
    return;
  }
  const size_t isz = src.itemsize();
  char* d = static_cast<char*>(dst.raw_data());
  const char* s = static_cast<const char*>(src.raw_data());
  if (dst.is_contiguous() && src.is_contiguous()) {
    std::memcpy(d, s, static_cast<size_t>(n) * isz);
    return;
  }
  // Drop size-1 dims, then merge trailing dims that are contiguous in both views into one run.
  std::vector<int64_t> shape, ds, ss;
  for (int i = 0; i < src.ndim(); ++i) {
    if (src.shape()[i] == 1) continue;
    shape.push_back(src.shape()[i]);
    ds.push_back(dst.strides()[i]);
    ss.push_back(src.strides()[i]);
  }
  int64_t run = 1;  // elements per contiguous run
  int nd = static_cast<int>(shape.size());
  while (nd > 0 && ds[nd - 1] == run && ss[nd - 1] == run) {
    run *= shape[nd - 1];
    --nd;
  }
  const size_t run_bytes = static_cast<size_t>(run) * isz;
  int64_t runs = 1;
  for (int i = 0; i < nd; ++i) runs *= shape[i];
    // Each run's offsets come from its multi-index; runs are independent, so threads split them.
#pragma omp parallel for if (static_cast <size_t>(n) * isz > (size_t{1} << 22))
  for (int64_t r = 0; r < runs; ++r) {
    int64_t rem = r, doff = 0, soff = 0;
    for (int i = nd - 1; i >= 0; --i) {
      const int64_t idx = rem % shape[i];
      rem /= shape[i];
      doff += idx * ds[i];
      soff += idx * ss[i];
    }
    if (run == 1) {
      std::memcpy(d + doff * isz, s + soff * isz, isz);
    } else {
      std::memcpy(d + doff * isz, s + soff * isz, run_bytes);
    }
  }
}

Tensor packed_copy(const Tensor& x) {
  Tensor c = Tensor::empty(x.shape(), x.dtype(), x.device());
  copy_bytes(c, x);
  return c;
}

Tensor buffer_view(const std::shared_ptr<core::Storage>& storage, size_t offset,
                   const core::Shape& shape, core::DType dtype) {
  return Tensor::from_storage(storage, offset, shape, dtype);
}

int64_t outer_count(const core::Shape& shape, int dim) {
  int64_t n = 1;
  for (int i = 0; i < dim; ++i) n *= shape[i];
  return n;
}

}  // namespace paradit::comm
