// `paradit generate`: text to image with a diffusers pipeline folder (see pipelines/pipeline.h).
//   paradit generate [--model DIR] --prompt TEXT [--prompt TEXT ...] [--negative_prompt TEXT]
//       [--height H --width W --num_inference_steps N --guidance_scale G --seed S]
//       --output FILE [--output_type pil|latent] [--prompt_embeds FILE] [--latents FILE]
//       [--max_sequence_length N]
// Every multi-word flag is accepted with '_' and with '-'.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "comm/runtime.h"
#include "core/error.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "pipelines/pipeline.h"

namespace paradit::cli {

namespace {

namespace fs = std::filesystem;

struct GenerateOptions {
  std::string model;
  std::vector<std::string> prompts;
  std::optional<std::string> negative_prompt;
  std::optional<int64_t> height, width;
  std::optional<int> steps;
  std::optional<double> guidance_scale;
  std::optional<int> max_sequence_length;
  uint64_t seed = 0;
  std::string output;
  std::string output_type = "pil";
  std::string prompt_embeds;
  std::string latents;
};

// "--num_inference_steps,--num-inference-steps": both spellings of a flag.
std::string flag(const std::string& name) {
  std::string dashed = name;
  for (char& c : dashed) {
    if (c == '_') c = '-';
  }
  return dashed == name ? "--" + name : "--" + name + ",--" + dashed;
}

// The names diffusers' pipelines take precomputed text conditioning under.
const std::vector<std::string>& embedding_names() {
  static const std::vector<std::string> names = {
      "prompt_embeds",         "pooled_prompt_embeds",         "negative_prompt_embeds",
      "negative_pooled_prompt_embeds", "prompt_attention_mask", "negative_prompt_attention_mask"};
  return names;
}

// Fails before any work when a file cannot be written there.
void check_writable(const fs::path& path, const std::string& what) {
  std::error_code ec;
  PARADIT_CHECK(!path.empty(), "--output: no file name given");
  PARADIT_CHECK(!fs::is_directory(path, ec), "--output: '", path.string(), "' is a directory (",
                what, ")");
  fs::path parent = path.parent_path();
  if (parent.empty()) parent = ".";
  PARADIT_CHECK(fs::is_directory(parent, ec), "--output: directory '", parent.string(),
                "' does not exist");
  PARADIT_CHECK(::access(parent.c_str(), W_OK) == 0, "--output: directory '", parent.string(),
                "' is not writable");
  if (fs::exists(path, ec)) {
    PARADIT_CHECK(::access(path.c_str(), W_OK) == 0, "--output: '", path.string(),
                  "' exists and is not writable");
  }
}

// A terminal gets one redrawn progress bar; a log gets one line per step.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(::isatty(::fileno(stderr)) != 0) {}
  void step(const pipelines::StepEvent& e) {
    if (quiet_) return;
    if (tty_) {
      constexpr int kWidth = 30;
      const int done = (e.index + 1) * kWidth / e.total;
      std::string bar(static_cast<size_t>(done), '#');
      bar.resize(kWidth, '.');
      std::fprintf(stderr, "\rdenoise [%s] %d/%d  %.3f s/step", bar.c_str(), e.index + 1, e.total,
                   e.seconds);
      if (e.index + 1 == e.total) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "step %d/%d  t=%g  %.3f s\n", e.index + 1, e.total, e.timestep,
                   e.seconds);
    }
    std::fflush(stderr);
  }

 private:
  bool quiet_;
  bool tty_;
};

int run_generate(const GenerateOptions& opt) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const bool latent_output = opt.output_type == "latent";
  const bool rank0 = comm::world().rank() == 0;

  // Cheap checks first: the output path and the flags, before any weight is touched.
  const fs::path output = opt.output;
  check_writable(output, latent_output ? "expected a .safetensors file path"
                                       : "expected a .png file path");
  if (opt.steps) {
    PARADIT_CHECK(*opt.steps >= 1, "--num_inference_steps: must be at least 1, found ",
                  *opt.steps);
  }

  const fs::path model_dir = opt.model.empty() ? pipelines::default_model_dir() : fs::path(opt.model);
  std::unique_ptr<pipelines::Pipeline> pipe = pipelines::Pipeline::open(model_dir);

  pipelines::GenerateRequest request;
  request.prompts = opt.prompts;
  request.negative_prompt = opt.negative_prompt;
  request.height = opt.height;
  request.width = opt.width;
  request.num_inference_steps = opt.steps;
  request.guidance_scale = opt.guidance_scale;
  request.max_sequence_length = opt.max_sequence_length;
  request.seed = opt.seed;
  request.decode = !latent_output;
  if (!opt.latents.empty()) {
    const io::TensorSource src = io::TensorSource::open(opt.latents);
    PARADIT_CHECK(src.has("latents"), "--latents ", opt.latents,
                  ": tensor 'latents' is missing (found: ", src.names().size(), " other tensors)");
    request.latents = src.load("latents").clone();
  }
  if (!opt.prompt_embeds.empty()) {
    const io::TensorSource src = io::TensorSource::open(opt.prompt_embeds);
    for (const std::string& name : embedding_names()) {
      if (!src.has(name)) continue;
      const core::Tensor t = src.view(name);
      // Masks keep their integer type; float embeddings become F32.
      request.prompt_embeds[name] = core::is_floating(t.dtype()) ? t.to(core::DType::F32).clone()
                                                                 : t.clone();
    }
    PARADIT_CHECK(request.prompt_embeds.count("prompt_embeds") != 0, "--prompt_embeds ",
                  opt.prompt_embeds, ": tensor 'prompt_embeds' is missing");
  }
  const pipelines::GenerateRequest resolved = pipe->resolve(request);  // Error on bad input
  const int64_t batch = pipe->batch_size(resolved);

  std::vector<fs::path> outputs;
  if (latent_output || batch == 1) {
    outputs.push_back(output);
  } else {
    for (int64_t i = 0; i < batch; ++i) {
      outputs.push_back(pipelines::indexed_output_path(output, i));
      check_writable(outputs.back(), "expected a .png file path");
    }
  }
  if (opt.negative_prompt && pipe->class_name() == "FluxPipeline" && rank0) {
    std::fprintf(stderr, "paradit: note: FluxPipeline ignores --negative_prompt (its guidance is "
                         "an embedding, not classifier-free guidance)\n");
  }

  Progress progress(!rank0);
  const pipelines::GenerateResult result =
      pipe->generate(resolved, [&](const pipelines::StepEvent& e) { progress.step(e); });

  if (rank0) {
    if (latent_output) {
      io::save_safetensors(output, {{"latents", result.latents}});
    } else {
      for (int64_t i = 0; i < batch; ++i) {
        io::save_png(outputs[static_cast<size_t>(i)], result.images.slice(0, i, i + 1));
      }
    }
    const double total = std::chrono::duration<double>(Clock::now() - start).count();
    const auto& t = result.times;
    std::string where = outputs[0].string();
    if (outputs.size() > 1) where += " ... " + outputs.back().string();
    std::printf("%s: wrote %s (%lld image(s) %lldx%lld, %d steps) in %.2f s: load %.2f s, "
                "text %.2f s, denoise %.2f s, decode %.2f s\n",
                pipe->class_name().c_str(), where.c_str(), static_cast<long long>(batch),
                static_cast<long long>(*resolved.height), static_cast<long long>(*resolved.width),
                static_cast<int>(result.timesteps.size()), total, t.load, t.text, t.denoise,
                t.decode);
  }
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& app, Commands& commands) {
  auto opt = std::make_shared<GenerateOptions>();
  CLI::App* sub = app.add_subcommand(
      "generate",
      "Generate images from text with a diffusers pipeline folder (Flux, SD3, PixArt, DiT)");
  sub->footer(
      "Several --prompt values make one image each: --output out.png then writes out_0.png, "
      "out_1.png, ... (one file per prompt, in order). --output_type latent writes the final "
      "latents of the whole batch as one safetensors file (tensor 'latents', the shape of "
      "diffusers' output_type='latent'; Flux: packed). Unset sizes, steps, guidance and "
      "sequence length take the pipeline's diffusers defaults. Without --model the shipped "
      "model shapes-pixart (64x64) is used. Every multi-word flag also accepts '-' for '_'.");
  sub->add_option("--model", opt->model,
                  "Pipeline folder (model_index.json) or Hugging Face cache id; default: the "
                  "shipped models/shapes-pixart");
  sub->add_option("--prompt", opt->prompts,
                  "Prompt (repeatable: one image per prompt). DiT: a class id or label")
      ->allow_extra_args(false);
  sub->add_option(flag("negative_prompt"), opt->negative_prompt,
                  "Negative prompt for classifier-free guidance (SD3, PixArt; default \"\")");
  sub->add_option("--height", opt->height, "Image height in pixels (default: the model's)");
  sub->add_option("--width", opt->width, "Image width in pixels (default: the model's)");
  sub->add_option(flag("num_inference_steps"), opt->steps,
                  "Denoising steps (default per pipeline: Flux/SD3 28, PixArt 20, DiT 50)");
  sub->add_option(flag("guidance_scale"), opt->guidance_scale,
                  "Guidance scale (default per pipeline: Flux 3.5, SD3 7, PixArt 4.5, DiT 4)");
  sub->add_option("--seed", opt->seed, "Seed of the initial noise (core::randn)")
      ->capture_default_str();
  sub->add_option("--output", opt->output, "Output file (.png, or .safetensors for latents)")
      ->required();
  sub->add_option(flag("output_type"), opt->output_type, "pil (PNG) or latent (safetensors)")
      ->check(CLI::IsMember({"pil", "latent"}))
      ->capture_default_str();
  sub->add_option(flag("prompt_embeds"), opt->prompt_embeds,
                  "safetensors with precomputed prompt_embeds, pooled_prompt_embeds, "
                  "negative_prompt_embeds, negative_pooled_prompt_embeds, "
                  "prompt_attention_mask, negative_prompt_attention_mask (instead of --prompt)");
  sub->add_option("--latents", opt->latents,
                  "safetensors with the initial `latents` in the pipeline's shape (Flux: packed)");
  sub->add_option(flag("max_sequence_length"), opt->max_sequence_length,
                  "T5 tokens (default: Flux 512, SD3 256, PixArt-Sigma 300, PixArt-Alpha 120)");
  commands.push_back({sub, [opt] { return run_generate(*opt); }});
}

}  // namespace paradit::cli
