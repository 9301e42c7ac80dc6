// Wan2.1 / Wan2.2 TI2V transformer against diffusers' outputs on the tiny fixtures, in f32 and
// with bf16 weights; per-token timesteps; checkpoint, config and input errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "models/wan/wan.h"
#include "video_test_util.h"

namespace paradit {
namespace {

using core::Tensor;
using namespace video_test;

std::unique_ptr<models::Transformer> load_wan(const fs::path& dir,
                                              core::DType dtype = core::DType::F32) {
  return load_with(models::wan::make_wan_transformer, dir, dtype);
}

double run_case(const std::string& name, core::DType dtype) {
  const fs::path dir = case_dir(name);
  auto model = load_wan(dir, dtype);
  EXPECT_EQ(model->class_name(), "WanTransformer3DModel");
  const double err = rel_err(model->forward(read_all(dir / "inputs.safetensors")), reference(dir));
  std::printf("%s %s: rel err %.3g\n", name.c_str(), std::string(core::dtype_name(dtype)).c_str(),
              err);
  return err;
}

TEST(Wan, Wan21MatchesDiffusersF32) { EXPECT_LE(run_case("wan", core::DType::F32), 1e-4); }

// Wan2.2 TI2V: 48 channels and one timestep per token (0 on the conditioning first frame).
TEST(Wan, Wan22Ti2vPerTokenTimestepsMatchDiffusersF32) {
  EXPECT_LE(run_case("wan22_ti2v", core::DType::F32), 1e-4);
}

TEST(Wan, Wan21Bf16WeightsWithinTolerance) { EXPECT_LE(run_case("wan", core::DType::BF16), 1e-2); }

TEST(Wan, Wan22Ti2vBf16WeightsWithinTolerance) {
  EXPECT_LE(run_case("wan22_ti2v", core::DType::BF16), 1e-2);
}

// The rotary tables against diffusers' WanRotaryPosEmbed output recorded by the fixture
// ([1, S, 1, hd] there): t/h/w = 8/4/4 channels of each 16-wide head.
TEST(Wan, RopeMatchesDiffusers) {
  const fs::path dir = case_dir("wan");
  auto cfg = models::wan::WanConfig::from(io::Config::load(dir / "config.json"));
  EXPECT_EQ(cfg.rope_split(), (std::vector<int64_t>{8, 4, 4}));
  auto rope = models::wan::wan_rope(cfg, {3, 4, 4});
  auto mid = io::TensorSource::open(dir / "intermediates.safetensors");
  EXPECT_LE(rel_err(rope.cos, mid.load("rope.0").reshape({48, 16})), 1e-6);
  EXPECT_LE(rel_err(rope.sin, mid.load("rope.1").reshape({48, 16})), 1e-6);
}

// One value per token, all equal, is the per-sample timestep; so is a (B, 1) timestep.
TEST(Wan, UniformPerTokenTimestepEqualsScalarTimestep) {
  const fs::path dir = case_dir("wan22_ti2v");
  auto model = load_wan(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  inputs["timestep"] = Tensor::full({1, 48}, 613.0f);
  Tensor per_token = model->forward(inputs);
  inputs["timestep"] = Tensor::from_vector({613.0f}, {1});
  Tensor per_sample = model->forward(inputs);
  EXPECT_LE(rel_err(per_token, per_sample), 1e-6);
  inputs["timestep"] = Tensor::from_vector({613.0f}, {1, 1});  // (B, 1) broadcasts too
  EXPECT_LE(rel_err(model->forward(inputs), per_sample), 1e-7);
}

// A batch of two (the fixture sample and a different one) gives each sample's own result, with
// per-sample and with per-token timesteps.
TEST(Wan, BatchOfTwoMatchesSingleSamples) {
  for (const std::string name : {"wan", "wan22_ti2v"}) {
    const fs::path dir = case_dir(name);
    auto model = load_wan(dir);
    auto first = read_all(dir / "inputs.safetensors");
    models::NamedTensors second = first;
    second["hidden_states"] = core::scale(first["hidden_states"], -0.5f);
    second["encoder_hidden_states"] = core::scale(first["encoder_hidden_states"], 2.0f);
    second["timestep"] = core::scale(first["timestep"], 0.25f);
    models::NamedTensors both;
    for (const char* n : {"hidden_states", "encoder_hidden_states", "timestep"}) {
      both[n] = core::concat({first[n], second[n]}, 0);
    }
    Tensor out = model->forward(both);
    EXPECT_LE(rel_err(out.slice(0, 0, 1).contiguous(), reference(dir)), 1e-4) << name;
    EXPECT_LE(rel_err(out.slice(0, 1, 2).contiguous(), model->forward(second)), 1e-5) << name;
  }
}

// The structure comes from config.json alone: bound against make-model's random provider, the
// model asks for exactly the fixture checkpoint's tensors (147,200 / 163,712 parameters).
TEST(Wan, BindsExactlyTheCheckpointTensors) {
  expect_binds_exactly_the_checkpoint(models::wan::make_wan_transformer, case_dir("wan"), 147200);
  expect_binds_exactly_the_checkpoint(models::wan::make_wan_transformer, case_dir("wan22_ti2v"),
                                      163712);
}

// A checkpoint whose tensor has the wrong shape: one line naming the tensor and both shapes.
TEST(Wan, WrongShapedTensorIsAnError) {
  const std::string bad = "blocks.1.ffn.net.0.proj.weight";  // (128, 64)
  const fs::path dir = copy_with_short_tensor(case_dir("wan"), "wan", bad, 8);
  try {
    load_wan(dir);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(bad), std::string::npos) << msg;
    EXPECT_NE(msg.find("[120, 64]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[128, 64]"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

TEST(Wan, MisshapedInputsAreErrors) {
  const fs::path dir = case_dir("wan22_ti2v");
  auto model = load_wan(dir);
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
  bad["timestep"] = inputs["timestep"].slice(1, 0, 47);  // 47 values for 48 tokens
  expect_error(bad, "'timestep'");
  bad = inputs;
  bad["hidden_states"] = inputs["hidden_states"].slice(4, 0, 7).contiguous();  // odd width
  expect_error(bad, "not a multiple of the patch size");
  bad = inputs;
  bad.erase("encoder_hidden_states");
  expect_error(bad, "'encoder_hidden_states'");
}

// Absent keys take WanTransformer3DModel's defaults (the Wan2.1 14B shapes).
TEST(Wan, ConfigDefaultsFollowDiffusers) {
  auto c = models::wan::WanConfig::from(io::Config(io::Json::object(), "x/config.json"));
  EXPECT_EQ(c.patch_size, (models::wan::Patch3d{1, 2, 2}));
  EXPECT_EQ(c.inner_dim(), 40 * 128);
  EXPECT_EQ(c.in_channels, 16);
  EXPECT_EQ(c.out_channels, 16);
  EXPECT_EQ(c.text_dim, 4096);
  EXPECT_EQ(c.freq_dim, 256);
  EXPECT_EQ(c.ffn_dim, 13824);
  EXPECT_EQ(c.num_layers, 40);
  EXPECT_TRUE(c.cross_attn_norm);
  EXPECT_EQ(c.rope_max_seq_len, 1024);
  EXPECT_EQ(c.rope_split(), (std::vector<int64_t>{44, 42, 42}));
}

TEST(Wan, ImageToVideoConfigIsAnError) {
  io::Json j = io::read_json(case_dir("wan") / "config.json");
  j["image_dim"] = 1280;
  try {
    models::wan::WanConfig::from(io::Config(j, "x/config.json"));
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("x/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("image_dim"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace paradit
