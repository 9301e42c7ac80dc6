// Flux.1 transformer against diffusers' outputs on the tiny fixtures (dev with guidance, and
// schnell), in f32 and with bf16 weights; checkpoint and input errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "io/diffusers.h"
#include "io/safetensors.h"
#include "models/flux/flux.h"
#include "models/transformer.h"
#include "support/transformer_fixtures.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using core::Tensor;

using testing::read_all;
using testing::rel_l2_err;

fs::path case_dir(const std::string& name) { return testing::transformer_case_dir(name); }

double run_case(const std::string& name, core::DType dtype) {
  const fs::path dir = case_dir(name);
  auto model = models::load_transformer(dir, dtype);
  EXPECT_EQ(model->class_name(), "FluxTransformer2DModel");
  Tensor out = model->forward(read_all(dir / "inputs.safetensors"));
  return rel_l2_err(out, testing::reference_sample(dir));
}

TEST(Flux, DevMatchesDiffusersF32) { EXPECT_LE(run_case("flux", core::DType::F32), 1e-4); }

TEST(Flux, SchnellMatchesDiffusersF32) {
  EXPECT_LE(run_case("flux_schnell", core::DType::F32), 1e-4);
}

TEST(Flux, DevBf16WeightsWithinTolerance) { EXPECT_LE(run_case("flux", core::DType::BF16), 1e-2); }

TEST(Flux, SchnellBf16WeightsWithinTolerance) {
  EXPECT_LE(run_case("flux_schnell", core::DType::BF16), 1e-2);
}

// The rotary tables against diffusers' FluxPosEmbed output recorded by the fixture.
TEST(Flux, RopeMatchesDiffusers) {
  const fs::path dir = case_dir("flux");
  auto in = io::TensorSource::open(dir / "inputs.safetensors");
  auto mid = io::TensorSource::open(dir / "intermediates.safetensors");
  Tensor ids = core::concat({in.load("txt_ids"), in.load("img_ids")}, 0);  // (23, 3)
  auto cfg = models::flux::FluxConfig::from(io::Config::load(dir / "config.json"));
  auto rope = models::flux::flux_rope(ids, cfg.axes_dims_rope, cfg.rope_theta);
  EXPECT_LE(rel_l2_err(rope.cos, mid.load("pos_embed.0")), 1e-6);
  EXPECT_LE(rel_l2_err(rope.sin, mid.load("pos_embed.1")), 1e-6);
}

// Ids with the leading batch dim older pipelines pass give the same result.
TEST(Flux, AcceptsBatchedIds) {
  const fs::path dir = case_dir("flux_schnell");
  auto model = models::load_transformer(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  Tensor ref = model->forward(inputs);
  inputs["img_ids"] = inputs["img_ids"].unsqueeze(0);
  inputs["txt_ids"] = inputs["txt_ids"].unsqueeze(0);
  EXPECT_LE(rel_l2_err(model->forward(inputs), ref), 1e-7);
}

// A batch of two (the fixture sample and a different one) gives each sample's own result: the
// per-sample modulation, timestep and guidance embeddings do not mix across the batch.
TEST(Flux, BatchOfTwoMatchesSingleSamples) {
  const fs::path dir = case_dir("flux");
  auto model = models::load_transformer(dir);
  auto first = read_all(dir / "inputs.safetensors");
  models::NamedTensors second = first;
  second["hidden_states"] = core::scale(first["hidden_states"], -0.5f);
  second["encoder_hidden_states"] = core::scale(first["encoder_hidden_states"], 2.0f);
  second["pooled_projections"] = core::scale(first["pooled_projections"], -1.0f);
  second["timestep"] = Tensor::from_vector({0.3f}, {1});
  second["guidance"] = Tensor::from_vector({5.0f}, {1});
  models::NamedTensors both = first;
  for (const char* n :
       {"hidden_states", "encoder_hidden_states", "pooled_projections", "timestep", "guidance"}) {
    both[n] = core::concat({first[n], second[n]}, 0);
  }
  Tensor out = model->forward(both);  // (2, 16, 64)
  Tensor ref = testing::reference_sample(dir);
  EXPECT_LE(rel_l2_err(out.slice(0, 0, 1).contiguous(), ref), 1e-4);
  EXPECT_LE(rel_l2_err(out.slice(0, 1, 2).contiguous(), model->forward(second)), 1e-5);
}

TEST(Flux, MissingGuidanceIsAnError) {
  const fs::path dir = case_dir("flux");
  auto model = models::load_transformer(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  inputs.erase("guidance");
  try {
    model->forward(inputs);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'guidance'"), std::string::npos) << e.what();
  }
}

TEST(Flux, MisshapedInputIsAnError) {
  const fs::path dir = case_dir("flux_schnell");
  auto model = models::load_transformer(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  inputs["img_ids"] = inputs["img_ids"].slice(0, 0, 15);  // 15 ids for 16 image tokens
  try {
    model->forward(inputs);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'img_ids'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[15, 3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[16, 3]"), std::string::npos) << msg;
  }
}

// A checkpoint whose tensor has the wrong shape: one line naming the tensor and both shapes.
TEST(Flux, WrongShapedTensorIsAnError) {
  const fs::path src = case_dir("flux_schnell");
  const fs::path dir =
      fs::temp_directory_path() / ("paradit_flux_badshape_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(src / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  auto weights = io::TensorSource::open(src / "diffusion_pytorch_model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  const std::string bad = "single_transformer_blocks.1.proj_mlp.weight";
  for (const auto& n : weights.names()) {
    Tensor t = weights.load(n);
    if (n == bad) t = t.slice(0, 0, t.dim(0) - 8);  // (256, 64) → (248, 64)
    tensors.emplace_back(n, t);
  }
  io::save_safetensors(dir / "diffusion_pytorch_model.safetensors", tensors);
  try {
    models::load_transformer(dir);
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

// Absent keys take FluxTransformer2DModel's defaults (the Flux.1 shapes).
TEST(Flux, ConfigDefaultsFollowDiffusers) {
  auto c = models::flux::FluxConfig::from(io::Config(io::Json::object(), "x/config.json"));
  EXPECT_EQ(c.in_channels, 64);
  EXPECT_EQ(c.out_channels, 64);
  EXPECT_EQ(c.num_layers, 19);
  EXPECT_EQ(c.num_single_layers, 38);
  EXPECT_EQ(c.inner_dim(), 24 * 128);
  EXPECT_EQ(c.joint_attention_dim, 4096);
  EXPECT_EQ(c.pooled_projection_dim, 768);
  EXPECT_FALSE(c.guidance_embeds);
  EXPECT_EQ(c.axes_dims_rope, (std::vector<int64_t>{16, 56, 56}));
  io::Json j = io::read_json(case_dir("flux") / "config.json");
  j["in_channels"] = 16;  // out_channels is null there
  EXPECT_EQ(models::flux::FluxConfig::from(io::Config(j, "x/config.json")).out_channels, 16);
}

TEST(Flux, InconsistentRopeConfigIsAnError) {
  io::Json j = io::read_json(case_dir("flux") / "config.json");
  j["axes_dims_rope"] = {4, 6, 4};  // sums to 14, heads are 16 wide
  try {
    models::flux::FluxConfig::from(io::Config(j, "x/config.json"));
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("axes_dims_rope"), std::string::npos) << msg;
    EXPECT_NE(msg.find("16"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace paradit
