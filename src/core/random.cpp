#include "core/random.h"

#include <cmath>

namespace paradit::core {

namespace {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;
constexpr int kPhiloxRounds = 10;
constexpr double kTwoPow53Inv = 1.0 / 9007199254740992.0;  // 2^-53
constexpr double kTwoPi = 6.283185307179586476925286766559;

inline uint32_t lo32(uint64_t v) { return static_cast<uint32_t>(v & 0xffffffffu); }
inline uint32_t hi32(uint64_t v) { return static_cast<uint32_t>(v >> 32); }

// The two normals of block `block`.
inline void normal_pair(uint64_t seed, uint64_t stream, uint64_t block, double* z0, double* z1) {
  const std::array<uint32_t, 4> x = philox4x32_10(
      {lo32(block), hi32(block), lo32(stream), hi32(stream)}, {lo32(seed), hi32(seed)});
  const uint64_t a = (static_cast<uint64_t>(x[0]) << 32) | x[1];
  const uint64_t b = (static_cast<uint64_t>(x[2]) << 32) | x[3];
  const double u1 = static_cast<double>((a >> 11) + 1) * kTwoPow53Inv;  // (0, 1]
  const double u2 = static_cast<double>(b >> 11) * kTwoPow53Inv;        // [0, 1)
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = kTwoPi * u2;
  *z0 = r * std::cos(theta);
  *z1 = r * std::sin(theta);
}

}  // namespace

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  for (int round = 0; round < kPhiloxRounds; ++round) {
    if (round > 0) {
      k[0] += kPhiloxW0;
      k[1] += kPhiloxW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c[2];
    c = {hi32(p1) ^ c[1] ^ k[0], lo32(p1), hi32(p0) ^ c[3] ^ k[1], lo32(p0)};
  }
  return c;
}

float randn_element(uint64_t seed, uint64_t stream, uint64_t index) {
  double z0 = 0, z1 = 0;
  normal_pair(seed, stream, index / 2, &z0, &z1);
  return static_cast<float>(index % 2 == 0 ? z0 : z1);
}

Tensor randn(const Shape& shape, uint64_t seed, uint64_t stream) {
  Tensor out = Tensor::empty(shape, DType::F32);
  float* dst = out.data<float>();
  const int64_t n = out.numel();
  const int64_t blocks = (n + 1) / 2;
  // Each block is independent of the others, so the thread count never changes a value.
#pragma omp parallel for schedule(static) if (blocks > 4096)
  for (int64_t b = 0; b < blocks; ++b) {
    double z0 = 0, z1 = 0;
    normal_pair(seed, stream, static_cast<uint64_t>(b), &z0, &z1);
    dst[2 * b] = static_cast<float>(z0);
    if (2 * b + 1 < n) dst[2 * b + 1] = static_cast<float>(z1);
  }
  return out;
}

}  // namespace paradit::core
