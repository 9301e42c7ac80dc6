#pragma once
// Video patches: the Conv3d patch embedding of the video DiTs (kernel = stride = patch size)
// computed as patchify + linear on the same weight, and the inverse rearrangement of the
// output projection. Shared by Wan and HunyuanVideo (they differ only in the feature order of
// their output projection).

#include <array>

#include "core/tensor.h"
#include "models/common/weights.h"
#include "parallel/sequence.h"

namespace paradit::models::wan {

// Patch sizes along (frames, height, width).
using Patch3d = std::array<int64_t, 3>;

// The token grid (frames, rows, columns) of a latent video (B, C, F, H, W) cut into patches;
// Error naming `model` and the sizes when they are not multiples of the patch.
Patch3d token_grid(const core::Tensor& latent, const Patch3d& patch, const char* model);

// x: (B, C, F, H, W) → (B, f·h·w, C·pt·ph·pw): tokens frame-major, then row, then column (as
// diffusers' conv output flattened); each row ordered (c, kt, kh, kw) like a Conv3d weight
// (D, C, pt, ph, pw) flattened.
core::Tensor patchify_3d(const core::Tensor& x, const Patch3d& patch);

// How the output projection orders the values of one token.
enum class PatchFeatureOrder {
  kPatchThenChannel,  // (kt, kh, kw, c): Wan
  kChannelThenPatch,  // (c, kt, kh, kw): HunyuanVideo
};

// x: (B, f·h·w, pt·ph·pw·C) → (B, C, f·pt, h·ph, w·pw)
core::Tensor unpatchify_3d(const core::Tensor& x, const Patch3d& grid, const Patch3d& patch,
                           int64_t channels, PatchFeatureOrder order);

// nn.Conv3d(in_channels, dim, kernel_size=patch, stride=patch) bound under its own name
// (`weight` (D, C, pt, ph, pw), `bias` (D)).
struct PatchEmbed3d {
  Patch3d patch{1, 2, 2};
  int64_t in_channels = 0;
  core::Tensor weight;  // (D, C·pt·ph·pw), F32 or BF16
  core::Tensor bias;    // (D)
  void bind(const common::WeightScope& w, int64_t in_channels, int64_t dim, const Patch3d& patch);
  // latent: (B, C, F, H, W) → (B, f·h·w, D)
  core::Tensor operator()(const core::Tensor& latent) const;
};

}  // namespace paradit::models::wan
