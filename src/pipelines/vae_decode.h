#pragma once
// The VAE models' decode and encode split by rows across the ranks of a group (--use_parallel_vae):
// each rank decodes a contiguous band of the latent rows through the row-split operations of
// parallel/vae_patch.h and parallel/video_vae_patch.h, and the bands are gathered. The result
// equals the single-process decode up to floating-point reassociation. Collective over the
// group; a size-1 group is the plain decode.

#include <functional>

#include "comm/communicator.h"
#include "core/tensor.h"
#include "models/vae/autoencoder_kl.h"
#include "models/vae/hunyuan_video.h"
#include "models/vae/wan.h"
#include "parallel/vae_patch.h"

namespace paradit::pipelines {

// vae.decode(z) with the latent rows split across `group`. z: (N, C, h, w), the full latent, the
// same on every rank; needs h ≥ group.size(). Returns the full decoded image
// (N, out_channels, h·f, w·f) on every rank. times: when given, this rank's per-operation times
// are added to it.
core::Tensor decode_row_parallel(const models::vae::AutoencoderKL& vae, const core::Tensor& z,
                                 const comm::Communicator& group,
                                 parallel::RowSplitTimes* times = nullptr);

// vae.encode(x) with the image split into bands of whole latent rows across `group`. x: (N,
// in_channels, H, W), the full image on every rank; needs H / scale_factor ≥ group.size().
// Returns the full latent distribution on every rank.
models::vae::LatentDistribution encode_row_parallel(const models::vae::AutoencoderKL& vae,
                                                    const core::Tensor& x,
                                                    const comm::Communicator& group);

// vae.decode(z) of a video VAE with the latent rows split across `group`. z: (N, C, t, h, w), the
// whole latent on every rank; needs h ≥ group.size(). Returns the whole clip
// (N, out_channels, F, h·8, w·8) on every rank.
core::Tensor decode_video_row_parallel(const models::vae::AutoencoderKLWan& vae,
                                       const core::Tensor& z, const comm::Communicator& group);
core::Tensor decode_video_row_parallel(const models::vae::AutoencoderKLHunyuanVideo& vae,
                                       const core::Tensor& z, const comm::Communicator& group);

// AutoencoderKLWan::decode_streaming split the same way: each latent frame's decoded frames
// (N, out_channels, f, h·8, w·8), whole rows gathered on every rank, go to `on_frames` as soon
// as they are ready, so memory does not grow with the frame count.
void decode_video_row_parallel_streaming(const models::vae::AutoencoderKLWan& vae,
                                         const core::Tensor& z, const comm::Communicator& group,
                                         const std::function<void(const core::Tensor&)>& on_frames);

}  // namespace paradit::pipelines
