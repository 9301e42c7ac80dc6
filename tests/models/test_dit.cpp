// DiT golden tests against diffusers' outputs on the tiny fixture (tests/data/transformer/dit).
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

const fs::path kDir = fs::path(PARADIT_TEST_DATA) / "transformer" / "dit";

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

models::NamedTensors load_inputs() {
  const io::TensorSource source = io::TensorSource::open(kDir / "inputs.safetensors");
  models::NamedTensors inputs;
  for (const auto& name : source.names()) inputs[name] = source.view(name);
  return inputs;
}

core::Tensor reference() {
  return io::TensorSource::open(kDir / "outputs.safetensors").load("sample");
}

TEST(DiT, MatchesDiffusersInF32) {
  auto model = models::load_transformer(kDir, core::DType::F32);
  EXPECT_EQ(model->class_name(), "DiTTransformer2DModel");
  const models::NamedTensors inputs = load_inputs();
  ASSERT_EQ(inputs.at("class_labels").dtype(), core::DType::I64);
  EXPECT_LE(rel_l2(model->forward(inputs), reference()), 1e-4);
}

TEST(DiT, MatchesWithBF16Weights) {
  auto model = models::load_transformer(kDir, core::DType::BF16);
  const double err = rel_l2(model->forward(load_inputs()), reference());
  EXPECT_LE(err, 1e-2);
  EXPECT_GT(err, 0.0);
}

// The class label matters (the fixture's second sample is the null class 1000).
TEST(DiT, ClassLabelChangesTheOutput) {
  auto model = models::load_transformer(kDir);
  models::NamedTensors inputs = load_inputs();
  const core::Tensor base = model->forward(inputs);
  inputs["class_labels"] = core::Tensor::from_vector_i64({3, 4}, {2});
  EXPECT_GT(rel_l2(model->forward(inputs), base), 1e-3);
}

// The DiT pipeline passes int64 timesteps; integer values give the same result as F32.
TEST(DiT, IntegerTimestepsWork) {
  auto model = models::load_transformer(kDir);
  models::NamedTensors inputs = load_inputs();
  const std::vector<float> t = inputs.at("timestep").to_vector();
  inputs["timestep"] = core::Tensor::from_vector_i64({int64_t(t[0]), int64_t(t[1])}, {2});
  EXPECT_LE(rel_l2(model->forward(inputs), reference()), 1e-4);
}

TEST(DiT, BadInputsGiveOneLineErrors) {
  auto model = models::load_transformer(kDir);
  models::NamedTensors inputs = load_inputs();
  inputs["class_labels"] = core::Tensor::from_vector_i64({1, 1001}, {2});
  try {
    model->forward(inputs);
    FAIL() << "expected paradit::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("class_labels"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1001"), std::string::npos) << msg;
  }
  inputs = load_inputs();
  inputs.erase("class_labels");
  EXPECT_THROW(model->forward(inputs), Error);
  inputs = load_inputs();
  inputs["timestep"] = core::Tensor::from_vector({1, 2, 3}, {3});
  EXPECT_THROW(model->forward(inputs), Error);
}

TEST(DiT, WrongShapedTensorNamesTensorAndShapes) {
  const fs::path dir = fs::temp_directory_path() / ("paradit_test_dit_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const io::TensorSource src = io::TensorSource::open(kDir);
  const std::string bad = "transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight";
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  for (const auto& name : src.names()) {
    core::Tensor t = src.load(name);
    if (name == bad) t = core::Tensor::zeros({1000, 64});  // diffusers has num_classes + 1 rows
    tensors.emplace_back(name, t);
  }
  io::save_safetensors(dir / "diffusion_pytorch_model.safetensors", tensors);
  fs::copy_file(kDir / "config.json", dir / "config.json");
  std::string msg;
  try {
    models::load_transformer(dir);
  } catch (const Error& e) {
    msg = e.what();
  }
  fs::remove_all(dir);
  EXPECT_NE(msg.find(bad), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1000, 64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1001, 64]"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

}  // namespace
}  // namespace paradit
