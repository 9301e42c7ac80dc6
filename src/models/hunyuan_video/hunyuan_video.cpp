#include "models/hunyuan_video/hunyuan_video.h"

#include <cmath>
#include <limits>
#include <string>
#include <tuple>

#include "parallel/attention.h"

namespace paradit::models::hunyuan_video {

using common::merge_heads;
using common::split_heads;
using common::WeightScope;
using core::Tensor;

namespace {

constexpr const char* kModel = "HunyuanVideoTransformer3DModel";
constexpr float kNormEps = 1e-6f;         // every LayerNorm, adaLN and q/k norm of the model
constexpr double kRefinerMlpRatio = 4.0;  // diffusers builds the token refiner with its default

// The one attention call of the family (token refiner, dual- and single-stream blocks).
// q, k, v: (B, S, H, hd)   key_mask: (B, Sk) or {}   bias: (B, 1, Sq, Sk) or {} → (B, Sq, H, hd)
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask,
              const Tensor& bias) {
  core::AttentionOptions options;
  options.key_mask = key_mask;
  options.bias = bias;
  return core::attention(q, k, v, options).out;
}

// Number of unmasked text tokens per sample, as diffusers counts them (sum of the mask).
// mask: (B, S_txt)
std::vector<int64_t> text_lengths(const Tensor& mask) {
  const int64_t B = mask.dim(0), S = mask.dim(1);
  const std::vector<float> m = mask.to_vector();
  std::vector<int64_t> n(B, 0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < S; ++s) n[b] += static_cast<int64_t>(m[b * S + s]);
  }
  return n;
}

// The text keys of the joint sequence every query sees: the first n_b text tokens of each
// sample. (B, S_txt) 1/0, or {} when nothing is masked.
Tensor visible_text(const Tensor& mask) {
  const int64_t B = mask.dim(0), s_txt = mask.dim(1);
  const std::vector<int64_t> n = text_lengths(mask);
  bool all = true;
  for (int64_t b = 0; b < B; ++b) all = all && n[b] >= s_txt;
  if (all) return {};
  std::vector<float> keep(static_cast<size_t>(B * s_txt), 0.0f);  // (B, S_txt)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < s_txt && j < n[b]; ++j) keep[static_cast<size_t>(b * s_txt + j)] = 1.0f;
  }
  return Tensor::from_vector(keep, {B, s_txt});
}

// The token refiner's self-attention mask as an additive bias: query i sees key j when both
// are unmasked, and always key 0. (B, 1, S_txt, S_txt) 0 / -inf, or {} when nothing is masked.
Tensor refiner_bias(const Tensor& mask) {
  const int64_t B = mask.dim(0), S = mask.dim(1);
  const std::vector<float> m = mask.to_vector();
  bool all = true;
  for (float v : m) all = all && v != 0.0f;
  if (all) return {};
  std::vector<float> p(static_cast<size_t>(B * S * S));  // (B, 1, S_txt, S_txt)
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < S; ++i) {
      for (int64_t j = 0; j < S; ++j) {
        const bool see = j == 0 || (m[b * S + i] != 0.0f && m[b * S + j] != 0.0f);
        p[static_cast<size_t>((b * S + i) * S + j)] = see ? 0.0f : neg_inf;
      }
    }
  }
  return Tensor::from_vector(p, {B, 1, S, S});
}

// Mean over the unmasked tokens (the token refiner's pooled conditioning): the mask row as
// a (1, S) weight matrix times the tokens, then divided by the count.
// text: (B, S_txt, C)   mask: (B, S_txt) → (B, C)
Tensor masked_mean(const Tensor& text, const Tensor& mask) {
  const int64_t B = text.dim(0), S = text.dim(1), C = text.dim(2);
  const std::vector<float> m = mask.to_vector();
  std::vector<float> inv_count(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    double count = 0;
    for (int64_t s = 0; s < S; ++s) count += m[b * S + s];
    PARADIT_CHECK(count > 0, kModel, ": encoder_attention_mask row ", b,
                  " masks every text token; at least one must be 1");
    inv_count[static_cast<size_t>(b)] = static_cast<float>(1.0 / count);
  }
  const Tensor weights = common::like(Tensor::from_vector(m, {B, 1, S}), text);  // (B, 1, S)
  const Tensor sum = core::matmul(weights, text.contiguous());                    // (B, 1, C)
  const Tensor scale = common::like(Tensor::from_vector(inv_count, {B, 1, 1}), text);
  return core::mul(sum, scale).reshape({B, C});  // (B, C)
}

}  // namespace

// ---------------------------------------------------------------- config
HunyuanVideoConfig HunyuanVideoConfig::from(const io::Config& config) {
  HunyuanVideoConfig c;
  const std::string& where = config.where();
  c.in_channels = config.get_int("in_channels", c.in_channels);
  c.out_channels = config.get_int("out_channels", 0);
  if (c.out_channels == 0) c.out_channels = c.in_channels;  // diffusers: out_channels or in
  c.num_attention_heads = config.get_int("num_attention_heads", c.num_attention_heads);
  c.attention_head_dim = config.get_int("attention_head_dim", c.attention_head_dim);
  c.num_layers = config.get_int("num_layers", c.num_layers);
  c.num_single_layers = config.get_int("num_single_layers", c.num_single_layers);
  c.num_refiner_layers = config.get_int("num_refiner_layers", c.num_refiner_layers);
  c.mlp_ratio = config.get_float("mlp_ratio", c.mlp_ratio);
  c.patch_size = config.get_int("patch_size", c.patch_size);
  c.patch_size_t = config.get_int("patch_size_t", c.patch_size_t);
  // An explicit null means no q/k norm; an absent key the default rms_norm.
  const bool qk_null = config.json().contains("qk_norm") && config.json().at("qk_norm").is_null();
  c.qk_norm = common::head_norm_kind_from_name(
      qk_null ? "" : config.get_string("qk_norm", "rms_norm"), where);
  c.guidance_embeds = config.get_bool("guidance_embeds", c.guidance_embeds);
  c.text_embed_dim = config.get_int("text_embed_dim", c.text_embed_dim);
  c.pooled_projection_dim = config.get_int("pooled_projection_dim", c.pooled_projection_dim);
  c.rope_theta = config.get_float("rope_theta", c.rope_theta);
  c.rope_axes_dim = config.get_int_list("rope_axes_dim", c.rope_axes_dim);

  const std::string image_condition = config.get_string("image_condition_type", "");
  PARADIT_CHECK(image_condition.empty() || image_condition == "latent_concat", where,
                ": image_condition_type '", image_condition,
                "' is not supported (expected null or latent_concat)");
  PARADIT_CHECK(c.in_channels > 0 && c.out_channels > 0 && c.num_attention_heads > 0 &&
                    c.attention_head_dim > 0 && c.num_layers >= 0 && c.num_single_layers >= 0 &&
                    c.num_refiner_layers >= 0 && c.mlp_ratio > 0 && c.patch_size > 0 &&
                    c.patch_size_t > 0 && c.text_embed_dim > 0 && c.pooled_projection_dim > 0,
                where, ": HunyuanVideoTransformer3DModel sizes must be positive (in_channels ",
                c.in_channels, ", num_attention_heads ", c.num_attention_heads,
                ", attention_head_dim ", c.attention_head_dim, ", patch_size ", c.patch_size,
                ", patch_size_t ", c.patch_size_t, ", mlp_ratio ", c.mlp_ratio, ")");
  PARADIT_CHECK(c.rope_axes_dim.size() == 3, where,
                ": rope_axes_dim must list 3 sizes (frames, height, width), found ",
                c.rope_axes_dim.size());
  int64_t rope_dim = 0;
  for (int64_t d : c.rope_axes_dim) {
    PARADIT_CHECK(d > 0 && d % 2 == 0, where,
                  ": rope_axes_dim entries must be positive and even, found ", d);
    rope_dim += d;
  }
  PARADIT_CHECK(rope_dim == c.attention_head_dim, where, ": rope_axes_dim sums to ", rope_dim,
                ", expected attention_head_dim ", c.attention_head_dim);
  return c;
}

// ---------------------------------------------------------------- rope
Rope hunyuan_video_rope(const std::vector<int64_t>& axes_dim, double theta, const Patch3d& grid) {
  PARADIT_CHECK(axes_dim.size() == 3, "hunyuan_video_rope: expected 3 axes, got ", axes_dim.size());
  int64_t hd = 0;
  for (int64_t d : axes_dim) hd += d;
  const int64_t S = grid[0] * grid[1] * grid[2];
  // diffusers' get_1d_rotary_pos_embed with its default float32 frequencies and positions:
  // freq_i = 1 / theta^(2i/d), angle = pos · freq_i, all rounded to float32 as torch does.
  std::vector<std::vector<float>> freq(3);
  for (int a = 0; a < 3; ++a) {
    const int64_t d = axes_dim[a];
    for (int64_t i = 0; i < d / 2; ++i) {
      const float e = static_cast<float>(2 * i) / static_cast<float>(d);
      freq[a].push_back(1.0f / std::pow(static_cast<float>(theta), e));
    }
  }
  std::vector<float> co(static_cast<size_t>(S * hd)), so(co.size());  // (S, hd) each
  for (int64_t f = 0; f < grid[0]; ++f) {
    for (int64_t y = 0; y < grid[1]; ++y) {
      for (int64_t x = 0; x < grid[2]; ++x) {
        const int64_t n = (f * grid[1] + y) * grid[2] + x;
        const float pos[3] = {static_cast<float>(f), static_cast<float>(y), static_cast<float>(x)};
        int64_t col = 0;
        for (int a = 0; a < 3; ++a) {
          for (float fr : freq[a]) {
            const double angle = static_cast<double>(pos[a] * fr);
            const float c = static_cast<float>(std::cos(angle));
            const float s = static_cast<float>(std::sin(angle));
            co[static_cast<size_t>(n * hd + col)] = co[static_cast<size_t>(n * hd + col + 1)] =
                c;  // the pair shares its angle
            so[static_cast<size_t>(n * hd + col)] = so[static_cast<size_t>(n * hd + col + 1)] = s;
            col += 2;
          }
        }
      }
    }
  }
  return {Tensor::from_vector(co, {S, hd}), Tensor::from_vector(so, {S, hd})};
}

Rope with_identity_rows(const Rope& rope, int64_t text_tokens) {
  const int64_t hd = rope.cos.dim(1);
  Tensor ones = Tensor::full({text_tokens, hd}, 1.0f, core::DType::F32,
                             rope.cos.device());  // (S_txt, hd)
  Tensor zeros = Tensor::zeros({text_tokens, hd}, core::DType::F32,
                               rope.cos.device());  // (S_txt, hd)
  return {core::concat({rope.cos, ones}, 0), core::concat({rope.sin, zeros}, 0)};
}

// ---------------------------------------------------------------- token refiner
void TokenRefinerBlock::bind(const WeightScope& w, const HunyuanVideoConfig& cfg) {
  const int64_t D = cfg.inner_dim();
  heads = cfg.num_attention_heads;
  norm1.bind(w / "norm1", D, kNormEps);
  const WeightScope a = w / "attn";
  to_q.bind(a / "to_q", D, D);
  to_k.bind(a / "to_k", D, D);
  to_v.bind(a / "to_v", D, D);
  to_out.bind(a / "to_out" / "0", D, D);
  norm2.bind(w / "norm2", D, kNormEps);
  ff.bind(w / "ff", D, common::FeedForwardKind::kLinearSiLU, 0, 0, kRefinerMlpRatio);
  norm_out.bind(w / "norm_out" / "linear", D, 2 * D);
}

Tensor TokenRefinerBlock::forward(const Tensor& c_in, const Tensor& temb,
                                  const Tensor& bias) const {
  Tensor n = norm1(c_in);                                     // (B, S_txt, D)
  Tensor q = split_heads(to_q(n), heads);                     // (B, S_txt, H, hd)
  Tensor k = split_heads(to_k(n), heads);                     // (B, S_txt, H, hd)
  Tensor v = split_heads(to_v(n), heads);                     // (B, S_txt, H, hd)
  Tensor o = to_out(merge_heads(attend(q, k, v, {}, bias)));  // (B, S_txt, D)
  auto gates = common::ada_modulation(norm_out, temb, 2);     // gate_msa, gate_mlp: (B, D)
  Tensor c = core::gated_add(c_in, gates[0], o);              // (B, S_txt, D)
  return core::gated_add(c, gates[1], ff(norm2(c)));          // (B, S_txt, D)
}

void TokenRefiner::bind(const WeightScope& w, const HunyuanVideoConfig& cfg) {
  const int64_t D = cfg.inner_dim();
  time_text_embed.bind(w / "time_text_embed", D, cfg.text_embed_dim, /*guidance=*/false);
  proj_in.bind(w / "proj_in", cfg.text_embed_dim, D);
  refiner_blocks.resize(cfg.num_refiner_layers);
  for (int64_t i = 0; i < cfg.num_refiner_layers; ++i) {
    refiner_blocks[i].bind(w / "token_refiner" / "refiner_blocks" / static_cast<int>(i), cfg);
  }
}

Tensor TokenRefiner::forward(const Tensor& text, const Tensor& timestep, const Tensor& mask) const {
  Tensor pooled = masked_mean(text, mask);          // (B, text_embed_dim)
  Tensor temb = time_text_embed(timestep, pooled);  // (B, D)
  Tensor c = proj_in(text);                         // (B, S_txt, D)
  Tensor bias = refiner_bias(mask);                 // (B, 1, S_txt, S_txt) or {}, host-built
  if (bias.defined()) bias = bias.to_device(text.device());
  for (const auto& block : refiner_blocks) {
    c = block.forward(c, temb, bias);  // (B, S_txt, D)
  }
  return c;
}

// ---------------------------------------------------------------- dual-stream block
void HunyuanVideoTransformerBlock::bind(const WeightScope& w, const HunyuanVideoConfig& cfg) {
  const int64_t D = cfg.inner_dim(), hd = cfg.attention_head_dim;
  heads = cfg.num_attention_heads;
  norm1.bind(w / "norm1", D);
  norm1_context.bind(w / "norm1_context", D);
  const WeightScope a = w / "attn";
  attn.to_q.bind(a / "to_q", D, D);
  attn.to_k.bind(a / "to_k", D, D);
  attn.to_v.bind(a / "to_v", D, D);
  attn.norm_q.bind(a / "norm_q", hd, cfg.qk_norm, kNormEps);
  attn.norm_k.bind(a / "norm_k", hd, cfg.qk_norm, kNormEps);
  attn.add_q_proj.bind(a / "add_q_proj", D, D);
  attn.add_k_proj.bind(a / "add_k_proj", D, D);
  attn.add_v_proj.bind(a / "add_v_proj", D, D);
  attn.norm_added_q.bind(a / "norm_added_q", hd, cfg.qk_norm, kNormEps);
  attn.norm_added_k.bind(a / "norm_added_k", hd, cfg.qk_norm, kNormEps);
  attn.to_out.bind(a / "to_out" / "0", D, D);
  attn.to_add_out.bind(a / "to_add_out", D, D);
  ff.bind(w / "ff", D, common::FeedForwardKind::kGeluTanh, 0, 0, cfg.mlp_ratio);
  ff_context.bind(w / "ff_context", D, common::FeedForwardKind::kGeluTanh, 0, 0, cfg.mlp_ratio);
}

std::pair<Tensor, Tensor> HunyuanVideoTransformerBlock::forward(const Tensor& x_in,
                                                                const Tensor& c_in,
                                                                const Tensor& temb,
                                                                const JointTokens& tokens,
                                                                const Rope& rope) const {
  const int64_t S_img = x_in.dim(1), S = x_in.dim(1) + c_in.dim(1);
  auto n = norm1(x_in, temb);           // n.x: (B, S_img, D); gates/shifts: (B, D)
  auto nc = norm1_context(c_in, temb);  // nc.x: (B, S_txt, D)

  // joint attention: video tokens first, then text tokens; rope rotates the video tokens
  Tensor q = attn.norm_q(split_heads(attn.to_q(n.x), heads));                  // (B, S_img, H, hd)
  Tensor k = attn.norm_k(split_heads(attn.to_k(n.x), heads));                  // (B, S_img, H, hd)
  Tensor v = split_heads(attn.to_v(n.x), heads);                               // (B, S_img, H, hd)
  Tensor cq = attn.norm_added_q(split_heads(attn.add_q_proj(nc.x), heads));    // (B, S_txt, H, hd)
  Tensor ck = attn.norm_added_k(split_heads(attn.add_k_proj(nc.x), heads));    // (B, S_txt, H, hd)
  Tensor cv = split_heads(attn.add_v_proj(nc.x), heads);                       // (B, S_txt, H, hd)
  q = core::concat({q, cq}, 1);                                                // (B, S, H, hd)
  k = core::concat({k, ck}, 1);                                                // (B, S, H, hd)
  v = core::concat({v, cv}, 1);                                                // (B, S, H, hd)
  q = core::apply_rope(q, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  k = core::apply_rope(k, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  Tensor o = merge_heads(parallel::joint_attention(q, k, v, tokens.layout));  // (B, S, D)
  Tensor x_attn = attn.to_out(o.slice(1, 0, S_img));                           // (B, S_img, D)
  Tensor c_attn = attn.to_add_out(o.slice(1, S_img, S));                       // (B, S_txt, D)

  // video stream
  Tensor x = core::gated_add(x_in, n.gate_msa, x_attn);  // (B, S_img, D)
  x = common::modulated_feed_forward(x, n.shift_mlp, n.scale_mlp, n.gate_mlp, ff,
                                     kNormEps);  // (B, S_img, D)

  // text stream
  Tensor c = core::gated_add(c_in, nc.gate_msa, c_attn);  // (B, S_txt, D)
  c = common::modulated_feed_forward(c, nc.shift_mlp, nc.scale_mlp, nc.gate_mlp, ff_context,
                                     kNormEps);  // (B, S_txt, D)
  return {x, c};
}

// ---------------------------------------------------------------- single-stream block
void HunyuanVideoSingleTransformerBlock::bind(const WeightScope& w, const HunyuanVideoConfig& cfg) {
  const int64_t D = cfg.inner_dim(), hd = cfg.attention_head_dim;
  const int64_t mlp_dim = static_cast<int64_t>(D * cfg.mlp_ratio);  // diffusers' int(D · ratio)
  heads = cfg.num_attention_heads;
  norm.bind(w / "norm", D);
  const WeightScope a = w / "attn";
  attn.to_q.bind(a / "to_q", D, D);
  attn.to_k.bind(a / "to_k", D, D);
  attn.to_v.bind(a / "to_v", D, D);
  attn.norm_q.bind(a / "norm_q", hd, cfg.qk_norm, kNormEps);
  attn.norm_k.bind(a / "norm_k", hd, cfg.qk_norm, kNormEps);
  proj_mlp.bind(w / "proj_mlp", D, mlp_dim);
  proj_out.bind(w / "proj_out", D + mlp_dim, D);
}

Tensor HunyuanVideoSingleTransformerBlock::forward(const Tensor& joint, const Tensor& temb,
                                                   const JointTokens& tokens,
                                                   const Rope& rope) const {
  auto n = norm(joint, temb);                                    // n.x: (B, S, D); gate: (B, D)
  Tensor mlp = core::gelu(proj_mlp(n.x), /*tanh_approx=*/true);  // (B, S, mlp_dim)

  Tensor q = attn.norm_q(split_heads(attn.to_q(n.x), heads));                  // (B, S, H, hd)
  Tensor k = attn.norm_k(split_heads(attn.to_k(n.x), heads));                  // (B, S, H, hd)
  Tensor v = split_heads(attn.to_v(n.x), heads);                               // (B, S, H, hd)
  q = core::apply_rope(q, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  k = core::apply_rope(k, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  Tensor o = merge_heads(parallel::joint_attention(q, k, v, tokens.layout));  // (B, S, D)

  Tensor h = proj_out(core::concat({o, mlp}, 2));  // (B, S, D + mlp_dim) → (B, S, D)
  return core::gated_add(joint, n.gate_msa, h);    // (B, S, D)
}

// ---------------------------------------------------------------- model
HunyuanVideoTransformer3DModel::HunyuanVideoTransformer3DModel(
    const HunyuanVideoConfig& cfg, const common::WeightProvider& weights, const core::Placement& place)
    : cfg_(cfg), place_(place) {
  const WeightScope w(weights, "", place);
  const int64_t D = cfg_.inner_dim();
  const Patch3d p = cfg_.patch();
  x_embedder_.bind(w / "x_embedder" / "proj", cfg_.in_channels, D, p);
  context_embedder_.bind(w / "context_embedder", cfg_);
  time_text_embed_.bind(w / "time_text_embed", D, cfg_.pooled_projection_dim, cfg_.guidance_embeds);
  transformer_blocks_.resize(cfg_.num_layers);
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    transformer_blocks_[i].bind(w / "transformer_blocks" / static_cast<int>(i), cfg_);
  }
  single_transformer_blocks_.resize(cfg_.num_single_layers);
  for (int64_t i = 0; i < cfg_.num_single_layers; ++i) {
    single_transformer_blocks_[i].bind(w / "single_transformer_blocks" / static_cast<int>(i), cfg_);
  }
  norm_out_.bind(w / "norm_out", D, D, /*elementwise_affine=*/false, kNormEps);
  proj_out_.bind(w / "proj_out", D, p[0] * p[1] * p[2] * cfg_.out_channels);
}

// A pass's conditioning: the timestep/guidance/pooled embedding, the rotary rows, the grid.
struct HunyuanVideoTransformer3DModel::Pass : TransformerPass {
  Tensor temb;     // (B, D)
  Rope rope;       // (S_img + S_txt local, hd) each
  Patch3d grid{};  // (f, h, w) tokens
};

Tensor HunyuanVideoTransformer3DModel::forward(const NamedTensors& inputs) const {
  return forward(inputs, nullptr);
}

Tensor HunyuanVideoTransformer3DModel::forward(const NamedTensors& inputs,
                                               const parallel::SequenceContext* sp) const {
  const std::unique_ptr<TransformerPass> pass = begin_pass(inputs, sp, nullptr, true);
  run_layers(*pass, 0, num_layers());
  return end_pass(*pass);
}

std::unique_ptr<TransformerPass> HunyuanVideoTransformer3DModel::begin_pass(
    const NamedTensors& inputs, const parallel::SequenceContext* sp, const parallel::PassPlan* plan,
    bool embed) const {
  PARADIT_CHECK(plan == nullptr, kModel, ": PipeFusion is not supported for this family");
  Tensor hidden = common::require_input(inputs, "hidden_states", kModel,
                                        detail::concat("[B, ", cfg_.in_channels, ", F, H, W]"));
  Tensor timestep = common::require_input(inputs, "timestep", kModel, "[B]");
  Tensor text = common::require_input(inputs, "encoder_hidden_states", kModel,
                                      detail::concat("[B, S_txt, ", cfg_.text_embed_dim, "]"));
  Tensor mask = common::require_input(inputs, "encoder_attention_mask", kModel, "[B, S_txt]");
  Tensor pooled = common::require_input(inputs, "pooled_projections", kModel,
                                        detail::concat("[B, ", cfg_.pooled_projection_dim, "]"));
  // A model without a guidance embedder ignores guidance, as diffusers does.
  Tensor guidance =
      cfg_.guidance_embeds ? common::require_input(inputs, "guidance", kModel, "[B]") : Tensor{};
  return begin_typed(hidden, timestep, text, mask, pooled, guidance, sp, embed);
}

Tensor HunyuanVideoTransformer3DModel::forward(const Tensor& hidden_states, const Tensor& timestep,
                                               const Tensor& encoder_hidden_states,
                                               const Tensor& encoder_attention_mask,
                                               const Tensor& pooled_projections,
                                               const Tensor& guidance,
                                               const parallel::SequenceContext* sp) const {
  const std::unique_ptr<Pass> pass =
      begin_typed(hidden_states, timestep, encoder_hidden_states, encoder_attention_mask,
                  pooled_projections, guidance, sp, true);
  run_layers(*pass, 0, num_layers());
  return end_pass(*pass);
}

int64_t HunyuanVideoTransformer3DModel::num_layers() const {
  return cfg_.num_layers + cfg_.num_single_layers;
}

std::unique_ptr<HunyuanVideoTransformer3DModel::Pass> HunyuanVideoTransformer3DModel::begin_typed(
    const Tensor& hidden_states, const Tensor& timestep, const Tensor& encoder_hidden_states,
    const Tensor& encoder_attention_mask, const Tensor& pooled_projections, const Tensor& guidance,
    const parallel::SequenceContext* sp, bool embed) const {
  // ---- validate the inputs
  const int64_t C = cfg_.in_channels;
  common::check_input(hidden_states.ndim() == 5 && hidden_states.dim(1) == C, hidden_states,
                      "hidden_states", kModel, detail::concat("[B, ", C, ", F, H, W]"));
  const int64_t B = hidden_states.dim(0);
  common::check_input(encoder_hidden_states.ndim() == 3 && encoder_hidden_states.dim(0) == B &&
                          encoder_hidden_states.dim(2) == cfg_.text_embed_dim,
                      encoder_hidden_states, "encoder_hidden_states", kModel,
                      detail::concat("[", B, ", S_txt, ", cfg_.text_embed_dim, "]"));
  const int64_t S_txt = encoder_hidden_states.dim(1);
  common::check_input(encoder_attention_mask.ndim() == 2 && encoder_attention_mask.dim(0) == B &&
                          encoder_attention_mask.dim(1) == S_txt,
                      encoder_attention_mask, "encoder_attention_mask", kModel,
                      detail::concat("[", B, ", ", S_txt, "]"));
  common::check_input(pooled_projections.ndim() == 2 && pooled_projections.dim(0) == B &&
                          pooled_projections.dim(1) == cfg_.pooled_projection_dim,
                      pooled_projections, "pooled_projections", kModel,
                      detail::concat("[", B, ", ", cfg_.pooled_projection_dim, "]"));
  Tensor t = common::batch_vector(timestep, B, "timestep", kModel);  // (B)
  Tensor g;
  if (cfg_.guidance_embeds) {
    PARADIT_CHECK(guidance.defined(), kModel,
                  ": forward input 'guidance' is missing (expected [B]; guidance_embeds is true)");
    g = common::batch_vector(guidance, B, "guidance", kModel);  // (B)
  }
  const Patch3d grid = wan::token_grid(hidden_states, cfg_.patch(), kModel);  // (f, h, w)
  const int64_t S_img = grid[0] * grid[1] * grid[2];

  // ---- token layout: under sequence parallelism this rank keeps its block of the video tokens
  // (padded to a multiple of the degree) and its text block or all the text (parallel/joint.h).
  const Tensor& text = encoder_hidden_states;
  const Tensor& text_mask = encoder_attention_mask;
  auto pass = std::make_unique<Pass>();
  pass->grid = grid;
  pass->tokens =
      parallel::plan_tokens(B, S_txt, S_img, sp, /*text_first=*/false, nullptr, place_.device);
  pass->tokens.text_key_mask = visible_text(text_mask);  // (B, S_txt) or {}, host-built
  if (pass->tokens.text_key_mask.defined()) {
    pass->tokens.text_key_mask = pass->tokens.text_key_mask.to_device(place_.device);
  }
  const parallel::TokenLayout& layout = pass->tokens;

  // ---- embeddings
  Rope video_rope = hunyuan_video_rope(cfg_.rope_axes_dim, cfg_.rope_theta, grid);  // (S_img, hd)
  if (layout.parallel()) {
    video_rope = {layout.shard_image(video_rope.cos, 0),
                  layout.shard_image(video_rope.sin, 0)};  // (S_img_local, hd): padded rows 0
  }
  Rope rope = with_identity_rows(video_rope, layout.local_text);  // (S_img + S_txt local, hd)
  pass->rope = {rope.cos.to_device(place_.device), rope.sin.to_device(place_.device)};
  pass->temb = time_text_embed_(t, place_.activation(pooled_projections), g);  // (B, D)
  if (embed) {
    Tensor x = layout.shard_image(x_embedder_(place_.activation(hidden_states)),
                                  1);  // (B, S_img_local, D), on the model's device
    // The token refiner attends over the whole text, so every rank runs it, then keeps its rows.
    Tensor c = layout.shard_text(context_embedder_.forward(place_.activation(text), t, text_mask),
                                 1);  // (B, S_txt_l, D)
    pass->streams = {x, c};
  }
  return pass;
}

void HunyuanVideoTransformer3DModel::run_layers(TransformerPass& pass, int64_t begin,
                                                int64_t end) const {
  const Pass& ps = static_cast<const Pass&>(pass);
  const JointTokens tokens{ps.tokens};
  for (int64_t i = begin; i < end; ++i) {
    if (i < cfg_.num_layers) {
      // ---- dual-stream blocks
      auto [x, c] = transformer_blocks_[static_cast<size_t>(i)].forward(
          pass.streams.at(0), pass.streams.at(1), ps.temb, tokens, ps.rope);
      pass.streams = {x, c};  // (B, S_img, D), (B, S_txt, D)
      continue;
    }
    // ---- single-stream blocks over [video, text]; diffusers re-concatenates and splits in
    // every block, which is the same as keeping the joint sequence.
    if (pass.streams.size() == 2) {
      pass.streams = {core::concat({pass.streams[0], pass.streams[1]}, 1)};  // (B, S, D)
    }
    const auto& block = single_transformer_blocks_[static_cast<size_t>(i - cfg_.num_layers)];
    pass.streams = {block.forward(pass.streams[0], ps.temb, tokens, ps.rope)};  // (B, S, D)
  }
}

Tensor HunyuanVideoTransformer3DModel::end_pass(TransformerPass& pass) const {
  const Pass& ps = static_cast<const Pass&>(pass);
  Tensor x = image_hidden(pass);  // (B, S_img_local, D)
  // ---- output: per token, so still on this rank's block; then the whole video sequence.
  x = norm_out_(x, ps.temb);         // (B, S_img_local, D)
  x = proj_out_(x);                  // (B, S_img_local, C_out·pt·p·p)
  x = ps.tokens.gather_image(x, 1);  // (B, S_img, C_out·pt·p·p)
  return wan::unpatchify_3d(x, ps.grid, cfg_.patch(), cfg_.out_channels,
                            wan::PatchFeatureOrder::kChannelThenPatch);  // (B, C_out, F, H, W)
}

Tensor HunyuanVideoTransformer3DModel::image_hidden(const TransformerPass& pass) const {
  // Streams {video, text}, or the joint [video, text].
  if (pass.streams.size() == 2) return pass.streams[0];
  return pass.streams.at(0).slice(1, 0, pass.tokens.local_image);  // (B, S_img_local, D)
}

CacheProbe HunyuanVideoTransformer3DModel::teacache_probe(const TransformerPass& pass) const {
  PARADIT_CHECK(cfg_.num_layers > 0, kModel, ": TeaCache needs a dual-stream block");
  const Pass& ps = static_cast<const Pass&>(pass);
  return {transformer_blocks_.front().norm1(image_hidden(pass), ps.temb).x, true};
}

std::vector<double> HunyuanVideoTransformer3DModel::teacache_coefficients() const {
  // TeaCache4HunyuanVideo/teacache_sample_video.py (ali-vilab/TeaCache).
  return {7.33226126e+02, -4.01131952e+02, 6.75869174e+01, -3.14987800e+00, 9.61237896e-02};
}

std::unique_ptr<Transformer> make_hunyuan_video_transformer(const io::Config& config,
                                                            const common::WeightProvider& weights,
                                                            const core::Placement& place) {
  return std::make_unique<HunyuanVideoTransformer3DModel>(HunyuanVideoConfig::from(config), weights,
                                                          place);
}

}  // namespace paradit::models::hunyuan_video
