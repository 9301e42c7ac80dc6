// AutoencoderKLWan against diffusers' outputs on the tiny fixture (tests/data/vae/wan: decode of
// 3 latent frames one at a time with the causal cache and the clamp, encode of 5 frames in
// chunks of 1 and 4), the streaming decode, the pipeline's latent (un)normalization against the
// direct formula, and config/input errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "io/diffusers.h"
#include "models/common/random_weights.h"
#include "models/vae/wan.h"
#include "vae_test_util.h"

namespace paradit {
namespace {

using core::Tensor;
using models::vae::AutoencoderKLWan;
using models::vae::AutoencoderKLWanConfig;
using test::error_of;
using test::load_fixture;
using test::rel_err;
using test::vae_case_dir;

const AutoencoderKLWan& wan() {
  static const auto vae = models::vae::load_autoencoder_kl_wan(vae_case_dir("wan"));
  return *vae;
}

TEST(Wan, DecodeMatchesDiffusers) {
  const Tensor z = load_fixture("wan", "inputs.safetensors", "latents");  // (1, 16, 3, 4, 4)
  const Tensor ref = load_fixture("wan", "outputs.safetensors", "decoded");
  const Tensor out = wan().decode(z);
  ASSERT_EQ(out.shape(), (core::Shape{1, 3, 9, 32, 32}));
  const double err = rel_err(out, ref);
  std::printf("wan decode rel-L2 %.3g\n", err);
  EXPECT_LE(err, 1e-4);
  // The clamp: diffusers clips 5.8% of these values.
  int64_t at_bound = 0;
  for (float v : out.to_vector()) {
    ASSERT_LE(std::fabs(v), 1.0f);
    at_bound += std::fabs(v) == 1.0f;
  }
  EXPECT_GT(at_bound, out.numel() / 50);
}

TEST(Wan, EncodeMatchesDiffusers) {
  const Tensor x = load_fixture("wan", "inputs.safetensors", "video");  // (1, 3, 5, 32, 32)
  const auto dist = wan().encode(x);
  const double em = rel_err(dist.mean, load_fixture("wan", "outputs.safetensors", "latent_mean"));
  const double es = rel_err(dist.std, load_fixture("wan", "outputs.safetensors", "latent_std"));
  std::printf("wan encode rel-L2 mean %.3g std %.3g\n", em, es);
  EXPECT_LE(em, 1e-4);
  EXPECT_LE(es, 1e-4);
}

// Longer, non-square clips (tests/data/vae/wan/extended.safetensors, made by
// tests/video_vae/reference/make_extra_refs.py with diffusers' own module): 5 latent frames
// decode to 17 frames of 24x40, 13 frames encode in chunks of 1, 4, 4, 4.
TEST(Wan, LongerNonSquareClipsMatchDiffusers) {
  const Tensor z = load_fixture("wan", "extended.safetensors", "latents");  // (1, 16, 5, 3, 5)
  const Tensor out = wan().decode(z);
  const double ed = rel_err(out, load_fixture("wan", "extended.safetensors", "decoded"));
  const auto dist = wan().encode(load_fixture("wan", "extended.safetensors", "video"));
  const double em = rel_err(dist.mean, load_fixture("wan", "extended.safetensors", "latent_mean"));
  const double es = rel_err(dist.std, load_fixture("wan", "extended.safetensors", "latent_std"));
  std::printf("wan extended rel-L2 decode %.3g mean %.3g std %.3g\n", ed, em, es);
  EXPECT_LE(ed, 1e-4);
  EXPECT_LE(em, 1e-4);
  EXPECT_LE(es, 1e-4);
}

// Another layout (tests/data/vae/wan/variant, random weights): two residual blocks per level,
// decoder_base_dim apart from base_dim, z_dim 4, the temporal resample on the first level
// (temporal factor 2, spatial factor 4).
TEST(Wan, VariantLayoutMatchesDiffusers) {
  const auto dir = vae_case_dir("wan") / "variant";
  const auto vae = models::vae::load_autoencoder_kl_wan(dir);
  EXPECT_EQ(vae->temporal_factor(), 2);
  EXPECT_EQ(vae->spatial_factor(), 4);
  const auto cases = io::TensorSource::open(dir / "cases.safetensors");
  const Tensor out = vae->decode(cases.load("latents"));  // (1, 4, 3, 4, 6)
  const double ed = rel_err(out, cases.load("decoded"));
  const auto dist = vae->encode(cases.load("video"));  // (1, 3, 9, 16, 24)
  const double em = rel_err(dist.mean, cases.load("latent_mean"));
  const double es = rel_err(dist.std, cases.load("latent_std"));
  std::printf("wan variant rel-L2 decode %.3g mean %.3g std %.3g\n", ed, em, es);
  EXPECT_LE(ed, 1e-4);
  EXPECT_LE(em, 1e-4);
  EXPECT_LE(es, 1e-4);
}

// BF16 weights (the bf16 GEMMs also round activations to bf16): close to the f32 result.
TEST(Wan, Bf16WeightsStayClose) {
  const auto vae = models::vae::load_autoencoder_kl_wan(vae_case_dir("wan"), core::DType::BF16);
  const Tensor z = load_fixture("wan", "inputs.safetensors", "latents");
  const double ed = rel_err(vae->decode(z), load_fixture("wan", "outputs.safetensors", "decoded"));
  const auto dist = vae->encode(load_fixture("wan", "inputs.safetensors", "video"));
  const double em = rel_err(dist.mean, load_fixture("wan", "outputs.safetensors", "latent_mean"));
  std::printf("wan bf16 rel-L2 decode %.3g mean %.3g\n", ed, em);
  EXPECT_LE(ed, 3e-2);
  EXPECT_LE(em, 3e-2);
}

TEST(Wan, StreamingDecodeGivesOneThenFourFramesPerLatentFrame) {
  const Tensor z = load_fixture("wan", "inputs.safetensors", "latents");
  const Tensor ref = load_fixture("wan", "outputs.safetensors", "decoded");
  std::vector<int64_t> counts;
  std::vector<Tensor> chunks;
  wan().decode_streaming(z, [&](const Tensor& c) {
    counts.push_back(c.dim(2));
    chunks.push_back(c.clone());
  });
  EXPECT_EQ(counts, (std::vector<int64_t>{1, 4, 4}));
  EXPECT_LE(rel_err(core::concat(chunks, 2), ref), 1e-4);
  EXPECT_EQ(wan().frames_for(3), 9);
  EXPECT_EQ(wan().temporal_factor(), 4);
  EXPECT_EQ(wan().spatial_factor(), 8);
}

TEST(Wan, LatentNormalizationAsThePipeline) {
  const auto& cfg = wan().config();
  ASSERT_EQ(cfg.latents_mean.size(), 16u);
  EXPECT_FLOAT_EQ(cfg.latents_mean[0], -0.7571f);
  EXPECT_FLOAT_EQ(cfg.latents_std[15], 1.916f);
  const Tensor z = load_fixture("wan", "inputs.safetensors", "latents");
  const Tensor u = wan().unnormalize_latents(z);
  const auto zv = z.to_vector(), uv = u.to_vector();
  const int64_t L = 3 * 4 * 4;
  for (size_t i = 0; i < zv.size(); ++i) {
    const size_t c = i / L;
    const double expected = double(zv[i]) * cfg.latents_std[c] + cfg.latents_mean[c];
    ASSERT_NEAR(uv[i], expected, 1e-6 * (1 + std::fabs(expected))) << i;
  }
  EXPECT_LE(rel_err(wan().normalize_latents(u), z), 1e-6);
}

// The full-size default layout (Wan 2.1's VAE) binds the tensors diffusers' AutoencoderKLWan()
// has: 194 tensors, 126,892,531 parameters (counted with diffusers). Shapes only, no memory.
TEST(Wan, FullSizeLayoutHasDiffusersParameterCount) {
  models::common::RandomWeights weights(1, core::DType::F32, /*dry_run=*/true);
  AutoencoderKLWan vae(AutoencoderKLWanConfig::from(io::Config(io::Json::object(), "default")),
                       weights);
  EXPECT_EQ(weights.entries().size(), 194u);
  EXPECT_EQ(weights.parameter_count(), 126892531);
  EXPECT_EQ(vae.temporal_factor(), 4);
  EXPECT_EQ(vae.spatial_factor(), 8);
}

TEST(Wan, BadInputsAndConfigsThrow) {
  const Tensor z = load_fixture("wan", "inputs.safetensors", "latents");
  const Tensor x = load_fixture("wan", "inputs.safetensors", "video");
  EXPECT_NE(error_of([&] { wan().decode(z.slice(1, 0, 8)); }).find("(N, 16, frames, h, w)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { wan().encode(x.slice(2, 0, 4)); }).find("4 frames"), std::string::npos);
  EXPECT_NE(error_of([&] { wan().encode(x.slice(3, 0, 20)); }).find("20x32"), std::string::npos);

  io::Json cfg = io::read_json(vae_case_dir("wan") / "config.json");
  auto config_error = [&](const io::Json& j) {
    return error_of([&] { AutoencoderKLWanConfig::from(io::Config(j, "wan/config.json")); });
  };
  io::Json residual = cfg;
  residual["is_residual"] = true;
  EXPECT_NE(config_error(residual).find("is_residual"), std::string::npos);
  io::Json attn = cfg;
  attn["attn_scales"] = {1.0};
  EXPECT_NE(config_error(attn).find("attn_scales"), std::string::npos);
  io::Json patch = cfg;
  patch["patch_size"] = 2;
  EXPECT_NE(config_error(patch).find("patch_size"), std::string::npos);
  io::Json td = cfg;
  td["temperal_downsample"] = {false, true};
  EXPECT_NE(config_error(td).find("temperal_downsample"), std::string::npos);
  io::Json mean = cfg;
  mean["latents_mean"] = {0.0, 1.0};
  EXPECT_NE(config_error(mean).find("latents_mean"), std::string::npos);
  io::Json cls = cfg;
  cls["_class_name"] = "AutoencoderKL";
  EXPECT_NE(config_error(cls).find("AutoencoderKLWan"), std::string::npos);

  // A checkpoint tensor with the wrong shape is named.
  test::TempDir dir("wan_bad");
  std::ofstream(dir.path / "config.json") << cfg.dump(1);
  const auto src = io::TensorSource::open(vae_case_dir("wan"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& n : src.names()) {
    Tensor t = src.load(n);
    if (n == "decoder.conv_in.weight") t = t.slice(0, 0, 8).contiguous();
    tensors.emplace_back(n, t);
  }
  io::save_safetensors(dir.path / "diffusion_pytorch_model.safetensors", tensors);
  EXPECT_NE(error_of([&] {
              models::vae::load_autoencoder_kl_wan(dir.path);
            }).find("decoder.conv_in.weight"),
            std::string::npos);
}

}  // namespace
}  // namespace paradit
