// AutoencoderKLWan: config parsing, weight binding by diffusers names, the chunked encoder and
// decoder forwards with their causal feature cache.
#include "models/vae/wan.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "models/vae/kl_common.h"

namespace paradit::models::vae {

using common::WeightScope;
using core::Tensor;

namespace {

// AutoencoderKLWan's default latents_mean / latents_std (Wan 2.1, 16 channels).
const std::vector<float> kWan21LatentsMean = {
    -0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,  -0.1517f, 1.5508f,
    0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
const std::vector<float> kWan21LatentsStd = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f,
                                             2.6052f, 2.0743f, 3.2687f, 2.1526f, 2.8652f, 1.5579f,
                                             1.6382f, 1.1253f, 2.8251f, 1.9160f};

// Frames diffusers' encode takes per chunk after the first (a single frame).
constexpr int64_t kEncodeChunk = 4;

std::string str(const Tensor& t) { return t.defined() ? t.str() : std::string("undefined"); }

// The last min(n, T) frames of x (N, C, T, H, W), as a copy: a cache must not keep a whole
// chunk alive.
Tensor last_frames(const Tensor& x, int64_t n) {
  const int64_t T = x.dim(2);
  return x.slice(2, std::max<int64_t>(T - n, 0), T).clone();
}

template <typename T>
std::vector<T> number_list(const io::Config& config, const std::string& key,
                           std::vector<T> fallback, const char* kind) {
  if (!config.has(key)) return fallback;
  const io::Json& v = config.json().at(key);
  PARADIT_CHECK(v.is_array(), config.where(), ": '", key, "' must be a list of ", kind, ", found ",
                v.type_name());
  std::vector<T> out;
  for (const auto& e : v) {
    if constexpr (std::is_same_v<T, bool>) {
      PARADIT_CHECK(e.is_boolean(), config.where(), ": '", key,
                    "' must be a list of booleans, found an element of type ", e.type_name());
      out.push_back(e.get<bool>());
    } else {
      PARADIT_CHECK(e.is_number(), config.where(), ": '", key, "' must be a list of ", kind,
                    ", found an element of type ", e.type_name());
      out.push_back(e.get<T>());
    }
  }
  return out;
}

// x = clamp(x, -1, 1).
void clamp_unit(Tensor& x) { x = core::clamp(x, -1.0f, 1.0f); }

// x: (N, 2C, T, H, W), the time_conv output of upsample3d → (N, C, 2T, H, W): frame 2t + j is
// channel block j at time t (diffusers' reshape to (N, 2, C, T, H, W) and stack on dim 3).
Tensor interleave_time(const Tensor& x) {
  const int64_t N = x.dim(0), C = x.dim(1) / 2, T = x.dim(2), H = x.dim(3), W = x.dim(4);
  const Tensor r = x.contiguous().reshape({N, 2, C, T, H * W});    // (N, 2, C, T, HW)
  return r.permute({0, 2, 3, 1, 4}).reshape({N, C, 2 * T, H, W});  // (N, C, 2T, H, W)
}

}  // namespace

// ---------------------------------------------------------------- config

AutoencoderKLWanConfig AutoencoderKLWanConfig::from(const io::Config& config) {
  AutoencoderKLWanConfig c;
  const std::string& where = config.where();
  const std::string cls = config.class_name();
  // AutoencoderKLQwenImage is the same VAE (same modules and names) with Qwen-Image's statistics.
  PARADIT_CHECK(cls.empty() || cls == "AutoencoderKLWan" || cls == "AutoencoderKLQwenImage", where,
                ": _class_name '", cls,
                "' is not supported (expected AutoencoderKLWan or AutoencoderKLQwenImage)");
  c.base_dim = config.get_int("base_dim", c.base_dim);
  c.decoder_base_dim = config.get_int("decoder_base_dim", 0);
  c.z_dim = config.get_int("z_dim", c.z_dim);
  c.dim_mult = config.get_int_list("dim_mult", c.dim_mult);
  c.num_res_blocks = config.get_int("num_res_blocks", c.num_res_blocks);
  c.attn_scales = number_list<double>(config, "attn_scales", {}, "numbers");
  c.temperal_downsample =
      number_list<bool>(config, "temperal_downsample", c.temperal_downsample, "booleans");
  c.in_channels = config.get_int("in_channels", c.in_channels);
  c.out_channels = config.get_int("out_channels", c.out_channels);
  c.scale_factor_temporal = config.get_int("scale_factor_temporal", c.scale_factor_temporal);
  c.scale_factor_spatial = config.get_int("scale_factor_spatial", c.scale_factor_spatial);
  c.latents_mean = number_list<float>(config, "latents_mean", kWan21LatentsMean, "numbers");
  c.latents_std = number_list<float>(config, "latents_std", kWan21LatentsStd, "numbers");

  // diffusers' WanEncoder3d inserts an attention block after each residual block at these
  // scales but then calls it with the cache arguments it does not take, so no checkpoint with
  // them runs there; the original Wan VAEs have none.
  PARADIT_CHECK(c.attn_scales.empty(), where, ": attn_scales ",
                config.json().at("attn_scales").dump(),
                " is not supported (expected []: diffusers cannot run encoder attention blocks)");
  PARADIT_CHECK(!config.get_bool("is_residual", false), where,
                ": is_residual true (the Wan 2.2 VAE layout) is not supported (expected false)");
  PARADIT_CHECK(!config.has("patch_size"), where, ": patch_size ",
                config.has("patch_size") ? config.json().at("patch_size").dump() : "",
                " is not supported (expected null)");
  PARADIT_CHECK(c.base_dim >= 1 && c.z_dim >= 1 && c.in_channels >= 1 && c.out_channels >= 1, where,
                ": base_dim ", c.base_dim, ", z_dim ", c.z_dim, ", in_channels ", c.in_channels,
                ", out_channels ", c.out_channels, " must be positive");
  PARADIT_CHECK(c.decoder_base_dim >= 0, where, ": decoder_base_dim ", c.decoder_base_dim,
                " must be positive or null");
  PARADIT_CHECK(c.dim_mult.size() >= 1 && c.dim_mult.size() <= 8, where, ": dim_mult has ",
                c.dim_mult.size(), " entries (expected 1 to 8)");
  for (int64_t m : c.dim_mult) {
    PARADIT_CHECK(m >= 1, where, ": dim_mult entry ", m, " must be positive");
  }
  PARADIT_CHECK(c.temperal_downsample.size() + 1 == c.dim_mult.size(), where,
                ": temperal_downsample has ", c.temperal_downsample.size(),
                " entries, expected len(dim_mult) − 1 = ", c.dim_mult.size() - 1);
  PARADIT_CHECK(c.num_res_blocks >= 1, where, ": num_res_blocks is ", c.num_res_blocks,
                " (expected at least 1)");
  // The decoder halves the channels in every upsampler and the next block expects that.
  const int64_t ddim = c.decoder_dim();
  for (size_t i = 0; i + 1 < c.dim_mult.size(); ++i) {
    const int64_t out = ddim * c.dim_mult[c.dim_mult.size() - 1 - i];
    PARADIT_CHECK(out % 2 == 0, where, ": decoder block ", i, " has ", out,
                  " channels; its upsampler halves them, so it must be even");
  }
  PARADIT_CHECK(c.latents_mean.size() == static_cast<size_t>(c.z_dim) &&
                    c.latents_std.size() == static_cast<size_t>(c.z_dim),
                where, ": latents_mean has ", c.latents_mean.size(), " and latents_std ",
                c.latents_std.size(), " values, expected z_dim = ", c.z_dim);
  for (float s : c.latents_std) {
    PARADIT_CHECK(s != 0.0f && std::isfinite(s), where, ": latents_std value ", s,
                  " must be finite and nonzero");
  }
  return c;
}

// ---------------------------------------------------------------- cache

WanCache::Slot& WanCache::next() {
  if (next_ == slots_.size()) slots_.emplace_back();
  return slots_[next_++];
}

// ---------------------------------------------------------------- modules

void WanCausalConv3d::bind(const WeightScope& w, int64_t in, int64_t out, int64_t kt, int64_t kh,
                           int64_t kw, int pt, int ph, int pw, int st) {
  weight = w.matrix("weight", {out, in, kt, kh, kw});
  bias = w.vector("bias", {out});
  pad_t = pt;
  pad_h = ph;
  pad_w = pw;
  stride_t = st;
}

Tensor WanCausalConv3d::operator()(const Tensor& x, const Tensor& cache,
                                   const VideoSpatialOps& ops) const {
  core::Conv3dOptions opt;
  opt.stride_t = stride_t;
  opt.pad_front = 2 * pad_t;
  opt.pad_top = opt.pad_bottom = pad_h;
  opt.pad_left = opt.pad_right = pad_w;
  if (cache.defined() && pad_t > 0) {
    // The cached frames stand in for as many front padding frames.
    opt.pad_front = std::max<int>(0, 2 * pad_t - static_cast<int>(cache.dim(2)));
    return ops.conv3d(core::concat({cache, x}, 2), weight, bias, opt);  // (N, O, T', H, W)
  }
  return ops.conv3d(x, weight, bias, opt);  // (N, O, T', H, W)
}

Tensor WanCausalConv3d::cached(const Tensor& x, WanCache& cache) const {
  WanCache::Slot& slot = cache.next();
  const bool has = slot.state == WanCache::Slot::State::kFrames;
  Tensor keep = last_frames(x, 2);  // (N, C, ≤2, H, W)
  if (keep.dim(2) < 2 && has) keep = core::concat({last_frames(slot.frames, 1), keep}, 2);
  Tensor y = (*this)(x, has ? slot.frames : Tensor{}, cache.ops());  // (N, O, T, H, W)
  slot.frames = keep;
  slot.state = WanCache::Slot::State::kFrames;
  return y;
}

void WanRMSNorm::bind(const WeightScope& w, int64_t channels, bool images) {
  const core::Shape shape = images ? core::Shape{channels, 1, 1} : core::Shape{channels, 1, 1, 1};
  gamma = w.vector("gamma", shape).reshape({channels});
  scale = static_cast<float>(std::sqrt(static_cast<double>(channels)));
}

Tensor WanRMSNorm::operator()(const Tensor& x) const {
  PARADIT_CHECK(x.ndim() >= 2 && x.dim(1) == gamma.dim(0), "WanRMS_norm: x ", x.str(), " has ",
                x.ndim() >= 2 ? x.dim(1) : 0, " channels, gamma has ", gamma.dim(0));
  return core::channel_norm(x, gamma, scale);  // same shape
}

void WanResidualBlock::bind(const WeightScope& w, int64_t in, int64_t out) {
  norm1.bind(w / "norm1", in, false);
  conv1.bind(w / "conv1", in, out, 3, 3, 3, 1, 1, 1);
  norm2.bind(w / "norm2", out, false);
  conv2.bind(w / "conv2", out, out, 3, 3, 3, 1, 1, 1);
  if (in != out) conv_shortcut.bind(w / "conv_shortcut", in, out, 1, 1, 1, 0, 0, 0);
}

Tensor WanResidualBlock::forward(const Tensor& x, WanCache& cache) const {
  const Tensor h = conv_shortcut.weight.defined() ? conv_shortcut(x) : x;  // (N, out, T, H, W)
  Tensor y = core::silu(norm1(x));                                         // (N, in, T, H, W)
  y = conv1.cached(y, cache);                                              // (N, out, T, H, W)
  y = core::silu(norm2(y));                                                // (N, out, T, H, W)
  y = conv2.cached(y, cache);                                              // (N, out, T, H, W)
  return core::add(y, h);                                                  // (N, out, T, H, W)
}

void WanAttentionBlock::bind(const WeightScope& w, int64_t dim) {
  channels = dim;
  norm.bind(w / "norm", dim, true);
  // 1×1 Conv2d weights (O, C, 1, 1) used as linear layers over the channels of each pixel.
  qkv_weight = w.matrix("to_qkv.weight", {3 * dim, dim, 1, 1}).reshape({3 * dim, dim});
  qkv_bias = w.vector("to_qkv.bias", {3 * dim});
  proj_weight = w.matrix("proj.weight", {dim, dim, 1, 1}).reshape({dim, dim});
  proj_bias = w.vector("proj.bias", {dim});
}

Tensor WanAttentionBlock::forward(const Tensor& x, const VideoSpatialOps& ops) const {
  const int64_t N = x.dim(0), C = x.dim(1), T = x.dim(2), H = x.dim(3), W = x.dim(4);
  const int64_t HW = H * W;
  // The norm is per pixel, so it runs before the frames are split off.
  Tensor h = norm(x);                                                          // (N, C, T, H, W)
  h = h.reshape({N, C, T, HW}).permute({0, 2, 3, 1}).reshape({N * T, HW, C});  // (NT, HW, C)
  const Tensor qkv = core::linear(h, qkv_weight, qkv_bias);                    // (NT, HW, 3C)
  const Tensor q = qkv.slice(2, 0, C).unsqueeze(2);                            // (NT, HW, 1, C)
  // Every query of a frame sees the keys of all its rows.
  const Tensor k = ops.gather_rows(qkv.slice(2, C, 2 * C).unsqueeze(2), 1);  // (NT, HW_all, 1, C)
  const Tensor v =
      ops.gather_rows(qkv.slice(2, 2 * C, 3 * C).unsqueeze(2), 1);  // (NT, HW_all, 1, C)
  core::AttentionOptions options;
  options.scale = 1.0f / std::sqrt(static_cast<float>(C));  // SDPA's default for one head of C
  h = core::attention(q, k, v, options).out.reshape({N * T, HW, C});            // (NT, HW, C)
  h = core::linear(h, proj_weight, proj_bias);                                  // (NT, HW, C)
  h = h.reshape({N, T, HW, C}).permute({0, 3, 1, 2}).reshape({N, C, T, H, W});  // (N, C, T, H, W)
  return core::add(h, x);                                                       // (N, C, T, H, W)
}

void WanResample::bind(const WeightScope& w, int64_t dim_, Mode mode_, int64_t out_dim) {
  mode = mode_;
  dim = dim_;
  const bool up = mode == Mode::kUpsample2d || mode == Mode::kUpsample3d;
  const int64_t out = up ? out_dim : dim;
  // nn.Conv2d applied to every frame = a conv3d with a one-frame kernel.
  weight = w.matrix("resample.1.weight", {out, dim, 3, 3}).reshape({out, dim, 1, 3, 3});
  bias = w.vector("resample.1.bias", {out});
  if (mode == Mode::kUpsample3d) time_conv.bind(w / "time_conv", dim, 2 * dim, 3, 1, 1, 1, 0, 0);
  if (mode == Mode::kDownsample3d) {
    time_conv.bind(w / "time_conv", dim, dim, 3, 1, 1, 0, 0, 0, /*stride_t=*/2);
  }
}

Tensor WanResample::forward(const Tensor& x_in, WanCache& cache) const {
  using State = WanCache::Slot::State;
  Tensor x = x_in;
  if (mode == Mode::kUpsample3d) {
    WanCache::Slot& slot = cache.next();
    if (slot.state == State::kEmpty) {
      slot.state = State::kRep;  // the first chunk keeps its frame count
    } else {
      Tensor keep = last_frames(x, 2);  // (N, C, ≤2, H, W)
      if (keep.dim(2) < 2) {
        // After the first chunk ("Rep") diffusers caches a zero frame in front, as padding.
        const Tensor prev = slot.state == State::kFrames ? last_frames(slot.frames, 1)
                                                         : Tensor::zeros(last_frames(x, 1).shape(),
                                                                         x.dtype(), x.device());
        keep = core::concat({prev, keep}, 2);
      }
      x = time_conv(x, slot.state == State::kFrames ? slot.frames : Tensor{},
                    cache.ops());  // (N, 2C, T, H, W)
      slot.frames = keep;
      slot.state = State::kFrames;
      x = interleave_time(x);  // (N, C, 2T, H, W)
    }
  }
  const int64_t N = x.dim(0), C = x.dim(1), T = x.dim(2), H = x.dim(3), W = x.dim(4);
  core::Conv3dOptions opt;
  if (mode == Mode::kUpsample2d || mode == Mode::kUpsample3d) {
    // nearest-exact ×2 equals nearest ×2: source index floor((i + 0.5)/2) = floor(i/2).
    x = core::upsample_nearest2d(x.contiguous().reshape({N, C * T, H, W}), 2)
            .reshape({N, C, T, 2 * H, 2 * W});  // (N, C, T, 2H, 2W)
    opt.pad_top = opt.pad_bottom = opt.pad_left = opt.pad_right = 1;
    return cache.ops().conv3d(x, weight, bias, opt);  // (N, out_dim, T, 2H, 2W)
  }
  // ZeroPad2d((0, 1, 0, 1)) then a stride-2 3×3 conv.
  opt.stride_h = opt.stride_w = 2;
  opt.pad_bottom = opt.pad_right = 1;
  x = cache.ops().conv3d(x.contiguous(), weight, bias, opt);  // (N, C, T, H/2, W/2)
  if (mode == Mode::kDownsample3d) {
    WanCache::Slot& slot = cache.next();
    if (slot.state == State::kEmpty) {
      // The first chunk keeps its frames; only its last one is needed later.
      slot.frames = last_frames(x, 1);
      slot.state = State::kFrames;
    } else {
      Tensor keep = last_frames(x, 1);
      x = time_conv(core::concat({last_frames(slot.frames, 1), x}, 2), {},
                    cache.ops());  // (N, C, T/2, H, W)
      slot.frames = keep;
    }
  }
  return x;
}

void WanMidBlock::bind(const WeightScope& w, int64_t dim) {
  resnet0.bind(w / "resnets" / 0, dim, dim);
  attention.bind(w / "attentions" / 0, dim);
  resnet1.bind(w / "resnets" / 1, dim, dim);
}

Tensor WanMidBlock::forward(const Tensor& x, WanCache& cache) const {
  Tensor h = resnet0.forward(x, cache);   // (N, C, T, H, W)
  h = attention.forward(h, cache.ops());  // (N, C, T, H, W)
  return resnet1.forward(h, cache);       // (N, C, T, H, W)
}

Tensor WanUpBlock::forward(const Tensor& x, WanCache& cache) const {
  Tensor h = x;
  for (const auto& r : resnets) h = r.forward(h, cache);     // (N, out, T, H, W)
  for (const auto& u : upsamplers) h = u.forward(h, cache);  // (N, out/2, T', 2H, 2W)
  return h;
}

void WanEncoder3d::bind(const WeightScope& w, const AutoencoderKLWanConfig& cfg) {
  std::vector<int64_t> dims = {cfg.base_dim};
  for (int64_t m : cfg.dim_mult) dims.push_back(cfg.base_dim * m);
  conv_in.bind(w / "conv_in", cfg.in_channels, dims[0], 3, 3, 3, 1, 1, 1);
  down_blocks.clear();
  int64_t out = dims[0];
  for (size_t i = 0; i + 1 < dims.size(); ++i) {
    int64_t in = dims[i];
    out = dims[i + 1];
    for (int64_t r = 0; r < cfg.num_res_blocks; ++r) {
      const int index = static_cast<int>(down_blocks.size());
      WanResidualBlock block;
      block.bind(w / "down_blocks" / index, in, out);
      down_blocks.emplace_back(std::move(block));
      in = out;
    }
    if (i + 1 != cfg.dim_mult.size()) {
      const auto mode = cfg.temperal_downsample[i] ? WanResample::Mode::kDownsample3d
                                                   : WanResample::Mode::kDownsample2d;
      WanResample resample;
      resample.bind(w / "down_blocks" / static_cast<int>(down_blocks.size()), out, mode, out);
      down_blocks.emplace_back(std::move(resample));
    }
  }
  mid_block.bind(w / "mid_block", out);
  norm_out.bind(w / "norm_out", out, false);
  conv_out.bind(w / "conv_out", out, 2 * cfg.z_dim, 3, 3, 3, 1, 1, 1);
}

Tensor WanEncoder3d::forward(const Tensor& x, WanCache& cache) const {
  Tensor h = conv_in.cached(x, cache);  // (N, dim, T, H, W)
  for (const auto& layer : down_blocks) {
    // (N, dim_i, T_i, H_i, W_i): resamples halve the size (and from the second chunk on, the
    // 3d ones the frames)
    if (const auto* r = std::get_if<WanResidualBlock>(&layer)) {
      h = r->forward(h, cache);
    } else {
      h = std::get<WanResample>(layer).forward(h, cache);
    }
  }
  h = mid_block.forward(h, cache);   // (N, C, t, h, w)
  h = core::silu(norm_out(h));       // (N, C, t, h, w)
  return conv_out.cached(h, cache);  // (N, 2·z_dim, t, h, w)
}

void WanDecoder3d::bind(const WeightScope& w, const AutoencoderKLWanConfig& cfg) {
  const int64_t dim = cfg.decoder_dim();
  const size_t blocks = cfg.dim_mult.size();
  std::vector<int64_t> dims = {dim * cfg.dim_mult.back()};
  for (size_t i = blocks; i-- > 0;) dims.push_back(dim * cfg.dim_mult[i]);
  const std::vector<bool> temperal_upsample(cfg.temperal_downsample.rbegin(),
                                            cfg.temperal_downsample.rend());
  conv_in.bind(w / "conv_in", cfg.z_dim, dims[0], 3, 3, 3, 1, 1, 1);
  mid_block.bind(w / "mid_block", dims[0]);
  up_blocks.assign(blocks, WanUpBlock{});
  int64_t out = dims[0];
  for (size_t i = 0; i < blocks; ++i) {
    // Each upsampler halves the channels (Wan 2.1), so every block after the first gets half.
    int64_t in = i > 0 ? dims[i] / 2 : dims[i];
    out = dims[i + 1];
    const WeightScope bw = w / "up_blocks" / static_cast<int>(i);
    WanUpBlock& block = up_blocks[i];
    block.resnets.resize(static_cast<size_t>(cfg.num_res_blocks + 1));
    for (size_t r = 0; r < block.resnets.size(); ++r) {
      block.resnets[r].bind(bw / "resnets" / static_cast<int>(r), in, out);
      in = out;
    }
    if (i + 1 != blocks) {
      const auto mode =
          temperal_upsample[i] ? WanResample::Mode::kUpsample3d : WanResample::Mode::kUpsample2d;
      block.upsamplers.resize(1);
      block.upsamplers[0].bind(bw / "upsamplers" / 0, out, mode, out / 2);
    }
  }
  norm_out.bind(w / "norm_out", out, false);
  conv_out.bind(w / "conv_out", out, cfg.out_channels, 3, 3, 3, 1, 1, 1);
}

Tensor WanDecoder3d::forward(const Tensor& z, WanCache& cache) const {
  Tensor h = conv_in.cached(z, cache);                      // (N, C, t, h, w)
  h = mid_block.forward(h, cache);                          // (N, C, t, h, w)
  for (const auto& b : up_blocks) h = b.forward(h, cache);  // (N, C_i, T_i, H_i, W_i)
  h = core::silu(norm_out(h));                              // (N, dim, T, H, W)
  return conv_out.cached(h, cache);                         // (N, out_channels, T, H, W)
}

// ---------------------------------------------------------------- the model

AutoencoderKLWan::AutoencoderKLWan(const AutoencoderKLWanConfig& cfg,
                                   const common::WeightProvider& weights, const core::Placement& place)
    : cfg_(cfg) {
  PARADIT_CHECK(place.dtype == core::DType::F32 || place.dtype == core::DType::BF16 || (place.device == core::Device::CUDA && place.dtype == core::DType::F16),
                "AutoencoderKLWan: weight dtype ", core::dtype_name(place.dtype),
                " is not supported (expected F32 or BF16)");
  const WeightScope root(weights, "", place);
  encoder_.bind(root / "encoder", cfg_);
  decoder_.bind(root / "decoder", cfg_);
  const int64_t z = cfg_.z_dim;
  quant_conv_.bind(root / "quant_conv", 2 * z, 2 * z, 1, 1, 1, 0, 0, 0);
  post_quant_conv_.bind(root / "post_quant_conv", z, z, 1, 1, 1, 0, 0, 0);
}

int64_t AutoencoderKLWan::temporal_factor() const {
  int64_t f = 1;
  for (bool t : cfg_.temperal_downsample) f *= t ? 2 : 1;
  return f;
}

int64_t AutoencoderKLWan::frames_for(int64_t latent_frames) const {
  return latent_frames <= 0 ? 0 : 1 + temporal_factor() * (latent_frames - 1);
}

void AutoencoderKLWan::decode_streaming(const Tensor& z,
                                        const std::function<void(const Tensor&)>& on_frames,
                                        const VideoSpatialOps& ops) const {
  PARADIT_CHECK(z.defined() && z.ndim() == 5 && z.dim(1) == cfg_.z_dim && z.dim(2) >= 1 &&
                    z.dim(3) >= 1 && z.dim(4) >= 1,
                "AutoencoderKLWan decode: latents ", str(z), " must be (N, ", cfg_.z_dim,
                ", frames, h, w)");
  Tensor x = z.dtype() == core::DType::F32 ? z : z.to(core::DType::F32);
  x = post_quant_conv_(x);  // (N, z_dim, t, h, w)
  WanCache cache(ops);
  for (int64_t i = 0; i < x.dim(2); ++i) {
    cache.begin_chunk();
    // The first latent frame gives 1 frame, every later one temporal_factor() frames.
    Tensor out = decoder_.forward(x.slice(2, i, i + 1), cache);  // (N, out, f, 8h, 8w)
    clamp_unit(out);
    on_frames(out);
  }
}

Tensor AutoencoderKLWan::decode(const Tensor& z, const VideoSpatialOps& ops) const {
  Tensor out;
  int64_t frame = 0;
  decode_streaming(
      z,
      [&](const Tensor& chunk) {
        if (!out.defined()) {
          out = Tensor::empty({chunk.dim(0), chunk.dim(1), frames_for(z.dim(2)), chunk.dim(3),
                               chunk.dim(4)},
                              chunk.dtype(), chunk.device());  // (N, out_channels, F, H, W)
        }
        PARADIT_CHECK(frame + chunk.dim(2) <= out.dim(2),
                      "AutoencoderKLWan decode: the decoder gave ", frame + chunk.dim(2),
                      " frames, more than the ", out.dim(2), " expected");
        out.slice(2, frame, frame + chunk.dim(2)).copy_from(chunk);
        frame += chunk.dim(2);
      },
      ops);
  PARADIT_CHECK(frame == out.dim(2), "AutoencoderKLWan decode: the decoder gave ", frame,
                " frames, expected ", out.dim(2));
  return out;
}

VideoLatentDistribution AutoencoderKLWan::encode(const Tensor& x) const {
  const int64_t f = spatial_factor();
  PARADIT_CHECK(x.defined() && x.ndim() == 5 && x.dim(1) == cfg_.in_channels,
                "AutoencoderKLWan encode: video ", str(x), " must be (N, ", cfg_.in_channels,
                ", frames, H, W)");
  PARADIT_CHECK(x.dim(2) >= 1 && (x.dim(2) - 1) % kEncodeChunk == 0,
                "AutoencoderKLWan encode: video has ", x.dim(2), " frames, expected 1 + ",
                kEncodeChunk, "·k");
  PARADIT_CHECK(x.dim(3) >= f && x.dim(4) >= f && x.dim(3) % f == 0 && x.dim(4) % f == 0,
                "AutoencoderKLWan encode: frame size ", x.dim(3), "x", x.dim(4),
                " is not a positive multiple of the VAE spatial factor ", f);
  const Tensor v = x.dtype() == core::DType::F32 ? x : x.to(core::DType::F32);
  WanCache cache;
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < v.dim(2);) {
    const int64_t len = start == 0 ? 1 : kEncodeChunk;
    cache.begin_chunk();
    parts.push_back(encoder_.forward(v.slice(2, start, start + len), cache));  // (N, 2z, t_i, h, w)
    start += len;
  }
  Tensor h = parts.size() == 1 ? parts[0] : core::concat(parts, 2);  // (N, 2z, t, h, w)
  h = quant_conv_(h);                                                // (N, 2z, t, h, w)
  const int64_t Z = cfg_.z_dim;
  VideoLatentDistribution dist;
  dist.mean = h.slice(1, 0, Z).contiguous();  // (N, z, t, h, w)
  dist.std = std_from_logvar(h.slice(1, Z, 2 * Z));  // (N, z, t, h, w)
  return dist;
}

std::vector<float> AutoencoderKLWan::inv_latents_std() const {
  std::vector<float> inv;
  for (float s : cfg_.latents_std) inv.push_back(1.0f / s);
  return inv;
}

Tensor AutoencoderKLWan::unnormalize_latents(const Tensor& z) const {
  PARADIT_CHECK(z.defined() && z.ndim() == 5 && z.dim(1) == cfg_.z_dim,
                "AutoencoderKLWan: latents ", str(z), " must be (N, ", cfg_.z_dim,
                ", frames, h, w)");
  // As the pipelines compute it in f32: latents / (1 / std) + mean.
  return core::affine(z.to(core::DType::F32), 1, core::AffineKind::kDivAdd, latents_mean(),
                      inv_latents_std());  // (N, z, t, h, w)
}

Tensor AutoencoderKLWan::normalize_latents(const Tensor& z) const {
  PARADIT_CHECK(z.defined() && z.ndim() == 5 && z.dim(1) == cfg_.z_dim,
                "AutoencoderKLWan: latents ", str(z), " must be (N, ", cfg_.z_dim,
                ", frames, h, w)");
  // The image-to-video pipelines: (latents − mean) · (1 / std).
  return core::affine(z.to(core::DType::F32), 1, core::AffineKind::kSubMul, latents_mean(),
                      inv_latents_std());  // (N, z, t, h, w)
}

std::unique_ptr<AutoencoderKLWan> load_autoencoder_kl_wan(const std::filesystem::path& dir,
                                                          const core::Placement& place) {
  return load_vae<AutoencoderKLWan, AutoencoderKLWanConfig>(dir, place);
}

}  // namespace paradit::models::vae
