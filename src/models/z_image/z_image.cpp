#include "models/z_image/z_image.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "models/common/embeddings.h"

namespace paradit::models::z_image {

using common::merge_heads;
using common::split_heads;
using common::WeightScope;
using core::Tensor;

namespace {

constexpr const char* kModel = "ZImageTransformer2DModel";
constexpr int64_t kSeqMultiple = 32;  // diffusers' SEQ_MULTI_OF

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// The one attention call of the family: over this rank's rows as `tokens` lays them out (image
// tokens sequence-parallel, caption tokens split or replicated, padded captions masked).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v,
              const parallel::TokenLayout& tokens) {
  return parallel::joint_attention(q, k, v, tokens);
}


// RopeEmbedder tables at the given (f, h, w) positions: angles in float64 cast to float32, then
// cos/sin in float32 (torch.polar on complex64), pairs interleaved.   → (S, hd) each
flux::Rope rope_rows(const std::vector<std::array<int64_t, 3>>& pos, const ZImageConfig& cfg) {
  const int64_t S = static_cast<int64_t>(pos.size()), hd = cfg.head_dim();
  std::vector<float> cos(static_cast<size_t>(S * hd)), sin(cos.size());
  int64_t col = 0;
  for (size_t a = 0; a < cfg.axes_dims.size(); ++a) {
    const int64_t d = cfg.axes_dims[a];
    for (int64_t i = 0; i < d / 2; ++i) {
      const double inv = 1.0 / std::pow(cfg.rope_theta, static_cast<double>(2 * i) / d);
      for (int64_t s = 0; s < S; ++s) {
        const float angle = static_cast<float>(static_cast<double>(pos[s][a]) * inv);
        cos[s * hd + col + 2 * i] = cos[s * hd + col + 2 * i + 1] = std::cos(angle);
        sin[s * hd + col + 2 * i] = sin[s * hd + col + 2 * i + 1] = std::sin(angle);
      }
    }
    col += d;
  }
  return {Tensor::from_vector(cos, {S, hd}), Tensor::from_vector(sin, {S, hd})};
}

// x: (B, n, H, hd) with one table pair per sample (or one for all) → same shape
Tensor rope_per_sample(const Tensor& x, const std::vector<flux::Rope>& rope) {
  if (rope.size() == 1) {
    return core::apply_rope(x, rope[0].cos, rope[0].sin, core::RopeStyle::kInterleaved);
  }
  std::vector<Tensor> parts;
  for (int64_t b = 0; b < x.dim(0); ++b) {
    const flux::Rope& r = rope[static_cast<size_t>(b)];
    parts.push_back(core::apply_rope(x.slice(0, b, b + 1), r.cos, r.sin,
                                     core::RopeStyle::kInterleaved));  // (1, n, H, hd)
  }
  return core::concat(parts, 0);  // (B, n, H, hd)
}

// (C, F, H, W) → (F·H/p·W/p, p·p·C), features ordered (ph, pw, c) (f_patch_size 1).
Tensor patchify_image(const Tensor& x, int64_t p) {
  const int64_t C = x.dim(0), F = x.dim(1), Ht = x.dim(2) / p, Wt = x.dim(3) / p;
  return x.contiguous()
      .reshape({C, F, Ht, p, Wt, p})
      .permute({1, 2, 4, 3, 5, 0})         // (F, Ht, Wt, p, p, C)
      .reshape({F * Ht * Wt, p * p * C});  // (X, p·p·C)
}

// (F·Ht·Wt, p·p·C) → (C, F, Ht·p, Wt·p)
Tensor unpatchify_image(const Tensor& x, int64_t F, int64_t Ht, int64_t Wt, int64_t p, int64_t C) {
  return x.contiguous()
      .reshape({F, Ht, Wt, p, p, C})
      .permute({5, 0, 1, 3, 2, 4})  // (C, F, Ht, p, Wt, p)
      .reshape({C, F, Ht * p, Wt * p});
}

// `rows` copies of a (1, D) token for each of B samples: (B, rows, D)
Tensor repeat_token(const Tensor& token, int64_t B, int64_t rows) {
  return core::add(Tensor::zeros({B, rows, token.dim(1)}, token.dtype(), token.device()), token);
}

}  // namespace

// ---------------------------------------------------------------- config
ZImageConfig ZImageConfig::from(const io::Config& config) {
  ZImageConfig c;
  const std::string& where = config.where();
  const std::vector<int64_t> ps = config.get_int_list("all_patch_size", {2});
  const std::vector<int64_t> fps = config.get_int_list("all_f_patch_size", {1});
  PARADIT_CHECK(ps.size() == 1 && fps.size() == 1, where,
                ": all_patch_size / all_f_patch_size with more than one entry are not supported");
  c.patch_size = ps[0];
  c.f_patch_size = fps[0];
  PARADIT_CHECK(c.f_patch_size == 1, where, ": all_f_patch_size ", c.f_patch_size,
                " is not supported (expected 1)");
  c.in_channels = config.get_int("in_channels", c.in_channels);
  c.dim = config.get_int("dim", c.dim);
  c.n_layers = config.get_int("n_layers", c.n_layers);
  c.n_refiner_layers = config.get_int("n_refiner_layers", c.n_refiner_layers);
  c.n_heads = config.get_int("n_heads", c.n_heads);
  c.norm_eps = static_cast<float>(config.get_float("norm_eps", c.norm_eps));
  c.qk_norm = config.get_bool("qk_norm", c.qk_norm);
  c.cap_feat_dim = config.get_int("cap_feat_dim", c.cap_feat_dim);
  c.rope_theta = config.get_float("rope_theta", c.rope_theta);
  c.t_scale = config.get_float("t_scale", c.t_scale);
  c.axes_dims = config.get_int_list("axes_dims", c.axes_dims);
  c.axes_lens = config.get_int_list("axes_lens", c.axes_lens);
  PARADIT_CHECK(!config.has("siglip_feat_dim"), where,
                ": siglip_feat_dim is set (Z-Image Omni), which is not supported");
  PARADIT_CHECK(c.patch_size > 0 && c.in_channels > 0 && c.dim > 0 && c.n_heads > 0 &&
                    c.dim % c.n_heads == 0 && c.n_layers >= 0 && c.n_refiner_layers >= 0,
                where, ": ZImageTransformer2DModel sizes must be positive and dim (", c.dim,
                ") a multiple of n_heads (", c.n_heads, ")");
  int64_t rope_dim = 0;
  for (int64_t d : c.axes_dims) {
    PARADIT_CHECK(d > 0 && d % 2 == 0, where, ": axes_dims entries must be positive and even");
    rope_dim += d;
  }
  PARADIT_CHECK(c.axes_dims.size() == 3 && rope_dim == c.head_dim(), where, ": axes_dims sum to ",
                rope_dim, ", expected the head dim ", c.head_dim());
  return c;
}

// ---------------------------------------------------------------- block
void ZImageBlock::bind(const WeightScope& w, const ZImageConfig& cfg, bool modulated) {
  const int64_t D = cfg.dim, hd = cfg.head_dim();
  modulation = modulated;
  heads = cfg.n_heads;
  if (modulation) adaln.bind(w / "adaLN_modulation" / "0", cfg.adaln_dim(), 4 * D);
  const WeightScope a = w / "attention";
  to_q.bind(a / "to_q", D, D, false);
  to_k.bind(a / "to_k", D, D, false);
  to_v.bind(a / "to_v", D, D, false);
  to_out.bind(a / "to_out" / "0", D, D, false);
  if (cfg.qk_norm) {
    norm_q.bind(a / "norm_q", hd, 1e-5f);  // diffusers' Attention(eps=1e-5)
    norm_k.bind(a / "norm_k", hd, 1e-5f);
  }
  attention_norm1.bind(w / "attention_norm1", D, cfg.norm_eps);
  attention_norm2.bind(w / "attention_norm2", D, cfg.norm_eps);
  ffn_norm1.bind(w / "ffn_norm1", D, cfg.norm_eps);
  ffn_norm2.bind(w / "ffn_norm2", D, cfg.norm_eps);
  w1.bind(w / "feed_forward" / "w1", D, cfg.ffn_dim(), false);
  w2.bind(w / "feed_forward" / "w2", cfg.ffn_dim(), D, false);
  w3.bind(w / "feed_forward" / "w3", D, cfg.ffn_dim(), false);
}

Tensor ZImageBlock::forward(const Tensor& x, const Tensor& adaln_input,
                            const std::vector<flux::Rope>& rope,
                            const parallel::TokenLayout& tokens) const {
  const Tensor one = Tensor::full({1}, 1.0f, x.dtype(), x.device());
  Tensor scale_msa, gate_msa, scale_mlp, gate_mlp;
  if (modulation) {
    const std::vector<Tensor> m = core::chunk(adaln(adaln_input), 4, 1);  // (B, D) each
    scale_msa = core::add(m[0], one).unsqueeze(1);                        // (B, 1, D)
    gate_msa = core::tanh(m[1]);                                           // (B, D)
    scale_mlp = core::add(m[2], one).unsqueeze(1);                        // (B, 1, D)
    gate_mlp = core::tanh(m[3]);                                           // (B, D)
  }
  Tensor h = attention_norm1(x);                // (B, n, D)
  if (modulation) h = core::mul(h, scale_msa);  // (B, n, D)
  Tensor q = split_heads(to_q(h), heads);       // (B, n, H, hd)
  Tensor k = split_heads(to_k(h), heads);       // (B, n, H, hd)
  Tensor v = split_heads(to_v(h), heads);       // (B, n, H, hd)
  if (norm_q.weight.defined()) {
    q = norm_q(q);  // (B, n, H, hd)
    k = norm_k(k);  // (B, n, H, hd)
  }
  q = rope_per_sample(q, rope);                                                 // (B, n, H, hd)
  k = rope_per_sample(k, rope);                                                 // (B, n, H, hd)
  Tensor a = attention_norm2(to_out(merge_heads(attend(q, k, v, tokens))));     // (B, n, D)
  Tensor out = modulation ? core::gated_add(x, gate_msa, a) : core::add(x, a);  // (B, n, D)
  Tensor f = ffn_norm1(out);                                                    // (B, n, D)
  if (modulation) f = core::mul(f, scale_mlp);                                  // (B, n, D)
  f = ffn_norm2(w2(core::mul(core::silu(w1(f)), w3(f))));                       // (B, n, D)
  return modulation ? core::gated_add(out, gate_mlp, f) : core::add(out, f);    // (B, n, D)
}

Tensor ZImageBlock::modulated_input(const Tensor& x, const Tensor& adaln_input) const {
  Tensor h = attention_norm1(x);  // (B, n, D)
  if (!modulation) return h;
  const Tensor one = Tensor::full({1}, 1.0f, x.dtype(), x.device());
  const Tensor m0 = core::chunk(adaln(adaln_input), 4, 1)[0];  // (B, D)
  return core::mul(h, core::add(m0, one).unsqueeze(1));        // (B, n, D)
}

// ---------------------------------------------------------------- model
ZImageTransformer2DModel::ZImageTransformer2DModel(const ZImageConfig& cfg,
                                                   const common::WeightProvider& weights,
                                                   const core::Placement& place)
    : cfg_(cfg), place_(place) {
  const WeightScope w(weights, "", place);
  const int64_t D = cfg.dim, p = cfg.patch_size;
  const std::string key = std::to_string(p) + "-" + std::to_string(cfg.f_patch_size);
  x_embedder_.bind(w / "all_x_embedder" / key, p * p * cfg.f_patch_size * cfg.in_channels, D);
  x_pad_token_ = w.vector("x_pad_token", {1, D});
  cap_pad_token_ = w.vector("cap_pad_token", {1, D});
  t_mlp0_.bind(w / "t_embedder" / "mlp" / "0", 256, 1024);
  t_mlp2_.bind(w / "t_embedder" / "mlp" / "2", 1024, cfg.adaln_dim());
  cap_norm_.bind(w / "cap_embedder" / "0", cfg.cap_feat_dim, cfg.norm_eps);
  cap_linear_.bind(w / "cap_embedder" / "1", cfg.cap_feat_dim, D);
  for (int64_t i = 0; i < cfg.n_refiner_layers; ++i) {
    noise_refiner_.emplace_back().bind(w / "noise_refiner" / static_cast<int>(i), cfg, true);
    context_refiner_.emplace_back().bind(w / "context_refiner" / static_cast<int>(i), cfg, false);
  }
  for (int64_t i = 0; i < cfg.n_layers; ++i) {
    layers_.emplace_back().bind(w / "layers" / static_cast<int>(i), cfg, true);
  }
  const WeightScope f = w / "all_final_layer" / key;
  final_adaln_.bind(f / "adaLN_modulation" / "1", cfg.adaln_dim(), D);
  final_linear_.bind(f / "linear", D, p * p * cfg.f_patch_size * cfg.in_channels);
}

NamedTensors ZImageTransformer2DModel::batch_list_inputs(const NamedTensors& inputs) {
  NamedTensors out;
  std::vector<Tensor> xs, caps;
  for (const auto& [name, t] : inputs) {
    if (name.rfind("x.", 0) == 0 || name.rfind("cap_feats.", 0) == 0) continue;
    out[name == "t" ? "timestep" : name] = t;
  }
  for (int i = 0;; ++i) {
    auto x = inputs.find("x." + std::to_string(i));
    if (x == inputs.end()) break;
    auto c = inputs.find("cap_feats." + std::to_string(i));
    PARADIT_CHECK(c != inputs.end(), kModel, ": forward input 'cap_feats.", i,
                  "' is missing (one caption per image x.", i, ")");
    common::check_input(x->second.ndim() == 4, x->second, "x." + std::to_string(i), kModel,
                        "[C, F, H, W]");
    common::check_input(c->second.ndim() == 2 && c->second.dim(0) > 0, c->second,
                        "cap_feats." + std::to_string(i), kModel, "[L, cap_feat_dim]");
    PARADIT_CHECK(xs.empty() || x->second.shape() == xs[0].squeeze(0).shape(), kModel, ": x.", i,
                  " ", x->second.str(), " differs from x.0 ", xs[0].squeeze(0).str(),
                  " (every image of a call must have the same size)");
    xs.push_back(x->second.unsqueeze(0));
    caps.push_back(c->second);
  }
  PARADIT_CHECK(!xs.empty(), kModel, ": forward input 'x.0' is missing");
  out["hidden_states"] = core::concat(xs, 0);  // (B, C, F, H, W)
  int64_t longest = 0;
  for (const Tensor& c : caps) longest = std::max(longest, c.dim(0));
  std::vector<Tensor> padded;
  std::vector<float> mask;
  for (const Tensor& c : caps) {
    std::vector<Tensor> parts{c};
    if (c.dim(0) < longest) parts.push_back(Tensor::zeros({longest - c.dim(0), c.dim(1)}));
    padded.push_back(core::concat(parts, 0).unsqueeze(0));  // (1, L, cap_dim)
    for (int64_t s = 0; s < longest; ++s) mask.push_back(s < c.dim(0) ? 1.0f : 0.0f);
  }
  out["encoder_hidden_states"] = core::concat(padded, 0);  // (B, L, cap_dim)
  out["encoder_attention_mask"] =
      Tensor::from_vector(mask, {static_cast<int64_t>(caps.size()), longest});  // (B, L)
  return out;
}

Tensor ZImageTransformer2DModel::forward(const NamedTensors& inputs) const {
  return forward(inputs, nullptr);
}

Tensor ZImageTransformer2DModel::forward(const NamedTensors& inputs,
                                         const parallel::SequenceContext* sp) const {
  const std::unique_ptr<TransformerPass> pass = begin_pass(inputs, sp, nullptr, true);
  run_layers(*pass, 0, num_layers());
  return end_pass(*pass);
}

// A pass's conditioning: the timestep embedding, the joint rows' rotary tables, the sizes.
struct ZImageTransformer2DModel::Pass : TransformerPass {
  Tensor temb;                         // (B, adaln_dim)
  std::vector<flux::Rope> joint_rope;  // (n_local, hd) per sample, or one for all
  int64_t batch = 0, F = 0, Ht = 0, Wt = 0, X = 0;
};

std::unique_ptr<TransformerPass> ZImageTransformer2DModel::begin_pass(
    const NamedTensors& inputs_in, const parallel::SequenceContext* sp,
    const parallel::PassPlan* plan, bool embed) const {
  PARADIT_CHECK(plan == nullptr, kModel, ": PipeFusion is not supported for this family");
  const NamedTensors inputs =
      inputs_in.count("x.0") != 0 ? batch_list_inputs(inputs_in) : inputs_in;
  const int64_t C = cfg_.in_channels, p = cfg_.patch_size, D = cfg_.dim;
  // ---- validate the inputs
  const Tensor hidden =
      common::require_input(inputs, "hidden_states", kModel, "[B, C, F, H, W] (or x.0, x.1 …)");
  common::check_input(
      hidden.ndim() == 5 && hidden.dim(1) == C && hidden.dim(3) % p == 0 && hidden.dim(4) % p == 0,
      hidden, "hidden_states", kModel,
      detail::concat("[B, ", C, ", F, H, W] with H, W multiples of ", p));
  const int64_t B = hidden.dim(0), F = hidden.dim(2), Ht = hidden.dim(3) / p,
                Wt = hidden.dim(4) / p;
  const Tensor caps = common::require_input(
      inputs, "encoder_hidden_states", kModel,
      detail::concat("[B, L, ", cfg_.cap_feat_dim, "] (or cap_feats.0, cap_feats.1 …)"));
  common::check_input(caps.ndim() == 3 && caps.dim(0) == B && caps.dim(2) == cfg_.cap_feat_dim,
                      caps, "encoder_hidden_states", kModel,
                      detail::concat("[", B, ", L, ", cfg_.cap_feat_dim, "]"));
  const Tensor timestep = inputs.count("timestep") != 0
                              ? common::require_input(inputs, "timestep", kModel, "[B]")
                              : common::require_input(inputs, "t", kModel, "[B]");
  std::vector<int64_t> cap_len(static_cast<size_t>(B), caps.dim(1));
  const Tensor cap_mask_in = common::optional_input(inputs, "encoder_attention_mask");
  if (cap_mask_in.defined()) {
    common::check_input(
        cap_mask_in.ndim() == 2 && cap_mask_in.dim(0) == B && cap_mask_in.dim(1) == caps.dim(1),
        cap_mask_in, "encoder_attention_mask", kModel,
        detail::concat("[", B, ", ", caps.dim(1), "]"));
    const std::vector<float> m = cap_mask_in.to_vector();
    for (int64_t b = 0; b < B; ++b) {
      cap_len[b] = 0;
      for (int64_t s = 0; s < caps.dim(1); ++s) cap_len[b] += m[b * caps.dim(1) + s] != 0 ? 1 : 0;
    }
  }
  std::vector<int64_t> cap_padded(cap_len.size());
  int64_t L = 0;  // the longest padded caption
  for (size_t b = 0; b < cap_len.size(); ++b) {
    PARADIT_CHECK(cap_len[b] > 0, kModel, ": caption ", b, " has no tokens");
    cap_padded[b] = round_up(cap_len[b], kSeqMultiple);
    L = std::max(L, cap_padded[b]);
  }
  const int64_t X = F * Ht * Wt, Xp = round_up(X, kSeqMultiple);

  // ---- timestep embedding
  const Tensor t = core::scale(common::batch_vector(timestep, B, "timestep", kModel),
                               static_cast<float>(cfg_.t_scale));  // (B)
  const Tensor temb = t_mlp2_(core::silu(t_mlp0_(place_.activation(
      common::get_timestep_embedding(t, 256, /*flip_sin_to_cos=*/true, 0.0)))));  // (B, adaln_dim)

  // ---- image tokens: patches, embedding, x_pad_token up to a multiple of 32
  std::vector<Tensor> patches;
  for (int64_t b = 0; b < B; ++b) {
    patches.push_back(patchify_image(place_.activation(hidden.select(0, b)), p)
                          .unsqueeze(0));  // (1, X, p·p·C), on the model's device
  }
  Tensor x = x_embedder_(core::concat(patches, 0));                             // (B, X, D)
  if (Xp > X) x = core::concat({x, repeat_token(x_pad_token_, B, Xp - X)}, 1);  // (B, Xp, D)

  // ---- caption tokens: embedding, cap_pad_token up to a multiple of 32, zero rows to L
  const Tensor c_emb = cap_linear_(cap_norm_(place_.activation(caps)));  // (B, L_in, D)
  std::vector<Tensor> cap_rows;
  std::vector<float> keep;
  bool masked = false;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = cap_len[b], np = cap_padded[b];
    std::vector<Tensor> parts{c_emb.slice(0, b, b + 1).slice(1, 0, n)};    // (1, n, D)
    if (np > n) parts.push_back(repeat_token(cap_pad_token_, 1, np - n));  // (1, np − n, D)
    if (L > np) {
      parts.push_back(Tensor::zeros({1, L - np, D}, c_emb.dtype(), c_emb.device()));  // (1, L−np, D)
    }
    cap_rows.push_back(core::concat(parts, 1));
    for (int64_t s = 0; s < L; ++s) keep.push_back(s < np ? 1.0f : 0.0f);
    masked = masked || np < L;
  }
  Tensor cap = core::concat(cap_rows, 0);                                         // (B, L, D)
  const Tensor cap_mask =
      masked ? Tensor::from_vector(keep, {B, L}, place_.device) : Tensor();  // (B, L) or {}

  // ---- rotary tables: captions (1 + k, 0, 0); image (padded caption + 1 + f, row, col), pads 0
  std::vector<std::array<int64_t, 3>> cap_pos;
  for (int64_t k = 0; k < L; ++k) cap_pos.push_back({1 + k, 0, 0});
  const auto on_device = [&](const flux::Rope& r) -> flux::Rope {
    return {r.cos.to_device(place_.device), r.sin.to_device(place_.device)};
  };
  const flux::Rope cap_rope = on_device(rope_rows(cap_pos, cfg_));  // (L, hd)
  // (Xp, hd) per sample, or one table when every caption pads to the same length
  const bool shared_table =
      std::all_of(cap_padded.begin(), cap_padded.end(), [&](int64_t n) { return n == L; });
  std::vector<flux::Rope> img_rope;
  for (int64_t b = 0; b < (shared_table ? 1 : B); ++b) {
    std::vector<std::array<int64_t, 3>> pos;
    for (int64_t f = 0; f < F; ++f) {
      for (int64_t r = 0; r < Ht; ++r) {
        for (int64_t c = 0; c < Wt; ++c) pos.push_back({cap_padded[b] + 1 + f, r, c});
      }
    }
    pos.resize(static_cast<size_t>(Xp), {0, 0, 0});
    img_rope.push_back(on_device(rope_rows(pos, cfg_)));
  }

  // ---- noise refiner over the image tokens (sequence-parallel blocks)
  const parallel::TokenLayout image_tokens =
      parallel::plan_tokens(B, 0, Xp, sp, /*text_first=*/false, nullptr, place_.device);
  std::vector<flux::Rope> img_rope_local;
  for (const flux::Rope& r : img_rope) {
    img_rope_local.push_back(
        {image_tokens.shard_image(r.cos, 0), image_tokens.shard_image(r.sin, 0)});
  }
  x = image_tokens.shard_image(x, 1);  // (B, Xp_local, D)
  for (const ZImageBlock& block : noise_refiner_) {
    x = block.forward(x, temb, img_rope_local, image_tokens);  // (B, Xp_local, D)
  }

  // ---- context refiner over the captions (short: whole on every rank)
  parallel::TokenLayout caption_tokens =
      parallel::plan_tokens(B, L, 0, nullptr, /*text_first=*/true);
  caption_tokens.text_key_mask = cap_mask;
  for (const ZImageBlock& block : context_refiner_) {
    cap = block.forward(cap, {}, {cap_rope}, caption_tokens);  // (B, L, D)
  }

  // ---- main layers over [image, caption]
  auto pass = std::make_unique<Pass>();
  parallel::TokenLayout& tokens = pass->tokens;
  tokens = parallel::plan_tokens(B, L, Xp, sp, /*text_first=*/false, nullptr, place_.device);
  tokens.text_key_mask = cap_mask;
  for (const flux::Rope& r : img_rope_local) {
    pass->joint_rope.push_back(
        {core::concat({r.cos, tokens.shard_text(cap_rope.cos, 0)}, 0),
         core::concat({r.sin, tokens.shard_text(cap_rope.sin, 0)}, 0)});  // (n_local, hd)
  }
  if (embed) {
    pass->streams = {
        core::concat({x, tokens.shard_text(cap, 1)}, 1)};  // (B, Xp_local + L_local, D)
  }
  pass->temb = temb;
  pass->batch = B;
  pass->F = F;
  pass->Ht = Ht;
  pass->Wt = Wt;
  pass->X = X;
  return pass;
}

void ZImageTransformer2DModel::run_layers(TransformerPass& pass, int64_t begin, int64_t end) const {
  const Pass& ps = static_cast<const Pass&>(pass);
  Tensor joint = pass.streams.at(0);  // (B, n_local, D)
  for (int64_t i = begin; i < end; ++i) {
    joint = layers_[static_cast<size_t>(i)].forward(joint, ps.temb, ps.joint_rope,
                                                    ps.tokens);  // (B, n_local, D)
  }
  pass.streams = {joint};
}

Tensor ZImageTransformer2DModel::end_pass(TransformerPass& pass) const {
  const Pass& ps = static_cast<const Pass&>(pass);
  const int64_t C = cfg_.in_channels, p = cfg_.patch_size;
  // ---- final layer on the image rows, then the whole image back
  const Tensor one = Tensor::full({1}, 1.0f, place_.activation_dtype(), place_.device);
  const Tensor scale = core::add(final_adaln_(core::silu(ps.temb)), one).unsqueeze(1);  // (B, 1, D)
  Tensor out = pass.streams.at(0).slice(1, 0, ps.tokens.local_image);           // (B, Xp_l, D)
  out = final_linear_(core::mul(core::layer_norm(out, {}, {}, 1e-6f), scale));  // (B, Xp_l, ppC)
  out = ps.tokens.gather_image(out, 1).slice(1, 0, ps.X);                       // (B, X, p·p·C)
  std::vector<Tensor> images;
  for (int64_t b = 0; b < ps.batch; ++b) {
    images.push_back(unpatchify_image(out.select(0, b), ps.F, ps.Ht, ps.Wt, p, C).unsqueeze(0));
  }
  return core::concat(images, 0);  // (B, C, F, H, W)
}

CacheProbe ZImageTransformer2DModel::teacache_probe(const TransformerPass& pass) const {
  const Pass& ps = static_cast<const Pass&>(pass);
  return {layers_.front().modulated_input(image_hidden(pass), ps.temb), true};  // (B, Xp_l, D)
}

std::unique_ptr<Transformer> make_z_image_transformer(const io::Config& config,
                                                      const common::WeightProvider& weights,
                                                      const core::Placement& place) {
  return std::make_unique<ZImageTransformer2DModel>(ZImageConfig::from(config), weights,
                                                    place);
}

}  // namespace paradit::models::z_image
