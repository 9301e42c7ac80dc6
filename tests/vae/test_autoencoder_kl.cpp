// AutoencoderKL against diffusers' outputs on the tiny fixtures (SD style with quant convs, Flux
// style without), the latent scaling and Flux packing helpers against direct formulas, the
// SpatialOps routing a patch-parallel decode relies on, and config/checkpoint errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "io/diffusers.h"
#include "io/safetensors.h"
#include "models/vae/autoencoder_kl.h"
#include "models/vae/latent_packing.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using core::Tensor;
using models::vae::AutoencoderKL;
using models::vae::AutoencoderKLConfig;

fs::path case_dir(const std::string& name) { return fs::path(PARADIT_TEST_DATA) / "vae" / name; }

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

Tensor load(const std::string& name, const std::string& file, const std::string& tensor) {
  return io::TensorSource::open(case_dir(name) / file).load(tensor).clone();
}

// A folder under the temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag)
      : path(fs::temp_directory_path() /
             ("paradit_vae_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A copy of a fixture checkpoint with its tensors passed through `edit` (name, tensor) → kept
// entries; config.json optionally replaced.
template <typename Edit>
void copy_checkpoint(const std::string& name, const fs::path& dst, Edit edit,
                     const io::Json* config = nullptr) {
  const fs::path src = case_dir(name);
  if (config) {
    std::ofstream(dst / "config.json") << config->dump(1);
  } else {
    fs::copy_file(src / "config.json", dst / "config.json", fs::copy_options::overwrite_existing);
  }
  auto weights = io::TensorSource::open(src / "diffusion_pytorch_model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& n : weights.names()) edit(n, weights.load(n), tensors);
  io::save_safetensors(dst / "diffusion_pytorch_model.safetensors", tensors);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a paradit::Error";
  return "";
}

// ---------------------------------------------------------------- fixtures

class VaeFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(VaeFixture, DecodeMatchesDiffusers) {
  auto vae = models::vae::load_autoencoder_kl(case_dir(GetParam()));
  const Tensor z = load(GetParam(), "inputs.safetensors", "latents");
  const Tensor ref = load(GetParam(), "outputs.safetensors", "decoded");
  EXPECT_LE(rel_err(vae->decode(z), ref), 1e-4);
}

TEST_P(VaeFixture, EncodeMatchesDiffusers) {
  auto vae = models::vae::load_autoencoder_kl(case_dir(GetParam()));
  const Tensor x = load(GetParam(), "inputs.safetensors", "image");
  const auto dist = vae->encode(x);
  EXPECT_LE(rel_err(dist.mean, load(GetParam(), "outputs.safetensors", "latent_mean")), 1e-4);
  EXPECT_LE(rel_err(dist.std, load(GetParam(), "outputs.safetensors", "latent_std")), 1e-4);
}

// bf16 conv and projection weights stay close to the f32 result.
TEST_P(VaeFixture, Bf16WeightsWithinTolerance) {
  auto vae = models::vae::load_autoencoder_kl(case_dir(GetParam()), core::DType::BF16);
  const Tensor z = load(GetParam(), "inputs.safetensors", "latents");
  EXPECT_LE(rel_err(vae->decode(z), load(GetParam(), "outputs.safetensors", "decoded")), 2e-2);
}

INSTANTIATE_TEST_SUITE_P(Cases, VaeFixture, ::testing::Values("sd", "flux"));

// A batch of two decodes each sample on its own: GroupNorm statistics and attention stay within
// a sample.
TEST(Vae, BatchOfTwoMatchesSingleSamples) {
  auto vae = models::vae::load_autoencoder_kl(case_dir("flux"));
  const Tensor z0 = load("flux", "inputs.safetensors", "latents");
  const Tensor z1 = core::scale(z0, -0.7f);
  const Tensor out = vae->decode(core::concat({z0, z1}, 0));  // (2, 3, 16, 16)
  EXPECT_LE(rel_err(out.slice(0, 0, 1).contiguous(), vae->decode(z0)), 1e-6);
  EXPECT_LE(rel_err(out.slice(0, 1, 2).contiguous(), vae->decode(z1)), 1e-6);
}

// Config values as diffusers reads them, including the absent quant convs of Flux/SD3 VAEs.
TEST(Vae, ConfigFields) {
  auto sd = AutoencoderKLConfig::from(io::Config::load(case_dir("sd") / "config.json"));
  EXPECT_TRUE(sd.use_quant_conv && sd.use_post_quant_conv);
  EXPECT_DOUBLE_EQ(sd.scaling_factor, 0.18215);
  EXPECT_FALSE(sd.shift_factor.has_value());
  EXPECT_EQ(sd.scale_factor(), 2);
  auto flux = AutoencoderKLConfig::from(io::Config::load(case_dir("flux") / "config.json"));
  EXPECT_FALSE(flux.use_quant_conv || flux.use_post_quant_conv);
  EXPECT_EQ(flux.latent_channels, 16);
  EXPECT_DOUBLE_EQ(flux.scaling_factor, 0.3611);
  ASSERT_TRUE(flux.shift_factor.has_value());
  EXPECT_DOUBLE_EQ(*flux.shift_factor, 0.1159);
  // Absent keys take AutoencoderKL's defaults (the 8× VAE of SD 1.x is 4 blocks).
  auto def = AutoencoderKLConfig::from(io::Config(io::Json::object(), "x/config.json"));
  EXPECT_EQ(def.block_out_channels, (std::vector<int64_t>{64}));
  EXPECT_EQ(def.norm_num_groups, 32);
  EXPECT_EQ(def.latent_channels, 4);
  EXPECT_TRUE(def.mid_block_add_attention);
  io::Json j = io::read_json(case_dir("sd") / "config.json");
  j["block_out_channels"] = {128, 256, 512, 512};
  j["down_block_types"] = std::vector<std::string>(4, "DownEncoderBlock2D");
  j["up_block_types"] = std::vector<std::string>(4, "UpDecoderBlock2D");
  EXPECT_EQ(AutoencoderKLConfig::from(io::Config(j, "x/config.json")).scale_factor(), 8);
}

// The pipelines' latents / scaling_factor + shift_factor, against the formula in double.
TEST(Vae, UnscaleAndScaleLatents) {
  for (const char* name : {"sd", "flux"}) {
    auto vae = models::vae::load_autoencoder_kl(case_dir(name));
    const Tensor z = load(name, "inputs.safetensors", "latents");
    const Tensor u = vae->unscale_latents(z);
    const double s = vae->scaling_factor(), shift = vae->shift_factor().value_or(0.0);
    const auto zv = z.to_vector(), uv = u.to_vector();
    ASSERT_EQ(u.shape(), z.shape());
    for (size_t i = 0; i < zv.size(); ++i) {
      EXPECT_NEAR(uv[i], zv[i] / s + shift, 1e-6 * (1 + std::abs(zv[i] / s))) << name << " " << i;
    }
    EXPECT_LE(rel_err(vae->scale_latents(u), z), 1e-6) << name;
  }
}

// Flux packing against the index formula of diffusers' view/permute/reshape.
TEST(Vae, PackAndUnpackLatents) {
  const int64_t B = 2, C = 3, H = 4, W = 6;
  std::vector<float> v(B * C * H * W);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f - 7.0f;
  const Tensor x = Tensor::from_vector(v, {B, C, H, W});
  const Tensor p = models::vae::pack_latents(x);
  ASSERT_EQ(p.shape(), (core::Shape{B, (H / 2) * (W / 2), C * 4}));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t xx = 0; xx < W; ++xx) {
          const int64_t token = (y / 2) * (W / 2) + xx / 2;
          const int64_t ch = c * 4 + (y % 2) * 2 + xx % 2;
          ASSERT_EQ(p.item_at({b, token, ch}), x.item_at({b, c, y, xx}));
        }
  const Tensor back = models::vae::unpack_latents(p, H, W);
  EXPECT_EQ(back.shape(), x.shape());
  EXPECT_EQ(back.to_vector(), v);
  EXPECT_EQ(models::vae::packed_latent_size(1024, 8), 128);
  EXPECT_EQ(models::vae::packed_latent_size(1000, 8), 124);  // 2·(1000 // 16)
  std::string msg = error_of([&] { models::vae::pack_latents(Tensor::zeros({1, 4, 5, 6})); });
  EXPECT_NE(msg.find("[1, 4, 5, 6]"), std::string::npos) << msg;
  msg = error_of([&] { models::vae::unpack_latents(p, H, W + 2); });
  EXPECT_NE(msg.find("unpack_latents"), std::string::npos) << msg;
}

// ---------------------------------------------------------------- SpatialOps routing

// Counts the calls and checks that every conv a row split must treat specially goes through it.
class CountingOps : public models::vae::SpatialOps {
 public:
  mutable int conv3x3 = 0, conv1x1 = 0, norms = 0, attentions = 0;
  Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b,
                const core::Conv2dOptions& opt) const override {
    (w.dim(2) == 3 ? conv3x3 : conv1x1)++;
    return SpatialOps::conv2d(x, w, b, opt);
  }
  Tensor group_norm(const Tensor& x, int groups, const Tensor& w, const Tensor& b,
                    float eps) const override {
    ++norms;
    return SpatialOps::group_norm(x, groups, w, b, eps);
  }
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, float s) const override {
    ++attentions;
    return SpatialOps::attention(q, k, v, s);
  }
};

TEST(Vae, DecoderRoutesEveryConvNormAndAttentionThroughSpatialOps) {
  auto vae = models::vae::load_autoencoder_kl(case_dir("sd"));
  const Tensor z = load("sd", "inputs.safetensors", "latents");
  CountingOps ops;
  const Tensor out = vae->decode(z, ops);
  EXPECT_EQ(rel_err(out, vae->decode(z)), 0.0);
  // SD case: 2 up blocks of 2 resnets, one upsampler; mid block 2 resnets + attention.
  // 3×3: conv_in + 2·2 (mid) + 2·2·2 (up) + 1 (upsampler) + conv_out = 15.
  EXPECT_EQ(ops.conv3x3, 15);
  // 1×1: post_quant_conv + the shortcut of up_blocks.1.resnets.0 (48 → 24).
  EXPECT_EQ(ops.conv1x1, 2);
  // GroupNorm: 2·2 (mid resnets) + 1 (attention) + 2·2·2 (up) + conv_norm_out = 14.
  EXPECT_EQ(ops.norms, 14);
  EXPECT_EQ(ops.attentions, 1);
}

// ---------------------------------------------------------------- checkpoint variants, errors

// Checkpoints saved before diffusers 0.14 name the mid-block attention query/key/value/proj_attn.
TEST(Vae, LegacyAttentionNamesGiveTheSameResult) {
  TempDir dir("legacy");
  copy_checkpoint("sd", dir.path, [](const std::string& n, const Tensor& t, auto& out) {
    std::string m = n;
    for (auto [from, to] :
         std::vector<std::pair<std::string, std::string>>{{".to_q.", ".query."},
                                                          {".to_k.", ".key."},
                                                          {".to_v.", ".value."},
                                                          {".to_out.0.", ".proj_attn."}}) {
      if (auto pos = m.find(from); pos != std::string::npos) m.replace(pos, from.size(), to);
    }
    out.emplace_back(m, t);
  });
  auto vae = models::vae::load_autoencoder_kl(dir.path);
  const Tensor z = load("sd", "inputs.safetensors", "latents");
  EXPECT_LE(rel_err(vae->decode(z), load("sd", "outputs.safetensors", "decoded")), 1e-4);
}

TEST(Vae, MissingTensorIsAnError) {
  TempDir dir("missing");
  const std::string gone = "decoder.up_blocks.0.upsamplers.0.conv.weight";
  copy_checkpoint("sd", dir.path, [&](const std::string& n, const Tensor& t, auto& out) {
    if (n != gone) out.emplace_back(n, t);
  });
  const std::string msg = error_of([&] { models::vae::load_autoencoder_kl(dir.path); });
  EXPECT_NE(msg.find(gone), std::string::npos) << msg;
  EXPECT_NE(msg.find("[48, 48, 3, 3]"), std::string::npos) << msg;
}

// A Flux-style config (no quant convs) over a checkpoint that has them is fine (diffusers
// ignores the extra tensors too); a config that asks for quant convs the checkpoint lacks is not.
TEST(Vae, QuantConvsFollowTheConfig) {
  TempDir dir("quant");
  io::Json j = io::read_json(case_dir("flux") / "config.json");
  j["use_quant_conv"] = true;
  copy_checkpoint(
      "flux", dir.path,
      [](const std::string& n, const Tensor& t, auto& out) { out.emplace_back(n, t); }, &j);
  const std::string msg = error_of([&] { models::vae::load_autoencoder_kl(dir.path); });
  EXPECT_NE(msg.find("quant_conv.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[32, 32, 1, 1]"), std::string::npos) << msg;
}

TEST(Vae, ConfigErrorsNameTheKey) {
  io::Json j = io::read_json(case_dir("sd") / "config.json");
  j["up_block_types"] = {"UpDecoderBlock2D", "AttnUpDecoderBlock2D"};
  std::string msg = error_of([&] { AutoencoderKLConfig::from(io::Config(j, "x/config.json")); });
  EXPECT_NE(msg.find("x/config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("AttnUpDecoderBlock2D"), std::string::npos) << msg;

  j = io::read_json(case_dir("sd") / "config.json");
  j["norm_num_groups"] = 5;
  msg = error_of([&] { AutoencoderKLConfig::from(io::Config(j, "x/config.json")); });
  EXPECT_NE(msg.find("norm_num_groups"), std::string::npos) << msg;

  j = io::read_json(case_dir("sd") / "config.json");
  j["_class_name"] = "AutoencoderTiny";
  msg = error_of([&] { AutoencoderKLConfig::from(io::Config(j, "x/config.json")); });
  EXPECT_NE(msg.find("AutoencoderTiny"), std::string::npos) << msg;
}

TEST(Vae, BadInputShapesAreErrors) {
  auto vae = models::vae::load_autoencoder_kl(case_dir("sd"));
  std::string msg = error_of([&] { vae->decode(Tensor::zeros({1, 16, 8, 8})); });
  EXPECT_NE(msg.find("[1, 16, 8, 8]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(N, 4, h, w)"), std::string::npos) << msg;
  msg = error_of([&] { vae->encode(Tensor::zeros({1, 3, 15, 16})); });
  EXPECT_NE(msg.find("15x16"), std::string::npos) << msg;
  EXPECT_NE(msg.find("scale factor 2"), std::string::npos) << msg;
  msg = error_of([&] { vae->encode(Tensor::zeros({1, 4, 16, 16})); });
  EXPECT_NE(msg.find("[1, 4, 16, 16]"), std::string::npos) << msg;
}

}  // namespace
}  // namespace paradit
