#pragma once
// Text-to-image pipelines that follow diffusers' __call__ step for step: encode the prompt, draw
// or take the initial latents, set the scheduler's timesteps, denoise with the transformer
// (classifier-free guidance as each pipeline does it), decode with the VAE.
//
//   auto pipe = pipelines::Pipeline::open("models/shapes-pixart");
//   GenerateRequest req;  req.prompts = {"a small red circle on the left on a blue background"};
//   GenerateResult out = pipe->generate(req);   // out.images (B, 3, H, W) in [-1, 1]
//
// Supported model_index.json classes: FluxPipeline, StableDiffusion3Pipeline,
// PixArtSigmaPipeline, PixArtAlphaPipeline, DiTPipeline, and the text-to-video WanPipeline and
// HunyuanVideoPipeline (is_video(): latents (B, C, latent frames, h, w), videos (B, 3, F, H, W)).
//
// Memory: each text encoder is loaded, run once over every prompt (conditional and
// unconditional texts batched together) and destroyed before the transformer is loaded; the
// transformer is released before the VAE decodes. set_keep_loaded(true) (a server) instead
// loads each component on first use and keeps it for the next calls.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/tensor.h"
#include "io/diffusers.h"
#include "models/step_cache.h"
#include "models/transformer.h"
#include "parallel/config.h"
#include "pipelines/memory_estimate.h"
#include "pipelines/text_encoding.h"

namespace paradit::schedulers {
class Scheduler;
}
namespace paradit::models::vae {
class AutoencoderKL;
}

namespace paradit::pipelines {

using NamedTensors = models::NamedTensors;

// One generation call, as the arguments of diffusers' pipeline __call__. Unset fields take the
// pipeline's defaults (Pipeline::defaults()); Pipeline::resolve() fills them all in.
struct GenerateRequest {
  // One image per prompt. For DiTPipeline a prompt is a class id ("207") or a label of the
  // model_index.json id2label table ("golden retriever").
  std::vector<std::string> prompts;
  std::optional<std::string> negative_prompt;  // SD3 / PixArt ("" when unset); Flux ignores it
  std::optional<int64_t> height;               // pixels; unset = the model's default size
  std::optional<int64_t> width;
  std::optional<int> num_inference_steps;
  std::optional<double> guidance_scale;
  std::optional<int> max_sequence_length;      // T5 tokens
  // Video pipelines only: frames of the video (1 + temporal factor · k); unset = the default.
  std::optional<int64_t> num_frames;
  // HunyuanVideoPipeline's true_cfg_scale: classifier-free guidance over negative embeddings
  // when > 1 (its guidance_scale is the distilled guidance embedding). Others ignore it.
  std::optional<double> true_cfg_scale;
  // WanPipeline with two experts (Wan2.2 A14B, boundary_ratio): the guidance of the low-noise
  // expert transformer_2; unset = guidance_scale. Refused by a pipeline without boundary_ratio.
  std::optional<double> guidance_scale_2;
  uint64_t seed = 0;
  // The initial latents in the shape the diffusers pipeline takes (Flux: packed (B, S, C·4));
  // undefined = drawn from `seed` with core::randn.
  core::Tensor latents;
  // Precomputed embeddings named as diffusers' __call__ arguments (prompt_embeds,
  // pooled_prompt_embeds, negative_prompt_embeds, negative_pooled_prompt_embeds,
  // prompt_attention_mask, negative_prompt_attention_mask); empty = encode `prompts`. Missing
  // negative embeddings are encoded from negative_prompt, as diffusers does.
  NamedTensors prompt_embeds;
  bool decode = true;  // false: output_type="latent" (no VAE)
  // Step caching (--use_fbcache / --use_teacache, models/step_cache.h); off by default.
  models::StepCacheOptions cache;
};

// The most denoising steps a request may ask for (the schedulers keep per-step tables).
inline constexpr int64_t kMaxInferenceSteps = 10000;

struct PipelineDefaults {
  int num_inference_steps = 20;
  double guidance_scale = 4.5;
  int max_sequence_length = 0;  // 0: the pipeline has no text encoder
  int64_t height = 0;
  int64_t width = 0;
  int64_t num_frames = 0;  // 0: an image pipeline; video pipelines: their default frame count
  double fps = 0;          // video pipelines: the frame rate their examples export at
  // Video frames to bytes: true rounds (diffusers' output_type "pil", HunyuanVideo's default),
  // false truncates (output_type "np", Wan's default, then export_to_video).
  bool round_frames = false;
};

// Wall-clock seconds of each phase of generate().
struct PhaseTimes {
  double load = 0;     // reading configs and binding weights (text encoders, transformer, VAE)
  double text = 0;     // tokenizing and running the text encoders
  double denoise = 0;  // the denoising loop
  double decode = 0;   // VAE decode
};

struct StepEvent {
  int index = 0;  // 0-based
  int total = 0;
  double timestep = 0;
  double seconds = 0;  // this step's wall-clock time
  core::Tensor latents;  // the latents after this step (shared, do not modify)
  // Decodes this step's predicted clean latents (the scheduler's x0 from the step's model output)
  // into images as the final decode would: (B, 3, H, W). Costs a VAE decode on the calling rank
  // alone (not collective), so call it only for the steps that need a preview, inside the
  // callback. Empty where there is none: video pipelines, PipeFusion, a scheduler without a data
  // prediction.
  std::function<core::Tensor()> preview = {};
};
using StepCallback = std::function<void(const StepEvent&)>;

// What step caching did in one call (GenerateResult::cache): the same on every rank.
struct StepCacheReport {
  models::StepCacheOptions options;              // method kNone: no caching
  std::vector<int> computed_steps;               // 0-based steps whose layers all ran
  std::vector<int> reused_steps;                 // steps that reused the cached residual
  std::vector<models::StepCacheRecord> records;  // per step: the distance, the decision
  // The time the reused steps saved, estimated on this rank: their count times the mean time
  // of a computed step, less the time they took.
  double saved_seconds = 0;
  bool enabled() const { return options.enabled(); }
  // "step cache (fbcache threshold 0.12): 14 of 20 steps computed in full, 6 reused; about
  // 1.83 s saved; reused steps 4,6,9,11,14,17" (1-based, as the progress lines count)
  std::string line() const;
};

struct GenerateResult {
  NamedTensors embeddings;       // encode_prompt's outputs (diffusers' names)
  core::Tensor initial_latents;  // as the pipeline took them (Flux: packed)
  core::Tensor latents;          // final latents = pipe(..., output_type="latent")
  core::Tensor images;           // (B, 3, H, W) decoded, range about [-1, 1]; undefined when
                                 // !decode. io::to_rgb8 applies diffusers' postprocess.
                                 // Video pipelines: (B, 3, F, H, W) (io::to_rgb8_video).
  std::vector<double> timesteps;  // the scheduler's timesteps
  PhaseTimes times;
  // PipeFusion: the bytes of transformer weights this rank's stage holds (0 otherwise).
  size_t stage_weight_bytes = 0;
  StepCacheReport cache;  // step caching, when the request asked for it
};

class Pipeline {
 public:
  virtual ~Pipeline();

  // Reads model_index.json and the component configs (no weights yet). Error naming the folder
  // or class when it is not a supported pipeline.
  static std::unique_ptr<Pipeline> open(const std::filesystem::path& dir);

  const std::filesystem::path& root() const { return root_; }
  const std::string& class_name() const { return class_name_; }
  const PipelineDefaults& defaults() const { return defaults_; }
  // Height and width must be multiples of this: VAE scale × transformer patch size.
  int64_t size_multiple() const { return size_multiple_; }
  bool has_text_encoder() const { return defaults_.max_sequence_length > 0; }
  // A text-to-video pipeline (num_frames, (B, C, f, h, w) latents, (B, 3, F, H, W) videos).
  bool is_video() const { return defaults_.num_frames > 0; }
  // Video frames per latent frame after the first (the VAE's temporal factor).
  int64_t temporal_factor() const { return temporal_factor_; }

  // The request with defaults filled in, after every check that needs no weights (sizes,
  // steps, prompts vs embeddings, given latents' shape). Error with one line naming the
  // argument on bad input.
  GenerateRequest resolve(const GenerateRequest& request) const;
  // Images the request makes.
  int64_t batch_size(const GenerateRequest& resolved) const;
  // The initial latents' shape (Flux: packed).
  virtual core::Shape latent_shape(int64_t batch, int64_t height, int64_t width) const;
  // The initial latents' shape of a resolved request: latent_shape(batch, height, width), or for
  // video (batch, C, (num_frames − 1) / temporal factor + 1, height / 8, width / 8).
  core::Shape initial_latent_shape(const GenerateRequest& resolved) const;

  // diffusers' encode_prompt for the whole batch: loads, runs and frees the text encoders.
  // `resolved` comes from resolve(). Returns the embeddings by diffusers' names; the negative
  // ones only when classifier-free guidance is on.
  virtual NamedTensors encode_prompt(const GenerateRequest& resolved) = 0;

  // The whole call. `on_step` (optional) runs after every denoising step.
  // With a runtime (set_runtime) the call is collective over its world: data parallel gives
  // each dp group its contiguous block of the batch (dp_block; the result then holds only that
  // block, latents drawn for the whole batch and sliced, so they equal one process's); every
  // transformer forward runs sequence / CFG parallel (run_transformer); use_parallel_vae decodes
  // row-parallel over the ranks of this dp group.
  GenerateResult generate(const GenerateRequest& request, const StepCallback& on_step = {});

  // Keep-loaded mode (off by default): the text encoders, transformer and image VAE are loaded
  // on their first use and kept for the later generate() calls, instead of each being freed as
  // soon as its phase is done. Turning it off frees what is kept. Not thread-safe: one
  // generate() at a time per Pipeline (the server runs one job at a time per group).
  void set_keep_loaded(bool keep);
  bool keep_loaded() const { return keep_loaded_; }
  // Keep-loaded mode: loads now what generate() would load on first use (the text encoders, by
  // encoding an empty prompt, the transformer unless PipeFusion loads stages, the image VAE), so
  // a server fails at start rather than at its first request. No-op otherwise. Not collective.
  void preload();

  // Where the components run (default: the CPU, F32 weights): every text encoder, transformer
  // and VAE is loaded onto placement.device with its matrices in placement.dtype; the latents,
  // the guidance and the scheduler's math stay in F32 on that device; results (latents,
  // images) come back to the host in F32. Frees what keep-loaded mode kept when it changes.
  void set_placement(const core::Placement& placement);
  const core::Placement& placement() const { return place_; }

  // Runs the next generate() calls over `runtime` (null: single process). The runtime must
  // outlive those calls.
  void set_runtime(const parallel::ParallelRuntime* runtime) { runtime_ = runtime; }
  // Without a runtime (a server's front end that checks requests for workers it runs): resolve()
  // also checks requests against this layout, so a request the workers' layout cannot cut is
  // refused before it is queued.
  void set_admission_layout(const parallel::ParallelConfig& config);
  // The per-rank memory of this request under `layout` (pipelines/memory_estimate.h), from the
  // configs and weight headers alone: nothing is loaded. Not collective.
  MemoryEstimate estimate_memory(const GenerateRequest& resolved,
                                 const parallel::ParallelConfig& layout) const;
  // This rank's dp group's samples [begin, end) of a batch of `batch`: contiguous equal blocks
  // in dp order. A batch that the dp degree does not divide → Error naming both.
  std::pair<int64_t, int64_t> dp_block(int64_t batch) const;

 protected:
  Pipeline(const io::ModelFolder& folder, std::string class_name);

  // Whether the resolved request runs classifier-free guidance.
  virtual bool uses_cfg(const GenerateRequest& resolved) const;
  // Family checks of a resolved request (embedding names and shapes, max_sequence_length).
  virtual void check_request(const GenerateRequest& resolved) const {}
  // Refuses a request whose outputs alone would not fit in the memory available now (a lower
  // bound from the sizes; see pipeline.cpp), naming what it needs and what there is.
  void check_memory(const GenerateRequest& resolved, int64_t batch) const;
  // The request's sizes against a parallel layout (PipeFusion patches, parallel-VAE bands over
  // a replica group of `replica_size` ranks); part of resolve() when a runtime or an admission
  // layout is set.
  void check_layout(const GenerateRequest& resolved, const parallel::ParallelConfig& config,
                    int replica_size) const;
  // Error naming the step count when the scheduler's sigmas or timesteps are NaN or inf.
  void check_schedule(const schedulers::Scheduler& scheduler,
                      const GenerateRequest& resolved) const;
  // Error naming `what` (the step, or the decoded pixels) when x holds NaN or inf.
  void check_finite(const core::Tensor& x, const std::string& what,
                    const GenerateRequest& resolved) const;
  // The initial latents from the seed (Flux draws them unpacked, then packs them).
  virtual core::Tensor draw_latents(int64_t batch, int64_t height, int64_t width,
                                    uint64_t seed) const;
  // The initial latents of a resolved request from its seed: draw_latents, or for video
  // core::randn(initial_latent_shape(resolved)).
  core::Tensor initial_latents(const GenerateRequest& resolved) const;
  // scheduler.set_timesteps as the pipeline calls it.
  virtual void set_timesteps(schedulers::Scheduler& scheduler, const GenerateRequest& resolved,
                             const core::Tensor& latents) const;
  // The per-call inputs that do not change from step to step (batched text conditioning, ids).
  virtual NamedTensors prepare_conditioning(const NamedTensors& embeddings,
                                            const GenerateRequest& resolved,
                                            const core::Tensor& latents) const = 0;
  // One step's guided model output for scheduler.step, shaped like `latents`. The default is
  // guided_output(run_transformer(model, model_inputs(...))).
  virtual core::Tensor predict_noise(const models::Transformer& model, const core::Tensor& latents,
                                     double timestep, const NamedTensors& conditioning,
                                     const GenerateRequest& resolved) const;
  // The two halves of predict_noise, which PipeFusion runs apart (the image families implement
  // them; the defaults fail). model_inputs: the transformer's inputs for `latents` at
  // `timestep` (with the uncond/cond batch of CFG). guided_output: the guided noise for
  // scheduler.step from the transformer's output on that batch — element by element over the
  // image rows, so it applies to one PipeFusion patch as well.
  virtual NamedTensors model_inputs(const core::Tensor& latents, double timestep,
                                    const NamedTensors& conditioning,
                                    const GenerateRequest& resolved) const;
  virtual core::Tensor guided_output(const core::Tensor& model_output,
                                     const GenerateRequest& resolved) const;
  // Where PipeFusion's patches lie in the latents: token row j is entries
  // [j·per_token_row, (j+1)·per_token_row) along `dim`.
  struct LatentRows {
    int dim = 2;                // (B, C, h, w): the latent rows
    int64_t per_token_row = 1;  // the transformer's patch size
  };
  virtual LatentRows latent_rows(const GenerateRequest& resolved) const;
  // The noise a stochastic step (DDPM) draws: stream 1 + step of the seed for the whole batch,
  // sliced to this dp group's block [block_begin, block_end), so it equals one process's.
  core::Tensor step_noise(const schedulers::Scheduler& scheduler, int step,
                          const core::Shape& latents_shape, int64_t full_batch,
                          int64_t block_begin, int64_t block_end, uint64_t seed) const;
  // The denoising loop under PipeFusion (pipefusion.cpp): loads this rank's stage of the
  // transformer, runs the warm-up steps over the whole image and streams the patches through
  // the stages after them; returns the final latents on every rank. Collective over the mesh.
  // Adds the stage's load time to res.times.load (and to pipefusion_load_seconds_).
  core::Tensor denoise_pipefusion(core::Tensor latents, const NamedTensors& conditioning,
                                  const GenerateRequest& resolved, GenerateResult& res,
                                  const StepCallback& on_step, int64_t full_batch,
                                  int64_t block_begin, int64_t block_end);
  double pipefusion_load_seconds_ = 0;
  // Final latents → (B, 3, H, W) images (unpack, unscale, decode).
  virtual core::Tensor decode_latents(const models::vae::AutoencoderKL& vae,
                                      const core::Tensor& latents,
                                      const GenerateRequest& resolved) const;
  // Video pipelines' decode step, in place of decode_latents: loads the family's own video VAE,
  // de-normalizes and decodes (B, C, f, h, w) latents → (B, 3, F, H, W), one video at a time
  // (row-parallel over vae_group_ when set). Adds its load and decode seconds to `times`.
  virtual core::Tensor decode_video(const core::Tensor& latents, const GenerateRequest& resolved,
                                    PhaseTimes* times) const;
  // An image pipeline whose VAE is not an AutoencoderKL (Qwen-Image's Wan-style VAE): generate()
  // then decodes through decode_video, which returns (B, 3, H, W) images.
  virtual bool own_decoder() const { return false; }

  // model.forward(inputs) through the runtime, when there is one: the batch split across the
  // cfg ranks ([uncond, cond] halves, one all-gather) when it divides, sequence parallel inside.
  core::Tensor run_transformer(const models::Transformer& model, const NamedTensors& inputs) const;

  const parallel::ParallelRuntime* runtime_ = nullptr;
  std::optional<parallel::ParallelConfig> admission_layout_;  // set_admission_layout
  // The step cache of the generate() call under way (null: no caching): run_transformer and the
  // PipeFusion loop run the transformer through it.
  models::StepCache* step_cache_ = nullptr;
  core::Placement place_;
  // The ranks that decode one image together (--use_parallel_vae); null: decode alone.
  const comm::Communicator* vae_group_ = nullptr;

  // Load time spent inside encode_prompt (text encoders), added to PhaseTimes::load.
  double text_load_seconds_ = 0;

  // The transformer / image VAE for this call: the kept one, or loaded (and kept when
  // keep_loaded_). Their time goes to the caller's PhaseTimes::load.
  std::shared_ptr<const models::Transformer> transformer_for_call();
  std::shared_ptr<const models::vae::AutoencoderKL> vae_for_call();
  bool keep_loaded_ = false;
  // Denoising models a family uses besides the transformer (Wan2.2's low-noise expert):
  // load_extra_models runs in generate()'s load phase right after the transformer is loaded
  // (and in preload), release_extra_models right after the loop, where the transformer goes.
  virtual void load_extra_models() {}
  virtual void release_extra_models() {}
  TextEncoderCache text_encoders_;  // used by encode_prompt in keep-loaded mode
  std::shared_ptr<const models::Transformer> kept_transformer_;
  std::shared_ptr<const models::vae::AutoencoderKL> kept_vae_;

  std::filesystem::path root_;
  std::string class_name_;
  io::ModelFolder folder_;
  io::Config transformer_config_;
  io::Config vae_config_;
  std::filesystem::path scheduler_config_path_;
  int64_t vae_scale_factor_ = 8;
  int64_t latent_channels_ = 4;  // the transformer's in_channels (Flux: in_channels / 4)
  int64_t size_multiple_ = 8;
  int64_t temporal_factor_ = 1;  // video pipelines: the VAE's scale_factor_temporal
  PipelineDefaults defaults_;
};

// ---------------------------------------------------------------- utilities
// The folder of the shipped default model (models/shapes-pixart). Looked up in order:
// $PARADIT_MODELS_DIR/shapes-pixart, <exe dir>/../models/shapes-pixart,
// <exe dir>/../share/paradit/models/shapes-pixart, <exe dir>/models/shapes-pixart, then the
// source tree's models/ (the PARADIT_MODELS_DIR compile definition). Error listing the places
// tried when none exists.
std::filesystem::path default_model_dir();

// "out.png" with index 1 → "out_1.png" (the file of prompt `index` when there are several).
std::filesystem::path indexed_output_path(const std::filesystem::path& path, int64_t index);

}  // namespace paradit::pipelines
