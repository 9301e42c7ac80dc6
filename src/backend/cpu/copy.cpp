// Strided copies and embedding lookup (see kernels.h).

#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/vec_math.h"
#include "core/error.h"

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

double load_as_double(const void* p, core::DType t) {
  using core::DType;
  switch (t) {
    case DType::F32: return *static_cast<const float*>(p);
    case DType::F64: return *static_cast<const double*>(p);
    case DType::BF16: return core::bf16_to_f32(*static_cast<const uint16_t*>(p));
    case DType::F16: return core::f16_to_f32(*static_cast<const uint16_t*>(p));
    case DType::I64: return static_cast<double>(*static_cast<const int64_t*>(p));
    case DType::I32: return *static_cast<const int32_t*>(p);
    case DType::I16: return *static_cast<const int16_t*>(p);
    case DType::I8: return *static_cast<const int8_t*>(p);
    case DType::U8: return *static_cast<const uint8_t*>(p);
    case DType::Bool: return *static_cast<const uint8_t*>(p) ? 1.0 : 0.0;
    case DType::F8E4M3: return core::f8e4m3_to_f32(*static_cast<const uint8_t*>(p));
    case DType::F8E5M2: return core::f8e5m2_to_f32(*static_cast<const uint8_t*>(p));
  }
  return 0;
}

void store_from_double(void* p, core::DType t, double v) {
  using core::DType;
  switch (t) {
    case DType::F32: *static_cast<float*>(p) = static_cast<float>(v); break;
    case DType::F64: *static_cast<double*>(p) = v; break;
    case DType::BF16: *static_cast<uint16_t*>(p) = core::f32_to_bf16(static_cast<float>(v)); break;
    case DType::F16: *static_cast<uint16_t*>(p) = core::f32_to_f16(static_cast<float>(v)); break;
    case DType::I64: *static_cast<int64_t*>(p) = static_cast<int64_t>(v); break;
    case DType::I32: *static_cast<int32_t*>(p) = static_cast<int32_t>(v); break;
    case DType::I16: *static_cast<int16_t*>(p) = static_cast<int16_t>(v); break;
    case DType::I8: *static_cast<int8_t*>(p) = static_cast<int8_t>(v); break;
    case DType::U8: *static_cast<uint8_t*>(p) = static_cast<uint8_t>(v); break;
    case DType::Bool: *static_cast<uint8_t*>(p) = v != 0.0; break;
    case DType::F8E4M3:
    case DType::F8E5M2: paradit::fail("conversion to ", core::dtype_name(t), " is not supported");
  }
}

namespace {

bool is_contiguous(int ndim, const int64_t* shape, const int64_t* strides) {
  int64_t expected = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

}  // namespace

void convert_copy(int ndim, const int64_t* shape, const void* src, const int64_t* src_strides,
                  core::DType src_dtype, void* dst, const int64_t* dst_strides,
                  core::DType dst_dtype) {
  using core::DType;
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  if (n == 0) return;
  const bool contiguous =
      is_contiguous(ndim, shape, src_strides) && is_contiguous(ndim, shape, dst_strides);
  if (contiguous && dst_dtype == DType::F32 && src_dtype == DType::BF16) {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    float* d = static_cast<float*>(dst);
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) d[i] = core::bf16_to_f32(s[i]);
    return;
  }
  if (contiguous && dst_dtype == DType::BF16 && src_dtype == DType::F32) {
    const float* s = static_cast<const float*>(src);
    uint16_t* d = static_cast<uint16_t*>(dst);
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) d[i] = core::f32_to_bf16(s[i]);
    return;
  }
  // General path: element by element through double, in logical order.
  const size_t ssz = core::dtype_size(src_dtype), dsz = core::dtype_size(dst_dtype);
  const char* sbase = static_cast<const char*>(src);
  char* dbase = static_cast<char*>(dst);
  std::vector<int64_t> idx(static_cast<size_t>(ndim), 0);
  int64_t so = 0, dof = 0;
  for (int64_t linear = 0; linear < n; ++linear) {
    store_from_double(dbase + dof * static_cast<int64_t>(dsz), dst_dtype,
                      load_as_double(sbase + so * static_cast<int64_t>(ssz), src_dtype));
    for (int d = ndim - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        so += src_strides[d];
        dof += dst_strides[d];
        break;
      }
      so -= src_strides[d] * (shape[d] - 1);
      dof -= dst_strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

void fill_values(void* x, int64_t n, double value, core::DType dtype) {
  using core::DType;
  if (n <= 0) return;
  if (value == 0.0 && dtype != DType::F8E4M3 && dtype != DType::F8E5M2) {
    std::memset(x, 0, static_cast<size_t>(n) * core::dtype_size(dtype));  // +0 in every dtype
    return;
  }
  if (dtype == DType::F32) {
    std::fill_n(static_cast<float*>(x), n, static_cast<float>(value));
    return;
  }
  const size_t sz = core::dtype_size(dtype);
  char* p = static_cast<char*>(x);
  store_from_double(p, dtype, value);
  for (int64_t i = 1; i < n; ++i) std::memcpy(p + i * static_cast<int64_t>(sz), p, sz);
}

}  // namespace paradit::backend::cpu
