// The LLM-conditioned pipelines against diffusers 0.42.1 on the tiny fixture pipelines
// (tests/data/pipeline/<case>): the recorded call from the recorded prompt embeddings (every
// step's latents, timesteps, final latents, decoded image) and from the prompt text (tokenizer +
// decoder LLM → embeddings → final latents).

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/ops.h"
#include "io/diffusers.h"
#include "io/safetensors.h"
#include "pipelines/helpers.h"
#include "pipelines/llm_families.h"
#include "pipelines/pipeline.h"

namespace paradit::pipelines {
namespace {

using namespace paradit::pipelines::testing;
using core::Tensor;

constexpr double kTol = 1e-4;

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

// FLUX.2 takes the packed latents: latents_in is the patchified (B, 4C, h, w).
Tensor pack_rows(const Tensor& x) {
  return x.contiguous().reshape({x.dim(0), x.dim(1), x.dim(2) * x.dim(3)}).permute({0, 2, 1});
}

GenerateRequest base_request(const Case& c) {
  GenerateRequest r;
  r.height = c.call["height"].get<int64_t>();
  r.width = c.call["width"].get<int64_t>();
  r.num_inference_steps = c.call["num_inference_steps"].get<int>();
  if (c.call.contains("guidance_scale")) r.guidance_scale = c.call["guidance_scale"].get<double>();
  if (c.call.contains("true_cfg_scale")) r.true_cfg_scale = c.call["true_cfg_scale"].get<double>();
  r.max_sequence_length = c.call["max_sequence_length"].get<int>();
  if (c.call.contains("num_frames")) r.num_frames = c.call["num_frames"].get<int64_t>();
  if (c.call.contains("negative_prompt")) {
    r.negative_prompt = c.call["negative_prompt"].get<std::string>();
  }
  const Tensor in = c.tensors.load("latents_in");
  r.latents = (c.name == "flux2" || c.name == "flux2_klein") ? pack_rows(in) : in;
  return r;
}

// Recorded embeddings by the names the pipelines take (Z-Image's lists as one-row batches).
NamedTensors recorded_embeddings(const Case& c) {
  NamedTensors e;
  std::vector<std::string> names = {"prompt_embeds", "negative_prompt_embeds"};
  if (c.name == "hunyuan_video_text") {  // its masks are encode_prompt outputs too
    names.insert(names.end(), {"pooled_prompt_embeds", "negative_pooled_prompt_embeds",
                               "prompt_attention_mask", "negative_prompt_attention_mask"});
  }
  for (const std::string& n : names) {
    if (c.tensors.has(n)) e[n] = c.tensors.load(n);
    if (c.tensors.has(n + ".0")) e[n] = c.tensors.load(n + ".0").unsqueeze(0);
  }
  return e;
}

// The final latents in the form diffusers returns for output_type "latent".
Tensor final_latents(const Pipeline& pipe, const Case& c, const GenerateResult& res) {
  if (c.name != "flux2_klein") return res.latents;
  return flux2_vae_space_latents(pipe, res.latents, c.call["height"].get<int64_t>(),
                                 c.call["width"].get<int64_t>());
}

void check_trajectory(const Pipeline& pipe, const Case& c, const GenerateResult& res,
                      const std::vector<Tensor>& steps) {
  const std::vector<float> ts = c.tensors.load("step_timesteps").to_vector();
  ASSERT_EQ(res.timesteps.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) EXPECT_NEAR(res.timesteps[i], ts[i], 1e-3) << i;
  ASSERT_EQ(steps.size(), ts.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_LE(rel_l2(steps[i], c.tensors.load("step_latents." + std::to_string(i))), kTol)
        << c.name << " step " << i;
  }
  const double err = rel_l2(final_latents(pipe, c, res), c.tensors.load("final_latents"));
  std::printf("%s final latents rel-L2 %.2e\n", c.name.c_str(), err);
  EXPECT_LE(err, kTol) << c.name;
}

void run_from_embeddings(const std::string& name) {
  const Case c = load_case(name);
  GenerateRequest r = base_request(c);
  r.prompt_embeds = recorded_embeddings(c);
  auto pipe = Pipeline::open(c.dir);
  std::vector<Tensor> steps;
  const GenerateResult res =
      pipe->generate(r, [&](const StepEvent& e) { steps.push_back(e.latents.clone()); });
  check_trajectory(*pipe, c, res, steps);
  ASSERT_TRUE(res.images.defined());
  if (pipe->is_video()) {
    // (B, 3, F, H, W) in [-1, 1] → (B, F, H, W, 3) clamped to [0, 1], as output_type "np"
    std::vector<float> v = res.images.permute({0, 2, 3, 4, 1}).to_vector();
    for (float& x : v) x = std::min(1.0f, std::max(0.0f, x / 2.0f + 0.5f));
    const Tensor in = res.images;
    const Tensor np =
        Tensor::from_vector(v, {in.dim(0), in.dim(2), in.dim(3), in.dim(4), in.dim(1)});
    const double err = max_abs(np, c.tensors.load("video"));
    std::printf("%s video max-abs %.2e\n", name.c_str(), err);
    EXPECT_LE(err, 1e-3) << name;
    return;
  }
  const Tensor image = c.tensors.load("image");  // (1, H, W, 3) in [0, 1]
  const double err = max_abs(to_np_image(res.images), image);
  std::printf("%s image max-abs %.2e\n", name.c_str(), err);
  EXPECT_LE(err, 1e-3) << name;
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
  for (const auto& [n, want] : recorded_embeddings(c)) {
    ASSERT_TRUE(res.embeddings.count(n)) << name << ": no " << n;
    const double err = rel_l2(res.embeddings.at(n), want);
    std::printf("%s %s rel-L2 %.2e\n", name.c_str(), n.c_str(), err);
    EXPECT_LE(err, kTol) << name << " " << n;
  }
  check_trajectory(*pipe, c, res, steps);
}

TEST(LLMPipelines, Flux2FromEmbeddings) { run_from_embeddings("flux2"); }
TEST(LLMPipelines, Flux2FromText) { run_from_text("flux2"); }
TEST(LLMPipelines, Flux2KleinFromEmbeddings) { run_from_embeddings("flux2_klein"); }
TEST(LLMPipelines, Flux2KleinFromText) { run_from_text("flux2_klein"); }
TEST(LLMPipelines, ZImageFromEmbeddings) { run_from_embeddings("z_image"); }
TEST(LLMPipelines, ZImageFromText) { run_from_text("z_image"); }
TEST(LLMPipelines, QwenImageFromEmbeddings) { run_from_embeddings("qwen_image"); }
TEST(LLMPipelines, QwenImageFromText) { run_from_text("qwen_image"); }
TEST(LLMPipelines, HunyuanVideoFromEmbeddings) { run_from_embeddings("hunyuan_video_text"); }
TEST(LLMPipelines, HunyuanVideoFromText) { run_from_text("hunyuan_video_text"); }

}  // namespace
}  // namespace paradit::pipelines
