// WanPipeline (diffusers pipelines/wan/pipeline_wan.py; Wan2.1 text-to-video): UMT5 over the
// cleaned prompt with its attention mask, the states past each prompt's token count set to zero
// (_get_t5_prompt_embeds); UniPC multistep with flow sigmas and flow_shift from
// scheduler_config.json; classifier-free guidance with a negative prompt, the unconditional and
// conditional forwards batched as [uncond, cond] (diffusers runs them one after the other at
// batch 1: the same rows, so the same numbers); latents (B, C, (F − 1)/4 + 1, H/8, W/8); decode
// with AutoencoderKLWan after latents · latents_std + latents_mean per channel.
//
// Not supported (Error naming the key): Wan2.2's two experts (transformer_2, boundary_ratio).
// Wan2.2 TI2V's expand_timesteps is accepted: text-to-video passes every token the same
// timestep, which is the per-sample form.
#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/ops.h"
#include "models/common/text.h"
#include "models/vae/wan.h"
#include "parallel/video_vae_patch.h"
#include "pipelines/families.h"
#include "pipelines/text_encoding.h"
#include "schedulers/scheduler.h"

namespace paradit::pipelines {

namespace {

using core::Tensor;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

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
    PARADIT_CHECK(!folder.has_component("transformer_2") &&
                      !(index.contains("boundary_ratio") && !index["boundary_ratio"].is_null()),
                  index_path.string(), ": WanPipeline with transformer_2 / boundary_ratio (the "
                  "two-expert Wan2.2 A14B) is not supported");
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
    if (r.prompt_embeds.empty()) return;
    const Tensor pe = detail::find(r.prompt_embeds, "prompt_embeds");
    detail::check_embedding(pe, "prompt_embeds", 3);
    const Tensor ne = detail::find(r.prompt_embeds, "negative_prompt_embeds");
    if (ne.defined()) {
      // One [uncond, cond] batch needs equal shapes (diffusers would run two forwards).
      PARADIT_CHECK(ne.shape() == pe.shape(), "--prompt_embeds: tensor 'negative_prompt_embeds' "
                    "has shape ", core::shape_str(ne.shape()), ", expected ",
                    core::shape_str(pe.shape()), " (as prompt_embeds)");
      PARADIT_CHECK(!r.negative_prompt, "--negative_prompt and --prompt_embeds with "
                    "negative_prompt_embeds: give one of them, not both");
    }
  }

  NamedTensors prepare_conditioning(const NamedTensors& e, const GenerateRequest& r,
                                    const Tensor& latents) const override {
    NamedTensors c;
    const Tensor pos = detail::find(e, "prompt_embeds");
    c["encoder_hidden_states"] =
        uses_cfg(r) ? core::concat({detail::find(e, "negative_prompt_embeds"), pos}, 0)  // (2B, L, D)
                    : pos;                                                              // (B, L, D)
    return c;
  }

  Tensor predict_noise(const models::Transformer& model, const Tensor& latents, double t,
                       const NamedTensors& c, const GenerateRequest& r) const override {
    const bool cfg = uses_cfg(r);
    const int64_t batch = latents.dim(0);
    NamedTensors in = c;
    in["hidden_states"] = cfg ? core::concat({latents, latents}, 0) : latents;  // (2B, C, f, h, w)
    in["timestep"] = detail::full_vector(in["hidden_states"].dim(0), static_cast<float>(t));
    Tensor noise = run_transformer(model, in);  // (2B, C, f, h, w)
    if (cfg) {
      noise = detail::guide(noise.slice(0, 0, batch), noise.slice(0, batch, 2 * batch),
                            *r.guidance_scale);  // (B, C, f, h, w)
    }
    return noise;
  }

  Tensor decode_video(const Tensor& latents, const GenerateRequest& r,
                      PhaseTimes* times) const override {
    const auto t0 = Clock::now();
    const std::unique_ptr<models::vae::AutoencoderKLWan> vae =
        models::vae::load_autoencoder_kl_wan(folder_.component("vae").dir);
    times->load += seconds_since(t0);
    const auto t1 = Clock::now();
    // latents / (1 / latents_std) + latents_mean, per channel, in f32.
    const Tensor z = vae->unnormalize_latents(latents);  // (B, z_dim, f, h, w)
    // --use_parallel_vae: each video row-parallel over the group (collective).
    const bool split = vae_group_ && vae_group_->size() > 1;
    Tensor video = detail::decode_each_video(z, [&](const Tensor& zb) {
      return split ? parallel::decode_video_row_parallel(*vae, zb, *vae_group_)
                   : vae->decode(zb);  // (1, 3, F, H, W)
    });  // (B, 3, F, H, W)
    times->decode += seconds_since(t1);
    return video;
  }

 private:
  using fs_path = std::filesystem::path;

  // _get_t5_prompt_embeds for cleaned `texts`: UMT5 with the attention mask, then every state
  // from a text's token count on set to 0. → (rows, L, d_model)
  Tensor encode_texts(const std::vector<std::string>& texts, int max_sequence_length) {
    const TokenBatch tokens = tokenize_t5(folder_.component("tokenizer").dir, texts,
                                          max_sequence_length);  // (rows, L)
    Tensor embeds = run_t5(folder_.component("text_encoder").dir, tokens, true,
                           &text_load_seconds_)
                        .contiguous();  // (rows, L, D)
    const int64_t rows = embeds.dim(0), L = embeds.dim(1), D = embeds.dim(2);
    const Tensor mask = tokens.mask.contiguous();
    const int64_t* m = mask.data<int64_t>();
    float* e = embeds.data<float>();
    for (int64_t b = 0; b < rows; ++b) {
      int64_t len = 0;  // mask.gt(0).sum()
      for (int64_t i = 0; i < L; ++i) len += m[b * L + i] > 0;
      std::fill(e + (b * L + len) * D, e + (b + 1) * L * D, 0.0f);
    }
    return embeds;
  }
};

}  // namespace

std::unique_ptr<Pipeline> make_wan_pipeline(const io::ModelFolder& folder) {
  return std::make_unique<WanPipeline>(folder);
}

}  // namespace paradit::pipelines
