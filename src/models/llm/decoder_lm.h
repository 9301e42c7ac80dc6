#pragma once
// Decoder-only language models used as text encoders (one implementation for the family):
// Llama (LlamaModel / LlamaForCausalLM / Llava's language model), Qwen2 and Qwen2.5-VL's language
// model (q/k/v biases; text-only M-RoPE), Qwen3 (per-head q/k RMSNorm), and Mistral / Mistral 3's
// language model, as transformers 5 runs them:
//
//   h = embed_tokens(input_ids)
//   per layer:  h += o_proj(attention(rope(q_norm(q_proj(rms(h)))), rope(k_norm(k_proj(..))),
//                                     v_proj(..)))        grouped-query, causal + padding mask
//               h += down_proj(silu(gate_proj(rms(h))) * up_proj(rms(h)))
//   norm(h)
//
// hidden_states follow transformers' output_hidden_states: [0] the embeddings, [i] the output of
// layer i, and the last entry (index num_layers) after the final RMSNorm. RoPE is the rotate-half
// form with the checkpoint's rope_theta and rope scaling ("default", "linear", "llama3"), its
// frequencies computed in float32 as transformers does. Position ids are 0..S-1 (Qwen2.5-VL's
// M-RoPE gets the same position on its three axes on the text-only path, so it reduces to 1-D
// RoPE; transformers 5.25 gives padded positions their index too, which the fixture confirms).
//
// Checkpoints: config.json (nested text_config for the multimodal classes; rope_parameters of
// transformers 5 or rope_theta/rope_scaling of transformers 4), weights in a single or sharded
// safetensors set, F32 or BF16 on disk, under the class's prefix ("", "model.",
// "model.language_model.", "language_model.model." …). An architecture outside the family is an
// Error naming the class.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/diffusers.h"
#include "models/common/weights.h"

namespace paradit::models::llm {

struct DecoderLMConfig {
  std::string architecture;  // config.json architectures[0]
  std::string model_type;    // of the language model: llama, qwen2, qwen3, mistral …
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  float rms_norm_eps = 1e-6f;
  double rope_theta = 10000.0;
  std::string rope_type = "default";  // default | linear | llama3
  double rope_factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 8192;       // llama3
  bool mrope = false;                                    // Qwen2.5-VL M-RoPE (text-only: 1-D RoPE)
  bool qkv_bias = false;                                 // Qwen2 / Qwen2.5-VL, Llama attention_bias
  bool o_bias = false;                                   // Llama attention_bias
  bool mlp_bias = false;                                 // Llama mlp_bias
  bool qk_norm = false;                                  // Qwen3
  std::string hidden_act = "silu";

  // Error "<config.json>: text encoder architecture 'X' is not supported (…)" for classes
  // outside the family, or naming the key for a bad value.
  static DecoderLMConfig from(const io::Config& config);
  // The weight-name prefixes to try for this class, in order.
  std::vector<std::string> weight_prefixes() const;
};

// Whether `architecture` (config.json architectures[0]) is one of this family's classes.
bool is_decoder_lm_architecture(const std::string& architecture);

class DecoderLM {
 public:
  // A component folder (config.json + model.safetensors or a sharded set).
  static DecoderLM load(const std::filesystem::path& dir,
                        const core::Placement& place = {});
  // Binds from any provider under `prefix` ("model." …); with an empty prefix list of
  // candidates the first whose embed_tokens.weight exists is taken.
  static DecoderLM bind(const DecoderLMConfig& cfg, const common::WeightProvider& weights,
                        const std::string& prefix, const core::Placement& place = {});

  // input_ids: (B, S) I64|I32   attention_mask: (B, S) (nonzero = token, 0 = padding) or {}
  // `layers`: the hidden_states indices wanted (negative counts from the end, -1 = after the
  // final norm); only the layers up to the deepest wanted one run. → one (B, S, hidden) each.
  std::vector<core::Tensor> hidden_states(const core::Tensor& input_ids,
                                          const core::Tensor& attention_mask,
                                          const std::vector<int>& layers) const;

  const DecoderLMConfig& config() const { return cfg_; }

 private:
  struct Layer {
    core::Tensor input_norm, post_norm;             // (D)
    common::Linear q_proj, k_proj, v_proj, o_proj;  // (H·hd, D), (Hkv·hd, D) ×2, (D, H·hd)
    core::Tensor q_norm, k_norm;                    // (hd) for Qwen3
    common::Linear gate_proj, up_proj, down_proj;   // (F, D) ×2, (D, F)
  };
  DecoderLM() = default;
  // (cos, sin) for positions (S) as (S, head_dim) F32.
  std::pair<core::Tensor, core::Tensor> rope_tables(const std::vector<int64_t>& positions) const;
  core::Tensor layer_forward(const Layer& l, const core::Tensor& h, const core::Tensor& rope_cos,
                             const core::Tensor& rope_sin, const core::Tensor& causal_bias,
                             const core::Tensor& key_mask) const;

  DecoderLMConfig cfg_;
  core::Tensor embed_tokens_;  // (V, D)
  std::vector<Layer> layers_;
  core::Tensor norm_;  // (D)
};

}  // namespace paradit::models::llm
