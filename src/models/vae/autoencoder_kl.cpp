// AutoencoderKL: config parsing, weight binding by diffusers names, encoder and decoder forwards.
#include "models/vae/autoencoder_kl.h"

#include <algorithm>
#include <cmath>

#include "models/vae/kl_common.h"

namespace paradit::models::vae {

using common::WeightScope;
using core::Tensor;

// ---------------------------------------------------------------- config

AutoencoderKLConfig AutoencoderKLConfig::from(const io::Config& config) {
  AutoencoderKLConfig c;
  const std::string& where = config.where();
  const std::string cls = config.class_name();
  // AutoencoderKLFlux2 has the same encoder and decoder (its BatchNorm statistics are the
  // FLUX.2 pipelines' latent normalisation).
  PARADIT_CHECK(cls.empty() || cls == "AutoencoderKL" || cls == "AutoencoderKLFlux2", where,
                ": _class_name '", cls,
                "' is not supported (expected AutoencoderKL or AutoencoderKLFlux2)");
  c.in_channels = config.get_int("in_channels", c.in_channels);
  c.out_channels = config.get_int("out_channels", c.out_channels);
  c.down_block_types = string_list(config, "down_block_types", c.down_block_types);
  c.up_block_types = string_list(config, "up_block_types", c.up_block_types);
  c.block_out_channels = config.get_int_list("block_out_channels", c.block_out_channels);
  c.layers_per_block = config.get_int("layers_per_block", c.layers_per_block);
  c.act_fn = config.get_string("act_fn", c.act_fn);
  c.latent_channels = config.get_int("latent_channels", c.latent_channels);
  c.norm_num_groups = config.get_int("norm_num_groups", c.norm_num_groups);
  c.scaling_factor = config.get_float("scaling_factor", c.scaling_factor);
  if (config.has("shift_factor")) c.shift_factor = config.get_float("shift_factor");
  c.use_quant_conv = config.get_bool("use_quant_conv", c.use_quant_conv);
  c.use_post_quant_conv = config.get_bool("use_post_quant_conv", c.use_post_quant_conv);
  c.mid_block_add_attention = config.get_bool("mid_block_add_attention", c.mid_block_add_attention);

  const size_t blocks = c.block_out_channels.size();
  PARADIT_CHECK(blocks >= 1 && blocks <= 8, where, ": block_out_channels has ", blocks,
                " entries (expected 1 to 8)");
  PARADIT_CHECK(c.down_block_types.size() == blocks, where, ": down_block_types has ",
                c.down_block_types.size(), " entries, block_out_channels has ", blocks);
  PARADIT_CHECK(c.up_block_types.size() == blocks, where, ": up_block_types has ",
                c.up_block_types.size(), " entries, block_out_channels has ", blocks);
  for (const auto& t : c.down_block_types) {
    PARADIT_CHECK(t == "DownEncoderBlock2D", where, ": down block type '", t,
                  "' is not supported (expected DownEncoderBlock2D)");
  }
  for (const auto& t : c.up_block_types) {
    PARADIT_CHECK(t == "UpDecoderBlock2D", where, ": up block type '", t,
                  "' is not supported (expected UpDecoderBlock2D)");
  }
  check_kl_config(c, where);
  return c;
}

// ---------------------------------------------------------------- modules

void Conv2d::bind(const WeightScope& w, int64_t in, int64_t out, int64_t kernel,
                  const core::Conv2dOptions& options) {
  weight = w.matrix("weight", {out, in, kernel, kernel});
  bias = w.vector("bias", {out});
  opt = options;
}

void GroupNorm::bind(const WeightScope& w, int64_t channels, int64_t groups_, float eps_) {
  weight = w.vector("weight", {channels});
  bias = w.vector("bias", {channels});
  groups = static_cast<int>(groups_);
  eps = eps_;
}

void ResnetBlock2D::bind(const WeightScope& w, int64_t in, int64_t out, int64_t groups, float eps,
                         common::Activation act_) {
  act = act_;
  norm1.bind(w / "norm1", in, groups, eps);
  conv1.bind(w / "conv1", in, out, 3, core::Conv2dOptions::same(1, 1));
  norm2.bind(w / "norm2", out, groups, eps);
  conv2.bind(w / "conv2", out, out, 3, core::Conv2dOptions::same(1, 1));
  if (in != out) conv_shortcut.bind(w / "conv_shortcut", in, out, 1, core::Conv2dOptions{});
}

Tensor ResnetBlock2D::forward(const Tensor& x, const SpatialOps& ops) const {
  // conv_shortcut (1×1) only where the channel count changes.
  const Conv2d* shortcut = conv_shortcut.weight.defined() ? &conv_shortcut : nullptr;
  return resnet_forward(x, norm1, conv1, norm2, conv2, shortcut, act, ops);  // (N, out, H, W)
}

void MidBlockAttention::bind(const WeightScope& w, int64_t channels_, int64_t groups, float eps) {
  channels = channels_;
  group_norm.bind(w / "group_norm", channels, groups, eps);
  // Older diffusers checkpoints (from its deprecated AttentionBlock) name these projections
  // query/key/value/proj_attn; diffusers renames them on load, and so do we. A weight
  // generator has neither name, so it gets the current ones.
  const bool legacy = !w.has("to_q.weight") && w.has("query.weight");
  to_q.bind(w / (legacy ? "query" : "to_q"), channels, channels);
  to_k.bind(w / (legacy ? "key" : "to_k"), channels, channels);
  to_v.bind(w / (legacy ? "value" : "to_v"), channels, channels);
  to_out.bind(w / (legacy ? "proj_attn" : "to_out.0"), channels, channels);
}

Tensor MidBlockAttention::forward(const Tensor& x, const SpatialOps& ops) const {
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  // GroupNorm over (N, C, H·W) as diffusers applies it equals GroupNorm over the image.
  Tensor h = group_norm(x, ops);                                // (N, C, H, W)
  h = h.reshape({N, C, H * W}).permute({0, 2, 1});              // (N, HW, C)
  const Tensor q = to_q(h).unsqueeze(2);                        // (N, HW, 1, C)
  const Tensor k = to_k(h).unsqueeze(2);                        // (N, HW, 1, C)
  const Tensor v = to_v(h).unsqueeze(2);                        // (N, HW, 1, C)
  const float scale = 1.0f / std::sqrt(static_cast<float>(C));  // one head of C channels
  h = ops.attention(q, k, v, scale).reshape({N, H * W, C});     // (N, HW, C)
  h = to_out(h);                                                // (N, HW, C)
  h = h.permute({0, 2, 1}).reshape({N, C, H, W});               // (N, C, H, W)
  // residual_connection; rescale_output_factor is 1.
  return core::add(h, x);  // (N, C, H, W)
}

void UNetMidBlock2D::bind(const WeightScope& w, int64_t channels, int64_t groups,
                          bool add_attention, common::Activation act) {
  resnets.resize(2);
  resnets[0].bind(w / "resnets" / 0, channels, channels, groups, kNormEps, act);
  if (add_attention) {
    attention.emplace();
    attention->bind(w / "attentions" / 0, channels, groups, kNormEps);
  }
  resnets[1].bind(w / "resnets" / 1, channels, channels, groups, kNormEps, act);
}

Tensor UNetMidBlock2D::forward(const Tensor& x, const SpatialOps& ops) const {
  Tensor h = resnets[0].forward(x, ops);          // (N, C, H, W)
  if (attention) h = attention->forward(h, ops);  // (N, C, H, W)
  return resnets[1].forward(h, ops);              // (N, C, H, W)
}

void DownEncoderBlock2D::bind(const WeightScope& w, int64_t in, int64_t out, int64_t layers,
                              bool add_downsample, int64_t groups, common::Activation act) {
  resnets.resize(static_cast<size_t>(layers));
  for (int64_t i = 0; i < layers; ++i) {
    resnets[i].bind(w / "resnets" / static_cast<int>(i), i == 0 ? in : out, out, groups, kNormEps,
                    act);
  }
  if (add_downsample) {
    // Downsample2D(padding=0): F.pad(x, (0, 1, 0, 1)) then a stride-2 3×3 conv.
    core::Conv2dOptions opt;
    opt.stride_h = opt.stride_w = 2;
    opt.pad_top = opt.pad_left = 0;
    opt.pad_bottom = opt.pad_right = 1;
    downsampler.emplace();
    downsampler->bind(w / "downsamplers" / 0 / "conv", out, out, 3, opt);
  }
}

Tensor DownEncoderBlock2D::forward(const Tensor& x, const SpatialOps& ops) const {
  Tensor h = x;
  for (const auto& r : resnets) h = r.forward(h, ops);  // (N, out, H, W)
  if (downsampler) h = (*downsampler)(h, ops);          // (N, out, H/2, W/2)
  return h;
}

void UpDecoderBlock2D::bind(const WeightScope& w, int64_t in, int64_t out, int64_t layers,
                            bool add_upsample, int64_t groups, common::Activation act) {
  resnets.resize(static_cast<size_t>(layers));
  for (int64_t i = 0; i < layers; ++i) {
    resnets[i].bind(w / "resnets" / static_cast<int>(i), i == 0 ? in : out, out, groups, kNormEps,
                    act);
  }
  if (add_upsample) {
    upsampler.emplace();
    upsampler->bind(w / "upsamplers" / 0 / "conv", out, out, 3, core::Conv2dOptions::same(1, 1));
  }
}

Tensor UpDecoderBlock2D::forward(const Tensor& x, const SpatialOps& ops) const {
  Tensor h = x;
  for (const auto& r : resnets) h = r.forward(h, ops);  // (N, out, H, W)
  if (upsampler) {
    h = core::upsample_nearest2d(h, 2);  // (N, out, 2H, 2W)
    h = (*upsampler)(h, ops);            // (N, out, 2H, 2W)
  }
  return h;
}

void Encoder::bind(const WeightScope& w, const AutoencoderKLConfig& cfg) {
  act = common::activation_from_name(cfg.act_fn, "act_fn");
  const auto& ch = cfg.block_out_channels;
  const int64_t groups = cfg.norm_num_groups;
  conv_in.bind(w / "conv_in", cfg.in_channels, ch[0], 3, core::Conv2dOptions::same(1, 1));
  down_blocks.resize(ch.size());
  int64_t out = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    const int64_t in = out;
    out = ch[i];
    const bool last = i + 1 == ch.size();
    down_blocks[i].bind(w / "down_blocks" / static_cast<int>(i), in, out, cfg.layers_per_block,
                        !last, groups, act);
  }
  mid_block.bind(w / "mid_block", ch.back(), groups, cfg.mid_block_add_attention, act);
  conv_norm_out.bind(w / "conv_norm_out", ch.back(), groups, kNormEps);
  conv_out.bind(w / "conv_out", ch.back(), 2 * cfg.latent_channels, 3,
                core::Conv2dOptions::same(1, 1));
}

Tensor Encoder::forward(const Tensor& x, const SpatialOps& ops) const {
  Tensor h = conv_in(x, ops);                               // (N, ch0, H, W)
  for (const auto& b : down_blocks) h = b.forward(h, ops);  // (N, ch_i, H/2^i, W/2^i)
  h = mid_block.forward(h, ops);                            // (N, ch_last, h, w)
  h = conv_norm_out(h, ops);                                // (N, ch_last, h, w)
  h = common::activate(h, act);                             // (N, ch_last, h, w)
  return conv_out(h, ops);                                  // (N, 2·latent, h, w)
}

void Decoder::bind(const WeightScope& w, const AutoencoderKLConfig& cfg) {
  act = common::activation_from_name(cfg.act_fn, "act_fn");
  const std::vector<int64_t> rev(cfg.block_out_channels.rbegin(), cfg.block_out_channels.rend());
  const int64_t groups = cfg.norm_num_groups;
  conv_in.bind(w / "conv_in", cfg.latent_channels, rev[0], 3, core::Conv2dOptions::same(1, 1));
  mid_block.bind(w / "mid_block", rev[0], groups, cfg.mid_block_add_attention, act);
  up_blocks.resize(rev.size());
  int64_t out = rev[0];
  for (size_t i = 0; i < rev.size(); ++i) {
    const int64_t in = out;
    out = rev[i];
    const bool last = i + 1 == rev.size();
    up_blocks[i].bind(w / "up_blocks" / static_cast<int>(i), in, out, cfg.layers_per_block + 1,
                      !last, groups, act);
  }
  conv_norm_out.bind(w / "conv_norm_out", rev.back(), groups, kNormEps);
  conv_out.bind(w / "conv_out", rev.back(), cfg.out_channels, 3, core::Conv2dOptions::same(1, 1));
}

Tensor Decoder::forward(const Tensor& z, const SpatialOps& ops) const {
  Tensor h = conv_in(z, ops);                             // (N, ch_last, h, w)
  h = mid_block.forward(h, ops);                          // (N, ch_last, h, w)
  for (const auto& b : up_blocks) h = b.forward(h, ops);  // (N, ch_i, h·2^i, w·2^i)
  h = conv_norm_out(h, ops);                              // (N, ch0, H, W)
  h = common::activate(h, act);                           // (N, ch0, H, W)
  return conv_out(h, ops);                                // (N, out_channels, H, W)
}

// ---------------------------------------------------------------- the model

AutoencoderKL::AutoencoderKL(const AutoencoderKLConfig& cfg, const common::WeightProvider& weights,
                             const core::Placement& place)
    : cfg_(cfg) {
  PARADIT_CHECK(place.dtype == core::DType::F32 || place.dtype == core::DType::BF16 || (place.device == core::Device::CUDA && place.dtype == core::DType::F16),
                "AutoencoderKL: weight dtype ", core::dtype_name(place.dtype),
                " is not supported (expected F32 or BF16)");
  const WeightScope root(weights, "", place);
  encoder_.bind(root / "encoder", cfg_);
  decoder_.bind(root / "decoder", cfg_);
  const int64_t L = cfg_.latent_channels;
  if (cfg_.use_quant_conv) {
    quant_conv_.emplace();
    quant_conv_->bind(root / "quant_conv", 2 * L, 2 * L, 1, core::Conv2dOptions{});
  }
  if (cfg_.use_post_quant_conv) {
    post_quant_conv_.emplace();
    post_quant_conv_->bind(root / "post_quant_conv", L, L, 1, core::Conv2dOptions{});
  }
}

Tensor AutoencoderKL::decode(const Tensor& z, const SpatialOps& ops) const {
  PARADIT_CHECK(z.defined() && z.ndim() == 4 && z.dim(1) == cfg_.latent_channels && z.dim(2) >= 1 &&
                    z.dim(3) >= 1,
                "AutoencoderKL decode: latents ", z.defined() ? z.str() : std::string("undefined"),
                " must be (N, ", cfg_.latent_channels, ", h, w)");
  Tensor h = z.dtype() == core::DType::F32 ? z : z.to(core::DType::F32);
  if (post_quant_conv_) h = (*post_quant_conv_)(h, ops);  // (N, latent, h, w)
  return decoder_.forward(h, ops);                        // (N, out_channels, h·f, w·f)
}

LatentDistribution AutoencoderKL::encode(const Tensor& x, const SpatialOps& ops) const {
  const int64_t f = cfg_.scale_factor();
  PARADIT_CHECK(x.defined() && x.ndim() == 4 && x.dim(1) == cfg_.in_channels, "AutoencoderKL ",
                "encode: image ", x.defined() ? x.str() : std::string("undefined"), " must be (N, ",
                cfg_.in_channels, ", H, W)");
  PARADIT_CHECK(x.dim(2) >= f && x.dim(3) >= f && x.dim(2) % f == 0 && x.dim(3) % f == 0,
                "AutoencoderKL encode: image size ", x.dim(2), "x", x.dim(3),
                " is not a positive multiple of the VAE scale factor ", f);
  Tensor h = x.dtype() == core::DType::F32 ? x : x.to(core::DType::F32);
  h = encoder_.forward(h, ops);                 // (N, 2·latent, H/f, W/f)
  if (quant_conv_) h = (*quant_conv_)(h, ops);  // (N, 2·latent, H/f, W/f)
  const int64_t L = cfg_.latent_channels;
  LatentDistribution dist;
  dist.mean = h.slice(1, 0, L).contiguous();        // (N, latent, H/f, W/f)
  dist.std = std_from_logvar(h.slice(1, L, 2 * L));  // (N, latent, H/f, W/f)
  return dist;
}

Tensor AutoencoderKL::unscale_latents(const Tensor& latents) const {
  const float s = static_cast<float>(cfg_.scaling_factor);
  const float shift = cfg_.shift_factor ? static_cast<float>(*cfg_.shift_factor) : 0.0f;
  // A division (not a product by 1/s) and a separate add, as torch computes them in f32.
  return core::affine(latents.to(core::DType::F32), 1, core::AffineKind::kDivAdd, {shift},
                      {s});  // same shape
}

Tensor AutoencoderKL::scale_latents(const Tensor& latents) const {
  const float s = static_cast<float>(cfg_.scaling_factor);
  const float shift = cfg_.shift_factor ? static_cast<float>(*cfg_.shift_factor) : 0.0f;
  return core::affine(latents.to(core::DType::F32), 1, core::AffineKind::kSubMul, {shift},
                      {s});  // same shape
}

std::unique_ptr<AutoencoderKL> load_autoencoder_kl(const std::filesystem::path& dir,
                                                   const core::Placement& place) {
  return load_vae<AutoencoderKL, AutoencoderKLConfig>(dir, place);
}

}  // namespace paradit::models::vae
