#include "models/flux2/flux2.h"

#include <string>

namespace paradit::models::flux2 {

using common::merge_heads;
using common::split_heads;
using common::WeightScope;
using core::Tensor;

namespace {

constexpr const char* kModel = "Flux2Transformer2DModel";

// The one attention call of the family: joint text + image attention over this rank's rows
// (single process: core::attention; sequence parallel: Ulysses / Ring / USP, see parallel/joint.h;
// PipeFusion: the layer's stale K/V).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v,
              const parallel::TokenLayout& tokens) {
  return parallel::joint_attention(q, k, v, tokens);
}

// silu(x[..., :n]) · x[..., n:]   x: (..., 2n) → (..., n)
Tensor swiglu(const Tensor& x) {
  const auto halves = core::chunk(x, 2, x.ndim() - 1);
  return core::mul(core::silu(halves[0]), halves[1]);
}

// LayerNorm without affine, then ·(1 + scale) + shift.   x: (B, S, D)   shift, scale: (B, D)
Tensor norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps) {
  return core::modulate(core::layer_norm(x, {}, {}, eps), shift, scale);
}

}  // namespace

// ---------------------------------------------------------------- config
Flux2Config Flux2Config::from(const io::Config& config) {
  Flux2Config c;
  c.patch_size = config.get_int("patch_size", c.patch_size);
  c.in_channels = config.get_int("in_channels", c.in_channels);
  c.out_channels = config.get_int("out_channels", c.in_channels);
  c.num_layers = config.get_int("num_layers", c.num_layers);
  c.num_single_layers = config.get_int("num_single_layers", c.num_single_layers);
  c.attention_head_dim = config.get_int("attention_head_dim", c.attention_head_dim);
  c.num_attention_heads = config.get_int("num_attention_heads", c.num_attention_heads);
  c.joint_attention_dim = config.get_int("joint_attention_dim", c.joint_attention_dim);
  c.timestep_guidance_channels =
      config.get_int("timestep_guidance_channels", c.timestep_guidance_channels);
  c.mlp_ratio = config.get_float("mlp_ratio", c.mlp_ratio);
  c.rope_theta = config.get_float("rope_theta", c.rope_theta);
  c.eps = static_cast<float>(config.get_float("eps", c.eps));
  c.guidance_embeds = config.get_bool("guidance_embeds", c.guidance_embeds);
  if (config.has("axes_dims_rope")) c.axes_dims_rope = config.get_int_list("axes_dims_rope");
  const std::string& where = config.where();
  PARADIT_CHECK(c.patch_size > 0 && c.in_channels > 0 && c.out_channels > 0 &&
                    c.attention_head_dim > 0 && c.num_attention_heads > 0 && c.num_layers >= 0 &&
                    c.num_single_layers >= 0 && c.mlp_ratio > 0,
                where, ": Flux2Transformer2DModel sizes must be positive");
  int64_t rope_dim = 0;
  for (int64_t d : c.axes_dims_rope) {
    PARADIT_CHECK(d > 0 && d % 2 == 0, where,
                  ": axes_dims_rope entries must be positive and even, found ", d);
    rope_dim += d;
  }
  PARADIT_CHECK(rope_dim == c.attention_head_dim, where, ": axes_dims_rope sums to ", rope_dim,
                ", expected attention_head_dim ", c.attention_head_dim);
  return c;
}

// ---------------------------------------------------------------- blocks
void Flux2FeedForward::bind(const WeightScope& w, int64_t dim, int64_t mlp) {
  linear_in.bind(w / "linear_in", dim, 2 * mlp, false);
  linear_out.bind(w / "linear_out", mlp, dim, false);
}

Tensor Flux2FeedForward::operator()(const Tensor& x) const {
  return linear_out(swiglu(linear_in(x)));  // (B, S, 2·mlp) → (B, S, mlp) → (B, S, D)
}

void Flux2TransformerBlock::bind(const WeightScope& w, const Flux2Config& cfg) {
  const int64_t D = cfg.inner_dim(), hd = cfg.attention_head_dim;
  heads = cfg.num_attention_heads;
  eps = cfg.eps;
  const WeightScope a = w / "attn";
  to_q.bind(a / "to_q", D, D, false);
  to_k.bind(a / "to_k", D, D, false);
  to_v.bind(a / "to_v", D, D, false);
  norm_q.bind(a / "norm_q", hd, cfg.eps);
  norm_k.bind(a / "norm_k", hd, cfg.eps);
  add_q_proj.bind(a / "add_q_proj", D, D, false);
  add_k_proj.bind(a / "add_k_proj", D, D, false);
  add_v_proj.bind(a / "add_v_proj", D, D, false);
  norm_added_q.bind(a / "norm_added_q", hd, cfg.eps);
  norm_added_k.bind(a / "norm_added_k", hd, cfg.eps);
  to_out.bind(a / "to_out" / "0", D, D, false);
  to_add_out.bind(a / "to_add_out", D, D, false);
  ff.bind(w / "ff", D, cfg.mlp_dim());
  ff_context.bind(w / "ff_context", D, cfg.mlp_dim());
}

std::pair<Tensor, Tensor> Flux2TransformerBlock::forward(
    const Tensor& x_in, const Tensor& c_in, const Tensor& mod_img, const Tensor& mod_txt,
    const flux::Rope& rope, const parallel::TokenLayout& tokens) const {
  const int64_t S_txt = c_in.dim(1), S = c_in.dim(1) + x_in.dim(1);  // this rank's rows
  // shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp: (B, D) each
  const std::vector<Tensor> m = core::chunk(mod_img, 6, 1);
  const std::vector<Tensor> mc = core::chunk(mod_txt, 6, 1);
  Tensor nx = norm_modulate(x_in, m[0], m[1], eps);    // (B, S_img, D)
  Tensor nc = norm_modulate(c_in, mc[0], mc[1], eps);  // (B, S_txt, D)

  // joint attention: text tokens first, then image tokens
  Tensor q = norm_q(split_heads(to_q(nx), heads));               // (B, S_img, H, hd)
  Tensor k = norm_k(split_heads(to_k(nx), heads));               // (B, S_img, H, hd)
  Tensor v = split_heads(to_v(nx), heads);                       // (B, S_img, H, hd)
  Tensor cq = norm_added_q(split_heads(add_q_proj(nc), heads));  // (B, S_txt, H, hd)
  Tensor ck = norm_added_k(split_heads(add_k_proj(nc), heads));  // (B, S_txt, H, hd)
  Tensor cv = split_heads(add_v_proj(nc), heads);                // (B, S_txt, H, hd)
  q = core::apply_rope(core::concat({cq, q}, 1), rope.cos, rope.sin,
                       core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  k = core::apply_rope(core::concat({ck, k}, 1), rope.cos, rope.sin,
                       core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  v = core::concat({cv, v}, 1);                         // (B, S, H, hd)
  Tensor o = merge_heads(attend(q, k, v, tokens));      // (B, S, D)
  Tensor c_attn = to_add_out(o.slice(1, 0, S_txt));     // (B, S_txt, D)
  Tensor x_attn = to_out(o.slice(1, S_txt, S));         // (B, S_img, D)

  // image stream
  Tensor x = core::gated_add(x_in, m[2], x_attn);                       // (B, S_img, D)
  x = core::gated_add(x, m[5], ff(norm_modulate(x, m[3], m[4], eps)));  // (B, S_img, D)
  // text stream
  Tensor c = core::gated_add(c_in, mc[2], c_attn);                                 // (B, S_txt, D)
  c = core::gated_add(c, mc[5], ff_context(norm_modulate(c, mc[3], mc[4], eps)));  // (B, S_txt, D)
  return {c, x};
}

void Flux2SingleTransformerBlock::bind(const WeightScope& w, const Flux2Config& cfg) {
  const int64_t hd = cfg.attention_head_dim;
  heads = cfg.num_attention_heads;
  inner = cfg.inner_dim();
  mlp = cfg.mlp_dim();
  eps = cfg.eps;
  const WeightScope a = w / "attn";
  to_qkv_mlp_proj.bind(a / "to_qkv_mlp_proj", inner, 3 * inner + 2 * mlp, false);
  to_out.bind(a / "to_out", inner + mlp, inner, false);
  norm_q.bind(a / "norm_q", hd, cfg.eps);
  norm_k.bind(a / "norm_k", hd, cfg.eps);
}

Tensor Flux2SingleTransformerBlock::forward(const Tensor& joint, const Tensor& mod,
                                            const flux::Rope& rope,
                                            const parallel::TokenLayout& tokens) const {
  const std::vector<Tensor> m = core::chunk(mod, 3, 1);  // shift, scale, gate: (B, D) each
  Tensor n = norm_modulate(joint, m[0], m[1], eps);      // (B, S, D)
  Tensor p = to_qkv_mlp_proj(n);                         // (B, S, 3·D + 2·mlp)
  const std::vector<Tensor> parts = core::split(p, {inner, inner, inner, 2 * mlp}, 2);
  Tensor q = norm_q(split_heads(parts[0], heads));                             // (B, S, H, hd)
  Tensor k = norm_k(split_heads(parts[1], heads));                             // (B, S, H, hd)
  Tensor v = split_heads(parts[2], heads);                                     // (B, S, H, hd)
  q = core::apply_rope(q, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  k = core::apply_rope(k, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  Tensor o = merge_heads(attend(q, k, v, tokens));                             // (B, S, D)
  Tensor out = to_out(core::concat({o, swiglu(parts[3])}, 2));                 // (B, S, D)
  return core::gated_add(joint, m[2], out);                                    // (B, S, D)
}

// ---------------------------------------------------------------- model
Flux2Transformer2DModel::Flux2Transformer2DModel(const Flux2Config& cfg,
                                                 const common::WeightProvider& weights,
                                                 const core::Placement& place)
    : cfg_(cfg), place_(place) {
  const WeightScope w(weights, "", place);
  const int64_t D = cfg.inner_dim(), T = cfg.timestep_guidance_channels;
  x_embedder_.bind(w / "x_embedder", cfg.in_channels, D, false);
  context_embedder_.bind(w / "context_embedder", cfg.joint_attention_dim, D, false);
  const WeightScope te = w / "time_guidance_embed";
  timestep_linear_1_.bind(te / "timestep_embedder" / "linear_1", T, D, false);
  timestep_linear_2_.bind(te / "timestep_embedder" / "linear_2", D, D, false);
  if (cfg.guidance_embeds) {
    guidance_linear_1_.bind(te / "guidance_embedder" / "linear_1", T, D, false);
    guidance_linear_2_.bind(te / "guidance_embedder" / "linear_2", D, D, false);
  }
  double_stream_modulation_img_.bind(w / "double_stream_modulation_img" / "linear", D, 6 * D,
                                     false);
  double_stream_modulation_txt_.bind(w / "double_stream_modulation_txt" / "linear", D, 6 * D,
                                     false);
  single_stream_modulation_.bind(w / "single_stream_modulation" / "linear", D, 3 * D, false);
  transformer_blocks_.resize(static_cast<size_t>(cfg.num_layers));
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    transformer_blocks_[static_cast<size_t>(i)].bind(w / "transformer_blocks" / static_cast<int>(i),
                                                     cfg);
  }
  single_transformer_blocks_.resize(static_cast<size_t>(cfg.num_single_layers));
  for (int64_t i = 0; i < cfg.num_single_layers; ++i) {
    single_transformer_blocks_[static_cast<size_t>(i)].bind(
        w / "single_transformer_blocks" / static_cast<int>(i), cfg);
  }
  norm_out_.bind(w / "norm_out", D, D, /*elementwise_affine=*/false, cfg.eps, /*bias=*/false);
  proj_out_.bind(w / "proj_out", D, cfg.patch_size * cfg.patch_size * cfg.out_channels, false);
}

// A pass's conditioning: the shared modulations and this rank's rotary rows.
struct Flux2Transformer2DModel::Pass : TransformerPass {
  Tensor temb;                       // (B, D)
  Tensor mod_img, mod_txt, mod_one;  // (B, 6·D), (B, 6·D), (B, 3·D)
  flux::Rope rope;                   // (S_txt_local + S_img_local, hd) each
  int64_t batch = 0;
};

Tensor Flux2Transformer2DModel::forward(const NamedTensors& inputs) const {
  return forward(inputs, nullptr);
}

Tensor Flux2Transformer2DModel::forward(const NamedTensors& inputs,
                                        const parallel::SequenceContext* sp) const {
  const std::unique_ptr<TransformerPass> pass = begin_pass(inputs, sp, nullptr, true);
  run_layers(*pass, 0, num_layers());
  return end_pass(*pass);
}

int64_t Flux2Transformer2DModel::num_layers() const {
  return cfg_.num_layers + cfg_.num_single_layers;
}

std::pair<int64_t, int64_t> Flux2Transformer2DModel::token_grid(const NamedTensors& inputs) const {
  const Tensor ids_in = common::require_input(inputs, "img_ids", kModel, "[S_img, 4]");
  const Tensor ids = ids_in.ndim() == 3 ? ids_in.select(0, 0) : ids_in;
  PARADIT_CHECK(ids.ndim() == 2 && ids.dim(1) >= 3 && ids.dim(0) > 0, kModel, ": img_ids ",
                ids_in.str(), " has no (row, column) axes");
  const std::vector<float> v = ids.to_vector();
  const int64_t n = ids.dim(0), a = ids.dim(1);
  const int64_t rows = static_cast<int64_t>(v[(n - 1) * a + 1]) + 1;
  const int64_t cols = static_cast<int64_t>(v[(n - 1) * a + 2]) + 1;
  PARADIT_CHECK(rows * cols == n, kModel, ": img_ids do not form a ", rows, " × ", cols,
                " row-major grid of ", n, " tokens");
  return {rows, cols};
}

std::unique_ptr<TransformerPass> Flux2Transformer2DModel::begin_pass(
    const NamedTensors& inputs, const parallel::SequenceContext* sp, const parallel::PassPlan* plan,
    bool embed) const {
  // ---- validate the inputs
  const int64_t C = cfg_.in_channels, n_axes = static_cast<int64_t>(cfg_.axes_dims_rope.size());
  const Tensor hidden =
      common::require_input(inputs, "hidden_states", kModel, detail::concat("[B, S_img, ", C, "]"));
  const Tensor context =
      common::require_input(inputs, "encoder_hidden_states", kModel,
                            detail::concat("[B, S_txt, ", cfg_.joint_attention_dim, "]"));
  const Tensor timestep = common::require_input(inputs, "timestep", kModel, "[B]");
  const Tensor img_ids_in =
      common::require_input(inputs, "img_ids", kModel, detail::concat("[S_img, ", n_axes, "]"));
  const Tensor txt_ids_in =
      common::require_input(inputs, "txt_ids", kModel, detail::concat("[S_txt, ", n_axes, "]"));
  common::check_input(hidden.ndim() == 3 && hidden.dim(2) == C, hidden, "hidden_states", kModel,
                      detail::concat("[B, S_img, ", C, "]"));
  const int64_t B = hidden.dim(0), S_img = hidden.dim(1);
  common::check_input(
      context.ndim() == 3 && context.dim(0) == B && context.dim(2) == cfg_.joint_attention_dim,
      context, "encoder_hidden_states", kModel,
      detail::concat("[", B, ", S_txt, ", cfg_.joint_attention_dim, "]"));
  const int64_t S_txt = context.dim(1);
  // The pipelines pass ids with a leading batch dim; diffusers takes the first.
  const Tensor img_ids = img_ids_in.ndim() == 3 ? img_ids_in.select(0, 0) : img_ids_in;
  const Tensor txt_ids = txt_ids_in.ndim() == 3 ? txt_ids_in.select(0, 0) : txt_ids_in;
  common::check_input(img_ids.ndim() == 2 && img_ids.dim(0) == S_img && img_ids.dim(1) == n_axes,
                      img_ids_in, "img_ids", kModel, detail::concat("[", S_img, ", ", n_axes, "]"));
  common::check_input(txt_ids.ndim() == 2 && txt_ids.dim(0) == S_txt && txt_ids.dim(1) == n_axes,
                      txt_ids_in, "txt_ids", kModel, detail::concat("[", S_txt, ", ", n_axes, "]"));

  auto pass = std::make_unique<Pass>();
  pass->batch = B;
  // ---- conditioning: timestep (+ guidance) embedding, the three shared modulations
  const common::Timesteps time_proj{cfg_.timestep_guidance_channels, true, 0.0, 1.0};
  Tensor t = core::scale(common::batch_vector(timestep, B, "timestep", kModel), 1000.0f);  // (B)
  Tensor temb = timestep_linear_2_(
      core::silu(timestep_linear_1_(place_.activation(time_proj(t)))));  // (B, D)
  if (cfg_.guidance_embeds && inputs.count("guidance") != 0) {
    // Flux2KleinPipeline passes guidance=None; a model with a guidance embedder then skips it.
    Tensor g = core::scale(
        common::batch_vector(common::optional_input(inputs, "guidance"), B, "guidance", kModel),
        1000.0f);  // (B)
    temb = core::add(temb, guidance_linear_2_(
                               core::silu(guidance_linear_1_(place_.activation(time_proj(g))))));
  }
  pass->temb = temb;                                   // (B, D)
  const Tensor act = core::silu(temb);                 // (B, D)
  pass->mod_img = double_stream_modulation_img_(act);  // (B, 6·D)
  pass->mod_txt = double_stream_modulation_txt_(act);  // (B, 6·D)
  pass->mod_one = single_stream_modulation_(act);      // (B, 3·D)

  // ---- token layout (parallel/joint.h), embeddings of this rank's rows
  pass->tokens = parallel::plan_tokens(B, S_txt, S_img, sp, /*text_first=*/true, plan,
                                       place_.device);
  const parallel::TokenLayout& tokens = pass->tokens;
  if (embed) {
    pass->streams = {
        context_embedder_(place_.activation(tokens.shard_text(context, 1))),  // (B, S_txt_l, D)
        x_embedder_(place_.activation(tokens.shard_image(hidden, 1)))};      // (B, S_img_l, D)
  }
  flux::Rope rope = flux::flux_rope(core::concat({txt_ids, img_ids}, 0), cfg_.axes_dims_rope,
                                    cfg_.rope_theta);  // (S_txt + S_img, hd) each
  if (tokens.parallel() || plan != nullptr) {
    const auto local = [&](const Tensor& table) {
      return core::concat({tokens.shard_text(table.slice(0, 0, S_txt), 0),
                           tokens.shard_image(table.slice(0, S_txt, S_txt + S_img), 0)},
                          0);  // (S_txt_local + S_img_local, hd)
    };
    rope = {local(rope.cos), local(rope.sin)};
  }
  pass->rope = {rope.cos.to_device(place_.device), rope.sin.to_device(place_.device)};
  return pass;
}

std::vector<core::Shape> Flux2Transformer2DModel::stream_shapes(const TransformerPass& pass,
                                                                int64_t layer) const {
  const Pass& ps = static_cast<const Pass&>(pass);
  const int64_t B = ps.batch, D = cfg_.inner_dim();
  const int64_t nt = ps.tokens.local_text, ni = ps.tokens.local_image;
  if (layer < cfg_.num_layers) return {{B, nt, D}, {B, ni, D}};
  return {{B, nt + ni, D}};
}

void Flux2Transformer2DModel::run_layers(TransformerPass& pass, int64_t begin, int64_t end) const {
  Pass& ps = static_cast<Pass&>(pass);
  for (int64_t i = begin; i < end; ++i) {
    const parallel::TokenLayout tokens = ps.tokens.for_layer(i);
    if (i < cfg_.num_layers) {
      // ---- double-stream blocks
      auto [c, x] = transformer_blocks_[static_cast<size_t>(i)].forward(
          ps.streams.at(1), ps.streams.at(0), ps.mod_img, ps.mod_txt, ps.rope, tokens);
      ps.streams = {c, x};  // (B, S_txt, D), (B, S_img, D)
      continue;
    }
    // ---- single-stream blocks over [text, image]
    if (ps.streams.size() == 2) {
      ps.streams = {core::concat({ps.streams[0], ps.streams[1]}, 1)};  // (B, S_txt + S_img, D)
    }
    const auto& block = single_transformer_blocks_[static_cast<size_t>(i - cfg_.num_layers)];
    ps.streams = {block.forward(ps.streams[0], ps.mod_one, ps.rope, tokens)};  // (B, S, D)
  }
  if (end == cfg_.num_layers && cfg_.num_single_layers > 0 && ps.streams.size() == 2) {
    ps.streams = {core::concat({ps.streams[0], ps.streams[1]}, 1)};  // (B, S_txt + S_img, D)
  }
}

Tensor Flux2Transformer2DModel::end_pass(TransformerPass& pass) const {
  Pass& ps = static_cast<Pass&>(pass);
  const int64_t n_txt = ps.tokens.local_text, n_img = ps.tokens.local_image;
  Tensor x =
      ps.streams.size() == 2 ? ps.streams[1] : ps.streams.at(0).slice(1, n_txt, n_txt + n_img);
  x = norm_out_(x, ps.temb);            // (B, S_img_local, D)
  x = proj_out_(x);                     // (B, S_img_local, p·p·out_channels)
  return ps.tokens.gather_image(x, 1);  // (B, S_img, p·p·out_channels)
}

CacheProbe Flux2Transformer2DModel::teacache_probe(const TransformerPass& pass) const {
  PARADIT_CHECK(cfg_.num_layers > 0, kModel, ": TeaCache needs a double-stream block");
  const Pass& ps = static_cast<const Pass&>(pass);
  const std::vector<Tensor> m = core::chunk(ps.mod_img, 6, 1);  // shift_msa, scale_msa, … (B, D)
  return {norm_modulate(image_hidden(pass), m[0], m[1], transformer_blocks_.front().eps),
          true};  // (B, S_img_local, D)
}

std::unique_ptr<Transformer> make_flux2_transformer(const io::Config& config,
                                                    const common::WeightProvider& weights,
                                                    const core::Placement& place) {
  return std::make_unique<Flux2Transformer2DModel>(Flux2Config::from(config), weights,
                                                   place);
}

std::vector<std::string> flux2_layer_prefixes(const io::Config& config) {
  const Flux2Config c = Flux2Config::from(config);
  std::vector<std::string> out;
  for (int64_t i = 0; i < c.num_layers; ++i)
    out.push_back("transformer_blocks." + std::to_string(i));
  for (int64_t i = 0; i < c.num_single_layers; ++i) {
    out.push_back("single_transformer_blocks." + std::to_string(i));
  }
  return out;
}

}  // namespace paradit::models::flux2
