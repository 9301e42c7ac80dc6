#pragma once
// T5's encoder as transformers' T5EncoderModel (T5 v1.0/v1.1, Flan-T5) and UMT5EncoderModel run
// it: token embedding, then per block a pre-norm self-attention with a relative position bias
// and a pre-norm feed-forward, then a final norm.
//
// - Norms are T5LayerNorm: RMS over d_model (no mean subtraction, no bias), eps
//   layer_norm_epsilon.
// - Attention is unscaled (T5 folds 1/sqrt(d) into its initialisation) and adds a learned bias
//   indexed by the bucketed relative position key - query. T5 learns one table, in block 0, and
//   every block reuses it; UMT5 learns a table per block.
// - Masked keys (attention_mask 0) are excluded; a sample whose mask is all 0 attends uniformly
//   to every key, as transformers' large-negative additive mask makes it do.
// - Feed-forward from feed_forward_proj: "gated-ACT" → wo(ACT(wi_0 x) ⊙ wi_1 x), "ACT" →
//   wo(ACT(wi x)); "gated-gelu" means gelu_new (the tanh approximation).
//
// Checkpoint names are transformers': shared.weight (or encoder.embed_tokens.weight),
// encoder.block.i.layer.0.{layer_norm, SelfAttention.{q,k,v,o,relative_attention_bias}},
// encoder.block.i.layer.1.{layer_norm, DenseReluDense.{wi|wi_0,wi_1,wo}}, encoder.final_layer_norm.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/diffusers.h"
#include "models/common/weights.h"

namespace paradit::models::t5 {

// config.json (model_type t5 or umt5) with transformers' defaults for the missing keys.
struct T5EncoderConfig {
  std::string model_type = "t5";
  int64_t vocab_size = 32128;
  int64_t d_model = 512;
  int64_t d_kv = 64;
  int64_t d_ff = 2048;
  int64_t num_layers = 6;
  int64_t num_heads = 8;
  int64_t num_buckets = 32;    // relative_attention_num_buckets
  int64_t max_distance = 128;  // relative_attention_max_distance
  float eps = 1e-6f;           // layer_norm_epsilon
  std::string feed_forward_proj = "relu";
  bool gated = false;  // feed_forward_proj "gated-..."
  std::string dense_act_fn = "relu";
  bool bias_per_layer = false;  // UMT5: every block has its own relative_attention_bias

  int64_t inner_dim() const { return num_heads * d_kv; }
  // Error "<config.json>: ..." naming the key on a bad or unsupported value.
  static T5EncoderConfig parse(const io::Config& config);
};

// transformers' T5Attention._relative_position_bucket for one relative position (key - query),
// computed in float32 as torch does so that the bucket edges land where transformers puts them.
int64_t relative_position_bucket(int64_t relative_position, bool bidirectional, int64_t num_buckets,
                                 int64_t max_distance);

// The additive attention bias of T5Attention.compute_bias: table (num_buckets, H) F32 →
// (1, H, Sq, Sk) F32 with [0, h, i, j] = table[bucket(j - i), h] (bidirectional).
core::Tensor relative_position_bias(const core::Tensor& table, int64_t query_length,
                                    int64_t key_length, int64_t num_buckets, int64_t max_distance);

struct T5EncoderOutput {
  core::Tensor last_hidden_state;  // (B, S, d_model), after the final norm
  // num_layers + 1 entries: [0] the embeddings, [i] the output of block i, and the last one
  // = last_hidden_state (transformers returns it after the final norm). Empty when not asked.
  std::vector<core::Tensor> hidden_states;
};

class T5Encoder {
 public:
  // A component folder (config.json + model.safetensors or a sharded set).
  // `matrix_dtype`: F32, or BF16 to keep the 2-D weights (embedding included) in bf16.
  static T5Encoder load(const std::filesystem::path& dir,
                        const core::Placement& place = core::DType::F32);
  // An explicit config.json and weights (a .safetensors file, an index or a folder).
  static T5Encoder load(const std::filesystem::path& config_json,
                        const std::filesystem::path& weights,
                        const core::Placement& place = core::DType::F32);
  // Binds from any provider (a checkpoint, or a generator for random weights). The weights
  // live as long as this object (mapped tensors keep their file mapping alive).
  static T5Encoder bind(const io::Config& config, const common::WeightProvider& weights,
                        const core::Placement& place = core::DType::F32);

  // input_ids: (B, S) I64|I32   attention_mask: (B, S) I64|I32|F32|BOOL (nonzero = keep) or {}
  // → last_hidden_state (B, S, d_model) and, with output_hidden_states, every hidden state.
  T5EncoderOutput encode(const core::Tensor& input_ids, const core::Tensor& attention_mask = {},
                         bool output_hidden_states = true) const;

  const T5EncoderConfig& config() const { return cfg_; }
  const std::string& class_name() const { return class_name_; }

 private:
  struct Block {
    core::Tensor ln_attn;         // layer.0.layer_norm.weight (d_model)
    core::Tensor q, k, v, o;      // (inner, d_model) ×3, o: (d_model, inner)
    core::Tensor position_table;  // (num_buckets, H); block 0 only for T5, every block for UMT5
    core::Tensor ln_ff;           // layer.1.layer_norm.weight (d_model)
    core::Tensor wi_0, wi_1;      // (d_ff, d_model); wi_1 only when gated (wi_0 is `wi` else)
    core::Tensor wo;              // (d_model, d_ff)
  };

  T5Encoder() = default;

  T5EncoderConfig cfg_;
  std::string class_name_;
  core::Tensor embed_tokens_;  // (vocab, d_model)
  std::vector<Block> blocks_;
  core::Tensor final_ln_;  // (d_model)
};

}  // namespace paradit::models::t5
