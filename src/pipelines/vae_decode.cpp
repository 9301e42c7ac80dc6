#include "pipelines/vae_decode.h"

#include "parallel/video_vae_patch.h"

namespace paradit::pipelines {

using core::Tensor;

Tensor decode_row_parallel(const models::vae::AutoencoderKL& vae, const Tensor& z,
                           const comm::Communicator& group, parallel::RowSplitTimes* times) {
  if (group.size() == 1 && times == nullptr) return vae.decode(z);
  return parallel::decode_in_bands(
      z, group, vae.scale_factor(),
      [&](const Tensor& local, const parallel::SpatialOps& ops) { return vae.decode(local, ops); },
      times);  // (N, out, h·f, w·f)
}

models::vae::LatentDistribution encode_row_parallel(const models::vae::AutoencoderKL& vae,
                                                    const Tensor& x,
                                                    const comm::Communicator& group) {
  if (group.size() == 1) return vae.encode(x);
  auto [mean, std] = parallel::encode_in_bands(
      x, group, vae.scale_factor(), [&](const Tensor& local, const parallel::SpatialOps& ops) {
        models::vae::LatentDistribution d = vae.encode(local, ops);
        return std::pair<Tensor, Tensor>{d.mean, d.std};
      });
  models::vae::LatentDistribution dist;
  dist.mean = mean;  // (N, latent, h, w)
  dist.std = std;    // (N, latent, h, w)
  return dist;
}

Tensor decode_video_row_parallel(const models::vae::AutoencoderKLWan& vae, const Tensor& z,
                                 const comm::Communicator& group) {
  if (group.size() == 1) return vae.decode(z);
  return parallel::decode_video_in_bands(
      z, group, vae.spatial_factor(),
      [&](const Tensor& local, const parallel::VideoSpatialOps& ops) { return vae.decode(local, ops); });
}

Tensor decode_video_row_parallel(const models::vae::AutoencoderKLHunyuanVideo& vae, const Tensor& z,
                                 const comm::Communicator& group) {
  if (group.size() == 1) return vae.decode(z);
  return parallel::decode_video_in_bands(
      z, group, vae.spatial_factor(),
      [&](const Tensor& local, const parallel::VideoSpatialOps& ops) { return vae.decode(local, ops); });
}

void decode_video_row_parallel_streaming(const models::vae::AutoencoderKLWan& vae, const Tensor& z,
                                         const comm::Communicator& group,
                                         const std::function<void(const Tensor&)>& on_frames) {
  if (group.size() == 1) return vae.decode_streaming(z, on_frames);
  parallel::decode_video_in_bands_streaming(
      z, group, vae.spatial_factor(),
      [&](const Tensor& local, const parallel::VideoSpatialOps& ops,
          const parallel::FramesSink& emit) { vae.decode_streaming(local, emit, ops); },
      on_frames);
}

}  // namespace paradit::pipelines
