#pragma once
// What the KL-style VAEs share: AutoencoderKL (2-D convolutions, SpatialOps) and
// AutoencoderKLHunyuanVideo (causal 3-D convolutions, VideoSpatialOps) build their resnet blocks
// and validate their configs the same way; all the VAEs (Wan too) load from a folder and turn
// the encoder's logvar into a std the same way. Templates, so that each model keeps its own conv,
// norm and ops types.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "io/diffusers.h"
#include "models/common/modules.h"
#include "models/common/weights.h"

namespace paradit::models::vae {

// diffusers builds every norm of these VAEs with eps 1e-6 (vae.py passes resnet_eps=1e-6, and
// the HunyuanVideo VAE the same for its resnets and out norms).
constexpr float kNormEps = 1e-6f;

// A config.json list of strings, or `fallback` when the key is absent; Error naming the file and
// key when it is not a list of strings.
inline std::vector<std::string> string_list(const io::Config& config, const std::string& key,
                                            std::vector<std::string> fallback) {
  if (!config.has(key)) return fallback;
  const io::Json& v = config.json().at(key);
  PARADIT_CHECK(v.is_array(), config.where(), ": '", key, "' must be a list of strings, found ",
                v.type_name());
  std::vector<std::string> out;
  for (const auto& e : v) {
    PARADIT_CHECK(e.is_string(), config.where(), ": '", key,
                  "' must be a list of strings, found an element of type ", e.type_name());
    out.push_back(e.get<std::string>());
  }
  return out;
}

// The checks both KL configs (AutoencoderKLConfig, AutoencoderKLHunyuanVideoConfig: the same
// field names) need: group counts that divide the channels, positive sizes, a usable scaling
// factor and a known activation. Error naming `where` and the key.
template <typename KLConfig>
void check_kl_config(const KLConfig& c, const std::string& where) {
  PARADIT_CHECK(c.norm_num_groups >= 1, where, ": norm_num_groups is ", c.norm_num_groups,
                " (expected a positive number)");
  for (int64_t ch : c.block_out_channels) {
    PARADIT_CHECK(ch >= 1 && ch % c.norm_num_groups == 0, where, ": block_out_channels entry ", ch,
                  " is not a positive multiple of norm_num_groups ", c.norm_num_groups);
  }
  PARADIT_CHECK(c.layers_per_block >= 1, where, ": layers_per_block is ", c.layers_per_block,
                " (expected at least 1)");
  PARADIT_CHECK(c.in_channels >= 1 && c.out_channels >= 1 && c.latent_channels >= 1, where,
                ": in_channels ", c.in_channels, ", out_channels ", c.out_channels,
                ", latent_channels ", c.latent_channels, " must be positive");
  PARADIT_CHECK(c.scaling_factor != 0.0 && std::isfinite(c.scaling_factor), where,
                ": scaling_factor ", c.scaling_factor, " must be finite and nonzero");
  common::activation_from_name(c.act_fn, where + ": act_fn");  // Error when unknown
}

// The forward of diffusers' ResnetBlock2D (no time embedding, output_scale_factor 1) and of
// HunyuanVideoResnetBlockCausal3D: norm1 → act → conv1 → norm2 → act → conv2, plus the input
// (through the 1×1 `shortcut` where the channel count changes, else nullptr). Norms and convs
// are called as norm(x, ops) and conv(x, ops), so the spatial ops (local or row-split) decide
// how they see the rows of other ranks.
// x: (N, in, [T,] H, W) → (N, out, [T,] H, W)
template <typename Norm, typename Conv, typename Ops>
core::Tensor resnet_forward(const core::Tensor& x, const Norm& norm1, const Conv& conv1,
                            const Norm& norm2, const Conv& conv2, const Conv* shortcut,
                            common::Activation act, const Ops& ops) {
  core::Tensor h = common::activate(norm1(x, ops), act);             // (N, in, ...)
  h = conv1(h, ops);                                                 // (N, out, ...)
  h = common::activate(norm2(h, ops), act);                          // (N, out, ...)
  h = conv2(h, ops);                                                 // (N, out, ...)
  const core::Tensor residual = shortcut ? (*shortcut)(x, ops) : x;  // (N, out, ...)
  return core::add(h, residual);                                     // (N, out, ...)
}

// DiagonalGaussianDistribution's std from the logvar half of the moments:
// exp(0.5 · clamp(logvar, -30, 20)), in f32 as torch computes it. logvar: any shape → same shape
inline core::Tensor std_from_logvar(const core::Tensor& logvar) {
  return core::exp(core::scale(core::clamp(logvar, -30.0f, 20.0f), 0.5f));  // same shape
}

// Loads config.json and the weights of a VAE from a component folder, or from a pipeline
// folder (its vae/). Error naming the folder, file or tensor on anything wrong.
template <typename Model, typename Config>
std::unique_ptr<Model> load_vae(const std::filesystem::path& dir, const core::Placement& place) {
  const io::ModelFolder folder = io::ModelFolder::open(dir.string());
  const std::filesystem::path vdir =
      folder.is_pipeline() ? folder.component("vae").dir : folder.root();
  const io::Config config = io::Config::load(vdir / "config.json");
  const Config cfg = Config::from(config);
  // Bound tensors are views of the mapping (or converted copies) and keep it alive.
  const io::TensorSource source = io::TensorSource::open(vdir);
  const common::CheckpointWeights weights(source);
  return std::make_unique<Model>(cfg, weights, place);
}

}  // namespace paradit::models::vae
