// StableDiffusion3Pipeline (diffusers pipelines/stable_diffusion_3; SD3 and SD3.5): CLIP-L and
// CLIP-G penultimate hidden states side by side, zero-padded to T5's width and followed on the
// sequence by T5's states (zeros when the pipeline has no T5); pooled = both CLIPs' projected
// pooled outputs; batch [uncond, cond] for classifier-free guidance; flow-match Euler with the
// scheduler's static shift (or mu for dynamic shifting).
#include "core/error.h"
#include "core/ops.h"
#include "models/vae/autoencoder_kl.h"
#include "pipelines/families.h"
#include "pipelines/text_encoding.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"

namespace paradit::pipelines {

namespace {

using core::Tensor;

class SD3Pipeline : public Pipeline {
 public:
  explicit SD3Pipeline(const io::ModelFolder& folder) : Pipeline(folder, folder.pipeline_class()) {
    latent_channels_ = transformer_config_.get_int("in_channels", 16);
    patch_ = transformer_config_.get_int("patch_size", 2);
    joint_attention_dim_ = transformer_config_.get_int("joint_attention_dim", 4096);
    size_multiple_ = vae_scale_factor_ * patch_;
    defaults_.num_inference_steps = 28;
    defaults_.guidance_scale = 7.0;
    defaults_.max_sequence_length = 256;
    const int64_t sample = transformer_config_.get_int("sample_size", 128);
    defaults_.height = sample * vae_scale_factor_;
    defaults_.width = sample * vae_scale_factor_;
  }

  NamedTensors encode_prompt(const GenerateRequest& r) override {
    const int64_t batch = batch_size(r);
    const bool cfg = uses_cfg(r);
    NamedTensors out;
    const Tensor given = detail::find(r.prompt_embeds, "prompt_embeds");
    const Tensor given_negative = detail::find(r.prompt_embeds, "negative_prompt_embeds");

    std::vector<std::string> texts;  // conditional first, then unconditional
    if (!given.defined()) texts = r.prompts;
    const bool encode_negative = cfg && !given_negative.defined();
    if (encode_negative) {
      for (const std::string& n : detail::negative_texts(r, batch)) texts.push_back(n);
    }
    Tensor embeds, pooled;  // (rows, 77 + L, joint_dim), (rows, pooled_dim)
    if (!texts.empty()) encode_texts(texts, *r.max_sequence_length, &embeds, &pooled);

    int64_t row = 0;
    if (given.defined()) {
      out["prompt_embeds"] = given.to(core::DType::F32);
      out["pooled_prompt_embeds"] =
          detail::find(r.prompt_embeds, "pooled_prompt_embeds").to(core::DType::F32);
    } else {
      out["prompt_embeds"] = batch_rows(embeds, 0, batch);         // (B, S, joint_dim)
      out["pooled_prompt_embeds"] = batch_rows(pooled, 0, batch);  // (B, pooled_dim)
      row = batch;
    }
    if (cfg) {
      if (given_negative.defined()) {
        out["negative_prompt_embeds"] = given_negative.to(core::DType::F32);
        out["negative_pooled_prompt_embeds"] =
            detail::find(r.prompt_embeds, "negative_pooled_prompt_embeds").to(core::DType::F32);
      } else {
        out["negative_prompt_embeds"] = batch_rows(embeds, row, row + batch);         // (B, S, D)
        out["negative_pooled_prompt_embeds"] = batch_rows(pooled, row, row + batch);  // (B, P)
      }
    }
    return out;
  }

 protected:
  void check_request(const GenerateRequest& r) const override {
    // diffusers' check_inputs rejects more than 512 T5 tokens.
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
    const Tensor ne = detail::find(r.prompt_embeds, "negative_prompt_embeds");
    if (ne.defined()) {
      PARADIT_CHECK(ne.shape() == pe.shape(), "--prompt_embeds: tensor 'negative_prompt_embeds' "
                    "has shape ", core::shape_str(ne.shape()), ", expected ",
                    core::shape_str(pe.shape()), " (as prompt_embeds)");
      const Tensor np = detail::find(r.prompt_embeds, "negative_pooled_prompt_embeds");
      PARADIT_CHECK(np.defined() && np.shape() == pp.shape(),
                    "--prompt_embeds: tensor 'negative_pooled_prompt_embeds' must come with "
                    "negative_prompt_embeds, shaped ", core::shape_str(pp.shape()));
    }
  }

  void set_timesteps(schedulers::Scheduler& scheduler, const GenerateRequest& r,
                     const Tensor& latents) const override {
    schedulers::TimestepOptions options;
    const schedulers::SchedulerConfig sc = schedulers::SchedulerConfig::load(scheduler_config_path_);
    if (sc.get_bool("use_dynamic_shifting", false)) {
      const int64_t seq = (latents.dim(2) / patch_) * (latents.dim(3) / patch_);
      // SD3's own defaults (max_shift 1.16, unlike Flux's 1.15).
      options.mu = schedulers::calculate_shift(
          seq, sc.get_int("base_image_seq_len", 256), sc.get_int("max_image_seq_len", 4096),
          sc.get_double("base_shift", 0.5), sc.get_double("max_shift", 1.16));
    }
    scheduler.set_timesteps(*r.num_inference_steps, options);
  }

  NamedTensors prepare_conditioning(const NamedTensors& e, const GenerateRequest& r,
                                    const Tensor& latents) const override {
    NamedTensors c;
    const Tensor pos = detail::find(e, "prompt_embeds");
    const Tensor pos_pooled = detail::find(e, "pooled_prompt_embeds");
    if (uses_cfg(r)) {
      c["encoder_hidden_states"] =
          core::concat({detail::find(e, "negative_prompt_embeds"), pos}, 0);  // (2B, S, D)
      c["pooled_projections"] =
          core::concat({detail::find(e, "negative_pooled_prompt_embeds"), pos_pooled}, 0);  // (2B, P)
    } else {
      c["encoder_hidden_states"] = pos;      // (B, S, D)
      c["pooled_projections"] = pos_pooled;  // (B, P)
    }
    return c;
  }

  NamedTensors model_inputs(const Tensor& latents, double t, const NamedTensors& c,
                            const GenerateRequest& r) const override {
    NamedTensors in = c;
    in["hidden_states"] = uses_cfg(r) ? core::concat({latents, latents}, 0) : latents;  // (2B, C, h, w)
    in["timestep"] = detail::full_vector(in["hidden_states"].dim(0), static_cast<float>(t));
    return in;
  }

  Tensor guided_output(const Tensor& model_output, const GenerateRequest& r) const override {
    const bool cfg = uses_cfg(r);
    Tensor noise = model_output;  // (2B, C, h, w)
    const int64_t batch = cfg ? noise.dim(0) / 2 : noise.dim(0);
    if (cfg) {
      noise = detail::guide(noise.slice(0, 0, batch), noise.slice(0, batch, 2 * batch),
                            *r.guidance_scale);  // (B, C, h, w)
    }
    return noise;
  }

  Tensor decode_latents(const models::vae::AutoencoderKL& vae, const Tensor& latents,
                        const GenerateRequest& r) const override {
    // (latents / scaling_factor) + shift_factor
    return detail::decode_batch(vae, detail::unscale(latents, vae.scaling_factor(),
                                                     vae.shift_factor()), vae_group_);
  }

 private:
  // encode_prompt's text path for `texts` (one batch through each encoder).
  void encode_texts(const std::vector<std::string>& texts, int max_sequence_length,
                    Tensor* embeds, Tensor* pooled) {
    const int64_t rows = static_cast<int64_t>(texts.size());
    const int clip_length = tokenizer_max_length(folder_.component("tokenizer").dir, 77);
    // CLIP-L, then CLIP-G: hidden_states[-2] and the projected pooled output.
    Tensor clip_states[2], clip_pooled[2];
    const char* tokenizers[2] = {"tokenizer", "tokenizer_2"};
    const char* encoders[2] = {"text_encoder", "text_encoder_2"};
    for (int k = 0; k < 2; ++k) {
      const TokenBatch tokens =
          tokenize_clip(folder_.component(tokenizers[k]).dir, texts, clip_length);  // (rows, 77)
      ClipOutputs o = run_clip(folder_.component(encoders[k]).dir, place_, tokens, &text_load_seconds_);
      PARADIT_CHECK(o.text_embeds.defined(), folder_.component(encoders[k]).dir.string(),
                    ": StableDiffusion3Pipeline needs CLIPTextModelWithProjection (no "
                    "text_projection found)");
      clip_states[k] = o.penultimate;  // (rows, 77, hidden_k)
      clip_pooled[k] = o.text_embeds;  // (rows, proj_k)
    }
    Tensor clip = core::concat({clip_states[0], clip_states[1]}, -1);  // (rows, 77, h_L + h_G)
    Tensor t5;  // (rows, L, joint_dim)
    if (folder_.has_component("text_encoder_3")) {
      const TokenBatch tokens = tokenize_t5(folder_.component("tokenizer_3").dir, texts,
                                            max_sequence_length);  // (rows, L)
      t5 = run_t5(folder_.component("text_encoder_3").dir, place_, tokens, false, &text_load_seconds_);
    } else {
      // Without T5 diffusers uses zeros of the transformer's joint_attention_dim.
      t5 = Tensor::zeros({rows, max_sequence_length, joint_attention_dim_}, clip.dtype(),
                         clip.device());
    }
    const int64_t width = t5.dim(2);
    PARADIT_CHECK(clip.dim(2) <= width, "StableDiffusion3Pipeline: the CLIP features (",
                  clip.dim(2), " channels) are wider than T5's ", width);
    if (clip.dim(2) < width) {
      const Tensor pad =
          Tensor::zeros({rows, clip.dim(1), width - clip.dim(2)}, clip.dtype(), clip.device());
      clip = core::concat({clip, pad}, -1);  // (rows, 77, width)
    }
    *embeds = core::concat({clip, t5}, 1);                             // (rows, 77 + L, width)
    *pooled = core::concat({clip_pooled[0], clip_pooled[1]}, -1);      // (rows, proj_L + proj_G)
  }

  int64_t patch_ = 2;
  int64_t joint_attention_dim_ = 4096;
};

}  // namespace

std::unique_ptr<Pipeline> make_sd3_pipeline(const io::ModelFolder& folder) {
  return std::make_unique<SD3Pipeline>(folder);
}

}  // namespace paradit::pipelines
