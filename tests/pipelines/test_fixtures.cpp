// The pipelines against diffusers on the tiny fixture pipelines (tests/data/pipeline/<case>,
// copied from the shared fixtures): the recorded call from the recorded prompt embeddings and
// initial latents (final latents, every step's latents, timesteps, decoded image), and the same
// call from the prompt text (tokenizers + text encoders → embeddings → final latents).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "io/diffusers.h"
#include "io/safetensors.h"
#include "pipelines/pipeline.h"
#include "helpers.h"

namespace paradit::pipelines {
namespace {

using namespace paradit::pipelines::testing;
using core::Tensor;

struct Case {
  std::string name;
  fs::path dir;
  io::Json call;
  io::TensorSource tensors;
};

Case load_case(const std::string& name) {
  const fs::path dir = test_data("pipeline/" + name);
  return {name, dir, io::read_json(dir / "case.json")["call"],
          io::TensorSource::open(dir / "case.safetensors")};
}

// The request of case.json's call, without the prompt part.
GenerateRequest base_request(const Case& c) {
  GenerateRequest r;
  r.height = c.call["height"].get<int64_t>();
  r.width = c.call["width"].get<int64_t>();
  r.num_inference_steps = c.call["num_inference_steps"].get<int>();
  r.guidance_scale = c.call["guidance_scale"].get<double>();
  r.max_sequence_length = c.call["max_sequence_length"].get<int>();
  if (c.call.contains("negative_prompt")) {
    r.negative_prompt = c.call["negative_prompt"].get<std::string>();
  }
  r.latents = c.tensors.load("latents_in");
  return r;
}

const std::vector<std::string>& embedding_names() {
  static const std::vector<std::string> names = {
      "prompt_embeds", "pooled_prompt_embeds", "negative_prompt_embeds",
      "negative_pooled_prompt_embeds", "prompt_attention_mask", "negative_prompt_attention_mask"};
  return names;
}

void check_trajectory(const Case& c, const GenerateResult& res,
                      const std::vector<Tensor>& steps) {
  const std::vector<float> ts = c.tensors.load("step_timesteps").to_vector();
  ASSERT_EQ(res.timesteps.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) EXPECT_NEAR(res.timesteps[i], ts[i], 1e-3) << i;
  ASSERT_EQ(steps.size(), ts.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_LE(rel_l2(steps[i], c.tensors.load("step_latents." + std::to_string(i))), 1e-4)
        << c.name << " step " << i;
  }
  EXPECT_LE(rel_l2(res.latents, c.tensors.load("final_latents")), 1e-4) << c.name;
}

void run_from_embeddings(const std::string& name) {
  const Case c = load_case(name);
  GenerateRequest r = base_request(c);
  for (const std::string& n : embedding_names()) {
    if (c.tensors.has(n)) r.prompt_embeds[n] = c.tensors.load(n, c.tensors.info(n).dtype);
  }
  auto pipe = Pipeline::open(c.dir);
  std::vector<Tensor> steps;
  const GenerateResult res =
      pipe->generate(r, [&](const StepEvent& e) { steps.push_back(e.latents.clone()); });
  check_trajectory(c, res, steps);
  ASSERT_TRUE(res.images.defined());
  const Tensor image = c.tensors.load("image");  // (1, H, W, 3) in [0, 1]
  EXPECT_LE(max_abs(to_np_image(res.images), image), 1e-3) << name;
}

void run_from_text(const std::string& name) {
  const Case c = load_case(name);
  GenerateRequest r = base_request(c);
  r.prompts = {c.call["prompt"].get<std::string>()};
  r.decode = false;
  auto pipe = Pipeline::open(c.dir);
  std::vector<Tensor> steps;
  const GenerateResult res =
      pipe->generate(r, [&](const StepEvent& e) { steps.push_back(e.latents.clone()); });
  int compared = 0;
  for (const std::string& n : embedding_names()) {
    if (!c.tensors.has(n)) continue;
    ASSERT_TRUE(res.embeddings.count(n)) << name << ": no " << n;
    const Tensor got = res.embeddings.at(n);
    if (n.find("mask") != std::string::npos) {
      EXPECT_EQ(got.to_vector(), c.tensors.load(n).to_vector()) << name << " " << n;
    } else {
      EXPECT_LE(rel_l2(got, c.tensors.load(n)), 1e-4) << name << " " << n;
    }
    ++compared;
  }
  EXPECT_GE(compared, 2);
  if (c.tensors.has("text_ids")) {
    EXPECT_EQ(max_abs(res.embeddings.at("text_ids"), c.tensors.load("text_ids")), 0.0);
  }
  check_trajectory(c, res, steps);
}

TEST(PipelineFixture, PixArtSigmaFromEmbeddings) { run_from_embeddings("pixart_sigma"); }
TEST(PipelineFixture, PixArtSigmaFromText) { run_from_text("pixart_sigma"); }
TEST(PipelineFixture, SD3FromEmbeddings) { run_from_embeddings("sd3"); }
TEST(PipelineFixture, SD3FromText) { run_from_text("sd3"); }
TEST(PipelineFixture, FluxFromEmbeddings) { run_from_embeddings("flux"); }
TEST(PipelineFixture, FluxFromText) { run_from_text("flux"); }

TEST(PipelineFixture, DefaultsAndSizeChecks) {
  auto flux = Pipeline::open(test_data("pipeline/flux"));
  EXPECT_EQ(flux->class_name(), "FluxPipeline");
  EXPECT_EQ(flux->defaults().num_inference_steps, 28);
  EXPECT_EQ(flux->defaults().guidance_scale, 3.5);
  EXPECT_EQ(flux->defaults().max_sequence_length, 512);
  EXPECT_EQ(flux->size_multiple(), 4);  // VAE 2 (two blocks) × packing 2
  auto sd3 = Pipeline::open(test_data("pipeline/sd3"));
  EXPECT_EQ(sd3->defaults().num_inference_steps, 28);
  EXPECT_EQ(sd3->defaults().guidance_scale, 7.0);
  EXPECT_EQ(sd3->defaults().max_sequence_length, 256);
  auto pixart = Pipeline::open(test_data("pipeline/pixart_sigma"));
  EXPECT_EQ(pixart->defaults().num_inference_steps, 20);
  EXPECT_EQ(pixart->defaults().guidance_scale, 4.5);
  EXPECT_EQ(pixart->defaults().max_sequence_length, 300);

  GenerateRequest r;
  r.prompts = {"x"};
  r.height = pixart->size_multiple() * 3 + 1;
  try {
    pixart->resolve(r);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--height"), std::string::npos) << e.what();
  }
  r.height.reset();
  r.num_inference_steps = 0;
  EXPECT_THROW(pixart->resolve(r), Error);
  r.num_inference_steps = 2;
  r.latents = Tensor::zeros({1, 4, 3, 3});
  EXPECT_THROW(pixart->resolve(r), Error);
}

}  // namespace
}  // namespace paradit::pipelines
