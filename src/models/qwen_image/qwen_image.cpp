#include "models/qwen_image/qwen_image.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace paradit::models::qwen_image {

using common::merge_heads;
using common::split_heads;
using common::WeightScope;
using core::Tensor;

namespace {

constexpr const char* kModel = "QwenImageTransformer2DModel";
constexpr float kEps = 1e-6f;  // every norm of the family

// The one attention call of the family: joint [text, image] attention over this rank's rows,
// padded text keys masked (parallel/joint.h: single process, Ulysses / Ring / USP, PipeFusion).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v,
              const parallel::TokenLayout& tokens) {
  return parallel::joint_attention(q, k, v, tokens);
}

// LayerNorm without affine, then ·(1 + scale) + shift.   x: (B, S, D)   shift, scale: (B, D)
Tensor norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) {
  return core::modulate(core::layer_norm(x, {}, {}, kEps), shift, scale);
}

// Per-axis positions → interleaved (cos, sin) tables, float32 as QwenEmbedRope.rope_params:
// inv_i = 1 / theta^(2i/dim), angle = pos · inv_i.   pos: (S, 3) → (S, hd) each.
flux::Rope rope_from_positions(const std::vector<std::array<int64_t, 3>>& pos,
                               const std::vector<int64_t>& axes_dims, double theta) {
  const int64_t S = static_cast<int64_t>(pos.size());
  int64_t hd = 0;
  for (int64_t d : axes_dims) hd += d;
  std::vector<float> cos(static_cast<size_t>(S * hd)), sin(cos.size());
  const float th = static_cast<float>(theta);
  int64_t col = 0;
  for (size_t a = 0; a < axes_dims.size(); ++a) {
    const int64_t dim = axes_dims[a];
    for (int64_t i = 0; i < dim / 2; ++i) {
      const float inv = 1.0f / std::pow(th, static_cast<float>(2 * i) / static_cast<float>(dim));
      for (int64_t s = 0; s < S; ++s) {
        const float angle = static_cast<float>(pos[static_cast<size_t>(s)][a]) * inv;
        const float c = std::cos(angle), sn = std::sin(angle);
        cos[s * hd + col + 2 * i] = cos[s * hd + col + 2 * i + 1] = c;
        sin[s * hd + col + 2 * i] = sin[s * hd + col + 2 * i + 1] = sn;
      }
    }
    col += dim;
  }
  return {Tensor::from_vector(cos, {S, hd}), Tensor::from_vector(sin, {S, hd})};
}

// 1 where any key is masked off: the mask as (B, S_txt) F32 1/0, or {} when every token counts
// (diffusers' pipeline then passes None; both give the same attention).
Tensor visible_text(const Tensor& mask, int64_t B, int64_t S_txt) {
  if (!mask.defined()) return {};
  common::check_input(mask.ndim() == 2 && mask.dim(0) == B && mask.dim(1) == S_txt, mask,
                      "encoder_hidden_states_mask", kModel,
                      detail::concat("[", B, ", ", S_txt, "]"));
  std::vector<float> m = mask.to_vector();
  bool all = true;
  for (float& v : m) {
    v = v != 0.0f ? 1.0f : 0.0f;
    all = all && v != 0.0f;
  }
  return all ? Tensor{} : Tensor::from_vector(m, {B, S_txt});
}

}  // namespace

// ---------------------------------------------------------------- config
QwenImageConfig QwenImageConfig::from(const io::Config& config) {
  QwenImageConfig c;
  c.patch_size = config.get_int("patch_size", c.patch_size);
  c.in_channels = config.get_int("in_channels", c.in_channels);
  c.out_channels = config.get_int("out_channels", c.out_channels);
  c.num_layers = config.get_int("num_layers", c.num_layers);
  c.attention_head_dim = config.get_int("attention_head_dim", c.attention_head_dim);
  c.num_attention_heads = config.get_int("num_attention_heads", c.num_attention_heads);
  c.joint_attention_dim = config.get_int("joint_attention_dim", c.joint_attention_dim);
  if (config.has("axes_dims_rope")) c.axes_dims_rope = config.get_int_list("axes_dims_rope");
  const std::string& where = config.where();
  for (const char* key : {"zero_cond_t", "use_additional_t_cond", "use_layer3d_rope"}) {
    PARADIT_CHECK(!config.get_bool(key, false), where, ": ", key,
                  " = true (a Qwen-Image edit/layered variant) is not supported");
  }
  PARADIT_CHECK(c.patch_size > 0 && c.in_channels > 0 && c.out_channels > 0 &&
                    c.attention_head_dim > 0 && c.num_attention_heads > 0 && c.num_layers >= 0,
                where, ": QwenImageTransformer2DModel sizes must be positive");
  PARADIT_CHECK(c.axes_dims_rope.size() == 3, where, ": axes_dims_rope must have 3 entries");
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
QwenRope qwen_rope(int64_t frames, int64_t rows, int64_t cols, int64_t text_len,
                   const std::vector<int64_t>& axes_dims, double theta) {
  std::vector<std::array<int64_t, 3>> img, txt;
  for (int64_t f = 0; f < frames; ++f) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        img.push_back({f, r - (rows - rows / 2), c - (cols - cols / 2)});
      }
    }
  }
  const int64_t start = std::max(rows / 2, cols / 2);
  for (int64_t k = 0; k < text_len; ++k) txt.push_back({start + k, start + k, start + k});
  return {rope_from_positions(img, axes_dims, theta), rope_from_positions(txt, axes_dims, theta)};
}

std::array<int64_t, 3> image_shape_input(const Tensor& img_shapes) {
  common::check_input(img_shapes.defined() && img_shapes.ndim() >= 1 && img_shapes.dim(-1) == 3 &&
                          img_shapes.numel() >= 3,
                      img_shapes, "img_shapes", kModel,
                      "[..., 3] (frames, patch rows, patch cols)");
  const std::vector<float> v = img_shapes.to_vector();
  return {static_cast<int64_t>(v[0]), static_cast<int64_t>(v[1]), static_cast<int64_t>(v[2])};
}

// ---------------------------------------------------------------- block
void QwenImageTransformerBlock::bind(const WeightScope& w, const QwenImageConfig& cfg) {
  const int64_t D = cfg.inner_dim(), hd = cfg.attention_head_dim;
  heads = cfg.num_attention_heads;
  img_mod.bind(w / "img_mod" / "1", D, 6 * D);
  txt_mod.bind(w / "txt_mod" / "1", D, 6 * D);
  const WeightScope a = w / "attn";
  to_q.bind(a / "to_q", D, D);
  to_k.bind(a / "to_k", D, D);
  to_v.bind(a / "to_v", D, D);
  add_q_proj.bind(a / "add_q_proj", D, D);
  add_k_proj.bind(a / "add_k_proj", D, D);
  add_v_proj.bind(a / "add_v_proj", D, D);
  to_out.bind(a / "to_out" / "0", D, D);
  to_add_out.bind(a / "to_add_out", D, D);
  norm_q.bind(a / "norm_q", hd, kEps);
  norm_k.bind(a / "norm_k", hd, kEps);
  norm_added_q.bind(a / "norm_added_q", hd, kEps);
  norm_added_k.bind(a / "norm_added_k", hd, kEps);
  img_mlp.bind(w / "img_mlp", D, common::FeedForwardKind::kGeluTanh);
  txt_mlp.bind(w / "txt_mlp", D, common::FeedForwardKind::kGeluTanh);
}

std::pair<Tensor, Tensor> QwenImageTransformerBlock::forward(
    const Tensor& x_in, const Tensor& c_in, const Tensor& temb, const flux::Rope& rope,
    const parallel::TokenLayout& tokens) const {
  const int64_t S_txt = c_in.dim(1), S = c_in.dim(1) + x_in.dim(1);  // this rank's rows
  const Tensor act = core::silu(temb);                               // (B, D)
  // shift1, scale1, gate1, shift2, scale2, gate2: (B, D) each
  const std::vector<Tensor> m = core::chunk(img_mod(act), 6, 1);
  const std::vector<Tensor> mc = core::chunk(txt_mod(act), 6, 1);
  Tensor nx = norm_modulate(x_in, m[0], m[1]);    // (B, S_img, D)
  Tensor nc = norm_modulate(c_in, mc[0], mc[1]);  // (B, S_txt, D)

  // joint attention over [text, image]
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

  Tensor x = core::gated_add(x_in, m[2], x_attn);                          // (B, S_img, D)
  Tensor c = core::gated_add(c_in, mc[2], c_attn);                         // (B, S_txt, D)
  x = core::gated_add(x, m[5], img_mlp(norm_modulate(x, m[3], m[4])));     // (B, S_img, D)
  c = core::gated_add(c, mc[5], txt_mlp(norm_modulate(c, mc[3], mc[4])));  // (B, S_txt, D)
  return {c, x};
}

// ---------------------------------------------------------------- model
QwenImageTransformer2DModel::QwenImageTransformer2DModel(const QwenImageConfig& cfg,
                                                         const common::WeightProvider& weights,
                                                         const core::Placement& place)
    : cfg_(cfg), place_(place) {
  const WeightScope w(weights, "", place);
  const int64_t D = cfg.inner_dim();
  time_proj_ = common::Timesteps{256, true, 0.0, 1000.0};
  timestep_embedder_.bind(w / "time_text_embed" / "timestep_embedder", 256, D);
  txt_norm_.bind(w / "txt_norm", cfg.joint_attention_dim, kEps);
  img_in_.bind(w / "img_in", cfg.in_channels, D);
  txt_in_.bind(w / "txt_in", cfg.joint_attention_dim, D);
  transformer_blocks_.resize(static_cast<size_t>(cfg.num_layers));
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    transformer_blocks_[static_cast<size_t>(i)].bind(w / "transformer_blocks" / static_cast<int>(i),
                                                     cfg);
  }
  norm_out_.bind(w / "norm_out", D, D, /*elementwise_affine=*/false, kEps);
  proj_out_.bind(w / "proj_out", D, cfg.patch_size * cfg.patch_size * cfg.out_channels);
}

struct QwenImageTransformer2DModel::Pass : TransformerPass {
  Tensor temb;      // (B, D)
  flux::Rope rope;  // (S_txt_local + S_img_local, hd) each
  int64_t batch = 0;
};

Tensor QwenImageTransformer2DModel::forward(const NamedTensors& inputs) const {
  return forward(inputs, nullptr);
}

Tensor QwenImageTransformer2DModel::forward(const NamedTensors& inputs,
                                            const parallel::SequenceContext* sp) const {
  const std::unique_ptr<TransformerPass> pass = begin_pass(inputs, sp, nullptr, true);
  run_layers(*pass, 0, num_layers());
  return end_pass(*pass);
}

std::pair<int64_t, int64_t> QwenImageTransformer2DModel::token_grid(
    const NamedTensors& inputs) const {
  auto it = inputs.find("img_shapes");
  PARADIT_CHECK(it != inputs.end(), kModel,
                ": forward input 'img_shapes' is missing (expected [..., 3])");
  const auto [f, h, w] = image_shape_input(it->second);
  PARADIT_CHECK(f == 1, kModel, ": PipeFusion needs one frame in img_shapes, found ", f);
  return {h, w};
}

std::unique_ptr<TransformerPass> QwenImageTransformer2DModel::begin_pass(
    const NamedTensors& inputs, const parallel::SequenceContext* sp, const parallel::PassPlan* plan,
    bool embed) const {
  // ---- validate the inputs
  const int64_t C = cfg_.in_channels, J = cfg_.joint_attention_dim;
  const Tensor hidden =
      common::require_input(inputs, "hidden_states", kModel, detail::concat("[B, S_img, ", C, "]"));
  const Tensor context = common::require_input(inputs, "encoder_hidden_states", kModel,
                                               detail::concat("[B, S_txt, ", J, "]"));
  const Tensor timestep = common::require_input(inputs, "timestep", kModel, "[B]");
  auto shapes = inputs.find("img_shapes");
  PARADIT_CHECK(shapes != inputs.end(), kModel,
                ": forward input 'img_shapes' is missing (expected [..., 3] I64: frames, patch "
                "rows, patch cols; paradit forward reads it from the inputs file's __metadata__)");
  const auto [frames, rows, cols] = image_shape_input(shapes->second);
  common::check_input(hidden.ndim() == 3 && hidden.dim(2) == C, hidden, "hidden_states", kModel,
                      detail::concat("[B, S_img, ", C, "]"));
  const int64_t B = hidden.dim(0), S_img = hidden.dim(1);
  PARADIT_CHECK(frames * rows * cols == S_img, kModel, ": img_shapes (", frames, ", ", rows, ", ",
                cols, ") has ", frames * rows * cols, " tokens, hidden_states ", S_img);
  common::check_input(context.ndim() == 3 && context.dim(0) == B && context.dim(2) == J, context,
                      "encoder_hidden_states", kModel, detail::concat("[", B, ", S_txt, ", J, "]"));
  const int64_t S_txt = context.dim(1);
  const Tensor text_mask =
      visible_text(common::optional_input(inputs, "encoder_hidden_states_mask"), B, S_txt);

  auto pass = std::make_unique<Pass>();
  pass->batch = B;
  const Tensor t = common::batch_vector(timestep, B, "timestep", kModel);  // (B)
  pass->temb = timestep_embedder_(time_proj_(t));                          // (B, D)

  // ---- token layout (parallel/joint.h): text first, padded text keys masked
  pass->tokens = parallel::plan_tokens(B, S_txt, S_img, sp, /*text_first=*/true, plan,
                                       place_.device);
  pass->tokens.text_key_mask =
      text_mask.defined() ? text_mask.to_device(place_.device) : text_mask;  // (B, S_txt) or {}
  const parallel::TokenLayout& tokens = pass->tokens;
  if (embed) {
    pass->streams = {
        txt_in_(txt_norm_(place_.activation(tokens.shard_text(context, 1)))),  // (B, S_txt_l, D)
        img_in_(place_.activation(tokens.shard_image(hidden, 1)))};           // (B, S_img_l, D)
  }
  const QwenRope r = qwen_rope(frames, rows, cols, S_txt, cfg_.axes_dims_rope, cfg_.rope_theta);
  const auto local = [&](const Tensor& txt, const Tensor& img) {
    return core::concat({tokens.shard_text(txt, 0), tokens.shard_image(img, 0)},
                        0);  // (S_txt_local + S_img_local, hd)
  };
  pass->rope = {local(r.text.cos, r.image.cos).to_device(place_.device),
                local(r.text.sin, r.image.sin).to_device(place_.device)};
  return pass;
}

std::vector<core::Shape> QwenImageTransformer2DModel::stream_shapes(const TransformerPass& pass,
                                                                    int64_t) const {
  const Pass& ps = static_cast<const Pass&>(pass);
  const int64_t D = cfg_.inner_dim();
  return {{ps.batch, ps.tokens.local_text, D}, {ps.batch, ps.tokens.local_image, D}};
}

void QwenImageTransformer2DModel::run_layers(TransformerPass& pass, int64_t begin,
                                             int64_t end) const {
  Pass& ps = static_cast<Pass&>(pass);
  for (int64_t i = begin; i < end; ++i) {
    auto [c, x] = transformer_blocks_[static_cast<size_t>(i)].forward(
        ps.streams.at(1), ps.streams.at(0), ps.temb, ps.rope, ps.tokens.for_layer(i));
    ps.streams = {c, x};  // (B, S_txt, D), (B, S_img, D)
  }
}

Tensor QwenImageTransformer2DModel::end_pass(TransformerPass& pass) const {
  Pass& ps = static_cast<Pass&>(pass);
  Tensor x = norm_out_(ps.streams.at(1), ps.temb);  // (B, S_img_local, D)
  x = proj_out_(x);                                 // (B, S_img_local, p·p·out_channels)
  return ps.tokens.gather_image(x, 1);              // (B, S_img, p·p·out_channels)
}

CacheProbe QwenImageTransformer2DModel::teacache_probe(const TransformerPass& pass) const {
  PARADIT_CHECK(!transformer_blocks_.empty(), kModel, ": TeaCache needs a block");
  const Pass& ps = static_cast<const Pass&>(pass);
  const std::vector<Tensor> m =
      core::chunk(transformer_blocks_.front().img_mod(core::silu(ps.temb)), 6, 1);  // (B, D) each
  return {norm_modulate(image_hidden(pass), m[0], m[1]), true};  // (B, S_img_local, D)
}

std::unique_ptr<Transformer> make_qwen_image_transformer(const io::Config& config,
                                                         const common::WeightProvider& weights,
                                                         const core::Placement& place) {
  return std::make_unique<QwenImageTransformer2DModel>(QwenImageConfig::from(config), weights,
                                                       place);
}

std::vector<std::string> qwen_image_layer_prefixes(const io::Config& config) {
  const QwenImageConfig c = QwenImageConfig::from(config);
  std::vector<std::string> out;
  for (int64_t i = 0; i < c.num_layers; ++i)
    out.push_back("transformer_blocks." + std::to_string(i));
  return out;
}

}  // namespace paradit::models::qwen_image
