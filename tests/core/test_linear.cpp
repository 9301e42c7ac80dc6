// core::linear, core::matmul and the raw gemm.h entry points against plain double loops.
//
// Tolerance: a computed dot product of K terms differs from the exact one by at most about
// K·eps·Σ|xₖ·wₖ| (eps = 2⁻²⁴), and by ~√K·eps·Σ|xₖ·wₖ| in practice. Each element is therefore
// compared with 1e-5 · (Σ|xₖ·wₖ| + |b|): loose enough for any f32 summation order at these K,
// far tighter than any indexing or layout mistake. For bf16 weights the reference uses the
// bf16-rounded weights and activations (what the kernel multiplies; bf16 products are exact in
// f32), so the same f32-accumulation bound applies.

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <thread>
#include <vector>

#include "backend/cpu/gemm.h"
#include "core/dtype.h"
#include "core/ops.h"
#include "support/random.h"

namespace paradit::core {
namespace {

constexpr double kTol = 1e-5;

using paradit::testing::random_tensor;
using paradit::testing::random_values;

float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// y (M, N) = x (M, K) · w (N, K)ᵀ + b in double; also Σ|x·w| + |b| per element for the bound.
void reference_linear(const std::vector<float>& x, const std::vector<float>& w,
                      const std::vector<float>& b, int64_t M, int64_t N, int64_t K,
                      std::vector<double>* y, std::vector<double>* mag) {
  y->assign(M * N, 0.0);
  mag->assign(M * N, 0.0);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = b.empty() ? 0.0 : b[n];
      double a = b.empty() ? 0.0 : std::fabs(b[n]);
      for (int64_t k = 0; k < K; ++k) {
        const double p = static_cast<double>(x[m * K + k]) * w[n * K + k];
        acc += p;
        a += std::fabs(p);
      }
      (*y)[m * N + n] = acc;
      (*mag)[m * N + n] = a;
    }
  }
}

void expect_close(const std::vector<float>& got, const std::vector<double>& ref,
                  const std::vector<double>& mag, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(got[i] - ref[i]);
    const double bound = tol * (mag[i] + 1e-30);
    if (!(err <= bound) && reported++ < 5) {
      ADD_FAILURE() << what << ": element " << i << " got " << got[i] << " expected " << ref[i]
                    << " (|err| " << err << " > bound " << bound << ")";
    }
  }
}

// Runs core::linear for x (lead..., K) and checks it against the double loop.
void check_linear(const Shape& x_shape, int64_t N, bool bf16_weight, bool with_bias,
                  uint32_t seed) {
  const int64_t K = x_shape.back();
  Tensor x = random_tensor(x_shape, seed);
  Tensor w32 = random_tensor({N, K}, seed + 1);
  Tensor b = with_bias ? random_tensor({N}, seed + 2) : Tensor();
  Tensor w = bf16_weight ? w32.to(DType::BF16) : w32;
  Tensor y = linear(x, w, b);

  Shape want = x_shape;
  want.back() = N;
  ASSERT_EQ(y.shape(), want);
  ASSERT_EQ(y.dtype(), DType::F32);

  std::vector<float> xv = x.to_vector(), wv = w.to_vector();  // w already bf16-rounded
  if (bf16_weight) {
    for (auto& v : xv) v = round_bf16(v);
  }
  std::vector<float> bv = with_bias ? b.to_vector() : std::vector<float>();
  std::vector<double> ref, mag;
  const int64_t M = K > 0 ? x.numel() / K : 0;
  reference_linear(xv, wv, bv, M, N, K, &ref, &mag);
  expect_close(y.to_vector(), ref, mag, kTol,
               "linear x" + shape_str(x_shape) + " N=" + std::to_string(N) +
                   (bf16_weight ? " bf16" : " f32") + (with_bias ? " +bias" : ""));
}

TEST(Linear, F32OddSizes) {
  uint32_t seed = 100;
  for (int64_t M : {1, 7, 33, 257}) {
    for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{
             {1, 1}, {5, 3}, {17, 65}, {97, 130}, {255, 769}}) {
      for (bool bias : {false, true}) check_linear({M, K}, N, false, bias, seed++);
    }
  }
}

TEST(Linear, Bf16WeightsOddSizes) {
  uint32_t seed = 200;
  for (int64_t M : {1, 7, 33, 257}) {
    for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{
             {1, 1}, {5, 3}, {17, 65}, {97, 130}, {255, 769}}) {
      for (bool bias : {false, true}) check_linear({M, K}, N, true, bias, seed++);
    }
  }
}

TEST(Linear, ThreeAndFourDimInputs) {
  check_linear({2, 33, 65}, 48, false, true, 300);
  check_linear({2, 33, 65}, 48, true, true, 301);
  check_linear({2, 3, 5, 64}, 7, false, false, 302);
  check_linear({1, 1, 96}, 96, true, false, 303);
}

TEST(Linear, NonContiguousInput) {
  // A slice of the feature dim (row stride 100) and a slice of the middle dim of a 3-D tensor.
  Tensor big = random_tensor({33, 100}, 400);
  Tensor x = big.slice(-1, 10, 75);  // (33, 65) with row stride 100
  ASSERT_FALSE(x.is_contiguous());
  Tensor w = random_tensor({19, 65}, 401);
  Tensor b = random_tensor({19}, 402);
  for (bool bf16 : {false, true}) {
    Tensor wt = bf16 ? w.to(DType::BF16) : w;
    Tensor y = linear(x, wt, b);
    Tensor y_ref = linear(x.contiguous(), wt, b);  // same kernel, contiguous input
    std::vector<float> xv = x.to_vector(), wv = wt.to_vector();
    if (bf16) {
      for (auto& v : xv) v = round_bf16(v);
    }
    std::vector<double> ref, mag;
    reference_linear(xv, wv, b.to_vector(), 33, 19, 65, &ref, &mag);
    expect_close(y.to_vector(), ref, mag, kTol, bf16 ? "sliced x, bf16" : "sliced x, f32");
    EXPECT_EQ(y.to_vector(), y_ref.to_vector());
  }

  Tensor big3 = random_tensor({4, 10, 32}, 403);
  Tensor x3 = big3.slice(1, 2, 7);  // (4, 5, 32), not contiguous
  ASSERT_FALSE(x3.is_contiguous());
  Tensor w3 = random_tensor({9, 32}, 404);
  Tensor y3 = linear(x3, w3);
  ASSERT_EQ(y3.shape(), (Shape{4, 5, 9}));
  std::vector<double> ref, mag;
  reference_linear(x3.to_vector(), w3.to_vector(), {}, 20, 9, 32, &ref, &mag);
  expect_close(y3.to_vector(), ref, mag, kTol, "middle-dim slice");
}

TEST(Linear, WeightColumnSlice) {
  // Weight rows with a stride larger than K (a column slice of a wider matrix).
  Tensor wbig = random_tensor({21, 80}, 500);
  Tensor w = wbig.slice(1, 8, 72);  // (21, 64), row stride 80
  Tensor x = random_tensor({13, 64}, 501);
  Tensor y = linear(x, w);
  std::vector<double> ref, mag;
  reference_linear(x.to_vector(), w.to_vector(), {}, 13, 21, 64, &ref, &mag);
  expect_close(y.to_vector(), ref, mag, kTol, "weight column slice");
}

TEST(Linear, RepeatedCallsReuseCachedPrimitiveWithNewData) {
  // The same shape twice with different data: a cache that kept pointers would fail here.
  for (uint32_t seed : {600u, 610u, 620u}) check_linear({37, 50}, 23, false, true, seed);
  for (uint32_t seed : {630u, 640u}) check_linear({37, 50}, 23, true, true, seed);
}

TEST(Linear, ConcurrentCallsFromThreads) {
  // Distinct threads running the same and different shapes at once (shared primitive cache,
  // per-thread scratchpads).
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      for (int rep = 0; rep < 3; ++rep) {
        const int64_t M = 20 + (t % 2), N = 31, K = 47;
        Tensor x = random_tensor({M, K}, 700 + t * 10 + rep);
        Tensor w = random_tensor({N, K}, 800 + t);
        Tensor y = linear(x, t >= 2 ? w.to(DType::BF16) : w);
        std::vector<float> xv = x.to_vector(), wv = (t >= 2 ? w.to(DType::BF16) : w).to_vector();
        if (t >= 2) {
          for (auto& v : xv) v = round_bf16(v);
        }
        std::vector<double> ref, mag;
        reference_linear(xv, wv, {}, M, N, K, &ref, &mag);
        std::vector<float> got = y.to_vector();
        for (size_t i = 0; i < got.size(); ++i) {
          if (!(std::fabs(got[i] - ref[i]) <= kTol * mag[i])) ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

TEST(Linear, ZeroRows) {
  Tensor x = Tensor::empty({0, 16});
  Tensor y = linear(x, random_tensor({8, 16}, 900));
  EXPECT_EQ(y.shape(), (Shape{0, 8}));
}

TEST(Linear, BadArgumentsThrow) {
  Tensor x = random_tensor({4, 16}, 910);
  EXPECT_THROW(linear(x, random_tensor({8, 15}, 911)), Error);  // K mismatch
  EXPECT_THROW(linear(x, random_tensor({8, 16}, 912), random_tensor({7}, 913)), Error);  // bias
  EXPECT_THROW(linear(x, random_tensor({2, 8, 16}, 914)), Error);               // 3-D weight
  EXPECT_THROW(linear(x.to(DType::BF16), random_tensor({8, 16}, 915)), Error);  // bf16 input
  try {
    linear(x, random_tensor({8, 15}, 916));
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("linear"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4, 16]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[8, 15]"), std::string::npos) << msg;
  }
}

// ---------------------------------------------------------------- matmul

// c (B, M, N) = a (B, M, K) · b (B|1, K, N) [or b (B|1, N, K)ᵀ] in double.
void reference_matmul(const Tensor& a, const Tensor& b, bool trans_b, std::vector<double>* c,
                      std::vector<double>* mag) {
  const int64_t B = a.dim(0), M = a.dim(1), K = a.dim(2);
  const int64_t N = trans_b ? b.dim(1) : b.dim(2);
  std::vector<float> av = a.to_vector(), bv = b.to_vector();
  const int64_t b_batch = b.dim(0) == 1 ? 0 : K * N;
  c->assign(B * M * N, 0.0);
  mag->assign(B * M * N, 0.0);
  for (int64_t bi = 0; bi < B; ++bi) {
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0, s = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double bk = trans_b ? bv[bi * b_batch + n * K + k] : bv[bi * b_batch + k * N + n];
          const double p = static_cast<double>(av[(bi * M + m) * K + k]) * bk;
          acc += p;
          s += std::fabs(p);
        }
        (*c)[(bi * M + m) * N + n] = acc;
        (*mag)[(bi * M + m) * N + n] = s;
      }
    }
  }
}

void check_matmul(const Tensor& a, const Tensor& b, bool trans_b, const std::string& what) {
  Tensor c = matmul(a, b, trans_b);
  const int64_t N = trans_b ? b.dim(1) : b.dim(2);
  ASSERT_EQ(c.shape(), (Shape{a.dim(0), a.dim(1), N})) << what;
  std::vector<double> ref, mag;
  reference_matmul(a, b, trans_b, &ref, &mag);
  expect_close(c.to_vector(), ref, mag, kTol, what);
}

TEST(Matmul, PlainAndTransposed) {
  uint32_t seed = 1000;
  for (auto [B, M, N, K] : std::vector<std::array<int64_t, 4>>{
           {1, 1, 1, 1}, {3, 7, 5, 9}, {2, 33, 65, 17}, {4, 64, 64, 64}, {2, 130, 63, 257}}) {
    check_matmul(random_tensor({B, M, K}, seed), random_tensor({B, K, N}, seed + 1), false,
                 "matmul " + std::to_string(B) + "x" + std::to_string(M));
    check_matmul(random_tensor({B, M, K}, seed + 2), random_tensor({B, N, K}, seed + 3), true,
                 "matmul trans_b " + std::to_string(B) + "x" + std::to_string(M));
    seed += 10;
  }
}

TEST(Matmul, BroadcastBatchAndStridedOperands) {
  // b with batch 1 is shared by every batch element.
  check_matmul(random_tensor({3, 11, 20}, 1100), random_tensor({1, 20, 6}, 1101), false,
               "broadcast b");
  check_matmul(random_tensor({3, 11, 20}, 1102), random_tensor({1, 6, 20}, 1103), true,
               "broadcast b trans");
  // Row-strided views (slices of the last dim) and a batch-strided view (slice of dim 1).
  Tensor abig = random_tensor({2, 9, 40}, 1104);
  Tensor a = abig.slice(2, 5, 30);  // (2, 9, 25), row stride 40
  Tensor bbig = random_tensor({2, 12, 25}, 1105);
  Tensor b = bbig.slice(1, 2, 10);  // (2, 8, 25) as (B, N, K)
  check_matmul(a, b, true, "strided a, strided b trans");
  Tensor b2 = random_tensor({2, 25, 30}, 1106).slice(2, 3, 14);  // (2, 25, 11), row stride 30
  check_matmul(a, b2, false, "strided a, strided b");
}

TEST(Matmul, BadArgumentsThrow) {
  EXPECT_THROW(matmul(random_tensor({2, 3, 4}, 1), random_tensor({2, 5, 6}, 2)), Error);
  EXPECT_THROW(matmul(random_tensor({2, 3, 4}, 1), random_tensor({3, 4, 6}, 2)), Error);
  EXPECT_THROW(matmul(random_tensor({3, 4}, 1), random_tensor({4, 6}, 2)), Error);
  EXPECT_THROW(matmul(random_tensor({2, 3, 4}, 1), random_tensor({2, 4, 6}, 2), true), Error);
}

// ---------------------------------------------------------------- raw gemm.h

// C = alpha·op(A)·op(B) + beta·C with padded leading dims; every flag combination.
TEST(Gemm, F32AlphaBetaTransposesLeadingDims) {
  using backend::cpu::gemm_f32;
  const int64_t M = 13, N = 11, K = 29, pad = 3;
  uint32_t seed = 1200;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (auto [alpha, beta] : std::vector<std::pair<float, float>>{
               {1.0f, 0.0f}, {0.5f, 0.0f}, {1.0f, 1.0f}, {-2.0f, 0.25f}}) {
        const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
        const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
        const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
        std::vector<float> A = random_values(a_rows * lda, seed++);
        std::vector<float> B = random_values(b_rows * ldb, seed++);
        std::vector<float> C = random_values(M * ldc, seed++);
        std::vector<float> C0 = C;
        if (beta == 0.0f) {
          for (int64_t i = 0; i < M; ++i) C[i * ldc] = std::nanf("");  // must not be read
        }
        gemm_f32(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        for (int64_t i = 0; i < M; ++i) {
          for (int64_t j = 0; j < ldc; ++j) {
            if (j >= N) {  // padding columns untouched
              EXPECT_EQ(C[i * ldc + j], C0[i * ldc + j]);
              continue;
            }
            double acc = 0, mag = 0;
            for (int64_t k = 0; k < K; ++k) {
              const double a = ta ? A[k * lda + i] : A[i * lda + k];
              const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
              acc += a * b;
              mag += std::fabs(a * b);
            }
            // beta = 0 must not read C (it holds NaN in column 0 then).
            const double c_term = beta == 0.0f ? 0.0 : beta * static_cast<double>(C0[i * ldc + j]);
            const double want = alpha * acc + c_term;
            const double bound = kTol * (std::fabs(alpha) * mag + std::fabs(c_term));
            EXPECT_NEAR(C[i * ldc + j], want, bound)
                << "ta=" << ta << " tb=" << tb << " alpha=" << alpha << " beta=" << beta << " at ("
                << i << ", " << j << ")";
          }
        }
      }
    }
  }
}

TEST(Gemm, Bf16WeightsTransposes) {
  using backend::cpu::gemm_f32_bf16;
  const int64_t M = 9, N = 21, K = 40;
  uint32_t seed = 1300;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
      const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
      std::vector<float> A = random_values(a_rows * a_cols, seed++);
      std::vector<float> Bf = random_values(b_rows * b_cols, seed++);
      std::vector<uint16_t> B(Bf.size());
      for (size_t i = 0; i < Bf.size(); ++i) B[i] = f32_to_bf16(Bf[i]);
      std::vector<float> C = random_values(M * N, seed++), C0 = C;
      const float alpha = 1.5f, beta = 0.5f;
      gemm_f32_bf16(ta, tb, M, N, K, alpha, A.data(), a_cols, B.data(), b_cols, beta, C.data(), N);
      for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0, mag = 0;
          for (int64_t k = 0; k < K; ++k) {
            const double a = round_bf16(ta ? A[k * a_cols + i] : A[i * a_cols + k]);
            const double b = bf16_to_f32(tb ? B[j * b_cols + k] : B[k * b_cols + j]);
            acc += a * b;
            mag += std::fabs(a * b);
          }
          const double want = alpha * acc + beta * C0[i * N + j];
          EXPECT_NEAR(C[i * N + j], want, kTol * (alpha * mag + std::fabs(beta * C0[i * N + j])))
              << "ta=" << ta << " tb=" << tb << " at (" << i << ", " << j << ")";
        }
      }
    }
  }
}

TEST(Gemm, LibraryName) {
  const std::string name = backend::cpu::gemm_library_name();
  EXPECT_FALSE(name.empty());
#if defined(PARADIT_GEMM_ONEDNN)
  EXPECT_EQ(name.rfind("oneDNN ", 0), 0u) << name;
#endif
}

}  // namespace
}  // namespace paradit::core
