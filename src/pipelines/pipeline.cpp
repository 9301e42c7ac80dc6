#include "pipelines/pipeline.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>

#include "core/error.h"
#include "core/ops.h"
#include "core/random.h"
#include "models/vae/autoencoder_kl.h"
#include "parallel/batch.h"
#include "parallel/pipefusion.h"
#include "parallel/vae_patch.h"
#include "pipelines/families.h"
#include "pipelines/llm_families.h"
#include "pipelines/vae_decode.h"
#include "schedulers/scheduler.h"

namespace paradit::pipelines {

namespace fs = std::filesystem;
using core::Tensor;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Sets the pipeline's step-cache pointer for one generate() call and clears it on every exit.
class StepCacheScope {
 public:
  StepCacheScope(models::StepCache** slot, models::StepCache* cache) : slot_(slot) {
    *slot_ = cache;
  }
  ~StepCacheScope() { *slot_ = nullptr; }
  StepCacheScope(const StepCacheScope&) = delete;
  StepCacheScope& operator=(const StepCacheScope&) = delete;

 private:
  models::StepCache** slot_;
};

// The cache's decisions and the time the reused steps saved (this rank's step times).
StepCacheReport cache_report(const models::StepCache& cache, const std::vector<double>& seconds) {
  StepCacheReport rep;
  rep.options = cache.options();
  rep.computed_steps = cache.computed_steps();
  rep.reused_steps = cache.reused_steps();
  rep.records = cache.records();
  double computed = 0, reused = 0;
  for (int i : rep.computed_steps) computed += seconds[static_cast<size_t>(i)];
  for (int i : rep.reused_steps) reused += seconds[static_cast<size_t>(i)];
  if (!rep.computed_steps.empty()) {
    const double mean = computed / static_cast<double>(rep.computed_steps.size());
    rep.saved_seconds = mean * static_cast<double>(rep.reused_steps.size()) - reused;
  }
  return rep;
}

}  // namespace

std::string StepCacheReport::line() const {
  if (!enabled()) return "step cache: off";
  const size_t total = computed_steps.size() + reused_steps.size();
  std::string list;  // 1-based, as the progress lines count steps
  for (size_t k = 0; k < reused_steps.size(); ++k) {
    if (k > 0) list += ',';
    list += std::to_string(reused_steps[k] + 1);
  }
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "step cache (%s): %zu of %zu steps computed in full, %zu reused; about %.2f s "
                "saved",
                options.describe().c_str(), computed_steps.size(), total, reused_steps.size(),
                saved_seconds);
  std::string out = buf;
  if (!list.empty()) {
    out += "; reused steps ";
    out += list;
  }
  return out;
}

// ---------------------------------------------------------------- open

Pipeline::~Pipeline() = default;

Pipeline::Pipeline(const io::ModelFolder& folder, std::string class_name)
    : root_(folder.root()), class_name_(std::move(class_name)), folder_(folder) {
  transformer_config_ = io::Config::load(folder_.component("transformer").dir / "config.json");
  scheduler_config_path_ = folder_.component("scheduler").dir / "scheduler_config.json";
  PARADIT_CHECK(fs::exists(scheduler_config_path_), scheduler_config_path_.string(),
                ": file not found (the pipeline's scheduler config)");
  vae_config_ = io::Config::load(folder_.component("vae").dir / "config.json");
  const auto blocks = vae_config_.get_int_list("block_out_channels", {64});
  PARADIT_CHECK(!blocks.empty(), vae_config_.where(), ": block_out_channels is empty");
  // diffusers: vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
  vae_scale_factor_ = int64_t{1} << (blocks.size() - 1);
}

std::unique_ptr<Pipeline> Pipeline::open(const fs::path& dir) {
  const io::ModelFolder folder = io::ModelFolder::open(dir.string());
  PARADIT_CHECK(folder.is_pipeline(), folder.root().string(),
                ": not a pipeline folder (no model_index.json); generate needs a whole diffusers "
                "pipeline (transformer, vae, scheduler, text encoders)");
  const std::string cls = folder.pipeline_class();
  if (cls == "FluxPipeline") return make_flux_pipeline(folder);
  if (cls == "StableDiffusion3Pipeline") return make_sd3_pipeline(folder);
  if (cls == "PixArtSigmaPipeline" || cls == "PixArtAlphaPipeline") {
    return make_pixart_pipeline(folder);
  }
  if (cls == "DiTPipeline") return make_dit_pipeline(folder);
  if (cls == "WanPipeline") return make_wan_pipeline(folder);
  if (cls == "HunyuanVideoPipeline") return make_hunyuan_video_pipeline(folder);
  if (auto pipeline = make_llm_family_pipeline(folder)) return pipeline;
  fail((folder.root() / "model_index.json").string(), ": pipeline class '", cls,
       "' is not supported (supported: FluxPipeline, StableDiffusion3Pipeline, "
       "PixArtSigmaPipeline, PixArtAlphaPipeline, DiTPipeline, WanPipeline, "
       "HunyuanVideoPipeline, Flux2Pipeline, Flux2KleinPipeline, ZImagePipeline, "
       "QwenImagePipeline)");
}

// ---------------------------------------------------------------- requests

int64_t Pipeline::batch_size(const GenerateRequest& r) const {
  const auto it = r.prompt_embeds.find("prompt_embeds");
  if (it != r.prompt_embeds.end() && it->second.defined() && it->second.ndim() >= 1) {
    return it->second.dim(0);
  }
  return static_cast<int64_t>(r.prompts.size());
}

core::Shape Pipeline::latent_shape(int64_t batch, int64_t height, int64_t width) const {
  return {batch, latent_channels_, height / vae_scale_factor_, width / vae_scale_factor_};
}

core::Shape Pipeline::initial_latent_shape(const GenerateRequest& r) const {
  const int64_t batch = batch_size(r);
  if (!is_video()) return latent_shape(batch, *r.height, *r.width);
  return {batch, latent_channels_, (*r.num_frames - 1) / temporal_factor_ + 1,
          *r.height / vae_scale_factor_, *r.width / vae_scale_factor_};
}

bool Pipeline::uses_cfg(const GenerateRequest& r) const { return *r.guidance_scale > 1.0; }

GenerateRequest Pipeline::resolve(const GenerateRequest& request) const {
  GenerateRequest r = request;
  if (!r.height) r.height = defaults_.height;
  if (!r.width) r.width = defaults_.width;
  if (!r.num_inference_steps) r.num_inference_steps = defaults_.num_inference_steps;
  if (!r.guidance_scale) r.guidance_scale = defaults_.guidance_scale;
  if (!r.max_sequence_length) r.max_sequence_length = defaults_.max_sequence_length;
  if (is_video()) {
    if (!r.num_frames) r.num_frames = defaults_.num_frames;
    const int64_t f = *r.num_frames, k = temporal_factor_;
    // diffusers rounds a count off the grid down with a warning; a wrong count is refused here.
    PARADIT_CHECK(f >= 1 && (f - 1) % k == 0, "--num_frames: ", class_name_, " needs ", k,
                  "k+1 frames (1, ", 1 + k, ", ", 1 + 2 * k, ", ...), found ", f);
  } else {
    PARADIT_CHECK(!r.num_frames, "--num_frames: ", class_name_,
                  " makes images; --num_frames is for video pipelines");
  }

  const int64_t m = size_multiple_;
  for (const auto& [flag, v] : {std::pair{"--height", *r.height}, std::pair{"--width", *r.width}}) {
    PARADIT_CHECK(v >= 1 && v % m == 0, flag, ": ", class_name_, " needs a positive multiple of ",
                  m, " (VAE scale ", vae_scale_factor_, " x patch ", m / vae_scale_factor_,
                  "), found ", v);
  }
  PARADIT_CHECK(*r.num_inference_steps >= 1 && *r.num_inference_steps <= kMaxInferenceSteps,
                "--num_inference_steps: must be in [1, ", kMaxInferenceSteps, "], found ",
                *r.num_inference_steps);
  PARADIT_CHECK(std::isfinite(*r.guidance_scale), "--guidance_scale: must be a finite number");
  if (has_text_encoder()) {
    PARADIT_CHECK(*r.max_sequence_length >= 1,
                  "--max_sequence_length: must be at least 1, found ", *r.max_sequence_length);
  }

  const bool have_embeds = !r.prompt_embeds.empty();
  PARADIT_CHECK(!(have_embeds && !r.prompts.empty()),
                "--prompt and --prompt_embeds: give one of them, not both");
  PARADIT_CHECK(have_embeds || !r.prompts.empty(),
                "--prompt: no prompt given (give --prompt TEXT or --prompt_embeds FILE)");
  if (have_embeds) {
    PARADIT_CHECK(has_text_encoder(), "--prompt_embeds: ", class_name_,
                  " is class-conditional and takes no prompt embeddings");
    const Tensor pe = detail::find(r.prompt_embeds, "prompt_embeds");
    PARADIT_CHECK(pe.defined(), "--prompt_embeds: tensor 'prompt_embeds' is missing");
  }
  check_request(r);
  r.cache.validate();

  const int64_t batch = batch_size(r);
  PARADIT_CHECK(batch >= 1, "--prompt: the batch is empty");
  check_memory(r, batch);
  if (r.latents.defined()) {
    const core::Shape want = initial_latent_shape(r);
    PARADIT_CHECK(r.latents.shape() == want, "--latents: tensor 'latents' has shape ",
                  core::shape_str(r.latents.shape()), ", ", class_name_, " expects ",
                  core::shape_str(want), " for ", batch,
                  is_video() ? " video(s) of " : " image(s) of ", *r.width, "x", *r.height,
                  " (width x height)",
                  is_video() ? " with " + std::to_string(*r.num_frames) + " frames" : "");
    PARADIT_CHECK(core::is_floating(r.latents.dtype()), "--latents: tensor 'latents' has dtype ",
                  core::dtype_name(r.latents.dtype()), ", expected a float type");
  }
  if (runtime_) {
    check_layout(r, runtime_->config(), runtime_->mesh().replica_group().size());
  } else if (admission_layout_) {
    const parallel::ParallelConfig& c = *admission_layout_;
    check_layout(r, c, c.world_size() / c.dp);  // a replica: every rank of one dp group
  }
  return r;
}

void Pipeline::set_admission_layout(const parallel::ParallelConfig& config) {
  admission_layout_ = config;
}

void Pipeline::check_layout(const GenerateRequest& r, const parallel::ParallelConfig& c,
                            int replica_size) const {
  // What the parallel layout needs of the request's sizes, checked by the same code that later
  // cuts the work (PatchGrid, split_rows), so admission and the run cannot disagree.
  if (c.pp > 1) {
    const int P = c.pp;
    const int M = c.num_pipeline_patch > 0 ? c.num_pipeline_patch : P;
    PARADIT_CHECK(M >= P, "--num_pipeline_patch ", M, " is less than --pipefusion_parallel_degree ",
                  P, ": every stage needs a patch of its own to work on");
    PARADIT_CHECK(c.warmup_steps >= 1, "--warmup_steps must be at least 1 with PipeFusion (the "
                                       "first step fills every layer's K/V buffers)");
    const LatentRows rows = latent_rows(r);
    const core::Shape latent = initial_latent_shape(r);
    const int64_t token_rows = latent[static_cast<size_t>(rows.dim)] / rows.per_token_row;
    const parallel::PatchGrid grid(token_rows, 1, M);  // Error: a patch thinner than a token row
  }
  if (c.use_parallel_vae && r.decode) {
    // The decoder's bands: at least one latent row per rank of the replica group.
    parallel::split_rows(*r.height / vae_scale_factor_, replica_size);
  }
}

void Pipeline::check_memory(const GenerateRequest& r, int64_t batch) const {
  // A lower bound of what the request allocates, from sizes alone: the decoded pixels (F32 and
  // their 8-bit copy, on the host) and the VAE decoder's last layer at full resolution for one
  // frame (its input and output, on the model's device). The real peak is higher; this refuses
  // only what cannot fit at all, before anything is allocated.
  const double frames = is_video() ? static_cast<double>(*r.num_frames) : 1.0;
  const double frame_pixels = static_cast<double>(*r.height) * static_cast<double>(*r.width);
  const double pixels = static_cast<double>(batch) * frames * frame_pixels;
  const auto blocks = vae_config_.get_int_list("block_out_channels", {});
  const double channels =
      !blocks.empty() ? static_cast<double>(blocks.front())
                      : static_cast<double>(vae_config_.get_int("base_dim", 64));
  const double host_bytes = pixels * 3 * (sizeof(float) + 1);
  const double layer_bytes = 2 * channels * frame_pixels * sizeof(float);
  const auto gib = [](double bytes) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(1);
    s << bytes / double(1u << 30) << " GiB";
    return s.str();
  };
  const std::string what = std::to_string(batch) + (is_video() ? " video(s) of " : " image(s) of ") +
                           std::to_string(*r.width) + "x" + std::to_string(*r.height) +
                           (is_video() ? " x " + std::to_string(*r.num_frames) + " frames" : "");
  const bool on_host = place_.device == core::Device::CPU;
  const double host_need = host_bytes + (on_host ? layer_bytes : 0.0);
  const double host_have = static_cast<double>(core::available_memory(core::Device::CPU));
  PARADIT_CHECK(host_need <= host_have, "--height/--width: ", what, " need at least ",
                gib(host_need), " of memory (decoded pixels", on_host ? " and the VAE's last layer" : "",
                "); this machine has ", gib(host_have), " available");
  if (!on_host) {
    const double device_have = static_cast<double>(core::available_memory(place_.device));
    PARADIT_CHECK(layer_bytes <= device_have, "--height/--width: ", what, " need at least ",
                  gib(layer_bytes), " of GPU memory for the VAE's last layer; the GPU has ",
                  gib(device_have), " free");
  }
}

// ---------------------------------------------------------------- the call

Tensor Pipeline::draw_latents(int64_t batch, int64_t height, int64_t width, uint64_t seed) const {
  return core::randn(latent_shape(batch, height, width), seed);  // (B, C, h, w)
}

Tensor Pipeline::initial_latents(const GenerateRequest& r) const {
  if (!is_video()) return draw_latents(batch_size(r), *r.height, *r.width, r.seed);
  return core::randn(initial_latent_shape(r), r.seed);  // (B, C, f, h, w)
}

Tensor Pipeline::decode_video(const Tensor& latents, const GenerateRequest& r,
                              PhaseTimes* times) const {
  fail(class_name_, ": not a video pipeline (no video decode step)");
}

void Pipeline::set_timesteps(schedulers::Scheduler& scheduler, const GenerateRequest& r,
                             const Tensor& latents) const {
  scheduler.set_timesteps(*r.num_inference_steps);
}

Tensor Pipeline::decode_latents(const models::vae::AutoencoderKL& vae, const Tensor& latents,
                                const GenerateRequest& r) const {
  // PixArt and DiT divide by the scaling factor only (no shift term).
  return detail::decode_batch(vae, detail::unscale(latents, vae.scaling_factor(), std::nullopt),
                              vae_group_);
}

std::pair<int64_t, int64_t> Pipeline::dp_block(int64_t batch) const {
  if (!runtime_) return {0, batch};
  const comm::ProcessMesh& mesh = runtime_->mesh();
  const int dp = mesh.degree(comm::MeshDim::kDp);
  PARADIT_CHECK(batch % dp == 0, "--data_parallel_degree ", dp, ": the ", batch,
                " prompt(s) do not divide into ", dp, " equal groups");
  const int64_t share = batch / dp;
  const int64_t begin = share * mesh.coord(comm::MeshDim::kDp);
  return {begin, begin + share};
}

void Pipeline::set_placement(const core::Placement& placement) {
  const bool changed = placement.device != place_.device || placement.dtype != place_.dtype;
  place_ = placement;
  if (changed && keep_loaded_) {  // what was kept lives on the old placement
    text_encoders_.clear();
    kept_transformer_.reset();
    kept_vae_.reset();
  }
}

void Pipeline::set_keep_loaded(bool keep) {
  keep_loaded_ = keep;
  if (keep) return;
  text_encoders_.clear();
  kept_transformer_.reset();
  kept_vae_.reset();
}

void Pipeline::preload() {
  if (!keep_loaded_) return;
  if (has_text_encoder()) {
    const TextEncoderCache::Use kept_encoders(&text_encoders_);
    GenerateRequest warm;
    warm.prompts = {""};
    encode_prompt(resolve(warm));
  }
  if (!(runtime_ && runtime_->config().pp > 1)) {
    transformer_for_call();
    load_extra_models();
  }
  if (!is_video()) vae_for_call();
}

std::shared_ptr<const models::Transformer> Pipeline::transformer_for_call() {
  if (kept_transformer_) return kept_transformer_;
  std::shared_ptr<const models::Transformer> model =
      models::load_transformer(folder_.component("transformer").dir, place_,
                               runtime_ ? runtime_->tensor_parallel() : parallel::TensorParallel{});
  if (keep_loaded_) kept_transformer_ = model;
  return model;
}

std::shared_ptr<const models::vae::AutoencoderKL> Pipeline::vae_for_call() {
  if (kept_vae_) return kept_vae_;
  std::shared_ptr<const models::vae::AutoencoderKL> vae =
      models::vae::load_autoencoder_kl(folder_.component("vae").dir, place_);
  if (keep_loaded_) kept_vae_ = vae;
  return vae;
}

Tensor Pipeline::predict_noise(const models::Transformer& model, const Tensor& latents,
                               double timestep, const NamedTensors& conditioning,
                               const GenerateRequest& r) const {
  // The guidance and the scheduler work in F32 (the transformer may run in BF16).
  return guided_output(
      run_transformer(model, model_inputs(latents, timestep, conditioning, r)).to(core::DType::F32),
      r);  // latents' shape
}

NamedTensors Pipeline::model_inputs(const Tensor&, double, const NamedTensors&,
                                    const GenerateRequest&) const {
  fail(class_name_, ": this pipeline does not support PipeFusion");
}

Tensor Pipeline::guided_output(const Tensor&, const GenerateRequest&) const {
  fail(class_name_, ": this pipeline does not support PipeFusion");
}

Pipeline::LatentRows Pipeline::latent_rows(const GenerateRequest&) const {
  return {2, size_multiple_ / vae_scale_factor_};
}

Tensor Pipeline::step_noise(const schedulers::Scheduler& scheduler, int step,
                            const core::Shape& latents_shape, int64_t full_batch,
                            int64_t block_begin, int64_t block_end, uint64_t seed) const {
  if (!scheduler.needs_noise(static_cast<size_t>(step))) return {};
  // Stochastic steps (DDPM) draw from stream 1 + step, never overlapping the initial latents;
  // drawn for the whole batch and sliced to this dp block, as for the initial latents.
  core::Shape full_shape = latents_shape;
  full_shape[0] = full_batch;
  return core::randn(full_shape, seed, 1 + static_cast<uint64_t>(step))
      .slice(0, block_begin, block_end)
      .contiguous()
      .to_device(place_.device);  // latents' shape
}

Tensor Pipeline::run_transformer(const models::Transformer& model,
                                 const NamedTensors& inputs) const {
  models::StepCache* cache = step_cache_;
  if (!runtime_)
    return cache ? cache->forward(model, inputs, nullptr, true) : model.forward(inputs);
  const comm::ProcessMesh& mesh = runtime_->mesh();
  const parallel::SequenceContext* sp = &runtime_->sequence();
  const int cfg = mesh.degree(comm::MeshDim::kCfg);
  const auto it = inputs.find("hidden_states");
  // The step cache's metric counts each row once: tensor-parallel ranks hold the same rows.
  const bool tp_first = mesh.coord(comm::MeshDim::kTp) == 0;
  // The dp groups already hold their own prompts: only the cfg halves are split here.
  if (cfg > 1 && it != inputs.end() && it->second.dim(0) % cfg == 0) {
    if (!cache) return models::parallel_forward(model, inputs, *runtime_, /*split_dp=*/false);
    return parallel::run_batch_parallel(
        inputs, "hidden_states", mesh,
        [&](const NamedTensors& share) { return cache->forward(model, share, sp, tp_first); },
        /*split_dp=*/false);
  }
  // No CFG batch to split (guidance off, or Flux): every cfg rank runs the same forward, and
  // the first one's rows count in the step cache's metric.
  if (cache) {
    return cache->forward(model, inputs, sp, tp_first && mesh.coord(comm::MeshDim::kCfg) == 0);
  }
  return model.forward(inputs, sp);
}

GenerateResult Pipeline::generate(const GenerateRequest& request, const StepCallback& on_step) {
  GenerateResult res;
  const GenerateRequest full = resolve(request);
  const int64_t full_batch = batch_size(full);
  // Data parallel: this dp group's block of the prompts, with the initial latents drawn for the
  // whole batch (as one process draws them) and sliced, so every image equals one process's.
  const auto [block_begin, block_end] = dp_block(full_batch);
  GenerateRequest local = full;
  if (block_end - block_begin != full_batch) {
    if (static_cast<int64_t>(local.prompts.size()) == full_batch) {
      local.prompts = std::vector<std::string>(full.prompts.begin() + block_begin,
                                               full.prompts.begin() + block_end);
    }
    for (auto& [name, t] : local.prompt_embeds) {
      if (t.defined() && t.ndim() >= 1 && t.dim(0) == full_batch) {
        t = t.slice(0, block_begin, block_end).contiguous();  // (block, ...)
      }
    }
    const Tensor all =
        full.latents.defined() ? full.latents.to(core::DType::F32) : initial_latents(full);
    local.latents = all.slice(0, block_begin, block_end).contiguous();  // (block, ...)
  }
  const GenerateRequest& r = local;
  // The ranks sharing this dp group's images decode them together: the mesh's replica group.
  const comm::Communicator* vae_group = nullptr;
  if (runtime_ && runtime_->config().use_parallel_vae) vae_group = &runtime_->mesh().replica_group();

  // 1. Prompt embeddings (the text encoders are freed inside, unless kept loaded).
  const TextEncoderCache::Use kept_encoders(keep_loaded_ ? &text_encoders_ : nullptr);
  text_load_seconds_ = 0;
  auto t0 = Clock::now();
  res.embeddings = encode_prompt(r);
  res.times.text = seconds_between(t0, Clock::now()) - text_load_seconds_;
  res.times.load += text_load_seconds_;

  // 2. Initial latents: given, or drawn from the seed (the whole tensor, on every rank).
  Tensor latents = r.latents.defined() ? r.latents.to(core::DType::F32).clone()
                                       : initial_latents(r);  // initial_latent_shape
  res.initial_latents = latents;
  latents = latents.to_device(place_.device);  // F32 on the pipeline's device

  // 3. Timesteps.
  t0 = Clock::now();
  std::unique_ptr<schedulers::Scheduler> scheduler =
      schedulers::load_scheduler(scheduler_config_path_);
  set_timesteps(*scheduler, r, latents);
  res.timesteps = scheduler->timesteps();
  check_schedule(*scheduler, r);

  // 4. Denoise. Under PipeFusion this rank holds only its stage's layers (pipefusion.cpp).
  const bool pipefusion = runtime_ && runtime_->config().pp > 1;
  std::shared_ptr<const models::Transformer> model =
      pipefusion ? nullptr : transformer_for_call();
  if (!pipefusion) load_extra_models();
  const NamedTensors conditioning = prepare_conditioning(res.embeddings, r, latents);
  res.times.load += seconds_between(t0, Clock::now());

  const auto denoise_start = Clock::now();
  const int steps = scheduler->num_inference_steps();
  pipefusion_load_seconds_ = 0;
  // Step caching: decisions over every rank of this generation (the runtime's world).
  std::unique_ptr<models::StepCache> cache;
  if (r.cache.enabled()) {
    cache = std::make_unique<models::StepCache>(r.cache, steps,
                                                runtime_ ? &runtime_->mesh().world() : nullptr);
  }
  const StepCacheScope cache_scope(&step_cache_, cache.get());
  std::vector<double> step_seconds(static_cast<size_t>(steps), 0.0);
  const StepCallback timed_on_step = [&](const StepEvent& e) {
    step_seconds[static_cast<size_t>(e.index)] = e.seconds;
    if (on_step) on_step(e);
  };
  if (pipefusion) {
    latents = denoise_pipefusion(latents, conditioning, r, res, timed_on_step, full_batch,
                                 block_begin, block_end);  // latents' shape
    check_finite(latents, "the latents after the last of " + std::to_string(steps) + " steps", r);
  }
  for (int i = 0; !pipefusion && i < steps; ++i) {
    const auto step_start = Clock::now();
    const double t = res.timesteps[static_cast<size_t>(i)];
    if (cache) cache->begin_step(i);
    const Tensor model_input = scheduler->scale_model_input(latents, static_cast<size_t>(i));
    const Tensor noise_pred = predict_noise(*model, model_input, t, conditioning, r);  // latents'
    const Tensor noise =
        step_noise(*scheduler, i, latents.shape(), full_batch, block_begin, block_end, r.seed);
    const Tensor sample = latents;
    latents = scheduler->step(noise_pred, static_cast<size_t>(i), latents, noise);
    check_finite(latents, "the latents after step " + std::to_string(i + 1) + " of " +
                              std::to_string(steps), r);
    step_seconds[static_cast<size_t>(i)] = seconds_between(step_start, Clock::now());
    if (on_step) {
      StepEvent e{i, steps, t, step_seconds[static_cast<size_t>(i)], latents};
      if (r.decode && !is_video()) {
        e.preview = [&, sample, noise_pred, i]() -> Tensor {
          const Tensor x0 = scheduler->predict_original(noise_pred, static_cast<size_t>(i), sample);
          if (!x0.defined()) return {};
          return decode_latents(*vae_for_call(), x0, r);  // (B, 3, H, W)
        };
      }
      on_step(e);
    }
  }
  res.times.denoise = seconds_between(denoise_start, Clock::now()) - pipefusion_load_seconds_;
  if (cache) res.cache = cache_report(*cache, step_seconds);
  model.reset();  // the transformer's weights go before the VAE's come (unless kept)
  release_extra_models();
  res.latents = latents.to_device(core::Device::CPU);

  // 5. Decode.
  if (r.decode && (is_video() || own_decoder())) {
    vae_group_ = vae_group;
    try {
      res.images = decode_video(latents, r, &res.times);  // (B, 3, F, H, W)
    } catch (...) {
      vae_group_ = nullptr;
      throw;
    }
    vae_group_ = nullptr;
  } else if (r.decode) {
    t0 = Clock::now();
    std::shared_ptr<const models::vae::AutoencoderKL> vae = vae_for_call();
    const auto t1 = Clock::now();
    res.times.load += seconds_between(t0, t1);
    vae_group_ = vae_group;
    try {
      res.images = decode_latents(*vae, latents, r);  // (B, 3, H, W)
    } catch (...) {
      vae_group_ = nullptr;
      throw;
    }
    vae_group_ = nullptr;
    res.times.decode = seconds_between(t1, Clock::now());
  }
  if (res.images.defined()) {
    check_finite(res.images, "the decoded pixels", r);
    res.images = res.images.to(core::DType::F32).to_device(core::Device::CPU);  // host F32
  }
  return res;
}

void Pipeline::check_schedule(const schedulers::Scheduler& scheduler,
                              const GenerateRequest& r) const {
  // A schedule can be NaN where diffusers' formulas divide by zero, e.g. FlowMatchEuler's
  // shift_terminal stretch with one step (1 − σ_last = 0): diffusers then draws a NaN image.
  const std::vector<double>& sigmas = scheduler.sigmas();
  const std::vector<double>& timesteps = scheduler.timesteps();
  for (size_t i = 0; i < std::max(sigmas.size(), timesteps.size()); ++i) {
    const bool ok = (i >= sigmas.size() || std::isfinite(sigmas[i])) &&
                    (i >= timesteps.size() || std::isfinite(timesteps[i]));
    PARADIT_CHECK(ok, "--num_inference_steps ", *r.num_inference_steps, ": the scheduler of ",
                  class_name_, " gives a non-finite sigma or timestep at index ", i,
                  " (its config's formulas divide by zero at this step count; try 2 or more)");
  }
  // Integer timesteps repeat when the steps outnumber the training timesteps; a multistep
  // solver then divides by a zero step (diffusers draws NaN).
  for (size_t i = 1; i < timesteps.size(); ++i) {
    PARADIT_CHECK(timesteps[i] != timesteps[i - 1], "--num_inference_steps ",
                  *r.num_inference_steps, ": the scheduler of ", class_name_,
                  " gives timestep ", timesteps[i], " twice (at indices ", i - 1, " and ", i,
                  "): more steps than it has distinct timesteps");
  }
}

void Pipeline::check_finite(const Tensor& x, const std::string& what,
                            const GenerateRequest& r) const {
  const int64_t bad = core::count_non_finite(x);
  if (bad == 0) return;
  std::ostringstream g;
  g << *r.guidance_scale;
  fail(what, " hold ", bad, " non-finite value(s) (NaN or inf) of ", x.numel(),
       ": the computation overflowed (--guidance_scale ", g.str(), ", --num_inference_steps ",
       *r.num_inference_steps, "); nothing was written");
}

// ---------------------------------------------------------------- shared helpers

namespace detail {

Tensor guide(const Tensor& uncond, const Tensor& cond, double guidance_scale) {
  PARADIT_CHECK(uncond.shape() == cond.shape(), "guidance: unconditional ",
                core::shape_str(uncond.shape()), " and conditional ", core::shape_str(cond.shape()),
                " outputs differ in shape");
  const float g = static_cast<float>(guidance_scale);
  // Three rounded f32 operations, as torch evaluates uncond + g * (cond - uncond).
  const Tensor diff = core::lincomb({{1.0f, cond}, {-1.0f, uncond}});  // cond − uncond
  return core::lincomb({{1.0f, uncond}, {g, diff}});                   // uncond's shape
}

Tensor unscale(const Tensor& latents, double scaling_factor, std::optional<double> shift_factor) {
  const float s = static_cast<float>(scaling_factor);
  const float shift = shift_factor ? static_cast<float>(*shift_factor) : 0.0f;
  // A division (not a product by 1/s), then the shift, as torch computes them in f32.
  return core::affine(latents.to(core::DType::F32), 0, core::AffineKind::kDivAdd, {shift},
                      {s});  // x's shape
}

Tensor decode_batch(const models::vae::AutoencoderKL& vae, const Tensor& z,
                    const comm::Communicator* group) {
  std::vector<Tensor> images;
  for (int64_t b = 0; b < z.dim(0); ++b) {
    const Tensor zb = z.slice(0, b, b + 1).contiguous();  // (1, C, h, w)
    images.push_back(group && group->size() > 1 ? decode_row_parallel(vae, zb, *group)
                                                : vae.decode(zb));  // (1, 3, H, W)
  }
  return images.size() == 1 ? images[0] : core::concat(images, 0);  // (B, 3, H, W)
}

Tensor decode_each_video(const Tensor& z, const std::function<Tensor(const Tensor&)>& decode_one) {
  std::vector<Tensor> videos;
  for (int64_t b = 0; b < z.dim(0); ++b) {
    videos.push_back(decode_one(z.slice(0, b, b + 1).contiguous()));  // (1, 3, F, H, W)
  }
  return videos.size() == 1 ? videos[0] : core::concat(videos, 0);  // (B, 3, F, H, W)
}

Tensor full_vector(int64_t n, float v) { return Tensor::full({n}, v); }

Tensor find(const NamedTensors& tensors, const std::string& name) {
  const auto it = tensors.find(name);
  return it == tensors.end() ? Tensor() : it->second;
}

void check_embedding(const Tensor& t, const std::string& name, int rank) {
  PARADIT_CHECK(t.defined(), "--prompt_embeds: tensor '", name, "' is missing");
  PARADIT_CHECK(t.ndim() == rank, "--prompt_embeds: tensor '", name, "' has shape ",
                core::shape_str(t.shape()), ", expected ", rank, " dimensions");
}

std::vector<std::string> negative_texts(const GenerateRequest& r, int64_t batch) {
  return std::vector<std::string>(static_cast<size_t>(batch), r.negative_prompt.value_or(""));
}

}  // namespace detail

// ---------------------------------------------------------------- utilities

fs::path default_model_dir() {
  constexpr const char* kName = "shapes-pixart";
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("PARADIT_MODELS_DIR"); env && *env) {
    candidates.push_back(fs::path(env) / kName);
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && !exe.empty()) {
    const fs::path dir = exe.parent_path();
    candidates.push_back(dir.parent_path() / "models" / kName);
    candidates.push_back(dir.parent_path() / "share" / "paradit" / "models" / kName);
    candidates.push_back(dir / "models" / kName);
  }
#ifdef PARADIT_MODELS_DIR
  candidates.push_back(fs::path(PARADIT_MODELS_DIR) / kName);
#endif
  std::string tried;
  for (const fs::path& c : candidates) {
    if (fs::exists(c / "model_index.json", ec)) return c.lexically_normal();
    tried += (tried.empty() ? "" : ", ") + c.string();
  }
  fail("--model: not given and the default model '", kName, "' was not found (tried: ", tried,
       "); pass --model DIR");
}

fs::path indexed_output_path(const fs::path& path, int64_t index) {
  fs::path out = path;
  out.replace_filename(path.stem().string() + "_" + std::to_string(index) +
                       path.extension().string());
  return out;
}

}  // namespace paradit::pipelines
