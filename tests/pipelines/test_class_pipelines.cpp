// DiTPipeline and PixArtAlphaPipeline, which have no recorded pipeline fixture: folders are
// assembled from the component fixtures (transformer, VAE, scheduler, text encoder). DiT is
// checked against a literal transcription of diffusers' DiTPipeline.__call__ written here on the
// components (batch [cond, null], CFG on the eps half, stepping the doubled batch); PixArt-α runs
// with its resolution / aspect-ratio micro-conditions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <string>

#include "core/ops.h"
#include "core/random.h"
#include "io/diffusers.h"
#include "models/transformer.h"
#include "models/vae/autoencoder_kl.h"
#include "pipelines/pipeline.h"
#include "schedulers/scheduler.h"
#include "helpers.h"

namespace paradit::pipelines {
namespace {

using namespace paradit::pipelines::testing;
using core::Tensor;

class AssembledPipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("paradit_pipe_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void add(const std::string& component, const fs::path& from,
           const std::vector<std::string>& files) {
    fs::create_directories(dir_ / component);
    for (const auto& f : files) fs::copy_file(from / f, dir_ / component / f);
  }
  void write_index(const std::string& json) { std::ofstream(dir_ / "model_index.json") << json; }

  fs::path dir_;
};

// diffusers' DiTPipeline.__call__, transcribed step by step on the components.
Tensor dit_reference(const fs::path& dir, const Tensor& latents, int64_t label, int steps,
                     double g) {
  auto model = models::load_transformer(dir / "transformer");
  auto scheduler = schedulers::load_scheduler(dir / "scheduler" / "scheduler_config.json");
  const int64_t C = 4;
  Tensor lmi = core::concat({latents, latents}, 0);  // latent_model_input (2, C, h, w)
  const Tensor labels = Tensor::from_vector_i64({label, 1000}, {2});
  scheduler->set_timesteps(steps);
  for (int i = 0; i < steps; ++i) {
    const Tensor half = lmi.slice(0, 0, 1);
    lmi = core::concat({half, half}, 0);
    const float t = static_cast<float>(scheduler->timesteps()[static_cast<size_t>(i)]);
    const Tensor noise_pred = model->forward({{"hidden_states", lmi},
                                              {"timestep", Tensor::full({2}, t)},
                                              {"class_labels", labels}});  // (2, 8, h, w)
    // eps, rest = noise_pred[:, :C], noise_pred[:, C:]; cond_eps, uncond_eps = split(eps)
    const std::vector<float> np = noise_pred.to_vector();
    const int64_t plane = noise_pred.dim(2) * noise_pred.dim(3), per = noise_pred.dim(1) * plane;
    std::vector<float> out(np);
    for (int64_t k = 0; k < C * plane; ++k) {
      const float cond = np[static_cast<size_t>(k)], uncond = np[static_cast<size_t>(per + k)];
      const float half_eps = uncond + static_cast<float>(g) * (cond - uncond);
      out[static_cast<size_t>(k)] = half_eps;
      out[static_cast<size_t>(per + k)] = half_eps;
    }
    const Tensor guided = Tensor::from_vector(out, noise_pred.shape());
    const Tensor model_output = guided.slice(1, 0, C).contiguous();  // out_channels // 2 == C
    lmi = scheduler->step(model_output, static_cast<size_t>(i), lmi);
  }
  return lmi.slice(0, 0, 1).contiguous();
}

TEST_F(AssembledPipeline, DiTMatchesTheDiffusersLoop) {
  add("transformer", test_data("transformer/dit"),
      {"config.json", "diffusion_pytorch_model.safetensors"});
  add("vae", test_data("vae/sd"), {"config.json", "diffusion_pytorch_model.safetensors"});
  add("scheduler", test_data("scheduler/dit_ddim"), {"scheduler_config.json"});
  write_index(R"({"_class_name": "DiTPipeline", "_diffusers_version": "0.40.0.dev0",
    "transformer": ["diffusers", "DiTTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
    "scheduler": ["diffusers", "DDIMScheduler"],
    "id2label": {"3": "tiger shark, Galeocerdo cuvieri", "207": "golden retriever"}})");
  auto pipe = Pipeline::open(dir_);
  EXPECT_EQ(pipe->class_name(), "DiTPipeline");
  EXPECT_EQ(pipe->defaults().num_inference_steps, 50);
  EXPECT_EQ(pipe->defaults().height, 16);  // sample_size 8 × VAE 2

  GenerateRequest r;
  r.prompts = {"Galeocerdo cuvieri"};  // a label of id2label → class 3
  r.num_inference_steps = 4;
  r.latents = core::randn({1, 4, 8, 8}, 11);
  const GenerateResult res = pipe->generate(r);
  EXPECT_EQ(res.embeddings.at("class_labels").to_vector(), std::vector<float>{3});
  const Tensor want = dit_reference(dir_, r.latents, 3, 4, 4.0);
  EXPECT_LE(rel_l2(res.latents, want), 1e-5);

  // The decode: 1 / scaling_factor · latents through the VAE.
  auto vae = models::vae::load_autoencoder_kl(dir_ / "vae");
  const Tensor image = vae->decode(core::scale(want, static_cast<float>(1 / 0.18215)));
  EXPECT_LE(max_abs(res.images, image), 1e-4);

  GenerateRequest bad;
  bad.prompts = {"not a label"};
  EXPECT_THROW(pipe->resolve(bad), Error);
  bad.prompts = {"1000"};
  EXPECT_THROW(pipe->resolve(bad), Error);
}

TEST_F(AssembledPipeline, DiTWithDdpmIsSeededAndReproducible) {
  add("transformer", test_data("transformer/dit"),
      {"config.json", "diffusion_pytorch_model.safetensors"});
  add("vae", test_data("vae/sd"), {"config.json", "diffusion_pytorch_model.safetensors"});
  add("scheduler", test_data("scheduler/dit_ddpm"), {"scheduler_config.json"});
  write_index(R"({"_class_name": "DiTPipeline", "transformer": ["diffusers", "DiTTransformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "DDPMScheduler"]})");
  auto pipe = Pipeline::open(dir_);
  GenerateRequest r;
  r.prompts = {"207", "3"};
  r.num_inference_steps = 3;
  r.decode = false;
  r.seed = 5;
  const Tensor a = pipe->generate(r).latents;
  const Tensor b = pipe->generate(r).latents;
  EXPECT_EQ(a.shape(), (core::Shape{2, 4, 8, 8}));
  EXPECT_EQ(max_abs(a, b), 0.0);
  r.seed = 6;
  EXPECT_GT(max_abs(a, pipe->generate(r).latents), 1e-3);
}

TEST_F(AssembledPipeline, PixArtAlphaWithMicroConditions) {
  add("transformer", test_data("transformer/pixart_alpha"),
      {"config.json", "diffusion_pytorch_model.safetensors"});
  add("vae", test_data("vae/sd"), {"config.json", "diffusion_pytorch_model.safetensors"});
  add("scheduler", test_data("scheduler/pixart_sigma_dpm"), {"scheduler_config.json"});
  add("text_encoder", test_data("text_encoder/t5"), {"config.json", "model.safetensors"});
  add("tokenizer", test_data("tokenizer/t5"),
      {"spiece.model", "tokenizer_config.json", "special_tokens_map.json"});
  write_index(R"({"_class_name": "PixArtAlphaPipeline",
    "transformer": ["diffusers", "PixArtTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
    "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
    "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"]})");
  auto pipe = Pipeline::open(dir_);
  EXPECT_EQ(pipe->defaults().max_sequence_length, 120);
  GenerateRequest r;
  r.prompts = {"A Photo of a CAT  "};
  r.num_inference_steps = 2;
  r.height = 16;
  r.width = 24;
  const GenerateResult res = pipe->generate(r);
  EXPECT_EQ(res.embeddings.at("prompt_embeds").shape(), (core::Shape{1, 120, 32}));
  EXPECT_EQ(res.embeddings.at("negative_prompt_attention_mask").to_vector()[0], 1.0f);
  EXPECT_EQ(res.embeddings.at("negative_prompt_attention_mask").to_vector()[1], 0.0f);
  EXPECT_EQ(res.images.shape(), (core::Shape{1, 3, 16, 24}));
  for (float v : res.latents.to_vector()) ASSERT_TRUE(std::isfinite(v));
  // The caption is lower-cased and stripped first (clean_caption=False), so these agree.
  GenerateRequest lower = r;
  lower.prompts = {"a photo of a cat"};
  EXPECT_EQ(max_abs(pipe->generate(lower).latents, res.latents), 0.0);
}

TEST_F(AssembledPipeline, FluxSchnellWithoutGuidanceEmbedding) {
  add("transformer", test_data("transformer/flux_schnell"),
      {"config.json", "diffusion_pytorch_model.safetensors"});
  add("vae", test_data("vae/flux"), {"config.json", "diffusion_pytorch_model.safetensors"});
  add("scheduler", test_data("scheduler/flux_schnell_flow_match"), {"scheduler_config.json"});
  write_index(R"({"_class_name": "FluxPipeline",
    "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]})");
  auto pipe = Pipeline::open(dir_);
  GenerateRequest r;
  r.prompt_embeds["prompt_embeds"] = core::randn({2, 7, 32}, 1);
  r.prompt_embeds["pooled_prompt_embeds"] = core::randn({2, 24}, 2);
  r.height = 16;
  r.width = 24;
  r.num_inference_steps = 2;
  const GenerateResult res = pipe->generate(r);
  // vae/flux has two blocks (scale 2): 8×12 latents → 4×6 packed tokens of 16·4 values.
  EXPECT_EQ(res.latents.shape(), (core::Shape{2, 24, 64}));
  EXPECT_EQ(res.images.shape(), (core::Shape{2, 3, 16, 24}));
  // schnell: sigmas linspace(1, 1/2, 2) unshifted (shift 1, no dynamic shifting).
  ASSERT_EQ(res.timesteps.size(), 2u);
  EXPECT_NEAR(res.timesteps[0], 1000.0, 1e-3);
  EXPECT_NEAR(res.timesteps[1], 500.0, 1e-3);
  for (float v : res.images.to_vector()) ASSERT_TRUE(std::isfinite(v));
}

// StableDiffusion3Pipeline without T5 (text_encoder_3 null): the T5 part is zeros of the
// transformer's joint_attention_dim, the CLIP part as with T5.
TEST_F(AssembledPipeline, SD3WithoutT5UsesZeros) {
  const fs::path sd3 = test_data("pipeline/sd3");
  for (const char* c : {"transformer", "vae", "scheduler", "text_encoder", "text_encoder_2",
                        "tokenizer", "tokenizer_2"}) {
    fs::copy(sd3 / c, dir_ / c, fs::copy_options::recursive);
  }
  io::Json index = io::read_json(sd3 / "model_index.json");
  index["text_encoder_3"] = {nullptr, nullptr};
  index["tokenizer_3"] = {nullptr, nullptr};
  write_index(index.dump());
  auto pipe = Pipeline::open(dir_);
  const io::Json call = io::read_json(sd3 / "case.json")["call"];
  GenerateRequest r;
  r.prompts = {call["prompt"].get<std::string>()};
  r.negative_prompt = call["negative_prompt"].get<std::string>();
  r.max_sequence_length = 20;
  const NamedTensors e = pipe->encode_prompt(pipe->resolve(r));
  const io::TensorSource want = io::TensorSource::open(sd3 / "case.safetensors");
  for (const char* name : {"prompt_embeds", "negative_prompt_embeds"}) {
    const Tensor got = e.at(name);
    ASSERT_EQ(got.shape(), (core::Shape{1, 77 + 20, 96})) << name;
    EXPECT_LE(rel_l2(got.slice(1, 0, 77).contiguous(),
                     want.load(name).slice(1, 0, 77).contiguous()),
              1e-4)
        << name;
    for (float v : got.slice(1, 77, 97).contiguous().to_vector()) ASSERT_EQ(v, 0.0f) << name;
  }
  EXPECT_LE(rel_l2(e.at("pooled_prompt_embeds"), want.load("pooled_prompt_embeds")), 1e-4);
}

}  // namespace
}  // namespace paradit::pipelines
