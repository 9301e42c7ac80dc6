#include "models/sd3/sd3.h"

#include <algorithm>
#include <tuple>

namespace paradit::models::sd3 {

using common::merge_heads;
using common::split_heads;
using common::WeightScope;
using core::Tensor;

namespace {

constexpr const char* kModel = "SD3Transformer2DModel";
constexpr float kNormEps = 1e-6f;  // adaLN, norm2 and q/k norm epsilons in every SD3 block

// The one attention call of the family: joint (or image-only) attention over this rank's rows,
// sequence parallel through parallel/joint.h. q, k, v: (B, S, H, hd) → (B, S, H, hd).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v,
              const parallel::TokenLayout& tokens) {
  return parallel::joint_attention(q, k, v, tokens);
}

void bind_self_projections(SD3Attention& a, const WeightScope& w, const SD3Config& cfg) {
  const int64_t D = cfg.inner_dim(), hd = cfg.attention_head_dim;
  a.to_q.bind(w / "to_q", D, D);
  a.to_k.bind(w / "to_k", D, D);
  a.to_v.bind(w / "to_v", D, D);
  a.norm_q.bind(w / "norm_q", hd, cfg.qk_norm, kNormEps);
  a.norm_k.bind(w / "norm_k", hd, cfg.qk_norm, kNormEps);
  a.to_out.bind(w / "to_out" / "0", D, D);
}

}  // namespace

// ---------------------------------------------------------------- config
bool SD3Config::is_dual(int64_t layer) const {
  return std::find(dual_attention_layers.begin(), dual_attention_layers.end(), layer) !=
         dual_attention_layers.end();
}

SD3Config SD3Config::from(const io::Config& config) {
  SD3Config c;
  c.sample_size = config.get_int("sample_size", c.sample_size);
  c.patch_size = config.get_int("patch_size", c.patch_size);
  c.in_channels = config.get_int("in_channels", c.in_channels);
  c.num_layers = config.get_int("num_layers", c.num_layers);
  c.attention_head_dim = config.get_int("attention_head_dim", c.attention_head_dim);
  c.num_attention_heads = config.get_int("num_attention_heads", c.num_attention_heads);
  c.joint_attention_dim = config.get_int("joint_attention_dim", c.joint_attention_dim);
  c.caption_projection_dim = config.get_int("caption_projection_dim", c.caption_projection_dim);
  c.pooled_projection_dim = config.get_int("pooled_projection_dim", c.pooled_projection_dim);
  // diffusers: an absent out_channels is 16, an explicit null means in_channels.
  const bool out_null =
      config.json().contains("out_channels") && config.json()["out_channels"].is_null();
  c.out_channels = out_null ? c.in_channels : config.get_int("out_channels", c.out_channels);
  // An explicit null means "no cropping" in diffusers; an absent key means the default 96.
  const bool max_size_null =
      config.json().contains("pos_embed_max_size") && config.json()["pos_embed_max_size"].is_null();
  c.pos_embed_max_size = max_size_null ? 0 : config.get_int("pos_embed_max_size", c.pos_embed_max_size);
  if (config.has("dual_attention_layers")) {
    c.dual_attention_layers = config.get_int_list("dual_attention_layers");
  }
  c.qk_norm = common::head_norm_kind_from_name(
      config.has("qk_norm") ? config.get_string("qk_norm") : "", config.where());

  const std::string& where = config.where();
  PARADIT_CHECK(
      c.patch_size > 0 && c.in_channels > 0 && c.out_channels > 0 && c.attention_head_dim > 0 &&
          c.num_attention_heads > 0 && c.num_layers > 0 && c.sample_size > 0,
      where, ": SD3Transformer2DModel sizes must be positive (sample_size ", c.sample_size,
      ", patch_size ", c.patch_size, ", num_layers ", c.num_layers, ", attention_head_dim ",
      c.attention_head_dim, ", num_attention_heads ", c.num_attention_heads, ")");
  // The blocks' added projections take the context at the inner width.
  PARADIT_CHECK(c.caption_projection_dim == c.inner_dim(), where, ": caption_projection_dim is ",
                c.caption_projection_dim,
                ", expected num_attention_heads·attention_head_dim = ", c.inner_dim());
  for (int64_t l : c.dual_attention_layers) {
    PARADIT_CHECK(l >= 0 && l < c.num_layers, where, ": dual_attention_layers holds ", l,
                  ", expected a layer index below num_layers ", c.num_layers);
  }
  return c;
}

// ---------------------------------------------------------------- block
void JointTransformerBlock::bind(const WeightScope& w, const SD3Config& cfg, int64_t layer) {
  const int64_t D = cfg.inner_dim(), hd = cfg.attention_head_dim;
  heads = cfg.num_attention_heads;
  context_pre_only = layer == cfg.num_layers - 1;
  use_dual_attention = cfg.is_dual(layer);

  if (use_dual_attention) {
    norm1_x.bind(w / "norm1", D);
  } else {
    norm1.bind(w / "norm1", D);
  }
  if (context_pre_only) {
    norm1_context_out.bind(w / "norm1_context", D, D, /*elementwise_affine=*/false, kNormEps);
  } else {
    norm1_context.bind(w / "norm1_context", D);
  }

  const WeightScope a = w / "attn";
  bind_self_projections(attn, a, cfg);
  attn.add_q_proj.bind(a / "add_q_proj", D, D);
  attn.add_k_proj.bind(a / "add_k_proj", D, D);
  attn.add_v_proj.bind(a / "add_v_proj", D, D);
  attn.norm_added_q.bind(a / "norm_added_q", hd, cfg.qk_norm, kNormEps);
  attn.norm_added_k.bind(a / "norm_added_k", hd, cfg.qk_norm, kNormEps);
  if (!context_pre_only) attn.to_add_out.bind(a / "to_add_out", D, D);
  if (use_dual_attention) bind_self_projections(attn2, w / "attn2", cfg);

  ff.bind(w / "ff", D, common::FeedForwardKind::kGeluTanh);
  if (!context_pre_only) ff_context.bind(w / "ff_context", D, common::FeedForwardKind::kGeluTanh);
}

std::pair<Tensor, Tensor> JointTransformerBlock::forward(
    const Tensor& x_in, const Tensor& c_in, const Tensor& temb,
    const parallel::TokenLayout& tokens) const {
  const int64_t S_img = x_in.dim(1), S = x_in.dim(1) + c_in.dim(1);  // this rank's rows

  // ---- adaLN of both streams
  Tensor nx, nx2, gate_msa, shift_mlp, scale_mlp, gate_mlp, gate_msa2;
  if (use_dual_attention) {
    auto n = norm1_x(x_in, temb);  // n.x, n.x2: (B, S_img, D); the rest (B, D)
    std::tie(nx, gate_msa, shift_mlp, scale_mlp, gate_mlp, nx2, gate_msa2) =
        std::tie(n.x, n.gate_msa, n.shift_mlp, n.scale_mlp, n.gate_mlp, n.x2, n.gate_msa2);
  } else {
    auto n = norm1(x_in, temb);  // n.x: (B, S_img, D); the rest (B, D)
    std::tie(nx, gate_msa, shift_mlp, scale_mlp, gate_mlp) =
        std::tie(n.x, n.gate_msa, n.shift_mlp, n.scale_mlp, n.gate_mlp);
  }
  common::AdaLayerNormZero::Out nc;
  if (context_pre_only) {
    nc.x = norm1_context_out(c_in, temb);  // (B, S_txt, D)
  } else {
    nc = norm1_context(c_in, temb);  // nc.x: (B, S_txt, D); the rest (B, D)
  }

  // ---- joint attention: image tokens first, then text tokens
  Tensor q = attn.norm_q(split_heads(attn.to_q(nx), heads));                 // (B, S_img, H, hd)
  Tensor k = attn.norm_k(split_heads(attn.to_k(nx), heads));                 // (B, S_img, H, hd)
  Tensor v = split_heads(attn.to_v(nx), heads);                              // (B, S_img, H, hd)
  Tensor cq = attn.norm_added_q(split_heads(attn.add_q_proj(nc.x), heads));  // (B, S_txt, H, hd)
  Tensor ck = attn.norm_added_k(split_heads(attn.add_k_proj(nc.x), heads));  // (B, S_txt, H, hd)
  Tensor cv = split_heads(attn.add_v_proj(nc.x), heads);                     // (B, S_txt, H, hd)
  q = core::concat({q, cq}, 1);                                              // (B, S, H, hd)
  k = core::concat({k, ck}, 1);                                              // (B, S, H, hd)
  v = core::concat({v, cv}, 1);                                              // (B, S, H, hd)
  Tensor o = merge_heads(attend(q, k, v, tokens));                           // (B, S, D)
  Tensor x_attn = attn.to_out(o.slice(1, 0, S_img));                         // (B, S_img, D)
  Tensor x = core::gated_add(x_in, gate_msa, x_attn);                        // (B, S_img, D)

  // ---- SD3.5 second attention over the image tokens only
  if (use_dual_attention) {
    Tensor q2 = attn2.norm_q(split_heads(attn2.to_q(nx2), heads));  // (B, S_img, H, hd)
    Tensor k2 = attn2.norm_k(split_heads(attn2.to_k(nx2), heads));  // (B, S_img, H, hd)
    Tensor v2 = split_heads(attn2.to_v(nx2), heads);                // (B, S_img, H, hd)
    // image tokens only: the same layout without text rows
    Tensor o2 = attn2.to_out(merge_heads(attend(q2, k2, v2, tokens.image_only())));  // (B, S_img, D)
    x = core::gated_add(x, gate_msa2, o2);                                  // (B, S_img, D)
  }

  // ---- image feed-forward
  x = common::modulated_feed_forward(x, shift_mlp, scale_mlp, gate_mlp, ff,
                                     kNormEps);  // (B, S_img, D)
  if (context_pre_only) return {Tensor{}, x};

  // ---- text stream
  Tensor c_attn = attn.to_add_out(o.slice(1, S_img, S));  // (B, S_txt, D)
  Tensor c = core::gated_add(c_in, nc.gate_msa, c_attn);  // (B, S_txt, D)
  c = common::modulated_feed_forward(c, nc.shift_mlp, nc.scale_mlp, nc.gate_mlp, ff_context,
                                     kNormEps);  // (B, S_txt, D)
  return {c, x};
}

// ---------------------------------------------------------------- model
SD3Transformer2DModel::SD3Transformer2DModel(const SD3Config& cfg,
                                             const common::WeightProvider& weights,
                                             const core::Placement& place)
    : cfg_(cfg), place_(place) {
  const WeightScope w(weights, "", place);
  const int64_t D = cfg_.inner_dim();
  common::PatchEmbedOptions pe;
  pe.height = pe.width = cfg_.sample_size;
  pe.patch_size = cfg_.patch_size;
  pe.in_channels = cfg_.in_channels;
  pe.embed_dim = D;
  pe.pos_embed =
      cfg_.pos_embed_max_size > 0 ? common::PosEmbedKind::kCropped : common::PosEmbedKind::kSinCos;
  pe.pos_embed_max_size = cfg_.pos_embed_max_size;
  pos_embed_.bind(w / "pos_embed", pe);
  time_text_embed_.bind(w / "time_text_embed", D, cfg_.pooled_projection_dim,
                        /*guidance=*/false);
  context_embedder_.bind(w / "context_embedder", cfg_.joint_attention_dim,
                         cfg_.caption_projection_dim);
  transformer_blocks_.resize(cfg_.num_layers);
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    transformer_blocks_[i].bind(w / "transformer_blocks" / static_cast<int>(i), cfg_, i);
  }
  norm_out_.bind(w / "norm_out", D, D, /*elementwise_affine=*/false, kNormEps);
  proj_out_.bind(w / "proj_out", D, cfg_.patch_size * cfg_.patch_size * cfg_.out_channels);
}

Tensor SD3Transformer2DModel::forward(const NamedTensors& inputs) const {
  return forward(inputs, nullptr);
}

// A pass's conditioning: the timestep and pooled-text embedding.
struct SD3Transformer2DModel::Pass : TransformerPass {
  Tensor temb;  // (B, D)
  int64_t batch = 0;
  int64_t width = 0;  // token columns
};

Tensor SD3Transformer2DModel::forward(const NamedTensors& inputs,
                                      const parallel::SequenceContext* sp) const {
  const std::unique_ptr<TransformerPass> pass = begin_pass(inputs, sp, nullptr, true);
  run_layers(*pass, 0, num_layers());
  return end_pass(*pass);
}

Tensor SD3Transformer2DModel::forward(const Tensor& hidden_states,
                                      const Tensor& encoder_hidden_states,
                                      const Tensor& pooled_projections, const Tensor& timestep,
                                      const parallel::SequenceContext* sp) const {
  const std::unique_ptr<Pass> pass = begin_typed(hidden_states, encoder_hidden_states,
                                                 pooled_projections, timestep, sp, nullptr, true);
  run_layers(*pass, 0, num_layers());
  return end_pass(*pass);
}

int64_t SD3Transformer2DModel::num_layers() const { return cfg_.num_layers; }

std::pair<int64_t, int64_t> SD3Transformer2DModel::token_grid(const NamedTensors& inputs) const {
  const Tensor x = common::require_input(inputs, "hidden_states", kModel,
                                         detail::concat("[B, ", cfg_.in_channels, ", H, W]"));
  PARADIT_CHECK(x.ndim() == 4, kModel, ": hidden_states ", x.str(), " must be [B, C, H, W]");
  return {x.dim(2) / cfg_.patch_size, x.dim(3) / cfg_.patch_size};
}

std::unique_ptr<TransformerPass> SD3Transformer2DModel::begin_pass(
    const NamedTensors& inputs, const parallel::SequenceContext* sp,
    const parallel::PassPlan* plan, bool embed) const {
  Tensor hidden = common::require_input(inputs, "hidden_states", kModel,
                                        detail::concat("[B, ", cfg_.in_channels, ", H, W]"));
  Tensor context =
      common::require_input(inputs, "encoder_hidden_states", kModel,
                            detail::concat("[B, S_txt, ", cfg_.joint_attention_dim, "]"));
  Tensor pooled = common::require_input(inputs, "pooled_projections", kModel,
                                        detail::concat("[B, ", cfg_.pooled_projection_dim, "]"));
  Tensor timestep = common::require_input(inputs, "timestep", kModel, "[B]");
  return begin_typed(hidden, context, pooled, timestep, sp, plan, embed);
}

std::unique_ptr<SD3Transformer2DModel::Pass> SD3Transformer2DModel::begin_typed(
    const Tensor& hidden_states, const Tensor& encoder_hidden_states,
    const Tensor& pooled_projections, const Tensor& timestep, const parallel::SequenceContext* sp,
    const parallel::PassPlan* plan, bool embed) const {
  // ---- validate the inputs
  const int64_t p = cfg_.patch_size;
  common::check_input(
      hidden_states.ndim() == 4 && hidden_states.dim(1) == cfg_.in_channels &&
          hidden_states.dim(2) % p == 0 && hidden_states.dim(3) % p == 0,
      hidden_states, "hidden_states", kModel,
      detail::concat("[B, ", cfg_.in_channels, ", H, W] with H and W multiples of ", p));
  const int64_t B = hidden_states.dim(0), H = hidden_states.dim(2), W = hidden_states.dim(3);
  const int64_t h = H / p, w = W / p;
  if (cfg_.pos_embed_max_size > 0) {
    common::check_input(h <= cfg_.pos_embed_max_size && w <= cfg_.pos_embed_max_size, hidden_states,
                        "hidden_states", kModel,
                        detail::concat("at most ", cfg_.pos_embed_max_size * p,
                                       " latent pixels per side (pos_embed_max_size ",
                                       cfg_.pos_embed_max_size, ")"));
  }
  common::check_input(encoder_hidden_states.ndim() == 3 && encoder_hidden_states.dim(0) == B &&
                          encoder_hidden_states.dim(2) == cfg_.joint_attention_dim,
                      encoder_hidden_states, "encoder_hidden_states", kModel,
                      detail::concat("[", B, ", S_txt, ", cfg_.joint_attention_dim, "]"));
  common::check_input(pooled_projections.ndim() == 2 && pooled_projections.dim(0) == B &&
                          pooled_projections.dim(1) == cfg_.pooled_projection_dim,
                      pooled_projections, "pooled_projections", kModel,
                      detail::concat("[", B, ", ", cfg_.pooled_projection_dim, "]"));
  Tensor t = common::batch_vector(timestep, B, "timestep", kModel);  // (B)

  auto pass = std::make_unique<Pass>();
  pass->batch = B;
  pass->width = w;
  // ---- token layout: under sequence parallelism this rank keeps its block of the image tokens
  // (padded to a multiple of the degree) and its text block or all the text (parallel/joint.h);
  // under PipeFusion the pass holds one patch of the image tokens (or every patch).
  pass->tokens = parallel::plan_tokens(B, encoder_hidden_states.dim(1), h * w, sp,
                                       /*text_first=*/false, plan, place_.device);
  const parallel::TokenLayout& tokens = pass->tokens;

  // ---- embeddings, on the model's device (the inputs may come from the host)
  if (embed) {
    pass->streams = {
        context_embedder_(place_.activation(
            tokens.shard_text(encoder_hidden_states, 1))),  // (B, S_txt local, D)
        tokens.shard_image(pos_embed_(place_.activation(hidden_states)),
                           1)};  // (B, h·w local, D) + positions
  }
  pass->temb = time_text_embed_(t, place_.activation(pooled_projections));  // (B, D)
  return pass;
}

std::vector<core::Shape> SD3Transformer2DModel::stream_shapes(const TransformerPass& pass,
                                                               int64_t) const {
  const Pass& ps = static_cast<const Pass&>(pass);
  const int64_t D = cfg_.inner_dim();
  return {{ps.batch, ps.tokens.local_text, D}, {ps.batch, ps.tokens.local_image, D}};
}

void SD3Transformer2DModel::run_layers(TransformerPass& pass, int64_t begin, int64_t end) const {
  Pass& ps = static_cast<Pass&>(pass);
  // ---- joint blocks (the last one drops the text stream)
  for (int64_t i = begin; i < end; ++i) {
    auto [c, x] = transformer_blocks_[static_cast<size_t>(i)].forward(
        ps.streams.at(1), ps.streams.at(0), ps.temb, ps.tokens.for_layer(i));
    ps.streams = {c, x};  // (B, S_txt, D) or undefined, (B, h·w, D)
  }
}

Tensor SD3Transformer2DModel::end_pass(TransformerPass& pass) const {
  Pass& ps = static_cast<Pass&>(pass);
  const int64_t p = cfg_.patch_size;
  // ---- output: per token, so still on this rank's block; then the pass's image sequence.
  Tensor x = norm_out_(ps.streams.at(1), ps.temb);  // (B, h·w local, D)
  x = proj_out_(x);                                 // (B, h·w local, p·p·out)
  x = ps.tokens.gather_image(x, 1);                 // (B, rows·w, p·p·out)
  const int64_t rows = ps.tokens.image_len / ps.width;
  return common::unpatchify(x, rows, ps.width, p, cfg_.out_channels);  // (B, out, rows·p, W)
}

CacheProbe SD3Transformer2DModel::teacache_probe(const TransformerPass& pass) const {
  PARADIT_CHECK(!transformer_blocks_.empty(), kModel, ": TeaCache needs a block");
  const Pass& ps = static_cast<const Pass&>(pass);
  const JointTransformerBlock& b = transformer_blocks_.front();
  const Tensor x = image_hidden(pass);  // (B, h·w local, D)
  return {b.use_dual_attention ? b.norm1_x(x, ps.temb).x : b.norm1(x, ps.temb).x, true};
}

std::unique_ptr<Transformer> make_sd3_transformer(const io::Config& config,
                                                  const common::WeightProvider& weights,
                                                  const core::Placement& place) {
  return std::make_unique<SD3Transformer2DModel>(SD3Config::from(config), weights, place);
}

}  // namespace paradit::models::sd3
