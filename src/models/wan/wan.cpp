#include "models/wan/wan.h"

#include <map>
#include <string>

namespace paradit::models::wan {

using common::merge_heads;
using common::split_heads;
using common::WeightScope;
using core::Tensor;

namespace {

constexpr const char* kModel = "WanTransformer3DModel";

// Self-attention over the video tokens: this rank's rows of the whole sequence's attention.
// q, k, v: (B, S, H, hd) → (B, S, H, hd)
Tensor self_attend(const Tensor& q, const Tensor& k, const Tensor& v,
                   const parallel::TokenLayout& tokens) {
  return parallel::joint_attention(q, k, v, tokens);
}

// Cross-attention: this rank's queries to the whole text (no exchange needed).
// q: (B, Sq, H, hd)   k, v: (B, S_txt, H, hd) → (B, Sq, H, hd)
Tensor cross_attend(const Tensor& q, const Tensor& k, const Tensor& v) {
  return core::attention(q, k, v).out;
}

// 1 + rows.   rows: (U, D) → (U, D)
Tensor one_plus(const Tensor& rows) {
  return core::add(rows, Tensor::full({1}, 1.0f, rows.dtype(), rows.device()));
}

}  // namespace

// ---------------------------------------------------------------- config
std::vector<int64_t> WanConfig::rope_split() const {
  const int64_t hw = 2 * (attention_head_dim / 6);
  return {attention_head_dim - 2 * hw, hw, hw};
}

WanConfig WanConfig::from(const io::Config& config) {
  WanConfig c;
  const std::string& where = config.where();
  if (config.has("patch_size")) {
    const std::vector<int64_t> p = config.get_int_list("patch_size");
    PARADIT_CHECK(p.size() == 3, where, ": patch_size must list 3 sizes (frames, height, width), ",
                  "found ", p.size());
    c.patch_size = {p[0], p[1], p[2]};
  }
  c.num_attention_heads = config.get_int("num_attention_heads", c.num_attention_heads);
  c.attention_head_dim = config.get_int("attention_head_dim", c.attention_head_dim);
  c.in_channels = config.get_int("in_channels", c.in_channels);
  c.out_channels = config.get_int("out_channels", 0);
  if (c.out_channels == 0) c.out_channels = c.in_channels;  // diffusers: out_channels or in
  c.text_dim = config.get_int("text_dim", c.text_dim);
  c.freq_dim = config.get_int("freq_dim", c.freq_dim);
  c.ffn_dim = config.get_int("ffn_dim", c.ffn_dim);
  c.num_layers = config.get_int("num_layers", c.num_layers);
  c.cross_attn_norm = config.get_bool("cross_attn_norm", c.cross_attn_norm);
  c.eps = config.get_float("eps", c.eps);
  c.rope_max_seq_len = config.get_int("rope_max_seq_len", c.rope_max_seq_len);

  // The image branch (Wan2.1 I2V / FLF2V: an image embedder and added k/v projections in the
  // cross-attention) is not implemented: say so rather than ignore its tensors.
  for (const char* key : {"image_dim", "added_kv_proj_dim"}) {
    PARADIT_CHECK(!config.has(key), where, ": ", key, " = ", config.json().at(key).dump(),
                  " (the Wan image-to-video branch) is not supported; expected null");
  }
  PARADIT_CHECK(c.patch_size[0] > 0 && c.patch_size[1] > 0 && c.patch_size[2] > 0 &&
                    c.num_attention_heads > 0 && c.attention_head_dim > 0 && c.in_channels > 0 &&
                    c.out_channels > 0 && c.text_dim > 0 && c.freq_dim > 0 && c.ffn_dim > 0 &&
                    c.num_layers >= 0 && c.rope_max_seq_len > 0,
                where, ": WanTransformer3DModel sizes must be positive (patch_size ",
                c.patch_size[0], "x", c.patch_size[1], "x", c.patch_size[2],
                ", num_attention_heads ", c.num_attention_heads, ", attention_head_dim ",
                c.attention_head_dim, ", in_channels ", c.in_channels, ", text_dim ", c.text_dim,
                ", freq_dim ", c.freq_dim, ", ffn_dim ", c.ffn_dim, ")");
  PARADIT_CHECK(c.attention_head_dim % 2 == 0, where,
                ": attention_head_dim must be even for the rotary embedding, found ",
                c.attention_head_dim);
  return c;
}

// ---------------------------------------------------------------- rope
Rope wan_rope(const WanConfig& cfg, const Patch3d& grid) {
  const std::vector<int64_t> split = cfg.rope_split();  // (t, h, w) channels
  const int64_t hd = cfg.attention_head_dim;
  const int64_t S = grid[0] * grid[1] * grid[2];
  // Per axis, the table over positions 0..n-1 (diffusers slices its rope_max_seq_len table).
  std::vector<std::vector<float>> cos_axis(3), sin_axis(3);
  for (int a = 0; a < 3; ++a) {
    PARADIT_CHECK(grid[a] <= cfg.rope_max_seq_len, kModel, ": the token grid has ", grid[a], " ",
                  (a == 0   ? "frames"
                   : a == 1 ? "rows"
                            : "columns"),
                  ", more than rope_max_seq_len ", cfg.rope_max_seq_len);
    if (split[a] == 0) continue;
    std::vector<double> pos(grid[a]);
    for (int64_t i = 0; i < grid[a]; ++i) pos[i] = static_cast<double>(i);
    auto [c, s] = common::get_1d_rotary_pos_embed(split[a], pos, cfg.rope_theta,
                                                  /*repeat_interleave_real=*/true);  // (n, d_a)
    cos_axis[a] = c.to_vector();
    sin_axis[a] = s.to_vector();
  }
  std::vector<float> co(static_cast<size_t>(S * hd)), so(co.size());  // (S, hd) each
  for (int64_t f = 0; f < grid[0]; ++f) {
    for (int64_t y = 0; y < grid[1]; ++y) {
      for (int64_t x = 0; x < grid[2]; ++x) {
        const int64_t n = (f * grid[1] + y) * grid[2] + x;
        const int64_t pos[3] = {f, y, x};
        int64_t col = 0;
        for (int a = 0; a < 3; ++a) {
          for (int64_t j = 0; j < split[a]; ++j, ++col) {
            co[static_cast<size_t>(n * hd + col)] = cos_axis[a][pos[a] * split[a] + j];
            so[static_cast<size_t>(n * hd + col)] = sin_axis[a][pos[a] * split[a] + j];
          }
        }
      }
    }
  }
  return {Tensor::from_vector(co, {S, hd}), Tensor::from_vector(so, {S, hd})};
}

// ---------------------------------------------------------------- timestep conditioning
Tensor TimeConditioning::spread(const Tensor& rows) const {
  PARADIT_CHECK(index.defined(), "TimeConditioning::spread: the timestep is per sample");
  return core::embedding(rows.contiguous(), index);  // (B, S, D)
}

TimeConditioning TimeConditioning::shard(const parallel::TokenLayout& layout) const {
  if (!layout.parallel() || !index.defined()) return *this;
  TimeConditioning local = *this;
  local.index = layout.shard_image(index, 1);  // (B, S_local): padded tokens take row 0
  local.tokens = local.index.dim(1);
  return local;
}

Tensor TimeConditioning::modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) const {
  // One row per sample: the fused op; rows (B, D).
  if (!index.defined()) return core::modulate(x, shift, scale);            // (B, S, D)
  return core::add(core::mul(x, spread(one_plus(scale))), spread(shift));  // (B, S, D)
}

Tensor TimeConditioning::gated_add(const Tensor& x, const Tensor& gate, const Tensor& y) const {
  if (!index.defined()) return core::gated_add(x, gate, y);  // (B, S, D)
  return core::add(x, core::mul(y, spread(gate)));           // (B, S, D)
}

void WanConditionEmbedder::bind(const WeightScope& w, const WanConfig& cfg) {
  const int64_t D = cfg.inner_dim();
  timesteps_proj = common::Timesteps{cfg.freq_dim, /*flip_sin_to_cos=*/true,
                                     /*downscale_freq_shift=*/0.0, 1.0};
  time_embedder.bind(w / "time_embedder", cfg.freq_dim, D);
  time_proj.bind(w / "time_proj", D, 6 * D);
  text_embedder.bind(w / "text_embedder", cfg.text_dim, D, 0, common::Activation::kGeluTanh);
}

TimeConditioning WanConditionEmbedder::time(const Tensor& timestep, int64_t B, int64_t S) const {
  TimeConditioning tc;
  tc.batch = B;
  tc.tokens = S;
  Tensor t;  // (U): the distinct timestep values
  if (timestep.ndim() == 2 && timestep.dim(1) == 1 && S != 1) {
    // (B, 1): one value per sample, broadcast over the tokens as in diffusers.
    t = common::batch_vector(timestep.contiguous().reshape({timestep.dim(0)}), B, "timestep",
                             kModel);  // (B)
  } else if (timestep.ndim() == 2) {
    // Per-token timesteps (B or 1, S): embed each distinct value once; diffusers embeds every
    // token, which gives the same rows.
    common::check_input(timestep.dim(1) == S && (timestep.dim(0) == B || timestep.dim(0) == 1),
                        timestep, "timestep", kModel,
                        detail::concat("[", B, "] or, one value per token, [", B, ", ", S, "]"));
    const std::vector<float> v = timestep.to_vector();
    std::map<float, int64_t> row_of;
    std::vector<float> distinct;
    std::vector<int64_t> idx(static_cast<size_t>(B * S));  // (B, S)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t src = timestep.dim(0) == 1 ? 0 : b;
      for (int64_t s = 0; s < S; ++s) {
        const float value = v[src * S + s];
        auto [it, added] = row_of.emplace(value, static_cast<int64_t>(distinct.size()));
        if (added) distinct.push_back(value);
        idx[static_cast<size_t>(b * S + s)] = it->second;
      }
    }
    tc.index = Tensor::from_vector_i64(idx, {B, S});  // (B, S), host: the embedding's ids
    t = Tensor::from_vector(distinct, {static_cast<int64_t>(distinct.size())});  // (U)
  } else {
    t = common::batch_vector(timestep, B, "timestep", kModel);  // (B): U = B, row b = sample b
  }
  const int64_t U = t.dim(0), D = time_embedder.linear_2.out_features();
  tc.temb = time_embedder(timesteps_proj(t));                   // (U, D)
  tc.proj = time_proj(core::silu(tc.temb)).reshape({U, 6, D});  // (U, 6, D)
  return tc;
}

// ---------------------------------------------------------------- blocks
void WanAttention::bind(const WeightScope& w, const WanConfig& cfg) {
  const int64_t D = cfg.inner_dim();
  const float eps = static_cast<float>(cfg.eps);
  to_q.bind(w / "to_q", D, D);
  to_k.bind(w / "to_k", D, D);
  to_v.bind(w / "to_v", D, D);
  norm_q.bind(w / "norm_q", D, eps);  // across heads: over the full H·hd width
  norm_k.bind(w / "norm_k", D, eps);
  to_out.bind(w / "to_out" / "0", D, D);
}

void WanTransformerBlock::bind(const WeightScope& w, const WanConfig& cfg) {
  const int64_t D = cfg.inner_dim();
  const float eps = static_cast<float>(cfg.eps);
  heads = cfg.num_attention_heads;
  cross_attn_norm = cfg.cross_attn_norm;
  scale_shift_table = w.param("scale_shift_table", {1, 6, D});
  norm1.bind(w / "norm1", D, eps, /*affine=*/false);
  attn1.bind(w / "attn1", cfg);
  if (cross_attn_norm) norm2.bind(w / "norm2", D, eps, /*affine=*/true);
  attn2.bind(w / "attn2", cfg);
  ffn.bind(w / "ffn", D, common::FeedForwardKind::kGeluTanh, 0, cfg.ffn_dim);
  norm3.bind(w / "norm3", D, eps, /*affine=*/false);
}

Tensor WanTransformerBlock::forward(const Tensor& x_in, const Tensor& context,
                                    const TimeConditioning& time, const Rope& rope,
                                    const parallel::TokenLayout& tokens) const {
  // shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa: rows (U, D) each
  Tensor mod = core::add(scale_shift_table, time.proj);  // (U, 6, D)
  auto row = [&](int i) { return mod.select(1, i); };    // (U, D)

  // self-attention over the video tokens
  Tensor h = time.modulate(norm1(x_in), row(0), row(1));                       // (B, S, D)
  Tensor q = split_heads(attn1.norm_q(attn1.to_q(h)), heads);                  // (B, S, H, hd)
  Tensor k = split_heads(attn1.norm_k(attn1.to_k(h)), heads);                  // (B, S, H, hd)
  Tensor v = split_heads(attn1.to_v(h), heads);                                // (B, S, H, hd)
  q = core::apply_rope(q, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  k = core::apply_rope(k, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  Tensor o = attn1.to_out(merge_heads(self_attend(q, k, v, tokens)));          // (B, S, D)
  Tensor x = time.gated_add(x_in, row(2), o);                                  // (B, S, D)

  // cross-attention to the text, no modulation
  h = cross_attn_norm ? norm2(x) : x;                                  // (B, S, D)
  q = split_heads(attn2.norm_q(attn2.to_q(h)), heads);                 // (B, S, H, hd)
  k = split_heads(attn2.norm_k(attn2.to_k(context)), heads);           // (B, S_txt, H, hd)
  v = split_heads(attn2.to_v(context), heads);                         // (B, S_txt, H, hd)
  x = core::add(x, attn2.to_out(merge_heads(cross_attend(q, k, v))));  // (B, S, D)

  // feed-forward
  h = time.modulate(norm3(x), row(3), row(4));  // (B, S, D)
  return time.gated_add(x, row(5), ffn(h));     // (B, S, D)
}

// ---------------------------------------------------------------- model
WanTransformer3DModel::WanTransformer3DModel(const WanConfig& cfg,
                                             const common::WeightProvider& weights,
                                             const core::Placement& place)
    : cfg_(cfg), place_(place) {
  const WeightScope w(weights, "", place);
  const int64_t D = cfg_.inner_dim();
  const int64_t K = cfg_.patch_size[0] * cfg_.patch_size[1] * cfg_.patch_size[2];
  patch_embedding_.bind(w / "patch_embedding", cfg_.in_channels, D, cfg_.patch_size);
  condition_embedder_.bind(w / "condition_embedder", cfg_);
  blocks_.resize(cfg_.num_layers);
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    blocks_[i].bind(w / "blocks" / static_cast<int>(i), cfg_);
  }
  norm_out_.bind(w / "norm_out", D, static_cast<float>(cfg_.eps), /*affine=*/false);
  scale_shift_table_ = w.param("scale_shift_table", {1, 2, D});
  proj_out_.bind(w / "proj_out", D, cfg_.out_channels * K);
}

// A pass's conditioning: the timestep rows, the projected text, this rank's rotary rows.
struct WanTransformer3DModel::Pass : TransformerPass {
  TimeConditioning time;  // this rank's rows
  Tensor context;         // (B, S_txt, D)
  Rope rope;              // (S_local, hd) each
  Patch3d grid{};         // (f, h, w) tokens
};

Tensor WanTransformer3DModel::forward(const NamedTensors& inputs) const {
  return forward(inputs, nullptr);
}

Tensor WanTransformer3DModel::forward(const NamedTensors& inputs,
                                      const parallel::SequenceContext* sp) const {
  const std::unique_ptr<TransformerPass> pass = begin_pass(inputs, sp, nullptr, true);
  run_layers(*pass, 0, num_layers());
  return end_pass(*pass);
}

Tensor WanTransformer3DModel::forward(const Tensor& hidden_states,
                                      const Tensor& encoder_hidden_states, const Tensor& timestep,
                                      const parallel::SequenceContext* sp) const {
  const std::unique_ptr<Pass> pass =
      begin_typed(hidden_states, encoder_hidden_states, timestep, sp, true);
  run_layers(*pass, 0, num_layers());
  return end_pass(*pass);
}

std::unique_ptr<TransformerPass> WanTransformer3DModel::begin_pass(
    const NamedTensors& inputs, const parallel::SequenceContext* sp, const parallel::PassPlan* plan,
    bool embed) const {
  PARADIT_CHECK(plan == nullptr, kModel, ": PipeFusion is not supported for this family");
  PARADIT_CHECK(inputs.count("encoder_hidden_states_image") == 0, kModel,
                ": forward input 'encoder_hidden_states_image' (image-to-video) is not supported");
  Tensor hidden = common::require_input(inputs, "hidden_states", kModel,
                                        detail::concat("[B, ", cfg_.in_channels, ", F, H, W]"));
  Tensor context = common::require_input(inputs, "encoder_hidden_states", kModel,
                                         detail::concat("[B, S_txt, ", cfg_.text_dim, "]"));
  Tensor timestep = common::require_input(inputs, "timestep", kModel, "[B] or [B, S]");
  return begin_typed(hidden, context, timestep, sp, embed);
}

std::unique_ptr<WanTransformer3DModel::Pass> WanTransformer3DModel::begin_typed(
    const Tensor& hidden_states, const Tensor& encoder_hidden_states, const Tensor& timestep,
    const parallel::SequenceContext* sp, bool embed) const {
  // ---- validate the inputs
  const int64_t C = cfg_.in_channels;
  common::check_input(hidden_states.ndim() == 5 && hidden_states.dim(1) == C, hidden_states,
                      "hidden_states", kModel, detail::concat("[B, ", C, ", F, H, W]"));
  const int64_t B = hidden_states.dim(0);
  common::check_input(encoder_hidden_states.ndim() == 3 && encoder_hidden_states.dim(0) == B &&
                          encoder_hidden_states.dim(2) == cfg_.text_dim,
                      encoder_hidden_states, "encoder_hidden_states", kModel,
                      detail::concat("[", B, ", S_txt, ", cfg_.text_dim, "]"));
  const Patch3d grid = wan::token_grid(hidden_states, cfg_.patch_size, kModel);  // (f, h, w)
  const int64_t S = grid[0] * grid[1] * grid[2];

  auto pass = std::make_unique<Pass>();
  pass->grid = grid;
  // ---- token layout: under sequence parallelism this rank keeps its block of the video tokens
  // (padded to a multiple of the degree); every rank keeps the whole text.
  pass->tokens = parallel::plan_tokens(B, 0, S, sp, /*text_first=*/true, nullptr, place_.device);
  const parallel::TokenLayout& tokens = pass->tokens;

  // ---- embeddings
  Rope rope = wan_rope(cfg_, grid);  // (S, hd) each
  if (tokens.parallel()) {
    // This rank's rows (padded rows get zero tables).
    rope = {tokens.shard_image(rope.cos, 0), tokens.shard_image(rope.sin, 0)};  // (S_local, hd)
  }
  pass->rope = {rope.cos.to_device(place_.device), rope.sin.to_device(place_.device)};
  if (embed) {
    pass->streams = {tokens.shard_image(patch_embedding_(place_.activation(hidden_states)),
                                        1)};  // (B, S_local, D), on the model's device
  }
  pass->time = condition_embedder_.time(timestep, B, S).shard(tokens);  // rows (U, D), (U, 6, D)
  pass->context =
      condition_embedder_.text_embedder(place_.activation(encoder_hidden_states));  // (B, S_txt, D)
  return pass;
}

void WanTransformer3DModel::run_layers(TransformerPass& pass, int64_t begin, int64_t end) const {
  const Pass& ps = static_cast<const Pass&>(pass);
  Tensor x = pass.streams.at(0);  // (B, S_local, D)
  for (int64_t i = begin; i < end; ++i) {
    x = blocks_[static_cast<size_t>(i)].forward(x, ps.context, ps.time, ps.rope,
                                                ps.tokens);  // (B, S_local, D)
  }
  pass.streams = {x};
}

Tensor WanTransformer3DModel::end_pass(TransformerPass& pass) const {
  const Pass& ps = static_cast<const Pass&>(pass);
  // ---- output: shift, scale = scale_shift_table + temb
  Tensor mod = core::add(scale_shift_table_, ps.time.temb.unsqueeze(1));  // (U, 2, D)
  Tensor x = ps.time.modulate(norm_out_(pass.streams.at(0)), mod.select(1, 0),
                              mod.select(1, 1));  // (B, S_local, D)
  x = proj_out_(x);                               // (B, S_local, K·C_out)
  x = ps.tokens.gather_image(x, 1);               // (B, S, K·C_out)
  return unpatchify_3d(x, ps.grid, cfg_.patch_size, cfg_.out_channels,
                       PatchFeatureOrder::kPatchThenChannel);  // (B, C_out, F, H, W)
}

CacheProbe WanTransformer3DModel::teacache_probe(const TransformerPass& pass) const {
  // TeaCache4Wan2.1 compares the time embedding e (e0, the six projections, with use_ret_steps):
  // one row per timestep value, which every rank of the sequence group holds whole.
  return {static_cast<const Pass&>(pass).time.temb, false};  // (U, D)
}

std::vector<double> WanTransformer3DModel::teacache_coefficients() const {
  // TeaCache4Wan2.1/teacache_generate.py, t2v without use_ret_steps (ali-vilab/TeaCache).
  if (cfg_.inner_dim() == 1536) {  // Wan2.1-T2V-1.3B
    return {2.39676752e+03, -1.31110545e+03, 2.01331979e+02, -8.29855975e+00, 1.37887774e-01};
  }
  if (cfg_.inner_dim() == 5120) {  // Wan2.1-T2V-14B (and Wan2.2 A14B's experts, same shape)
    return {-5784.54975374, 5449.50911966, -1811.16591783, 256.27178429, -13.02252404};
  }
  return {};
}

double WanTransformer3DModel::teacache_default_threshold() const {
  if (cfg_.inner_dim() == 1536) return 0.08;
  if (cfg_.inner_dim() == 5120) return 0.2;
  return kTeaCacheIdentityThreshold;
}

std::unique_ptr<Transformer> make_wan_transformer(const io::Config& config,
                                                  const common::WeightProvider& weights,
                                                  const core::Placement& place) {
  return std::make_unique<WanTransformer3DModel>(WanConfig::from(config), weights, place);
}

}  // namespace paradit::models::wan
