#include "models/common/embeddings.h"

#include <cmath>

namespace paradit::models::common {

// ---------------------------------------------------------------- sinusoidal tables
core::Tensor get_timestep_embedding(const core::Tensor& timesteps, int64_t dim,
                                    bool flip_sin_to_cos, double downscale_freq_shift, double scale,
                                    double max_period) {
  PARADIT_CHECK(timesteps.ndim() == 1, "get_timestep_embedding: timesteps must be 1-D, got ",
                timesteps.str());
  PARADIT_CHECK(dim > 0, "get_timestep_embedding: dim must be positive, got ", dim);
  const std::vector<float> t = timesteps.to_vector();
  const int64_t B = static_cast<int64_t>(t.size());
  const int64_t half = dim / 2;
  // diffusers computes the frequencies and arguments in float32; do the same so large
  // timesteps (t·freq up to ~1000) round like the reference.
  const float neg_log = static_cast<float>(-std::log(max_period));
  const float denom = static_cast<float>(static_cast<double>(half) - downscale_freq_shift);
  std::vector<float> freq(half);
  for (int64_t i = 0; i < half; ++i) {
    const float e = neg_log * static_cast<float>(i) / denom;
    freq[i] = std::exp(e);
  }
  std::vector<float> o(static_cast<size_t>(B * dim), 0.0f);  // (B, dim); odd dim: a zero column
  const float s = static_cast<float>(scale);
  const int64_t sin_at = flip_sin_to_cos ? half : 0;
  const int64_t cos_at = flip_sin_to_cos ? 0 : half;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < half; ++i) {
      const float arg = s * (t[b] * freq[i]);
      o[static_cast<size_t>(b * dim + sin_at + i)] =
          static_cast<float>(std::sin(static_cast<double>(arg)));
      o[static_cast<size_t>(b * dim + cos_at + i)] =
          static_cast<float>(std::cos(static_cast<double>(arg)));
    }
  }
  return core::Tensor::from_vector(o, {B, dim});
}

core::Tensor get_1d_sincos_pos_embed(int64_t embed_dim, const std::vector<float>& pos) {
  PARADIT_CHECK(embed_dim > 0 && embed_dim % 2 == 0,
                "get_1d_sincos_pos_embed: embed_dim must be even, got ", embed_dim);
  const int64_t half = embed_dim / 2;
  const int64_t M = static_cast<int64_t>(pos.size());
  std::vector<double> omega(half);
  for (int64_t i = 0; i < half; ++i) {
    omega[i] = 1.0 / std::pow(10000.0, static_cast<double>(i) / (embed_dim / 2.0));
  }
  std::vector<float> o(static_cast<size_t>(M * embed_dim));  // (M, D) = [sin | cos]
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(pos[m]) * omega[i];
      o[static_cast<size_t>(m * embed_dim + i)] = static_cast<float>(std::sin(a));
      o[static_cast<size_t>(m * embed_dim + half + i)] = static_cast<float>(std::cos(a));
    }
  }
  return core::Tensor::from_vector(o, {M, embed_dim});
}

core::Tensor get_2d_sincos_pos_embed(int64_t embed_dim, int64_t grid_h, int64_t grid_w,
                                     double base_size, double interpolation_scale) {
  PARADIT_CHECK(embed_dim > 0 && embed_dim % 4 == 0,
                "get_2d_sincos_pos_embed: embed_dim must be a multiple of 4, got ", embed_dim);
  PARADIT_CHECK(grid_h > 0 && grid_w > 0, "get_2d_sincos_pos_embed: empty grid ", grid_h, "x",
                grid_w);
  // The grid coordinates are float32 in diffusers (arange / (n / base_size) / scale).
  const float step_h = static_cast<float>(static_cast<double>(grid_h) / base_size);
  const float step_w = static_cast<float>(static_cast<double>(grid_w) / base_size);
  const float interp = static_cast<float>(interpolation_scale);
  std::vector<float> col(grid_h * grid_w), row(grid_h * grid_w);
  for (int64_t i = 0; i < grid_h; ++i) {
    for (int64_t j = 0; j < grid_w; ++j) {
      col[i * grid_w + j] = static_cast<float>(j) / step_w / interp;
      row[i * grid_w + j] = static_cast<float>(i) / step_h / interp;
    }
  }
  // diffusers' meshgrid puts the column coordinate first.
  core::Tensor first = get_1d_sincos_pos_embed(embed_dim / 2, col);   // (H·W, D/2)
  core::Tensor second = get_1d_sincos_pos_embed(embed_dim / 2, row);  // (H·W, D/2)
  return core::concat({first, second}, 1);                            // (H·W, D)
}

std::pair<core::Tensor, core::Tensor> get_1d_rotary_pos_embed(int64_t dim,
                                                              const std::vector<double>& pos,
                                                              double theta,
                                                              bool repeat_interleave_real) {
  PARADIT_CHECK(dim > 0 && dim % 2 == 0, "get_1d_rotary_pos_embed: dim must be even, got ", dim);
  const int64_t half = dim / 2;
  const int64_t S = static_cast<int64_t>(pos.size());
  std::vector<double> freq(half);
  for (int64_t i = 0; i < half; ++i) {
    freq[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dim));
  }
  std::vector<float> c(static_cast<size_t>(S * dim)), s(c.size());  // (S, dim) each
  for (int64_t p = 0; p < S; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double a = pos[p] * freq[i];
      const float cv = static_cast<float>(std::cos(a));
      const float sv = static_cast<float>(std::sin(a));
      const int64_t j0 = repeat_interleave_real ? 2 * i : i;
      const int64_t j1 = repeat_interleave_real ? 2 * i + 1 : i + half;
      c[static_cast<size_t>(p * dim + j0)] = cv;
      c[static_cast<size_t>(p * dim + j1)] = cv;
      s[static_cast<size_t>(p * dim + j0)] = sv;
      s[static_cast<size_t>(p * dim + j1)] = sv;
    }
  }
  return {core::Tensor::from_vector(c, {S, dim}), core::Tensor::from_vector(s, {S, dim})};
}

// ---------------------------------------------------------------- modules
void TimestepEmbedding::bind(const WeightScope& w, int64_t in_channels, int64_t time_embed_dim,
                             int64_t out_dim, Activation act_) {
  act = act_;
  linear_1.bind(w / "linear_1", in_channels, time_embed_dim);
  linear_2.bind(w / "linear_2", time_embed_dim, out_dim > 0 ? out_dim : time_embed_dim);
}

core::Tensor TimestepEmbedding::operator()(const core::Tensor& x_in) const {
  // The sinusoidal projection is built on the host: onto the weights' device.
  const core::Tensor x = x_in.to_device(linear_1.weight.device());  // (B, in_channels)
  core::Tensor h = activate(linear_1(x), act);                      // (B, time_embed_dim)
  return linear_2(h);                           // (B, out)
}

void TextProjection::bind(const WeightScope& w, int64_t in_features, int64_t hidden_size,
                          int64_t out_features, Activation act_) {
  act = act_;
  linear_1.bind(w / "linear_1", in_features, hidden_size);
  linear_2.bind(w / "linear_2", hidden_size, out_features > 0 ? out_features : hidden_size);
}

core::Tensor TextProjection::operator()(const core::Tensor& x) const {
  core::Tensor h = activate(linear_1(x), act);  // (..., hidden)
  return linear_2(h);                           // (..., out)
}

void CombinedTimestepTextProjEmbeddings::bind(const WeightScope& w, int64_t embedding_dim,
                                              int64_t pooled_projection_dim, bool guidance) {
  time_proj = Timesteps{256, /*flip_sin_to_cos=*/true, /*downscale_freq_shift=*/0.0, 1.0};
  has_guidance = guidance;
  timestep_embedder.bind(w / "timestep_embedder", 256, embedding_dim);
  if (guidance) guidance_embedder.bind(w / "guidance_embedder", 256, embedding_dim);
  text_embedder.bind(w / "text_embedder", pooled_projection_dim, embedding_dim, 0,
                     Activation::kSiLU);
}

core::Tensor CombinedTimestepTextProjEmbeddings::operator()(const core::Tensor& timestep,
                                                            const core::Tensor& pooled,
                                                            const core::Tensor& guidance) const {
  PARADIT_CHECK(!has_guidance || guidance.defined(),
                "CombinedTimestepGuidanceTextProjEmbeddings: the model embeds guidance but "
                "none was given");
  core::Tensor temb = timestep_embedder(time_proj(timestep));  // (B, D)
  if (has_guidance) {
    core::Tensor gemb = guidance_embedder(time_proj(guidance));  // (B, D)
    temb = core::add(temb, gemb);                                // (B, D)
  }
  core::Tensor pemb = text_embedder(pooled);  // (B, D)
  return core::add(temb, pemb);               // (B, D)
}

void PatchEmbed::bind(const WeightScope& w, const PatchEmbedOptions& options) {
  opt = options;
  const int64_t p = opt.patch_size, C = opt.in_channels, D = opt.embed_dim;
  PARADIT_CHECK(p > 0, "PatchEmbed: patch_size must be positive, got ", p);
  proj_weight = w.matrix("proj.weight", {D, C, p, p}).reshape({D, C * p * p});
  proj_bias = opt.bias ? w.vector("proj.bias", {D}) : core::Tensor{};
  base_size = opt.height / p;
  if (opt.pos_embed == PosEmbedKind::kCropped) {
    const int64_t M = opt.pos_embed_max_size;
    PARADIT_CHECK(M > 0, "PatchEmbed: the cropped position embedding needs pos_embed_max_size");
    pos_table = w.vector("pos_embed", {1, M * M, D}).reshape({M, M, D});
  }
}

core::Tensor PatchEmbed::pos_embed_at(int64_t h, int64_t w) const {
  switch (opt.pos_embed) {
    case PosEmbedKind::kNone:
      return {};
    case PosEmbedKind::kSinCos:
      return get_2d_sincos_pos_embed(opt.embed_dim, h, w, static_cast<double>(base_size),
                                     opt.interpolation_scale);  // (h·w, D)
    case PosEmbedKind::kCropped: {
      const int64_t M = opt.pos_embed_max_size;
      PARADIT_CHECK(h <= M && w <= M, "PatchEmbed: the latent grid ", h, "x", w,
                    " exceeds pos_embed_max_size ", M);
      const int64_t top = (M - h) / 2, left = (M - w) / 2;
      core::Tensor crop = pos_table.slice(0, top, top + h).slice(1, left, left + w);  // (h, w, D)
      return crop.contiguous().reshape({h * w, opt.embed_dim});                       // (h·w, D)
    }
  }
  return {};
}

core::Tensor PatchEmbed::operator()(const core::Tensor& latent) const {
  const int64_t p = opt.patch_size;
  PARADIT_CHECK(latent.ndim() == 4 && latent.dim(1) == opt.in_channels,
                "PatchEmbed: expected latents (B, ", opt.in_channels, ", H, W), got ",
                latent.str());
  PARADIT_CHECK(latent.dim(2) % p == 0 && latent.dim(3) % p == 0, "PatchEmbed: latent size ",
                latent.dim(2), "x", latent.dim(3), " is not a multiple of patch_size ", p);
  const int64_t h = latent.dim(2) / p, w = latent.dim(3) / p;
  core::Tensor x = patchify(latent, p);                        // (B, h·w, C·p·p)
  x = core::linear(x, proj_weight, proj_bias);                 // (B, h·w, D)
  if (opt.layer_norm) x = core::layer_norm(x, {}, {}, 1e-6f);  // (B, h·w, D)
  core::Tensor pos = pos_embed_at(h, w);                       // (h·w, D)
  if (pos.defined()) x = core::add(x, like(pos, x));           // (B, h·w, D)
  return x;
}

}  // namespace paradit::models::common
