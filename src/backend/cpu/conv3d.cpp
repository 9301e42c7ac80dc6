// conv3d by im2col + GEMM (see conv3d.h).

#include "backend/cpu/conv3d.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"

namespace paradit::backend::cpu {

namespace {

// Upper bound on the im2col buffer, in floats (16 MiB), as for conv2d: a video VAE layer at
// 480p would otherwise need gigabytes. Output rows are processed in blocks that fit.
constexpr int64_t kColBudget = 4 << 20;

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// Output columns [lo, hi) whose input column ow·stride − pad + kj lies inside [0, W); the
// columns before lo fall left of the input, those from hi on right of it.
void valid_cols(const Conv3dGeometry& g, int64_t kj, int64_t Wo, int64_t* lo, int64_t* hi) {
  const int64_t off = g.pad_left - kj;  // iw = ow·sw − off
  *lo = std::clamp<int64_t>(ceil_div(off, g.stride_w), 0, Wo);
  *hi = std::clamp<int64_t>(floor_div(g.W - 1 + off, g.stride_w) + 1, *lo, Wo);
}

// The input row (frame it, row ih) an output row sees through taps (dt, ki), or nullptr when it
// lies in zero padding. Replicate padding clamps to the nearest edge row.
const float* input_row(const float* xc, const Conv3dGeometry& g, int64_t to, int64_t oh, int64_t dt,
                       int64_t ki) {
  int64_t it = to * g.stride_t - g.pad_front + dt;
  int64_t ih = oh * g.stride_h - g.pad_top + ki;
  if (g.replicate) {
    it = std::clamp<int64_t>(it, 0, g.T - 1);
    ih = std::clamp<int64_t>(ih, 0, g.H - 1);
  } else if (it < 0 || it >= g.T || ih < 0 || ih >= g.H) {
    return nullptr;
  }
  return xc + (it * g.H + ih) * g.W;
}

// col: (C·kt·kh·kw, (r1 − r0)·Wo). Output row r is the pair (frame r / Ho, row r % Ho); col row
// (c, dt, ki, kj) holds the input element each output element of rows [r0, r1) sees through
// that tap.
void im2col(const float* x, const Conv3dGeometry& g, int64_t r0, int64_t r1, float* col) {
  const int64_t Ho = g.out_h(), Wo = g.out_w();
  const int64_t taps = g.kt * g.kh * g.kw;
  const int64_t K = g.C * taps;
  const int64_t P = (r1 - r0) * Wo;
#pragma omp parallel for schedule(static) if (K * P >= (1 << 15))
  for (int64_t k = 0; k < K; ++k) {
    const int64_t c = k / taps, dt = k % taps / (g.kh * g.kw), ki = k / g.kw % g.kh, kj = k % g.kw;
    int64_t lo, hi;
    valid_cols(g, kj, Wo, &lo, &hi);
    const float* xc = x + c * g.T * g.H * g.W;
    float* dst = col + k * P;
    for (int64_t r = r0; r < r1; ++r, dst += Wo) {
      const float* row = input_row(xc, g, r / Ho, r % Ho, dt, ki);
      if (!row) {
        std::fill_n(dst, Wo, 0.0f);
        continue;
      }
      const int64_t shift = kj - g.pad_left;  // iw = ow·sw + shift
      if (g.stride_w == 1) {
        if (hi > lo) {
          std::memcpy(dst + lo, row + lo + shift, static_cast<size_t>(hi - lo) * sizeof(float));
        }
      } else {
        for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = row[ow * g.stride_w + shift];
      }
      std::fill_n(dst, lo, g.replicate ? row[0] : 0.0f);
      std::fill_n(dst + hi, Wo - hi, g.replicate ? row[g.W - 1] : 0.0f);
    }
  }
}

// The transpose of im2col: rows: ((r1 − r0)·Wo, C·kt·kh·kw), one row per output element, for
// the bf16 GEMM (which takes its f32 operand on the left).
void im2row(const float* x, const Conv3dGeometry& g, int64_t r0, int64_t r1, float* rows) {
  const int64_t Ho = g.out_h(), Wo = g.out_w();
  const int64_t K = g.C * g.kt * g.kh * g.kw;
  const int64_t P = (r1 - r0) * Wo;
#pragma omp parallel for schedule(static) if (K * P >= (1 << 15))
  for (int64_t p = 0; p < P; ++p) {
    const int64_t r = r0 + p / Wo, ow = p % Wo;
    float* dst = rows + p * K;
    for (int64_t c = 0; c < g.C; ++c) {
      const float* xc = x + c * g.T * g.H * g.W;
      for (int64_t dt = 0; dt < g.kt; ++dt) {
        for (int64_t ki = 0; ki < g.kh; ++ki) {
          const float* row = input_row(xc, g, r / Ho, r % Ho, dt, ki);
          for (int64_t kj = 0; kj < g.kw; ++kj) {
            int64_t iw = ow * g.stride_w - g.pad_left + kj;
            if (g.replicate) iw = std::clamp<int64_t>(iw, 0, g.W - 1);
            *dst++ = row && iw >= 0 && iw < g.W ? row[iw] : 0.0f;
          }
        }
      }
    }
  }
}

}  // namespace

void conv3d_f32(const float* x, const void* w, bool w_bf16, const float* bias,
                const Conv3dGeometry& g, float* out) {
  const int64_t To = g.out_t(), Ho = g.out_h(), Wo = g.out_w();
  const int64_t rows_total = To * Ho;  // output rows: (frame, h) pairs, contiguous in `out`
  const int64_t THWo = rows_total * Wo;
  const int64_t K = g.C * g.kt * g.kh * g.kw;
  const int64_t THW = g.T * g.H * g.W;
  if (g.N == 0 || g.O == 0 || THWo == 0) return;
  const bool direct = g.kt == 1 && g.kh == 1 && g.kw == 1 && g.stride_t == 1 && g.stride_h == 1 &&
                      g.stride_w == 1 && g.pad_front == 0 && g.pad_back == 0 && g.pad_top == 0 &&
                      g.pad_bottom == 0 && g.pad_left == 0 && g.pad_right == 0;
  const int64_t rows_per_block =
      std::clamp<int64_t>(kColBudget / std::max<int64_t>(K * Wo, 1), 1, rows_total);
  std::vector<float> buf;
  if (!(direct && !w_bf16)) buf.resize(static_cast<size_t>(rows_per_block * Wo * K));

  if (!w_bf16) {
    const float* wf = static_cast<const float*>(w);
    if (bias) {
      // The GEMM accumulates onto the bias (beta = 1).
#pragma omp parallel for schedule(static) if (g.N * g.O * THWo >= (1 << 15))
      for (int64_t p = 0; p < g.N * g.O; ++p) std::fill_n(out + p * THWo, THWo, bias[p % g.O]);
    }
    const float beta = bias ? 1.0f : 0.0f;
    for (int64_t n = 0; n < g.N; ++n) {
      const float* xn = x + n * g.C * THW;
      float* on = out + n * g.O * THWo;
      if (direct) {
        // out[n] (O, T·H·W) = w (O, C) · x[n] (C, T·H·W)
        gemm_f32(false, false, g.O, THWo, K, 1.0f, wf, K, xn, THWo, beta, on, THWo);
        continue;
      }
      for (int64_t r0 = 0; r0 < rows_total; r0 += rows_per_block) {
        const int64_t r1 = std::min(rows_total, r0 + rows_per_block);
        const int64_t P = (r1 - r0) * Wo;
        im2col(xn, g, r0, r1, buf.data());
        // out[n][:, r0·Wo : r1·Wo] (O, P) = w (O, K) · col (K, P)
        gemm_f32(false, false, g.O, P, K, 1.0f, wf, K, buf.data(), P, beta, on + r0 * Wo, THWo);
      }
    }
    return;
  }

  const uint16_t* wb = static_cast<const uint16_t*>(w);
  std::vector<float> tmp(static_cast<size_t>(rows_per_block * Wo * g.O));  // (pixels, O)
  for (int64_t n = 0; n < g.N; ++n) {
    const float* xn = x + n * g.C * THW;
    float* on = out + n * g.O * THWo;
    for (int64_t r0 = 0; r0 < rows_total; r0 += rows_per_block) {
      const int64_t r1 = std::min(rows_total, r0 + rows_per_block);
      const int64_t P = (r1 - r0) * Wo;
      im2row(xn, g, r0, r1, buf.data());
      // tmp (P, O) = rows (P, K) · wᵀ (K, O)
      gemm_f32_bf16(false, true, P, g.O, K, 1.0f, buf.data(), K, wb, K, 0.0f, tmp.data(), g.O);
      // out[n][o][r0·Wo + p] = tmp[p][o] + bias[o]
      transpose_add_bias(tmp.data(), P, g.O, bias, on + r0 * Wo, THWo);
    }
  }
}

}  // namespace paradit::backend::cpu
