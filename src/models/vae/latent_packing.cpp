// Flux latent packing by view + permute, the way diffusers writes it.
#include "models/vae/latent_packing.h"

namespace paradit::models::vae {

using core::Tensor;

Tensor pack_latents(const Tensor& latents) {
  PARADIT_CHECK(latents.defined() && latents.ndim() == 4, "pack_latents: latents ",
                latents.defined() ? latents.str() : std::string("undefined"),
                " must be (B, C, H, W)");
  const int64_t B = latents.dim(0), C = latents.dim(1), H = latents.dim(2), W = latents.dim(3);
  PARADIT_CHECK(H % 2 == 0 && W % 2 == 0 && H > 0 && W > 0, "pack_latents: latents ", latents.str(),
                " must have an even, positive height and width");
  const Tensor x = latents.to(core::DType::F32).contiguous();
  return x
      .reshape({B, C, H / 2, 2, W / 2, 2})      // (B, C, H/2, 2, W/2, 2)
      .permute({0, 2, 4, 1, 3, 5})              // (B, H/2, W/2, C, 2, 2)
      .reshape({B, (H / 2) * (W / 2), C * 4});  // (B, H/2·W/2, C·4)
}

Tensor unpack_latents(const Tensor& packed, int64_t height, int64_t width) {
  PARADIT_CHECK(height > 0 && width > 0 && height % 2 == 0 && width % 2 == 0,
                "unpack_latents: latent size ", height, "x", width, " must be even and positive");
  PARADIT_CHECK(packed.defined() && packed.ndim() == 3 &&
                    packed.dim(1) == (height / 2) * (width / 2) && packed.dim(2) % 4 == 0,
                "unpack_latents: packed latents ",
                packed.defined() ? packed.str() : std::string("undefined"), " must be (B, ",
                (height / 2) * (width / 2), ", 4·C) for a ", height, "x", width, " latent");
  const int64_t B = packed.dim(0), C = packed.dim(2) / 4;
  const Tensor x = packed.to(core::DType::F32).contiguous();
  return x
      .reshape({B, height / 2, width / 2, C, 2, 2})  // (B, H/2, W/2, C, 2, 2)
      .permute({0, 3, 1, 4, 2, 5})                   // (B, C, H/2, 2, W/2, 2)
      .reshape({B, C, height, width});               // (B, C, H, W)
}

int64_t packed_latent_size(int64_t pixels, int64_t vae_scale_factor) {
  PARADIT_CHECK(vae_scale_factor > 0, "packed_latent_size: vae_scale_factor ", vae_scale_factor,
                " must be positive");
  return 2 * (pixels / (vae_scale_factor * 2));
}

}  // namespace paradit::models::vae
