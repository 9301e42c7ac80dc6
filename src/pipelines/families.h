#pragma once
// The pipeline families behind Pipeline::open (one .cpp each), and helpers they share.

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "pipelines/pipeline.h"

namespace paradit::pipelines {

std::unique_ptr<Pipeline> make_flux_pipeline(const io::ModelFolder& folder);
std::unique_ptr<Pipeline> make_sd3_pipeline(const io::ModelFolder& folder);
std::unique_ptr<Pipeline> make_pixart_pipeline(const io::ModelFolder& folder);
std::unique_ptr<Pipeline> make_dit_pipeline(const io::ModelFolder& folder);
std::unique_ptr<Pipeline> make_wan_pipeline(const io::ModelFolder& folder);
std::unique_ptr<Pipeline> make_hunyuan_video_pipeline(const io::ModelFolder& folder);

namespace detail {

// uncond + g · (cond − uncond) element by element in f32, as the pipelines compute the guided
// noise. uncond, cond: same shape, any strides → contiguous result.
core::Tensor guide(const core::Tensor& uncond, const core::Tensor& cond, double guidance_scale);

// latents / scaling_factor (+ shift_factor when given), f32 division then addition as torch.
core::Tensor unscale(const core::Tensor& latents, double scaling_factor,
                     std::optional<double> shift_factor);

// VAE decode one image at a time (bounds the decoder's activation memory); with a group of more
// than one rank, each image row-parallel over it (parallel::decode_row_parallel, collective).
// z: (B, C, h, w) → (B, 3, H, W)
core::Tensor decode_batch(const models::vae::AutoencoderKL& vae, const core::Tensor& z,
                          const comm::Communicator* group = nullptr);

// Video VAE decode one video at a time (bounds the decoder's activation memory): decode_one
// maps (1, C, f, h, w) → (1, 3, F, H, W).   z: (B, C, f, h, w) → (B, 3, F, H, W)
core::Tensor decode_each_video(const core::Tensor& z,
                               const std::function<core::Tensor(const core::Tensor&)>& decode_one);

// A (n) F32 tensor filled with v.
core::Tensor full_vector(int64_t n, float v);

// The tensor `name` of the given embeddings, or undefined.
core::Tensor find(const NamedTensors& tensors, const std::string& name);

// Error unless `t` is defined with `rank` dims; names the --prompt_embeds tensor.
void check_embedding(const core::Tensor& t, const std::string& name, int rank);

// The negative prompt of a request, repeated per image ("" when unset).
std::vector<std::string> negative_texts(const GenerateRequest& r, int64_t batch);

}  // namespace detail

}  // namespace paradit::pipelines
