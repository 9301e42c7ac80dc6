#include "backend/cuda/common.h"

#include <algorithm>

#include "backend/cuda/kernels.h"

namespace paradit::backend::cuda::detail {

using core::Device;
using core::DType;
using core::Tensor;

bool is_float_dtype(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

void check_device(const char* op, const char* name, const Tensor& t) {
  PARADIT_CHECK(t.defined(), op, ": ", name, " is undefined");
  PARADIT_CHECK(t.device() == Device::CUDA, op, ": ", name, " ", t.str(), " is on ",
                core::device_name(t.device()), ", expected a CUDA tensor");
}

void check_float(const char* op, const char* name, const Tensor& t) {
  check_device(op, name, t);
  PARADIT_CHECK(is_float_dtype(t.dtype()), op, ": ", name, " is ", t.str(),
                ", expected F32, BF16 or F16");
}

Tensor as_rows(const Tensor& t, int64_t* rows, int64_t* D, int64_t* row_stride) {
  if (t.ndim() == 0) {
    *rows = 1;
    *D = 1;
    *row_stride = 1;
    return t;
  }
  *D = t.dim(-1);
  *rows = *D ? t.numel() / *D : 0;
  bool uniform = t.dim(-1) <= 1 || t.stride(-1) == 1;
  int64_t stride = -1, expected = -1;
  for (int i = t.ndim() - 2; i >= 0 && uniform; --i) {
    if (t.dim(i) == 1) continue;
    if (stride < 0) {
      stride = t.stride(i);
    } else if (t.stride(i) != expected) {
      uniform = false;
    }
    expected = t.stride(i) * t.dim(i);
  }
  if (uniform) {
    *row_stride = stride < 0 ? *D : stride;
    return t;
  }
  *row_stride = *D;
  return contiguous(t);
}

Tensor vector_param(const char* op, const char* name, const Tensor& t, int64_t n) {
  if (!t.defined()) return t;
  check_float(op, name, t);
  PARADIT_CHECK(t.ndim() == 1 && t.dim(0) == n, op, ": ", name, " has shape ",
                core::shape_str(t.shape()), ", expected [", n, "]");
  return convert(t, DType::F32);
}

Tensor batch_param(const char* op, const char* name, const Tensor& t, int64_t B, int64_t D,
                   int64_t* batch_stride) {
  check_float(op, name, t);
  const bool shared =
      (t.ndim() == 1 && t.dim(0) == D) || (t.ndim() == 2 && t.dim(0) == 1 && t.dim(1) == D);
  const bool per_batch = t.ndim() == 2 && t.dim(0) == B && t.dim(1) == D;
  PARADIT_CHECK(shared || per_batch, op, ": ", name, " has shape ", core::shape_str(t.shape()),
                ", expected [", B, ", ", D, "], [1, ", D, "] or [", D, "]");
  *batch_stride = per_batch && B > 1 ? D : 0;
  return convert(t, DType::F32);
}

unsigned grid_for(int64_t n, int threads) {
  // Grid-stride loops cover the rest; a few waves of blocks per SM are plenty.
  constexpr int64_t kMaxBlocks = 65536;
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, kMaxBlocks));
}

}  // namespace paradit::backend::cuda::detail
