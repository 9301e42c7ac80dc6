#pragma once
// Byte-exact copies between tensor views, for packing messages. Unlike Tensor::copy_from these
// never convert through double (an I64 above 2^53 or a BF16 payload survives unchanged) and
// are fast for any strides: they memcpy the longest run that is contiguous in both views.

#include "core/tensor.h"

namespace paradit::comm {

// dst and src: same shape and same dtype; any strides (dst must not overlap src).
void copy_bytes(const core::Tensor& dst, const core::Tensor& src);

// A contiguous host view of `shape` over `nbytes` starting `offset` bytes into `storage`
// (a message buffer), with x's dtype.
core::Tensor buffer_view(const std::shared_ptr<core::Storage>& storage, size_t offset,
                         const core::Shape& shape, core::DType dtype);

// Product of the dims before `dim`: 1 means slices along `dim` are contiguous blocks of a
// contiguous tensor laid out one after another.
int64_t outer_count(const core::Shape& shape, int dim);

}  // namespace paradit::comm
