// FLUX.2 transformer (Flux2Transformer2DModel) against diffusers 0.42.1 on the tiny fixture, in
// f32 and with bf16 weights, without guidance (klein's call), and input errors.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/transformer.h"
#include "support/transformer_fixtures.h"

namespace paradit {
namespace {

using core::Tensor;
using testing::read_all;
using testing::rel_l2_err;

TEST(Flux2, MatchesDiffusersF32) {
  const auto dir = testing::transformer_case_dir("flux2");
  auto model = models::load_transformer(dir);
  EXPECT_EQ(model->class_name(), "Flux2Transformer2DModel");
  const double err = rel_l2_err(model->forward(read_all(dir / "inputs.safetensors")),
                                testing::reference_sample(dir));
  std::printf("flux2 rel-L2 %.2e\n", err);
  EXPECT_LE(err, 1e-4);
}

TEST(Flux2, Bf16WeightsWithinTolerance) {
  const auto dir = testing::transformer_case_dir("flux2");
  auto model = models::load_transformer(dir, core::DType::BF16);
  EXPECT_LE(rel_l2_err(model->forward(read_all(dir / "inputs.safetensors")),
                       testing::reference_sample(dir)),
            2e-2);
}

// Guidance matters when embedded; without it (klein's guidance=None) the output changes.
TEST(Flux2, GuidanceIsEmbedded) {
  const auto dir = testing::transformer_case_dir("flux2");
  auto model = models::load_transformer(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  const Tensor ref = testing::reference_sample(dir);
  inputs.erase("guidance");
  EXPECT_GT(rel_l2_err(model->forward(inputs), ref), 1e-3);
}

TEST(Flux2, MissingInputNamesIt) {
  const auto dir = testing::transformer_case_dir("flux2");
  auto model = models::load_transformer(dir);
  auto inputs = read_all(dir / "inputs.safetensors");
  inputs.erase("txt_ids");
  try {
    model->forward(inputs);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("txt_ids"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace paradit
