#include "server/executor.h"

#include "core/error.h"
#include "io/image.h"
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

}  // namespace

void check_request(const pipelines::Pipeline& pipe, const ImageRequest& request) {
  try {
    pipe.resolve(to_generate_request(request));
  } catch (const Error& e) {
    throw BadRequest(e.what());
  }
}

std::vector<std::string> run_request(pipelines::Pipeline& pipe, const ImageRequest& request,
                                     const StepHook& on_step, bool encode) {
  const pipelines::GenerateResult result =
      pipe.generate(to_generate_request(request), [&](const pipelines::StepEvent& e) {
        if (on_step) on_step(e.index + 1, e.total, e.seconds);
      });
  if (!encode) return {};
  const core::Tensor& images = result.images;  // (n, 3, H, W)
  PARADIT_CHECK(images.defined() && images.ndim() == 4 && images.dim(0) == request.n,
                "serve: the pipeline returned ",
                images.defined() ? core::shape_str(images.shape()) : std::string("no images"),
                ", expected ", request.n, " image(s)");
  const int h = static_cast<int>(images.dim(2));
  const int w = static_cast<int>(images.dim(3));
  const std::vector<uint8_t> rgb = io::to_rgb8(images);  // n·H·W·3, HWC per image
  const size_t per_image = static_cast<size_t>(h) * static_cast<size_t>(w) * 3;
  std::vector<std::string> pngs;
  for (int i = 0; i < request.n; ++i) {
    pngs.push_back(encode_png(rgb.data() + static_cast<size_t>(i) * per_image, h, w));
  }
  return pngs;
}

std::unique_ptr<Executor> make_local_executor(pipelines::Pipeline& pipe) {
  return std::make_unique<LocalExecutor>(pipe);
}

}  // namespace paradit::server
