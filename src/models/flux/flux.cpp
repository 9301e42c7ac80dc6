#include "models/flux/flux.h"

#include <string>
#include <tuple>

namespace paradit::models::flux {

using common::merge_heads;
using common::split_heads;
using common::WeightScope;
using core::Tensor;

namespace {

constexpr const char* kModel = "FluxTransformer2DModel";
constexpr float kNormEps = 1e-6f;  // adaLN, qk RMSNorm and norm2 epsilons in every Flux block

// The one attention call of the family: joint text + image attention over this rank's rows
// (single process: core::attention; sequence parallel: Ulysses / Ring / USP with the text split
// or replicated, see parallel/joint.h). q, k, v: (B, S, H, hd) → (B, S, H, hd).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v,
              const parallel::TokenLayout& tokens) {
  return parallel::joint_attention(q, k, v, tokens);
}

}  // namespace

// ---------------------------------------------------------------- config
FluxConfig FluxConfig::from(const io::Config& config) {
  FluxConfig c;
  c.patch_size = config.get_int("patch_size", c.patch_size);
  c.in_channels = config.get_int("in_channels", c.in_channels);
  c.out_channels = config.get_int("out_channels", c.in_channels);
  c.num_layers = config.get_int("num_layers", c.num_layers);
  c.num_single_layers = config.get_int("num_single_layers", c.num_single_layers);
  c.attention_head_dim = config.get_int("attention_head_dim", c.attention_head_dim);
  c.num_attention_heads = config.get_int("num_attention_heads", c.num_attention_heads);
  c.joint_attention_dim = config.get_int("joint_attention_dim", c.joint_attention_dim);
  c.pooled_projection_dim = config.get_int("pooled_projection_dim", c.pooled_projection_dim);
  c.guidance_embeds = config.has("guidance_embeds") && config.get_bool("guidance_embeds", false);
  if (config.has("axes_dims_rope")) c.axes_dims_rope = config.get_int_list("axes_dims_rope");

  const std::string& where = config.where();
  PARADIT_CHECK(c.patch_size > 0 && c.in_channels > 0 && c.out_channels > 0 &&
                    c.attention_head_dim > 0 && c.num_attention_heads > 0 && c.num_layers >= 0 &&
                    c.num_single_layers >= 0,
                where, ": FluxTransformer2DModel sizes must be positive (patch_size ", c.patch_size,
                ", in_channels ", c.in_channels, ", attention_head_dim ", c.attention_head_dim,
                ", num_attention_heads ", c.num_attention_heads, ")");
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

// ---------------------------------------------------------------- rope
Rope flux_rope(const Tensor& ids, const std::vector<int64_t>& axes_dims, double theta) {
  PARADIT_CHECK(ids.ndim() == 2 && ids.dim(1) == static_cast<int64_t>(axes_dims.size()),
                "flux_rope: ids must be (S, ", axes_dims.size(), "), got ", ids.str());
  const int64_t S = ids.dim(0);
  const std::vector<float> v = ids.to_vector();
  std::vector<Tensor> cos_parts, sin_parts;
  for (size_t a = 0; a < axes_dims.size(); ++a) {
    std::vector<double> pos(S);
    for (int64_t s = 0; s < S; ++s) pos[s] = v[s * axes_dims.size() + a];
    auto [c, s] = common::get_1d_rotary_pos_embed(axes_dims[a], pos, theta,
                                                  /*repeat_interleave_real=*/true);  // (S, d_a)
    cos_parts.push_back(c);
    sin_parts.push_back(s);
  }
  return {core::concat(cos_parts, 1), core::concat(sin_parts, 1)};  // (S, head_dim) each
}

// ---------------------------------------------------------------- double-stream block
void FluxTransformerBlock::bind(const WeightScope& w, const FluxConfig& cfg) {
  const int64_t D = cfg.inner_dim(), hd = cfg.attention_head_dim;
  heads = cfg.num_attention_heads;
  norm1.bind(w / "norm1", D);
  norm1_context.bind(w / "norm1_context", D);
  const WeightScope a = w / "attn";
  attn.to_q.bind(a / "to_q", D, D);
  attn.to_k.bind(a / "to_k", D, D);
  attn.to_v.bind(a / "to_v", D, D);
  attn.norm_q.bind(a / "norm_q", hd, kNormEps);
  attn.norm_k.bind(a / "norm_k", hd, kNormEps);
  attn.add_q_proj.bind(a / "add_q_proj", D, D);
  attn.add_k_proj.bind(a / "add_k_proj", D, D);
  attn.add_v_proj.bind(a / "add_v_proj", D, D);
  attn.norm_added_q.bind(a / "norm_added_q", hd, kNormEps);
  attn.norm_added_k.bind(a / "norm_added_k", hd, kNormEps);
  attn.to_out.bind(a / "to_out" / "0", D, D);
  attn.to_add_out.bind(a / "to_add_out", D, D);
  ff.bind(w / "ff", D, common::FeedForwardKind::kGeluTanh);
  ff_context.bind(w / "ff_context", D, common::FeedForwardKind::kGeluTanh);
}

std::pair<Tensor, Tensor> FluxTransformerBlock::forward(const Tensor& x_in, const Tensor& c_in,
                                                        const Tensor& temb, const Rope& rope,
                                                        const parallel::TokenLayout& tokens) const {
  const int64_t S_txt = c_in.dim(1), S = c_in.dim(1) + x_in.dim(1);  // this rank's rows
  auto n = norm1(x_in, temb);           // n.x: (B, S_img, D); gates/shifts: (B, D)
  auto nc = norm1_context(c_in, temb);  // nc.x: (B, S_txt, D)

  // joint attention: text tokens first, then image tokens
  Tensor q = attn.norm_q(split_heads(attn.to_q(n.x), heads));                  // (B, S_img, H, hd)
  Tensor k = attn.norm_k(split_heads(attn.to_k(n.x), heads));                  // (B, S_img, H, hd)
  Tensor v = split_heads(attn.to_v(n.x), heads);                               // (B, S_img, H, hd)
  Tensor cq = attn.norm_added_q(split_heads(attn.add_q_proj(nc.x), heads));    // (B, S_txt, H, hd)
  Tensor ck = attn.norm_added_k(split_heads(attn.add_k_proj(nc.x), heads));    // (B, S_txt, H, hd)
  Tensor cv = split_heads(attn.add_v_proj(nc.x), heads);                       // (B, S_txt, H, hd)
  q = core::concat({cq, q}, 1);                                                // (B, S, H, hd)
  k = core::concat({ck, k}, 1);                                                // (B, S, H, hd)
  v = core::concat({cv, v}, 1);                                                // (B, S, H, hd)
  q = core::apply_rope(q, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  k = core::apply_rope(k, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  Tensor o = merge_heads(attend(q, k, v, tokens));                             // (B, S, D)
  Tensor c_attn = attn.to_add_out(o.slice(1, 0, S_txt));                       // (B, S_txt, D)
  Tensor x_attn = attn.to_out(o.slice(1, S_txt, S));                           // (B, S_img, D)

  // image stream
  Tensor x = core::gated_add(x_in, n.gate_msa, x_attn);  // (B, S_img, D)
  x = common::modulated_feed_forward(x, n.shift_mlp, n.scale_mlp, n.gate_mlp, ff,
                                     kNormEps);  // (B, S_img, D)

  // text stream
  Tensor c = core::gated_add(c_in, nc.gate_msa, c_attn);  // (B, S_txt, D)
  c = common::modulated_feed_forward(c, nc.shift_mlp, nc.scale_mlp, nc.gate_mlp, ff_context,
                                     kNormEps);  // (B, S_txt, D)
  return {c, x};
}

// ---------------------------------------------------------------- single-stream block
void FluxSingleTransformerBlock::bind(const WeightScope& w, const FluxConfig& cfg) {
  const int64_t D = cfg.inner_dim(), hd = cfg.attention_head_dim;
  const int64_t mlp_dim = static_cast<int64_t>(D * 4.0);  // diffusers' mlp_ratio 4.0
  heads = cfg.num_attention_heads;
  norm.bind(w / "norm", D);
  const WeightScope a = w / "attn";
  attn.to_q.bind(a / "to_q", D, D);
  attn.to_k.bind(a / "to_k", D, D);
  attn.to_v.bind(a / "to_v", D, D);
  attn.norm_q.bind(a / "norm_q", hd, kNormEps);
  attn.norm_k.bind(a / "norm_k", hd, kNormEps);
  proj_mlp.bind(w / "proj_mlp", D, mlp_dim);
  proj_out.bind(w / "proj_out", D + mlp_dim, D);
}

Tensor FluxSingleTransformerBlock::forward(const Tensor& joint, const Tensor& temb,
                                           const Rope& rope,
                                           const parallel::TokenLayout& tokens) const {
  auto n = norm(joint, temb);                                    // n.x: (B, S, D); gate: (B, D)
  Tensor mlp = core::gelu(proj_mlp(n.x), /*tanh_approx=*/true);  // (B, S, 4D)

  Tensor q = attn.norm_q(split_heads(attn.to_q(n.x), heads));                  // (B, S, H, hd)
  Tensor k = attn.norm_k(split_heads(attn.to_k(n.x), heads));                  // (B, S, H, hd)
  Tensor v = split_heads(attn.to_v(n.x), heads);                               // (B, S, H, hd)
  q = core::apply_rope(q, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  k = core::apply_rope(k, rope.cos, rope.sin, core::RopeStyle::kInterleaved);  // (B, S, H, hd)
  Tensor o = merge_heads(attend(q, k, v, tokens));                             // (B, S, D)

  Tensor h = proj_out(core::concat({o, mlp}, 2));  // (B, S, 5D) → (B, S, D)
  return core::gated_add(joint, n.gate_msa, h);    // (B, S, D)
}

// ---------------------------------------------------------------- model
FluxTransformer2DModel::FluxTransformer2DModel(const FluxConfig& cfg,
                                               const common::WeightProvider& weights,
                                               const core::Placement& place)
    : cfg_(cfg), place_(place) {
  const WeightScope w(weights, "", place);
  const int64_t D = cfg_.inner_dim();
  x_embedder_.bind(w / "x_embedder", cfg_.in_channels, D);
  context_embedder_.bind(w / "context_embedder", cfg_.joint_attention_dim, D);
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
  proj_out_.bind(w / "proj_out", D, cfg_.patch_size * cfg_.patch_size * cfg_.out_channels);
}

Tensor FluxTransformer2DModel::forward(const NamedTensors& inputs) const {
  return forward(inputs, nullptr);
}

Tensor FluxTransformer2DModel::forward(const NamedTensors& inputs,
                                       const parallel::SequenceContext* sp) const {
  const std::unique_ptr<TransformerPass> pass = begin_pass(inputs, sp, nullptr, true);
  run_layers(*pass, 0, num_layers());
  return end_pass(*pass);
}

// A pass's conditioning: the timestep/guidance/pooled embedding and this rank's rotary rows.
struct FluxTransformer2DModel::Pass : TransformerPass {
  Tensor temb;  // (B, D)
  Rope rope;    // (S_txt_local + S_img_local, hd) each
  int64_t batch = 0;
};

int64_t FluxTransformer2DModel::num_layers() const {
  return cfg_.num_layers + cfg_.num_single_layers;
}

std::pair<int64_t, int64_t> FluxTransformer2DModel::token_grid(const NamedTensors& inputs) const {
  const Tensor ids_in = common::require_input(inputs, "img_ids", kModel, "[S_img, 3]");
  const Tensor ids = ids_in.ndim() == 3 ? ids_in.select(0, 0) : ids_in;
  PARADIT_CHECK(ids.ndim() == 2 && ids.dim(1) >= 3 && ids.dim(0) > 0, kModel,
                ": img_ids ", ids_in.str(), " has no (row, column) axes");
  const std::vector<float> v = ids.to_vector();
  const int64_t n = ids.dim(0), a = ids.dim(1);
  const int64_t rows = static_cast<int64_t>(v[(n - 1) * a + 1]) + 1;
  const int64_t cols = static_cast<int64_t>(v[(n - 1) * a + 2]) + 1;
  PARADIT_CHECK(rows * cols == n, kModel, ": img_ids do not form a ", rows, " × ", cols,
                " row-major grid of ", n, " tokens");
  return {rows, cols};
}

std::unique_ptr<TransformerPass> FluxTransformer2DModel::begin_pass(
    const NamedTensors& inputs, const parallel::SequenceContext* sp,
    const parallel::PassPlan* plan, bool embed) const {
  const int64_t C = cfg_.in_channels, n_axes = static_cast<int64_t>(cfg_.axes_dims_rope.size());
  Tensor hidden =
      common::require_input(inputs, "hidden_states", kModel, detail::concat("[B, S_img, ", C, "]"));
  Tensor context =
      common::require_input(inputs, "encoder_hidden_states", kModel,
                            detail::concat("[B, S_txt, ", cfg_.joint_attention_dim, "]"));
  Tensor pooled = common::require_input(inputs, "pooled_projections", kModel,
                                        detail::concat("[B, ", cfg_.pooled_projection_dim, "]"));
  Tensor timestep = common::require_input(inputs, "timestep", kModel, "[B]");
  Tensor img_ids =
      common::require_input(inputs, "img_ids", kModel, detail::concat("[S_img, ", n_axes, "]"));
  Tensor txt_ids =
      common::require_input(inputs, "txt_ids", kModel, detail::concat("[S_txt, ", n_axes, "]"));
  // Flux.1-schnell pipelines pass no guidance; a model without a guidance embedder ignores it.
  Tensor guidance =
      cfg_.guidance_embeds ? common::require_input(inputs, "guidance", kModel, "[B]") : Tensor{};
  return begin_typed(hidden, context, pooled, timestep, guidance, img_ids, txt_ids, sp, plan,
                     embed);
}

Tensor FluxTransformer2DModel::forward(const Tensor& hidden_states,
                                       const Tensor& encoder_hidden_states,
                                       const Tensor& pooled_projections, const Tensor& timestep,
                                       const Tensor& guidance, const Tensor& img_ids,
                                       const Tensor& txt_ids,
                                       const parallel::SequenceContext* sp) const {
  const std::unique_ptr<Pass> pass =
      begin_typed(hidden_states, encoder_hidden_states, pooled_projections, timestep, guidance,
                  img_ids, txt_ids, sp, nullptr, true);
  run_layers(*pass, 0, num_layers());
  return end_pass(*pass);
}

std::unique_ptr<FluxTransformer2DModel::Pass> FluxTransformer2DModel::begin_typed(
    const Tensor& hidden_states, const Tensor& encoder_hidden_states,
    const Tensor& pooled_projections, const Tensor& timestep, const Tensor& guidance,
    const Tensor& img_ids_in, const Tensor& txt_ids_in, const parallel::SequenceContext* sp,
    const parallel::PassPlan* plan, bool embed) const {
  // ---- validate the inputs
  const int64_t C = cfg_.in_channels, n_axes = static_cast<int64_t>(cfg_.axes_dims_rope.size());
  common::check_input(hidden_states.ndim() == 3 && hidden_states.dim(2) == C, hidden_states,
                      "hidden_states", kModel, detail::concat("[B, S_img, ", C, "]"));
  const int64_t B = hidden_states.dim(0), S_img = hidden_states.dim(1);
  common::check_input(encoder_hidden_states.ndim() == 3 && encoder_hidden_states.dim(0) == B &&
                          encoder_hidden_states.dim(2) == cfg_.joint_attention_dim,
                      encoder_hidden_states, "encoder_hidden_states", kModel,
                      detail::concat("[", B, ", S_txt, ", cfg_.joint_attention_dim, "]"));
  const int64_t S_txt = encoder_hidden_states.dim(1);
  common::check_input(pooled_projections.ndim() == 2 && pooled_projections.dim(0) == B &&
                          pooled_projections.dim(1) == cfg_.pooled_projection_dim,
                      pooled_projections, "pooled_projections", kModel,
                      detail::concat("[", B, ", ", cfg_.pooled_projection_dim, "]"));
  // Older pipelines pass ids with a leading batch dim; diffusers takes the first.
  Tensor img_ids = img_ids_in.ndim() == 3 ? img_ids_in.select(0, 0) : img_ids_in;
  Tensor txt_ids = txt_ids_in.ndim() == 3 ? txt_ids_in.select(0, 0) : txt_ids_in;
  common::check_input(img_ids.ndim() == 2 && img_ids.dim(0) == S_img && img_ids.dim(1) == n_axes,
                      img_ids_in, "img_ids", kModel, detail::concat("[", S_img, ", ", n_axes, "]"));
  common::check_input(txt_ids.ndim() == 2 && txt_ids.dim(0) == S_txt && txt_ids.dim(1) == n_axes,
                      txt_ids_in, "txt_ids", kModel, detail::concat("[", S_txt, ", ", n_axes, "]"));
  Tensor t = core::scale(common::batch_vector(timestep, B, "timestep", kModel), 1000.0f);  // (B)
  Tensor g;
  if (cfg_.guidance_embeds) {
    PARADIT_CHECK(guidance.defined(), kModel,
                  ": forward input 'guidance' is missing (expected [B]; guidance_embeds is true)");
    g = core::scale(common::batch_vector(guidance, B, "guidance", kModel), 1000.0f);  // (B)
  }

  auto pass = std::make_unique<Pass>();
  pass->batch = B;
  // ---- token layout: under sequence parallelism this rank keeps its block of the image tokens
  // (padded to a multiple of the degree) and its text block or all the text (parallel/joint.h);
  // under PipeFusion the pass holds one patch of the image tokens (or every patch).
  pass->tokens = parallel::plan_tokens(B, S_txt, S_img, sp, /*text_first=*/true, plan,
                                       place_.device);
  const parallel::TokenLayout& tokens = pass->tokens;

  // ---- embeddings, on the model's device (the inputs may come from the host)
  if (embed) {
    pass->streams = {
        context_embedder_(place_.activation(
            tokens.shard_text(encoder_hidden_states, 1))),  // (B, S_txt_local, D)
        x_embedder_(
            place_.activation(tokens.shard_image(hidden_states, 1)))};  // (B, S_img_local, D)
  }
  pass->temb = time_text_embed_(t, place_.activation(pooled_projections), g);  // (B, D)
  Rope rope = flux_rope(core::concat({txt_ids, img_ids}, 0), cfg_.axes_dims_rope,
                        cfg_.rope_theta);  // (S_txt + S_img, hd) each
  if (tokens.parallel() || plan != nullptr) {
    // This rank's rows: its text rows, then its image rows (padded rows get zero tables).
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

std::vector<core::Shape> FluxTransformer2DModel::stream_shapes(const TransformerPass& pass,
                                                                int64_t layer) const {
  const Pass& ps = static_cast<const Pass&>(pass);
  const int64_t B = ps.batch, D = cfg_.inner_dim();
  const int64_t nt = ps.tokens.local_text, ni = ps.tokens.local_image;
  if (layer < cfg_.num_layers) return {{B, nt, D}, {B, ni, D}};
  return {{B, nt + ni, D}};
}

void FluxTransformer2DModel::run_layers(TransformerPass& pass, int64_t begin, int64_t end) const {
  Pass& ps = static_cast<Pass&>(pass);
  for (int64_t i = begin; i < end; ++i) {
    const parallel::TokenLayout tokens = ps.tokens.for_layer(i);
    if (i < cfg_.num_layers) {
      // ---- double-stream blocks
      auto [c, x] = transformer_blocks_[static_cast<size_t>(i)].forward(
          ps.streams.at(1), ps.streams.at(0), ps.temb, ps.rope, tokens);
      ps.streams = {c, x};  // (B, S_txt, D), (B, S_img, D)
      continue;
    }
    // ---- single-stream blocks over [text, image]; diffusers re-concatenates and splits in
    // every block, which is the same as keeping the joint sequence.
    if (ps.streams.size() == 2) {
      ps.streams = {core::concat({ps.streams[0], ps.streams[1]}, 1)};  // (B, S_txt + S_img, D)
    }
    const auto& block = single_transformer_blocks_[static_cast<size_t>(i - cfg_.num_layers)];
    ps.streams = {block.forward(ps.streams[0], ps.temb, ps.rope, tokens)};  // (B, S, D)
  }
  // The streams entering a single-stream layer are the joint sequence (stream_shapes).
  if (end == cfg_.num_layers && cfg_.num_single_layers > 0 && ps.streams.size() == 2) {
    ps.streams = {core::concat({ps.streams[0], ps.streams[1]}, 1)};  // (B, S_txt + S_img, D)
  }
}

Tensor FluxTransformer2DModel::end_pass(TransformerPass& pass) const {
  Pass& ps = static_cast<Pass&>(pass);
  const int64_t n_txt = ps.tokens.local_text, n_img = ps.tokens.local_image;  // this rank's rows
  Tensor x = ps.streams.size() == 2 ? ps.streams[1]
                                    : ps.streams.at(0).slice(1, n_txt, n_txt + n_img);
  // ---- output: per token, so still on this rank's block; then the pass's image sequence.
  x = norm_out_(x, ps.temb);             // (B, S_img_local, D)
  x = proj_out_(x);                      // (B, S_img_local, p·p·out_channels)
  return ps.tokens.gather_image(x, 1);  // (B, S_img, p·p·out_channels)
}

CacheProbe FluxTransformer2DModel::teacache_probe(const TransformerPass& pass) const {
  PARADIT_CHECK(cfg_.num_layers > 0, kModel, ": TeaCache needs a double-stream block");
  const Pass& ps = static_cast<const Pass&>(pass);
  return {transformer_blocks_.front().norm1(image_hidden(pass), ps.temb).x,
          true};  // (B, S_img_local, D)
}

std::vector<double> FluxTransformer2DModel::teacache_coefficients() const {
  // TeaCache4FLUX/teacache_flux.py (ali-vilab/TeaCache), also xDiT's flux_coef.
  return {4.98651651e+02, -2.83781631e+02, 5.58554382e+01, -3.82021401e+00, 2.64230861e-01};
}

std::unique_ptr<Transformer> make_flux_transformer(const io::Config& config,
                                                   const common::WeightProvider& weights,
                                                   const core::Placement& place) {
  return std::make_unique<FluxTransformer2DModel>(FluxConfig::from(config), weights, place);
}

}  // namespace paradit::models::flux
