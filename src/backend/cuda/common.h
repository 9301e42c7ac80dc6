#pragma once
// Argument checks and layout helpers shared by the CUDA backend's op front ends. Internal to
// src/backend/cuda; host code only, no CUDA headers.

#include <cstdint>

#include "core/tensor.h"

namespace paradit::backend::cuda::detail {

// Fails unless t is defined and on the device: "<op>: <name> ... ".
void check_device(const char* op, const char* name, const core::Tensor& t);
// check_device, and the dtype is F32, BF16 or F16.
void check_float(const char* op, const char* name, const core::Tensor& t);
bool is_float_dtype(core::DType t);

// Views t as `rows` rows of `D` contiguous elements, row r at data + r·row_stride; copies to a
// contiguous tensor first when t's layout is not of that form. Returns the tensor to read.
core::Tensor as_rows(const core::Tensor& t, int64_t* rows, int64_t* D, int64_t* row_stride);

// A vector parameter: undefined → undefined; else a device float tensor of n elements,
// returned as contiguous F32.
core::Tensor vector_param(const char* op, const char* name, const core::Tensor& t, int64_t n);

// A per-batch parameter (shift, scale, gate): (B, D), (1, D) or (D) → contiguous F32 device
// tensor and its batch stride in elements (D, or 0 when shared by all batches).
core::Tensor batch_param(const char* op, const char* name, const core::Tensor& t, int64_t B,
                         int64_t D, int64_t* batch_stride);

// Number of blocks for a grid-stride loop over n elements with `threads` per block.
unsigned grid_for(int64_t n, int threads);

}  // namespace paradit::backend::cuda::detail
