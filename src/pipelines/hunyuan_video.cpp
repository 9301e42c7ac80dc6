// HunyuanVideoPipeline (diffusers pipelines/hunyuan_video/pipeline_hunyuan_video.py): the text
// conditioning is prompt_embeds (the LLaMA hidden state 2 layers before the last, from the
// template's crop_start 95 on), prompt_attention_mask and pooled_prompt_embeds (CLIP's pooled
// output), encoded from the prompt text (pipelines/llm_text.h) or given precomputed. Flow-match
// Euler over sigmas linspace(1, 0, N + 1) minus the last (shifted by the scheduler's `shift`); the
// guidance embedding gets guidance_scale · 1000; "true" classifier-free guidance over negative
// embeddings when true_cfg_scale > 1, batched as [uncond, cond]; latents (B, C, (F − 1)/4 + 1, H/8,
// W/8); decode with AutoencoderKLHunyuanVideo after latents / scaling_factor.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/ops.h"
#include "pipelines/families.h"
#include "pipelines/llm_text.h"
#include "pipelines/text_encoding.h"
#include "schedulers/scheduler.h"

namespace paradit::pipelines {

namespace {

using core::Tensor;

// A mask as the transformer takes it: F32 1/0. Undefined → all ones for `embeds`' tokens.
Tensor float_mask(const Tensor& mask, const Tensor& embeds) {
  if (!mask.defined()) return Tensor::full({embeds.dim(0), embeds.dim(1)}, 1.0f);  // (B, L)
  return mask.to(core::DType::F32).contiguous();                                   // (B, L)
}

class HunyuanVideoPipeline : public Pipeline {
 public:
  explicit HunyuanVideoPipeline(const io::ModelFolder& folder)
      : Pipeline(folder, folder.pipeline_class()) {
    // diffusers: vae_scale_factor_spatial / _temporal = the VAE's compression ratios.
    vae_scale_factor_ = vae_config_.get_int("spatial_compression_ratio", 8);
    temporal_factor_ = vae_config_.get_int("temporal_compression_ratio", 4);
    latent_channels_ = transformer_config_.get_int("in_channels", 16);
    const int64_t patch = transformer_config_.get_int("patch_size", 2);
    PARADIT_CHECK(transformer_config_.get_int("patch_size_t", 1) == 1, transformer_config_.where(),
                  ": patch_size_t must be 1 for HunyuanVideoPipeline");
    // check_inputs wants multiples of 16; the patches need multiples of VAE × patch.
    size_multiple_ = std::max<int64_t>(16, vae_scale_factor_ * patch);
    PARADIT_CHECK(size_multiple_ % 16 == 0 && size_multiple_ % (vae_scale_factor_ * patch) == 0,
                  transformer_config_.where(), ": VAE scale ", vae_scale_factor_, " x patch ",
                  patch, " does not divide into 16-pixel sizes");
    guidance_embeds_ = transformer_config_.get_bool("guidance_embeds", true);
    defaults_.num_inference_steps = 50;
    defaults_.guidance_scale = 6.0;
    defaults_.max_sequence_length = 256;
    defaults_.height = 720;
    defaults_.width = 1280;
    defaults_.num_frames = 129;
    defaults_.fps = 15;
    defaults_.round_frames = true;  // output_type "pil"
  }

  NamedTensors encode_prompt(const GenerateRequest& r) override {
    NamedTensors out;
    if (r.prompt_embeds.empty()) {
      encode_text(r.prompts, *r.max_sequence_length, "", out);
    } else {
      const Tensor pe = detail::find(r.prompt_embeds, "prompt_embeds").to(core::DType::F32);
      out["prompt_embeds"] = pe;
      out["pooled_prompt_embeds"] =
          detail::find(r.prompt_embeds, "pooled_prompt_embeds").to(core::DType::F32);
      out["prompt_attention_mask"] =
          float_mask(detail::find(r.prompt_embeds, "prompt_attention_mask"), pe);
    }
    if (uses_cfg(r)) {
      const Tensor ne = detail::find(r.prompt_embeds, "negative_prompt_embeds");
      if (!ne.defined()) {
        encode_text(detail::negative_texts(r, out["prompt_embeds"].dim(0)), *r.max_sequence_length,
                    "negative_", out);
      } else {
        out["negative_prompt_embeds"] = ne.to(core::DType::F32);
        out["negative_pooled_prompt_embeds"] =
            detail::find(r.prompt_embeds, "negative_pooled_prompt_embeds").to(core::DType::F32);
        out["negative_prompt_attention_mask"] =
            float_mask(detail::find(r.prompt_embeds, "negative_prompt_attention_mask"), ne);
      }
    }
    return out;
  }

 protected:
  // do_true_cfg: true_cfg_scale > 1 and a negative prompt or its embeddings given.
  bool uses_cfg(const GenerateRequest& r) const override {
    return r.true_cfg_scale.value_or(1.0) > 1.0 &&
           (detail::find(r.prompt_embeds, "negative_prompt_embeds").defined() ||
            (r.prompt_embeds.empty() && r.negative_prompt.has_value()));
  }

  void check_request(const GenerateRequest& r) const override {
    if (r.true_cfg_scale) {
      PARADIT_CHECK(std::isfinite(*r.true_cfg_scale), "--true_cfg_scale: must be a finite number");
    }
    if (r.prompt_embeds.empty()) {  // encoded from the prompt text
      for (const char* c : {"tokenizer", "text_encoder", "tokenizer_2", "text_encoder_2"}) {
        PARADIT_CHECK(folder_.has_component(c), "--prompt: ", root_.string(), " has no ", c,
                      " to encode the prompt text; give --prompt_embeds FILE with "
                      "prompt_embeds, pooled_prompt_embeds and prompt_attention_mask");
      }
      return;
    }
    const Tensor pe = detail::find(r.prompt_embeds, "prompt_embeds");
    detail::check_embedding(pe, "prompt_embeds", 3);
    const Tensor pooled = detail::find(r.prompt_embeds, "pooled_prompt_embeds");
    detail::check_embedding(pooled, "pooled_prompt_embeds", 2);
    PARADIT_CHECK(pooled.dim(0) == pe.dim(0), "--prompt_embeds: tensor 'pooled_prompt_embeds' has ",
                  pooled.dim(0), " rows, prompt_embeds has ", pe.dim(0));
    check_mask(r, "prompt_attention_mask", pe);

    const Tensor ne = detail::find(r.prompt_embeds, "negative_prompt_embeds");
    const bool wants_cfg = r.true_cfg_scale.value_or(1.0) > 1.0;
    if (wants_cfg && !ne.defined()) {
      PARADIT_CHECK(!r.negative_prompt,
                    "--negative_prompt: with --prompt_embeds, give "
                    "negative_prompt_embeds, negative_pooled_prompt_embeds (and "
                    "negative_prompt_attention_mask) in the same file");
    }
    if (!ne.defined()) return;
    detail::check_negative_embeds(ne, pe);
    const Tensor np = detail::find(r.prompt_embeds, "negative_pooled_prompt_embeds");
    PARADIT_CHECK(np.defined() && np.shape() == pooled.shape(),
                  "--prompt_embeds: tensor 'negative_pooled_prompt_embeds' must come with "
                  "negative_prompt_embeds, shaped ",
                  core::shape_str(pooled.shape()));
    check_mask(r, "negative_prompt_attention_mask", ne);
  }

  void set_timesteps(schedulers::Scheduler& scheduler, const GenerateRequest& r,
                     const Tensor& latents) const override {
    // sigmas = np.linspace(1.0, 0.0, num_inference_steps + 1)[:-1]
    schedulers::TimestepOptions options;
    options.sigmas = schedulers::np_linspace(1.0, 0.0, *r.num_inference_steps + 1);
    options.sigmas.pop_back();
    scheduler.set_timesteps(*r.num_inference_steps, options);
  }

  NamedTensors prepare_conditioning(const NamedTensors& e, const GenerateRequest& r,
                                    const Tensor& latents) const override {
    NamedTensors c;
    const bool cfg = uses_cfg(r);
    // [uncond, cond] rows when guiding.
    auto rows = [&](const char* name) { return detail::cfg_rows(e, name, cfg); };
    c["encoder_hidden_states"] = rows("prompt_embeds");           // (B or 2B, L, D)
    c["encoder_attention_mask"] = rows("prompt_attention_mask");  // (B or 2B, L)
    c["pooled_projections"] = rows("pooled_prompt_embeds");       // (B or 2B, P)
    if (guidance_embeds_) {
      // torch.tensor([guidance_scale] * B, dtype=f32) * 1000.0, in f32.
      const float g = static_cast<float>(*r.guidance_scale) * 1000.0f;
      c["guidance"] = detail::full_vector(c["encoder_hidden_states"].dim(0), g);  // (B or 2B)
    }
    return c;
  }

  Tensor predict_noise(const models::Transformer& model, const Tensor& latents, double t,
                       const NamedTensors& c, const GenerateRequest& r) const override {
    // neg + true_cfg_scale · (cond − neg) when guiding.
    return detail::predict_video_noise(
        latents, t, c, uses_cfg(r) ? r.true_cfg_scale : std::nullopt,
        [&](const NamedTensors& in) { return run_transformer(model, in); });  // (B, C, f, h, w)
  }

  Tensor decode_video(const Tensor& latents, const GenerateRequest& r,
                      PhaseTimes* times) const override {
    return detail::decode_hunyuan_video(folder_.component("vae").dir, place_, latents, vae_group_,
                                        times);  // (B, 3, F, H, W)
  }

 private:
  // _get_llama_prompt_embeds (DEFAULT_PROMPT_TEMPLATE, crop_start 95, hidden_states[-3]) and
  // _get_clip_prompt_embeds (pooler_output over 77 tokens) into out[prefix + …].
  void encode_text(const std::vector<std::string>& prompts, int max_length,
                   const std::string& prefix, NamedTensors& out) {
    constexpr int kCropStart = 95;
    // DEFAULT_PROMPT_TEMPLATE around the prompt
    static const std::string kBefore =
        "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the "
        "following aspects: 1. The main content and theme of the video.2. The color, shape, size, "
        "texture, quantity, text, and spatial relationships of the objects.3. Actions, events, "
        "behaviors temporal relationships, physical movement changes of the objects.4. background "
        "environment, light, style and atmosphere.5. camera angles, movements, and transitions "
        "used in the video:<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n";
    static const std::string kAfter = "<|eot_id|>";
    std::vector<std::string> texts;
    for (const std::string& p : prompts) texts.push_back(kBefore + p + kAfter);
    const TokenBatch llama = tokenize_llm(folder_.component("tokenizer").dir, texts,
                                          max_length + kCropStart, /*pad_to_max=*/true);
    const Tensor h = run_decoder_lm(folder_.component("text_encoder").dir, place_, llama, {-3},
                                    &text_load_seconds_)[0];  // (B, L + 95, D)
    out[prefix + "prompt_embeds"] = h.slice(1, kCropStart, h.dim(1)).contiguous();  // (B, L, D)
    out[prefix + "prompt_attention_mask"] =
        llama.mask.slice(1, kCropStart, llama.mask.dim(1)).to(core::DType::F32).contiguous();
    const TokenBatch clip = tokenize_clip(folder_.component("tokenizer_2").dir, prompts, 77);
    out[prefix + "pooled_prompt_embeds"] =
        run_clip(folder_.component("text_encoder_2").dir, place_, clip, &text_load_seconds_)
            .pooled;  // (B, P)
  }

  // A given mask must be (B, L) like its embeddings.
  static void check_mask(const GenerateRequest& r, const std::string& name, const Tensor& embeds) {
    const Tensor m = detail::find(r.prompt_embeds, name);
    if (!m.defined()) return;
    PARADIT_CHECK(m.ndim() == 2 && m.dim(0) == embeds.dim(0) && m.dim(1) == embeds.dim(1),
                  "--prompt_embeds: tensor '", name, "' has shape ", core::shape_str(m.shape()),
                  ", expected [", embeds.dim(0), ", ", embeds.dim(1), "]");
  }

  bool guidance_embeds_ = true;
};

}  // namespace

std::unique_ptr<Pipeline> make_hunyuan_video_pipeline(const io::ModelFolder& folder) {
  return std::make_unique<HunyuanVideoPipeline>(folder);
}

}  // namespace paradit::pipelines
