#include "server/executor.h"

#include <algorithm>

#include "core/error.h"
#include "io/image.h"
#include "io/video.h"
#include "pipelines/pipeline.h"
#include "server/encoding.h"

namespace paradit::server {

namespace {

pipelines::GenerateRequest to_generate_request(const ImageRequest& r) {
  pipelines::GenerateRequest g;
  // One batch of n copies: the latents are one randn draw of shape (n, C, h, w) from the seed,
  // exactly as `paradit generate` draws them for n prompts.
  g.prompts.assign(static_cast<size_t>(r.n), r.prompt);
  g.negative_prompt = r.negative_prompt;
  g.height = r.height;
  g.width = r.width;
  g.num_inference_steps = r.num_inference_steps;
  g.guidance_scale = r.guidance_scale;
  g.seed = r.seed;
  g.num_frames = r.num_frames;
  if (r.use_fbcache || r.use_teacache) {
    g.cache.method = r.use_fbcache ? models::CacheMethod::kFirstBlock : models::CacheMethod::kTea;
    g.cache.threshold = r.use_fbcache ? r.fbcache_threshold : r.teacache_threshold;
    g.cache.warmup_steps = r.cache_warmup_steps;
  }
  return g;
}

class LocalExecutor final : public Executor {
 public:
  explicit LocalExecutor(pipelines::Pipeline& pipe) : pipe_(pipe) {}

  void check(const ImageRequest& request) const override { check_request(pipe_, request); }

  std::vector<std::string> run(const ImageRequest& request, const StepHook& on_step) override {
    return run_request(pipe_, request, on_step);
  }

 private:
  pipelines::Pipeline& pipe_;
};

// Each video of a (n, 3, F, H, W) batch as MP4 file bytes: exactly what `paradit generate` writes
// (the pipeline's frame rounding, save_mp4's encoder and settings) at the request's fps.
std::vector<std::string> encode_videos(const pipelines::Pipeline& pipe,
                                       const ImageRequest& request, const core::Tensor& videos) {
  PARADIT_CHECK(videos.defined() && videos.ndim() == 5 && videos.dim(0) == request.n &&
                    request.num_frames && videos.dim(2) == *request.num_frames && request.fps,
                "serve: the pipeline returned ",
                videos.defined() ? core::shape_str(videos.shape()) : std::string("no videos"),
                ", expected ", request.n, " video(s) of ", request.num_frames.value_or(0),
                " frames");
  const io::FrameRounding rounding =
      pipe.defaults().round_frames ? io::FrameRounding::kRound : io::FrameRounding::kTruncate;
  const int f = static_cast<int>(videos.dim(2));
  const int h = static_cast<int>(videos.dim(3));
  const int w = static_cast<int>(videos.dim(4));
  std::vector<std::string> mp4s;
  for (int i = 0; i < request.n; ++i) {
    const std::vector<uint8_t> rgb =
        io::to_rgb8_video(videos.slice(0, i, i + 1), rounding);  // F·H·W·3, HWC per frame
    mp4s.push_back(io::encode_mp4(rgb.data(), f, h, w, *request.fps));
  }
  return mp4s;
}

}  // namespace

void check_request(const pipelines::Pipeline& pipe, const ImageRequest& request) {
  try {
    pipe.resolve(to_generate_request(request));
  } catch (const Error& e) {
    throw BadRequest(e.what());
  }
}

namespace {

// Each image of a (n, 3, H, W) batch as a file in the request's output format.
std::vector<std::string> encode_images(const ImageRequest& request, const core::Tensor& images) {
  PARADIT_CHECK(images.defined() && images.ndim() == 4 && images.dim(0) == request.n,
                "serve: the pipeline returned ",
                images.defined() ? core::shape_str(images.shape()) : std::string("no images"),
                ", expected ", request.n, " image(s)");
  const int h = static_cast<int>(images.dim(2));
  const int w = static_cast<int>(images.dim(3));
  const std::vector<uint8_t> rgb = io::to_rgb8(images);  // n·H·W·3, HWC per image
  const size_t per_image = static_cast<size_t>(h) * static_cast<size_t>(w) * 3;
  std::vector<std::string> files;
  for (int i = 0; i < request.n; ++i) {
    files.push_back(encode_image(rgb.data() + static_cast<size_t>(i) * per_image, h, w,
                                 request.output_format, request.output_compression));
  }
  return files;
}

}  // namespace

std::vector<std::string> run_request(pipelines::Pipeline& pipe, const ImageRequest& request,
                                     const StepHook& on_step, bool encode) {
  std::vector<int> previews;  // the steps that show one
  const pipelines::GenerateResult result =
      pipe.generate(to_generate_request(request), [&](const pipelines::StepEvent& e) {
        if (previews.empty() && e.index == 0)
          previews = preview_steps(request.partial_images, e.total);
        StepProgress p{e.index + 1, e.total, e.seconds, {}};
        if (encode && e.preview &&
            std::find(previews.begin(), previews.end(), p.step) != previews.end()) {
          const core::Tensor images = e.preview();  // (n, 3, H, W)
          if (images.defined()) p.previews = encode_images(request, images);
        }
        if (on_step) on_step(p);
      });
  if (!encode) return {};
  if (pipe.is_video()) return encode_videos(pipe, request, result.images);
  return encode_images(request, result.images);
}

std::unique_ptr<Executor> make_local_executor(pipelines::Pipeline& pipe) {
  return std::make_unique<LocalExecutor>(pipe);
}

}  // namespace paradit::server
