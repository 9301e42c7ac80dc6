// The shipped default model (models/shapes-pixart) against its diffusers references
// (reference/references.safetensors + case{k}.png): from the prompt text and the recorded
// initial latents, the T5 embeddings, the timesteps and the final latents match diffusers, and
// the 8-bit image differs by at most 1 per channel from the reference PNG.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "io/diffusers.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "pipelines/pipeline.h"
#include "helpers.h"

namespace paradit::pipelines {
namespace {

using namespace paradit::pipelines::testing;
using core::Tensor;

void run_case(int k) {
  const fs::path ref_dir = shapes_model() / "reference";
  const io::Json refs = io::read_json(ref_dir / "references.json");
  const io::Json& settings = refs["settings"];
  const io::Json& kase = refs["cases"][static_cast<size_t>(k)];
  const io::TensorSource t = io::TensorSource::open(ref_dir / "references.safetensors");
  const std::string p = "case" + std::to_string(k) + ".";

  GenerateRequest r;
  r.prompts = {kase["prompt"].get<std::string>()};
  r.negative_prompt = settings["negative_prompt"].get<std::string>();
  r.height = settings["height"].get<int64_t>();
  r.width = settings["width"].get<int64_t>();
  r.num_inference_steps = settings["num_inference_steps"].get<int>();
  r.guidance_scale = settings["guidance_scale"].get<double>();
  r.max_sequence_length = settings["max_sequence_length"].get<int>();
  r.latents = t.load(p + "init_latents");

  auto pipe = Pipeline::open(shapes_model());
  EXPECT_EQ(pipe->class_name(), "PixArtSigmaPipeline");
  const GenerateResult res = pipe->generate(r);

  EXPECT_LE(rel_l2(res.embeddings.at("prompt_embeds"), t.load(p + "prompt_embeds")), 1e-4);
  EXPECT_LE(rel_l2(res.embeddings.at("negative_prompt_embeds"),
                   t.load(p + "negative_prompt_embeds")),
            1e-4);
  EXPECT_EQ(res.embeddings.at("prompt_attention_mask").to_vector(),
            t.load(p + "attention_mask", core::DType::I64).to_vector());
  EXPECT_EQ(res.embeddings.at("negative_prompt_attention_mask").to_vector(),
            t.load(p + "negative_attention_mask", core::DType::I64).to_vector());

  const std::vector<float> ts = t.load(p + "timesteps", core::DType::I64).to_vector();
  ASSERT_EQ(res.timesteps.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(res.timesteps[i], ts[i]) << i;

  EXPECT_LE(rel_l2(res.latents, t.load(p + "final_latents")), 1e-4);
  ASSERT_TRUE(res.images.defined());
  EXPECT_LE(max_abs(res.images, t.load(p + "decoded_image")), 2e-3);

  const io::RgbImage want = io::read_png(ref_dir / kase["png"].get<std::string>());
  const std::vector<uint8_t> got = io::to_rgb8(res.images);
  ASSERT_EQ(static_cast<size_t>(want.height) * want.width * 3, got.size());
  int worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<int>(got[i]) - static_cast<int>(want.rgb[i])));
  }
  EXPECT_LE(worst, 1) << "case " << k;
}

TEST(ShapesModel, Case0MatchesDiffusers) { run_case(0); }
TEST(ShapesModel, Case1MatchesDiffusers) { run_case(1); }

}  // namespace
}  // namespace paradit::pipelines
