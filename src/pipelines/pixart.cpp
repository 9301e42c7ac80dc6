// PixArtSigmaPipeline / PixArtAlphaPipeline (diffusers pipelines/pixart_alpha): T5 with its
// attention mask (the mask follows into the transformer's cross-attention), batch
// [uncond, cond] for classifier-free guidance, DPM-Solver++ by default, learned-sigma outputs
// cut to the latent channels.
#include <cmath>

#include "core/error.h"
#include "core/ops.h"
#include "models/vae/autoencoder_kl.h"
#include "pipelines/families.h"
#include "pipelines/text_encoding.h"
#include "schedulers/scheduler.h"

namespace paradit::pipelines {

namespace {

using core::Tensor;

class PixArtPipeline : public Pipeline {
 public:
  explicit PixArtPipeline(const io::ModelFolder& folder)
      : Pipeline(folder, folder.pipeline_class()) {
    alpha_ = class_name_ == "PixArtAlphaPipeline";
    latent_channels_ = transformer_config_.get_int("in_channels", 4);
    out_channels_ = transformer_config_.get_int("out_channels", latent_channels_);
    const int64_t patch = transformer_config_.get_int("patch_size", 2);
    sample_size_ = transformer_config_.get_int("sample_size", 128);
    size_multiple_ = vae_scale_factor_ * patch;
    defaults_.num_inference_steps = 20;
    defaults_.guidance_scale = 4.5;
    defaults_.max_sequence_length = alpha_ ? 120 : 300;
    defaults_.height = sample_size_ * vae_scale_factor_;
    defaults_.width = sample_size_ * vae_scale_factor_;
    // PixArtAlphaPipeline passes resolution / aspect-ratio micro-conditions to the 1024 models
    // (sample_size 128); the transformer needs them whenever it was built with them.
    micro_conditions_ = alpha_ && (sample_size_ == 128 ||
                                   transformer_config_.get_bool("use_additional_conditions",
                                                                false));
  }

  NamedTensors encode_prompt(const GenerateRequest& r) override {
    const int64_t batch = batch_size(r);
    const bool cfg = uses_cfg(r);
    NamedTensors out;
    const Tensor given = detail::find(r.prompt_embeds, "prompt_embeds");
    const Tensor given_negative = detail::find(r.prompt_embeds, "negative_prompt_embeds");

    // The texts to encode, conditional first, in one T5 batch.
    std::vector<std::string> texts;
    if (!given.defined()) {
      for (const std::string& p : r.prompts) texts.push_back(pixart_text_preprocessing(p));
    }
    const bool encode_negative = cfg && !given_negative.defined();
    if (encode_negative) {
      for (const std::string& n : detail::negative_texts(r, batch)) {
        texts.push_back(pixart_text_preprocessing(n));
      }
    }
    // The negative prompt is padded to the prompt embeddings' length.
    const int length = given.defined() ? static_cast<int>(given.dim(1)) : *r.max_sequence_length;

    Tensor embeds, mask;  // (rows, L, D), (rows, L)
    if (!texts.empty()) {
      const fs_path encoder = folder_.component("text_encoder").dir;
      const TokenBatch tokens =
          tokenize_t5(folder_.component("tokenizer").dir, texts, length);  // (rows, L)
      embeds = run_t5(encoder, place_, tokens, true, &text_load_seconds_);        // (rows, L, D)
      mask = tokens.mask;
    }
    int64_t row = 0;
    if (given.defined()) {
      out["prompt_embeds"] = given.to(core::DType::F32);
      out["prompt_attention_mask"] = detail::find(r.prompt_embeds, "prompt_attention_mask");
    } else {
      out["prompt_embeds"] = batch_rows(embeds, 0, batch);  // (B, L, D)
      out["prompt_attention_mask"] = batch_rows(mask, 0, batch);  // (B, L)
      row = batch;
    }
    if (cfg) {
      if (given_negative.defined()) {
        out["negative_prompt_embeds"] = given_negative.to(core::DType::F32);
        out["negative_prompt_attention_mask"] =
            detail::find(r.prompt_embeds, "negative_prompt_attention_mask");
      } else {
        out["negative_prompt_embeds"] = batch_rows(embeds, row, row + batch);  // (B, L, D)
        out["negative_prompt_attention_mask"] = batch_rows(mask, row, row + batch);  // (B, L)
      }
    }
    return out;
  }

 protected:
  using fs_path = std::filesystem::path;

  void check_request(const GenerateRequest& r) const override {
    if (r.prompt_embeds.empty()) return;
    const Tensor pe = detail::find(r.prompt_embeds, "prompt_embeds");
    detail::check_embedding(pe, "prompt_embeds", 3);
    const Tensor pm = detail::find(r.prompt_embeds, "prompt_attention_mask");
    // diffusers' check_inputs: the mask must come with the embeddings.
    PARADIT_CHECK(pm.defined(), "--prompt_embeds: tensor 'prompt_attention_mask' is missing "
                                "(PixArt needs the mask with prompt_embeds)");
    PARADIT_CHECK(pm.shape() == core::Shape({pe.dim(0), pe.dim(1)}),
                  "--prompt_embeds: tensor 'prompt_attention_mask' has shape ",
                  core::shape_str(pm.shape()), ", expected ",
                  core::shape_str({pe.dim(0), pe.dim(1)}));
    const Tensor ne = detail::find(r.prompt_embeds, "negative_prompt_embeds");
    if (ne.defined()) {
      PARADIT_CHECK(ne.shape() == pe.shape(), "--prompt_embeds: tensor 'negative_prompt_embeds' "
                    "has shape ", core::shape_str(ne.shape()), ", expected ",
                    core::shape_str(pe.shape()), " (as prompt_embeds)");
      const Tensor nm = detail::find(r.prompt_embeds, "negative_prompt_attention_mask");
      PARADIT_CHECK(nm.defined() && nm.shape() == pm.shape(),
                    "--prompt_embeds: tensor 'negative_prompt_attention_mask' must come with "
                    "negative_prompt_embeds, shaped ", core::shape_str(pm.shape()));
    }
  }

  NamedTensors prepare_conditioning(const NamedTensors& e, const GenerateRequest& r,
                                    const Tensor& latents) const override {
    NamedTensors c;
    const Tensor pos = detail::find(e, "prompt_embeds");
    const Tensor pos_mask = detail::find(e, "prompt_attention_mask").to(core::DType::F32);
    if (uses_cfg(r)) {
      const Tensor neg = detail::find(e, "negative_prompt_embeds");
      const Tensor neg_mask = detail::find(e, "negative_prompt_attention_mask").to(core::DType::F32);
      c["encoder_hidden_states"] = core::concat({neg, pos}, 0);        // (2B, L, D)
      c["encoder_attention_mask"] = core::concat({neg_mask, pos_mask}, 0);  // (2B, L)
    } else {
      c["encoder_hidden_states"] = pos;      // (B, L, D)
      c["encoder_attention_mask"] = pos_mask;  // (B, L)
    }
    if (micro_conditions_) {
      const int64_t rows = c["encoder_hidden_states"].dim(0);
      const float h = static_cast<float>(*r.height), w = static_cast<float>(*r.width);
      const float ratio = static_cast<float>(static_cast<double>(*r.height) /
                                             static_cast<double>(*r.width));
      std::vector<float> res, ar;
      for (int64_t i = 0; i < rows; ++i) {
        res.insert(res.end(), {h, w});
        ar.push_back(ratio);
      }
      c["added_cond_kwargs.resolution"] = Tensor::from_vector(res, {rows, 2});  // (2B, 2)
      c["added_cond_kwargs.aspect_ratio"] = Tensor::from_vector(ar, {rows, 1});  // (2B, 1)
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
    Tensor noise = model_output;  // (2B, out_channels, h, w)
    const int64_t batch = cfg ? noise.dim(0) / 2 : noise.dim(0);
    if (cfg) {
      noise = detail::guide(noise.slice(0, 0, batch), noise.slice(0, batch, 2 * batch),
                            *r.guidance_scale);  // (B, out_channels, h, w)
    }
    // Learned sigma: the variance channels are dropped.
    if (out_channels_ / 2 == latent_channels_) {
      noise = noise.slice(1, 0, latent_channels_).contiguous();  // (B, C, h, w)
    }
    return noise;
  }

 private:
  bool alpha_ = false;
  bool micro_conditions_ = false;
  int64_t out_channels_ = 8;
  int64_t sample_size_ = 128;
};

}  // namespace

std::unique_ptr<Pipeline> make_pixart_pipeline(const io::ModelFolder& folder) {
  return std::make_unique<PixArtPipeline>(folder);
}

}  // namespace paradit::pipelines
