#include "models/llm/decoder_lm.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/ops.h"
#include "io/safetensors.h"
#include "models/common/modules.h"

namespace paradit::models::llm {

using common::WeightScope;
using core::Tensor;

namespace {

struct Arch {
  const char* name;
  bool nested;  // text_config holds the language model
};
constexpr Arch kArchitectures[] = {
    {"LlamaModel", false},
    {"LlamaForCausalLM", false},
    {"LlavaForConditionalGeneration", true},
    {"Qwen2Model", false},
    {"Qwen2ForCausalLM", false},
    {"Qwen2_5_VLForConditionalGeneration", true},
    {"Qwen2_5_VLModel", true},
    {"Qwen2VLForConditionalGeneration", true},
    {"Qwen3Model", false},
    {"Qwen3ForCausalLM", false},
    {"MistralModel", false},
    {"MistralForCausalLM", false},
    {"Mistral3ForConditionalGeneration", true},
    {"Mistral3Model", true},
};

const Arch* find_arch(const std::string& name) {
  for (const Arch& a : kArchitectures) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

// GQA: (B, S, Hkv, hd) → (B, S, Hkv·rep, hd), head j reading kv head j / rep (transformers'
// repeat_kv). A concat of head views; a core repeat op would avoid the copies' bookkeeping.
Tensor repeat_kv(const Tensor& x, int64_t rep) {
  if (rep == 1) return x;
  std::vector<Tensor> heads;
  for (int64_t h = 0; h < x.dim(2); ++h) {
    for (int64_t r = 0; r < rep; ++r) heads.push_back(x.slice(2, h, h + 1));
  }
  return core::concat(heads, 2);
}

}  // namespace

bool is_decoder_lm_architecture(const std::string& architecture) {
  return find_arch(architecture) != nullptr;
}

// ---------------------------------------------------------------- config
DecoderLMConfig DecoderLMConfig::from(const io::Config& config) {
  DecoderLMConfig c;
  const io::Json& root = config.json();
  PARADIT_CHECK(root.contains("architectures") && root.at("architectures").is_array() &&
                    !root.at("architectures").empty(),
                config.where(), ": text encoder config has no 'architectures' entry");
  c.architecture = root.at("architectures").at(0).get<std::string>();
  const Arch* arch = find_arch(c.architecture);
  if (arch == nullptr) {
    std::string known;
    for (const Arch& a : kArchitectures) known += std::string(known.empty() ? "" : ", ") + a.name;
    fail(config.where(), ": text encoder architecture '", c.architecture,
         "' is not supported (paradit's decoder-LLM encoders: ", known, ")");
  }
  io::Config text = config;
  if (arch->nested && root.contains("text_config") && root.at("text_config").is_object()) {
    text = io::Config(root.at("text_config"), config.where() + " text_config");
  }
  c.model_type = text.get_string("model_type", "");
  c.vocab_size = text.get_int("vocab_size");
  c.hidden_size = text.get_int("hidden_size");
  c.intermediate_size = text.get_int("intermediate_size");
  c.num_layers = text.get_int("num_hidden_layers");
  c.num_heads = text.get_int("num_attention_heads");
  c.num_kv_heads = text.get_int("num_key_value_heads", c.num_heads);
  c.head_dim = text.get_int("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.rms_norm_eps = static_cast<float>(text.get_float("rms_norm_eps", 1e-6));
  c.hidden_act = text.get_string("hidden_act", "silu");
  const std::string where = text.where();
  PARADIT_CHECK(c.hidden_act == "silu", where, ": hidden_act '", c.hidden_act,
                "' is not supported (expected silu)");
  PARADIT_CHECK(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 &&
                    c.num_layers > 0 && c.num_heads > 0 && c.num_kv_heads > 0 && c.head_dim > 0,
                where, ": sizes must be positive");
  PARADIT_CHECK(c.num_heads % c.num_kv_heads == 0, where, ": num_attention_heads ", c.num_heads,
                " is not a multiple of num_key_value_heads ", c.num_kv_heads);
  PARADIT_CHECK(c.head_dim % 2 == 0, where, ": head_dim ", c.head_dim, " must be even for RoPE");

  const bool qwen2 = c.model_type.rfind("qwen2", 0) == 0;  // qwen2, qwen2_5_vl_text, qwen2_vl
  c.qk_norm = c.model_type.rfind("qwen3", 0) == 0;
  c.qkv_bias = qwen2 || text.get_bool("attention_bias", false);
  c.o_bias = !qwen2 && text.get_bool("attention_bias", false);
  c.mlp_bias = text.get_bool("mlp_bias", false);

  // RoPE: transformers 5's rope_parameters, or transformers 4's rope_theta + rope_scaling.
  io::Json rope = io::Json::object();
  if (text.has("rope_parameters")) {
    rope = text.json().at("rope_parameters");
  } else if (text.has("rope_scaling")) {
    rope = text.json().at("rope_scaling");
  }
  c.rope_theta = rope.contains("rope_theta") ? rope.at("rope_theta").get<double>()
                                             : text.get_float("rope_theta", 10000.0);
  std::string type = rope.value("rope_type", rope.value("type", std::string("default")));
  if (type == "mrope" || rope.contains("mrope_section")) {
    c.mrope = true;
    if (type == "mrope") type = "default";
  }
  c.rope_type = type;
  if (type == "linear" || type == "llama3") {
    PARADIT_CHECK(rope.contains("factor"), where, ": rope scaling '", type, "' needs 'factor'");
    c.rope_factor = rope.at("factor").get<double>();
  }
  if (type == "llama3") {
    c.low_freq_factor = rope.value("low_freq_factor", 1.0);
    c.high_freq_factor = rope.value("high_freq_factor", 4.0);
    c.original_max_position_embeddings = rope.value("original_max_position_embeddings", 8192);
  }
  PARADIT_CHECK(type == "default" || type == "linear" || type == "llama3", where, ": rope type '",
                type, "' is not supported (default, linear, llama3)");
  return c;
}

std::vector<std::string> DecoderLMConfig::weight_prefixes() const {
  return {"", "model", "model.language_model", "language_model.model", "language_model"};
}

// ---------------------------------------------------------------- loading
DecoderLM DecoderLM::load(const std::filesystem::path& dir, const core::Placement& place) {
  const io::Config config = io::Config::load(dir / "config.json");
  const DecoderLMConfig cfg = DecoderLMConfig::from(config);
  const io::TensorSource source = io::TensorSource::open(dir);
  const common::CheckpointWeights provider(source);
  std::string prefix;
  bool found = false;
  for (const std::string& p : cfg.weight_prefixes()) {
    if (provider.has(p.empty() ? "embed_tokens.weight" : p + ".embed_tokens.weight")) {
      prefix = p;
      found = true;
      break;
    }
  }
  PARADIT_CHECK(found, dir.string(), ": no embed_tokens.weight under any of the ", cfg.architecture,
                " prefixes ('', model., model.language_model., ", "language_model.model.)");
  return bind(cfg, provider, prefix, place);
}

DecoderLM DecoderLM::bind(const DecoderLMConfig& cfg, const common::WeightProvider& weights,
                          const std::string& prefix, const core::Placement& place) {
  DecoderLM m;
  m.cfg_ = cfg;
  const WeightScope w(weights, prefix, place);
  const int64_t D = cfg.hidden_size, hd = cfg.head_dim, F = cfg.intermediate_size;
  const int64_t q_dim = cfg.num_heads * hd, kv_dim = cfg.num_kv_heads * hd;
  m.embed_tokens_ = (w / "embed_tokens").matrix("weight", {cfg.vocab_size, D});
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    const WeightScope l = w / "layers" / static_cast<int>(i);
    Layer layer;
    layer.input_norm = (l / "input_layernorm").vector("weight", {D});
    layer.post_norm = (l / "post_attention_layernorm").vector("weight", {D});
    const WeightScope a = l / "self_attn";
    layer.q_proj.bind(a / "q_proj", D, q_dim, cfg.qkv_bias);
    layer.k_proj.bind(a / "k_proj", D, kv_dim, cfg.qkv_bias);
    layer.v_proj.bind(a / "v_proj", D, kv_dim, cfg.qkv_bias);
    layer.o_proj.bind(a / "o_proj", q_dim, D, cfg.o_bias);
    if (cfg.qk_norm) {
      layer.q_norm = (a / "q_norm").vector("weight", {hd});
      layer.k_norm = (a / "k_norm").vector("weight", {hd});
    }
    const WeightScope f = l / "mlp";
    layer.gate_proj.bind(f / "gate_proj", D, F, cfg.mlp_bias);
    layer.up_proj.bind(f / "up_proj", D, F, cfg.mlp_bias);
    layer.down_proj.bind(f / "down_proj", F, D, cfg.mlp_bias);
    m.layers_.push_back(std::move(layer));
  }
  m.norm_ = (w / "norm").vector("weight", {D});
  return m;
}

// ---------------------------------------------------------------- rope
std::pair<Tensor, Tensor> DecoderLM::rope_tables(const std::vector<int64_t>& positions) const {
  const int64_t hd = cfg_.head_dim, half = hd / 2, S = static_cast<int64_t>(positions.size());
  // inv_freq in float32 as transformers computes it: 1 / theta^(2i / hd).
  std::vector<float> inv(static_cast<size_t>(half));
  const float theta = static_cast<float>(cfg_.rope_theta);
  for (int64_t i = 0; i < half; ++i) {
    inv[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(hd));
  }
  if (cfg_.rope_type == "linear") {
    for (float& f : inv) f = static_cast<float>(f / cfg_.rope_factor);
  } else if (cfg_.rope_type == "llama3") {
    const double factor = cfg_.rope_factor, lo = cfg_.low_freq_factor, hi = cfg_.high_freq_factor;
    const double old_len = static_cast<double>(cfg_.original_max_position_embeddings);
    const double low_wavelen = old_len / lo, high_wavelen = old_len / hi;
    for (float& f : inv) {
      const double wavelen = 2.0 * M_PI / f;
      double scaled = wavelen > low_wavelen ? f / factor : f;
      if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
        const double smooth = (old_len / wavelen - lo) / (hi - lo);
        scaled = (1.0 - smooth) * scaled / factor + smooth * scaled;
      }
      f = static_cast<float>(scaled);
    }
  }
  std::vector<float> cos(static_cast<size_t>(S * hd)), sin(cos.size());
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(positions[s]) * inv[i];
      cos[s * hd + i] = cos[s * hd + half + i] = std::cos(angle);
      sin[s * hd + i] = sin[s * hd + half + i] = std::sin(angle);
    }
  }
  return {Tensor::from_vector(cos, {S, hd}), Tensor::from_vector(sin, {S, hd})};
}

// ---------------------------------------------------------------- forward
Tensor DecoderLM::layer_forward(const Layer& l, const Tensor& h, const Tensor& rope_cos,
                                const Tensor& rope_sin, const Tensor& causal_bias,
                                const Tensor& key_mask) const {
  const int64_t H = cfg_.num_heads, Hkv = cfg_.num_kv_heads;
  Tensor x = core::rms_norm(h, l.input_norm, cfg_.rms_norm_eps);  // (B, S, D)
  Tensor q = common::split_heads(l.q_proj(x), H);                 // (B, S, H, hd)
  Tensor k = common::split_heads(l.k_proj(x), Hkv);               // (B, S, Hkv, hd)
  Tensor v = common::split_heads(l.v_proj(x), Hkv);               // (B, S, Hkv, hd)
  if (cfg_.qk_norm) {
    q = core::rms_norm(q, l.q_norm, cfg_.rms_norm_eps);  // (B, S, H, hd)
    k = core::rms_norm(k, l.k_norm, cfg_.rms_norm_eps);  // (B, S, Hkv, hd)
  }
  q = core::apply_rope(q, rope_cos, rope_sin, core::RopeStyle::kHalfSplit);  // (B, S, H, hd)
  k = core::apply_rope(k, rope_cos, rope_sin, core::RopeStyle::kHalfSplit);  // (B, S, Hkv, hd)
  k = repeat_kv(k, H / Hkv);                                                 // (B, S, H, hd)
  v = repeat_kv(v, H / Hkv);                                                 // (B, S, H, hd)
  core::AttentionOptions opt;
  opt.bias = causal_bias;   // (1, 1, S, S): 0 on and below the diagonal, -inf above
  opt.key_mask = key_mask;  // (B, S) 1 token / 0 padding, or {}
  Tensor o = common::merge_heads(core::attention(q, k, v, opt).out);  // (B, S, H·hd)
  Tensor out = core::add(h, l.o_proj(o));                             // (B, S, D)
  x = core::rms_norm(out, l.post_norm, cfg_.rms_norm_eps);            // (B, S, D)
  Tensor g = core::silu(l.gate_proj(x));                              // (B, S, F)
  Tensor ff = l.down_proj(core::mul(g, l.up_proj(x)));                // (B, S, D)
  return core::add(out, ff);                                          // (B, S, D)
}

std::vector<Tensor> DecoderLM::hidden_states(const Tensor& input_ids, const Tensor& attention_mask,
                                             const std::vector<int>& layers) const {
  const int64_t L = cfg_.num_layers;
  PARADIT_CHECK(input_ids.ndim() == 2, cfg_.architecture, ": input_ids must be (B, S), got ",
                input_ids.str());
  const int64_t B = input_ids.dim(0), S = input_ids.dim(1);
  PARADIT_CHECK(!attention_mask.defined() || attention_mask.shape() == input_ids.shape(),
                cfg_.architecture, ": attention_mask ", attention_mask.str(),
                " does not match input_ids ", input_ids.str());
  std::vector<int64_t> wanted;
  for (int i : layers) {
    const int64_t idx = i < 0 ? i + L + 1 : i;
    PARADIT_CHECK(idx >= 0 && idx <= L, cfg_.architecture, ": hidden state ", i,
                  " does not exist (the model has ", L, " layers: indices -", L + 1, " … ", L, ")");
    wanted.push_back(idx);
  }
  const int64_t deepest = wanted.empty() ? 0 : *std::max_element(wanted.begin(), wanted.end());

  // ---- host tables, once per forward: mask, causal bias, rope
  Tensor key_mask;
  if (attention_mask.defined()) {
    std::vector<float> mask_values = attention_mask.to_vector();
    for (float& m : mask_values) m = m != 0.0f ? 1.0f : 0.0f;
    key_mask = Tensor::from_vector(mask_values, {B, S}, embed_tokens_.device());  // (B, S)
  }
  std::vector<float> causal(static_cast<size_t>(S * S), 0.0f);
  for (int64_t i = 0; i < S; ++i) {
    for (int64_t j = i + 1; j < S; ++j) causal[i * S + j] = -std::numeric_limits<float>::infinity();
  }
  const Tensor causal_bias = Tensor::from_vector(causal, {1, 1, S, S}, embed_tokens_.device());
  // Position ids 0 … S-1 for every model here: transformers 5 gives Qwen2.5-VL's text-only M-RoPE
  // the same position on its three axes (1-D RoPE), padded positions included.
  std::vector<int64_t> pos(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) pos[s] = s;
  const auto [rope_cos_host, rope_sin_host] = rope_tables(pos);  // (S, hd) each
  const Tensor rope_cos = rope_cos_host.to_device(embed_tokens_.device());
  const Tensor rope_sin = rope_sin_host.to_device(embed_tokens_.device());

  // ---- layers
  std::vector<Tensor> states(static_cast<size_t>(L + 1));
  // ids read as F32 (a safetensors file opened with its default dtype) are converted back
  const Tensor ids =
      input_ids.dtype() == core::DType::F32 ? input_ids.to(core::DType::I64) : input_ids;  // (B, S)
  Tensor h = core::embedding(embed_tokens_, ids);  // (B, S, D)
  states[0] = h;
  for (int64_t i = 0; i < std::min(deepest, L); ++i) {
    h = layer_forward(layers_[static_cast<size_t>(i)], h, rope_cos, rope_sin, causal_bias,
                      key_mask);  // (B, S, D)
    states[static_cast<size_t>(i + 1)] = h;
  }
  if (deepest == L) states[static_cast<size_t>(L)] = core::rms_norm(h, norm_, cfg_.rms_norm_eps);
  std::vector<Tensor> out;
  for (int64_t idx : wanted) out.push_back(states[static_cast<size_t>(idx)]);
  return out;
}

}  // namespace paradit::models::llm
