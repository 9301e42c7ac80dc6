// The pipelines conditioned on a decoder LLM (diffusers 0.42), each following its __call__:
//   - Flux2Pipeline: Mistral 3 hidden states 10, 20, 30 side by side (chat template with FLUX.2's
//     system message, padded to max_sequence_length), txt_ids (0, 0, 0, k), 2×2-patchified
//     latents packed row-major with img_ids (0, row, col, 0), embedded guidance, flow-match Euler
//     over linspace(1, 1/N, N) with mu = compute_empirical_mu; decode: BatchNorm
//     de-normalization with the VAE's running statistics, 2×2 unpatchify, AutoencoderKLFlux2;
//   - Flux2KleinPipeline: the same with Qwen3 hidden states 9, 18, 27 (thinking off) and, when
//     guidance_scale > 1 and the model is not distilled, CFG against the empty prompt;
//   - ZImagePipeline: Qwen3 hidden_states[-2] at each prompt's tokens (thinking on), one batched
//     [prompt, negative] call, pos + g·(pos − neg), negated; sigmas torch.linspace(1, 1/N, N);
//     decode latents / scaling + shift with AutoencoderKL;
//   - QwenImagePipeline: Qwen2.5-VL's last hidden state at the tokens less the 34-token template
//     prefix, packed latents with img_shapes, true CFG with the norm rescale
//     comb · ‖cond‖ / ‖comb‖ per token; decode with the Wan-style AutoencoderKLQwenImage.
#include "pipelines/llm_families.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/ops.h"
#include "core/random.h"
#include "io/safetensors.h"
#include "models/llm/prompt_embeds.h"
#include "models/vae/autoencoder_kl.h"
#include "models/vae/latent_packing.h"
#include "pipelines/families.h"
#include "pipelines/llm_text.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"

namespace paradit::pipelines {

namespace {

using core::Tensor;

// FLUX.2's compute_empirical_mu(image_seq_len, num_steps).
double compute_empirical_mu(int64_t image_seq_len, int num_steps) {
  const double a1 = 8.73809524e-05, b1 = 1.89833333, a2 = 0.00016927, b2 = 0.45666666;
  const double n = static_cast<double>(image_seq_len);
  if (image_seq_len > 4300) return a2 * n + b2;
  const double m_200 = a2 * n + b2, m_10 = a1 * n + b1;
  const double a = (m_200 - m_10) / 190.0, b = m_200 - 200.0 * a;
  return a * num_steps + b;
}

// (B, 4C, h, w) → (B, h·w, 4C): FLUX.2's _pack_latents (tokens row-major).
Tensor pack_rows(const Tensor& x) {
  const int64_t B = x.dim(0), C = x.dim(1), S = x.dim(2) * x.dim(3);
  return x.contiguous().reshape({B, C, S}).permute({0, 2, 1});  // (B, S, 4C)
}

// (B, h·w, 4C) → (B, 4C, h, w)
Tensor unpack_rows(const Tensor& x, int64_t h, int64_t w) {
  return x.permute({0, 2, 1}).reshape({x.dim(0), x.dim(2), h, w});  // (B, 4C, h, w)
}

// ‖x‖ over the last dim, (…, D) → (…, 1): Σx² as a product with a ones column, then √.
Tensor row_norm(const Tensor& x) {
  const int64_t D = x.dim(-1), rows = x.numel() / D;
  const Tensor c = x.contiguous();
  const Tensor sq = core::mul(c, c).reshape({1, rows, D});                   // (1, rows, D)
  const Tensor ones = Tensor::full({1, D, 1}, 1.0f, x.dtype(), x.device());  // (1, D, 1)
  core::Shape shape = x.shape();
  shape.back() = 1;
  return core::sqrt(core::matmul(sq, ones)).reshape(shape);  // (…, 1)
}

// Per-sample (n_b, D) rows as (B, L, D) zero-padded with a (B, L) I64 mask; `length` 0 = longest.
models::llm::PaddedEmbeds pad_embeds(const std::vector<Tensor>& rows, int64_t length = 0) {
  return models::llm::pad_rows(rows, length);
}

// The first (n, D) rows of each sample of (B, L, D) embeddings with an optional (B, L) mask.
std::vector<Tensor> embeds_rows(const Tensor& embeds, const Tensor& mask) {
  std::vector<int64_t> counts(static_cast<size_t>(embeds.dim(0)), embeds.dim(1));
  if (mask.defined()) counts = models::llm::token_counts(mask);
  return models::llm::valid_rows(embeds, counts, 0);
}

// ================================================================ FLUX.2 (dev and klein)
class Flux2Pipeline : public Pipeline {
 public:
  Flux2Pipeline(const io::ModelFolder& folder, bool klein)
      : Pipeline(folder, folder.pipeline_class()), klein_(klein) {
    latent_channels_ = transformer_config_.get_int("in_channels", 128) / 4;
    guidance_embeds_ = transformer_config_.get_bool("guidance_embeds", true);
    const auto& index = folder.model_index();
    distilled_ = index.contains("is_distilled") && index.at("is_distilled").is_boolean() &&
                 index.at("is_distilled").get<bool>();
    size_multiple_ = vae_scale_factor_ * 2;
    defaults_.num_inference_steps = 50;
    defaults_.guidance_scale = 4.0;
    defaults_.max_sequence_length = 512;
    defaults_.height = 128 * vae_scale_factor_;  // default_sample_size 128
    defaults_.width = 128 * vae_scale_factor_;
  }

  // Packed: (B, (H/16)·(W/16), 4C).
  core::Shape latent_shape(int64_t batch, int64_t height, int64_t width) const override {
    return {batch, (height / size_multiple_) * (width / size_multiple_), latent_channels_ * 4};
  }

  NamedTensors encode_prompt(const GenerateRequest& r) override {
    NamedTensors out;
    const bool cfg = uses_cfg(r);
    Tensor pe = detail::find(r.prompt_embeds, "prompt_embeds");
    Tensor ne = detail::find(r.prompt_embeds, "negative_prompt_embeds");
    if (!pe.defined()) pe = encode(r.prompts, *r.max_sequence_length);  // (B, L, 3·D)
    if (cfg && !ne.defined()) {
      ne = encode(std::vector<std::string>(static_cast<size_t>(pe.dim(0)), ""),
                  *r.max_sequence_length);  // (B, L, 3·D)
    }
    out["prompt_embeds"] = pe.to(core::DType::F32);
    out["text_ids"] = text_ids(pe.dim(1));  // (L, 4)
    if (cfg) {
      out["negative_prompt_embeds"] = ne.to(core::DType::F32);
      out["negative_text_ids"] = text_ids(ne.dim(1));  // (L', 4)
    }
    return out;
  }

 protected:
  // klein: CFG against "" when guidance_scale > 1 and the model is not distilled; dev: never.
  bool uses_cfg(const GenerateRequest& r) const override {
    return klein_ && *r.guidance_scale > 1.0 && !distilled_;
  }

  void check_request(const GenerateRequest& r) const override {
    if (r.prompt_embeds.empty()) return;
    detail::check_embedding(detail::find(r.prompt_embeds, "prompt_embeds"), "prompt_embeds", 3);
  }

  Tensor draw_latents(int64_t batch, int64_t height, int64_t width, uint64_t seed) const override {
    const Tensor noise = core::randn(
        {batch, latent_channels_ * 4, height / size_multiple_, width / size_multiple_}, seed);
    return pack_rows(noise);  // (B, S, 4C)
  }

  void set_timesteps(schedulers::Scheduler& scheduler, const GenerateRequest& r,
                     const Tensor& latents) const override {
    const int n = *r.num_inference_steps;
    const schedulers::SchedulerConfig sc =
        schedulers::SchedulerConfig::load(scheduler_config_path_);
    schedulers::TimestepOptions options;
    if (!sc.get_bool("use_flow_sigmas", false)) {
      options.sigmas = schedulers::np_linspace(1.0, 1.0 / n, n);
    }
    if (sc.get_bool("use_dynamic_shifting", false)) {
      options.mu = compute_empirical_mu(latents.dim(1), n);
    }
    scheduler.set_timesteps(n, options);
  }

  NamedTensors prepare_conditioning(const NamedTensors& e, const GenerateRequest& r,
                                    const Tensor& latents) const override {
    NamedTensors c;
    const bool cfg = uses_cfg(r);
    const Tensor pe = detail::find(e, "prompt_embeds");
    if (cfg) {
      const Tensor ne = detail::find(e, "negative_prompt_embeds");
      // One [uncond, cond] batch: both texts have max_sequence_length tokens (padding).
      detail::check_negative_embeds(ne, pe);
      c["encoder_hidden_states"] = core::concat({ne, pe}, 0);  // (2B, L, 3·D)
    } else {
      c["encoder_hidden_states"] = pe;  // (B, L, 3·D)
    }
    c["txt_ids"] = text_ids(pe.dim(1));  // (L, 4)
    const int64_t h = *r.height / size_multiple_, w = *r.width / size_multiple_;
    std::vector<float> ids;
    for (int64_t i = 0; i < h; ++i) {
      for (int64_t j = 0; j < w; ++j) {
        ids.insert(ids.end(), {0.0f, static_cast<float>(i), static_cast<float>(j), 0.0f});
      }
    }
    c["img_ids"] = Tensor::from_vector(ids, {h * w, 4});  // (S, 4)
    if (guidance_embeds_ && !klein_) {
      c["guidance"] = detail::full_vector(latents.dim(0), static_cast<float>(*r.guidance_scale));
    }
    return c;
  }

  NamedTensors model_inputs(const Tensor& latents, double t, const NamedTensors& c,
                            const GenerateRequest& r) const override {
    NamedTensors in = c;
    const bool cfg = uses_cfg(r);
    in["hidden_states"] = cfg ? core::concat({latents, latents}, 0) : latents;  // (B|2B, S, 4C)
    const int64_t n = in["hidden_states"].dim(0);
    in["timestep"] = detail::full_vector(n, static_cast<float>(t) / 1000.0f);
    if (in.count("guidance") && in["guidance"].dim(0) != n) {
      in["guidance"] = detail::full_vector(n, static_cast<float>(*r.guidance_scale));
    }
    return in;
  }

  Tensor guided_output(const Tensor& out, const GenerateRequest& r) const override {
    if (!uses_cfg(r)) return out;  // (B, S, 4C)
    const int64_t b = out.dim(0) / 2;
    // neg + g · (cond − neg)
    return detail::guide(out.slice(0, 0, b), out.slice(0, b, 2 * b), *r.guidance_scale);
  }

  LatentRows latent_rows(const GenerateRequest& r) const override {
    return {1, *r.width / size_multiple_};  // packed tokens: a token row is w tokens
  }

  Tensor decode_latents(const models::vae::AutoencoderKL& vae, const Tensor& latents,
                        const GenerateRequest& r) const override {
    return detail::decode_batch(vae, vae_space_latents(latents, *r.height, *r.width), vae_group_);
  }

 public:
  // Packed latents → what the VAE decodes: unpack, x · sqrt(var + eps) + mean with the VAE's
  // BatchNorm statistics, 2×2 unpatchify. (B, S, 4C) → (B, C, 2h, 2w). (Klein's output_type
  // "latent".)
  Tensor vae_space_latents(const Tensor& latents, int64_t height, int64_t width) const {
    const int64_t h = height / size_multiple_, w = width / size_multiple_, C4 = latents.dim(2);
    const io::TensorSource vae = io::TensorSource::open(folder_.component("vae").dir);
    const float eps = static_cast<float>(vae_config_.get_float("batch_norm_eps", 1e-4));
    std::vector<float> mean = vae.load("bn.running_mean").to_vector();
    std::vector<float> std = vae.load("bn.running_var").to_vector();
    PARADIT_CHECK(static_cast<int64_t>(mean.size()) == C4 && static_cast<int64_t>(std.size()) == C4,
                  folder_.component("vae").dir.string(), ": bn statistics have ", mean.size(),
                  " channels, the latents ", C4);
    for (float& s : std) s = std::sqrt(s + eps);
    Tensor x = unpack_rows(latents, h, w);  // (B, 4C, h, w)
    x = core::add(core::mul(x, Tensor::from_vector(std, {1, C4, 1, 1}, x.device())),
                  Tensor::from_vector(mean, {1, C4, 1, 1}, x.device()));  // (B, 4C, h, w)
    const int64_t B = x.dim(0), C = C4 / 4;
    return x.reshape({B, C, 2, 2, h, w})
        .permute({0, 1, 4, 2, 5, 3})
        .reshape({B, C, 2 * h, 2 * w});  // (B, C, 2h, 2w)
  }

 private:
  // (L, 4) = (0, 0, 0, k)
  static Tensor text_ids(int64_t L) {
    std::vector<float> ids;
    for (int64_t k = 0; k < L; ++k)
      ids.insert(ids.end(), {0.0f, 0.0f, 0.0f, static_cast<float>(k)});
    return Tensor::from_vector(ids, {L, 4});
  }

  Tensor encode(const std::vector<std::string>& prompts, int max_length) {
    std::vector<std::string> texts;
    for (const std::string& p : prompts) {
      texts.push_back(klein_ ? qwen_chat(p, /*enable_thinking=*/false)
                             : flux2_mistral_chat(p, kFlux2SystemMessage));
    }
    // apply_chat_template tokenizes the rendered text (which holds <s>) without special tokens;
    // klein's tokenizer(text) adds none either (Qwen).
    const TokenBatch tokens = tokenize_llm(folder_.component("tokenizer").dir, texts, max_length,
                                           /*pad_to_max=*/true, /*add_special_tokens=*/false);
    const std::vector<int> layers =
        klein_ ? std::vector<int>{9, 18, 27} : std::vector<int>{10, 20, 30};
    return models::llm::stack_features(run_decoder_lm(folder_.component("text_encoder").dir, place_, tokens,
                                                      layers,
                                                      &text_load_seconds_));  // (B, L, 3·D)
  }

  bool klein_ = false;
  bool distilled_ = false;
  bool guidance_embeds_ = true;
};

// ================================================================ Z-Image
class ZImagePipeline : public Pipeline {
 public:
  explicit ZImagePipeline(const io::ModelFolder& folder)
      : Pipeline(folder, folder.pipeline_class()) {
    latent_channels_ = transformer_config_.get_int("in_channels", 16);
    size_multiple_ = vae_scale_factor_ * 2;
    defaults_.num_inference_steps = 50;
    defaults_.guidance_scale = 5.0;
    defaults_.max_sequence_length = 512;
    defaults_.height = 1024;
    defaults_.width = 1024;
  }

  NamedTensors encode_prompt(const GenerateRequest& r) override {
    NamedTensors out;
    const Tensor pe = detail::find(r.prompt_embeds, "prompt_embeds");
    if (pe.defined()) {
      out["prompt_embeds"] = pe.to(core::DType::F32);
      const Tensor pm = detail::find(r.prompt_embeds, "prompt_attention_mask");
      if (pm.defined()) out["prompt_attention_mask"] = pm;
    } else {
      encode(r.prompts, *r.max_sequence_length, "prompt_embeds", "prompt_attention_mask", out);
    }
    if (uses_cfg(r)) {
      const Tensor ne = detail::find(r.prompt_embeds, "negative_prompt_embeds");
      if (ne.defined()) {
        out["negative_prompt_embeds"] = ne.to(core::DType::F32);
        const Tensor nm = detail::find(r.prompt_embeds, "negative_prompt_attention_mask");
        if (nm.defined()) out["negative_prompt_attention_mask"] = nm;
      } else {
        encode(detail::negative_texts(r, out["prompt_embeds"].dim(0)), *r.max_sequence_length,
               "negative_prompt_embeds", "negative_prompt_attention_mask", out);
      }
    }
    return out;
  }

 protected:
  bool uses_cfg(const GenerateRequest& r) const override { return *r.guidance_scale > 0.0; }

  void check_request(const GenerateRequest& r) const override {
    if (r.prompt_embeds.empty()) return;
    detail::check_embedding(detail::find(r.prompt_embeds, "prompt_embeds"), "prompt_embeds", 3);
  }

  void set_timesteps(schedulers::Scheduler& scheduler, const GenerateRequest& r,
                     const Tensor& latents) const override {
    const int n = *r.num_inference_steps;
    const schedulers::SchedulerConfig sc =
        schedulers::SchedulerConfig::load(scheduler_config_path_);
    schedulers::TimestepOptions options;
    // get_default_z_image_sigmas: torch.linspace(1, 1/N, N) in float32, then .tolist()
    for (float s : schedulers::torch_linspace_f32(1.0, 1.0 / n, n)) options.sigmas.push_back(s);
    if (sc.get_bool("use_dynamic_shifting", false)) {
      const int64_t seq = (latents.dim(2) / 2) * (latents.dim(3) / 2);
      options.mu = schedulers::calculate_shift(
          seq, sc.get_int("base_image_seq_len", 256), sc.get_int("max_image_seq_len", 4096),
          sc.get_double("base_shift", 0.5), sc.get_double("max_shift", 1.15));
    }
    scheduler.set_timesteps(n, options);
  }

  // One batch [prompts; negatives], captions zero-padded to the longest with their mask.
  NamedTensors prepare_conditioning(const NamedTensors& e, const GenerateRequest& r,
                                    const Tensor&) const override {
    std::vector<Tensor> rows =
        embeds_rows(detail::find(e, "prompt_embeds"), detail::find(e, "prompt_attention_mask"));
    if (uses_cfg(r)) {
      for (const Tensor& n : embeds_rows(detail::find(e, "negative_prompt_embeds"),
                                         detail::find(e, "negative_prompt_attention_mask"))) {
        rows.push_back(n);
      }
    }
    const models::llm::PaddedEmbeds padded = pad_embeds(rows);
    return {{"encoder_hidden_states", padded.embeds},  // (B|2B, L, D)
            {"encoder_attention_mask", padded.mask}};  // (B|2B, L)
  }

  NamedTensors model_inputs(const Tensor& latents, double t, const NamedTensors& c,
                            const GenerateRequest& r) const override {
    NamedTensors in = c;
    const Tensor x = latents.unsqueeze(2);                            // (B, C, 1, h, w)
    in["hidden_states"] = uses_cfg(r) ? core::concat({x, x}, 0) : x;  // (B|2B, C, 1, h, w)
    // (1000 − t) / 1000 in f32
    const float tf = static_cast<float>(t);
    in["timestep"] = detail::full_vector(in["hidden_states"].dim(0), (1000.0f - tf) / 1000.0f);
    return in;
  }

  // pos + g · (pos − neg), then negated (the model predicts the other direction).
  Tensor guided_output(const Tensor& out_in, const GenerateRequest& r) const override {
    const Tensor out = out_in.squeeze(2);  // (B|2B, C, h, w)
    Tensor pred = out;
    if (uses_cfg(r)) {
      const int64_t b = out.dim(0) / 2;
      const Tensor pos = out.slice(0, 0, b), neg = out.slice(0, b, 2 * b);
      pred = core::add(pos, core::scale(core::sub(pos, neg),
                                        static_cast<float>(*r.guidance_scale)));  // (B, C, h, w)
    }
    return core::scale(pred, -1.0f);  // (B, C, h, w)
  }

  Tensor decode_latents(const models::vae::AutoencoderKL& vae, const Tensor& latents,
                        const GenerateRequest&) const override {
    return detail::decode_batch(
        vae, detail::unscale(latents, vae.scaling_factor(), vae.shift_factor()), vae_group_);
  }

 private:
  void encode(const std::vector<std::string>& prompts, int max_length, const std::string& name,
              const std::string& mask_name, NamedTensors& out) {
    std::vector<std::string> texts;
    for (const std::string& p : prompts) texts.push_back(qwen_chat(p, /*enable_thinking=*/true));
    const TokenBatch tokens = tokenize_llm(folder_.component("tokenizer").dir, texts, max_length,
                                           /*pad_to_max=*/true);
    const Tensor h = run_decoder_lm(folder_.component("text_encoder").dir, place_, tokens, {-2},
                                    &text_load_seconds_)[0];  // (B, L, D)
    const models::llm::PaddedEmbeds padded =
        pad_embeds(models::llm::valid_rows(h, models::llm::token_counts(tokens.mask), 0));
    out[name] = padded.embeds;     // (B, longest, D)
    out[mask_name] = padded.mask;  // (B, longest)
  }
};

// ================================================================ Qwen-Image
class QwenImagePipeline : public Pipeline {
 public:
  explicit QwenImagePipeline(const io::ModelFolder& folder)
      : Pipeline(folder, folder.pipeline_class()) {
    latent_channels_ = transformer_config_.get_int("in_channels", 64) / 4;
    // The Wan-style VAE has no block_out_channels: 2 ** len(temperal_downsample).
    const io::Json& vc = vae_config_.json();
    const size_t downsamples =
        vc.contains("temperal_downsample") && vc.at("temperal_downsample").is_array()
            ? vc.at("temperal_downsample").size()
            : 3;
    vae_scale_factor_ = int64_t{1} << downsamples;
    size_multiple_ = vae_scale_factor_ * 2;
    defaults_.num_inference_steps = 50;
    defaults_.guidance_scale = 1.0;  // unused: the model is not guidance-distilled
    defaults_.max_sequence_length = 512;
    defaults_.height = 1024;
    defaults_.width = 1024;
  }

  core::Shape latent_shape(int64_t batch, int64_t height, int64_t width) const override {
    return {batch, (height / size_multiple_) * (width / size_multiple_), latent_channels_ * 4};
  }

  NamedTensors encode_prompt(const GenerateRequest& r) override {
    NamedTensors out;
    Tensor pe = detail::find(r.prompt_embeds, "prompt_embeds");
    if (pe.defined()) {
      out["prompt_embeds"] = pe.to(core::DType::F32);
      const Tensor pm = detail::find(r.prompt_embeds, "prompt_embeds_mask");
      if (pm.defined()) out["prompt_embeds_mask"] = pm;
    } else {
      encode(r.prompts, *r.max_sequence_length, "prompt_embeds", "prompt_embeds_mask", out);
    }
    if (uses_cfg(r)) {
      const Tensor ne = detail::find(r.prompt_embeds, "negative_prompt_embeds");
      if (ne.defined()) {
        out["negative_prompt_embeds"] = ne.to(core::DType::F32);
        const Tensor nm = detail::find(r.prompt_embeds, "negative_prompt_embeds_mask");
        if (nm.defined()) out["negative_prompt_embeds_mask"] = nm;
      } else {
        encode(detail::negative_texts(r, out["prompt_embeds"].dim(0)), *r.max_sequence_length,
               "negative_prompt_embeds", "negative_prompt_embeds_mask", out);
      }
    }
    return out;
  }

 protected:
  // true CFG: true_cfg_scale > 1 and a negative prompt (or its embeddings).
  bool uses_cfg(const GenerateRequest& r) const override {
    const bool has_negative = r.negative_prompt.has_value() ||
                              detail::find(r.prompt_embeds, "negative_prompt_embeds").defined();
    return r.true_cfg_scale.value_or(4.0) > 1.0 && has_negative;
  }

  void check_request(const GenerateRequest& r) const override {
    PARADIT_CHECK(*r.max_sequence_length <= 1024,
                  "--max_sequence_length: cannot be greater than 1024, found ",
                  *r.max_sequence_length);
    if (r.prompt_embeds.empty()) return;
    detail::check_embedding(detail::find(r.prompt_embeds, "prompt_embeds"), "prompt_embeds", 3);
  }

  Tensor draw_latents(int64_t batch, int64_t height, int64_t width, uint64_t seed) const override {
    const int64_t h = models::vae::packed_latent_size(height, vae_scale_factor_);
    const int64_t w = models::vae::packed_latent_size(width, vae_scale_factor_);
    // diffusers draws (B, 1, C, h, w); the frame axis of 1 does not change the values.
    return models::vae::pack_latents(core::randn({batch, latent_channels_, h, w}, seed));
  }

  void set_timesteps(schedulers::Scheduler& scheduler, const GenerateRequest& r,
                     const Tensor& latents) const override {
    const int n = *r.num_inference_steps;
    const schedulers::SchedulerConfig sc =
        schedulers::SchedulerConfig::load(scheduler_config_path_);
    schedulers::TimestepOptions options;
    options.sigmas = schedulers::np_linspace(1.0, 1.0 / n, n);
    if (sc.get_bool("use_dynamic_shifting", false)) {
      options.mu = schedulers::calculate_shift(
          latents.dim(1), sc.get_int("base_image_seq_len", 256),
          sc.get_int("max_image_seq_len", 4096), sc.get_double("base_shift", 0.5),
          sc.get_double("max_shift", 1.15));
    }
    scheduler.set_timesteps(n, options);
  }

  // [negatives; prompts] padded to a common text length with the text mask (diffusers runs the
  // two calls apart; masked keys make the batched call the same attention).
  NamedTensors prepare_conditioning(const NamedTensors& e, const GenerateRequest& r,
                                    const Tensor& latents) const override {
    std::vector<Tensor> rows;
    if (uses_cfg(r)) {
      rows = embeds_rows(detail::find(e, "negative_prompt_embeds"),
                         detail::find(e, "negative_prompt_embeds_mask"));
    }
    for (const Tensor& p :
         embeds_rows(detail::find(e, "prompt_embeds"), detail::find(e, "prompt_embeds_mask"))) {
      rows.push_back(p);
    }
    const models::llm::PaddedEmbeds padded = pad_embeds(rows);
    NamedTensors c{{"encoder_hidden_states", padded.embeds}};  // (B|2B, L, D)
    const std::vector<float> m = padded.mask.to_vector();
    if (std::any_of(m.begin(), m.end(), [](float v) { return v == 0.0f; })) {
      c["encoder_hidden_states_mask"] = padded.mask;  // (B|2B, L)
    }
    const int64_t h = *r.height / size_multiple_, w = *r.width / size_multiple_;
    c["img_shapes"] = Tensor::from_vector_i64({1, h, w}, {1, 3});
    (void)latents;
    return c;
  }

  NamedTensors model_inputs(const Tensor& latents, double t, const NamedTensors& c,
                            const GenerateRequest& r) const override {
    NamedTensors in = c;
    in["hidden_states"] = uses_cfg(r) ? core::concat({latents, latents}, 0) : latents;
    in["timestep"] =
        detail::full_vector(in["hidden_states"].dim(0), static_cast<float>(t) / 1000.0f);
    return in;
  }

  // comb = neg + s · (cond − neg), rescaled per token to the conditional prediction's norm.
  Tensor guided_output(const Tensor& out, const GenerateRequest& r) const override {
    if (!uses_cfg(r)) return out;  // (B, S, 64)
    const int64_t b = out.dim(0) / 2;
    const Tensor neg = out.slice(0, 0, b), cond = out.slice(0, b, 2 * b);
    const Tensor comb = detail::guide(neg, cond, r.true_cfg_scale.value_or(4.0));  // (B, S, 64)
    // comb · (‖cond‖ / ‖comb‖), the ratio first as torch evaluates it
    const Tensor ratio = core::div(row_norm(cond), row_norm(comb));  // (B, S, 1)
    return core::mul(comb, ratio);                                     // (B, S, 64)
  }

  LatentRows latent_rows(const GenerateRequest& r) const override {
    return {1, *r.width / size_multiple_};
  }

  bool own_decoder() const override { return true; }

  // Unpack to (B, C, 1, h, w), · latents_std + latents_mean, the Wan-style VAE, frame 0.
  Tensor decode_video(const Tensor& latents, const GenerateRequest& r,
                      PhaseTimes* times) const override {
    const int64_t h = models::vae::packed_latent_size(*r.height, vae_scale_factor_);
    const int64_t w = models::vae::packed_latent_size(*r.width, vae_scale_factor_);
    const Tensor z = models::vae::unpack_latents(latents, h, w).unsqueeze(2);  // (B, C, 1, h, w)
    const Tensor video =
        detail::decode_wan_video(folder_.component("vae").dir, place_, z, vae_group_, times);
    return video.select(2, 0).contiguous();  // (B, 3, H, W)
  }

 private:
  void encode(const std::vector<std::string>& prompts, int max_length, const std::string& name,
              const std::string& mask_name, NamedTensors& out) {
    constexpr int kDrop = 34;  // prompt_template_encode_start_idx
    constexpr const char* kTemplate =
        "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, "
        "quantity, text, spatial relationships of the objects and background:<|im_end|>\n"
        "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n";
    std::vector<std::string> texts;
    for (const std::string& p : prompts) {
      std::string t = kTemplate;
      t.replace(t.find("{}"), 2, p);
      texts.push_back(t);
    }
    // tokenizer_max_length 1024 + the dropped prefix, padding to the longest
    const TokenBatch tokens =
        tokenize_llm(folder_.component("tokenizer").dir, texts, 1024 + kDrop, /*pad_to_max=*/false);
    const Tensor h = run_decoder_lm(folder_.component("text_encoder").dir, place_, tokens, {-1},
                                    &text_load_seconds_)[0];  // (B, L, D)
    std::vector<Tensor> rows =
        models::llm::valid_rows(h, models::llm::token_counts(tokens.mask), kDrop);
    int64_t longest = 0;
    for (const Tensor& t : rows) longest = std::max(longest, t.dim(0));
    // encode_prompt cuts to max_sequence_length; an all-ones mask is dropped (None)
    const models::llm::PaddedEmbeds padded =
        pad_embeds(rows, std::min<int64_t>(longest, max_length));
    out[name] = padded.embeds;
    const std::vector<float> m = padded.mask.to_vector();
    if (std::any_of(m.begin(), m.end(), [](float v) { return v == 0.0f; })) {
      out[mask_name] = padded.mask;
    }
  }
};

}  // namespace

std::unique_ptr<Pipeline> make_llm_family_pipeline(const io::ModelFolder& folder) {
  const std::string cls = folder.pipeline_class();
  if (cls == "Flux2Pipeline") return std::make_unique<Flux2Pipeline>(folder, false);
  if (cls == "Flux2KleinPipeline") return std::make_unique<Flux2Pipeline>(folder, true);
  if (cls == "ZImagePipeline") return std::make_unique<ZImagePipeline>(folder);
  if (cls == "QwenImagePipeline") return std::make_unique<QwenImagePipeline>(folder);
  return nullptr;
}

Tensor flux2_vae_space_latents(const Pipeline& pipeline, const Tensor& latents, int64_t height,
                               int64_t width) {
  const auto* flux2 = dynamic_cast<const Flux2Pipeline*>(&pipeline);
  PARADIT_CHECK(flux2 != nullptr, pipeline.class_name(), " is not a FLUX.2 pipeline");
  return flux2->vae_space_latents(latents, height, width);
}

}  // namespace paradit::pipelines
