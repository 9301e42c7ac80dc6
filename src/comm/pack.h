#pragma once
// Byte-exact copies between tensor views, for packing messages. Unlike Tensor::copy_from these
// never convert through double (an I64 above 2^53 or a BF16 payload survives unchanged) and
// are fast for any strides: on the host they memcpy the longest run that is contiguous in both
// views. Device views are copied on their device by the backend's copy body (Tensor::copy_from
// between equal dtypes moves raw element bits), enqueued on the current stream.

#include "core/tensor.h"

namespace paradit::comm {

// dst and src: same shape, same device and same dtype (on the host: the same element size);
// any strides (dst must not overlap src). Never crosses devices: staging is explicit.
void copy_bytes(const core::Tensor& dst, const core::Tensor& src);

// A new contiguous tensor on x's device holding x's bytes.
core::Tensor packed_copy(const core::Tensor& x);

// A contiguous view of `shape` and `dtype` starting `offset` bytes into `storage` (a message
// buffer, on the storage's device).
core::Tensor buffer_view(const std::shared_ptr<core::Storage>& storage, size_t offset,
                         const core::Shape& shape, core::DType dtype);

// Product of the dims before `dim`: 1 means slices along `dim` are contiguous blocks of a
// contiguous tensor laid out one after another.
int64_t outer_count(const core::Shape& shape, int dim);

}  // namespace paradit::comm
