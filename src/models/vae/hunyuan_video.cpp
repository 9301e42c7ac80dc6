// AutoencoderKLHunyuanVideo: config parsing, weight binding by diffusers names, the encoder and
// decoder forwards and diffusers' temporal tiling.
#include "models/vae/hunyuan_video.h"

#include <algorithm>
#include <cmath>

#include "models/vae/kl_common.h"

namespace paradit::models::vae {

using common::WeightScope;
using core::Tensor;

namespace {

std::string str(const Tensor& t) { return t.defined() ? t.str() : std::string("undefined"); }

int log2_exact(int64_t v) {
  int n = 0;
  while ((int64_t{1} << n) < v) ++n;
  return (int64_t{1} << n) == v ? n : -1;
}

// The resampling of block i (encoder or decoder: the same rule with temporal ratio 4), as
// diffusers' Encoder3D/Decoder3D decide it.
struct Resampling {
  bool spatial = false, temporal = false;
};
Resampling block_resampling(const AutoencoderKLHunyuanVideoConfig& c, size_t i) {
  const size_t n = c.block_out_channels.size();
  const int spatial_layers = log2_exact(c.spatial_compression_ratio);
  const int time_layers = log2_exact(c.temporal_compression_ratio);
  const bool final_block = i + 1 == n;
  Resampling r;
  r.spatial = static_cast<int64_t>(i) < spatial_layers;
  r.temporal = static_cast<int64_t>(i) >= static_cast<int64_t>(n) - 1 - time_layers && !final_block;
  return r;
}

// diffusers' blend_t, in place on b: the first `extent` frames of b fade in over the last
// `extent` frames of a. Weights are Python floats, applied in f32 as torch does.
void blend_frames(const Tensor& a, Tensor& b, int64_t extent) {
  extent = std::min({a.dim(2), b.dim(2), extent});
  const int64_t Ta = a.dim(2);
  for (int64_t x = 0; x < extent; ++x) {
    const float wa = static_cast<float>(1.0 - static_cast<double>(x) / extent);
    const float wb = static_cast<float>(static_cast<double>(x) / extent);
    Tensor frame = b.slice(2, x, x + 1);  // (N, C, 1, H, W), a view into b
    frame.copy_from(core::lincomb({{wa, a.slice(2, Ta - extent + x, Ta - extent + x + 1)},
                                   {wb, frame}}));  // a·wa + b·wb
  }
}

// Frames [begin, min(end, T)) of x as a new contiguous tensor.
Tensor frames(const Tensor& x, int64_t begin, int64_t end) {
  return x.slice(2, begin, std::min(end, x.dim(2))).clone();
}

}  // namespace

// ---------------------------------------------------------------- config

AutoencoderKLHunyuanVideoConfig AutoencoderKLHunyuanVideoConfig::from(const io::Config& config) {
  AutoencoderKLHunyuanVideoConfig c;
  const std::string& where = config.where();
  const std::string cls = config.class_name();
  PARADIT_CHECK(cls.empty() || cls == "AutoencoderKLHunyuanVideo", where, ": _class_name '", cls,
                "' is not supported (expected AutoencoderKLHunyuanVideo)");
  c.in_channels = config.get_int("in_channels", c.in_channels);
  c.out_channels = config.get_int("out_channels", c.out_channels);
  c.latent_channels = config.get_int("latent_channels", c.latent_channels);
  c.block_out_channels = config.get_int_list("block_out_channels", c.block_out_channels);
  c.layers_per_block = config.get_int("layers_per_block", c.layers_per_block);
  c.act_fn = config.get_string("act_fn", c.act_fn);
  c.norm_num_groups = config.get_int("norm_num_groups", c.norm_num_groups);
  c.scaling_factor = config.get_float("scaling_factor", c.scaling_factor);
  c.spatial_compression_ratio =
      config.get_int("spatial_compression_ratio", c.spatial_compression_ratio);
  c.temporal_compression_ratio =
      config.get_int("temporal_compression_ratio", c.temporal_compression_ratio);
  c.mid_block_add_attention = config.get_bool("mid_block_add_attention", c.mid_block_add_attention);

  const size_t blocks = c.block_out_channels.size();
  PARADIT_CHECK(blocks >= 1 && blocks <= 8, where, ": block_out_channels has ", blocks,
                " entries (expected 1 to 8)");
  const std::vector<std::string> down = string_list(
      config, "down_block_types", std::vector<std::string>(blocks, "HunyuanVideoDownBlock3D"));
  const std::vector<std::string> up = string_list(
      config, "up_block_types", std::vector<std::string>(blocks, "HunyuanVideoUpBlock3D"));
  PARADIT_CHECK(down.size() == blocks && up.size() == blocks, where, ": down_block_types has ",
                down.size(), " and up_block_types ", up.size(), " entries, block_out_channels has ",
                blocks);
  for (const auto& t : down) {
    PARADIT_CHECK(t == "HunyuanVideoDownBlock3D", where, ": down block type '", t,
                  "' is not supported (expected HunyuanVideoDownBlock3D)");
  }
  for (const auto& t : up) {
    PARADIT_CHECK(t == "HunyuanVideoUpBlock3D", where, ": up block type '", t,
                  "' is not supported (expected HunyuanVideoUpBlock3D)");
  }
  // diffusers' decoder supports only temporal ratio 4.
  PARADIT_CHECK(c.temporal_compression_ratio == 4, where, ": temporal_compression_ratio ",
                c.temporal_compression_ratio, " is not supported (expected 4)");
  PARADIT_CHECK(log2_exact(c.spatial_compression_ratio) >= 0, where, ": spatial_compression_ratio ",
                c.spatial_compression_ratio, " is not a power of two");
  // The blocks must give the ratios the config states (the pipelines size latents by them).
  int64_t s = 1, t = 1;
  for (size_t i = 0; i < blocks; ++i) {
    const Resampling r = block_resampling(c, i);
    s *= r.spatial ? 2 : 1;
    t *= r.temporal ? 2 : 1;
  }
  PARADIT_CHECK(s == c.spatial_compression_ratio && t == c.temporal_compression_ratio, where, ": ",
                blocks, " blocks resample by ", s, " in space and ", t,
                " in time, but the config states spatial_compression_ratio ",
                c.spatial_compression_ratio, " and temporal_compression_ratio ",
                c.temporal_compression_ratio);
  check_kl_config(c, where);
  return c;
}

// ---------------------------------------------------------------- modules

void HunyuanCausalConv3d::bind(const WeightScope& w, int64_t in, int64_t out, int64_t kernel,
                               int stride_t, int stride_hw) {
  weight = w.matrix("conv.weight", {out, in, kernel, kernel, kernel});
  bias = w.vector("conv.bias", {out});
  const int k = static_cast<int>(kernel);
  // diffusers' time_causal_padding (k//2, k//2, k//2, k//2, k − 1, 0) in F.pad order (W, H, T).
  opt = core::Conv3dOptions{};
  opt.stride_t = stride_t;
  opt.stride_h = opt.stride_w = stride_hw;
  opt.pad_left = opt.pad_right = k / 2;
  opt.pad_top = opt.pad_bottom = k / 2;
  opt.pad_front = k - 1;
  opt.pad_back = 0;
  opt.replicate = true;
}

void HunyuanGroupNorm::bind(const WeightScope& w, int64_t channels, int64_t groups_) {
  weight = w.vector("weight", {channels});
  bias = w.vector("bias", {channels});
  groups = static_cast<int>(groups_);
  eps = kNormEps;
}

void HunyuanResnetBlock::bind(const WeightScope& w, int64_t in, int64_t out, int64_t groups,
                              common::Activation act_) {
  act = act_;
  norm1.bind(w / "norm1", in, groups);
  conv1.bind(w / "conv1", in, out, 3);
  norm2.bind(w / "norm2", out, groups);
  conv2.bind(w / "conv2", out, out, 3);
  if (in != out) {
    conv_shortcut.emplace();
    conv_shortcut->bind(w / "conv_shortcut", in, out, 1);
  }
}

Tensor HunyuanResnetBlock::forward(const Tensor& x, const VideoSpatialOps& ops) const {
  const HunyuanCausalConv3d* shortcut = conv_shortcut ? &*conv_shortcut : nullptr;
  return resnet_forward(x, norm1, conv1, norm2, conv2, shortcut, act, ops);  // (N, out, T, H, W)
}

void HunyuanMidAttention::bind(const WeightScope& w, int64_t channels, int64_t groups) {
  group_norm.bind(w / "group_norm", channels, groups);
  to_q.bind(w / "to_q", channels, channels);
  to_k.bind(w / "to_k", channels, channels);
  to_v.bind(w / "to_v", channels, channels);
  to_out.bind(w / "to_out.0", channels, channels);
}

Tensor HunyuanMidAttention::forward(const Tensor& x, const VideoSpatialOps& ops) const {
  const int64_t N = x.dim(0), C = x.dim(1), T = x.dim(2), H = x.dim(3), W = x.dim(4);
  const int64_t HW = H * W;
  // GroupNorm of the (N, C, T·H·W) tokens as diffusers applies it = GroupNorm of the clip.
  Tensor h = group_norm(x, ops);                     // (N, C, T, H, W)
  h = h.reshape({N, C, T * HW}).permute({0, 2, 1});  // (N, THW, C)
  const Tensor q = to_q(h).unsqueeze(2);             // (N, THW, 1, C)
  // The keys and values of every row of each frame (this rank's rows are HW of them).
  const Tensor k = ops.gather_rows(to_k(h).reshape({N, T, HW, C}), 2);  // (N, T, HW_all, C)
  const Tensor v = ops.gather_rows(to_v(h).reshape({N, T, HW, C}), 2);  // (N, T, HW_all, C)
  const int64_t HW_all = k.dim(2);
  core::AttentionOptions options;
  options.scale = 1.0f / std::sqrt(static_cast<float>(C));  // one head of C channels
  // Frame-causal mask: the queries of frame f see the keys of frames 0..f, a prefix of the
  // frame-major token order, so each frame's queries attend to that prefix unmasked.
  std::vector<Tensor> parts;
  parts.reserve(static_cast<size_t>(T));
  for (int64_t f = 0; f < T; ++f) {
    const Tensor qf = q.slice(1, f * HW, (f + 1) * HW);                           // (N, HW, 1, C)
    const Tensor kf = k.slice(1, 0, f + 1).reshape({N, (f + 1) * HW_all, 1, C});  // (N, ., 1, C)
    const Tensor vf = v.slice(1, 0, f + 1).reshape({N, (f + 1) * HW_all, 1, C});  // (N, ., 1, C)
    parts.push_back(core::attention(qf, kf, vf, options).out);                    // (N, HW, 1, C)
  }
  h = (T == 1 ? parts[0] : core::concat(parts, 1)).reshape({N, T * HW, C});  // (N, THW, C)
  h = to_out(h);                                                             // (N, THW, C)
  h = h.permute({0, 2, 1}).reshape({N, C, T, H, W});                         // (N, C, T, H, W)
  // residual_connection; rescale_output_factor is 1.
  return core::add(h, x);  // (N, C, T, H, W)
}

void HunyuanMidBlock::bind(const WeightScope& w, int64_t channels, int64_t groups,
                           bool add_attention, common::Activation act) {
  resnet0.bind(w / "resnets" / 0, channels, channels, groups, act);
  if (add_attention) {
    attention.emplace();
    attention->bind(w / "attentions" / 0, channels, groups);
  }
  resnet1.bind(w / "resnets" / 1, channels, channels, groups, act);
}

Tensor HunyuanMidBlock::forward(const Tensor& x, const VideoSpatialOps& ops) const {
  Tensor h = resnet0.forward(x, ops);             // (N, C, T, H, W)
  if (attention) h = attention->forward(h, ops);  // (N, C, T, H, W)
  return resnet1.forward(h, ops);                 // (N, C, T, H, W)
}

Tensor HunyuanDownBlock::forward(const Tensor& x, const VideoSpatialOps& ops) const {
  Tensor h = x;
  for (const auto& r : resnets) h = r.forward(h, ops);  // (N, out, T, H, W)
  if (downsampler) h = (*downsampler)(h, ops);          // (N, out, T', H', W')
  return h;
}

Tensor HunyuanUpBlock::forward(const Tensor& x, const VideoSpatialOps& ops) const {
  Tensor h = x;
  for (const auto& r : resnets) h = r.forward(h, ops);  // (N, out, T, H, W)
  if (!upsampler) return h;
  const int64_t N = h.dim(0), C = h.dim(1), T = h.dim(2), H = h.dim(3), W = h.dim(4);
  // Nearest in space for every frame (the first frame's own interpolate is the same).
  Tensor up = factor_s == 1 ? h
                            : core::upsample_nearest2d(h.reshape({N, C * T, H, W}), factor_s)
                                  .reshape({N, C, T, H * factor_s, W * factor_s});  // (N,C,T,H',W')
  if (factor_t > 1 && T > 1) {
    // The first frame once, every later frame factor_t times.
    const int64_t Tu = 1 + factor_t * (T - 1);
    Tensor rep = Tensor::empty({N, C, Tu, up.dim(3), up.dim(4)}, up.dtype(),
                               up.device());  // (N, C, Tu, H', W')
    rep.slice(2, 0, 1).copy_from(up.slice(2, 0, 1));
    for (int64_t t = 1; t < T; ++t) {
      for (int64_t j = 0; j < factor_t; ++j) {
        const int64_t d = 1 + factor_t * (t - 1) + j;
        rep.slice(2, d, d + 1).copy_from(up.slice(2, t, t + 1));
      }
    }
    up = rep;
  }
  return (*upsampler)(up, ops);  // (N, out, Tu, H', W')
}

void HunyuanEncoder3D::bind(const WeightScope& w, const AutoencoderKLHunyuanVideoConfig& cfg) {
  act = common::activation_from_name(cfg.act_fn, "act_fn");
  const auto& ch = cfg.block_out_channels;
  const int64_t groups = cfg.norm_num_groups;
  conv_in.bind(w / "conv_in", cfg.in_channels, ch[0], 3);
  down_blocks.assign(ch.size(), HunyuanDownBlock{});
  int64_t out = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    const int64_t in = out;
    out = ch[i];
    const WeightScope bw = w / "down_blocks" / static_cast<int>(i);
    HunyuanDownBlock& block = down_blocks[i];
    block.resnets.resize(static_cast<size_t>(cfg.layers_per_block));
    for (size_t r = 0; r < block.resnets.size(); ++r) {
      block.resnets[r].bind(bw / "resnets" / static_cast<int>(r), r == 0 ? in : out, out, groups,
                            act);
    }
    const Resampling rs = block_resampling(cfg, i);
    if (rs.spatial || rs.temporal) {
      block.downsampler.emplace();
      block.downsampler->bind(bw / "downsamplers" / 0 / "conv", out, out, 3, rs.temporal ? 2 : 1,
                              rs.spatial ? 2 : 1);
    }
  }
  mid_block.bind(w / "mid_block", ch.back(), groups, cfg.mid_block_add_attention, act);
  conv_norm_out.bind(w / "conv_norm_out", ch.back(), groups);
  conv_out.bind(w / "conv_out", ch.back(), 2 * cfg.latent_channels, 3);
}

Tensor HunyuanEncoder3D::forward(const Tensor& x) const {
  Tensor h = conv_in(x);                               // (N, ch0, T, H, W)
  for (const auto& b : down_blocks) h = b.forward(h);  // (N, ch_i, T_i, H_i, W_i)
  h = mid_block.forward(h);                            // (N, ch_last, t, h, w)
  h = core::silu(conv_norm_out(h));                    // conv_act is always SiLU
  return conv_out(h);                                  // (N, 2·latent, t, h, w)
}

void HunyuanDecoder3D::bind(const WeightScope& w, const AutoencoderKLHunyuanVideoConfig& cfg) {
  act = common::activation_from_name(cfg.act_fn, "act_fn");
  const std::vector<int64_t> rev(cfg.block_out_channels.rbegin(), cfg.block_out_channels.rend());
  const int64_t groups = cfg.norm_num_groups;
  conv_in.bind(w / "conv_in", cfg.latent_channels, rev[0], 3);
  mid_block.bind(w / "mid_block", rev[0], groups, cfg.mid_block_add_attention, act);
  up_blocks.assign(rev.size(), HunyuanUpBlock{});
  int64_t out = rev[0];
  for (size_t i = 0; i < rev.size(); ++i) {
    const int64_t in = out;
    out = rev[i];
    const WeightScope bw = w / "up_blocks" / static_cast<int>(i);
    HunyuanUpBlock& block = up_blocks[i];
    block.resnets.resize(static_cast<size_t>(cfg.layers_per_block + 1));
    for (size_t r = 0; r < block.resnets.size(); ++r) {
      block.resnets[r].bind(bw / "resnets" / static_cast<int>(r), r == 0 ? in : out, out, groups,
                            act);
    }
    const Resampling rs = block_resampling(cfg, i);
    if (rs.spatial || rs.temporal) {
      block.upsampler.emplace();
      block.upsampler->bind(bw / "upsamplers" / 0 / "conv", out, out, 3);
      block.factor_t = rs.temporal ? 2 : 1;
      block.factor_s = rs.spatial ? 2 : 1;
    }
  }
  conv_norm_out.bind(w / "conv_norm_out", rev.back(), groups);
  conv_out.bind(w / "conv_out", rev.back(), cfg.out_channels, 3);
}

Tensor HunyuanDecoder3D::forward(const Tensor& z, const VideoSpatialOps& ops) const {
  Tensor h = conv_in(z, ops);                             // (N, ch_last, t, h, w)
  h = mid_block.forward(h, ops);                          // (N, ch_last, t, h, w)
  for (const auto& b : up_blocks) h = b.forward(h, ops);  // (N, ch_i, T_i, H_i, W_i)
  h = core::silu(conv_norm_out(h, ops));                  // conv_act is always SiLU
  return conv_out(h, ops);                                // (N, out_channels, T, H, W)
}

// ---------------------------------------------------------------- the model

AutoencoderKLHunyuanVideo::AutoencoderKLHunyuanVideo(const AutoencoderKLHunyuanVideoConfig& cfg,
                                                     const common::WeightProvider& weights,
                                                     const core::Placement& place)
    : cfg_(cfg) {
  PARADIT_CHECK(place.dtype == core::DType::F32 || place.dtype == core::DType::BF16 || (place.device == core::Device::CUDA && place.dtype == core::DType::F16),
                "AutoencoderKLHunyuanVideo: weight dtype ", core::dtype_name(place.dtype),
                " is not supported (expected F32 or BF16)");
  const WeightScope root(weights, "", place);
  encoder_.bind(root / "encoder", cfg_);
  decoder_.bind(root / "decoder", cfg_);
  const int64_t L = cfg_.latent_channels;
  quant_conv_weight_ = root.matrix("quant_conv.weight", {2 * L, 2 * L, 1, 1, 1});
  quant_conv_bias_ = root.vector("quant_conv.bias", {2 * L});
  post_quant_conv_weight_ = root.matrix("post_quant_conv.weight", {L, L, 1, 1, 1});
  post_quant_conv_bias_ = root.vector("post_quant_conv.bias", {L});
}

Tensor AutoencoderKLHunyuanVideo::decode_one_pass(const Tensor& z,
                                                  const VideoSpatialOps& ops) const {
  const Tensor h = core::conv3d(z, post_quant_conv_weight_, post_quant_conv_bias_, {});
  return decoder_.forward(h, ops);  // (N, out_channels, T, H, W)
}

Tensor AutoencoderKLHunyuanVideo::encode_one_pass(const Tensor& x) const {
  const Tensor h = encoder_.forward(x);                              // (N, 2L, t, h, w)
  return core::conv3d(h, quant_conv_weight_, quant_conv_bias_, {});  // (N, 2L, t, h, w)
}

Tensor AutoencoderKLHunyuanVideo::temporal_tiled_decode(const Tensor& z,
                                                        const VideoSpatialOps& ops) const {
  const int64_t t = z.dim(2);
  const int64_t r = cfg_.temporal_compression_ratio;
  const int64_t sample_frames = (t - 1) * r + 1;
  const int64_t min_sample = tiling_.tile_sample_min_num_frames;
  const int64_t stride_sample = tiling_.tile_sample_stride_num_frames;
  const int64_t min_latent = min_sample / r, stride_latent = stride_sample / r;
  const int64_t blend = min_sample - stride_sample;
  // Overlapping tiles of min_latent + 1 latent frames every stride_latent; a later tile drops
  // its first decoded frame (it repeats the previous tile's last).
  std::vector<Tensor> row;
  for (int64_t i = 0; i < t; i += stride_latent) {
    Tensor dec = decode_one_pass(frames(z, i, i + min_latent + 1), ops);  // (N, C, T_i, H, W)
    row.push_back(i > 0 ? frames(dec, 1, dec.dim(2)) : dec);
  }
  std::vector<Tensor> parts;
  for (size_t k = 0; k < row.size(); ++k) {
    if (k > 0) blend_frames(row[k - 1], row[k], blend);  // in place, as diffusers' blend_t
    const int64_t keep = k > 0 ? stride_sample : stride_sample + 1;
    parts.push_back(row[k].slice(2, 0, std::min(keep, row[k].dim(2))));
  }
  const Tensor all = core::concat(parts, 2);
  return frames(all, 0, sample_frames);  // (N, C, 1 + 4(t − 1), H, W)
}

Tensor AutoencoderKLHunyuanVideo::temporal_tiled_encode(const Tensor& x) const {
  const int64_t F = x.dim(2);
  const int64_t r = cfg_.temporal_compression_ratio;
  const int64_t latent_frames = (F - 1) / r + 1;
  const int64_t min_sample = tiling_.tile_sample_min_num_frames;
  const int64_t stride_sample = tiling_.tile_sample_stride_num_frames;
  const int64_t min_latent = min_sample / r, stride_latent = stride_sample / r;
  const int64_t blend = min_latent - stride_latent;
  std::vector<Tensor> row;
  for (int64_t i = 0; i < F; i += stride_sample) {
    Tensor enc = encode_one_pass(frames(x, i, i + min_sample + 1));  // (N, 2L, t_i, h, w)
    row.push_back(i > 0 ? frames(enc, 1, enc.dim(2)) : enc);
  }
  std::vector<Tensor> parts;
  for (size_t k = 0; k < row.size(); ++k) {
    if (k > 0) blend_frames(row[k - 1], row[k], blend);
    const int64_t keep = k > 0 ? stride_latent : stride_latent + 1;
    parts.push_back(row[k].slice(2, 0, std::min(keep, row[k].dim(2))));
  }
  const Tensor all = core::concat(parts, 2);
  return frames(all, 0, latent_frames);  // (N, 2L, 1 + (F − 1)/4, h, w)
}

Tensor AutoencoderKLHunyuanVideo::decode(const Tensor& z, const VideoSpatialOps& ops) const {
  PARADIT_CHECK(z.defined() && z.ndim() == 5 && z.dim(1) == cfg_.latent_channels && z.dim(2) >= 1 &&
                    z.dim(3) >= 1 && z.dim(4) >= 1,
                "AutoencoderKLHunyuanVideo decode: latents ", str(z), " must be (N, ",
                cfg_.latent_channels, ", frames, h, w)");
  const Tensor h = z.dtype() == core::DType::F32 ? z : z.to(core::DType::F32);
  const int64_t min_latent = tiling_.tile_sample_min_num_frames / cfg_.temporal_compression_ratio;
  if (tiling_.framewise_decoding && h.dim(2) > min_latent) return temporal_tiled_decode(h, ops);
  return decode_one_pass(h, ops);
}

HunyuanVideoLatentDistribution AutoencoderKLHunyuanVideo::encode(const Tensor& x) const {
  const int64_t f = cfg_.spatial_compression_ratio;
  PARADIT_CHECK(x.defined() && x.ndim() == 5 && x.dim(1) == cfg_.in_channels && x.dim(2) >= 1,
                "AutoencoderKLHunyuanVideo encode: video ", str(x), " must be (N, ",
                cfg_.in_channels, ", frames, H, W)");
  PARADIT_CHECK(x.dim(3) >= f && x.dim(4) >= f && x.dim(3) % f == 0 && x.dim(4) % f == 0,
                "AutoencoderKLHunyuanVideo encode: frame size ", x.dim(3), "x", x.dim(4),
                " is not a positive multiple of the VAE spatial factor ", f);
  const Tensor v = x.dtype() == core::DType::F32 ? x : x.to(core::DType::F32);
  const Tensor h = tiling_.framewise_encoding && v.dim(2) > tiling_.tile_sample_min_num_frames
                       ? temporal_tiled_encode(v)
                       : encode_one_pass(v);  // (N, 2L, t, h, w)
  const int64_t L = cfg_.latent_channels;
  HunyuanVideoLatentDistribution dist;
  dist.mean = h.slice(1, 0, L).contiguous();        // (N, L, t, h, w)
  dist.std = std_from_logvar(h.slice(1, L, 2 * L));  // (N, L, t, h, w)
  return dist;
}

Tensor AutoencoderKLHunyuanVideo::unscale_latents(const Tensor& latents) const {
  const float s = static_cast<float>(cfg_.scaling_factor);
  return core::affine(latents.to(core::DType::F32), 1, core::AffineKind::kDivAdd, {0.0f},
                      {s});  // same shape: latents / s
}

std::unique_ptr<AutoencoderKLHunyuanVideo> load_autoencoder_kl_hunyuan_video(
    const std::filesystem::path& dir, const core::Placement& place) {
  return load_vae<AutoencoderKLHunyuanVideo, AutoencoderKLHunyuanVideoConfig>(dir, place);
}

}  // namespace paradit::models::vae
