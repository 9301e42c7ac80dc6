// SD3 / SD3.5 transformer against diffusers' outputs on the tiny fixtures, in f32 and with bf16
// weights; checkpoint, config and input errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "io/diffusers.h"
#include "io/safetensors.h"
#include "models/sd3/sd3.h"
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
  EXPECT_EQ(model->class_name(), "SD3Transformer2DModel");
  Tensor out = model->forward(read_all(dir / "inputs.safetensors"));
  return rel_l2_err(out, testing::reference_sample(dir));
}

TEST(SD3, MatchesDiffusersF32) { EXPECT_LE(run_case("sd3", core::DType::F32), 1e-4); }

// SD3.5: q/k RMSNorm and a dual-attention first block.
TEST(SD3, SD35MatchesDiffusersF32) { EXPECT_LE(run_case("sd35", core::DType::F32), 1e-4); }

TEST(SD3, Bf16WeightsWithinTolerance) { EXPECT_LE(run_case("sd3", core::DType::BF16), 1e-2); }

TEST(SD3, SD35Bf16WeightsWithinTolerance) { EXPECT_LE(run_case("sd35", core::DType::BF16), 1e-2); }

// One sample of the batch alone gives that sample's rows: nothing mixes across the batch, and a
// single timestep value is accepted.
TEST(SD3, BatchElementsAreIndependent) {
  const fs::path dir = case_dir("sd35");
  auto model = models::load_transformer(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  Tensor ref = testing::reference_sample(dir);
  models::NamedTensors one;
  for (const auto& [name, t] : inputs) one[name] = t.slice(0, 1, 2).contiguous();
  Tensor out = model->forward(one);  // (1, 16, 8, 8)
  EXPECT_LE(rel_l2_err(out, ref.slice(0, 1, 2).contiguous()), 1e-4);
}

TEST(SD3, LatentNotMultipleOfPatchIsAnError) {
  const fs::path dir = case_dir("sd3");
  auto model = models::load_transformer(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  inputs["hidden_states"] = Tensor::zeros({2, 16, 7, 8});
  try {
    model->forward(inputs);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'hidden_states'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 16, 7, 8]"), std::string::npos) << msg;
  }
}

TEST(SD3, LatentLargerThanPositionTableIsAnError) {
  const fs::path dir = case_dir("sd3");
  auto model = models::load_transformer(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  inputs["hidden_states"] = Tensor::zeros({2, 16, 34, 8});  // 17 patches; the table has 16
  try {
    model->forward(inputs);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("pos_embed_max_size"), std::string::npos) << msg;
  }
}

TEST(SD3, MissingPooledProjectionsIsAnError) {
  const fs::path dir = case_dir("sd3");
  auto model = models::load_transformer(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  inputs.erase("pooled_projections");
  try {
    model->forward(inputs);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'pooled_projections'"), std::string::npos) << e.what();
  }
}

// A checkpoint whose tensor has the wrong shape: one line naming the tensor and both shapes.
TEST(SD3, WrongShapedTensorIsAnError) {
  const fs::path src = case_dir("sd35");
  const fs::path dir =
      fs::temp_directory_path() / ("paradit_sd3_badshape_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(src / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  auto weights = io::TensorSource::open(src / "diffusion_pytorch_model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  const std::string bad = "transformer_blocks.0.attn2.norm_k.weight";
  for (const auto& n : weights.names()) {
    Tensor t = weights.load(n);
    if (n == bad) t = t.slice(0, 0, 12);  // (16) → (12)
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
    EXPECT_NE(msg.find("[12]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[16]"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

// Absent keys take SD3Transformer2DModel's defaults; explicit nulls mean what diffusers makes of
// them (out_channels → in_channels, pos_embed_max_size → no cropping).
TEST(SD3, ConfigDefaultsFollowDiffusers) {
  auto c = models::sd3::SD3Config::from(io::Config(io::Json::object(), "x/config.json"));
  EXPECT_EQ(c.sample_size, 128);
  EXPECT_EQ(c.patch_size, 2);
  EXPECT_EQ(c.in_channels, 16);
  EXPECT_EQ(c.num_layers, 18);
  EXPECT_EQ(c.inner_dim(), 18 * 64);
  EXPECT_EQ(c.joint_attention_dim, 4096);
  EXPECT_EQ(c.pooled_projection_dim, 2048);
  EXPECT_EQ(c.out_channels, 16);
  EXPECT_EQ(c.pos_embed_max_size, 96);
  EXPECT_TRUE(c.dual_attention_layers.empty());
  EXPECT_EQ(c.qk_norm, models::common::HeadNormKind::kNone);

  io::Json j = io::read_json(case_dir("sd3") / "config.json");
  j["in_channels"] = 4;
  j["out_channels"] = nullptr;
  j["pos_embed_max_size"] = nullptr;
  auto n = models::sd3::SD3Config::from(io::Config(j, "x/config.json"));
  EXPECT_EQ(n.out_channels, 4);
  EXPECT_EQ(n.pos_embed_max_size, 0);
  j.erase("out_channels");
  EXPECT_EQ(models::sd3::SD3Config::from(io::Config(j, "x/config.json")).out_channels, 16);
}

TEST(SD3, UnsupportedQkNormIsAnError) {
  io::Json j = io::read_json(case_dir("sd35") / "config.json");
  j["qk_norm"] = "l2";
  try {
    models::sd3::SD3Config::from(io::Config(j, "x/config.json"));
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("x/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'l2'"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace paradit
