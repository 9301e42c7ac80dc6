// PixArt-Σ / PixArt-α golden tests against diffusers' outputs on the tiny fixtures
// (tests/data/transformer/pixart_{sigma,alpha}), plus bad-input errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/transformer.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) {
  return fs::path(PARADIT_TEST_DATA) / "transformer" / name;
}

// ‖a − b‖₂ / ‖b‖₂ in double.
double rel_l2(const core::Tensor& a, const core::Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    den += double(y[i]) * y[i];
  }
  return std::sqrt(num / den);
}

models::NamedTensors load_inputs(const fs::path& file) {
  const io::TensorSource source = io::TensorSource::open(file);
  models::NamedTensors inputs;
  for (const auto& name : source.names()) inputs[name] = source.view(name);
  return inputs;
}

core::Tensor reference(const std::string& name) {
  return io::TensorSource::open(fixture(name) / "outputs.safetensors").load("sample");
}

// A scratch folder removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("paradit_test_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

class PixArtGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(PixArtGolden, MatchesDiffusersInF32) {
  auto model = models::load_transformer(fixture(GetParam()), core::DType::F32);
  EXPECT_EQ(model->class_name(), "PixArtTransformer2DModel");
  const core::Tensor out = model->forward(load_inputs(fixture(GetParam()) / "inputs.safetensors"));
  const double err = rel_l2(out, reference(GetParam()));
  EXPECT_LE(err, 1e-4) << GetParam();
}

TEST_P(PixArtGolden, MatchesWithBF16Weights) {
  auto model = models::load_transformer(fixture(GetParam()), core::DType::BF16);
  const core::Tensor out = model->forward(load_inputs(fixture(GetParam()) / "inputs.safetensors"));
  const double err = rel_l2(out, reference(GetParam()));
  EXPECT_LE(err, 1e-2) << GetParam();
  EXPECT_GT(err, 0.0) << "bf16 weights should not reproduce f32 bit for bit";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PixArtGolden,
                         ::testing::Values(std::string("pixart_sigma"),
                                           std::string("pixart_alpha")));

// Masked caption tokens must not influence the result: overwrite them and compare.
TEST(PixArt, MaskedCaptionTokensAreIgnored) {
  auto model = models::load_transformer(fixture("pixart_sigma"));
  models::NamedTensors inputs = load_inputs(fixture("pixart_sigma") / "inputs.safetensors");
  const core::Tensor mask = inputs.at("encoder_attention_mask").to(core::DType::F32);
  const core::Tensor base = model->forward(inputs);

  core::Tensor ctx = inputs.at("encoder_hidden_states").clone();  // (B, S, C)
  int changed = 0;
  float* c = ctx.data<float>();
  for (int64_t b = 0; b < ctx.dim(0); ++b)
    for (int64_t s = 0; s < ctx.dim(1); ++s)
      if (mask.item_at({b, s}) == 0.0) {
        ++changed;
        for (int64_t k = 0; k < ctx.dim(2); ++k) c[(b * ctx.dim(1) + s) * ctx.dim(2) + k] = 100.0f;
      }
  ASSERT_GT(changed, 0) << "the fixture should mask some tokens";
  inputs["encoder_hidden_states"] = ctx;
  EXPECT_LE(rel_l2(model->forward(inputs), base), 1e-6);

  // Without the mask the same change matters, so the comparison above can fail.
  inputs.erase("encoder_attention_mask");
  EXPECT_GT(rel_l2(model->forward(inputs), base), 1e-3);
}

// A timestep given once applies to the whole batch.
TEST(PixArt, SingleTimestepBroadcasts) {
  auto model = models::load_transformer(fixture("pixart_sigma"));
  models::NamedTensors inputs = load_inputs(fixture("pixart_sigma") / "inputs.safetensors");
  const float t0 = inputs.at("timestep").to_vector()[0];
  const int64_t B = inputs.at("hidden_states").dim(0);
  inputs["timestep"] = core::Tensor::from_vector(std::vector<float>(B, t0), {B});
  const core::Tensor expanded = model->forward(inputs);
  inputs["timestep"] = core::Tensor::from_vector({t0}, {1});
  EXPECT_LE(rel_l2(model->forward(inputs), expanded), 1e-7);
}

TEST(PixArt, WrongShapedTensorNamesTensorAndShapes) {
  TempDir dir("pixart_wrong_shape");
  const io::TensorSource src = io::TensorSource::open(fixture("pixart_sigma"));
  const std::string bad = "transformer_blocks.1.attn2.to_k.weight";
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  for (const auto& name : src.names()) {
    core::Tensor t = src.load(name);
    if (name == bad) t = core::Tensor::zeros({t.dim(0), t.dim(1) + 3});
    tensors.emplace_back(name, t);
  }
  io::save_safetensors(dir.path / "diffusion_pytorch_model.safetensors", tensors);
  fs::copy_file(fixture("pixart_sigma") / "config.json", dir.path / "config.json");
  try {
    models::load_transformer(dir.path);
    FAIL() << "expected paradit::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(bad), std::string::npos) << msg;
    EXPECT_NE(msg.find("[64, 67]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[64, 64]"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(PixArt, MissingInputsAreNamed) {
  auto sigma = models::load_transformer(fixture("pixart_sigma"));
  models::NamedTensors inputs = load_inputs(fixture("pixart_sigma") / "inputs.safetensors");
  inputs.erase("encoder_hidden_states");
  try {
    sigma->forward(inputs);
    FAIL() << "expected paradit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("encoder_hidden_states"), std::string::npos) << e.what();
  }

  auto alpha = models::load_transformer(fixture("pixart_alpha"));
  inputs = load_inputs(fixture("pixart_alpha") / "inputs.safetensors");
  inputs.erase("added_cond_kwargs.resolution");
  try {
    alpha->forward(inputs);
    FAIL() << "expected paradit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("added_cond_kwargs.resolution"), std::string::npos)
        << e.what();
  }

  inputs = load_inputs(fixture("pixart_alpha") / "inputs.safetensors");
  inputs["hidden_states"] = core::Tensor::zeros({2, 4, 7, 8});  // 7 is not a multiple of 2
  EXPECT_THROW(alpha->forward(inputs), Error);
}

}  // namespace
}  // namespace paradit
