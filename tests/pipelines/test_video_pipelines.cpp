// The video pipelines. WanPipeline against diffusers on the fixture pipeline
// (tests/data/pipeline/wan, copied from the shared fixtures): the recorded call from the recorded
// embeddings and initial latents (every step's latents, timesteps, final latents, decoded
// video), and from the prompt text (UMT5 embeddings with zeros past the tokens → final latents).
// HunyuanVideoPipeline (no diffusers fixture) against a plain reference loop written here from
// diffusers' __call__: the fixture transformer and VAE, flow-match sigmas with the shift done in
// double, true CFG as two separate forwards, Euler steps in plain loops. Request checks: the
// 4k+1 frame rule, sizes, --num_frames on an image pipeline, text without embeddings.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "core/random.h"
#include "io/diffusers.h"
#include "io/safetensors.h"
#include "models/transformer.h"
#include "models/vae/hunyuan_video.h"
#include "pipelines/pipeline.h"
#include "schedulers/scheduler.h"
#include "helpers.h"

namespace paradit::pipelines {
namespace {

using namespace paradit::pipelines::testing;
using core::Tensor;

struct WanCase {
  fs::path dir = test_data("pipeline/wan");
  io::Json call = io::read_json(dir / "case.json")["call"];
  io::TensorSource tensors = io::TensorSource::open(dir / "case.safetensors");

  GenerateRequest request() const {
    GenerateRequest r;
    r.height = call["height"].get<int64_t>();
    r.width = call["width"].get<int64_t>();
    r.num_frames = call["num_frames"].get<int64_t>();
    r.num_inference_steps = call["num_inference_steps"].get<int>();
    r.guidance_scale = call["guidance_scale"].get<double>();
    r.max_sequence_length = call["max_sequence_length"].get<int>();
    r.latents = tensors.load("latents_in");
    return r;
  }
};

// A decoded (B, 3, F, H, W) video in [-1, 1] → (B, F, H, W, 3) in [0, 1] as diffusers'
// postprocess_video(output_type="np"): (x / 2 + 0.5).clamp(0, 1), in double here.
Tensor to_np_video(const Tensor& video) {
  const int64_t B = video.dim(0), C = video.dim(1), F = video.dim(2), H = video.dim(3),
                W = video.dim(4);
  Tensor out = Tensor::empty({B, F, H, W, C});
  float* o = out.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t f = 0; f < F; ++f)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x)
          for (int64_t c = 0; c < C; ++c) {
            const double v = video.item_at({b, c, f, y, x}) / 2.0 + 0.5;
            o[(((b * F + f) * H + y) * W + x) * C + c] =
                static_cast<float>(std::min(1.0, std::max(0.0, v)));
          }
  return out;
}

void check_wan_trajectory(const WanCase& c, const GenerateResult& res,
                          const std::vector<Tensor>& steps) {
  const std::vector<float> ts = c.tensors.load("step_timesteps").to_vector();
  ASSERT_EQ(res.timesteps.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(res.timesteps[i], ts[i]) << i;
  ASSERT_EQ(steps.size(), ts.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    const double e = rel_l2(steps[i], c.tensors.load("step_latents." + std::to_string(i)));
    EXPECT_LE(e, 1e-4) << "step " << i;
    std::printf("  step %zu latents rel-L2 %.3g\n", i, e);
  }
  const double e = rel_l2(res.latents, c.tensors.load("final_latents"));
  EXPECT_LE(e, 1e-4);
  std::printf("  final latents rel-L2 %.3g, max abs %.3g\n", e,
              max_abs(res.latents, c.tensors.load("final_latents")));
}

TEST(WanPipelineFixture, FromEmbeddings) {
  const WanCase c;
  GenerateRequest r = c.request();
  r.prompt_embeds["prompt_embeds"] = c.tensors.load("prompt_embeds");
  r.prompt_embeds["negative_prompt_embeds"] = c.tensors.load("negative_prompt_embeds");
  auto pipe = Pipeline::open(c.dir);
  ASSERT_TRUE(pipe->is_video());
  std::vector<Tensor> steps;
  const GenerateResult res =
      pipe->generate(r, [&](const StepEvent& e) { steps.push_back(e.latents.clone()); });
  check_wan_trajectory(c, res, steps);
  ASSERT_TRUE(res.images.defined());
  EXPECT_EQ(res.images.shape(), (core::Shape{1, 3, 5, 32, 48}));
  const Tensor want = c.tensors.load("video");  // (1, F, H, W, 3) in [0, 1]
  const Tensor got = to_np_video(res.images);
  const double e = rel_l2(got, want), m = max_abs(got, want);
  std::printf("  video rel-L2 %.3g, max abs %.3g\n", e, m);
  EXPECT_LE(e, 1e-4);
  EXPECT_LE(m, 1e-3);
}

TEST(WanPipelineFixture, FromText) {
  const WanCase c;
  GenerateRequest r = c.request();
  r.prompts = {c.call["prompt"].get<std::string>()};
  r.negative_prompt = c.call["negative_prompt"].get<std::string>();
  r.decode = false;
  auto pipe = Pipeline::open(c.dir);
  std::vector<Tensor> steps;
  const GenerateResult res =
      pipe->generate(r, [&](const StepEvent& e) { steps.push_back(e.latents.clone()); });
  for (const char* n : {"prompt_embeds", "negative_prompt_embeds"}) {
    ASSERT_TRUE(res.embeddings.count(n)) << n;
    const Tensor got = res.embeddings.at(n), want = c.tensors.load(n);
    const double e = rel_l2(got, want);
    EXPECT_LE(e, 1e-4) << n;
    std::printf("  %s rel-L2 %.3g\n", n, e);
    // Zeros from the prompt's token count on (35 and 24 tokens).
    const int64_t tokens = std::string(n) == "prompt_embeds" ? 35 : 24;
    const Tensor tail = got.slice(1, tokens, got.dim(1)).contiguous();
    for (float v : tail.to_vector()) ASSERT_EQ(v, 0.0f) << n;
    const Tensor head = got.slice(1, tokens - 1, tokens).contiguous();
    double norm = 0;
    for (float v : head.to_vector()) norm += std::fabs(v);
    EXPECT_GT(norm, 0.0) << n << ": the last token's state is not zero";
  }
  check_wan_trajectory(c, res, steps);
  EXPECT_FALSE(res.images.defined());
}

// Guidance 1: no negative prompt and one conditional forward per step; against a loop of the
// fixture transformer and the UniPC scheduler run by hand.
TEST(WanPipelineFixture, GuidanceOffMatchesConditionalLoop) {
  const WanCase c;
  GenerateRequest r = c.request();
  r.guidance_scale = 1.0;
  r.prompt_embeds["prompt_embeds"] = c.tensors.load("prompt_embeds");
  r.decode = false;
  auto pipe = Pipeline::open(c.dir);
  const GenerateResult res = pipe->generate(r);
  EXPECT_EQ(res.embeddings.count("negative_prompt_embeds"), 0u);

  std::unique_ptr<models::Transformer> model = models::load_transformer(c.dir / "transformer");
  auto scheduler = schedulers::load_scheduler(c.dir / "scheduler" / "scheduler_config.json");
  scheduler->set_timesteps(*r.num_inference_steps);
  Tensor x = c.tensors.load("latents_in");
  for (size_t i = 0; i < scheduler->timesteps().size(); ++i) {
    NamedTensors in;
    in["hidden_states"] = x;
    in["encoder_hidden_states"] = c.tensors.load("prompt_embeds");
    in["timestep"] = Tensor::full({1}, static_cast<float>(scheduler->timesteps()[i]));
    const Tensor v = model->forward(in);
    if (i == 0) EXPECT_LE(rel_l2(v, c.tensors.load("noise_pred_cond.0")), 1e-4);
    x = scheduler->step(v, i, x);
  }
  EXPECT_LE(rel_l2(res.latents, x), 1e-5);
}

TEST(VideoPipelineRequests, WanDefaultsShapesAndFrameRule) {
  auto pipe = Pipeline::open(test_data("pipeline/wan"));
  EXPECT_EQ(pipe->class_name(), "WanPipeline");
  EXPECT_TRUE(pipe->is_video());
  EXPECT_EQ(pipe->defaults().num_frames, 81);
  EXPECT_EQ(pipe->defaults().height, 480);
  EXPECT_EQ(pipe->defaults().width, 832);
  EXPECT_EQ(pipe->defaults().num_inference_steps, 50);
  EXPECT_EQ(pipe->defaults().guidance_scale, 5.0);
  EXPECT_EQ(pipe->defaults().max_sequence_length, 512);
  EXPECT_EQ(pipe->temporal_factor(), 4);
  EXPECT_EQ(pipe->size_multiple(), 16);

  GenerateRequest r;
  r.prompts = {"x"};
  r.height = 32;
  r.width = 48;
  r.num_frames = 9;
  const GenerateRequest ok = pipe->resolve(r);
  EXPECT_EQ(pipe->initial_latent_shape(ok), (core::Shape{1, 16, 3, 4, 6}));

  auto expect_error = [&](const GenerateRequest& bad, const std::string& needle) {
    try {
      pipe->resolve(bad);
      ADD_FAILURE() << "expected an error naming " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  for (int64_t frames : {0, 2, 6, 80}) {
    GenerateRequest bad = r;
    bad.num_frames = frames;
    expect_error(bad, "--num_frames");
  }
  GenerateRequest bad = r;
  bad.height = 40;  // not a multiple of 16
  expect_error(bad, "--height");
  bad = r;
  bad.latents = Tensor::zeros({1, 16, 2, 4, 6});  // 5 frames' latents for a 9-frame request
  expect_error(bad, "--latents");

  auto image = Pipeline::open(shapes_model());
  EXPECT_FALSE(image->is_video());
  GenerateRequest img;
  img.prompts = {"x"};
  img.num_frames = 5;
  try {
    image->resolve(img);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--num_frames"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- Wan2.2 two experts

// A two-expert (Wan2.2 A14B layout) WanPipeline folder: the pipeline fixture's components, its
// transformer as the high-noise `transformer`, the transformer/wan fixture (the same config,
// other weights) as the low-noise `transformer_2`, and `boundary_ratio` in model_index.json.
class Wan22PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("paradit_wan22_pipe_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const fs::path from = test_data("pipeline/wan");
    for (const char* c : {"scheduler", "text_encoder", "tokenizer", "transformer", "vae"}) {
      fs::copy(from / c, dir_ / c, fs::copy_options::recursive);
    }
    fs::create_directories(dir_ / "transformer_2");
    for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors"}) {
      fs::copy_file(test_data("transformer/wan") / f, dir_ / "transformer_2" / f);
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // model_index.json of the fixture with `boundary_ratio` and transformer_2 as `transformer_2`.
  void write_index(const io::Json& boundary_ratio, const io::Json& transformer_2) const {
    io::Json index = io::read_json(test_data("pipeline/wan") / "model_index.json");
    index["boundary_ratio"] = boundary_ratio;
    index["transformer_2"] = transformer_2;
    std::ofstream(dir_ / "model_index.json") << index.dump(2);
  }

  fs::path dir_;
};

// diffusers' WanPipeline.__call__ by hand: boundary = ratio · num_train_timesteps; steps with
// t >= boundary run `high` with guidance g, the others `low` with g2; cond and uncond as two
// batch-1 forwards; noise_uncond + g · (noise_cond − noise_uncond) in f32; UniPC steps.
Tensor wan22_reference(const models::Transformer& high, const models::Transformer& low,
                       const fs::path& scheduler_config, int steps, double boundary, double g,
                       double g2, const Tensor& latents, const Tensor& cond_embeds,
                       const Tensor& uncond_embeds, int* low_steps) {
  auto scheduler = schedulers::load_scheduler(scheduler_config);
  scheduler->set_timesteps(steps);
  Tensor x = latents;
  *low_steps = 0;
  for (size_t i = 0; i < scheduler->timesteps().size(); ++i) {
    const double t = scheduler->timesteps()[i];
    const bool high_stage = t >= boundary;
    const models::Transformer& model = high_stage ? high : low;
    const float scale = static_cast<float>(high_stage ? g : g2);
    *low_steps += high_stage ? 0 : 1;
    auto forward = [&](const Tensor& embeds) {
      NamedTensors in;
      in["hidden_states"] = x;
      in["encoder_hidden_states"] = embeds;
      in["timestep"] = Tensor::full({1}, static_cast<float>(t));
      return model.forward(in).to_vector();
    };
    const std::vector<float> cond = forward(cond_embeds), uncond = forward(uncond_embeds);
    std::vector<float> v(cond.size());
    for (size_t k = 0; k < v.size(); ++k) v[k] = uncond[k] + scale * (cond[k] - uncond[k]);
    x = scheduler->step(Tensor::from_vector(v, x.shape()), i, x);
  }
  return x;
}

TEST_F(Wan22PipelineTest, TwoExpertsMatchReferenceLoop) {
  const WanCase c;
  const int steps = 4;
  const fs::path scheduler_config = dir_ / "scheduler" / "scheduler_config.json";
  // A boundary between the 2nd and 3rd timesteps: two steps per expert.
  auto scheduler = schedulers::load_scheduler(scheduler_config);
  scheduler->set_timesteps(steps);
  const std::vector<double> ts = scheduler->timesteps();
  ASSERT_EQ(ts.size(), static_cast<size_t>(steps));
  const double ratio = (ts[1] + ts[2]) / 2 / 1000;  // num_train_timesteps 1000
  write_index(ratio, io::Json::array({"diffusers", "WanTransformer3DModel"}));

  GenerateRequest r = c.request();
  r.num_inference_steps = steps;
  r.guidance_scale = 5.0;
  r.guidance_scale_2 = 3.0;
  r.prompt_embeds["prompt_embeds"] = c.tensors.load("prompt_embeds");
  r.prompt_embeds["negative_prompt_embeds"] = c.tensors.load("negative_prompt_embeds");
  r.decode = false;
  auto pipe = Pipeline::open(dir_);
  const GenerateResult res = pipe->generate(r);

  const auto high = models::load_transformer(dir_ / "transformer");
  const auto low = models::load_transformer(dir_ / "transformer_2");
  int low_steps = 0;
  auto reference = [&](const models::Transformer& low_model, double g2) {
    return wan22_reference(*high, low_model, scheduler_config, steps, ratio * 1000, 5.0, g2,
                           c.tensors.load("latents_in"), c.tensors.load("prompt_embeds"),
                           c.tensors.load("negative_prompt_embeds"), &low_steps);
  };
  const Tensor want = reference(*low, 3.0);
  EXPECT_EQ(low_steps, 2);
  const double e = rel_l2(res.latents, want);
  std::printf("  two experts (g 5, g2 3) vs reference loop: rel-L2 %.3g, max abs %.3g\n", e,
              max_abs(res.latents, want));
  EXPECT_LE(e, 1e-5);
  // The expert and its guidance matter: one expert, or g2 = g, lands elsewhere.
  EXPECT_GT(rel_l2(res.latents, reference(*high, 3.0)), 1e-3);
  EXPECT_GT(rel_l2(res.latents, reference(*low, 5.0)), 1e-3);

  // guidance_scale_2 unset = guidance_scale; keep-loaded mode keeps transformer_2 between calls.
  r.guidance_scale_2.reset();
  pipe->set_keep_loaded(true);
  const Tensor want_default = reference(*low, 5.0);
  for (int call = 0; call < 2; ++call) {
    const double e2 = rel_l2(pipe->generate(r).latents, want_default);
    std::printf("  keep-loaded call %d, g2 = g: rel-L2 %.3g\n", call, e2);
    EXPECT_LE(e2, 1e-5);
  }
}

TEST_F(Wan22PipelineTest, MissingTransformer2AndStrayGuidance2AreOneLineErrors) {
  auto expect_open_error = [&](const std::string& needle) {
    try {
      Pipeline::open(dir_);
      ADD_FAILURE() << "expected an error naming " << needle;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(needle), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  };
  // Listed in model_index.json, folder absent.
  write_index(0.5, io::Json::array({"diffusers", "WanTransformer3DModel"}));
  fs::remove_all(dir_ / "transformer_2");
  expect_open_error("transformer_2");
  // boundary_ratio without transformer_2 in model_index.json.
  write_index(0.5, io::Json::array({nullptr, nullptr}));
  expect_open_error("transformer_2");

  // guidance_scale_2 on a one-transformer WanPipeline: diffusers' check_inputs refuses it.
  auto pipe = Pipeline::open(test_data("pipeline/wan"));
  GenerateRequest r = WanCase().request();
  r.prompt_embeds["prompt_embeds"] = WanCase().tensors.load("prompt_embeds");
  r.guidance_scale_2 = 2.0;
  try {
    pipe->resolve(r);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--guidance_scale_2"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- HunyuanVideo

// The HunyuanVideoPipeline folder of make_hunyuan_video_pipeline (helpers.h).
class HunyuanVideoPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("paradit_hunyuan_pipe_" + std::to_string(getpid()));
    make_hunyuan_video_pipeline(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Embeddings (B = 1, 12 text tokens, the last `pad` masked) drawn from `stream`.
  static void add_embeddings(NamedTensors* e, const std::string& prefix, uint64_t stream,
                             int64_t pad) {
    (*e)[prefix + "prompt_embeds"] = core::randn({1, 12, 32}, 77, stream);
    (*e)[prefix + "pooled_prompt_embeds"] = core::randn({1, 24}, 78, stream);
    std::vector<int64_t> mask(12, 1);
    for (int64_t i = 12 - pad; i < 12; ++i) mask[static_cast<size_t>(i)] = 0;
    (*e)[prefix + "prompt_attention_mask"] = Tensor::from_vector_i64(mask, {1, 12});
  }

  fs::path dir_;
};

TEST_F(HunyuanVideoPipelineTest, TrueCfgMatchesReferenceLoop) {
  auto pipe = Pipeline::open(dir_);
  ASSERT_TRUE(pipe->is_video());
  EXPECT_EQ(pipe->defaults().num_frames, 129);
  EXPECT_EQ(pipe->defaults().guidance_scale, 6.0);

  GenerateRequest r;
  add_embeddings(&r.prompt_embeds, "", 1, 4);
  add_embeddings(&r.prompt_embeds, "negative_", 2, 7);
  r.height = 32;
  r.width = 32;
  r.num_frames = 5;
  r.num_inference_steps = 3;
  r.guidance_scale = 6.0;
  r.true_cfg_scale = 2.5;
  r.seed = 5;
  const GenerateResult res = pipe->generate(r);
  ASSERT_EQ(res.latents.shape(), (core::Shape{1, 16, 2, 4, 4}));

  // The reference: diffusers' __call__ step by step.
  const int n = 3;
  const double shift = 7.0;
  std::vector<double> sigmas;
  for (int i = 0; i <= n; ++i) {
    const double s = 1.0 - static_cast<double>(i) / n;  // linspace(1, 0, n + 1)
    sigmas.push_back(i == n ? 0.0 : shift * s / (1 + (shift - 1) * s));
  }
  ASSERT_EQ(res.timesteps.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) EXPECT_NEAR(res.timesteps[i], sigmas[i] * 1000, 1e-3) << i;

  std::unique_ptr<models::Transformer> model = models::load_transformer(dir_ / "transformer");
  auto inputs = [&](const std::string& prefix, const Tensor& x, double t) {
    NamedTensors in;
    in["hidden_states"] = x;
    in["timestep"] = Tensor::full({1}, static_cast<float>(t));
    in["encoder_hidden_states"] = r.prompt_embeds.at(prefix + "prompt_embeds");
    in["encoder_attention_mask"] =
        r.prompt_embeds.at(prefix + "prompt_attention_mask").to(core::DType::F32);
    in["pooled_projections"] = r.prompt_embeds.at(prefix + "pooled_prompt_embeds");
    in["guidance"] = Tensor::full({1}, 6000.0f);
    return in;
  };
  std::vector<float> x = res.initial_latents.to_vector();
  ASSERT_EQ(res.initial_latents.shape(), res.latents.shape());
  for (int i = 0; i < n; ++i) {
    const Tensor xt = Tensor::from_vector(x, res.latents.shape());
    const std::vector<float> cond = model->forward(inputs("", xt, res.timesteps[i])).to_vector();
    const std::vector<float> uncond =
        model->forward(inputs("negative_", xt, res.timesteps[i])).to_vector();
    for (size_t k = 0; k < x.size(); ++k) {
      const double v = uncond[k] + 2.5 * (static_cast<double>(cond[k]) - uncond[k]);
      x[k] = static_cast<float>(x[k] + (sigmas[i + 1] - sigmas[i]) * v);
    }
  }
  const Tensor want = Tensor::from_vector(x, res.latents.shape());
  const double e = rel_l2(res.latents, want);
  std::printf("  HunyuanVideo latents vs reference loop rel-L2 %.3g\n", e);
  EXPECT_LE(e, 1e-4);

  // Decode: latents / scaling_factor through the VAE (no clamp).
  const auto vae = models::vae::load_autoencoder_kl_hunyuan_video(dir_ / "vae");
  std::vector<float> z = res.latents.to_vector();
  for (float& v : z) v = static_cast<float>(v / vae->scaling_factor());
  const Tensor video = vae->decode(Tensor::from_vector(z, res.latents.shape()));
  ASSERT_TRUE(res.images.defined());
  EXPECT_EQ(res.images.shape(), (core::Shape{1, 3, 5, 32, 32}));
  EXPECT_LE(rel_l2(res.images, video), 1e-4);
}

TEST_F(HunyuanVideoPipelineTest, GuidanceEmbeddingOnlyWithoutTrueCfg) {
  auto pipe = Pipeline::open(dir_);
  GenerateRequest r;
  add_embeddings(&r.prompt_embeds, "", 3, 2);
  add_embeddings(&r.prompt_embeds, "negative_", 4, 0);  // ignored: true_cfg_scale unset
  r.height = 16;
  r.width = 32;
  r.num_frames = 1;
  r.num_inference_steps = 1;
  r.guidance_scale = 3.0;
  r.decode = false;
  const GenerateResult res = pipe->generate(r);
  EXPECT_EQ(res.embeddings.count("negative_prompt_embeds"), 0u);
  std::unique_ptr<models::Transformer> model = models::load_transformer(dir_ / "transformer");
  NamedTensors in;
  in["hidden_states"] = res.initial_latents;
  in["timestep"] = Tensor::full({1}, 1000.0f);
  in["encoder_hidden_states"] = r.prompt_embeds.at("prompt_embeds");
  in["encoder_attention_mask"] = r.prompt_embeds.at("prompt_attention_mask").to(core::DType::F32);
  in["pooled_projections"] = r.prompt_embeds.at("pooled_prompt_embeds");
  in["guidance"] = Tensor::full({1}, 3000.0f);
  const std::vector<float> v = model->forward(in).to_vector();
  std::vector<float> x = res.initial_latents.to_vector();
  for (size_t k = 0; k < x.size(); ++k) x[k] = x[k] - v[k];  // sigma 1 → 0
  EXPECT_LE(rel_l2(res.latents, Tensor::from_vector(x, res.latents.shape())), 1e-5);
}

TEST_F(HunyuanVideoPipelineTest, TextWithoutEmbeddingsIsRefused) {
  auto pipe = Pipeline::open(dir_);
  GenerateRequest r;
  r.prompts = {"a cat"};
  try {
    pipe->resolve(r);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--prompt_embeds"), std::string::npos) << e.what();
  }
  GenerateRequest n;
  add_embeddings(&n.prompt_embeds, "", 1, 0);
  n.negative_prompt = "blurry";
  n.true_cfg_scale = 4.0;
  try {
    pipe->resolve(n);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--negative_prompt"), std::string::npos) << e.what();
  }
  n.negative_prompt.reset();
  n.true_cfg_scale.reset();
  n.num_frames = 4;
  EXPECT_THROW(pipe->resolve(n), Error);
}

}  // namespace
}  // namespace paradit::pipelines
