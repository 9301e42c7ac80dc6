// HunyuanVideo transformer against diffusers' outputs on the tiny fixture (text padding masked,
// embedded guidance), in f32 and with bf16 weights; mask rules; checkpoint, config and input
// errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "models/hunyuan_video/hunyuan_video.h"
#include "video_test_util.h"

namespace paradit {
namespace {

using core::Tensor;
using namespace video_test;
namespace hv = models::hunyuan_video;

std::unique_ptr<models::Transformer> load_hv(const fs::path& dir,
                                             core::DType dtype = core::DType::F32) {
  return load_with(hv::make_hunyuan_video_transformer, dir, dtype);
}

double run_case(core::DType dtype) {
  const fs::path dir = case_dir("hunyuan_video");
  auto model = load_hv(dir, dtype);
  EXPECT_EQ(model->class_name(), "HunyuanVideoTransformer3DModel");
  const double err = rel_err(model->forward(read_all(dir / "inputs.safetensors")), reference(dir));
  std::printf("hunyuan_video %s: rel err %.3g\n", std::string(core::dtype_name(dtype)).c_str(),
              err);
  return err;
}

TEST(HunyuanVideo, MatchesDiffusersF32) { EXPECT_LE(run_case(core::DType::F32), 1e-4); }

TEST(HunyuanVideo, Bf16WeightsWithinTolerance) { EXPECT_LE(run_case(core::DType::BF16), 1e-2); }

// The rotary tables against diffusers' HunyuanVideoRotaryPosEmbed output ([S, hd]).
TEST(HunyuanVideo, RopeMatchesDiffusers) {
  const fs::path dir = case_dir("hunyuan_video");
  auto cfg = hv::HunyuanVideoConfig::from(io::Config::load(dir / "config.json"));
  auto rope = hv::hunyuan_video_rope(cfg.rope_axes_dim, cfg.rope_theta, {3, 4, 4});
  auto mid = io::TensorSource::open(dir / "intermediates.safetensors");
  EXPECT_LE(rel_err(rope.cos, mid.load("rope.0")), 1e-6);
  EXPECT_LE(rel_err(rope.sin, mid.load("rope.1")), 1e-6);
  // The identity rows appended for the text leave it unrotated.
  auto joint = hv::with_identity_rows(rope, 5);
  EXPECT_EQ(joint.cos.shape(), (core::Shape{53, 16}));
  EXPECT_EQ(joint.cos.item_at({50, 3}), 1.0);
  EXPECT_EQ(joint.sin.item_at({50, 3}), 0.0);
}

// The token refiner (context_embedder) on its own: masked mean pooling and masked attention.
TEST(HunyuanVideo, TokenRefinerMatchesDiffusers) {
  const fs::path dir = case_dir("hunyuan_video");
  auto cfg = hv::HunyuanVideoConfig::from(io::Config::load(dir / "config.json"));
  const io::TensorSource source = io::TensorSource::open(dir);
  const models::common::CheckpointWeights weights(source);
  hv::TokenRefiner refiner;
  refiner.bind(models::common::WeightScope(weights) / "context_embedder", cfg);
  auto in = read_all(dir / "inputs.safetensors");
  Tensor c =
      refiner.forward(in["encoder_hidden_states"], in["timestep"], in["encoder_attention_mask"]);
  auto mid = io::TensorSource::open(dir / "intermediates.safetensors");
  EXPECT_LE(rel_err(c, mid.load("context_embedder")), 1e-5);
}

// What the padded text tokens hold cannot change the video output: no video query sees them,
// and the refiner's unmasked rows do not see them either.
TEST(HunyuanVideo, PaddedTextDoesNotReachTheVideo) {
  const fs::path dir = case_dir("hunyuan_video");
  auto model = load_hv(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  Tensor ref = model->forward(inputs);
  Tensor text = inputs["encoder_hidden_states"].clone();  // (1, 12, 32); tokens 8..11 padded
  float* p = text.data<float>();
  for (int64_t i = 8 * 32; i < 12 * 32; ++i) p[i] = p[i] * -3.0f + 1.0f;
  inputs["encoder_hidden_states"] = text;
  EXPECT_LE(rel_err(model->forward(inputs), ref), 1e-6);
  // Unmasking them does change it.
  inputs["encoder_attention_mask"] = Tensor::full({1, 12}, 1.0f);
  EXPECT_GT(rel_err(model->forward(inputs), ref), 1e-3);
}

// A batch of two (the fixture sample and one with other inputs and mask) gives each sample's
// own result.
TEST(HunyuanVideo, BatchOfTwoMatchesSingleSamples) {
  const fs::path dir = case_dir("hunyuan_video");
  auto model = load_hv(dir);
  auto first = read_all(dir / "inputs.safetensors");
  models::NamedTensors second = first;
  second["hidden_states"] = core::scale(first["hidden_states"], -0.5f);
  second["encoder_hidden_states"] = core::scale(first["encoder_hidden_states"], 2.0f);
  second["pooled_projections"] = core::scale(first["pooled_projections"], -1.0f);
  std::vector<float> mask(12, 1.0f);
  mask[11] = 0.0f;
  second["encoder_attention_mask"] = Tensor::from_vector(mask, {1, 12});
  second["timestep"] = Tensor::from_vector({250.0f}, {1});
  second["guidance"] = Tensor::from_vector({3500.0f}, {1});
  models::NamedTensors both;
  for (const auto& [name, t] : first) both[name] = core::concat({t, second[name]}, 0);
  Tensor out = model->forward(both);
  EXPECT_LE(rel_err(out.slice(0, 0, 1).contiguous(), reference(dir)), 1e-4);
  EXPECT_LE(rel_err(out.slice(0, 1, 2).contiguous(), model->forward(second)), 1e-5);
}

// The structure comes from config.json alone: bound against make-model's random provider, the
// model asks for exactly the fixture checkpoint's tensors (632,448 parameters).
TEST(HunyuanVideo, BindsExactlyTheCheckpointTensors) {
  expect_binds_exactly_the_checkpoint(hv::make_hunyuan_video_transformer, case_dir("hunyuan_video"),
                                      632448);
}

// A checkpoint whose tensor has the wrong shape: one line naming the tensor and both shapes.
TEST(HunyuanVideo, WrongShapedTensorIsAnError) {
  const std::string bad = "single_transformer_blocks.1.proj_mlp.weight";  // (256, 64)
  const fs::path dir = copy_with_short_tensor(case_dir("hunyuan_video"), "hunyuan", bad, 8);
  try {
    load_hv(dir);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(bad), std::string::npos) << msg;
    EXPECT_NE(msg.find("[248, 64]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[256, 64]"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

TEST(HunyuanVideo, MissingAndMisshapedInputsAreErrors) {
  const fs::path dir = case_dir("hunyuan_video");
  auto model = load_hv(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  auto expect_error = [&](const models::NamedTensors& in, const std::string& needle) {
    try {
      model->forward(in);
      FAIL() << "expected an Error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto bad = inputs;
  bad.erase("guidance");
  expect_error(bad, "'guidance'");
  bad = inputs;
  bad.erase("encoder_attention_mask");
  expect_error(bad, "'encoder_attention_mask'");
  bad = inputs;
  bad["encoder_attention_mask"] = inputs["encoder_attention_mask"].slice(1, 0, 11).contiguous();
  expect_error(bad, "[1, 12]");
  bad = inputs;
  bad["encoder_attention_mask"] = Tensor::zeros({1, 12});
  expect_error(bad, "encoder_attention_mask");
  bad = inputs;
  bad["hidden_states"] = inputs["hidden_states"].slice(3, 0, 7).contiguous();  // odd height
  expect_error(bad, "not a multiple of the patch size");
}

// Absent keys take HunyuanVideoTransformer3DModel's defaults (the HunyuanVideo 13B shapes).
TEST(HunyuanVideo, ConfigDefaultsFollowDiffusers) {
  auto c = hv::HunyuanVideoConfig::from(io::Config(io::Json::object(), "x/config.json"));
  EXPECT_EQ(c.in_channels, 16);
  EXPECT_EQ(c.out_channels, 16);
  EXPECT_EQ(c.inner_dim(), 24 * 128);
  EXPECT_EQ(c.num_layers, 20);
  EXPECT_EQ(c.num_single_layers, 40);
  EXPECT_EQ(c.num_refiner_layers, 2);
  EXPECT_EQ(c.patch(), (hv::Patch3d{1, 2, 2}));
  EXPECT_EQ(c.qk_norm, models::common::HeadNormKind::kRMSNorm);
  EXPECT_TRUE(c.guidance_embeds);
  EXPECT_EQ(c.text_embed_dim, 4096);
  EXPECT_EQ(c.pooled_projection_dim, 768);
  EXPECT_EQ(c.rope_theta, 256.0);
  EXPECT_EQ(c.rope_axes_dim, (std::vector<int64_t>{16, 56, 56}));
}

TEST(HunyuanVideo, UnsupportedConfigsAreErrors) {
  const io::Json base = io::read_json(case_dir("hunyuan_video") / "config.json");
  auto expect_error = [](const io::Json& j, const std::string& needle) {
    try {
      hv::HunyuanVideoConfig::from(io::Config(j, "x/config.json"));
      FAIL() << "expected an Error mentioning " << needle;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("x/config.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  io::Json j = base;
  j["image_condition_type"] = "token_replace";
  expect_error(j, "token_replace");
  j = base;
  j["rope_axes_dim"] = {4, 6, 4};  // sums to 14, heads are 16 wide
  expect_error(j, "rope_axes_dim");
  j = base;
  j["image_condition_type"] = "latent_concat";  // the image rides in the channels: accepted
  EXPECT_NO_THROW(hv::HunyuanVideoConfig::from(io::Config(j, "x/config.json")));
}

}  // namespace
}  // namespace paradit
