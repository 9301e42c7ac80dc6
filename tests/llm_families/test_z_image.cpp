// Z-Image transformer (ZImageTransformer2DModel) against diffusers 0.42.1 on the tiny fixture
// (list inputs of two images with captions of 11 and 5 tokens), the batched input form, and
// captions that pad to different lengths.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/transformer.h"
#include "models/z_image/z_image.h"
#include "support/transformer_fixtures.h"

namespace paradit {
namespace {

using core::Tensor;
using testing::read_all;
using testing::rel_l2_err;

TEST(ZImage, MatchesDiffusersF32ListInputs) {
  const auto dir = testing::transformer_case_dir("z_image");
  auto model = models::load_transformer(dir);
  EXPECT_EQ(model->class_name(), "ZImageTransformer2DModel");
  const Tensor out = model->forward(read_all(dir / "inputs.safetensors"));  // (2, C, F, H, W)
  auto ref = io::TensorSource::open(dir / "outputs.safetensors");
  for (int i = 0; i < 2; ++i) {
    const double err = rel_l2_err(out.select(0, i), ref.load("sample." + std::to_string(i)));
    std::printf("z_image sample.%d rel-L2 %.2e\n", i, err);
    EXPECT_LE(err, 1e-4);
  }
}

TEST(ZImage, Bf16WeightsWithinTolerance) {
  const auto dir = testing::transformer_case_dir("z_image");
  auto model = models::load_transformer(dir, core::DType::BF16);
  const Tensor out = model->forward(read_all(dir / "inputs.safetensors"));
  auto ref = io::TensorSource::open(dir / "outputs.safetensors");
  EXPECT_LE(rel_l2_err(out.select(0, 0), ref.load("sample.0")), 2e-2);
}

// Each sample alone gives its own row of the batched call, also when the captions pad to
// different lengths (32 and 64 tokens here: the batch is then masked and the RoPE per sample).
TEST(ZImage, BatchEqualsSamplesAlone) {
  const auto dir = testing::transformer_case_dir("z_image");
  auto model = models::load_transformer(dir);
  auto in = read_all(dir / "inputs.safetensors");
  // a 40-token caption for sample 1: pads to 64
  in["cap_feats.1"] = core::concat(
      {in["cap_feats.0"], in["cap_feats.0"], in["cap_feats.0"], in["cap_feats.0"].slice(0, 0, 7)},
      0);
  in["x.1"] = core::scale(in["x.0"], -0.5f);
  in["t"] = Tensor::from_vector({0.375f, 0.8f}, {2});
  const Tensor both = model->forward(in);
  for (int i = 0; i < 2; ++i) {
    models::NamedTensors one{{"x.0", in["x." + std::to_string(i)]},
                             {"cap_feats.0", in["cap_feats." + std::to_string(i)]},
                             {"t", in["t"].slice(0, i, i + 1)}};
    EXPECT_LE(rel_l2_err(model->forward(one).select(0, 0), both.select(0, i)), 1e-5);
  }
}

TEST(ZImage, ImagesOfDifferentSizesAreRefused) {
  const auto dir = testing::transformer_case_dir("z_image");
  auto model = models::load_transformer(dir);
  auto in = read_all(dir / "inputs.safetensors");
  in["x.1"] = in["x.1"].slice(2, 0, 4).contiguous();
  EXPECT_THROW(model->forward(in), Error);
}

}  // namespace
}  // namespace paradit
