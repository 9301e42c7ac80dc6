// DiTPipeline (diffusers pipelines/dit): class-conditional. The batch is [cond, null class];
// guidance mixes only the first latent-channel outputs (eps) — the variance channels pass
// through — and learned-sigma outputs are cut to the latent channels before scheduler.step.
// diffusers steps the doubled batch and keeps the first half; both halves get the same guided
// eps, so stepping the single batch gives the same latents.
#include <cstdlib>
#include <map>

#include "core/error.h"
#include "core/ops.h"
#include "models/vae/autoencoder_kl.h"
#include "pipelines/families.h"
#include "schedulers/scheduler.h"

namespace paradit::pipelines {

namespace {

using core::Tensor;

class DiTPipeline : public Pipeline {
 public:
  explicit DiTPipeline(const io::ModelFolder& folder) : Pipeline(folder, folder.pipeline_class()) {
    latent_channels_ = transformer_config_.get_int("in_channels", 4);
    out_channels_ = transformer_config_.get_int("out_channels", latent_channels_);
    num_classes_ = transformer_config_.get_int("num_embeds_ada_norm", 1000);
    const int64_t patch = transformer_config_.get_int("patch_size", 2);
    size_multiple_ = vae_scale_factor_ * patch;
    defaults_.num_inference_steps = 50;
    defaults_.guidance_scale = 4.0;
    defaults_.max_sequence_length = 0;  // no text encoder
    const int64_t sample = transformer_config_.get_int("sample_size", 32);
    defaults_.height = sample * vae_scale_factor_;
    defaults_.width = sample * vae_scale_factor_;
    // model_index.json's id2label ({"0": "tench, Tinca tinca", ...}): every comma-separated
    // name maps to its id, as DiTPipeline.get_label_ids reads it.
    const io::Json& index = folder.model_index();
    if (index.contains("id2label") && index["id2label"].is_object()) {
      for (const auto& [key, value] : index["id2label"].items()) {
        if (!value.is_string()) continue;
        const std::string names = value.get<std::string>();
        size_t start = 0;
        while (start <= names.size()) {
          size_t comma = names.find(',', start);
          if (comma == std::string::npos) comma = names.size();
          std::string label = names.substr(start, comma - start);
          const auto b = label.find_first_not_of(" \t\n\r");
          const auto e = label.find_last_not_of(" \t\n\r");
          if (b != std::string::npos) labels_[label.substr(b, e - b + 1)] = std::atoll(key.c_str());
          start = comma + 1;
        }
      }
    }
  }

  // "class_labels" (B) I64 from the prompts: a class id or an id2label name.
  NamedTensors encode_prompt(const GenerateRequest& r) override {
    std::vector<int64_t> ids;
    for (const std::string& p : r.prompts) ids.push_back(label_id(p));
    NamedTensors out;
    out["class_labels"] =
        Tensor::from_vector_i64(ids, {static_cast<int64_t>(ids.size())});  // (B)
    return out;
  }

 protected:
  void check_request(const GenerateRequest& r) const override {
    for (const std::string& p : r.prompts) label_id(p);
  }

  NamedTensors prepare_conditioning(const NamedTensors& e, const GenerateRequest& r,
                                    const Tensor& latents) const override {
    NamedTensors c;
    const Tensor labels = detail::find(e, "class_labels");
    if (uses_cfg(r)) {
      std::vector<int64_t> ids = labels.to_vector_i64();
      // The null class (diffusers: 1000, i.e. num_embeds_ada_norm) for the unconditional half.
      for (int64_t i = 0; i < labels.dim(0); ++i) ids.push_back(num_classes_);
      c["class_labels"] = Tensor::from_vector_i64(ids, {static_cast<int64_t>(ids.size())});  // (2B)
    } else {
      c["class_labels"] = labels;  // (B)
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

  Tensor guided_output(const Tensor& noise_pred, const GenerateRequest& r) const override {
    const bool cfg = uses_cfg(r);
    const int64_t batch = cfg ? noise_pred.dim(0) / 2 : noise_pred.dim(0);
    const int64_t C = latent_channels_;  // noise_pred: (2B, out_channels, h, w)
    Tensor eps = noise_pred.slice(1, 0, C);        // (2B, C, h, w) view
    Tensor rest = noise_pred.slice(1, C, noise_pred.dim(1));  // (2B, out − C, h, w) view
    if (cfg) {
      // The conditional half comes first here.
      eps = detail::guide(eps.slice(0, batch, 2 * batch), eps.slice(0, 0, batch),
                          *r.guidance_scale);  // (B, C, h, w)
      rest = rest.slice(0, 0, batch);          // (B, out − C, h, w)
    }
    if (out_channels_ / 2 == C || rest.dim(1) == 0) return eps.contiguous();  // (B, C, h, w)
    return core::concat({eps.contiguous(), rest.contiguous()}, 1);  // (B, out, h, w)
  }

  Tensor decode_latents(const models::vae::AutoencoderKL& vae, const Tensor& latents,
                        const GenerateRequest& r) const override {
    // latents = 1 / scaling_factor * latents
    const float inv = static_cast<float>(1.0 / vae.scaling_factor());
    const Tensor z = core::scale(latents, inv);  // (B, C, h, w)
    return detail::decode_batch(vae, z, vae_group_);
  }

 private:
  int64_t label_id(const std::string& text) const {
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (!text.empty() && end && *end == '\0') {
      PARADIT_CHECK(v >= 0 && v < num_classes_, "--prompt: class id ", v, " is out of range [0, ",
                    num_classes_, ") for ", class_name_);
      return v;
    }
    const auto it = labels_.find(text);
    PARADIT_CHECK(it != labels_.end(), "--prompt: '", text, "' is neither a class id in [0, ",
                  num_classes_, ") nor a label of model_index.json's id2label");
    return it->second;
  }

  int64_t out_channels_ = 8;
  int64_t num_classes_ = 1000;
  std::map<std::string, int64_t> labels_;
};

}  // namespace

std::unique_ptr<Pipeline> make_dit_pipeline(const io::ModelFolder& folder) {
  return std::make_unique<DiTPipeline>(folder);
}

}  // namespace paradit::pipelines
