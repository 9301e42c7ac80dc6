#pragma once
// AutoencoderKLHunyuanVideo (diffusers autoencoders/autoencoder_kl_hunyuan_video.py): the causal
// video VAE of HunyuanVideo. Modules match diffusers' HunyuanVideoCausalConv3d,
// HunyuanVideoResnetBlockCausal3D, HunyuanVideoMidBlock3D (with its frame-causal attention),
// HunyuanVideoDownBlock3D / UpBlock3D with their causal resamplers, and the Encoder3D /
// Decoder3D, numerically, and bind the same checkpoint names.
//
// - Causal convolutions pad time with kt − 1 copies of the first frame in front and space by
//   repeating the edge (F.pad mode "replicate"), then convolve with their stride.
// - The mid-block attention is one head over the tokens of all frames, frame-causal: a token of
//   frame f sees the tokens of frames 0..f (diffusers' prepare_causal_attention_mask).
// - A clip goes through in one pass, as diffusers does by default, except that (also as diffusers
//   by default, use_framewise_decoding/encoding) more than 4 latent frames are decoded, and more
//   than 16 frames encoded, in overlapping temporal tiles blended linearly. Spatial tiling
//   (diffusers' enable_tiling, off by default) is not implemented.
// - Row-parallel decode (parallel/video_vae_patch.h): the convolutions, GroupNorms and the
//   mid-block attention of the decoder go through a VideoSpatialOps object (models/vae/wan.h);
//   everything else is row-local.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/ops.h"
#include "io/diffusers.h"
#include "models/common/modules.h"
#include "models/common/weights.h"
#include "models/vae/wan.h"

namespace paradit::models::vae {

// ---------------------------------------------------------------- config
// config.json fields with AutoencoderKLHunyuanVideo's defaults.
struct AutoencoderKLHunyuanVideoConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 16;
  std::vector<int64_t> block_out_channels = {128, 256, 512, 512};
  int64_t layers_per_block = 2;
  std::string act_fn = "silu";
  int64_t norm_num_groups = 32;
  double scaling_factor = 0.476986;
  int64_t spatial_compression_ratio = 8;
  int64_t temporal_compression_ratio = 4;
  bool mid_block_add_attention = true;

  // Error naming the file and key for unsupported or inconsistent values.
  static AutoencoderKLHunyuanVideoConfig from(const io::Config& config);
};

// diffusers' temporal tiling knobs (its defaults).
struct HunyuanVideoTiling {
  bool framewise_decoding = true;  // use_framewise_decoding
  bool framewise_encoding = true;  // use_framewise_encoding
  int64_t tile_sample_min_num_frames = 16;
  int64_t tile_sample_stride_num_frames = 12;
};

// ---------------------------------------------------------------- modules
// HunyuanVideoCausalConv3d: replicate padding (time kt − 1 in front, space k/2 on each side),
// then nn.Conv3d (`conv.weight`, `conv.bias`) with its stride.
struct HunyuanCausalConv3d {
  core::Tensor weight, bias;  // (O, C, k, k, k), (O)
  core::Conv3dOptions opt;
  void bind(const common::WeightScope& w, int64_t in, int64_t out, int64_t kernel, int stride_t = 1,
            int stride_hw = 1);
  // x: (N, C, T, H, W) → (N, O, T', H', W')
  core::Tensor operator()(const core::Tensor& x,
                          const VideoSpatialOps& ops = local_video_ops()) const {
    return ops.conv3d(x, weight, bias, opt);
  }
};

// nn.GroupNorm over (N, C, T, H, W) with affine parameters.
struct HunyuanGroupNorm {
  core::Tensor weight, bias;  // (C)
  int groups = 32;
  float eps = 1e-6f;
  void bind(const common::WeightScope& w, int64_t channels, int64_t groups);
  core::Tensor operator()(const core::Tensor& x,
                          const VideoSpatialOps& ops = local_video_ops()) const {
    return ops.group_norm(x, groups, weight, bias, eps);
  }
};

// HunyuanVideoResnetBlockCausal3D: norm1 → act → conv1 → norm2 → act → conv2, plus the residual
// (through conv_shortcut, 1×1×1, where the channel count changes).
struct HunyuanResnetBlock {
  HunyuanGroupNorm norm1, norm2;
  HunyuanCausalConv3d conv1, conv2;
  std::optional<HunyuanCausalConv3d> conv_shortcut;
  common::Activation act = common::Activation::kSiLU;

  void bind(const common::WeightScope& w, int64_t in, int64_t out, int64_t groups,
            common::Activation act);
  // x: (N, in, T, H, W) → (N, out, T, H, W)
  core::Tensor forward(const core::Tensor& x, const VideoSpatialOps& ops = local_video_ops()) const;
};

// The mid block's Attention (one head of C channels, group_norm first, residual connection),
// frame-causal over the tokens of the whole clip.
struct HunyuanMidAttention {
  HunyuanGroupNorm group_norm;
  common::Linear to_q, to_k, to_v, to_out;  // to_out.0

  void bind(const common::WeightScope& w, int64_t channels, int64_t groups);
  // x: (N, C, T, H, W) → same
  core::Tensor forward(const core::Tensor& x, const VideoSpatialOps& ops = local_video_ops()) const;
};

// HunyuanVideoMidBlock3D (one layer): resnets.0, attentions.0 (when add_attention), resnets.1.
struct HunyuanMidBlock {
  HunyuanResnetBlock resnet0, resnet1;
  std::optional<HunyuanMidAttention> attention;

  void bind(const common::WeightScope& w, int64_t channels, int64_t groups, bool add_attention,
            common::Activation act);
  core::Tensor forward(const core::Tensor& x, const VideoSpatialOps& ops = local_video_ops()) const;
};

// HunyuanVideoDownBlock3D: resnets, then downsamplers.0 (a causal conv with stride
// (time, space, space) and no extra padding) where present.
struct HunyuanDownBlock {
  std::vector<HunyuanResnetBlock> resnets;
  std::optional<HunyuanCausalConv3d> downsampler;  // downsamplers.0.conv

  core::Tensor forward(const core::Tensor& x, const VideoSpatialOps& ops = local_video_ops()) const;
};

// HunyuanVideoUpBlock3D: resnets, then upsamplers.0 where present: nearest upsampling (the first
// frame in space only, the others by (factor_t, factor_s, factor_s)) and a causal 3×3×3 conv.
struct HunyuanUpBlock {
  std::vector<HunyuanResnetBlock> resnets;
  std::optional<HunyuanCausalConv3d> upsampler;  // upsamplers.0.conv
  int factor_t = 1, factor_s = 1;

  core::Tensor forward(const core::Tensor& x, const VideoSpatialOps& ops = local_video_ops()) const;
};

// HunyuanVideoEncoder3D (double_z): video → moments (mean and logvar stacked on channels).
struct HunyuanEncoder3D {
  HunyuanCausalConv3d conv_in, conv_out;
  std::vector<HunyuanDownBlock> down_blocks;
  HunyuanMidBlock mid_block;
  HunyuanGroupNorm conv_norm_out;
  common::Activation act = common::Activation::kSiLU;

  void bind(const common::WeightScope& w, const AutoencoderKLHunyuanVideoConfig& cfg);
  // x: (N, in_channels, T, H, W) → (N, 2·latent, 1 + (T − 1)/4, H/8, W/8)
  core::Tensor forward(const core::Tensor& x) const;
};

// HunyuanVideoDecoder3D.
struct HunyuanDecoder3D {
  HunyuanCausalConv3d conv_in, conv_out;
  HunyuanMidBlock mid_block;
  std::vector<HunyuanUpBlock> up_blocks;
  HunyuanGroupNorm conv_norm_out;
  common::Activation act = common::Activation::kSiLU;

  void bind(const common::WeightScope& w, const AutoencoderKLHunyuanVideoConfig& cfg);
  // z: (N, latent, t, h, w) → (N, out_channels, 1 + 4(t − 1), 8h, 8w)
  core::Tensor forward(const core::Tensor& z, const VideoSpatialOps& ops = local_video_ops()) const;
};

struct HunyuanVideoLatentDistribution {
  core::Tensor mean;  // (N, latent, t, h, w)
  core::Tensor std;   // (N, latent, t, h, w): exp(0.5 · clamp(logvar, -30, 20))
};

class AutoencoderKLHunyuanVideo {
 public:
  AutoencoderKLHunyuanVideo(const AutoencoderKLHunyuanVideoConfig& cfg,
                            const common::WeightProvider& weights,
                            const core::Placement& place = core::DType::F32);

  // vae.decode(z).sample on raw latents (the pipeline first divides by scaling_factor), no
  // clamp. z: (N, latent, t, h, w) → (N, out_channels, 1 + 4(t − 1), 8h, 8w). With row-split
  // `ops`, z holds this rank's latent rows and the result its rows of the frames.
  core::Tensor decode(const core::Tensor& z, const VideoSpatialOps& ops = local_video_ops()) const;
  // vae.encode(x).latent_dist. x: (N, in_channels, T, H, W), H and W multiples of the spatial
  // ratio → (N, latent, 1 + (T − 1)/4, H/8, W/8).
  HunyuanVideoLatentDistribution encode(const core::Tensor& x) const;

  // The pipeline's step before decode: latents / scaling_factor.
  core::Tensor unscale_latents(const core::Tensor& latents) const;

  void set_tiling(const HunyuanVideoTiling& tiling) { tiling_ = tiling; }
  const HunyuanVideoTiling& tiling() const { return tiling_; }
  const AutoencoderKLHunyuanVideoConfig& config() const { return cfg_; }
  double scaling_factor() const { return cfg_.scaling_factor; }
  int64_t latent_channels() const { return cfg_.latent_channels; }
  int64_t spatial_factor() const { return cfg_.spatial_compression_ratio; }
  int64_t temporal_factor() const { return cfg_.temporal_compression_ratio; }

 private:
  core::Tensor decode_one_pass(const core::Tensor& z,
                               const VideoSpatialOps& ops) const;  // post_quant_conv + decoder
  core::Tensor encode_one_pass(const core::Tensor& x) const;       // encoder + quant_conv
  core::Tensor temporal_tiled_decode(const core::Tensor& z, const VideoSpatialOps& ops) const;
  core::Tensor temporal_tiled_encode(const core::Tensor& x) const;

  AutoencoderKLHunyuanVideoConfig cfg_;
  HunyuanVideoTiling tiling_;
  // Members named after their checkpoint modules.
  HunyuanEncoder3D encoder_;
  HunyuanDecoder3D decoder_;
  core::Tensor quant_conv_weight_, quant_conv_bias_;            // nn.Conv3d 1×1×1
  core::Tensor post_quant_conv_weight_, post_quant_conv_bias_;  // nn.Conv3d 1×1×1
};

// Loads config.json and the weights of an AutoencoderKLHunyuanVideo from a component folder, or
// from a pipeline folder (its vae/). Error naming the folder, file or tensor on anything wrong.
std::unique_ptr<AutoencoderKLHunyuanVideo> load_autoencoder_kl_hunyuan_video(
    const std::filesystem::path& dir, const core::Placement& place = core::DType::F32);

}  // namespace paradit::models::vae
