#pragma once
// The engine's seeded generator: standard-normal tensors that are a pure function of
// (seed, stream, element index), so a seed gives the same latents on every machine, with any
// number of threads, and in every parallel configuration (each rank draws the whole tensor and
// keeps the part it needs; there are no per-rank streams).
//
// Algorithm (fixed; changing it changes every seeded image):
//   1. Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; the
//      Random123 reference), a counter-based generator: 10 rounds over a 128-bit counter
//      (c0, c1, c2, c3) with the 64-bit key (k0, k1), multipliers 0xD2511F53 / 0xCD9E8D57 and
//      key increments 0x9E3779B9 / 0xBB67AE85 (the "Weyl" constants) between rounds.
//      key     = (seed & 0xffffffff, seed >> 32)
//      counter = (b & 0xffffffff, b >> 32, stream & 0xffffffff, stream >> 32) for block b.
//   2. Each block gives four 32-bit words x0..x3 and two 53-bit uniforms:
//      u1 = (((x0 << 32) | x1) >> 11) + 1) · 2^-53   in (0, 1]   (never 0: log is finite)
//      u2 = (((x2 << 32) | x3) >> 11)      · 2^-53   in [0, 1)
//   3. Box–Muller in double: r = sqrt(−2 ln u1), θ = 2π·u2,
//      element 2b = r·cos θ, element 2b+1 = r·sin θ, each then rounded to float.
// Elements are numbered in the tensor's row-major (contiguous) order. The only platform
// dependence is the last bit of libm's double log/cos/sin, which the rounding to float absorbs
// (a float result changes only when a double lands within 1 ulp of a float rounding boundary).
//
// Streams: stream 0 is the initial latents; the pipelines draw other noise (e.g. DDPM's per-step
// noise) from stream 1 + step so it never overlaps the latents.

#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace paradit::core {

// One Philox4x32-10 block: the four output words for `counter` under `key`.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter,
                                      std::array<uint32_t, 2> key);

// The standard-normal value of element `index` of (seed, stream), as randn() fills it.
float randn_element(uint64_t seed, uint64_t stream, uint64_t index);

// A contiguous F32 tensor of `shape` filled with standard-normal values of (seed, stream).
Tensor randn(const Shape& shape, uint64_t seed, uint64_t stream = 0);

}  // namespace paradit::core
