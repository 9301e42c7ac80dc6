#pragma once
// The pipeline families behind Pipeline::open (one .cpp each), and helpers they share.

#include <filesystem>
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
// than one rank, each image row-parallel over it (decode_row_parallel, collective).
// z: (B, C, h, w) → (B, 3, H, W)
core::Tensor decode_batch(const models::vae::AutoencoderKL& vae, const core::Tensor& z,
                          const comm::Communicator* group = nullptr);

// Video VAE decode one video at a time (bounds the decoder's activation memory): decode_one
// maps (1, C, f, h, w) → (1, 3, F, H, W).   z: (B, C, f, h, w) → (B, 3, F, H, W)
core::Tensor decode_each_video(const core::Tensor& z,
                               const std::function<core::Tensor(const core::Tensor&)>& decode_one);

// The video pipelines' (Wan, HunyuanVideo; video_common.cpp) shared steps.
//
// One step's noise: `run` (the transformer, through the runtime) over the latents, twice as
// [uncond, cond] rows when cfg_scale is set, every row at timestep t; then
// uncond + cfg_scale · (cond − uncond). latents: (B, C, f, h, w) → (B, C, f, h, w)
core::Tensor predict_video_noise(const core::Tensor& latents, double t,
                                 const NamedTensors& conditioning,
                                 std::optional<double> cfg_scale,
                                 const std::function<core::Tensor(const NamedTensors&)>& run);

// Loads the family's video VAE from `vae_dir`, de-normalizes the latents as its pipeline does
// (Wan: · latents_std + latents_mean; HunyuanVideo: / scaling_factor) and decodes one video at a
// time, each row-parallel over `group` when it has more than one rank (collective). Adds the
// load and decode seconds to `times`. latents: (B, C, f, h, w) → (B, 3, F, H, W)
core::Tensor decode_wan_video(const std::filesystem::path& vae_dir, const core::Placement& place,
                              const core::Tensor& latents,
                              const comm::Communicator* group, PhaseTimes* times);
core::Tensor decode_hunyuan_video(const std::filesystem::path& vae_dir, const core::Placement& place,
                                  const core::Tensor& latents, const comm::Communicator* group,
                                  PhaseTimes* times);

// Error unless negative_prompt_embeds `ne` is shaped as prompt_embeds `pe`: one [uncond, cond]
// batch needs equal shapes (diffusers would run two forwards).
void check_negative_embeds(const core::Tensor& ne, const core::Tensor& pe);

// Embeddings `name` of e, as [negative_<name>, <name>] rows when cfg. → (B or 2B, ...)
core::Tensor cfg_rows(const NamedTensors& e, const std::string& name, bool cfg);

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
