#pragma once
// Host-side layout helpers of the CUDA bodies: pure functions of sizes, strides and addresses
// (no CUDA header), so tests/cuda_host checks them on a machine without a GPU.

#include <algorithm>
#include <array>
#include <cstdint>

#include "backend/args.h"

namespace paradit::backend::cuda::detail {

// Blocks for a grid-stride loop over n elements with `threads` per block. A few waves of
// blocks per SM are plenty; the loop covers the rest.
inline unsigned grid_for(int64_t n, int threads) {
  constexpr int64_t kMaxBlocks = 65536;
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, kMaxBlocks));
}

// Largest power of two (≤ 256) dividing the address: cuBLASLt, cuDNN and the vector loads of
// the kernels pick their paths by it.
inline uint32_t pointer_alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

inline int64_t numel(int ndim, const int64_t* shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

// An iteration space over K strided operands (strides in elements), outermost dim first.
template <int K>
struct MergedDims {
  int nd = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[K][kMaxDims] = {};
};

// Drops size-1 dims and merges each dim into the one outside it when every operand steps
// through the pair as through one dim (outer stride == inner stride · inner size): fewer dims to
// decompose per element, and a contiguous operand ends up as one dim of stride 1. Only for a
// non-empty space (numel > 0).
template <int K>
MergedDims<K> merge_dims(int ndim, const int64_t* shape,
                         const std::array<const int64_t*, K>& strides) {
  MergedDims<K> m;
  for (int i = 0; i < ndim; ++i) {
    if (shape[i] == 1) continue;
    bool mergeable = m.nd > 0;
    for (int k = 0; k < K && mergeable; ++k)
      mergeable = m.strides[k][m.nd - 1] == strides[k][i] * shape[i];
    if (mergeable) {
      m.shape[m.nd - 1] *= shape[i];
      for (int k = 0; k < K; ++k) m.strides[k][m.nd - 1] = strides[k][i];
      continue;
    }
    m.shape[m.nd] = shape[i];
    for (int k = 0; k < K; ++k) m.strides[k][m.nd] = strides[k][i];
    m.nd++;
  }
  return m;
}

// Whether operand k of a merged space is dense in iteration order (element i at offset i).
template <int K>
bool is_dense(const MergedDims<K>& m, int k) {
  return m.nd == 0 || (m.nd == 1 && m.strides[k][0] == 1);
}

// Contiguous (row-major) strides of a shape.
inline void contiguous_strides(int ndim, const int64_t* shape, int64_t* strides) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    strides[i] = s;
    s *= shape[i];
  }
}

}  // namespace paradit::backend::cuda::detail
