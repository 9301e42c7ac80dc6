// WanPipeline (diffusers pipelines/wan/pipeline_wan.py; Wan2.1 text-to-video): UMT5 over the
// cleaned prompt with its attention mask, the states past each prompt's token count set to zero
// (_get_t5_prompt_embeds); UniPC multistep with flow sigmas and flow_shift from
// scheduler_config.json; classifier-free guidance with a negative prompt, the unconditional and
// conditional forwards batched as [uncond, cond] (diffusers runs them one after the other at
// batch 1: the same rows, so the same numbers); latents (B, C, (F − 1)/4 + 1, H/8, W/8); decode
// with AutoencoderKLWan after latents · latents_std + latents_mean per channel.
//
// Wan2.2 A14B's two experts (model_index.json boundary_ratio with transformer_2): the high-noise
// `transformer` runs the steps with t >= boundary_ratio · num_train_timesteps (compared in f32,
// as torch compares the int64 timestep with the Python float), the low-noise `transformer_2` the
// steps after, guided with guidance_scale_2 (unset = guidance_scale); whether CFG runs at all
// depends on guidance_scale alone. transformer_2 is loaded with the transformer and freed with
// it (kept in keep-loaded mode); without boundary_ratio diffusers never calls it, nor do we.
// Wan2.2 TI2V's expand_timesteps is accepted: text-to-video passes every token the same
// timestep, which is the per-sample form.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "core/ops.h"
#include "models/common/text.h"
#include "pipelines/families.h"
#include "pipelines/text_encoding.h"
#include "schedulers/scheduler.h"

namespace paradit::pipelines {

namespace {

using core::Tensor;

// html.unescape for the character references prompts carry: &amp; &lt; &gt; &quot; &apos;
// &nbsp; and numeric &#N; / &#xH;. Other named references stay as they are.
std::u32string html_unescape(const std::u32string& s) {
  static const std::pair<std::u32string_view, char32_t> kNamed[] = {
      {U"amp", U'&'}, {U"lt", U'<'}, {U"gt", U'>'}, {U"quot", U'"'}, {U"apos", U'\''},
      {U"nbsp", U'\u00A0'}};
  std::u32string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != U'&') {
      out += s[i];
      continue;
    }
    const size_t semi = s.find(U';', i + 1);
    if (semi == std::u32string::npos || semi - i > 12) {
      out += s[i];
      continue;
    }
    const std::u32string_view name(s.data() + i + 1, semi - i - 1);
    char32_t cp = 0;
    bool ok = false;
    if (name.size() >= 2 && name[0] == U'#') {
      const bool hex = name[1] == U'x' || name[1] == U'X';
      const size_t start = hex ? 2 : 1;
      ok = start < name.size();
      for (size_t k = start; ok && k < name.size(); ++k) {
        const char32_t c = name[k];
        int digit = -1;
        if (c >= U'0' && c <= U'9') digit = static_cast<int>(c - U'0');
        if (hex && c >= U'a' && c <= U'f') digit = static_cast<int>(c - U'a' + 10);
        if (hex && c >= U'A' && c <= U'F') digit = static_cast<int>(c - U'A' + 10);
        ok = digit >= 0 && cp < 0x110000;
        cp = cp * (hex ? 16 : 10) + static_cast<char32_t>(digit);
      }
      ok = ok && cp > 0 && cp < 0x110000 && !(cp >= 0xD800 && cp <= 0xDFFF);
    } else {
      for (const auto& [n, c] : kNamed) {
        if (name == n) {
          cp = c;
          ok = true;
        }
      }
    }
    if (!ok) {
      out += s[i];
      continue;
    }
    out += cp;
    i = semi;
  }
  return out;
}

// Python's str.strip(): Unicode whitespace plus the ASCII information separators.
std::u32string strip(const std::u32string& s) {
  auto space = [](char32_t c) {
    return models::common::is_whitespace(c) || (c >= 0x1c && c <= 0x1f);
  };
  size_t begin = 0, end = s.size();
  while (begin < end && space(s[begin])) ++begin;
  while (end > begin && space(s[end - 1])) --end;
  return s.substr(begin, end - begin);
}

// The Wan pipelines' prompt_clean: basic_clean (ftfy.fix_text where installed — here its
// curly-quote and NFC steps — then html.unescape twice, strip), then whitespace_clean (every
// \s+ run becomes one space, strip).
std::string wan_prompt_clean(const std::string& text) {
  std::u32string s = models::common::nfc(models::common::utf8_to_u32(text));
  for (char32_t& c : s) {
    if (c == U'\u2018' || c == U'\u2019' || c == U'\u201A' || c == U'\u201B') c = U'\'';
    if (c == U'\u201C' || c == U'\u201D' || c == U'\u201E' || c == U'\u201F') c = U'"';
  }
  s = strip(html_unescape(html_unescape(s)));
  s = strip(models::common::collapse_whitespace(s));
  return models::common::u32_to_utf8(s);
}

class WanPipeline : public Pipeline {
 public:
  explicit WanPipeline(const io::ModelFolder& folder) : Pipeline(folder, folder.pipeline_class()) {
    const io::Json& index = folder.model_index();
    const fs_path index_path = folder.root() / "model_index.json";
    if (index.contains("boundary_ratio") && !index["boundary_ratio"].is_null()) {
      PARADIT_CHECK(index["boundary_ratio"].is_number(), index_path.string(),
                    ": boundary_ratio must be a number or null");
      const double ratio = index["boundary_ratio"].get<double>();
      const bool listed = folder.has_component("transformer_2");
      const fs_path config_2_path =
          listed ? folder.component("transformer_2").dir / "config.json" : fs_path();
      PARADIT_CHECK(listed && std::filesystem::exists(config_2_path), index_path.string(),
                    ": boundary_ratio ", ratio, " needs the low-noise expert transformer_2, "
                    "which is missing (", listed ? config_2_path.string() + " not found"
                                                 : std::string("not in model_index.json"), ")");
      const io::Config config_2 = io::Config::load(config_2_path);
      PARADIT_CHECK(config_2.get_int("in_channels", 16) ==
                            transformer_config_.get_int("in_channels", 16) &&
                        config_2.get_int_list("patch_size", {1, 2, 2}) ==
                            transformer_config_.get_int_list("patch_size", {1, 2, 2}),
                    config_2.where(), ": in_channels / patch_size differ from transformer's");
      // diffusers: boundary_ratio * scheduler.config.num_train_timesteps, a Python float.
      boundary_timestep_ =
          ratio * static_cast<double>(io::Config::load(scheduler_config_path_)
                                          .get_int("num_train_timesteps", 1000));
    }
    // diffusers: vae_scale_factor_spatial / _temporal from the VAE config.
    vae_scale_factor_ = vae_config_.get_int("scale_factor_spatial", 8);
    temporal_factor_ = vae_config_.get_int("scale_factor_temporal", 4);
    latent_channels_ = transformer_config_.get_int("in_channels", 16);
    const auto patch = transformer_config_.get_int_list("patch_size", {1, 2, 2});
    PARADIT_CHECK(patch.size() == 3 && patch[0] == 1 && patch[1] == patch[2],
                  transformer_config_.where(), ": patch_size must be [1, p, p] for WanPipeline");
    // check_inputs wants multiples of 16; the patches need multiples of VAE × patch.
    size_multiple_ = std::max<int64_t>(16, vae_scale_factor_ * patch[1]);
    PARADIT_CHECK(size_multiple_ % 16 == 0 && size_multiple_ % (vae_scale_factor_ * patch[1]) == 0,
                  transformer_config_.where(), ": VAE scale ", vae_scale_factor_, " x patch ",
                  patch[1], " does not divide into 16-pixel sizes");
    defaults_.num_inference_steps = 50;
    defaults_.guidance_scale = 5.0;
    defaults_.max_sequence_length = 512;
    defaults_.height = 480;
    defaults_.width = 832;
    defaults_.num_frames = 81;
    defaults_.fps = 16;
    defaults_.round_frames = false;
  }

  NamedTensors encode_prompt(const GenerateRequest& r) override {
    const int64_t batch = batch_size(r);
    const bool cfg = uses_cfg(r);
    NamedTensors out;
    const Tensor given = detail::find(r.prompt_embeds, "prompt_embeds");
    const Tensor given_negative = detail::find(r.prompt_embeds, "negative_prompt_embeds");

    std::vector<std::string> texts;  // conditional first, then unconditional, one UMT5 batch
    if (!given.defined()) {
      for (const std::string& p : r.prompts) texts.push_back(wan_prompt_clean(p));
    }
    if (cfg && !given_negative.defined()) {
      for (const std::string& n : detail::negative_texts(r, batch)) {
        texts.push_back(wan_prompt_clean(n));
      }
    }
    Tensor embeds;  // (rows, L, D)
    if (!texts.empty()) embeds = encode_texts(texts, *r.max_sequence_length);

    int64_t row = 0;
    if (given.defined()) {
      out["prompt_embeds"] = given.to(core::DType::F32);
    } else {
      out["prompt_embeds"] = batch_rows(embeds, 0, batch);  // (B, L, D)
      row = batch;
    }
    if (cfg) {
      out["negative_prompt_embeds"] = given_negative.defined()
                                          ? given_negative.to(core::DType::F32)
                                          : batch_rows(embeds, row, row + batch);  // (B, L, D)
    }
    return out;
  }

 protected:
  void check_request(const GenerateRequest& r) const override {
    // diffusers' check_inputs: guidance_scale_2 only with boundary_ratio.
    PARADIT_CHECK(!r.guidance_scale_2 || boundary_timestep_, "--guidance_scale_2: ",
                  root_.string(), " has one transformer (no boundary_ratio in model_index.json)");
    PARADIT_CHECK(!r.guidance_scale_2 || std::isfinite(*r.guidance_scale_2),
                  "--guidance_scale_2: must be a finite number");
    if (r.prompt_embeds.empty()) return;
    const Tensor pe = detail::find(r.prompt_embeds, "prompt_embeds");
    detail::check_embedding(pe, "prompt_embeds", 3);
    const Tensor ne = detail::find(r.prompt_embeds, "negative_prompt_embeds");
    if (ne.defined()) {
      detail::check_negative_embeds(ne, pe);
      PARADIT_CHECK(!r.negative_prompt, "--negative_prompt and --prompt_embeds with "
                    "negative_prompt_embeds: give one of them, not both");
    }
  }

  NamedTensors prepare_conditioning(const NamedTensors& e, const GenerateRequest& r,
                                    const Tensor& latents) const override {
    NamedTensors c;
    c["encoder_hidden_states"] =
        detail::cfg_rows(e, "prompt_embeds", uses_cfg(r));  // (B or 2B, L, D)
    return c;
  }

  Tensor predict_noise(const models::Transformer& model, const Tensor& latents, double t,
                       const NamedTensors& c, const GenerateRequest& r) const override {
    // Wan2.2: the low-noise expert below the boundary, with its own guidance scale.
    const bool low_noise = low_noise_stage(t);
    const models::Transformer& expert = low_noise ? *transformer_2_ : model;
    const double guidance =
        low_noise ? r.guidance_scale_2.value_or(*r.guidance_scale) : *r.guidance_scale;
    return detail::predict_video_noise(
        latents, t, c, uses_cfg(r) ? std::optional<double>(guidance) : std::nullopt,
        [&](const NamedTensors& in) { return run_transformer(expert, in); });  // (B, C, f, h, w)
  }

  void load_extra_models() override {
    if (!boundary_timestep_ || transformer_2_) return;
    transformer_2_ = models::load_transformer(folder_.component("transformer_2").dir);
  }
  void release_extra_models() override {
    if (!keep_loaded_) transformer_2_.reset();
  }

  Tensor decode_video(const Tensor& latents, const GenerateRequest& r,
                      PhaseTimes* times) const override {
    return detail::decode_wan_video(folder_.component("vae").dir, place_, latents, vae_group_,
                                    times);  // (B, 3, F, H, W)
  }

 private:
  using fs_path = std::filesystem::path;

  // diffusers: `t >= boundary_timestep` runs transformer; torch promotes the int64 timestep
  // and the Python float to f32 for the comparison.
  bool low_noise_stage(double t) const {
    return boundary_timestep_ &&
           !(static_cast<float>(t) >= static_cast<float>(*boundary_timestep_));
  }

  // boundary_ratio · num_train_timesteps; unset: one expert (Wan2.1, TI2V-5B).
  std::optional<double> boundary_timestep_;
  std::shared_ptr<const models::Transformer> transformer_2_;  // the low-noise expert, per call

  // _get_t5_prompt_embeds for cleaned `texts`: UMT5 with the attention mask, then every state
  // from a text's token count on set to 0. → (rows, L, d_model)
  Tensor encode_texts(const std::vector<std::string>& texts, int max_sequence_length) {
    const TokenBatch tokens = tokenize_t5(folder_.component("tokenizer").dir, texts,
                                          max_sequence_length);  // (rows, L)
    Tensor embeds = run_t5(folder_.component("text_encoder").dir, place_, tokens, true,
                           &text_load_seconds_)
                        .contiguous();  // (rows, L, D)
    const int64_t rows = embeds.dim(0), L = embeds.dim(1), D = embeds.dim(2);
    const std::vector<int64_t> m = tokens.mask.to_vector_i64();  // host metadata
    for (int64_t b = 0; b < rows; ++b) {
      int64_t len = 0;  // mask.gt(0).sum()
      for (int64_t i = 0; i < L; ++i) len += m[static_cast<size_t>(b * L + i)] > 0;
      if (len == L) continue;
      embeds.slice(0, b, b + 1)
          .slice(1, len, L)
          .copy_from(Tensor::zeros({1, L - len, D}, embeds.dtype(), embeds.device()));
    }
    return embeds;
  }
};

}  // namespace

std::unique_ptr<Pipeline> make_wan_pipeline(const io::ModelFolder& folder) {
  return std::make_unique<WanPipeline>(folder);
}

}  // namespace paradit::pipelines
