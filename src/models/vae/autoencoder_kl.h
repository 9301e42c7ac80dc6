#pragma once
// AutoencoderKL (diffusers autoencoders/autoencoder_kl.py with vae.py's Encoder/Decoder): the
// image VAE of SD, SD3, Flux and PixArt. Modules match diffusers' ResnetBlock2D, Upsample2D,
// Downsample2D, UNetMidBlock2D (with its single-head group-norm Attention), UpDecoderBlock2D and
// DownEncoderBlock2D numerically, and bind the same checkpoint names.
//
// Every 3×3 convolution, GroupNorm and the mid-block attention go through a SpatialOps object:
// the local one calls core ops; a patch-parallel decode (image rows split across ranks) supplies
// one that exchanges halo rows for the convolutions, all-reduces the GroupNorm statistics and
// gathers the keys/values of the attention. Everything else in the VAE is row-local.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/ops.h"
#include "io/diffusers.h"
#include "models/common/modules.h"
#include "models/common/weights.h"
#include "parallel/spatial_ops.h"

namespace paradit::models::vae {

// ---------------------------------------------------------------- spatial operations
// The operations whose result at a pixel depends on pixels outside its own row (see
// parallel/spatial_ops.h).
using parallel::local_spatial_ops;
using parallel::SpatialOps;

// ---------------------------------------------------------------- config
// config.json fields with AutoencoderKL's defaults.
struct AutoencoderKLConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  std::vector<std::string> down_block_types = {"DownEncoderBlock2D"};
  std::vector<std::string> up_block_types = {"UpDecoderBlock2D"};
  std::vector<int64_t> block_out_channels = {64};
  int64_t layers_per_block = 1;
  std::string act_fn = "silu";
  int64_t latent_channels = 4;
  int64_t norm_num_groups = 32;
  double scaling_factor = 0.18215;
  std::optional<double> shift_factor;  // null in SD/SDXL; set for SD3 and Flux
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  // Pixels per latent along each axis: 2^(number of blocks − 1) (8 for the real VAEs).
  int64_t scale_factor() const { return int64_t{1} << (block_out_channels.size() - 1); }
  // Error naming the file and key for unsupported or inconsistent values.
  static AutoencoderKLConfig from(const io::Config& config);
};

// ---------------------------------------------------------------- modules
// nn.Conv2d; `opt` holds its stride and padding.
struct Conv2d {
  core::Tensor weight, bias;  // (O, C, k, k), (O)
  core::Conv2dOptions opt;
  void bind(const common::WeightScope& w, int64_t in, int64_t out, int64_t kernel,
            const core::Conv2dOptions& opt);
  core::Tensor operator()(const core::Tensor& x, const SpatialOps& ops) const {
    return ops.conv2d(x, weight, bias, opt);
  }
};

// nn.GroupNorm with affine parameters.
struct GroupNorm {
  core::Tensor weight, bias;  // (C) each
  int groups = 32;
  float eps = 1e-6f;
  void bind(const common::WeightScope& w, int64_t channels, int64_t groups, float eps);
  core::Tensor operator()(const core::Tensor& x, const SpatialOps& ops) const {
    return ops.group_norm(x, groups, weight, bias, eps);
  }
};

// ResnetBlock2D without a time embedding (temb_channels None, time_embedding_norm "default").
struct ResnetBlock2D {
  GroupNorm norm1, norm2;
  Conv2d conv1, conv2;
  Conv2d conv_shortcut;  // 1×1, bound only when in_channels != out_channels
  common::Activation act = common::Activation::kSiLU;

  void bind(const common::WeightScope& w, int64_t in, int64_t out, int64_t groups, float eps,
            common::Activation act);
  // x: (N, in, H, W) → (N, out, H, W)
  core::Tensor forward(const core::Tensor& x, const SpatialOps& ops) const;
};

// Attention as UNetMidBlock2D builds it (_from_deprecated_attn_block): one head over the H·W
// pixels, group_norm first, residual connection, rescale_output_factor 1.
struct MidBlockAttention {
  GroupNorm group_norm;
  common::Linear to_q, to_k, to_v, to_out;  // to_out.0
  int64_t channels = 0;

  void bind(const common::WeightScope& w, int64_t channels, int64_t groups, float eps);
  // x: (N, C, H, W) → (N, C, H, W)
  core::Tensor forward(const core::Tensor& x, const SpatialOps& ops) const;
};

// UNetMidBlock2D (one layer): resnets.0, attentions.0 (when add_attention), resnets.1.
struct UNetMidBlock2D {
  std::vector<ResnetBlock2D> resnets;
  std::optional<MidBlockAttention> attention;

  void bind(const common::WeightScope& w, int64_t channels, int64_t groups, bool add_attention,
            common::Activation act);
  // x: (N, C, H, W) → (N, C, H, W)
  core::Tensor forward(const core::Tensor& x, const SpatialOps& ops) const;
};

// DownEncoderBlock2D: resnets, then (except in the last block) Downsample2D: a stride-2 3×3 conv
// after zero padding of one row at the bottom and one column at the right.
struct DownEncoderBlock2D {
  std::vector<ResnetBlock2D> resnets;
  std::optional<Conv2d> downsampler;  // downsamplers.0.conv

  void bind(const common::WeightScope& w, int64_t in, int64_t out, int64_t layers,
            bool add_downsample, int64_t groups, common::Activation act);
  // x: (N, in, H, W) → (N, out, H/2, W/2), or (N, out, H, W) without the downsampler
  core::Tensor forward(const core::Tensor& x, const SpatialOps& ops) const;
};

// UpDecoderBlock2D: resnets, then (except in the last block) Upsample2D: nearest ×2 and a 3×3
// conv.
struct UpDecoderBlock2D {
  std::vector<ResnetBlock2D> resnets;
  std::optional<Conv2d> upsampler;  // upsamplers.0.conv

  void bind(const common::WeightScope& w, int64_t in, int64_t out, int64_t layers,
            bool add_upsample, int64_t groups, common::Activation act);
  // x: (N, in, H, W) → (N, out, 2H, 2W), or (N, out, H, W) without the upsampler
  core::Tensor forward(const core::Tensor& x, const SpatialOps& ops) const;
};

// vae.py Encoder (double_z): image → moments (mean and logvar stacked on channels).
struct Encoder {
  Conv2d conv_in;
  std::vector<DownEncoderBlock2D> down_blocks;
  UNetMidBlock2D mid_block;
  GroupNorm conv_norm_out;
  Conv2d conv_out;
  common::Activation act = common::Activation::kSiLU;

  void bind(const common::WeightScope& w, const AutoencoderKLConfig& cfg);
  // x: (N, in_channels, H, W) → (N, 2·latent_channels, H/f, W/f)
  core::Tensor forward(const core::Tensor& x, const SpatialOps& ops) const;
};

// vae.py Decoder: latents → image.
struct Decoder {
  Conv2d conv_in;
  UNetMidBlock2D mid_block;
  std::vector<UpDecoderBlock2D> up_blocks;
  GroupNorm conv_norm_out;
  Conv2d conv_out;
  common::Activation act = common::Activation::kSiLU;

  void bind(const common::WeightScope& w, const AutoencoderKLConfig& cfg);
  // z: (N, latent_channels, h, w) → (N, out_channels, h·f, w·f)
  core::Tensor forward(const core::Tensor& z, const SpatialOps& ops) const;
};

// DiagonalGaussianDistribution's mean and std: std = exp(0.5 · clamp(logvar, -30, 20)).
struct LatentDistribution {
  core::Tensor mean;  // (N, latent_channels, h, w)
  core::Tensor std;   // (N, latent_channels, h, w)
};

class AutoencoderKL {
 public:
  AutoencoderKL(const AutoencoderKLConfig& cfg, const common::WeightProvider& weights,
                const core::Placement& place = core::DType::F32);

  // vae.decode(z).sample on raw latents (the pipeline first applies unscale_latents).
  // z: (N, latent_channels, h, w) → (N, out_channels, h·f, w·f)
  core::Tensor decode(const core::Tensor& z, const SpatialOps& ops = local_spatial_ops()) const;
  // vae.encode(x).latent_dist. x: (N, in_channels, H, W) with H, W multiples of scale_factor().
  LatentDistribution encode(const core::Tensor& x,
                            const SpatialOps& ops = local_spatial_ops()) const;

  // The pipelines' step before decode: latents / scaling_factor (+ shift_factor when set).
  core::Tensor unscale_latents(const core::Tensor& latents) const;
  // Its inverse, as the pipelines prepare encoded images: (latents − shift) · scaling_factor.
  core::Tensor scale_latents(const core::Tensor& latents) const;

  const AutoencoderKLConfig& config() const { return cfg_; }
  double scaling_factor() const { return cfg_.scaling_factor; }
  std::optional<double> shift_factor() const { return cfg_.shift_factor; }
  int64_t scale_factor() const { return cfg_.scale_factor(); }
  int64_t latent_channels() const { return cfg_.latent_channels; }

 private:
  AutoencoderKLConfig cfg_;
  // Members named after their checkpoint modules.
  Encoder encoder_;
  Decoder decoder_;
  std::optional<Conv2d> quant_conv_, post_quant_conv_;
};

// Loads config.json and the weights of an AutoencoderKL from a component folder, or from a
// pipeline folder (its vae/). Error naming the folder, file or tensor on anything wrong.
std::unique_ptr<AutoencoderKL> load_autoencoder_kl(const std::filesystem::path& dir,
                                                   const core::Placement& place = core::DType::F32);

}  // namespace paradit::models::vae
