#pragma once
// Helpers of the video transformer tests: fixture paths, loading a model through its family's
// factory, relative error.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "io/diffusers.h"
#include "io/safetensors.h"
#include "models/common/random_weights.h"
#include "models/common/weights.h"
#include "models/transformer.h"
#include "support/transformer_fixtures.h"

namespace paradit::video_test {

namespace fs = std::filesystem;
using core::Tensor;

inline fs::path case_dir(const std::string& name) { return testing::transformer_case_dir(name); }
using testing::read_all;
inline double rel_err(const Tensor& a, const Tensor& b) { return testing::rel_l2_err(a, b); }
inline Tensor reference(const fs::path& dir) { return testing::reference_sample(dir); }

// config.json + weights of `dir` through `factory` (the registry is not needed).
template <typename Factory>
std::unique_ptr<models::Transformer> load_with(Factory factory, const fs::path& dir,
                                               core::DType dtype = core::DType::F32) {
  const io::Config config = io::Config::load(dir / "config.json");
  const io::TensorSource source = io::TensorSource::open(dir);
  const models::common::CheckpointWeights weights(source);
  return factory(config, weights, dtype);
}

// Binds the model of `dir`'s config.json against a recording random-weight provider (what
// make-model does) and checks that it asks for exactly the checkpoint's tensors, with their
// shapes, and `n_params` parameters in all (diffusers' count, from the fixture's meta.json).
template <typename Factory>
void expect_binds_exactly_the_checkpoint(Factory factory, const fs::path& dir, int64_t n_params) {
  const io::Config config = io::Config::load(dir / "config.json");
  models::common::RandomWeights random(7);
  factory(config, random, core::DType::F32);
  const io::TensorSource source = io::TensorSource::open(dir);
  std::map<std::string, core::Shape> asked;
  for (const auto& e : random.entries()) asked[e.name] = e.shape;
  for (const auto& name : source.names()) {
    EXPECT_TRUE(asked.count(name)) << "checkpoint tensor never bound: " << name;
    if (asked.count(name)) EXPECT_EQ(asked[name], source.info(name).shape) << name;
  }
  EXPECT_EQ(asked.size(), source.names().size());
  EXPECT_EQ(random.parameter_count(), n_params);
}

// Copies `src` into a fresh temporary folder with tensor `bad` cut by `drop` rows; returns it.
inline fs::path copy_with_short_tensor(const fs::path& src, const std::string& tag,
                                       const std::string& bad, int64_t drop) {
  const fs::path dir =
      fs::temp_directory_path() / ("paradit_" + tag + "_badshape_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(src / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  auto weights = io::TensorSource::open(src / "diffusion_pytorch_model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  bool found = false;
  for (const auto& n : weights.names()) {
    Tensor t = weights.load(n);
    if (n == bad) {
      t = t.slice(0, 0, t.dim(0) - drop);
      found = true;
    }
    tensors.emplace_back(n, t);
  }
  EXPECT_TRUE(found) << bad;
  io::save_safetensors(dir / "diffusion_pytorch_model.safetensors", tensors);
  return dir;
}

}  // namespace paradit::video_test
