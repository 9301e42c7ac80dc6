// Strided copies and embedding lookup (see kernels.h).

#include <algorithm>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "backend/cpu/vec_math.h"

namespace paradit::backend::cpu {

namespace {

constexpr int kMaxKernelDims = 8;
constexpr int64_t kParallelMinBytes = 1 << 18;

template <typename T>
void copy_elems(const char* src, int64_t ss, char* dst, int64_t ds, int64_t n) {
  const T* s = reinterpret_cast<const T*>(src);
  T* d = reinterpret_cast<T*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i * ds] = s[i * ss];
}

}  // namespace

void strided_copy(int ndim, const int64_t* shape, const void* src, const int64_t* src_strides,
                  void* dst, const int64_t* dst_strides, size_t itemsize) {
  // Drop size-1 dims and merge dims contiguous with their inner neighbour in both tensors.
  int n = 0;
  int64_t sh[kMaxKernelDims], ss[kMaxKernelDims], ds[kMaxKernelDims];
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 0) return;
    if (shape[d] == 1) continue;
    if (n > 0 && ss[n - 1] == src_strides[d] * shape[d] && ds[n - 1] == dst_strides[d] * shape[d]) {
      sh[n - 1] *= shape[d];
      ss[n - 1] = src_strides[d];
      ds[n - 1] = dst_strides[d];
      continue;
    }
    sh[n] = shape[d];
    ss[n] = src_strides[d];
    ds[n] = dst_strides[d];
    ++n;
  }
  if (n == 0) {
    std::memcpy(dst, src, itemsize);
    return;
  }
  const int in = n - 1;
  const int64_t L = sh[in];
  int64_t outer = 1;
  for (int d = 0; d < in; ++d) outer *= sh[d];
  const char* s0 = static_cast<const char*>(src);
  char* d0 = static_cast<char*>(dst);
  const int64_t isz = static_cast<int64_t>(itemsize);
  const bool rows_contiguous = ss[in] == 1 && ds[in] == 1;
  if (outer == 1 && rows_contiguous) {
    // One contiguous block: split it across threads.
    const int64_t bytes = L * isz;
    constexpr int64_t kBlock = 1 << 20;
    const int64_t blocks = (bytes + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (bytes >= 4 * kParallelMinBytes)
    for (int64_t t = 0; t < blocks; ++t) {
      const int64_t b0 = t * kBlock;
      std::memcpy(d0 + b0, s0 + b0, static_cast<size_t>(std::min(kBlock, bytes - b0)));
    }
    return;
  }
#pragma omp parallel for schedule(static) if (outer * L * isz >= kParallelMinBytes && outer > 1)
  for (int64_t r = 0; r < outer; ++r) {
    int64_t rem = r, so = 0, dof = 0;
    for (int d = in - 1; d >= 0; --d) {
      const int64_t i = rem % sh[d];
      rem /= sh[d];
      so += i * ss[d];
      dof += i * ds[d];
    }
    const char* s = s0 + so * isz;
    char* dd = d0 + dof * isz;
    if (rows_contiguous) {
      std::memcpy(dd, s, static_cast<size_t>(L * isz));
      continue;
    }
    switch (itemsize) {
      case 1:
        copy_elems<uint8_t>(s, ss[in], dd, ds[in], L);
        break;
      case 2:
        copy_elems<uint16_t>(s, ss[in], dd, ds[in], L);
        break;
      case 4:
        copy_elems<uint32_t>(s, ss[in], dd, ds[in], L);
        break;
      case 8:
        copy_elems<uint64_t>(s, ss[in], dd, ds[in], L);
        break;
      default:
        for (int64_t i = 0; i < L; ++i)
          std::memcpy(dd + i * ds[in] * isz, s + i * ss[in] * isz, itemsize);
    }
  }
}

void embedding_f32(const void* table, bool table_bf16, int64_t D, const int64_t* ids, int64_t n,
                   float* out) {
#pragma omp parallel for schedule(static) if (n * D >= (1 << 16) && n > 1)
  for (int64_t i = 0; i < n; ++i) {
    float* o = out + i * D;
    if (table_bf16) {
      const uint16_t* row = static_cast<const uint16_t*>(table) + ids[i] * D;
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) o[j] = bits_to_float(static_cast<uint32_t>(row[j]) << 16);
    } else {
      const float* row = static_cast<const float*>(table) + ids[i] * D;
      std::memcpy(o, row, static_cast<size_t>(D) * sizeof(float));
    }
  }
}

}  // namespace paradit::backend::cpu
