#pragma once
// Timestep, text, position and patch embeddings shared by the DiT families, matching diffusers'
// models/embeddings.py numerically (including its float32/float64 choices) and binding the same
// checkpoint names.

#include <utility>
#include <vector>

#include "core/ops.h"
#include "models/common/modules.h"
#include "models/common/weights.h"

namespace paradit::models::common {

// ---------------------------------------------------------------- sinusoidal tables
// diffusers get_timestep_embedding: timesteps (B) any float dtype → (B, dim) F32.
// freq_i = exp(-ln(max_period)·i / (dim/2 − downscale_freq_shift)); [sin | cos] (or
// [cos | sin] when flip_sin_to_cos) of scale·t·freq; a zero column appended for odd dim.
core::Tensor get_timestep_embedding(const core::Tensor& timesteps, int64_t dim,
                                    bool flip_sin_to_cos, double downscale_freq_shift,
                                    double scale = 1.0, double max_period = 10000.0);

// diffusers get_1d_sincos_pos_embed_from_grid: pos (M) → (M, embed_dim) = [sin | cos] of
// pos·omega, omega_i = 1 / 10000^(i / (embed_dim/2)), in float64 then F32.
core::Tensor get_1d_sincos_pos_embed(int64_t embed_dim, const std::vector<float>& pos);

// diffusers get_2d_sincos_pos_embed at grid (grid_h, grid_w): (grid_h·grid_w, embed_dim), token
// n = i·grid_w + j. The first half encodes the column coordinate j / (grid_w/base_size) /
// interpolation_scale, the second half the row coordinate (diffusers' "w goes first").
core::Tensor get_2d_sincos_pos_embed(int64_t embed_dim, int64_t grid_h, int64_t grid_w,
                                     double base_size, double interpolation_scale);

// diffusers get_1d_rotary_pos_embed(use_real=True), frequencies in float64:
// freq_i = 1 / theta^(2i/dim); returns (cos, sin), each (S, dim) F32, each value repeated for
// the pair (repeat_interleave_real → core::RopeStyle::kInterleaved) or the halves concatenated
// (→ kHalfSplit).
std::pair<core::Tensor, core::Tensor> get_1d_rotary_pos_embed(int64_t dim,
                                                              const std::vector<double>& pos,
                                                              double theta,
                                                              bool repeat_interleave_real);

// ---------------------------------------------------------------- modules
// diffusers Timesteps: no weights.
struct Timesteps {
  int64_t num_channels = 256;
  bool flip_sin_to_cos = true;
  double downscale_freq_shift = 0.0;
  double scale = 1.0;
  // t: (B) → (B, num_channels)
  core::Tensor operator()(const core::Tensor& t) const {
    return get_timestep_embedding(t, num_channels, flip_sin_to_cos, downscale_freq_shift, scale);
  }
};

// diffusers TimestepEmbedding: linear_1 → act → linear_2 (no cond_proj, no post_act).
struct TimestepEmbedding {
  Linear linear_1, linear_2;
  Activation act = Activation::kSiLU;
  // out_dim 0 → time_embed_dim.
  void bind(const WeightScope& w, int64_t in_channels, int64_t time_embed_dim, int64_t out_dim = 0,
            Activation act = Activation::kSiLU);
  // x: (B, in_channels) → (B, out)
  core::Tensor operator()(const core::Tensor& x) const;
};

// diffusers PixArtAlphaTextProjection: linear_1 → act (gelu tanh for PixArt's
// caption_projection, silu for Flux/SD3's text_embedder) → linear_2.
struct TextProjection {
  Linear linear_1, linear_2;
  Activation act = Activation::kGeluTanh;
  // out_features 0 → hidden_size.
  void bind(const WeightScope& w, int64_t in_features, int64_t hidden_size,
            int64_t out_features = 0, Activation act = Activation::kGeluTanh);
  // x: (..., in_features) → (..., out_features)
  core::Tensor operator()(const core::Tensor& x) const;
};

// diffusers CombinedTimestepTextProjEmbeddings, or CombinedTimestepGuidanceTextProjEmbeddings
// when `guidance` (Flux-dev): time_proj (256 channels, flip, shift 0), timestep_embedder,
// [guidance_embedder], text_embedder (silu).
struct CombinedTimestepTextProjEmbeddings {
  Timesteps time_proj;
  TimestepEmbedding timestep_embedder;
  TimestepEmbedding guidance_embedder;  // bound only when has_guidance
  TextProjection text_embedder;
  bool has_guidance = false;
  void bind(const WeightScope& w, int64_t embedding_dim, int64_t pooled_projection_dim,
            bool guidance);
  // timestep: (B)   pooled: (B, P)   guidance: (B) or {} → (B, D)
  core::Tensor operator()(const core::Tensor& timestep, const core::Tensor& pooled,
                          const core::Tensor& guidance = {}) const;
};

// diffusers PatchEmbed: proj (a conv with kernel = stride = patch_size, computed as patchify +
// linear on the same weight), optional layer_norm (no affine, eps 1e-6), position embedding.
enum class PosEmbedKind {
  kNone,     // pos_embed_type=None
  kSinCos,   // sincos computed at the input's grid with base_size / interpolation_scale (PixArt,
             // DiT): diffusers' non-persistent buffer
  kCropped,  // SD3: the checkpoint's `pos_embed` (1, M·M, D), M = pos_embed_max_size,
             // center-cropped to the input's grid
};

struct PatchEmbedOptions {
  int64_t height = 224;  // the config's sample_size (latent pixels); sets base_size
  int64_t width = 224;
  int64_t patch_size = 16;
  int64_t in_channels = 3;
  int64_t embed_dim = 768;
  bool layer_norm = false;
  bool bias = true;
  double interpolation_scale = 1.0;
  PosEmbedKind pos_embed = PosEmbedKind::kSinCos;
  int64_t pos_embed_max_size = 0;  // kCropped only
};

struct PatchEmbed {
  PatchEmbedOptions opt;
  core::Tensor proj_weight;  // (D, C·p·p): the conv weight (D, C, p, p) flattened
  core::Tensor proj_bias;    // (D) or undefined
  core::Tensor pos_table;    // kCropped: (M, M, D)
  int64_t base_size = 0;     // height / patch_size
  void bind(const WeightScope& w, const PatchEmbedOptions& options);
  // latent: (B, C, H, W) → (B, (H/p)·(W/p), D). Error when H, W are not multiples of p or the
  // grid exceeds pos_embed_max_size.
  core::Tensor operator()(const core::Tensor& latent) const;
  // The position embedding added at grid (h, w): (h·w, D); undefined for kNone.
  core::Tensor pos_embed_at(int64_t h, int64_t w) const;
};

}  // namespace paradit::models::common
