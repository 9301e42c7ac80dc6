// Rotary position embedding (see kernels.h).

#include "backend/cpu/kernels.h"

namespace paradit::backend::cpu {

void rope_f32(const float* x, int64_t B, int64_t S, int64_t H, int64_t D, int64_t sb, int64_t ss,
              int64_t sh, const float* cos, const float* sin, bool interleaved, float* out) {
  const int64_t rows = B * S;
  const int64_t half = D / 2;
#pragma omp parallel for schedule(static) if (rows * H * D >= (1 << 14) && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t b = r / S, s = r % S;
    const float* c = cos + s * D;
    const float* sn = sin + s * D;
    for (int64_t h = 0; h < H; ++h) {
      const float* xr = x + b * sb + s * ss + h * sh;
      float* o = out + (r * H + h) * D;
      if (interleaved) {
        // Pairs (2i, 2i+1): o = x·cos + (−x[2i+1], x[2i])·sin, as diffusers' apply_rotary_emb
        // with use_real_unbind_dim = −1.
#pragma omp simd
        for (int64_t i = 0; i < D; i += 2) {
          const float x0 = xr[i], x1 = xr[i + 1];
          o[i] = x0 * c[i] - x1 * sn[i];
          o[i + 1] = x1 * c[i + 1] + x0 * sn[i + 1];
        }
      } else {
        // Pairs (i, i + D/2): o = x·cos + cat(−x2, x1)·sin (rotate_half).
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float x0 = xr[i], x1 = xr[i + half];
          o[i] = x0 * c[i] - x1 * sn[i];
          o[i + half] = x1 * c[i + half] + x0 * sn[i + half];
        }
      }
    }
  }
}

}  // namespace paradit::backend::cpu
