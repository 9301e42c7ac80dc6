// conv2d by im2col + GEMM, and nearest upsampling (see kernels.h).

#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"

namespace paradit::backend::cpu {

namespace {

// Upper bound on the im2col buffer, in floats (16 MiB): a VAE conv at 1024² would otherwise
// need gigabytes. Output rows are processed in blocks that fit.
constexpr int64_t kColBudget = 4 << 20;

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// Output columns [lo, hi) whose input column ow·stride − pad + kj lies inside [0, W).
void valid_cols(const Conv2dGeometry& g, int64_t kj, int64_t Wo, int64_t* lo, int64_t* hi) {
  const int64_t off = g.pad_left - kj;  // iw = ow·sw − off
  *lo = std::clamp<int64_t>(ceil_div(off, g.stride_w), 0, Wo);
  *hi = std::clamp<int64_t>(floor_div(g.W - 1 + off, g.stride_w) + 1, *lo, Wo);
}

// col: (C·kh·kw, (r1 − r0)·Wo), row (c, ki, kj) holds the input pixel each output pixel of rows
// [r0, r1) sees through kernel tap (ki, kj); zero where the tap falls in the padding.
void im2col(const float* x, const Conv2dGeometry& g, int64_t r0, int64_t r1, float* col) {
  const int64_t Wo = g.out_w();
  const int64_t K = g.C * g.kh * g.kw;
  const int64_t P = (r1 - r0) * Wo;
#pragma omp parallel for schedule(static) if (K * P >= (1 << 15))
  for (int64_t k = 0; k < K; ++k) {
    const int64_t c = k / (g.kh * g.kw), ki = k / g.kw % g.kh, kj = k % g.kw;
    int64_t lo, hi;
    valid_cols(g, kj, Wo, &lo, &hi);
    const float* xc = x + c * g.H * g.W;
    float* dst = col + k * P;
    for (int64_t oh = r0; oh < r1; ++oh, dst += Wo) {
      const int64_t ih = oh * g.stride_h - g.pad_top + ki;
      if (ih < 0 || ih >= g.H || lo >= hi) {
        std::fill_n(dst, Wo, 0.0f);
        continue;
      }
      const float* src = xc + ih * g.W - g.pad_left + kj;  // src[ow·sw] is the input pixel
      std::fill_n(dst, lo, 0.0f);
      if (g.stride_w == 1) {
        std::memcpy(dst + lo, src + lo, static_cast<size_t>(hi - lo) * sizeof(float));
      } else {
        const int64_t sw = g.stride_w;
        for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * sw];
      }
      std::fill_n(dst + hi, Wo - hi, 0.0f);
    }
  }
}

// The transpose of im2col: rows: ((r1 − r0)·Wo, C·kh·kw), one row per output pixel. The bf16
// GEMM takes its f32 operand on the left, so the weight is the right (transposed) operand.
void im2row(const float* x, const Conv2dGeometry& g, int64_t r0, int64_t r1, float* rows) {
  const int64_t Wo = g.out_w();
  const int64_t K = g.C * g.kh * g.kw;
  const int64_t P = (r1 - r0) * Wo;
#pragma omp parallel for schedule(static) if (K * P >= (1 << 15))
  for (int64_t p = 0; p < P; ++p) {
    const int64_t oh = r0 + p / Wo, ow = p % Wo;
    float* dst = rows + p * K;
    for (int64_t c = 0; c < g.C; ++c) {
      const float* xc = x + c * g.H * g.W;
      for (int64_t ki = 0; ki < g.kh; ++ki) {
        const int64_t ih = oh * g.stride_h - g.pad_top + ki;
        const bool row_in = ih >= 0 && ih < g.H;
        for (int64_t kj = 0; kj < g.kw; ++kj) {
          const int64_t iw = ow * g.stride_w - g.pad_left + kj;
          *dst++ = row_in && iw >= 0 && iw < g.W ? xc[ih * g.W + iw] : 0.0f;
        }
      }
    }
  }
}

}  // namespace

void conv2d_f32(const float* x, const void* w, bool w_bf16, const float* bias,
                const Conv2dGeometry& g, float* out) {
  const int64_t Ho = g.out_h(), Wo = g.out_w();
  const int64_t HWo = Ho * Wo;
  const int64_t K = g.C * g.kh * g.kw;
  if (g.N == 0 || g.O == 0 || HWo == 0) return;
  const bool direct = g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 &&
                      g.pad_top == 0 && g.pad_bottom == 0 && g.pad_left == 0 && g.pad_right == 0;
  const int64_t rows_per_block =
      std::clamp<int64_t>(kColBudget / std::max<int64_t>(K * Wo, 1), 1, Ho);
  std::vector<float> buf;
  if (!(direct && !w_bf16)) buf.resize(static_cast<size_t>(rows_per_block * Wo * K));
  std::vector<float> tmp;  // bf16 path: the GEMM result (pixels, O) before its transpose
  if (w_bf16) tmp.resize(static_cast<size_t>(rows_per_block * Wo * g.O));

  if (!w_bf16) {
    const float* wf = static_cast<const float*>(w);
    if (bias) {
      // The GEMM accumulates onto the bias (beta = 1).
#pragma omp parallel for schedule(static) if (g.N * g.O * HWo >= (1 << 15))
      for (int64_t p = 0; p < g.N * g.O; ++p) std::fill_n(out + p * HWo, HWo, bias[p % g.O]);
    }
    const float beta = bias ? 1.0f : 0.0f;
    for (int64_t n = 0; n < g.N; ++n) {
      const float* xn = x + n * g.C * g.H * g.W;
      float* on = out + n * g.O * HWo;
      if (direct) {
        // out[n] (O, H·W) = w (O, C) · x[n] (C, H·W)
        gemm_f32(false, false, g.O, HWo, K, 1.0f, wf, K, xn, HWo, beta, on, HWo);
        continue;
      }
      for (int64_t r0 = 0; r0 < Ho; r0 += rows_per_block) {
        const int64_t r1 = std::min(Ho, r0 + rows_per_block);
        const int64_t P = (r1 - r0) * Wo;
        im2col(xn, g, r0, r1, buf.data());
        // out[n][:, r0·Wo : r1·Wo] (O, P) = w (O, K) · col (K, P)
        gemm_f32(false, false, g.O, P, K, 1.0f, wf, K, buf.data(), P, beta, on + r0 * Wo, HWo);
      }
    }
    return;
  }

  const uint16_t* wb = static_cast<const uint16_t*>(w);
  for (int64_t n = 0; n < g.N; ++n) {
    const float* xn = x + n * g.C * g.H * g.W;
    float* on = out + n * g.O * HWo;
    for (int64_t r0 = 0; r0 < Ho; r0 += rows_per_block) {
      const int64_t r1 = std::min(Ho, r0 + rows_per_block);
      const int64_t P = (r1 - r0) * Wo;
      im2row(xn, g, r0, r1, buf.data());
      // tmp (P, O) = rows (P, K) · wᵀ (K, O)
      gemm_f32_bf16(false, true, P, g.O, K, 1.0f, buf.data(), K, wb, K, 0.0f, tmp.data(), g.O);
      // out[n][o][r0·Wo + p] = tmp[p][o] + bias[o]
      transpose_add_bias(tmp.data(), P, g.O, bias, on + r0 * Wo, HWo);
    }
  }
}

void transpose_add_bias(const float* tmp, int64_t P, int64_t O, const float* bias, float* out,
                        int64_t out_stride) {
  // In tiles, to keep both sides in cache.
  constexpr int64_t kTile = 64;
  const int64_t otiles = (O + kTile - 1) / kTile;
  const int64_t ptiles = (P + kTile - 1) / kTile;
#pragma omp parallel for schedule(static) if (P * O >= (1 << 15))
  for (int64_t t = 0; t < otiles * ptiles; ++t) {
    const int64_t o0 = t / ptiles * kTile, p0 = t % ptiles * kTile;
    const int64_t o1 = std::min(O, o0 + kTile), p1 = std::min(P, p0 + kTile);
    for (int64_t o = o0; o < o1; ++o) {
      const float b = bias ? bias[o] : 0.0f;
      float* dst = out + o * out_stride;
      for (int64_t p = p0; p < p1; ++p) dst[p] = tmp[p * O + o] + b;
    }
  }
}

void upsample_nearest2d_f32(const float* x, int64_t planes, int64_t H, int64_t W, int factor,
                            float* y) {
  const int64_t f = factor;
  const int64_t Wy = W * f;
  const int64_t rows = planes * H;
#pragma omp parallel for schedule(static) if (rows * Wy * f >= (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = x + r * W;
    float* dst = y + r * f * Wy;  // row h of plane p is output rows h·f … h·f + f − 1
    if (f == 2) {  // the VAE's case: a form GCC vectorizes (unpack of each vector with itself)
#pragma omp simd
      for (int64_t w = 0; w < W; ++w) {
        dst[2 * w] = src[w];
        dst[2 * w + 1] = src[w];
      }
    } else {
      for (int64_t w = 0; w < W; ++w) {
        const float v = src[w];
        for (int64_t j = 0; j < f; ++j) dst[w * f + j] = v;
      }
    }
    for (int64_t i = 1; i < f; ++i)
      std::memcpy(dst + i * Wy, dst, static_cast<size_t>(Wy) * sizeof(float));
  }
}

}  // namespace paradit::backend::cpu
