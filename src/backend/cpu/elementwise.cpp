// Broadcasting binary ops, modulation and gated residuals (see kernels.h).

#include <algorithm>
#include <cmath>

#include "backend/cpu/kernels.h"

namespace paradit::backend::cpu {

namespace {

constexpr int kMaxKernelDims = 8;
constexpr int64_t kParallelMin = 1 << 15;

// Broadcast iteration space after dropping size-1 dims and merging adjacent dims that are
// contiguous with each other in both operands; the last dim is the inner loop.
struct Space {
  int n = 0;
  int64_t shape[kMaxKernelDims];
  int64_t sa[kMaxKernelDims];
  int64_t sb[kMaxKernelDims];
};

Space coalesce(int ndim, const int64_t* shape, const int64_t* a_strides, const int64_t* b_strides) {
  Space s;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    if (s.n > 0 && s.sa[s.n - 1] == a_strides[d] * shape[d] &&
        s.sb[s.n - 1] == b_strides[d] * shape[d]) {
      // Dim d continues the previous one in both operands: merge.
      s.shape[s.n - 1] *= shape[d];
      s.sa[s.n - 1] = a_strides[d];
      s.sb[s.n - 1] = b_strides[d];
      continue;
    }
    s.shape[s.n] = shape[d];
    s.sa[s.n] = a_strides[d];
    s.sb[s.n] = b_strides[d];
    ++s.n;
  }
  if (s.n == 0) {  // a single element
    s.n = 1;
    s.shape[0] = 1;
    s.sa[0] = s.sb[0] = 0;
  }
  return s;
}

template <typename Op>
void inner(Op op, int64_t L, const float* a, int64_t sa, const float* b, int64_t sb, float* out) {
  if (sa == 1 && sb == 1) {
#pragma omp simd
    for (int64_t i = 0; i < L; ++i) out[i] = op(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float bv = *b;
#pragma omp simd
    for (int64_t i = 0; i < L; ++i) out[i] = op(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const float av = *a;
#pragma omp simd
    for (int64_t i = 0; i < L; ++i) out[i] = op(av, b[i]);
  } else {
    for (int64_t i = 0; i < L; ++i) out[i] = op(a[i * sa], b[i * sb]);
  }
}

template <typename Op>
void binary(Op op, const Space& s, const float* a, const float* b, float* out) {
  const int inner_dim = s.n - 1;
  const int64_t L = s.shape[inner_dim];
  int64_t outer = 1;
  for (int d = 0; d < inner_dim; ++d) outer *= s.shape[d];
#pragma omp parallel for schedule(static) if (outer * L >= kParallelMin && outer > 1)
  for (int64_t r = 0; r < outer; ++r) {
    // Offsets of row r in a and b from its multi-index over the outer dims.
    int64_t rem = r, oa = 0, ob = 0;
    for (int d = inner_dim - 1; d >= 0; --d) {
      const int64_t i = rem % s.shape[d];
      rem /= s.shape[d];
      oa += i * s.sa[d];
      ob += i * s.sb[d];
    }
    inner(op, L, a + oa, s.sa[inner_dim], b + ob, s.sb[inner_dim], out + r * L);
  }
}

// Calls fn with the scalar function of `op`, so that each op gets its own inlined loops.
template <typename Fn>
void with_op(BinaryOp op, Fn fn) {
  switch (op) {
    case BinaryOp::kAdd:
      fn([](float u, float v) { return u + v; });
      break;
    case BinaryOp::kSub:
      fn([](float u, float v) { return u - v; });
      break;
    case BinaryOp::kMul:
      fn([](float u, float v) { return u * v; });
      break;
    case BinaryOp::kDiv:
      fn([](float u, float v) { return u / v; });
      break;
  }
}

}  // namespace

void binary_f32(BinaryOp op, int ndim, const int64_t* shape, const float* a,
                const int64_t* a_strides, const float* b, const int64_t* b_strides, float* out) {
  for (int d = 0; d < ndim; ++d)
    if (shape[d] == 0) return;
  const Space s = coalesce(ndim, shape, a_strides, b_strides);
  if (s.n == 1 && s.shape[0] >= kParallelMin) {
    // One long row: split it so that both threads work.
    const int64_t L = s.shape[0];
    constexpr int64_t kBlock = 1 << 13;
    const int64_t blocks = (L + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < blocks; ++t) {
      const int64_t i0 = t * kBlock, n = std::min(kBlock, L - i0);
      const float* ab = a + i0 * s.sa[0];
      const float* bb = b + i0 * s.sb[0];
      with_op(op, [&](auto f) { inner(f, n, ab, s.sa[0], bb, s.sb[0], out + i0); });
    }
    return;
  }
  with_op(op, [&](auto f) { binary(f, s, a, b, out); });
}

void modulate_f32(const float* x, int64_t B, int64_t S, int64_t D, const float* shift,
                  int64_t shift_bstride, const float* scale, int64_t scale_bstride, float* out) {
  const int64_t rows = B * S;
#pragma omp parallel for schedule(static) if (rows * D >= kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t b = r / S;
    const float* sh = shift + b * shift_bstride;
    const float* sc = scale + b * scale_bstride;
    const float* xr = x + r * D;
    float* o = out + r * D;
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) o[i] = xr[i] * (1.0f + sc[i]) + sh[i];
  }
}

void gated_add_f32(const float* x, const float* gate, int64_t gate_bstride, const float* y,
                   int64_t B, int64_t S, int64_t D, float* out) {
  const int64_t rows = B * S;
#pragma omp parallel for schedule(static) if (rows * D >= kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate + r / S * gate_bstride;
    const float* xr = x + r * D;
    const float* yr = y + r * D;
    float* o = out + r * D;
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) o[i] = xr[i] + g[i] * yr[i];
  }
}

}  // namespace paradit::backend::cpu

namespace paradit::backend::cpu {

// No fused multiply-add in lincomb: GCC contracts c·x + y into an FMA by default in C++ (also
// with -std=c++20; -march=native has FMA), clang within one expression. Turned off here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
void lincomb_f32(int terms, const float* coef, const float* const* t, float post_mul,
                 float post_div, int64_t n, float* out) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  // Term by term over the whole array, as the schedulers' Python expressions evaluate: the
  // intermediate sums are f32 values in `out`, each product and sum rounded on its own, so the
  // order of roundings is that of diffusers.
  bool first = true;
  for (int k = 0; k < terms; ++k) {
    const float c = coef[k];
    const float* x = t[k];
    if (x == nullptr) continue;
    if (first) {
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
      for (int64_t i = 0; i < n; ++i) out[i] = c * x[i];
      first = false;
    } else {
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
      for (int64_t i = 0; i < n; ++i) out[i] = out[i] + c * x[i];
    }
  }
  if (first) std::fill_n(out, n, 0.0f);
  if (post_mul != 1.0f) {
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
    for (int64_t i = 0; i < n; ++i) out[i] = out[i] * post_mul;
  }
  if (post_div != 1.0f) {
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
    for (int64_t i = 0; i < n; ++i) out[i] = out[i] / post_div;
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

void clamp_f32(const float* x, int64_t n, float lo, float hi, float* y) {
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(x[i], lo), hi);
}

int64_t count_non_finite_f32(const float* x, int64_t n) {
  int64_t count = 0;
#pragma omp parallel for schedule(static) reduction(+ : count) if (n >= (1 << 16))
  for (int64_t i = 0; i < n; ++i) count += std::isfinite(x[i]) ? 0 : 1;
  return count;
}

void affine_f32(bool div_add, const float* x, int64_t outer, int64_t C, int64_t inner,
                const float* a, const float* b, float* y) {
#pragma omp parallel for schedule(static) if (outer * C * inner >= (1 << 16))
  for (int64_t p = 0; p < outer * C; ++p) {
    const float ap = a[p % C], bp = b[p % C];
    const float* xs = x + p * inner;
    float* ys = y + p * inner;
    if (div_add) {
      for (int64_t i = 0; i < inner; ++i) ys[i] = xs[i] / bp + ap;
    } else {
      for (int64_t i = 0; i < inner; ++i) ys[i] = (xs[i] - ap) * bp;
    }
  }
}

}  // namespace paradit::backend::cpu
