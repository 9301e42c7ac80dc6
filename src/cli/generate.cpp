// `paradit generate`: text to image or video with a diffusers pipeline folder (see
// pipelines/pipeline.h).
//   paradit generate [--model DIR] --prompt TEXT [--prompt TEXT ...] [--negative_prompt TEXT]
//       [--height H --width W --num_inference_steps N --guidance_scale G --seed S]
//       --output FILE [--output_type pil|latent|mp4|frames] [--prompt_embeds FILE]
//       [--latents FILE] [--max_sequence_length N] [--num_frames F --fps R --true_cfg_scale S]
//       [--guidance_scale_2 G]
//       [--use_fbcache [--fbcache_threshold T] | --use_teacache [--teacache_threshold T]]
//       [--cache_warmup_steps N] [parallel flags, see cli/parallel_flags.h]
// Video pipelines (Wan, HunyuanVideo) write an MP4 by default, or numbered PNG frames.
// Every multi-word flag is accepted with '_' and with '-'.
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "cli/cache_flags.h"
#include "cli/commands.h"
#include "cli/device_flags.h"
#include "cli/parallel_flags.h"
#include "comm/agree.h"
#include "comm/runtime.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/video.h"
#include "parallel/config.h"
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
  std::optional<int64_t> num_frames;
  std::optional<double> fps;
  std::optional<double> true_cfg_scale;
  std::optional<double> guidance_scale_2;
  std::string seed = "0";  // parsed strictly into [0, 2^64) by parse_seed
  std::string output;
  std::string output_type;  // "" = pil for image pipelines, mp4 for video pipelines
  std::string prompt_embeds;
  std::string latents;
  DeviceOptions device;
  parallel::ParallelConfig parallel;
  CacheFlags cache;
  bool dry_run = false;
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
// The output path before any work: an extension that matches what will be written, and a
// path that can be written (io::check_output_path: absent or a regular file, never a device
// node, FIFO or socket; a folder that takes new files).
void check_writable(const fs::path& path, const std::vector<std::string>& extensions,
                    const std::string& what) {
  PARADIT_CHECK(!path.empty(), "--output: no file name given");
  io::check_output_path(path, "output", "--output");  // a directory or a missing folder named first
  std::string ext = path.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  bool known = false;
  for (const std::string& e : extensions) known = known || ext == e;
  PARADIT_CHECK(known, "--output: '", path.string(), "': ", what);
}

// A seed in [0, 2^64) written in decimal digits only (no sign, exponent or overflow: "-1" and
// "18446744073709551616" would otherwise wrap to another seed's image).
uint64_t parse_seed(const std::string& text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  PARADIT_CHECK(!text.empty() && text[0] != '-' && text[0] != '+' && ec == std::errc() &&
                    ptr == end,
                "--seed: '", text, "' is not an integer in [0, 18446744073709551615]");
  return value;
}

// "clip.png" with frame 7 → "clip_0007.png": frame files sort in order.
fs::path frame_path(const fs::path& path, int64_t frame) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "_%04lld", static_cast<long long>(frame));
  fs::path out = path;
  out.replace_filename(path.stem().string() + digits + path.extension().string());
  return out;
}

// The files of one run: removed again when the run fails half-way, so no partial output stays.
// Each file is written whole or not at all (save_png / save_mp4 rename a finished temporary).
class OutputFiles {
 public:
  ~OutputFiles() {
    if (committed_) return;
    std::error_code ec;
    for (const fs::path& p : written_) fs::remove(p, ec);
  }
  void add(const fs::path& p) { written_.push_back(p); }
  void commit() { committed_ = true; }

 private:
  std::vector<fs::path> written_;
  bool committed_ = false;
};

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

// The request of the command line (prompts, sizes, steps, given latents and embeddings).
pipelines::GenerateRequest make_request(const GenerateOptions& opt, bool latent_output) {
  pipelines::GenerateRequest request;
  request.prompts = opt.prompts;
  request.negative_prompt = opt.negative_prompt;
  request.height = opt.height;
  request.width = opt.width;
  request.num_inference_steps = opt.steps;
  request.guidance_scale = opt.guidance_scale;
  request.max_sequence_length = opt.max_sequence_length;
  request.num_frames = opt.num_frames;
  request.true_cfg_scale = opt.true_cfg_scale;
  request.guidance_scale_2 = opt.guidance_scale_2;
  request.seed = parse_seed(opt.seed);
  request.decode = !latent_output;
  request.cache = opt.cache.options();  // Error naming the flag
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
  return request;
}

// --dry-run: the per-rank memory of the layout the flags give, from configs and weight headers
// (no weights loaded, no MPI job needed: the layout need not match the launch).
int dry_run(const GenerateOptions& opt) {
  const fs::path model_dir = opt.model.empty() ? pipelines::default_model_dir() : fs::path(opt.model);
  std::unique_ptr<pipelines::Pipeline> pipe = pipelines::Pipeline::open(model_dir);
  pipe->set_placement(resolve_placement(opt.device));
  const pipelines::GenerateRequest resolved =
      pipe->resolve(make_request(opt, opt.output_type == "latent"));
  if (comm::world().rank() == 0) {
    std::printf("%s: dry run, nothing loaded\n%s", pipe->class_name().c_str(),
                pipelines::format_memory_estimate(pipe->estimate_memory(resolved, opt.parallel))
                    .c_str());
  }
  return 0;
}

int run_generate(const GenerateOptions& opt) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const bool latent_output = opt.output_type == "latent";
  const comm::Communicator& world = comm::world();
  const bool rank0 = world.rank() == 0;
  const fs::path output = opt.output;

  if (opt.dry_run) return dry_run(opt);

  // Admission, in three rounds: every rank checks, then all ranks agree (comm/agree.h), so a bad
  // request ends every rank alike before any work (one line from rank 0, exit code 2, no
  // MPI_Abort), even where only one rank saw the problem (its own memory, files or GPUs).
  // 1. Cheap checks first: the flags and the output path, before any weight is touched.
  comm::agree(world, [&] {
    opt.parallel.validate();
    if (latent_output) {
      check_writable(output, {".safetensors"},
                     "--output_type latent writes safetensors, expected "
                     "a .safetensors file path");
    } else if (opt.output_type == "frames") {
      check_writable(output, {".png"},
                     "--output_type frames writes PNG frames, expected a .png "
                     "file path");
    } else if (opt.output_type == "mp4") {
      check_writable(output, {".mp4"},
                     "--output_type mp4 writes an MP4 video, expected a .mp4 "
                     "file path");
    } else {
      // Images write PNG; a video model's default MP4 is checked once the pipeline is known.
      check_writable(output, {".png", ".mp4"},
                     "paradit writes PNG images (and MP4 videos), "
                     "expected a .png or .mp4 file path");
    }
    if (opt.steps) {
      PARADIT_CHECK(*opt.steps >= 1, "--num_inference_steps: must be at least 1, found ",
                    *opt.steps);
    }
    (void)opt.cache.options();  // the step-cache flags (Error naming the flag)
  });

  // 2. The device and the mesh (Error when the degrees do not multiply to the size).
  core::Placement placement;
  std::optional<parallel::ParallelRuntime> runtime_holder;
  comm::agree(world, [&] {
    placement = resolve_placement(opt.device);  // collective (binds GPUs)
    runtime_holder.emplace(world, opt.parallel, placement.device);
  });
  const parallel::ParallelRuntime& runtime = *runtime_holder;
  const comm::ProcessMesh& mesh = runtime.mesh();
  // The first rank of each dp group (cfg, pp, ring, ulysses, tp coordinates 0) writes that
  // group's images; with --output_type latent world rank 0 writes the whole batch.
  bool group_writer = true;
  for (const comm::MeshDim d : {comm::MeshDim::kCfg, comm::MeshDim::kPp, comm::MeshDim::kRing,
                                comm::MeshDim::kUlysses, comm::MeshDim::kTp}) {
    group_writer = group_writer && mesh.coord(d) == 0;
  }
  const bool writer = latent_output ? rank0 : group_writer;

  // 3. The model, the request against it and the layout, the memory, every output path.
  std::unique_ptr<pipelines::Pipeline> pipe;
  bool video = false;
  std::string kind;
  double fps = 0;
  pipelines::GenerateRequest resolved;
  int64_t batch = 0, block_begin = 0, block_end = 0;
  std::vector<fs::path> outputs;
  comm::agree(world, [&] {
    const fs::path model_dir =
        opt.model.empty() ? pipelines::default_model_dir() : fs::path(opt.model);
    pipe = pipelines::Pipeline::open(model_dir);
    pipe->set_runtime(&runtime);
    pipe->set_placement(placement);
    // The output kind: images as PNG, videos as MP4 unless asked otherwise.
    video = pipe->is_video();
    kind = !opt.output_type.empty() ? opt.output_type : video ? "mp4" : "pil";
    if (video) {
      PARADIT_CHECK(kind != "pil", "--output_type pil: ", pipe->class_name(),
                    " makes videos; use mp4 (the default), frames or latent");
    } else {
      PARADIT_CHECK(kind != "mp4" && kind != "frames", "--output_type ", kind, ": ",
                    pipe->class_name(), " makes images; use pil or latent");
      PARADIT_CHECK(!opt.fps, "--fps: ", pipe->class_name(), " makes images, not videos");
      PARADIT_CHECK(kind != "pil" || output.extension() == ".png", "--output: '", output.string(),
                    "': ", pipe->class_name(), " writes PNG images, expected a .png file path");
    }
    if (kind == "mp4") {
      PARADIT_CHECK(output.extension() == ".mp4", "--output: '", output.string(),
                    "': ", pipe->class_name(),
                    " writes an MP4 video, expected a .mp4 file path (or "
                    "--output_type frames for PNG frames)");
    }
    fps = opt.fps.value_or(pipe->defaults().fps);
    if (video) {
      PARADIT_CHECK(std::isfinite(fps) && fps > 0 && fps <= 1000,
                    "--fps: must be a number in (0, 1000], found ", fps);
    }

    const pipelines::GenerateRequest request = make_request(opt, latent_output);
    resolved = pipe->resolve(request);  // Error on bad input, the layout's limits included
    batch = pipe->batch_size(resolved);
    std::tie(block_begin, block_end) = pipe->dp_block(batch);  // Error: batch % dp != 0

    if (latent_output || batch == 1) {
      outputs.push_back(output);
    } else {
      for (int64_t i = 0; i < batch; ++i) {
        outputs.push_back(pipelines::indexed_output_path(output, i));
        io::check_output_path(outputs.back(), "output", "--output");
      }
    }
  });
  if (opt.negative_prompt && pipe->class_name() == "FluxPipeline" && rank0) {
    std::fprintf(stderr, "paradit: note: FluxPipeline ignores --negative_prompt (its guidance is "
                         "an embedding, not classifier-free guidance)\n");
  }

  Progress progress(!rank0);
  const pipelines::GenerateResult result =
      pipe->generate(resolved, [&](const pipelines::StepEvent& e) { progress.step(e); });
  // Data parallel: the whole batch's latents for the one latent file (dp blocks in order).
  core::Tensor latents = result.latents;
  if (latent_output && mesh.degree(comm::MeshDim::kDp) > 1) {
    latents = mesh.group(comm::MeshDim::kDp).all_gather(latents.contiguous(), 0);  // (B, ...)
  }

  if (writer) {
    OutputFiles files;  // removed again if a later write fails
    if (latent_output) {
      io::save_safetensors(output, {{"latents", latents}});
    } else {
      // result.images holds this dp group's block; file names keep the global prompt index.
      const io::FrameRounding rounding = pipe->defaults().round_frames
                                             ? io::FrameRounding::kRound
                                             : io::FrameRounding::kTruncate;
      for (int64_t i = block_begin; i < block_end; ++i) {
        const fs::path& path = outputs[static_cast<size_t>(i)];
        const core::Tensor one =
            result.images.slice(0, i - block_begin, i - block_begin + 1);  // (1, 3, [F,] H, W)
        if (kind == "mp4") {
          io::save_mp4_video(path, one, fps, rounding);  // no file unless complete
          files.add(path);
        } else if (kind == "frames") {
          const int64_t F = one.dim(2), H = one.dim(3), W = one.dim(4);
          const std::vector<uint8_t> rgb = io::to_rgb8_video(one, rounding);  // F·H·W·3
          for (int64_t f = 0; f < F; ++f) {
            io::save_png(frame_path(path, f), rgb.data() + f * H * W * 3, static_cast<int>(H),
                         static_cast<int>(W));
            files.add(frame_path(path, f));
          }
        } else {
          io::save_png(path, one);
          files.add(path);
        }
      }
    }
    files.commit();
    const double total = std::chrono::duration<double>(Clock::now() - start).count();
    const auto& t = result.times;
    const size_t first = latent_output ? 0 : static_cast<size_t>(block_begin);
    const size_t last = latent_output ? 0 : static_cast<size_t>(block_end - 1);
    std::string where = outputs[first].string();
    if (kind == "frames") {
      where = frame_path(outputs[first], 0).string() + " ... " +
              frame_path(outputs[last], *resolved.num_frames - 1).string();
    } else if (last > first) {
      where += " ... " + outputs[last].string();
    }
    const long long count = latent_output ? batch : block_end - block_begin;
    std::string what = std::to_string(count) + (video ? " video(s) " : " image(s) ") +
                       std::to_string(*resolved.width) + "x" + std::to_string(*resolved.height);
    if (video) {
      char rate[64];
      std::snprintf(rate, sizeof rate, " x %lld frames at %g fps",
                    static_cast<long long>(*resolved.num_frames), fps);
      what += rate;
    }
    std::printf("%s: wrote %s (%s, %d steps) in %.2f s: load %.2f s, text %.2f s, denoise "
                "%.2f s, decode %.2f s\n",
                pipe->class_name().c_str(), where.c_str(), what.c_str(),
                static_cast<int>(result.timesteps.size()), total, t.load, t.text, t.denoise,
                t.decode);
    if (result.cache.enabled()) std::printf("%s\n", result.cache.line().c_str());
  }
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& app, Commands& commands) {
  auto opt = std::make_shared<GenerateOptions>();
  CLI::App* sub = app.add_subcommand(
      "generate",
      "Generate images or videos from text with a diffusers pipeline folder (Flux, FLUX.2, SD3, "
      "PixArt, DiT, Qwen-Image, Z-Image; Wan and HunyuanVideo make videos)");
  sub->footer(
      "Several --prompt values make one image each: --output out.png then writes out_0.png, "
      "out_1.png, ... (one file per prompt, in order). --output_type latent writes the final "
      "latents of the whole batch as one safetensors file (tensor 'latents', the shape of "
      "diffusers' output_type='latent'; Flux: packed). Unset sizes, steps, guidance and "
      "sequence length take the pipeline's diffusers defaults. Without --model the shipped "
      "model shapes-pixart (64x64) is used. Every multi-word flag also accepts '-' for '_'. "
      "Under mpirun the parallel flags split the work (their degrees must multiply to the "
      "number of processes): --ulysses_degree/--ring_degree split each forward's image tokens, "
      "--use_cfg_parallel runs the unconditional and conditional halves on two ranks, "
      "--use_parallel_vae decodes each image row-parallel over the ranks that share it, and "
      "--data_parallel_degree N gives each of N groups a contiguous block of the prompts (the "
      "prompt count must divide by N, else exit 2); each group's first rank writes its own "
      "files (out_i.png, i the global prompt index). Images equal the single-process ones. "
      "--pipefusion_parallel_degree P (image models) splits the transformer's layers into P "
      "stages and streams --num_pipeline_patch patches of the image through them after "
      "--warmup_steps whole-image steps: with as many warm-up steps as steps the images equal "
      "the single-process ones, with fewer the patches see their neighbours' K/V of the "
      "previous step (close, not equal). "
      "Video pipelines (WanPipeline, HunyuanVideoPipeline) write an "
      "H.264 MP4 (--output out.mp4, --fps, default the model's: Wan 16, HunyuanVideo 15), or "
      "with --output_type frames numbered PNGs (out.png → out_0000.png, out_0001.png, ...); "
      "--num_frames must be 4k+1 (1, 5, 9, ..., 81).");
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
  sub->add_option("--seed", opt->seed,
                  "Seed of the initial noise (core::randn): an integer in [0, 2^64)")
      ->capture_default_str();
  sub->add_option("--output", opt->output, "Output file (.png, or .safetensors for latents)")
      ->required();
  sub->add_option(flag("output_type"), opt->output_type,
                  "pil (PNG; the default for images), mp4 (the default for videos), frames "
                  "(numbered PNGs of a video) or latent (safetensors)")
      ->check(CLI::IsMember({"pil", "latent", "mp4", "frames"}));
  sub->add_option(flag("prompt_embeds"), opt->prompt_embeds,
                  "safetensors with precomputed prompt_embeds, pooled_prompt_embeds, "
                  "negative_prompt_embeds, negative_pooled_prompt_embeds, "
                  "prompt_attention_mask, negative_prompt_attention_mask (instead of --prompt)");
  sub->add_option("--latents", opt->latents,
                  "safetensors with the initial `latents` in the pipeline's shape (Flux: packed)");
  sub->add_option(flag("max_sequence_length"), opt->max_sequence_length,
                  "T5 tokens (default: Flux 512, SD3 256, PixArt-Sigma 300, PixArt-Alpha 120)");
  sub->add_option(flag("num_frames"), opt->num_frames,
                  "Video frames, 4k+1 (default: Wan 81, HunyuanVideo 129); video pipelines only");
  sub->add_option("--fps", opt->fps,
                  "Frame rate of the MP4 (default: Wan 16, HunyuanVideo 15)");
  sub->add_option(flag("true_cfg_scale"), opt->true_cfg_scale,
                  "HunyuanVideo: classifier-free guidance over the negative embeddings when > 1 "
                  "(default 1: off; --guidance_scale is its guidance embedding)");
  sub->add_option(flag("guidance_scale_2"), opt->guidance_scale_2,
                  "Wan2.2 two-expert models (boundary_ratio): guidance of the low-noise expert "
                  "transformer_2 (default: --guidance_scale)");
  sub->add_flag(flag("dry_run"), opt->dry_run,
                "Print the per-rank memory estimate of the parallel layout the flags give "
                "(weights, activations, K/V buffers, from the configs and weight headers) and "
                "exit without loading weights; needs no mpirun");
  add_device_flags(sub, &opt->device);
  add_parallel_flags(sub, &opt->parallel);
  add_cache_flags(sub, &opt->cache);
  commands.push_back({sub, [opt] { return run_generate(*opt); }});
}

}  // namespace paradit::cli
