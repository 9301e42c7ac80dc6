#pragma once
// AutoencoderKLWan (diffusers autoencoders/autoencoder_kl_wan.py): the causal video VAE of Wan
// 2.1. Modules match diffusers' WanCausalConv3d, WanRMS_norm, WanResidualBlock,
// WanAttentionBlock, WanResample, WanMidBlock, WanUpBlock, WanEncoder3d and WanDecoder3d
// numerically and bind the same checkpoint names.
//
// Time is processed in chunks, as diffusers does: decode runs the decoder on one latent frame at
// a time (the first gives 1 frame, each later one 2^(temporal upsamples) frames), encode runs the
// encoder on frames 1, 4, 4, …. Every causal convolution keeps the last two frames of its input
// in a WanCache slot and prepends them to the next chunk, so a chunk sees exactly what one pass
// over the whole clip would, and memory per layer does not grow with the frame count. Decoded
// frames are clamped to [-1, 1].
//
// Not supported (rejected by the config with an Error naming the key): the Wan 2.2 residual
// layout (is_residual, patch_size) and encoder attention blocks (attn_scales, which diffusers
// cannot run either). diffusers' spatial tiling (enable_tiling, off by default) is not
// implemented.
//
// Row-parallel decode (parallel/video_vae_patch.h): every operation that looks outside a
// pixel's own row — convolutions with kernel height > 1, GroupNorm, the mid-block attention —
// goes through a VideoSpatialOps object, which a rank holding a band of the rows replaces with
// halo exchanges, group-wide statistics and gathered keys. Everything else (RMS norms over the
// channels, nearest upsampling, time convolutions, the causal caches) is row-local, so each rank
// keeps the causal cache of its own rows.

#include <filesystem>
#include <functional>
#include <memory>
#include <variant>
#include <vector>

#include "core/ops.h"
#include "io/diffusers.h"
#include "models/common/weights.h"
#include "parallel/spatial_ops.h"

namespace paradit::models::vae {

// ---------------------------------------------------------------- spatial operations
// The operations of the video VAEs whose result at a pixel depends on pixels of other rows (see
// parallel/spatial_ops.h).
using parallel::local_video_ops;
using parallel::VideoSpatialOps;

// ---------------------------------------------------------------- config
// config.json fields with AutoencoderKLWan's defaults.
struct AutoencoderKLWanConfig {
  int64_t base_dim = 96;
  int64_t decoder_base_dim = 0;  // 0 (null in the config): base_dim
  int64_t z_dim = 16;
  std::vector<int64_t> dim_mult = {1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  std::vector<double> attn_scales;                              // must be empty (see from())
  std::vector<bool> temperal_downsample = {false, true, true};  // diffusers' spelling
  std::vector<float> latents_mean;  // z_dim values (the Wan 2.1 ones by default)
  std::vector<float> latents_std;   // z_dim values
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t scale_factor_temporal = 4;
  int64_t scale_factor_spatial = 8;

  int64_t decoder_dim() const { return decoder_base_dim > 0 ? decoder_base_dim : base_dim; }
  // Error naming the file and key for unsupported or inconsistent values.
  static AutoencoderKLWanConfig from(const io::Config& config);
};

// ---------------------------------------------------------------- feature cache
// The causal cache of one encode or decode: one slot per cached convolution, taken in the order
// the forward reaches them (diffusers' feat_cache list and feat_idx cursor).
class WanCache {
 public:
  explicit WanCache(const VideoSpatialOps& ops = local_video_ops()) : ops_(&ops) {}
  // The spatial operations of this encode or decode (row-split under the parallel decode).
  const VideoSpatialOps& ops() const { return *ops_; }

  struct Slot {
    enum class State {
      kEmpty,   // first chunk: nothing cached yet
      kRep,     // upsample3d after the first chunk: its time_conv has not run yet
      kFrames,  // `frames` holds the last input frames of the previous chunk
    };
    State state = State::kEmpty;
    core::Tensor frames;  // (N, C, ≤ 2, H, W), a copy (not a view of the chunk)
  };
  // Called before each chunk: slots are taken again from the first.
  void begin_chunk() { next_ = 0; }
  Slot& next();
  size_t size() const { return slots_.size(); }

 private:
  const VideoSpatialOps* ops_;
  std::vector<Slot> slots_;
  size_t next_ = 0;
};

// ---------------------------------------------------------------- modules
// WanCausalConv3d: nn.Conv3d whose time padding (2·pad_t) is all in front; space is zero padded
// pad_h/pad_w on both sides.
struct WanCausalConv3d {
  core::Tensor weight, bias;  // (O, C, kt, kh, kw), (O)
  int pad_t = 0, pad_h = 0, pad_w = 0;
  int stride_t = 1;

  void bind(const common::WeightScope& w, int64_t in, int64_t out, int64_t kt, int64_t kh,
            int64_t kw, int pad_t, int pad_h, int pad_w, int stride_t = 1);
  // x: (N, C, T, H, W); `cache`: (N, C, c, H, W) earlier input frames prepended to x, which take
  // the place of c front padding frames; {} for none.   → (N, O, T', H, W)
  core::Tensor operator()(const core::Tensor& x, const core::Tensor& cache = {},
                          const VideoSpatialOps& ops = local_video_ops()) const;
  // The cached call of the residual blocks, conv_in and conv_out: the frames in the cache's next
  // slot are prepended, then the slot keeps the last two input frames (the last cached one
  // before a single-frame chunk).
  core::Tensor cached(const core::Tensor& x, WanCache& cache) const;
};

// WanRMS_norm: x / ‖x‖₂ over channels (F.normalize, eps 1e-12) · √C · gamma[c]; no bias.
struct WanRMSNorm {
  core::Tensor gamma;  // (C), from (C, 1, 1, 1) or (C, 1, 1)
  float scale = 1.0f;  // √C
  // images: gamma stored (C, 1, 1) (attention), else (C, 1, 1, 1).
  void bind(const common::WeightScope& w, int64_t channels, bool images);
  // x: (N, C, ...) → same shape
  core::Tensor operator()(const core::Tensor& x) const;
};

// WanResidualBlock: norm1 → silu → conv1 → norm2 → silu → conv2, plus conv_shortcut (1×1×1)
// where the channel count changes. Dropout is inference-time identity.
struct WanResidualBlock {
  WanRMSNorm norm1, norm2;
  WanCausalConv3d conv1, conv2;
  WanCausalConv3d conv_shortcut;  // bound only when in != out

  void bind(const common::WeightScope& w, int64_t in, int64_t out);
  // x: (N, in, T, H, W) → (N, out, T, H, W)
  core::Tensor forward(const core::Tensor& x, WanCache& cache) const;
};

// WanAttentionBlock: single-head self-attention within each frame (over its H·W pixels), with
// WanRMS_norm first, 1×1 to_qkv and proj, and the residual connection.
struct WanAttentionBlock {
  WanRMSNorm norm;
  core::Tensor qkv_weight, qkv_bias;    // to_qkv as a linear: (3C, C), (3C)
  core::Tensor proj_weight, proj_bias;  // proj: (C, C), (C)
  int64_t channels = 0;

  void bind(const common::WeightScope& w, int64_t channels);
  // x: (N, C, T, H, W) → same
  core::Tensor forward(const core::Tensor& x, const VideoSpatialOps& ops = local_video_ops()) const;
};

// WanResample: upsample2d / upsample3d (nearest ×2 then a 3×3 conv to out_dim; upsample3d first
// doubles the frames with its causal time_conv), downsample2d / downsample3d (a stride-2 3×3
// conv after zero padding right and bottom; downsample3d then halves the frames with its
// stride-2 time_conv).
struct WanResample {
  enum class Mode { kUpsample2d, kUpsample3d, kDownsample2d, kDownsample3d };
  Mode mode = Mode::kUpsample2d;
  core::Tensor weight, bias;  // resample.1, as a (O, C, 1, 3, 3) conv3d weight
  WanCausalConv3d time_conv;  // the 3d modes only
  int64_t dim = 0;

  void bind(const common::WeightScope& w, int64_t dim, Mode mode, int64_t out_dim);
  // x: (N, dim, T, H, W) → upsample: (N, out_dim, T or 2T, 2H, 2W); downsample:
  // (N, dim, T' , H/2, W/2) with T' = T on the first chunk of downsample3d, else T/2 (with the
  // cached frame in front).
  core::Tensor forward(const core::Tensor& x, WanCache& cache) const;
};

// WanMidBlock: resnets.0, attentions.0, resnets.1.
struct WanMidBlock {
  WanResidualBlock resnet0, resnet1;
  WanAttentionBlock attention;
  void bind(const common::WeightScope& w, int64_t dim);
  core::Tensor forward(const core::Tensor& x, WanCache& cache) const;
};

// WanUpBlock: num_res_blocks + 1 residual blocks, then upsamplers.0 where present.
struct WanUpBlock {
  std::vector<WanResidualBlock> resnets;
  std::vector<WanResample> upsamplers;  // zero or one

  core::Tensor forward(const core::Tensor& x, WanCache& cache) const;
};

// WanEncoder3d (not residual): conv_in, a flat list of down_blocks (residual blocks and
// resamples), mid_block, norm_out, silu, conv_out (2·z_dim channels).
struct WanEncoder3d {
  using Layer = std::variant<WanResidualBlock, WanResample>;
  WanCausalConv3d conv_in, conv_out;
  std::vector<Layer> down_blocks;
  WanMidBlock mid_block;
  WanRMSNorm norm_out;

  void bind(const common::WeightScope& w, const AutoencoderKLWanConfig& cfg);
  // One chunk. x: (N, in_channels, T, H, W) → (N, 2·z_dim, T', H/8, W/8)
  core::Tensor forward(const core::Tensor& x, WanCache& cache) const;
};

// WanDecoder3d (not residual): conv_in, mid_block, up_blocks, norm_out, silu, conv_out.
struct WanDecoder3d {
  WanCausalConv3d conv_in, conv_out;
  WanMidBlock mid_block;
  std::vector<WanUpBlock> up_blocks;
  WanRMSNorm norm_out;

  void bind(const common::WeightScope& w, const AutoencoderKLWanConfig& cfg);
  // One chunk (before the clamp). z: (N, z_dim, t, h, w) → (N, out_channels, T', 8h, 8w)
  core::Tensor forward(const core::Tensor& z, WanCache& cache) const;
};

// DiagonalGaussianDistribution's mean and std: std = exp(0.5 · clamp(logvar, -30, 20)).
struct VideoLatentDistribution {
  core::Tensor mean;  // (N, z_dim, t, h, w)
  core::Tensor std;   // (N, z_dim, t, h, w)
};

class AutoencoderKLWan {
 public:
  AutoencoderKLWan(const AutoencoderKLWanConfig& cfg, const common::WeightProvider& weights,
                   const core::Placement& place = core::DType::F32);

  // vae.decode(z).sample on raw latents (the pipeline first computes z·latents_std +
  // latents_mean per channel: unnormalize_latents). z: (N, z_dim, t, h, w) → (N, out_channels,
  // frames_for(t), 8h, 8w), clamped to [-1, 1]. With row-split `ops`, z holds this rank's
  // latent rows and the result its rows of the frames.
  core::Tensor decode(const core::Tensor& z, const VideoSpatialOps& ops = local_video_ops()) const;
  // The same, handing each latent frame's decoded frames (N, out_channels, f, 8h, 8w), clamped,
  // to `on_frames` as soon as they are ready instead of keeping the whole clip.
  void decode_streaming(const core::Tensor& z,
                        const std::function<void(const core::Tensor&)>& on_frames,
                        const VideoSpatialOps& ops = local_video_ops()) const;
  // vae.encode(x).latent_dist. x: (N, in_channels, 1 + 4k, H, W) with H, W multiples of the
  // spatial factor → mean/std (N, z_dim, 1 + k, H/8, W/8).
  VideoLatentDistribution encode(const core::Tensor& x) const;

  // The Wan pipelines' step before decode: z · latents_std + latents_mean, per channel.
  core::Tensor unnormalize_latents(const core::Tensor& z) const;
  // Its inverse, as the pipelines prepare encoded videos: (z − latents_mean) / latents_std.
  core::Tensor normalize_latents(const core::Tensor& z) const;

  // Decoded frames for t latent frames: 1 + temporal factor · (t − 1).
  int64_t frames_for(int64_t latent_frames) const;
  const AutoencoderKLWanConfig& config() const { return cfg_; }
  const std::vector<float>& latents_mean() const { return cfg_.latents_mean; }
  const std::vector<float>& latents_std() const { return cfg_.latents_std; }
  // 1 / latents_std per channel, rounded to f32 as the pipelines build it.
  std::vector<float> inv_latents_std() const;
  int64_t z_dim() const { return cfg_.z_dim; }
  int64_t spatial_factor() const { return int64_t{1} << (cfg_.dim_mult.size() - 1); }
  int64_t temporal_factor() const;

 private:
  AutoencoderKLWanConfig cfg_;
  // Members named after their checkpoint modules.
  WanEncoder3d encoder_;
  WanDecoder3d decoder_;
  WanCausalConv3d quant_conv_, post_quant_conv_;
};

// Loads config.json and the weights of an AutoencoderKLWan from a component folder, or from a
// pipeline folder (its vae/). Error naming the folder, file or tensor on anything wrong.
std::unique_ptr<AutoencoderKLWan> load_autoencoder_kl_wan(
    const std::filesystem::path& dir, const core::Placement& place = core::DType::F32);

}  // namespace paradit::models::vae
