// core::randn: Philox4x32-10 + Box–Muller. The expected values come from independent sources:
// the Random123 known-answer vectors for Philox4x32-10, and a plain Python implementation of
// the algorithm documented in core/random.h (integers and math.log/cos/sin in double).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "core/random.h"

namespace paradit::core {
namespace {

TEST(Philox, Random123KnownAnswers) {
  using A4 = std::array<uint32_t, 4>;
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (A4{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                          {0xffffffffu, 0xffffffffu}),
            (A4{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                          {0xa4093822u, 0x299f31d0u}),
            (A4{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(Randn, MatchesTheDocumentedAlgorithm) {
  // From the Python reference implementation of the header's algorithm.
  const Tensor a = randn({6}, 0);
  const float want_a[] = {-0.12151797860860825f, -1.3500326871871948f, -0.08187420666217804f,
                          -0.222709059715271f,   1.7764242887496948f,  2.173520803451538f};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(a.data<float>()[i], want_a[i]) << i;

  const Tensor b = randn({5}, 42, 3);  // stream 3, odd length
  const float want_b[] = {-0.4273270070552826f, -2.497955560684204f, -0.5934855341911316f,
                          -0.9734148383140564f, -1.5055850744247437f};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.data<float>()[i], want_b[i]) << i;

  const Tensor c = randn({2, 2}, (uint64_t{1} << 40) + 7);  // the seed's high word is the key
  const float want_c[] = {1.715322494506836f, 0.49674710631370544f, 0.091273732483387f,
                          1.4125288724899292f};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(c.data<float>()[i], want_c[i]) << i;
  EXPECT_EQ(randn_element((uint64_t{1} << 40) + 7, 0, 3), want_c[3]);
}

TEST(Randn, IndependentOfThreadsAndShape) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Tensor one = randn({3, 50001}, 1234);
  omp_set_num_threads(std::max(2, threads));
  const Tensor many = randn({3, 50001}, 1234);
  omp_set_num_threads(threads);
  ASSERT_EQ(one.numel(), many.numel());
  EXPECT_EQ(std::memcmp(one.data<float>(), many.data<float>(), one.nbytes()), 0);
  // The values depend on the element index only, not on the shape.
  const Tensor flat = randn({150003}, 1234);
  EXPECT_EQ(std::memcmp(one.data<float>(), flat.data<float>(), one.nbytes()), 0);
  for (uint64_t i : {0ull, 1ull, 77777ull, 150002ull}) {
    EXPECT_EQ(randn_element(1234, 0, i), flat.data<float>()[i]) << i;
  }
}

TEST(Randn, SeedsAndStreamsDiffer) {
  const Tensor a = randn({1000}, 5), b = randn({1000}, 6), c = randn({1000}, 5, 1);
  int same_ab = 0, same_ac = 0;
  for (int i = 0; i < 1000; ++i) {
    same_ab += a.data<float>()[i] == b.data<float>()[i];
    same_ac += a.data<float>()[i] == c.data<float>()[i];
  }
  EXPECT_EQ(same_ab, 0);
  EXPECT_EQ(same_ac, 0);
}

TEST(Randn, StandardNormalMoments) {
  const int64_t n = 1 << 20;
  const Tensor x = randn({n}, 99);
  double s1 = 0, s2 = 0, s4 = 0;
  int64_t beyond3 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x.data<float>()[i];
    ASSERT_TRUE(std::isfinite(v));
    s1 += v;
    s2 += v * v;
    s4 += v * v * v * v;
    beyond3 += std::fabs(v) > 3.0;
  }
  const double mean = s1 / n, var = s2 / n - mean * mean;
  // Standard errors for 2^20 samples: mean 0.001, variance 0.0014, 4th moment 0.01.
  EXPECT_NEAR(mean, 0.0, 0.005);
  EXPECT_NEAR(var, 1.0, 0.007);
  EXPECT_NEAR(s4 / n, 3.0, 0.05);
  // P(|z| > 3) = 0.0027.
  EXPECT_NEAR(static_cast<double>(beyond3) / n, 0.0027, 0.0004);
}

}  // namespace
}  // namespace paradit::core
