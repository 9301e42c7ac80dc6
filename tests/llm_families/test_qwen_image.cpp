// Qwen-Image transformer (QwenImageTransformer2DModel) against diffusers 0.42.1 on the tiny
// fixture (batch 2, the second prompt's last two text tokens masked), its RoPE tables, and the
// img_shapes input.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/qwen_image/qwen_image.h"
#include "models/transformer.h"
#include "support/transformer_fixtures.h"

namespace paradit {
namespace {

using core::Tensor;
using testing::read_all;
using testing::rel_l2_err;

// The fixture's inputs with its non-tensor img_shapes ([[(1, 4, 4)]] per sample) as a tensor.
models::NamedTensors qwen_inputs() {
  auto in = read_all(testing::transformer_case_dir("qwen_image") / "inputs.safetensors");
  in["img_shapes"] = Tensor::from_vector_i64({1, 4, 4, 1, 4, 4}, {2, 1, 3});
  return in;
}

TEST(QwenImage, MatchesDiffusersF32) {
  const auto dir = testing::transformer_case_dir("qwen_image");
  auto model = models::load_transformer(dir);
  EXPECT_EQ(model->class_name(), "QwenImageTransformer2DModel");
  const double err = rel_l2_err(model->forward(qwen_inputs()), testing::reference_sample(dir));
  std::printf("qwen_image rel-L2 %.2e\n", err);
  EXPECT_LE(err, 1e-4);
}

TEST(QwenImage, Bf16WeightsWithinTolerance) {
  const auto dir = testing::transformer_case_dir("qwen_image");
  auto model = models::load_transformer(dir, core::DType::BF16);
  EXPECT_LE(rel_l2_err(model->forward(qwen_inputs()), testing::reference_sample(dir)), 2e-2);
}

// The mask matters: without it the padded sample changes, the unpadded one does not.
TEST(QwenImage, TextMaskApplies) {
  const auto dir = testing::transformer_case_dir("qwen_image");
  auto model = models::load_transformer(dir);
  auto in = qwen_inputs();
  const Tensor ref = testing::reference_sample(dir);
  in.erase("encoder_hidden_states_mask");
  const Tensor out = model->forward(in);
  EXPECT_LE(rel_l2_err(out.select(0, 0), ref.select(0, 0)), 1e-4);
  EXPECT_GT(rel_l2_err(out.select(0, 1), ref.select(0, 1)), 1e-3);
}

// QwenEmbedRope's positions: centred image rows/columns, text after max(h/2, w/2).
TEST(QwenImage, RopePositions) {
  const auto r = models::qwen_image::qwen_rope(1, 4, 4, 7, {4, 6, 6}, 10000.0);
  // every other column of the interleaved table is one complex entry
  EXPECT_EQ(r.image.cos.shape(), (core::Shape{16, 16}));
  EXPECT_EQ(r.text.cos.shape(), (core::Shape{7, 16}));
  // image row 0, col 0 sits at (0, -2, -2); text token 0 at (2, 2, 2): spot values
  const float inv1 = 1.0f;  // first frequency of each axis
  EXPECT_NEAR(r.image.sin.item_at({0, 4}), std::sin(-2.0f * inv1), 1e-6);
  EXPECT_NEAR(r.text.sin.item_at({0, 0}), std::sin(2.0f * inv1), 1e-6);
}

TEST(QwenImage, MissingImgShapesNamesIt) {
  const auto dir = testing::transformer_case_dir("qwen_image");
  auto model = models::load_transformer(dir);
  auto in = qwen_inputs();
  in.erase("img_shapes");
  try {
    model->forward(in);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("img_shapes"), std::string::npos) << e.what();
  }
  in = qwen_inputs();
  in["img_shapes"] = Tensor::from_vector_i64({1, 2, 4}, {1, 3});
  EXPECT_THROW(model->forward(in), Error);
}

}  // namespace
}  // namespace paradit
