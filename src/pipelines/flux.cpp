// FluxPipeline (diffusers pipelines/flux): CLIP-L's pooled output + T5's sequence (no attention
// mask), txt_ids zeros, packed 2×2 latents with (0, row, col) image ids, the distilled guidance
// as an embedding (no negative prompt, no CFG batch), flow-match Euler over
// sigmas = linspace(1, 1/N, N) shifted by mu = calculate_shift(image tokens).
#include "core/error.h"
#include "core/ops.h"
#include "core/random.h"
#include "models/vae/autoencoder_kl.h"
#include "models/vae/latent_packing.h"
#include "pipelines/families.h"
#include "pipelines/text_encoding.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"

namespace paradit::pipelines {

namespace {

using core::Tensor;

class FluxPipeline : public Pipeline {
 public:
  explicit FluxPipeline(const io::ModelFolder& folder) : Pipeline(folder, folder.pipeline_class()) {
    in_channels_ = transformer_config_.get_int("in_channels", 64);
    latent_channels_ = in_channels_ / 4;
    guidance_embeds_ = transformer_config_.get_bool("guidance_embeds", false);
    // Latent height and width must be even for the 2×2 packing.
    size_multiple_ = vae_scale_factor_ * 2;
    defaults_.num_inference_steps = 28;
    defaults_.guidance_scale = 3.5;
    defaults_.max_sequence_length = 512;
    defaults_.height = 128 * vae_scale_factor_;  // default_sample_size 128
    defaults_.width = 128 * vae_scale_factor_;
  }

  // Packed: (B, (h/2)·(w/2), C·4) with h, w the latent sizes.
  core::Shape latent_shape(int64_t batch, int64_t height, int64_t width) const override {
    const int64_t h = models::vae::packed_latent_size(height, vae_scale_factor_);
    const int64_t w = models::vae::packed_latent_size(width, vae_scale_factor_);
    return {batch, (h / 2) * (w / 2), latent_channels_ * 4};
  }

  NamedTensors encode_prompt(const GenerateRequest& r) override {
    NamedTensors out;
    const Tensor given = detail::find(r.prompt_embeds, "prompt_embeds");
    if (given.defined()) {
      out["prompt_embeds"] = given.to(core::DType::F32);
      out["pooled_prompt_embeds"] =
          detail::find(r.prompt_embeds, "pooled_prompt_embeds").to(core::DType::F32);
    } else {
      const int clip_length = tokenizer_max_length(folder_.component("tokenizer").dir, 77);
      const TokenBatch clip_tokens =
          tokenize_clip(folder_.component("tokenizer").dir, r.prompts, clip_length);  // (B, 77)
      out["pooled_prompt_embeds"] = run_clip(folder_.component("text_encoder").dir, place_, clip_tokens,
                                             &text_load_seconds_)
                                        .pooled;  // (B, clip_hidden)
      const TokenBatch t5_tokens = tokenize_t5(folder_.component("tokenizer_2").dir, r.prompts,
                                               *r.max_sequence_length);  // (B, L)
      out["prompt_embeds"] = run_t5(folder_.component("text_encoder_2").dir, place_, t5_tokens, false,
                                    &text_load_seconds_);  // (B, L, t5_dim)
    }
    out["text_ids"] = Tensor::zeros({out["prompt_embeds"].dim(1), 3});  // (L, 3)
    return out;
  }

 protected:
  bool uses_cfg(const GenerateRequest&) const override { return false; }

  void check_request(const GenerateRequest& r) const override {
    PARADIT_CHECK(*r.max_sequence_length <= 512,
                  "--max_sequence_length: cannot be greater than 512, found ",
                  *r.max_sequence_length);
    if (r.prompt_embeds.empty()) return;
    const Tensor pe = detail::find(r.prompt_embeds, "prompt_embeds");
    detail::check_embedding(pe, "prompt_embeds", 3);
    const Tensor pp = detail::find(r.prompt_embeds, "pooled_prompt_embeds");
    detail::check_embedding(pp, "pooled_prompt_embeds", 2);
    PARADIT_CHECK(pp.dim(0) == pe.dim(0), "--prompt_embeds: tensor 'pooled_prompt_embeds' has ",
                  pp.dim(0), " rows, prompt_embeds has ", pe.dim(0));
  }

  // diffusers draws the unpacked (B, C, h, w) noise and packs it.
  Tensor draw_latents(int64_t batch, int64_t height, int64_t width, uint64_t seed) const override {
    const int64_t h = models::vae::packed_latent_size(height, vae_scale_factor_);
    const int64_t w = models::vae::packed_latent_size(width, vae_scale_factor_);
    const Tensor noise = core::randn({batch, latent_channels_, h, w}, seed);  // (B, C, h, w)
    return models::vae::pack_latents(noise);  // (B, (h/2)·(w/2), C·4)
  }

  void set_timesteps(schedulers::Scheduler& scheduler, const GenerateRequest& r,
                     const Tensor& latents) const override {
    const int n = *r.num_inference_steps;
    const schedulers::SchedulerConfig sc = schedulers::SchedulerConfig::load(scheduler_config_path_);
    schedulers::TimestepOptions options;
    // sigmas = np.linspace(1.0, 1 / N, N), unless the scheduler makes its own flow sigmas.
    if (!sc.get_bool("use_flow_sigmas", false)) {
      options.sigmas = schedulers::np_linspace(1.0, 1.0 / n, n);
    }
    options.mu = schedulers::calculate_shift(
        latents.dim(1), sc.get_int("base_image_seq_len", 256), sc.get_int("max_image_seq_len", 4096),
        sc.get_double("base_shift", 0.5), sc.get_double("max_shift", 1.15));
    scheduler.set_timesteps(n, options);
  }

  NamedTensors prepare_conditioning(const NamedTensors& e, const GenerateRequest& r,
                                    const Tensor& latents) const override {
    NamedTensors c;
    c["encoder_hidden_states"] = detail::find(e, "prompt_embeds");      // (B, L, D)
    c["pooled_projections"] = detail::find(e, "pooled_prompt_embeds");  // (B, P)
    c["txt_ids"] = detail::find(e, "text_ids");                         // (L, 3)
    // _prepare_latent_image_ids: (0, row, col) for each packed token, row-major.
    const int64_t h = models::vae::packed_latent_size(*r.height, vae_scale_factor_) / 2;
    const int64_t w = models::vae::packed_latent_size(*r.width, vae_scale_factor_) / 2;
    std::vector<float> ids;
    ids.reserve(static_cast<size_t>(h * w * 3));
    for (int64_t i = 0; i < h; ++i) {
      for (int64_t j = 0; j < w; ++j) {
        ids.insert(ids.end(), {0.0f, static_cast<float>(i), static_cast<float>(j)});
      }
    }
    c["img_ids"] = Tensor::from_vector(ids, {h * w, 3});  // (S_img, 3)
    if (guidance_embeds_) {
      c["guidance"] = detail::full_vector(latents.dim(0), static_cast<float>(*r.guidance_scale));
    }
    return c;
  }

  NamedTensors model_inputs(const Tensor& latents, double t, const NamedTensors& c,
                            const GenerateRequest& r) const override {
    NamedTensors in = c;
    in["hidden_states"] = latents;  // (B, S_img, C·4)
    // timestep / 1000 in f32, as the pipeline divides the f32 timestep tensor.
    in["timestep"] = detail::full_vector(latents.dim(0), static_cast<float>(t) / 1000.0f);
    return in;
  }

  // Guidance is an input of the transformer (Flux-dev's embedding); no CFG batch.
  Tensor guided_output(const Tensor& model_output, const GenerateRequest&) const override {
    return model_output;  // (B, S_img, C·4)
  }

  // Packed latents (B, S_img, C·4): token row j is the tokens [j·w, (j+1)·w).
  LatentRows latent_rows(const GenerateRequest& r) const override {
    return {1, models::vae::packed_latent_size(*r.width, vae_scale_factor_) / 2};
  }

  Tensor decode_latents(const models::vae::AutoencoderKL& vae, const Tensor& latents,
                        const GenerateRequest& r) const override {
    const int64_t h = models::vae::packed_latent_size(*r.height, vae_scale_factor_);
    const int64_t w = models::vae::packed_latent_size(*r.width, vae_scale_factor_);
    const Tensor z = models::vae::unpack_latents(latents, h, w);  // (B, C, h, w)
    // (latents / scaling_factor) + shift_factor
    return detail::decode_batch(vae, detail::unscale(z, vae.scaling_factor(), vae.shift_factor()),
                                vae_group_);
  }

 private:
  int64_t in_channels_ = 64;
  bool guidance_embeds_ = false;
};

}  // namespace

std::unique_ptr<Pipeline> make_flux_pipeline(const io::ModelFolder& folder) {
  return std::make_unique<FluxPipeline>(folder);
}

}  // namespace paradit::pipelines
