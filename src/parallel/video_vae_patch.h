#pragma once
// Row-parallel video VAE decode (`--use_parallel_vae` for AutoencoderKLWan and
// AutoencoderKLHunyuanVideo): the ranks of one group share one clip and each decodes a
// contiguous band of its latent rows, top to bottom in rank order, with every frame and every
// time chunk. As in the image version (parallel/vae_patch.h), only three operations look
// outside a pixel's own row, and VideoRowSplitOps gives each a row-split form:
//   - 3-D convolutions with kernel height > 1 exchange halo rows with the neighbour bands
//     (isend / irecv) for every frame; the frame border keeps its zero or replicate padding;
//   - GroupNorm (HunyuanVideo) combines every band's statistics (parallel::RowSplitOps);
//   - the mid-block attention gathers the keys and values of all bands (at the latent
//     resolution, where they are small) and attends its own queries; HunyuanVideo's
//     frame-causal mask stays exact because the keys come back frame by frame.
// The causal time caches hold each rank's own rows, so they stay per rank. The result equals
// the single-process decode up to floating-point reassociation.

#include <functional>

#include "comm/communicator.h"
#include "core/tensor.h"
#include "parallel/spatial_ops.h"

namespace paradit::parallel {

// VideoSpatialOps over the ranks of `group`, each holding the band of rows given by its rank.
// Every rank of the group must run the same decode (the operations are collective). The group
// must outlive the object.
class VideoRowSplitOps : public VideoSpatialOps {
 public:
  explicit VideoRowSplitOps(const comm::Communicator& group) : group_(group) {}

  // x: local rows (N, C, T, h, W) → local rows of the whole-frame conv. Stride 1 in height with
  // pad_top = pad_bottom = (kh − 1)/2 (every decoder conv); anything else → Error. A neighbour
  // band thinner than the halo → Error.
  core::Tensor conv3d(const core::Tensor& x, const core::Tensor& w, const core::Tensor& bias,
                      const core::Conv3dOptions& opt) const override;
  // x: local rows (N, C, T, h, W); statistics over the whole frames.
  core::Tensor group_norm(const core::Tensor& x, int groups, const core::Tensor& weight,
                          const core::Tensor& bias, float eps) const override;
  // Every rank's x concatenated along `dim` in rank order (bands may differ in size).
  core::Tensor gather_rows(const core::Tensor& x, int dim) const override;

  const comm::Communicator& group() const { return group_; }

 private:
  const comm::Communicator& group_;
};

// The band machinery of a row-parallel video decode, the VAE given as `decode(local_z, ops)`:
// this rank's band of z's rows (z: (N, C, t, h, w), the same whole latent on every rank; needs
// h ≥ group.size()) decoded with VideoRowSplitOps over `group`, then every band's decoded rows
// (spatial_factor per latent row) all-gathered: the whole clip on every rank. Collective over
// the group. (pipelines/vae_decode.h binds it to the VAE models.)
using VideoBandDecode =
    std::function<core::Tensor(const core::Tensor& local, const VideoSpatialOps& ops)>;
core::Tensor decode_video_in_bands(const core::Tensor& z, const comm::Communicator& group,
                                   int64_t spatial_factor, const VideoBandDecode& decode);
// The same for a streaming decode: `decode(local_z, ops, emit)` emits this rank's rows of each
// piece of frames; each piece's whole rows, gathered on every rank, go to `on_frames`.
using FramesSink = std::function<void(const core::Tensor& frames)>;
using VideoBandStream = std::function<void(const core::Tensor& local, const VideoSpatialOps& ops,
                                           const FramesSink& emit)>;
void decode_video_in_bands_streaming(const core::Tensor& z, const comm::Communicator& group,
                                     int64_t spatial_factor, const VideoBandStream& decode,
                                     const FramesSink& on_frames);

}  // namespace paradit::parallel
