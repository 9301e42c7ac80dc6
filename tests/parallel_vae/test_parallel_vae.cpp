// Patch-parallel VAE (parallel/vae_patch.h). Runs alone (a world of one) and under mpirun -np 2,
// 3 and 4 (parallel_vae.cmake). References are independent of the row split:
//   - the row-split conv and GroupNorm against plain double-precision loops on the full tensor;
//   - decode_row_parallel / encode_row_parallel against the single-process vae.decode /
//     vae.encode (local SpatialOps: no halo, no gathered statistics) on the tiny diffusers
//     fixtures and on latents whose height does not divide by the rank count (≤ 1e-5 relative,
//     8-bit pixels within ±1), and the fixture decode against diffusers' own output.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "comm/mpi_test_env.h"
#include "comm/runtime.h"
#include "core/ops.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/vae/autoencoder_kl.h"
#include "parallel/vae_patch.h"
#include "pipelines/vae_decode.h"
#include "support/tensor_checks.h"

PARADIT_REGISTER_COMM_TEST_ENVIRONMENT();

namespace paradit::parallel {
namespace {

namespace fs = std::filesystem;
using core::Shape;
using core::Tensor;
using pipelines::decode_row_parallel;
using pipelines::encode_row_parallel;
using testing::max_rel_err;
using testing::random_tensor;

fs::path case_dir(const std::string& name) { return fs::path(PARADIT_TEST_DATA) / "vae" / name; }

// Deterministic uniform(lo, hi) values: the same on every rank for the same seed.
// ‖a − b‖₂ / ‖b‖₂ in double.
double rel_err(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return 1e30;
  const auto x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    den += double(y[i]) * y[i];
  }
  return std::sqrt(num / den);
}

// Largest difference of the 8-bit images diffusers' postprocess makes of a and b.
int max_pixel_diff(const Tensor& a, const Tensor& b) {
  const auto x = io::to_rgb8(a), y = io::to_rgb8(b);
  int d = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(int(x[i]) - int(y[i])));
  return d;
}

comm::Communicator& world() { return comm::world(); }

// This rank's rows of a full (N, C, H, W) tensor under split_rows over the world.
Tensor my_band(const Tensor& full, const comm::Communicator& group) {
  const RowBand b = split_rows(full.dim(2), group.size())[group.rank()];
  return full.slice(2, b.begin, b.end).contiguous();
}

// ---------------------------------------------------------------- split_rows

TEST(SplitRows, EvenAsPossibleInRankOrder) {
  const auto b = split_rows(7, 3);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].begin, 0);
  EXPECT_EQ(b[0].end, 3);
  EXPECT_EQ(b[1].begin, 3);
  EXPECT_EQ(b[1].end, 5);
  EXPECT_EQ(b[2].begin, 5);
  EXPECT_EQ(b[2].end, 7);
  const auto one = split_rows(4, 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(one[i].rows(), 1);
}

TEST(SplitRows, FewerRowsThanRanksIsAnError) {
  try {
    split_rows(3, 4);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 rows cannot be split across 4 ranks"),
              std::string::npos)
        << e.what();
  }
}

// ---------------------------------------------------------------- the row-split ops

// Plain double-precision conv2d over the full tensor (zero padding).
Tensor reference_conv(const Tensor& x, const Tensor& w, const Tensor& bias,
                      const core::Conv2dOptions& o) {
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t O = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  const int64_t Ho = (H + o.pad_top + o.pad_bottom - kh) / o.stride_h + 1;
  const int64_t Wo = (W + o.pad_left + o.pad_right - kw) / o.stride_w + 1;
  Tensor out = Tensor::empty({N, O, Ho, Wo});
  const float *xp = x.data<float>(), *wp = w.data<float>(), *bp = bias.data<float>();
  float* op = out.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oc = 0; oc < O; ++oc)
      for (int64_t i = 0; i < Ho; ++i)
        for (int64_t j = 0; j < Wo; ++j) {
          double acc = bp[oc];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t a = 0; a < kh; ++a)
              for (int64_t b = 0; b < kw; ++b) {
                const int64_t y = i * o.stride_h - o.pad_top + a;
                const int64_t xx = j * o.stride_w - o.pad_left + b;
                if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
                acc += double(xp[((n * C + c) * H + y) * W + xx]) *
                       wp[((oc * C + c) * kh + a) * kw + b];
              }
          op[((n * O + oc) * Ho + i) * Wo + j] = static_cast<float>(acc);
        }
  return out;
}

struct ConvCase {
  int64_t height;  // full input rows
  int kernel;
  core::Conv2dOptions opt;
};

TEST(RowSplitOps, ConvMatchesFullImageConv) {
  comm::Communicator& group = world();
  const int P = group.size();
  core::Conv2dOptions down;  // Downsample2D: pad one row/column at the bottom/right, stride 2
  down.stride_h = down.stride_w = 2;
  down.pad_bottom = down.pad_right = 1;
  const std::vector<ConvCase> cases = {
      {7, 3, core::Conv2dOptions::same(1, 1)},  // uneven bands, one-row halos
      {9, 5, core::Conv2dOptions::same(1, 2)},  // two-row halos (bands of ≥ 2 rows)
      {5, 1, core::Conv2dOptions{}},            // 1×1: no exchange
      {2 * 5, 3, down},                         // stride 2 on bands of whole pairs
  };
  uint64_t seed = 10;
  for (const ConvCase& c : cases) {
    SCOPED_TRACE("kernel " + std::to_string(c.kernel) + ", rows " + std::to_string(c.height));
    const int64_t s = c.opt.stride_h;
    if (c.height / s < P || (c.kernel == 5 && c.height / P < 2)) continue;
    const Tensor x = random_tensor({2, 3, c.height, 6}, ++seed);         // (N, C, H, W)
    const Tensor w = random_tensor({4, 3, c.kernel, c.kernel}, ++seed);  // (O, C, k, k)
    const Tensor bias = random_tensor({4}, ++seed);                      // (O)
    const Tensor ref = reference_conv(x, w, bias, c.opt);                // (N, O, H', W')
    // Bands in units of the stride so that every band but the last starts on a stride multiple.
    const RowBand b = split_rows(c.height / s, P)[group.rank()];
    const int64_t end = group.rank() == P - 1 ? c.height : b.end * s;
    const Tensor local = x.slice(2, b.begin * s, end).contiguous();
    const RowSplitOps ops(group);
    const Tensor y = ops.conv2d(local, w, bias, c.opt);  // local output rows
    std::vector<int64_t> counts;
    for (const RowBand& r : split_rows(c.height / s, P)) counts.push_back(r.rows());
    const Tensor full = group.all_gather(y, 2, counts);
    EXPECT_LE(max_rel_err(full, ref), 1e-5);
  }
}

TEST(RowSplitOps, GroupNormStatisticsCoverTheWholeImage) {
  comm::Communicator& group = world();
  const int64_t N = 2, C = 6, H = 7, W = 5;
  const int groups = 3;
  // A large common offset: merging per-band statistics naively (E[x²] − E[x]²) would lose it.
  Tensor x = random_tensor({N, C, H, W}, 21, 999.0f, 1001.0f);  // (N, C, H, W)
  const Tensor weight = random_tensor({C}, 22, 0.5f, 1.5f);
  const Tensor bias = random_tensor({C}, 23);
  // Double-precision reference over the full image.
  Tensor ref = Tensor::empty(x.shape());
  const float* xp = x.data<float>();
  const int64_t per = C / groups * H * W;
  for (int64_t n = 0; n < N; ++n)
    for (int g = 0; g < groups; ++g) {
      const float* base = xp + (n * C + g * (C / groups)) * H * W;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < per; ++i) mean += base[i];
      mean /= per;
      for (int64_t i = 0; i < per; ++i) var += (base[i] - mean) * (base[i] - mean);
      var /= per;
      for (int64_t i = 0; i < per; ++i) {
        const int64_t c = g * (C / groups) + i / (H * W);
        ref.data<float>()[(n * C + g * (C / groups)) * H * W + i] =
            static_cast<float>((base[i] - mean) / std::sqrt(var + 1e-6) * weight.data<float>()[c] +
                               bias.data<float>()[c]);
      }
    }
  const RowSplitOps ops(group);
  const Tensor y = ops.group_norm(my_band(x, group), groups, weight, bias, 1e-6f);
  std::vector<int64_t> counts;
  for (const RowBand& r : split_rows(H, group.size())) counts.push_back(r.rows());
  EXPECT_LE(max_rel_err(group.all_gather(y, 2, counts), ref), 1e-4);  // f32 input rounding
  EXPECT_LE(rel_err(group.all_gather(y, 2, counts), ref), 2e-5);
}

// Attention over gathered keys: every rank's queries see all keys and values.
TEST(RowSplitOps, AttentionSeesEveryBandsKeys) {
  comm::Communicator& group = world();
  const int64_t B = 2, S = 7, D = 8;
  const Tensor q = random_tensor({B, S, 1, D}, 31), k = random_tensor({B, S, 1, D}, 32),
               v = random_tensor({B, S, 1, D}, 33);
  core::AttentionOptions opt;
  opt.scale = 0.3f;
  const Tensor ref = core::attention(q, k, v, opt).out;  // (B, S, 1, D)
  const std::vector<RowBand> bands = split_rows(S, group.size());
  const RowBand b = bands[group.rank()];
  auto rows = [&](const Tensor& t) { return t.slice(1, b.begin, b.end).contiguous(); };
  const RowSplitOps ops(group);
  const Tensor y = ops.attention(rows(q), rows(k), rows(v), 0.3f);
  std::vector<int64_t> counts;
  for (const RowBand& r : bands) counts.push_back(r.rows());
  EXPECT_LE(max_rel_err(group.all_gather(y, 1, counts), ref), 1e-5);
}

// ---------------------------------------------------------------- whole decode / encode

class ParallelVae : public ::testing::TestWithParam<std::string> {};

TEST_P(ParallelVae, FixtureDecodeEqualsOneProcess) {
  auto vae = models::vae::load_autoencoder_kl(case_dir(GetParam()));
  const Tensor z =
      io::TensorSource::open(case_dir(GetParam()) / "inputs.safetensors").load("latents").clone();
  const Tensor diffusers =
      io::TensorSource::open(case_dir(GetParam()) / "outputs.safetensors").load("decoded").clone();
  const Tensor single = vae->decode(z);
  const Tensor split = decode_row_parallel(*vae, z, world());
  EXPECT_LE(rel_err(split, single), 1e-5);
  EXPECT_LE(max_rel_err(split, single), 1e-5);
  EXPECT_LE(max_pixel_diff(split, single), 1);
  EXPECT_LE(rel_err(split, diffusers), 1e-4);
}

// 7 latent rows split unevenly over 2, 3 and 4 ranks (4, 3; 3, 2, 2; 2, 2, 2, 1), batch 2.
TEST_P(ParallelVae, UnevenLatentDecodeEqualsOneProcess) {
  auto vae = models::vae::load_autoencoder_kl(case_dir(GetParam()));
  const Tensor z = random_tensor({2, vae->latent_channels(), 7, 9}, 41, -2.0f, 2.0f);
  const Tensor single = vae->decode(z);
  const Tensor split = decode_row_parallel(*vae, z, world());
  ASSERT_EQ(split.shape(), single.shape());
  EXPECT_LE(rel_err(split, single), 1e-5);
  EXPECT_LE(max_rel_err(split, single), 1e-5);
  EXPECT_LE(max_pixel_diff(split, single), 1);
}

TEST_P(ParallelVae, EncodeEqualsOneProcess) {
  auto vae = models::vae::load_autoencoder_kl(case_dir(GetParam()));
  const int64_t f = vae->scale_factor();
  const Tensor x = random_tensor({1, 3, 7 * f, 9 * f}, 51);  // 7 latent rows
  const auto single = vae->encode(x);
  const auto split = encode_row_parallel(*vae, x, world());
  EXPECT_LE(max_rel_err(split.mean, single.mean), 1e-5);
  EXPECT_LE(max_rel_err(split.std, single.std), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ParallelVae, ::testing::Values("sd", "flux"));

// Independent groups in one world (as under data or CFG parallelism): ranks {0, 1} decode one
// latent, the others another; each group's result equals its single-process decode.
TEST(ParallelVaeGroups, SubGroupsDecodeIndependently) {
  comm::Communicator& w = world();
  const int color = w.rank() < 2 ? 0 : 1;
  const auto group = w.split(color, w.rank());
  auto vae = models::vae::load_autoencoder_kl(case_dir("sd"));
  const Tensor z = random_tensor({1, 4, 5, 6}, 60 + color, -2.0f, 2.0f);
  const Tensor split = decode_row_parallel(*vae, z, *group);
  EXPECT_LE(max_rel_err(split, vae->decode(z)), 1e-5);
}

TEST(ParallelVaeErrors, FewerLatentRowsThanRanks) {
  comm::Communicator& group = world();
  if (group.size() == 1) GTEST_SKIP() << "needs at least 2 ranks";
  auto vae = models::vae::load_autoencoder_kl(case_dir("sd"));
  const Tensor z = random_tensor({1, 4, group.size() - 1, 4}, 70);
  // Every rank sees the same shapes, so every rank throws before any exchange (no hang).
  try {
    decode_row_parallel(*vae, z, group);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be split across"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace paradit::parallel
