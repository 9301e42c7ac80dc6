// The steps the video pipelines (wan.cpp, hunyuan_video.cpp) share: the [uncond, cond] noise
// prediction and the per-video (optionally row-parallel) VAE decode.
#include <chrono>

#include "core/error.h"
#include "core/ops.h"
#include "models/vae/hunyuan_video.h"
#include "models/vae/wan.h"
#include "pipelines/vae_decode.h"
#include "pipelines/families.h"

namespace paradit::pipelines::detail {

namespace {

using core::Tensor;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// load(vae_dir) → the VAE; denormalize(vae, latents) → z; then each video decoded alone, or
// row-parallel over the group (--use_parallel_vae, collective).
template <class Load, class Denormalize>
Tensor load_and_decode_video(const Load& load, const Denormalize& denormalize,
                             const std::filesystem::path& vae_dir, const Tensor& latents,
                             const comm::Communicator* group, PhaseTimes* times) {
  const auto t0 = Clock::now();
  const auto vae = load(vae_dir);
  times->load += seconds_since(t0);
  const auto t1 = Clock::now();
  const Tensor z = denormalize(*vae, latents);  // (B, C, f, h, w)
  const bool split = group && group->size() > 1;
  Tensor video = decode_each_video(z, [&](const Tensor& zb) {
    return split ? decode_video_row_parallel(*vae, zb, *group)
                 : vae->decode(zb);  // (1, 3, F, H, W)
  });  // (B, 3, F, H, W)
  times->decode += seconds_since(t1);
  return video;
}

}  // namespace

Tensor predict_video_noise(const Tensor& latents, double t, const NamedTensors& conditioning,
                           std::optional<double> cfg_scale,
                           const std::function<Tensor(const NamedTensors&)>& run) {
  const int64_t batch = latents.dim(0);
  NamedTensors in = conditioning;
  in["hidden_states"] =
      cfg_scale ? core::concat({latents, latents}, 0) : latents;  // (2B, C, f, h, w)
  in["timestep"] = full_vector(in["hidden_states"].dim(0), static_cast<float>(t));
  Tensor noise = run(in);  // (2B, C, f, h, w)
  if (cfg_scale) {
    noise = guide(noise.slice(0, 0, batch), noise.slice(0, batch, 2 * batch),
                  *cfg_scale);  // (B, C, f, h, w)
  }
  return noise;
}

Tensor decode_wan_video(const std::filesystem::path& vae_dir, const core::Placement& place,
                        const Tensor& latents, const comm::Communicator* group,
                        PhaseTimes* times) {
  return load_and_decode_video(
      [&](const std::filesystem::path& dir) {
        return models::vae::load_autoencoder_kl_wan(dir, place);
      },
      [](const models::vae::AutoencoderKLWan& vae, const Tensor& x) {
        // latents / (1 / latents_std) + latents_mean, per channel, in f32.
        return vae.unnormalize_latents(x);  // (B, z_dim, f, h, w)
      },
      vae_dir, latents, group, times);
}

Tensor decode_hunyuan_video(const std::filesystem::path& vae_dir, const core::Placement& place,
                            const Tensor& latents, const comm::Communicator* group,
                            PhaseTimes* times) {
  return load_and_decode_video(
      [&](const std::filesystem::path& dir) {
        return models::vae::load_autoencoder_kl_hunyuan_video(dir, place);
      },
      [](const models::vae::AutoencoderKLHunyuanVideo& vae, const Tensor& x) {
        return vae.unscale_latents(x);  // (B, C, f, h, w)
      },
      vae_dir, latents, group, times);
}

void check_negative_embeds(const Tensor& ne, const Tensor& pe) {
  PARADIT_CHECK(ne.shape() == pe.shape(), "--prompt_embeds: tensor 'negative_prompt_embeds' "
                "has shape ", core::shape_str(ne.shape()), ", expected ",
                core::shape_str(pe.shape()), " (as prompt_embeds)");
}

Tensor cfg_rows(const NamedTensors& e, const std::string& name, bool cfg) {
  const Tensor pos = find(e, name);
  return cfg ? core::concat({find(e, "negative_" + name), pos}, 0) : pos;
}

}  // namespace paradit::pipelines::detail
