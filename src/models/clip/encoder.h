#pragma once
// CLIP's text tower as transformers' CLIPTextModel and CLIPTextModelWithProjection run it (the
// text encoders of SD1.x/SDXL/SD3/Flux): token + absolute position embeddings, pre-LN encoder
// layers with causal self-attention (q/k/v/out_proj, scale 1/sqrt(head_dim)) and an MLP (fc1 →
// hidden_act → fc2), a final LayerNorm, the pooled output at the end-of-text token and, with
// projection, text_embeds = text_projection(pooled) (no bias).
//
// - Pooling follows transformers 5.x: when config eos_token_id == 2 (the old OpenAI configs)
//   the position is argmax(input_ids) (the end-of-text token has the largest id); otherwise the
//   first position whose id == eos_token_id (0 when there is none, as torch's argmax of zeros).
// - attention_mask (optional; the diffusers pipelines pass none) drops masked keys on top of the
//   causal mask. A query row left with no visible key (only possible when position 0 is masked)
//   gets a zero attention output; transformers' result there is not meaningful either.
//
// Which class is built comes from config.json's `architectures` (CLIPTextModelWithProjection
// adds text_projection). Checkpoint names are transformers': [text_model.]embeddings.*,
// [text_model.]encoder.layers.i.*, [text_model.]final_layer_norm.*, text_projection.weight. The
// "text_model." prefix is there in WithProjection checkpoints and in CLIPTextModel checkpoints
// saved by transformers 4.x, not in those saved by 5.x; both spellings are accepted.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/diffusers.h"
#include "models/common/weights.h"

namespace paradit::models::clip {

// config.json (model_type clip_text_model) with transformers' CLIPTextConfig defaults.
struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t projection_dim = 512;
  int64_t num_layers = 12;  // num_hidden_layers
  int64_t num_heads = 8;    // num_attention_heads
  int64_t max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";
  float eps = 1e-5f;  // layer_norm_eps
  int64_t eos_token_id = 49407;
  bool with_projection = false;  // architectures names CLIPTextModelWithProjection

  int64_t head_dim() const { return hidden_size / num_heads; }
  // Error "<config.json>: ..." naming the key on a bad or unsupported value.
  static ClipTextConfig parse(const io::Config& config);
};

struct ClipTextOutput {
  core::Tensor last_hidden_state;  // (B, S, hidden), after final_layer_norm
  core::Tensor pooled_output;      // (B, hidden): last_hidden_state at the end-of-text token
  core::Tensor text_embeds;        // (B, projection_dim); undefined without projection
  // num_layers + 1 entries: [0] the embeddings, [i] the output of layer i (the last one is
  // before final_layer_norm; SD3 and SDXL take [-2]). Empty when not asked.
  std::vector<core::Tensor> hidden_states;
};

class ClipTextEncoder {
 public:
  // A component folder (config.json + model.safetensors or a sharded set).
  // `matrix_dtype`: F32, or BF16 to keep the 2-D weights (token embedding included) in bf16.
  static ClipTextEncoder load(const std::filesystem::path& dir,
                              const core::Placement& place = core::DType::F32);
  // An explicit config.json and weights (a .safetensors file, an index or a folder).
  static ClipTextEncoder load(const std::filesystem::path& config_json,
                              const std::filesystem::path& weights,
                              const core::Placement& place = core::DType::F32);
  // Binds from any provider. The weights live as long as this object.
  static ClipTextEncoder bind(const io::Config& config, const common::WeightProvider& weights,
                              const core::Placement& place = core::DType::F32);

  // input_ids: (B, S) I64|I32 with S <= max_position_embeddings
  // attention_mask: (B, S) I64|I32|F32|BOOL (nonzero = keep) or {}.
  ClipTextOutput encode(const core::Tensor& input_ids, const core::Tensor& attention_mask = {},
                        bool output_hidden_states = true) const;

  const ClipTextConfig& config() const { return cfg_; }
  bool has_projection() const { return cfg_.with_projection; }
  const std::string& class_name() const { return class_name_; }

 private:
  struct Layer {
    common::LayerNorm layer_norm1, layer_norm2;
    common::Linear q_proj, k_proj, v_proj, out_proj;
    common::Linear fc1, fc2;
  };

  ClipTextEncoder() = default;

  ClipTextConfig cfg_;
  std::string class_name_;
  core::Tensor token_embedding_;     // (vocab, hidden)
  core::Tensor position_embedding_;  // (max_position_embeddings, hidden) F32
  std::vector<Layer> layers_;
  common::LayerNorm final_layer_norm_;
  common::Linear text_projection_;  // (projection_dim, hidden), no bias; only with projection
};

}  // namespace paradit::models::clip
