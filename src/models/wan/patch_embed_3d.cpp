#include "models/wan/patch_embed_3d.h"

#include <string>

#include "core/ops.h"

namespace paradit::models::wan {

using core::Tensor;

Patch3d token_grid(const Tensor& latent, const Patch3d& p, const char* model) {
  PARADIT_CHECK(latent.ndim() == 5, model, ": expected latents (B, C, F, H, W), got ",
                core::shape_str(latent.shape()));
  PARADIT_CHECK(p[0] > 0 && p[1] > 0 && p[2] > 0, model, ": patch sizes must be positive, got ",
                p[0], "x", p[1], "x", p[2]);
  const int64_t F = latent.dim(2), H = latent.dim(3), W = latent.dim(4);
  PARADIT_CHECK(F % p[0] == 0 && H % p[1] == 0 && W % p[2] == 0, model, ": latent size ", F, "x", H,
                "x", W, " (frames x height x width) is not a multiple of the patch size ", p[0],
                "x", p[1], "x", p[2]);
  return {F / p[0], H / p[1], W / p[2]};
}

Tensor patchify_3d(const Tensor& x, const Patch3d& p) {
  PARADIT_CHECK(x.ndim() == 5, "patchify_3d: expected (B, C, F, H, W), got ", x.str());
  const Patch3d g = token_grid(x, p, "patchify_3d");
  const int64_t B = x.dim(0), C = x.dim(1), K = p[0] * p[1] * p[2];
  // Tensors hold at most 6 dims, so the 8-dim rearrangement goes in two permutes.
  Tensor t = x.contiguous().reshape({B * C * g[0], p[0], g[1], p[1], g[2], p[2]});
  t = t.permute({0, 2, 4, 1, 3, 5});                 // (B·C·f, h, w, pt, ph, pw)
  t = t.reshape({B, C, g[0] * g[1] * g[2], K});      // (B, C, N, K)
  t = t.permute({0, 2, 1, 3});                       // (B, N, C, K)
  return t.reshape({B, g[0] * g[1] * g[2], C * K});  // (B, N, C·K)
}

Tensor unpatchify_3d(const Tensor& x, const Patch3d& g, const Patch3d& p, int64_t C,
                     PatchFeatureOrder order) {
  const int64_t N = g[0] * g[1] * g[2], K = p[0] * p[1] * p[2];
  PARADIT_CHECK(x.ndim() == 3 && x.dim(1) == N && x.dim(2) == K * C, "unpatchify_3d: ", x.str(),
                " does not hold ", g[0], "x", g[1], "x", g[2], " patches of ", p[0], "x", p[1], "x",
                p[2], "x", C);
  const int64_t B = x.dim(0);
  Tensor t;
  if (order == PatchFeatureOrder::kPatchThenChannel) {
    t = x.contiguous().reshape({B, N, K, C}).permute({0, 3, 1, 2});  // (B, C, N, K)
  } else {
    t = x.contiguous().reshape({B, N, C, K}).permute({0, 2, 1, 3});  // (B, C, N, K)
  }
  t = t.reshape({B * C * g[0], g[1], g[2], p[0], p[1], p[2]});      // (B·C·f, h, w, pt, ph, pw)
  t = t.permute({0, 3, 1, 4, 2, 5});                                // (B·C·f, pt, h, ph, w, pw)
  return t.reshape({B, C, g[0] * p[0], g[1] * p[1], g[2] * p[2]});  // (B, C, F, H, W)
}

void PatchEmbed3d::bind(const common::WeightScope& w, int64_t in_channels_, int64_t dim,
                        const Patch3d& patch_) {
  patch = patch_;
  in_channels = in_channels_;
  const int64_t K = patch[0] * patch[1] * patch[2];
  weight = w.matrix("weight", {dim, in_channels, patch[0], patch[1], patch[2]})
               .reshape({dim, in_channels * K});  // (D, C·pt·ph·pw)
  bias = w.vector("bias", {dim});                 // (D)
}

Tensor PatchEmbed3d::operator()(const Tensor& latent) const {
  Tensor x = patchify_3d(latent, patch);  // (B, N, C·pt·ph·pw)
  return core::linear(x, weight, bias);   // (B, N, D)
}

}  // namespace paradit::models::wan
