#pragma once
// Flux's 2×2 latent packing (diffusers FluxPipeline._pack_latents / _unpack_latents): the
// transformer sees each 2×2 patch of the VAE latents as one token of C·4 values, ordered
// (c, dy, dx).

#include <cstdint>

#include "core/tensor.h"

namespace paradit::models::vae {

// latents: (B, C, H, W) with H, W even → (B, (H/2)·(W/2), C·4)
core::Tensor pack_latents(const core::Tensor& latents);
// packed: (B, (height/2)·(width/2), C·4) → (B, C, height, width); height and width are the
// latent sizes (even).
core::Tensor unpack_latents(const core::Tensor& packed, int64_t height, int64_t width);
// The latent size _unpack_latents derives from an image size: 2·(pixels / (vae_scale_factor·2)).
int64_t packed_latent_size(int64_t pixels, int64_t vae_scale_factor);

}  // namespace paradit::models::vae
