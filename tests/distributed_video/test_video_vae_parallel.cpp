// Row-parallel video VAE decode (parallel/video_vae_patch.h) under real MPI jobs: np 2 and 3
// (distributed_video.cmake), and alone (a world of one). References are independent of the row
// split:
//   - the row-split conv3d (zero and replicate padding) against core::conv3d on the whole clip;
//   - decode_video_row_parallel against the single-process vae.decode of AutoencoderKLWan and
//     AutoencoderKLHunyuanVideo (local ops: no halo, no gathered statistics or keys) on the tiny
//     diffusers fixtures — several latent frames, so the causal caches and HunyuanVideo's
//     temporal tiles are crossed — and on latents whose height does not divide by the rank
//     count: ≤ 1e-5 relative, 8-bit frames within ±1 (also frame by frame, streaming); and the
//     fixture decode against diffusers' own output.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "comm/runtime.h"
#include "core/ops.h"
#include "io/safetensors.h"
#include "models/vae/hunyuan_video.h"
#include "models/vae/wan.h"
#include "parallel/vae_patch.h"
#include "pipelines/vae_decode.h"
#include "parallel/video_vae_patch.h"
#include "support/tensor_checks.h"

namespace paradit::parallel {
namespace {

namespace fs = std::filesystem;
using core::Shape;
using core::Tensor;
using pipelines::decode_video_row_parallel;
using pipelines::decode_video_row_parallel_streaming;
using testing::random_tensor;
using testing::max_rel_err;

fs::path vae_dir(const std::string& name) { return fs::path(PARADIT_TEST_DATA) / "vae" / name; }

Tensor fixture(const std::string& name, const std::string& file, const std::string& tensor) {
  return io::TensorSource::open(vae_dir(name) / file).load(tensor).clone();
}

// Largest difference of the 8-bit frames made of a and b (x ∈ [-1, 1] → round((x + 1)·127.5)).
int max_pixel_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to_vector(), y = b.to_vector();
  const auto u8 = [](float v) {
    return static_cast<int>(std::lround((std::clamp(v, -1.0f, 1.0f) + 1.0f) * 127.5f));
  };
  int d = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(u8(x[i]) - u8(y[i])));
  return d;
}

// This rank's band of rows (dim 3) under split_rows.
Tensor band_of(const Tensor& x, const comm::Communicator& group) {
  const RowBand b = split_rows(x.dim(3), group.size())[group.rank()];
  return x.slice(3, b.begin, b.end).contiguous();
}

TEST(ParallelVideoVae, RowSplitConv3dEqualsWholeClip) {
  const comm::Communicator& world = comm::world();
  const VideoRowSplitOps ops(world);
  for (bool replicate : {false, true}) {
    // 7 rows: uneven bands at 2 and 3 ranks; time padding in front as the causal convs do.
    const Tensor x = random_tensor({2, 3, 4, 7, 5}, 3);
    const Tensor w = random_tensor({4, 3, 3, 3, 3}, 4);
    const Tensor b = random_tensor({4}, 5);
    core::Conv3dOptions opt;
    opt.pad_front = 2;
    opt.pad_top = opt.pad_bottom = opt.pad_left = opt.pad_right = 1;
    opt.replicate = replicate;
    const Tensor whole = core::conv3d(x, w, b, opt);  // (2, 4, 4, 7, 5)
    const Tensor mine = ops.conv3d(band_of(x, world), w, b, opt);
    EXPECT_LE(max_rel_err(mine, band_of(whole, world)), 1e-6)
        << (replicate ? "replicate" : "zero") << " padding, rank " << world.rank();
  }
}

TEST(ParallelVideoVae, StridedConvIsAClearError) {
  const comm::Communicator& world = comm::world();
  if (world.size() < 2) GTEST_SKIP() << "needs 2 processes";
  const VideoRowSplitOps ops(world);
  core::Conv3dOptions opt;
  opt.stride_h = opt.stride_w = 2;
  opt.pad_bottom = opt.pad_right = 1;
  try {
    ops.conv3d(random_tensor({1, 2, 1, 4, 4}, 1), random_tensor({2, 2, 1, 3, 3}, 2), {}, opt);
    ADD_FAILURE() << "a stride-2 conv was split by rows";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be split by rows"), std::string::npos) << e.what();
  }
}

void expect_same_decode(const Tensor& parallel, const Tensor& single, const std::string& what) {
  ASSERT_EQ(parallel.shape(), single.shape()) << what;
  EXPECT_LE(max_rel_err(parallel, single), 1e-5)
      << what << " at " << comm::world().size() << " ranks";
  EXPECT_LE(max_pixel_diff(parallel, single), 1) << what;
}

TEST(ParallelVideoVae, WanDecodeEqualsOneProcess) {
  const comm::Communicator& world = comm::world();
  const auto vae = models::vae::load_autoencoder_kl_wan(vae_dir("wan"));
  // (1, 16, 3, 4, 4), (1, 16, 5, 3, 5) from diffusers; (2, 16, 2, 5, 3): two samples, 5 rows.
  const Tensor z = fixture("wan", "inputs.safetensors", "latents");
  const Tensor out = decode_video_row_parallel(*vae, z, world);
  expect_same_decode(out, vae->decode(z), "wan fixture");
  EXPECT_LE(max_rel_err(out, fixture("wan", "outputs.safetensors", "decoded")), 1e-4);
  const Tensor ext = fixture("wan", "extended.safetensors", "latents");
  expect_same_decode(decode_video_row_parallel(*vae, ext, world), vae->decode(ext),
                     "wan 5 frames × 3 × 5");
  const Tensor r = random_tensor({2, 16, 2, 5, 3}, 9);
  expect_same_decode(decode_video_row_parallel(*vae, r, world), vae->decode(r),
                     "wan batch 2, 5 rows");
}

TEST(ParallelVideoVae, WanStreamingDecodeEqualsOneProcess) {
  const comm::Communicator& world = comm::world();
  const auto vae = models::vae::load_autoencoder_kl_wan(vae_dir("wan"));
  const Tensor z = fixture("wan", "extended.safetensors", "latents");  // (1, 16, 5, 3, 5)
  std::vector<Tensor> chunks;
  decode_video_row_parallel_streaming(*vae, z, world,
                                      [&](const Tensor& frames) { chunks.push_back(frames); });
  ASSERT_EQ(chunks.size(), 5u);  // one per latent frame: 1, then 4 frames each
  expect_same_decode(core::concat(chunks, 2), vae->decode(z), "wan streaming 5 frames");
}

TEST(ParallelVideoVae, HunyuanVideoDecodeEqualsOneProcess) {
  const comm::Communicator& world = comm::world();
  const auto vae = models::vae::load_autoencoder_kl_hunyuan_video(vae_dir("hunyuan_video"));
  const Tensor z = fixture("hunyuan_video", "inputs.safetensors", "latents");  // (1, 16, 3, 4, 4)
  const Tensor out = decode_video_row_parallel(*vae, z, world);
  expect_same_decode(out, vae->decode(z), "hunyuan_video fixture");
  EXPECT_LE(max_rel_err(out, fixture("hunyuan_video", "outputs.safetensors", "decoded")), 1e-4);
  // 6 latent frames: two overlapping temporal tiles, blended.
  const Tensor ext = fixture("hunyuan_video", "extended.safetensors", "latents");
  expect_same_decode(decode_video_row_parallel(*vae, ext, world), vae->decode(ext),
                     "hunyuan_video 6 frames (temporal tiles)");
  const Tensor r = random_tensor({1, 16, 2, 5, 3}, 11);
  expect_same_decode(decode_video_row_parallel(*vae, r, world), vae->decode(r),
                     "hunyuan_video 5 rows");
}

TEST(ParallelVideoVae, FewerLatentRowsThanRanksIsAClearError) {
  const comm::Communicator& world = comm::world();
  if (world.size() < 2) GTEST_SKIP() << "needs 2 processes";
  const auto vae = models::vae::load_autoencoder_kl_wan(vae_dir("wan"));
  try {
    decode_video_row_parallel(*vae, random_tensor({1, 16, 1, 1, 4}, 2), world);
    ADD_FAILURE() << "1 latent row decoded on " << world.size() << " ranks";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be split across"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace paradit::parallel
