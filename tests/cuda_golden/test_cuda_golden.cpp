// Every golden fixture of tests/data on CUDA, against the same diffusers/transformers references
// the CPU tests use: the 13 transformer fixtures through one forward, the 4 VAE fixtures (decode
// and encode), the 8 text-encoder fixtures (every hidden state), and the 9 pipeline fixtures
// through generate from the prompt text (embeddings, every step's latents, final latents and the
// decoded image or video); plus `paradit forward` and `paradit generate --device cuda` as
// processes. Error: ‖got − want‖₂ / ‖want‖₂ in double.
//
// Tolerances: F32 1e-4 (the CPU golden bound: CUDA F32 runs full-f32 GEMMs, FMA convolutions and
// f32 attention, so it must match as closely); BF16 2e-2 (activations and weights rounded to
// 8 bits of mantissa at every op; the CPU's BF16-weight tests already allow 1e-2 for a forward
// with F32 activations), except the decoder-LLM text encoders, 6e-2 (their CPU BF16-weight test's
// bound, 3e-2, is already reached on the CPU with BF16 weights alone by the deeper fixtures:
// mistral3's hidden states 30-31 at 3.1e-2; BF16 activations add about as much again, hence
// 6e-2 for them and for the pipeline embeddings they produce). Every error is printed, so a
// run shows its margins.
//
// Without a GPU every test skips with the reason. PARADIT_GOLDEN_ON_CPU=1 runs the same harness
// on the CPU (F32, and BF16 weights) instead: a check of the harness itself on a machine
// without a GPU (the CPU golden tests are the CPU's real tests).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/ops.h"
#include "io/diffusers.h"
#include "io/safetensors.h"
#include "models/clip/encoder.h"
#include "models/forward_arguments.h"
#include "models/llm/decoder_lm.h"
#include "models/t5/encoder.h"
#include "models/transformer.h"
#include "models/vae/autoencoder_kl.h"
#include "models/vae/hunyuan_video.h"
#include "models/vae/wan.h"
#include "pipelines/llm_families.h"
#include "pipelines/pipeline.h"
#include "support/cli_process.h"
#include "support/transformer_fixtures.h"

#ifdef PARADIT_WITH_CUDA
#include "backend/cuda/runtime.h"
#endif

namespace paradit {
namespace {

namespace fs = std::filesystem;
using core::Device;
using core::DType;
using core::Placement;
using core::Tensor;

const fs::path kData = PARADIT_TEST_DATA;
const fs::path kScratch = fs::path(PARADIT_TEST_BINARY_DIR) / "cuda_golden";

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

bool gpu_visible() {
#ifdef PARADIT_WITH_CUDA
  return backend::cuda::available();
#else
  return false;
#endif
}

bool on_cpu_check() { return !gpu_visible() && env_flag("PARADIT_GOLDEN_ON_CPU"); }

// Why the CUDA runs cannot happen here; empty when they can.
std::string skip_reason() {
  if (gpu_visible() || on_cpu_check()) return {};
#ifdef PARADIT_WITH_CUDA
  return "no CUDA device visible (backend::cuda::device_count() = 0)";
#else
  return "this build has no CUDA backend (configured with PARADIT_WITH_CUDA=OFF)";
#endif
}

#define SKIP_WITHOUT_GPU()                                                                       \
  do {                                                                                           \
    const std::string why_ = skip_reason();                                                      \
    if (!why_.empty()) {                                                                         \
      if (env_flag("PARADIT_REQUIRE_GPU")) FAIL() << "PARADIT_REQUIRE_GPU is set, but " << why_; \
      GTEST_SKIP() << why_;                                                                      \
    }                                                                                            \
  } while (0)

struct Target {
  Placement place;
  std::string name;
  double tol;  // relative L2 against the reference
  core::AttentionBackend attention = core::AttentionBackend::kAuto;
};

double bf16_tol(double base = 2e-2) { return base; }
// Decoder-LLM text encoders (and the pipeline embeddings they make) in BF16: see the top.
constexpr double kLlmBf16Tol = 6e-2;

// The placements every fixture runs on.
std::vector<Target> targets(double bf16 = bf16_tol()) {
  if (on_cpu_check()) {
    return {{{Device::CPU, DType::F32}, "CPU F32 (harness check)", 1e-4},
            {{Device::CPU, DType::BF16}, "CPU BF16 weights (harness check)", bf16}};
  }
  return {{{Device::CUDA, DType::F32}, "CUDA F32", 1e-4},
          {{Device::CUDA, DType::BF16}, "CUDA BF16", bf16}};
}

// Sets the process's default attention backend for a scope.
struct AttentionBackendScope {
  explicit AttentionBackendScope(core::AttentionBackend b) {
    core::set_default_attention_backend(b);
  }
  ~AttentionBackendScope() { core::set_default_attention_backend(core::AttentionBackend::kAuto); }
};

// ‖a − b‖₂ / ‖b‖₂ in double (a on any device, any float dtype); also the largest |a − b|.
double rel_l2(const Tensor& a, const Tensor& b, double* max_abs = nullptr) {
  EXPECT_EQ(a.shape(), b.shape()) << a.str() << " vs " << b.str();
  if (a.shape() != b.shape()) return INFINITY;
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 0, m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(x[i]) - y[i];
    if (std::isnan(d)) return NAN;
    num += d * d;
    den += static_cast<double>(y[i]) * y[i];
    m = std::max(m, std::fabs(d));
  }
  if (max_abs != nullptr) *max_abs = m;
  return std::sqrt(num / std::max(den, 1e-300));
}

// Compares, prints one line, and records a failure naming everything.
void check(const std::string& what, const Target& t, const Tensor& got, const Tensor& want,
           double tol) {
  double m = 0;
  const double e = rel_l2(got, want, &m);
  std::printf("  %-58s %-30s rel-L2 %.2e  max-abs %.2e  (tol %.0e)%s\n", what.c_str(),
              t.name.c_str(), e, m, tol, e <= tol ? "" : "  FAIL");
  std::fflush(stdout);
  EXPECT_LE(e, tol) << what << " on " << t.name;  // NaN fails too
}

// ---------------------------------------------------------------- transformers through forward

const std::vector<std::string> kTransformers = {
    "dit",        "flux", "flux2", "flux_schnell", "hunyuan_video", "pixart_alpha", "pixart_sigma",
    "qwen_image", "sd3",  "sd35",  "wan",          "wan22_ti2v",    "z_image"};

// The forward's inputs as `paradit forward` reads them: the tensors of inputs.safetensors (float
// ones as F32), and the non-tensor arguments meta.json records (nontensor_args) as the JSON
// metadata the command takes.
models::NamedTensors forward_inputs(const fs::path& dir) {
  models::NamedTensors inputs;
  const io::TensorSource src = io::TensorSource::open(dir / "inputs.safetensors");
  for (const std::string& name : src.names()) {
    Tensor t = src.view(name).clone();  // its own dtype (class_labels stay I64)
    if (core::is_floating(t.dtype()) && t.dtype() != DType::F32) t = t.to(DType::F32);
    inputs[name] = t;
  }
  if (fs::exists(dir / "meta.json")) {
    const io::Json meta = io::read_json(dir / "meta.json");
    if (meta.contains("nontensor_args")) {
      std::map<std::string, std::string> metadata;
      for (const auto& [k, v] : meta["nontensor_args"].items()) metadata[k] = v.dump();
      for (auto& [k, v] : models::metadata_arguments(metadata, (dir / "meta.json").string())) {
        inputs.emplace(k, v);
      }
    }
  }
  return inputs;
}

class CudaForward : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaForward, MatchesDiffusers) {
  SKIP_WITHOUT_GPU();
  const fs::path dir = kData / "transformer" / GetParam();
  const models::NamedTensors inputs = forward_inputs(dir);
  const io::TensorSource ref = io::TensorSource::open(dir / "outputs.safetensors");
  std::vector<Target> ts = targets();
  // bf16 again with paradit's own attention kernels (the default is cuDNN where it applies).
  if (!on_cpu_check()) {
    ts.push_back({{Device::CUDA, DType::BF16},
                  "CUDA BF16, paradit attention",
                  bf16_tol(),
                  core::AttentionBackend::kParadit});
  }
  for (const Target& t : ts) {
    SCOPED_TRACE(t.name);
    const AttentionBackendScope scope(t.attention);
    const auto model = models::load_transformer(dir, t.place);
    const Tensor sample = model->forward(models::batched_arguments(*model, inputs));
    if (models::has_list_arguments(inputs)) {
      for (const auto& [name, out] : models::list_outputs(sample)) {
        check(GetParam() + " forward " + name, t, out, ref.load(name), t.tol);
      }
    } else {
      check(GetParam() + " forward sample", t, sample, ref.load("sample"), t.tol);
    }
  }
}

std::string param_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaForward, ::testing::ValuesIn(kTransformers), param_name);

// ---------------------------------------------------------------- VAEs

class CudaVae : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaVae, DecodeAndEncodeMatchDiffusers) {
  SKIP_WITHOUT_GPU();
  const std::string name = GetParam();
  const fs::path dir = kData / "vae" / name;
  for (const Target& t : targets()) {
    SCOPED_TRACE(t.name);
    // The decoded video or image, and the encoder's distribution, for one fixture file.
    std::function<Tensor(const Tensor&)> decode;
    std::function<std::pair<Tensor, Tensor>(const Tensor&)> encode;
    std::shared_ptr<void> keep;
    if (name == "wan") {
      auto vae = std::shared_ptr<models::vae::AutoencoderKLWan>(
          models::vae::load_autoencoder_kl_wan(dir, t.place));
      keep = vae;
      decode = [vae](const Tensor& z) { return vae->decode(z); };
      encode = [vae](const Tensor& x) {
        const auto d = vae->encode(x);
        return std::make_pair(d.mean, d.std);
      };
    } else if (name == "hunyuan_video") {
      auto vae = std::shared_ptr<models::vae::AutoencoderKLHunyuanVideo>(
          models::vae::load_autoencoder_kl_hunyuan_video(dir, t.place));
      keep = vae;
      decode = [vae](const Tensor& z) { return vae->decode(z); };
      encode = [vae](const Tensor& x) {
        const auto d = vae->encode(x);
        return std::make_pair(d.mean, d.std);
      };
    } else {
      auto vae = std::shared_ptr<models::vae::AutoencoderKL>(
          models::vae::load_autoencoder_kl(dir, t.place));
      keep = vae;
      decode = [vae](const Tensor& z) { return vae->decode(z); };
      encode = [vae](const Tensor& x) {
        const auto d = vae->encode(x);
        return std::make_pair(d.mean, d.std);
      };
    }
    std::vector<std::string> files = {"inputs.safetensors"};
    if (fs::exists(dir / "extended.safetensors")) files.push_back("extended.safetensors");
    for (const std::string& file : files) {
      const bool extended = file == "extended.safetensors";
      const io::TensorSource in = io::TensorSource::open(dir / file);
      const io::TensorSource out =
          io::TensorSource::open(dir / (extended ? "extended.safetensors" : "outputs.safetensors"));
      const std::string tag = name + (extended ? " (extended)" : "");
      check(tag + " decode", t, decode(in.load("latents").clone()), out.load("decoded"), t.tol);
      const std::string image = in.has("video") ? "video" : "image";
      const auto [mean, stdev] = encode(in.load(image).clone());
      check(tag + " encode mean", t, mean, out.load("latent_mean"), t.tol);
      check(tag + " encode std", t, stdev, out.load("latent_std"), t.tol);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaVae, ::testing::Values("flux", "sd", "wan", "hunyuan_video"),
                         param_name);

// ---------------------------------------------------------------- text encoders

class CudaTextEncoder : public ::testing::TestWithParam<std::string> {};

bool is_hidden(const std::string& key) { return key.rfind("hidden_states.", 0) == 0; }

TEST_P(CudaTextEncoder, EveryOutputMatchesTransformers) {
  SKIP_WITHOUT_GPU();
  const std::string name = GetParam();
  const fs::path dir = kData / "text_encoder" / name;
  const io::TensorSource in = io::TensorSource::open(dir / "inputs.safetensors");
  const io::TensorSource ref = io::TensorSource::open(dir / "outputs.safetensors");
  const bool llm = name == "llama" || name == "mistral3" || name == "qwen2_5_vl" || name == "qwen3";
  const Tensor ids = in.load("input_ids", DType::I64);
  const Tensor mask = in.has("attention_mask") ? in.load("attention_mask", DType::I64) : Tensor();
  for (const Target& t : targets(llm ? kLlmBf16Tol : bf16_tol())) {
    SCOPED_TRACE(t.name);
    std::map<std::string, Tensor> got;
    if (name == "t5" || name == "umt5") {
      const auto enc = models::t5::T5Encoder::load(dir, t.place);
      const auto out = enc.encode(ids, mask);
      got["last_hidden_state"] = out.last_hidden_state;
      for (size_t i = 0; i < out.hidden_states.size(); ++i) {
        got["hidden_states." + std::to_string(i)] = out.hidden_states[i];
      }
    } else if (name == "clip_l" || name == "clip_g") {
      const auto enc = models::clip::ClipTextEncoder::load(dir, t.place);
      const auto out = enc.encode(ids);
      got["last_hidden_state"] = out.last_hidden_state;
      got["pooler_output"] = out.pooled_output;
      if (out.text_embeds.defined()) got["text_embeds"] = out.text_embeds;
      for (size_t i = 0; i < out.hidden_states.size(); ++i) {
        got["hidden_states." + std::to_string(i)] = out.hidden_states[i];
      }
    } else {
      const auto lm = models::llm::DecoderLM::load(dir, t.place);
      std::vector<int> all;
      for (int i = 0; i <= static_cast<int>(lm.config().num_layers); ++i) all.push_back(i);
      const auto hs = lm.hidden_states(ids, mask, all);
      for (size_t i = 0; i < hs.size(); ++i) got["hidden_states." + std::to_string(i)] = hs[i];
    }
    int compared = 0;
    for (const std::string& key : ref.names()) {
      // The decoder LLM fixtures also hold pipeline-derived embeddings (the pipelines below).
      if (llm && !is_hidden(key)) continue;
      ASSERT_TRUE(got.count(key)) << name << ": no output for reference " << key;
      check(name + " " + key, t, got.at(key), ref.load(key), t.tol);
      ++compared;
    }
    EXPECT_GE(compared, 2) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaTextEncoder,
                         ::testing::Values("t5", "umt5", "clip_l", "clip_g", "llama", "mistral3",
                                           "qwen2_5_vl", "qwen3"),
                         param_name);

// ---------------------------------------------------------------- pipelines through generate

struct PipelineCase {
  std::string name;
  fs::path dir;
  io::Json call;
  io::TensorSource tensors;
};

PipelineCase load_pipeline_case(const std::string& name) {
  const fs::path dir = kData / "pipeline" / name;
  return {name, dir, io::read_json(dir / "case.json")["call"],
          io::TensorSource::open(dir / "case.safetensors")};
}

bool flux2_family(const std::string& name) { return name == "flux2" || name == "flux2_klein"; }
// Pipelines whose prompt embeddings come from a decoder LLM.
bool llm_text_encoder(const std::string& name) {
  return flux2_family(name) || name == "qwen_image" || name == "z_image" ||
         name == "hunyuan_video_text";
}

// The request of case.json's call from the prompt text, with the recorded initial latents
// (FLUX.2 takes them packed: latents_in is the patchified (B, 4C, h, w)).
pipelines::GenerateRequest request_of(const PipelineCase& c) {
  pipelines::GenerateRequest r;
  const io::Json& call = c.call;
  r.prompts = {call["prompt"].get<std::string>()};
  r.height = call["height"].get<int64_t>();
  r.width = call["width"].get<int64_t>();
  r.num_inference_steps = call["num_inference_steps"].get<int>();
  auto has = [&](const char* k) { return call.contains(k) && !call[k].is_null(); };
  if (has("guidance_scale")) r.guidance_scale = call["guidance_scale"].get<double>();
  if (has("true_cfg_scale")) r.true_cfg_scale = call["true_cfg_scale"].get<double>();
  if (has("max_sequence_length")) r.max_sequence_length = call["max_sequence_length"].get<int>();
  if (has("num_frames")) r.num_frames = call["num_frames"].get<int64_t>();
  if (has("negative_prompt")) r.negative_prompt = call["negative_prompt"].get<std::string>();
  const Tensor in = c.tensors.load("latents_in").clone();
  r.latents = flux2_family(c.name)
                  ? in.reshape({in.dim(0), in.dim(1), in.dim(2) * in.dim(3)}).permute({0, 2, 1})
                  : in;
  r.decode = true;
  return r;
}

// The embeddings the fixture recorded, by the names encode_prompt returns (Z-Image's lists as
// one-row batches).
models::NamedTensors recorded_embeddings(const PipelineCase& c) {
  models::NamedTensors e;
  for (const std::string n : {"prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds",
                              "negative_pooled_prompt_embeds"}) {
    if (c.tensors.has(n)) e[n] = c.tensors.load(n);
    if (c.tensors.has(n + ".0")) e[n] = c.tensors.load(n + ".0").unsqueeze(0);
  }
  return e;
}

// A decoded (B, 3, [F,] H, W) result in [-1, 1] as diffusers' output_type "np": channels last,
// (x / 2 + 0.5) clamped to [0, 1].
Tensor to_np(const Tensor& images) {
  const Tensor host = images.to_device(Device::CPU).to(DType::F32);
  const bool video = host.ndim() == 5;
  const Tensor cl = video ? host.permute({0, 2, 3, 4, 1}) : host.permute({0, 2, 3, 1});
  std::vector<float> v = cl.to_vector();
  for (float& x : v) x = std::min(1.0f, std::max(0.0f, x / 2.0f + 0.5f));
  return Tensor::from_vector(v, cl.shape());
}

class CudaGenerate : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaGenerate, FromTextMatchesDiffusers) {
  SKIP_WITHOUT_GPU();
  const PipelineCase c = load_pipeline_case(GetParam());
  const pipelines::GenerateRequest request = request_of(c);
  for (const Target& t : targets()) {
    SCOPED_TRACE(t.name);
    auto pipe = pipelines::Pipeline::open(c.dir);
    pipe->set_placement(t.place);
    std::vector<Tensor> steps;
    const pipelines::GenerateResult res = pipe->generate(
        request, [&](const pipelines::StepEvent& e) { steps.push_back(e.latents.clone()); });
    for (const auto& [n, want] : recorded_embeddings(c)) {
      ASSERT_TRUE(res.embeddings.count(n)) << c.name << ": no embedding " << n;
      // The prompt embeddings of the decoder-LLM text encoders (not CLIP's pooled ones).
      const bool llm_embeds = llm_text_encoder(c.name) && n.find("pooled") == std::string::npos;
      const double tol = t.place.dtype == DType::BF16 && llm_embeds ? kLlmBf16Tol : t.tol;
      check(c.name + " " + n, t, res.embeddings.at(n), want, tol);
    }
    const std::vector<float> ts = c.tensors.load("step_timesteps").to_vector();
    ASSERT_EQ(res.timesteps.size(), ts.size());
    for (size_t i = 0; i < ts.size(); ++i) EXPECT_NEAR(res.timesteps[i], ts[i], 1e-3) << i;
    ASSERT_EQ(steps.size(), ts.size());
    for (size_t i = 0; i < steps.size(); ++i) {
      check(c.name + " step_latents." + std::to_string(i), t, steps[i],
            c.tensors.load("step_latents." + std::to_string(i)), t.tol);
    }
    const Tensor final_latents = c.name == "flux2_klein"
                                     ? pipelines::flux2_vae_space_latents(
                                           *pipe, res.latents, *request.height, *request.width)
                                     : res.latents;
    check(c.name + " final_latents", t, final_latents, c.tensors.load("final_latents"), t.tol);
    ASSERT_TRUE(res.images.defined());
    const std::string decoded = pipe->is_video() ? "video" : "image";
    check(c.name + " " + decoded, t, to_np(res.images), c.tensors.load(decoded), t.tol);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaGenerate,
                         ::testing::Values("flux", "flux2", "flux2_klein", "hunyuan_video_text",
                                           "pixart_sigma", "qwen_image", "sd3", "wan", "z_image"),
                         param_name);

// ---------------------------------------------------------------- the commands

std::string device_flags(const Target& t) {
  return std::string(" --device ") + (t.place.device == Device::CUDA ? "cuda" : "cpu") +
         " --dtype " + (t.place.dtype == DType::F32 ? "f32" : "bf16");
}

// `paradit forward --device cuda` on the Flux fixture (F32, BF16 with each attention backend),
// Qwen-Image (non-tensor arguments in the inputs' metadata) and Z-Image (list arguments).
TEST(CudaCommands, ForwardWritesTheReferenceSample) {
  SKIP_WITHOUT_GPU();
  fs::create_directories(kScratch);
  struct Run {
    std::string fixture, extra;
  };
  for (const Target& t : targets()) {
    std::vector<Run> runs = {{"flux", ""}, {"qwen_image", ""}, {"z_image", ""}};
    if (t.place.dtype == DType::BF16 && t.place.device == Device::CUDA) {
      runs.push_back({"flux", " --attention_backend paradit"});
    }
    for (const Run& r : runs) {
      const fs::path dir = kData / "transformer" / r.fixture;
      // The inputs with meta.json's non-tensor arguments as __metadata__, as diffusers' own
      // fixture files would carry them.
      fs::path inputs = dir / "inputs.safetensors";
      if (r.fixture == "qwen_image") {
        const io::Json meta = io::read_json(dir / "meta.json");
        std::map<std::string, std::string> metadata;
        for (const auto& [k, v] : meta["nontensor_args"].items()) metadata[k] = v.dump();
        std::vector<std::pair<std::string, Tensor>> tensors;
        for (const auto& [n, x] : testing::read_all(dir / "inputs.safetensors"))
          tensors.emplace_back(n, x);
        inputs = kScratch / "qwen_image_inputs.safetensors";
        io::save_safetensors(inputs, tensors, metadata);
      }
      const fs::path out = kScratch / (r.fixture + "_forward.safetensors");
      fs::remove(out);
      const testing::Proc p = testing::run_command(
          testing::env() + PARADIT_BINARY + " forward --model '" + dir.string() + "' --inputs '" +
          inputs.string() + "' --output '" + out.string() + "'" + device_flags(t) + r.extra);
      ASSERT_EQ(p.status, 0) << p.output;
      const io::TensorSource got = io::TensorSource::open(out);
      const io::TensorSource ref = io::TensorSource::open(dir / "outputs.safetensors");
      for (const std::string& name : ref.names()) {
        check("paradit forward " + r.fixture + r.extra + " " + name, t, got.load(name),
              ref.load(name), t.tol);
      }
    }
  }
}

// `paradit generate --device cuda` on the Flux pipeline fixture from its prompt and recorded
// initial latents: the latents it writes are diffusers' final latents.
TEST(CudaCommands, GenerateWritesTheReferenceLatents) {
  SKIP_WITHOUT_GPU();
  fs::create_directories(kScratch);
  const PipelineCase c = load_pipeline_case("flux");
  const fs::path latents = kScratch / "flux_latents_in.safetensors";
  io::save_safetensors(latents, {{"latents", c.tensors.load("latents_in").clone()}});
  for (const Target& t : targets()) {
    const fs::path out = kScratch / "flux_generate.safetensors";
    fs::remove(out);
    const io::Json& call = c.call;
    const std::string cmd =
        std::string(PARADIT_BINARY) + " generate --model '" + c.dir.string() + "' --prompt '" +
        call["prompt"].get<std::string>() + "' --height " +
        std::to_string(call["height"].get<int64_t>()) + " --width " +
        std::to_string(call["width"].get<int64_t>()) + " --num_inference_steps " +
        std::to_string(call["num_inference_steps"].get<int>()) + " --guidance_scale " +
        std::to_string(call["guidance_scale"].get<double>()) + " --max_sequence_length " +
        std::to_string(call["max_sequence_length"].get<int>()) + " --latents '" + latents.string() +
        "' --output_type latent --output '" + out.string() + "'" + device_flags(t);
    const testing::Proc p = testing::run_command(testing::env() + cmd);
    ASSERT_EQ(p.status, 0) << p.output;
    check("paradit generate flux latents", t, io::TensorSource::open(out).load("latents"),
          c.tensors.load("final_latents"), t.tol);
  }
}

}  // namespace
}  // namespace paradit
