#pragma once
// The LLM-conditioned pipelines (llm_families.cpp): Flux2Pipeline, Flux2KleinPipeline,
// ZImagePipeline, QwenImagePipeline. Kept apart from families.h so that adding them touches
// Pipeline::open in one line.

#include <memory>

#include "pipelines/pipeline.h"

namespace paradit::pipelines {

// The pipeline of folder's model_index.json class, or null when it is not one of these.
std::unique_ptr<Pipeline> make_llm_family_pipeline(const io::ModelFolder& folder);

// FLUX.2: packed (B, S, 4C) latents → the VAE-space latents (B, C, 2h, 2w) that
// Flux2KleinPipeline returns for output_type "latent" (BatchNorm de-normalized, unpatchified).
core::Tensor flux2_vae_space_latents(const Pipeline& pipeline, const core::Tensor& latents,
                                     int64_t height, int64_t width);

}  // namespace paradit::pipelines
