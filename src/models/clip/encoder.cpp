#include "models/clip/encoder.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "core/ops.h"
#include "models/common/modules.h"

namespace paradit::models::clip {

namespace {

using core::Tensor;

// transformers' ACT2FN names that CLIP configs use for hidden_act.
struct HiddenAct {
  bool relu = false;
  common::Activation act = common::Activation::kIdentity;
};

HiddenAct hidden_act_from_name(const std::string& name, const std::string& where) {
  HiddenAct a;
  if (name == "quick_gelu") {
    a.act = common::Activation::kQuickGelu;
  } else if (name == "gelu") {
    a.act = common::Activation::kGelu;
  } else if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") {
    a.act = common::Activation::kGeluTanh;
  } else if (name == "silu" || name == "swish") {
    a.act = common::Activation::kSiLU;
  } else if (name == "relu") {
    a.relu = true;
  } else if (name != "linear") {
    fail(where, ": hidden_act '", name,
         "' is not supported (expected quick_gelu, gelu, gelu_new, silu, relu or linear)");
  }
  return a;
}

Tensor apply_act(const Tensor& x, const HiddenAct& a) {
  return a.relu ? core::relu(x) : common::activate(x, a.act);
}

bool names_with_projection(const io::Json& architectures) {
  if (!architectures.is_array()) return false;
  for (const io::Json& a : architectures) {
    if (a.is_string() && a.get<std::string>() == "CLIPTextModelWithProjection") return true;
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------- config

ClipTextConfig ClipTextConfig::parse(const io::Config& c) {
  const std::string& where = c.where();
  const std::string model_type = c.get_string("model_type", "clip_text_model");
  PARADIT_CHECK(model_type == "clip_text_model", where, ": model_type '", model_type,
                "' is not a CLIP text model (expected clip_text_model)");
  ClipTextConfig p;
  p.vocab_size = c.get_int("vocab_size", 49408);
  p.hidden_size = c.get_int("hidden_size", 512);
  p.intermediate_size = c.get_int("intermediate_size", 2048);
  p.projection_dim = c.get_int("projection_dim", 512);
  p.num_layers = c.get_int("num_hidden_layers", 12);
  p.num_heads = c.get_int("num_attention_heads", 8);
  p.max_position_embeddings = c.get_int("max_position_embeddings", 77);
  p.hidden_act = c.get_string("hidden_act", "quick_gelu");
  p.eps = static_cast<float>(c.get_float("layer_norm_eps", 1e-5));
  p.eos_token_id = c.get_int("eos_token_id", 49407);
  p.with_projection =
      c.json().contains("architectures") && names_with_projection(c.json()["architectures"]);
  hidden_act_from_name(p.hidden_act, where);  // rejects unknown names at load time

  PARADIT_CHECK(p.vocab_size > 0 && p.hidden_size > 0 && p.intermediate_size > 0 &&
                    p.num_layers >= 0 && p.num_heads > 0 && p.max_position_embeddings > 0 &&
                    (!p.with_projection || p.projection_dim > 0),
                where,
                ": vocab_size, hidden_size, intermediate_size, num_attention_heads, "
                "max_position_embeddings and projection_dim must be positive and "
                "num_hidden_layers non-negative");
  PARADIT_CHECK(p.hidden_size % p.num_heads == 0, where, ": hidden_size ", p.hidden_size,
                " is not divisible by num_attention_heads ", p.num_heads);
  return p;
}

// ---------------------------------------------------------------- loading

ClipTextEncoder ClipTextEncoder::load(const std::filesystem::path& dir, const core::Placement& place) {
  return load(dir / "config.json", dir, place);
}

ClipTextEncoder ClipTextEncoder::load(const std::filesystem::path& config_json,
                                      const std::filesystem::path& weights,
                                      const core::Placement& place) {
  const io::Config config = io::Config::load(config_json);
  const io::TensorSource source = io::TensorSource::open(weights);
  const common::CheckpointWeights provider(source);
  // The bound tensors share the file mapping; `source` itself may go.
  return bind(config, provider, place);
}

ClipTextEncoder ClipTextEncoder::bind(const io::Config& config,
                                      const common::WeightProvider& provider,
                                      const core::Placement& place) {
  ClipTextEncoder m;
  m.cfg_ = ClipTextConfig::parse(config);
  const ClipTextConfig& c = m.cfg_;
  m.class_name_ = c.with_projection ? "CLIPTextModelWithProjection" : "CLIPTextModel";
  const common::WeightScope root(provider, "", place);
  // The tower sits under "text_model." except in CLIPTextModel checkpoints saved by
  // transformers 5.x; a naming difference only, the structure is the config's.
  const bool prefixed = c.with_projection ||
                        root.has("text_model.embeddings.token_embedding.weight") ||
                        !root.has("embeddings.token_embedding.weight");
  const common::WeightScope w = prefixed ? root / "text_model" : root;
  const int64_t D = c.hidden_size, F = c.intermediate_size;

  m.token_embedding_ = w.matrix("embeddings.token_embedding.weight", {c.vocab_size, D});
  // Added to the token embeddings: in the activation dtype.
  m.position_embedding_ =
      w.param("embeddings.position_embedding.weight", {c.max_position_embeddings, D});
  m.layers_.resize(static_cast<size_t>(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    Layer& l = m.layers_[static_cast<size_t>(i)];
    const common::WeightScope lw = w / "encoder" / "layers" / static_cast<int>(i);
    l.layer_norm1.bind(lw / "layer_norm1", D, c.eps);
    l.q_proj.bind(lw / "self_attn" / "q_proj", D, D);
    l.k_proj.bind(lw / "self_attn" / "k_proj", D, D);
    l.v_proj.bind(lw / "self_attn" / "v_proj", D, D);
    l.out_proj.bind(lw / "self_attn" / "out_proj", D, D);
    l.layer_norm2.bind(lw / "layer_norm2", D, c.eps);
    l.fc1.bind(lw / "mlp" / "fc1", D, F);
    l.fc2.bind(lw / "mlp" / "fc2", F, D);
  }
  m.final_layer_norm_.bind(w / "final_layer_norm", D, c.eps);
  if (c.with_projection) {
    m.text_projection_.bind(root / "text_projection", D, c.projection_dim, /*has_bias=*/false);
  }
  return m;
}

// ---------------------------------------------------------------- forward

ClipTextOutput ClipTextEncoder::encode(const Tensor& input_ids, const Tensor& attention_mask,
                                       bool output_hidden_states) const {
  const ClipTextConfig& c = cfg_;
  const std::string& name = class_name_;
  PARADIT_CHECK(
      input_ids.defined() && input_ids.ndim() == 2 &&
          (input_ids.dtype() == core::DType::I64 || input_ids.dtype() == core::DType::I32),
      name, ": input_ids must be (batch, seq) I64 or I32, found ",
      input_ids.defined() ? input_ids.str() : std::string("nothing"));
  const int64_t B = input_ids.dim(0), S = input_ids.dim(1);
  PARADIT_CHECK(S <= c.max_position_embeddings, name, ": input_ids has ", S,
                " tokens, more than max_position_embeddings = ", c.max_position_embeddings);
  PARADIT_CHECK(S > 0, name, ": input_ids ", input_ids.str(), " has no tokens");
  const std::vector<int64_t> id = input_ids.to_vector_i64();
  const Tensor ids = Tensor::from_vector_i64(id, {B, S});  // (B, S) host ids
  for (int64_t n = 0; n < B * S; ++n) {
    PARADIT_CHECK(id[static_cast<size_t>(n)] >= 0 && id[static_cast<size_t>(n)] < c.vocab_size,
                  name, ": input_ids[", n / S, ", ", n % S, "] = ", id[static_cast<size_t>(n)],
                  " is outside the vocabulary [0, ", c.vocab_size, ")");
  }

  const core::Device dev = token_embedding_.device();
  core::AttentionOptions opt;  // scale 1/sqrt(head_dim)
  {
    // Causal: key j is visible to query i when j <= i; built on the host, used on the device.
    std::vector<float> causal(static_cast<size_t>(S * S));
    for (int64_t i = 0; i < S; ++i) {
      for (int64_t j = 0; j < S; ++j)
        causal[static_cast<size_t>(i * S + j)] =
            j <= i ? 0.0f : -std::numeric_limits<float>::infinity();
    }
    opt.bias = Tensor::from_vector(causal, {1, 1, S, S}, dev);  // (1, 1, S, S)
  }
  if (attention_mask.defined()) {
    PARADIT_CHECK(
        attention_mask.ndim() == 2 && attention_mask.dim(0) == B && attention_mask.dim(1) == S,
        name, ": attention_mask ", attention_mask.str(), " must be [", B, ", ", S,
        "] like input_ids");
    std::vector<float> keep = attention_mask.to_vector();
    for (float& k : keep) k = k != 0.0f ? 1.0f : 0.0f;
    opt.key_mask = Tensor::from_vector(keep, {B, S}, dev);  // (B, S)
  }
  const HiddenAct act = hidden_act_from_name(c.hidden_act, name);

  ClipTextOutput out;
  Tensor x = core::add(core::embedding(token_embedding_, ids),
                       position_embedding_.slice(0, 0, S));  // (B, S, D)
  if (output_hidden_states) out.hidden_states.push_back(x);

  for (const Layer& l : layers_) {
    // ---- causal self-attention (pre-LN, residual)
    const Tensor h = l.layer_norm1(x);                               // (B, S, D)
    const Tensor q = common::split_heads(l.q_proj(h), c.num_heads);  // (B, S, H, Dh)
    const Tensor k = common::split_heads(l.k_proj(h), c.num_heads);  // (B, S, H, Dh)
    const Tensor v = common::split_heads(l.v_proj(h), c.num_heads);  // (B, S, H, Dh)
    const Tensor a = core::attention(q, k, v, opt).out;              // (B, S, H, Dh)
    x = core::add(x, l.out_proj(common::merge_heads(a)));            // (B, S, D)
    // ---- MLP (pre-LN, residual)
    const Tensor g = l.layer_norm2(x);                  // (B, S, D)
    x = core::add(x, l.fc2(apply_act(l.fc1(g), act)));  // (B, S, D)
    if (output_hidden_states) out.hidden_states.push_back(x);
  }
  out.last_hidden_state = final_layer_norm_(x);  // (B, S, D)

  // ---- pooling at the end-of-text token (positions from the host ids)
  const Tensor& last = out.last_hidden_state;
  std::vector<Tensor> pooled;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t* row = id.data() + b * S;
    int64_t pos = 0;
    if (c.eos_token_id == 2) {
      pos = std::max_element(row, row + S) - row;  // first maximum, as torch.argmax
    } else {
      const int64_t* hit = std::find(row, row + S, c.eos_token_id);
      pos = hit == row + S ? 0 : hit - row;
    }
    pooled.push_back(last.slice(0, b, b + 1).select(1, pos));  // (1, D)
  }
  out.pooled_output = core::concat(pooled, 0);  // (B, D)
  if (c.with_projection) out.text_embeds = text_projection_(out.pooled_output);  // (B, P)
  return out;
}

}  // namespace paradit::models::clip
