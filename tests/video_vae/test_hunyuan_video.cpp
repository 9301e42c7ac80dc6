// AutoencoderKLHunyuanVideo against diffusers' outputs on the tiny fixture
// (tests/data/vae/hunyuan_video: decode of 3 latent frames and encode of 9 frames, each in one
// pass), the temporal tiling's frame bookkeeping, and config/input errors.
#include <gtest/gtest.h>

#include <cstdio>

#include "io/diffusers.h"
#include "models/common/random_weights.h"
#include "models/vae/hunyuan_video.h"
#include "vae_test_util.h"

namespace paradit {
namespace {

using core::Tensor;
using models::vae::AutoencoderKLHunyuanVideo;
using models::vae::AutoencoderKLHunyuanVideoConfig;
using test::error_of;
using test::load_fixture;
using test::rel_err;
using test::vae_case_dir;

AutoencoderKLHunyuanVideo& hunyuan() {
  static const auto vae =
      models::vae::load_autoencoder_kl_hunyuan_video(vae_case_dir("hunyuan_video"));
  return *vae;
}

TEST(HunyuanVideo, DecodeMatchesDiffusers) {
  const Tensor z = load_fixture("hunyuan_video", "inputs.safetensors", "latents");  // (1,16,3,4,4)
  const Tensor ref = load_fixture("hunyuan_video", "outputs.safetensors", "decoded");
  const Tensor out = hunyuan().decode(z);
  ASSERT_EQ(out.shape(), (core::Shape{1, 3, 9, 32, 32}));
  const double err = rel_err(out, ref);
  std::printf("hunyuan_video decode rel-L2 %.3g\n", err);
  EXPECT_LE(err, 1e-4);
}

TEST(HunyuanVideo, EncodeMatchesDiffusers) {
  const Tensor x = load_fixture("hunyuan_video", "inputs.safetensors", "video");  // (1,3,9,32,32)
  const auto dist = hunyuan().encode(x);
  const double em =
      rel_err(dist.mean, load_fixture("hunyuan_video", "outputs.safetensors", "latent_mean"));
  const double es =
      rel_err(dist.std, load_fixture("hunyuan_video", "outputs.safetensors", "latent_std"));
  std::printf("hunyuan_video encode rel-L2 mean %.3g std %.3g\n", em, es);
  EXPECT_LE(em, 1e-4);
  EXPECT_LE(es, 1e-4);
}

// Past diffusers' temporal tiling thresholds (tests/data/vae/hunyuan_video/extended.safetensors,
// made by tests/video_vae/reference/make_extra_refs.py with diffusers' own module): 6 latent
// frames decode in two overlapping tiles blended over 4 frames (21 frames), 21 frames of 16x24
// encode in two tiles blended over 1 latent frame (6 latent frames).
TEST(HunyuanVideo, TemporalTilingMatchesDiffusers) {
  const Tensor z = load_fixture("hunyuan_video", "extended.safetensors", "latents");
  const Tensor out = hunyuan().decode(z);
  const double ed = rel_err(out, load_fixture("hunyuan_video", "extended.safetensors", "decoded"));
  const auto dist =
      hunyuan().encode(load_fixture("hunyuan_video", "extended.safetensors", "video"));
  const double em =
      rel_err(dist.mean, load_fixture("hunyuan_video", "extended.safetensors", "latent_mean"));
  const double es =
      rel_err(dist.std, load_fixture("hunyuan_video", "extended.safetensors", "latent_std"));
  std::printf("hunyuan_video tiled rel-L2 decode %.3g mean %.3g std %.3g\n", ed, em, es);
  EXPECT_LE(ed, 1e-4);
  EXPECT_LE(em, 1e-4);
  EXPECT_LE(es, 1e-4);
}

// BF16 weights (the bf16 GEMMs also round activations to bf16): close to the f32 result.
TEST(HunyuanVideo, Bf16WeightsStayClose) {
  const auto vae = models::vae::load_autoencoder_kl_hunyuan_video(vae_case_dir("hunyuan_video"),
                                                                  core::DType::BF16);
  const Tensor z = load_fixture("hunyuan_video", "inputs.safetensors", "latents");
  const double ed =
      rel_err(vae->decode(z), load_fixture("hunyuan_video", "outputs.safetensors", "decoded"));
  const auto dist = vae->encode(load_fixture("hunyuan_video", "inputs.safetensors", "video"));
  const double em =
      rel_err(dist.mean, load_fixture("hunyuan_video", "outputs.safetensors", "latent_mean"));
  std::printf("hunyuan_video bf16 rel-L2 decode %.3g mean %.3g\n", ed, em);
  EXPECT_LE(ed, 3e-2);
  EXPECT_LE(em, 3e-2);
}

TEST(HunyuanVideo, ConfigAndScaling) {
  EXPECT_DOUBLE_EQ(hunyuan().scaling_factor(), 0.476986);
  EXPECT_EQ(hunyuan().spatial_factor(), 8);
  EXPECT_EQ(hunyuan().temporal_factor(), 4);
  const Tensor z = load_fixture("hunyuan_video", "inputs.safetensors", "latents");
  const auto zv = z.to_vector(), uv = hunyuan().unscale_latents(z).to_vector();
  for (size_t i = 0; i < zv.size(); ++i) ASSERT_EQ(uv[i], zv[i] / 0.476986f);
}

// diffusers' temporal tiling with small tiles (min 4 frames, stride 4: one latent frame per tile
// plus one of overlap, blend 0) is checkable without a reference: with no blending each kept
// frame equals the matching frame of a one-pass decode of that tile alone.
TEST(HunyuanVideo, TemporalTilingFrameBookkeeping) {
  const Tensor z = load_fixture("hunyuan_video", "inputs.safetensors", "latents");  // 3 frames
  auto& vae = hunyuan();
  const auto saved = vae.tiling();
  models::vae::HunyuanVideoTiling tiling;
  tiling.tile_sample_min_num_frames = 4;  // tiles of 2 latent frames, every latent frame
  tiling.tile_sample_stride_num_frames = 4;
  vae.set_tiling(tiling);
  const Tensor tiled = vae.decode(z);
  vae.set_tiling(saved);
  ASSERT_EQ(tiled.shape(), (core::Shape{1, 3, 9, 32, 32}));
  // Tile 0 decodes latent frames 0..1 and keeps frames 0..4; tile 1 decodes 1..2 and keeps its
  // frames 1..4 (after dropping the first); tile 2 decodes 2 alone → nothing past the end.
  const Tensor t0 = vae.decode(z.slice(2, 0, 2).contiguous());  // 5 frames, one pass
  const Tensor t1 = vae.decode(z.slice(2, 1, 3).contiguous());
  EXPECT_LE(rel_err(tiled.slice(2, 0, 5).contiguous(), t0), 1e-6);
  EXPECT_LE(rel_err(tiled.slice(2, 5, 9).contiguous(), t1.slice(2, 1, 5).contiguous()), 1e-6);
  // Turned off, the same call decodes in one pass.
  tiling.framewise_decoding = false;
  vae.set_tiling(tiling);
  const Tensor one_pass = vae.decode(z);
  vae.set_tiling(saved);
  EXPECT_LE(rel_err(one_pass, load_fixture("hunyuan_video", "outputs.safetensors", "decoded")),
            1e-4);
}

// The full-size default layout (HunyuanVideo's VAE) binds the tensors diffusers'
// AutoencoderKLHunyuanVideo() has: 248 tensors, 246,478,803 parameters (counted with diffusers).
TEST(HunyuanVideo, FullSizeLayoutHasDiffusersParameterCount) {
  models::common::RandomWeights weights(1, core::DType::F32, /*dry_run=*/true);
  AutoencoderKLHunyuanVideo vae(
      AutoencoderKLHunyuanVideoConfig::from(io::Config(io::Json::object(), "default")), weights);
  EXPECT_EQ(weights.entries().size(), 248u);
  EXPECT_EQ(weights.parameter_count(), 246478803);
}

TEST(HunyuanVideo, BadInputsAndConfigsThrow) {
  const Tensor z = load_fixture("hunyuan_video", "inputs.safetensors", "latents");
  const Tensor x = load_fixture("hunyuan_video", "inputs.safetensors", "video");
  EXPECT_NE(error_of([&] { hunyuan().decode(z.slice(1, 0, 4)); }).find("(N, 16, frames, h, w)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { hunyuan().encode(x.slice(4, 0, 12)); }).find("32x12"),
            std::string::npos);

  const io::Json cfg = io::read_json(vae_case_dir("hunyuan_video") / "config.json");
  auto config_error = [&](const io::Json& j) {
    return error_of(
        [&] { AutoencoderKLHunyuanVideoConfig::from(io::Config(j, "hunyuan/config.json")); });
  };
  io::Json t8 = cfg;
  t8["temporal_compression_ratio"] = 8;
  EXPECT_NE(config_error(t8).find("temporal_compression_ratio"), std::string::npos);
  io::Json s16 = cfg;
  s16["spatial_compression_ratio"] = 32;
  EXPECT_NE(config_error(s16).find("spatial_compression_ratio 32"), std::string::npos);
  io::Json groups = cfg;
  groups["norm_num_groups"] = 3;
  EXPECT_NE(config_error(groups).find("norm_num_groups"), std::string::npos);
  io::Json block = cfg;
  block["down_block_types"][1] = "DownEncoderBlock2D";
  EXPECT_NE(config_error(block).find("DownEncoderBlock2D"), std::string::npos);
}

}  // namespace
}  // namespace paradit
