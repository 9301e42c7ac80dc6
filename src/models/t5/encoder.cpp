#include "models/t5/encoder.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/ops.h"
#include "models/common/modules.h"

namespace paradit::models::t5 {

namespace {

using core::Tensor;

// transformers' ACT2FN names that T5 configs use for dense_act_fn.
struct DenseAct {
  bool relu = false;
  common::Activation act = common::Activation::kIdentity;
};

DenseAct dense_act_from_name(const std::string& name, const std::string& where) {
  DenseAct a;
  if (name == "relu") {
    a.relu = true;
  } else if (name == "gelu") {
    a.act = common::Activation::kGelu;
  } else if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") {
    a.act = common::Activation::kGeluTanh;
  } else if (name == "silu" || name == "swish") {
    a.act = common::Activation::kSiLU;
  } else if (name == "quick_gelu") {
    a.act = common::Activation::kQuickGelu;
  } else if (name != "linear") {
    fail(where, ": feed_forward_proj activation '", name,
         "' is not supported (expected relu, gelu, gelu_new, silu, quick_gelu or linear)");
  }
  return a;
}

Tensor apply_act(const Tensor& x, const DenseAct& a) {
  return a.relu ? core::relu(x) : common::activate(x, a.act);
}

}  // namespace

// ---------------------------------------------------------------- config

T5EncoderConfig T5EncoderConfig::parse(const io::Config& c) {
  const std::string& where = c.where();
  T5EncoderConfig p;
  p.model_type = c.get_string("model_type", "t5");
  PARADIT_CHECK(p.model_type == "t5" || p.model_type == "mt5" || p.model_type == "umt5", where,
                ": model_type '", p.model_type, "' is not a T5 encoder (expected t5, mt5 or umt5)");
  const bool umt5 = p.model_type == "umt5";
  p.bias_per_layer = umt5;
  // transformers' T5Config / UMT5Config defaults.
  p.vocab_size = c.get_int("vocab_size", umt5 ? 250112 : 32128);
  p.d_model = c.get_int("d_model", 512);
  p.d_kv = c.get_int("d_kv", 64);
  p.d_ff = c.get_int("d_ff", umt5 ? 1024 : 2048);
  p.num_layers = c.get_int("num_layers", umt5 ? 8 : 6);
  p.num_heads = c.get_int("num_heads", umt5 ? 6 : 8);
  p.num_buckets = c.get_int("relative_attention_num_buckets", 32);
  p.max_distance = c.get_int("relative_attention_max_distance", 128);
  p.eps = static_cast<float>(c.get_float("layer_norm_epsilon", 1e-6));
  p.feed_forward_proj = c.get_string("feed_forward_proj", umt5 ? "gated-gelu" : "relu");

  // As T5Config.__post_init__: "gated-ACT" or "ACT"; dense_act_fn and is_gated_act in the
  // file are derived values and are recomputed, as transformers does.
  const std::string& ffp = p.feed_forward_proj;
  const size_t dash = ffp.find('-');
  if (dash == std::string::npos) {
    p.gated = false;
    p.dense_act_fn = ffp;
  } else {
    PARADIT_CHECK(
        ffp.substr(0, dash) == "gated" && ffp.find('-', dash + 1) == std::string::npos, where,
        ": feed_forward_proj '", ffp,
        "' is not valid (expected 'gated-{ACT}' or '{ACT}', e.g. 'gated-gelu' or 'relu')");
    p.gated = true;
    p.dense_act_fn = ffp.substr(dash + 1);
  }
  if (ffp == "gated-gelu") p.dense_act_fn = "gelu_new";
  dense_act_from_name(p.dense_act_fn, where);  // rejects unknown names at load time

  PARADIT_CHECK(p.vocab_size > 0 && p.d_model > 0 && p.d_kv > 0 && p.d_ff > 0 &&
                    p.num_layers >= 0 && p.num_heads > 0,
                where,
                ": vocab_size, d_model, d_kv, d_ff, num_heads must be positive and "
                "num_layers non-negative");
  // The encoder's buckets are bidirectional: half per direction, half of those exact.
  PARADIT_CHECK(p.num_buckets >= 4, where, ": relative_attention_num_buckets must be >= 4, found ",
                p.num_buckets);
  PARADIT_CHECK(p.max_distance > p.num_buckets / 4, where,
                ": relative_attention_max_distance must exceed relative_attention_num_buckets/4 = ",
                p.num_buckets / 4, ", found ", p.max_distance);
  return p;
}

// ---------------------------------------------------------------- relative position bias

int64_t relative_position_bucket(int64_t relative_position, bool bidirectional, int64_t num_buckets,
                                 int64_t max_distance) {
  int64_t bucket = 0;
  int64_t n = num_buckets;
  int64_t rel = relative_position;
  if (bidirectional) {
    n /= 2;
    if (rel > 0) bucket += n;
    rel = std::abs(rel);
  } else {
    rel = -std::min<int64_t>(rel, 0);
  }
  const int64_t max_exact = n / 2;
  if (rel < max_exact) return bucket + rel;
  // torch: log(rel.float() / max_exact) / math.log(max_distance / max_exact) * (n - max_exact),
  // a float32 tensor op with the Python double rounded to float32, then truncated to long.
  const float ratio = static_cast<float>(rel) / static_cast<float>(max_exact);
  const float log_range = static_cast<float>(
      std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float scaled = std::log(ratio) / log_range * static_cast<float>(n - max_exact);
  const int64_t large = std::min<int64_t>(max_exact + static_cast<int64_t>(scaled), n - 1);
  return bucket + large;
}

Tensor relative_position_bias(const Tensor& table_in, int64_t query_length, int64_t key_length,
                              int64_t num_buckets, int64_t max_distance) {
  PARADIT_CHECK(table_in.ndim() == 2 && table_in.dim(0) == num_buckets,
                "relative_position_bias: table ", table_in.str(), " must be [", num_buckets,
                ", heads]");
  const int64_t H = table_in.dim(1), Sq = query_length, Sk = key_length;
  // The bias depends on key − query only: the bucket of each (i, j) from a table of offsets,
  // built on the host; the lookup runs on the table's device.
  std::vector<int64_t> bucket_of(static_cast<size_t>(std::max<int64_t>(Sq + Sk - 1, 0)));
  for (int64_t d = -(Sq - 1); d < Sk; ++d) {
    bucket_of[static_cast<size_t>(d + Sq - 1)] =
        relative_position_bucket(d, /*bidirectional=*/true, num_buckets, max_distance);
  }
  std::vector<int64_t> ids(static_cast<size_t>(Sq * Sk));
  for (int64_t i = 0; i < Sq; ++i) {
    for (int64_t j = 0; j < Sk; ++j) ids[static_cast<size_t>(i * Sk + j)] = bucket_of[j - i + Sq - 1];
  }
  const Tensor rows = core::embedding(table_in, Tensor::from_vector_i64(ids, {Sq, Sk}));  // (Sq, Sk, H)
  return rows.permute({2, 0, 1}).reshape({1, H, Sq, Sk}).to(core::DType::F32);  // (1, H, Sq, Sk)
}

// ---------------------------------------------------------------- loading

T5Encoder T5Encoder::load(const std::filesystem::path& dir, const core::Placement& place) {
  return load(dir / "config.json", dir, place);
}

T5Encoder T5Encoder::load(const std::filesystem::path& config_json,
                          const std::filesystem::path& weights, const core::Placement& place) {
  const io::Config config = io::Config::load(config_json);
  const io::TensorSource source = io::TensorSource::open(weights);
  const common::CheckpointWeights provider(source);
  // The bound tensors share the file mapping; `source` itself may go.
  return bind(config, provider, place);
}

T5Encoder T5Encoder::bind(const io::Config& config, const common::WeightProvider& provider,
                          const core::Placement& place) {
  T5Encoder m;
  m.cfg_ = T5EncoderConfig::parse(config);
  const T5EncoderConfig& c = m.cfg_;
  m.class_name_ = c.model_type == "umt5" ? "UMT5EncoderModel" : "T5EncoderModel";
  const common::WeightScope w(provider, "", place);
  const int64_t D = c.d_model, I = c.inner_dim(), H = c.num_heads;

  // T5EncoderModel saves the tied table as shared.weight; some exports keep only the encoder's
  // alias. Which name holds it is a naming question, not a structural one.
  const char* embed_name = !w.has("shared.weight") && w.has("encoder.embed_tokens.weight")
                               ? "encoder.embed_tokens.weight"
                               : "shared.weight";
  m.embed_tokens_ = w.matrix(embed_name, {c.vocab_size, D});

  m.blocks_.resize(static_cast<size_t>(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    Block& b = m.blocks_[static_cast<size_t>(i)];
    const common::WeightScope blk = w / "encoder" / "block" / static_cast<int>(i);
    const common::WeightScope attn = blk / "layer" / "0";
    b.ln_attn = attn.vector("layer_norm.weight", {D});
    b.q = attn.matrix("SelfAttention.q.weight", {I, D});
    b.k = attn.matrix("SelfAttention.k.weight", {I, D});
    b.v = attn.matrix("SelfAttention.v.weight", {I, D});
    b.o = attn.matrix("SelfAttention.o.weight", {D, I});
    if (i == 0 || c.bias_per_layer) {
      // Small and gathered per element: kept in f32 whatever matrix_dtype is.
      b.position_table =
          attn.vector("SelfAttention.relative_attention_bias.weight", {c.num_buckets, H});
    }
    const common::WeightScope ff = blk / "layer" / "1";
    b.ln_ff = ff.vector("layer_norm.weight", {D});
    if (c.gated) {
      b.wi_0 = ff.matrix("DenseReluDense.wi_0.weight", {c.d_ff, D});
      b.wi_1 = ff.matrix("DenseReluDense.wi_1.weight", {c.d_ff, D});
    } else {
      b.wi_0 = ff.matrix("DenseReluDense.wi.weight", {c.d_ff, D});
    }
    b.wo = ff.matrix("DenseReluDense.wo.weight", {D, c.d_ff});
  }
  m.final_ln_ = w.vector("encoder.final_layer_norm.weight", {D});
  return m;
}

// ---------------------------------------------------------------- forward

T5EncoderOutput T5Encoder::encode(const Tensor& input_ids, const Tensor& attention_mask,
                                  bool output_hidden_states) const {
  const T5EncoderConfig& c = cfg_;
  const std::string& name = class_name_;
  PARADIT_CHECK(
      input_ids.defined() && input_ids.ndim() == 2 &&
          (input_ids.dtype() == core::DType::I64 || input_ids.dtype() == core::DType::I32),
      name, ": input_ids must be (batch, seq) I64 or I32, found ",
      input_ids.defined() ? input_ids.str() : std::string("nothing"));
  const int64_t B = input_ids.dim(0), S = input_ids.dim(1), H = c.num_heads;
  PARADIT_CHECK(S > 0, name, ": input_ids ", input_ids.str(), " has no tokens");
  const std::vector<int64_t> id_values = input_ids.to_vector_i64();
  const Tensor ids = Tensor::from_vector_i64(id_values, {B, S});  // (B, S) host ids
  for (int64_t n = 0; n < B * S; ++n) {
    const int64_t id = id_values[static_cast<size_t>(n)];
    PARADIT_CHECK(id >= 0 && id < c.vocab_size, name, ": input_ids[", n / S, ", ", n % S,
                  "] = ", id, " is outside the vocabulary [0, ", c.vocab_size, ")");
  }

  // attention_mask → key mask; a sample with no key left attends uniformly to all of them.
  core::AttentionOptions opt;
  opt.scale = 1.0f;  // T5 does not scale q·k
  std::vector<int64_t> all_masked;
  if (attention_mask.defined()) {
    PARADIT_CHECK(
        attention_mask.ndim() == 2 && attention_mask.dim(0) == B && attention_mask.dim(1) == S,
        name, ": attention_mask ", attention_mask.str(), " must be [", B, ", ", S,
        "] like input_ids");
    std::vector<float> keep = attention_mask.to_vector();
    for (float& k : keep) k = k != 0.0f ? 1.0f : 0.0f;
    for (int64_t b = 0; b < B; ++b) {
      const auto first = keep.begin() + b * S;
      if (std::all_of(first, first + S, [](float k) { return k == 0.0f; })) {
        all_masked.push_back(b);
        std::fill(first, first + S, 1.0f);  // then fixed up after attention
      }
    }
    opt.key_mask = Tensor::from_vector(keep, {B, S}, embed_tokens_.device());  // (B, S)
  }

  T5EncoderOutput out;
  Tensor x = core::embedding(embed_tokens_, ids);  // (B, S, D)
  if (output_hidden_states) out.hidden_states.push_back(x);

  Tensor shared_bias;  // T5: block 0's table serves every block
  if (!c.bias_per_layer && !blocks_.empty()) {
    shared_bias = relative_position_bias(blocks_[0].position_table, S, S, c.num_buckets,
                                         c.max_distance);  // (1, H, S, S)
  }
  const DenseAct act = dense_act_from_name(c.dense_act_fn, name);

  for (const Block& blk : blocks_) {
    opt.bias = c.bias_per_layer ? relative_position_bias(blk.position_table, S, S, c.num_buckets,
                                                         c.max_distance)  // (1, H, S, S)
                                : shared_bias;
    // ---- self-attention (pre-norm, residual)
    const Tensor h = core::rms_norm(x, blk.ln_attn, c.eps);           // (B, S, D)
    const Tensor q = common::split_heads(core::linear(h, blk.q), H);  // (B, S, H, d_kv)
    const Tensor k = common::split_heads(core::linear(h, blk.k), H);  // (B, S, H, d_kv)
    const Tensor v = common::split_heads(core::linear(h, blk.v), H);  // (B, S, H, d_kv)
    Tensor a = core::attention(q, k, v, opt).out;                     // (B, S, H, d_kv)
    if (!all_masked.empty()) {
      // A sample with every key masked attends uniformly to all of them: a zero query scores
      // every key 0, so its attention is the mean of v over the keys.
      std::vector<Tensor> rows;
      for (int64_t b = 0; b < B; ++b) {
        const bool masked = std::find(all_masked.begin(), all_masked.end(), b) != all_masked.end();
        const Tensor ab = a.slice(0, b, b + 1);  // (1, S, H, d_kv)
        rows.push_back(masked ? core::attention(core::scale(q.slice(0, b, b + 1), 0.0f),
                                                k.slice(0, b, b + 1), v.slice(0, b, b + 1))
                                    .out
                              : ab);
      }
      a = core::concat(rows, 0);  // (B, S, H, d_kv)
    }
    x = core::add(x, core::linear(common::merge_heads(a), blk.o));  // (B, S, D)

    // ---- feed-forward (pre-norm, residual)
    const Tensor g = core::rms_norm(x, blk.ln_ff, c.eps);      // (B, S, D)
    Tensor f = apply_act(core::linear(g, blk.wi_0), act);      // (B, S, d_ff)
    if (c.gated) f = core::mul(f, core::linear(g, blk.wi_1));  // (B, S, d_ff)
    x = core::add(x, core::linear(f, blk.wo));                 // (B, S, D)
    if (output_hidden_states) out.hidden_states.push_back(x);
  }

  out.last_hidden_state = core::rms_norm(x, final_ln_, c.eps);  // (B, S, D)
  // transformers replaces the last hidden state by the normed output.
  if (output_hidden_states) out.hidden_states.back() = out.last_hidden_state;
  return out;
}

}  // namespace paradit::models::t5
