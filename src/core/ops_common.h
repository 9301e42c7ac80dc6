#pragma once
// Argument checks and layout helpers shared by the op front ends (src/core/ops_*.cpp).
// Internal: not part of the op interface (ops.h).

#include <cstdint>

#include "core/tensor.h"

namespace paradit::core::detail {

// Fails unless `t` is a defined host F32 tensor: "<op>: <name> must be F32 on the CPU, got ...".
inline void check_f32(const char* op, const char* name, const Tensor& t) {
  PARADIT_CHECK(t.defined(), op, ": ", name, " is undefined");
  PARADIT_CHECK(t.dtype() == DType::F32, op, ": ", name, " must be F32, got ", t.str());
  PARADIT_CHECK(t.device() == Device::CPU, op, ": ", name, " is on ", device_name(t.device()),
                "; this op has only a CPU body");
}

// A vector parameter (weight, bias): defined → F32 of shape (n), returned contiguous;
// undefined → undefined.
inline Tensor vector_param(const char* op, const char* name, const Tensor& t, int64_t n) {
  if (!t.defined()) return t;
  check_f32(op, name, t);
  PARADIT_CHECK(t.ndim() == 1 && t.dim(0) == n, op, ": ", name, " has shape ", shape_str(t.shape()),
                ", expected [", n, "]");
  return t.contiguous();
}

// Views `t` as rows of its last dim: `rows` rows of `D` contiguous elements, row r at
// data + r·row_stride. A tensor whose layout is not of that form (e.g. a permuted view) is
// copied first. Returns the tensor to read from.
inline Tensor as_rows(const Tensor& t, int64_t* rows, int64_t* D, int64_t* row_stride) {
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
  return t.contiguous();
}

}  // namespace paradit::core::detail
