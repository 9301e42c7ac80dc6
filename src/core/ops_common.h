#pragma once
// Argument checks and layout helpers shared by the op front ends (src/core/ops_*.cpp).
// Internal: not part of the op interface (ops.h).

#include <cstdint>

#include "backend/cpu/ops.h"
#include "backend/cuda/ops.h"
#include "core/op_registry.h"
#include "core/tensor.h"

namespace paradit::core::detail {

namespace cpu = backend::cpu;
namespace cuda = backend::cuda;

// Fails unless `t` is defined, on `device` and a dtype `op` has a body for there (the activation
// dtype of the op): "<op>: <name> ...".
inline void check_input(Op op, const char* name, const Tensor& t, Device device) {
  PARADIT_CHECK(t.defined(), op_name(op), ": ", name, " is undefined");
  PARADIT_CHECK(t.device() == device, op_name(op), ": ", name, " ", t.str(), " is on ",
                device_name(t.device()), ", the other operands on ", device_name(device));
  require_support(op, device, t.dtype());
}
// check_input on the tensor's own device: the first operand of an op.
inline void check_first(Op op, const char* name, const Tensor& t) {
  PARADIT_CHECK(t.defined(), op_name(op), ": ", name, " is undefined");
  check_input(op, name, t, t.device());
}
// Fails unless a defined `t` is on `device`.
inline void check_device(Op op, const char* name, const Tensor& t, Device device) {
  PARADIT_CHECK(!t.defined() || t.device() == device, op_name(op), ": ", name, " ", t.str(),
                " is on ", device_name(t.device()), ", the other operands on ",
                device_name(device));
}

// A vector parameter (weight, bias, table) of n elements: undefined → undefined; otherwise a
// float tensor of shape (n) on `device`, returned as contiguous F32 (converted when needed).
inline Tensor vector_param(Op op, const char* name, const Tensor& t, int64_t n, Device device) {
  if (!t.defined()) return t;
  check_device(op, name, t, device);
  PARADIT_CHECK(is_floating(t.dtype()), op_name(op), ": ", name, " must be a float tensor, got ",
                t.str());
  PARADIT_CHECK(t.ndim() == 1 && t.dim(0) == n, op_name(op), ": ", name, " has shape ",
                shape_str(t.shape()), ", expected [", n, "]");
  return t.to(DType::F32).contiguous();
}

inline const float* f32_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const float*>(t.raw_data()) : nullptr;
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

// The per-batch rows of a modulation parameter (shift, scale, gate) for x (B, S, D): accepts
// (B, D) and (B, 1, D), with batch size B or 1, any row stride, on `device`, a float dtype.
// Returns the tensor to read and its batch stride (0 when one row serves the whole batch). On
// the CPU the parameter is F32; on CUDA any float dtype.
Tensor batch_rows(Op op, const char* name, const Tensor& p, int64_t B, int64_t D, Device device,
                  int64_t* bstride);

}  // namespace paradit::core::detail
