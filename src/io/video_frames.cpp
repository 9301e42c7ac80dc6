// The FFmpeg-free half of io/video.h: the video pipelines' postprocess numerics (to_rgb8_video)
// and the overloads of save_mp4 that check and flatten their frames before the raw save_mp4 of
// video.cpp (FFmpeg) or video_no_ffmpeg.cpp.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/video.h"

namespace paradit::io {

namespace fs = std::filesystem;

namespace {

// One value as the pipelines' postprocess then export_to_video / numpy_to_pil produce it.
uint8_t to_byte(float x, FrameRounding rounding) {
  float v = x * 0.5f + 0.5f;   // x/2 exactly: the product by 0.5 rounds nothing
  if (!(v >= 0.0f)) v = 0.0f;  // NaN too: numpy's cast of NaN is unspecified; 0 is stable
  if (v > 1.0f) v = 1.0f;
  const float scaled = v * 255.0f;  // f32 product, as numpy computes (frame * 255)
  return static_cast<uint8_t>(rounding == FrameRounding::kRound ? std::nearbyint(scaled)
                                                                : std::trunc(scaled));
}

}  // namespace

std::vector<uint8_t> to_rgb8_video(const core::Tensor& video, FrameRounding rounding) {
  PARADIT_CHECK(video.defined(), "to_rgb8_video: the video tensor is undefined");
  PARADIT_CHECK(video.dtype() == core::DType::F32, "to_rgb8_video: video ", video.str(),
                " must be F32");
  PARADIT_CHECK(
      (video.ndim() == 4 || (video.ndim() == 5 && video.dim(0) == 1)) && video.dim(-4) == 3,
      "to_rgb8_video: video ", video.str(), " must be (3, F, H, W) or (1, 3, F, H, W)");
  const core::Tensor x = video.contiguous();
  const int64_t F = x.dim(-3), H = x.dim(-2), W = x.dim(-1);
  const int64_t plane = H * W;
  const float* src = x.data<float>();
  std::vector<uint8_t> out(static_cast<size_t>(F * plane * 3));
#pragma omp parallel for schedule(static) if (F * plane >= (1 << 16))
  for (int64_t f = 0; f < F; ++f) {
    uint8_t* dst = out.data() + f * plane * 3;  // (H, W, 3)
    for (int64_t c = 0; c < 3; ++c) {
      const float* chan = src + (c * F + f) * plane;  // channel c of frame f
      for (int64_t p = 0; p < plane; ++p) dst[p * 3 + c] = to_byte(chan[p], rounding);
    }
  }
  return out;
}

void save_mp4(const fs::path& path, const core::Tensor& frames, double fps,
              const Mp4Options& options) {
  PARADIT_CHECK(frames.defined() && frames.dtype() == core::DType::U8 && frames.ndim() == 4 &&
                    frames.dim(3) == 3,
                path.string(), ": cannot write MP4 from frames ",
                frames.defined() ? frames.str() : std::string("undefined"),
                " (expected (F, H, W, 3) U8)");
  PARADIT_CHECK(
      frames.dim(0) <= (1 << 30) && frames.dim(1) <= (1 << 30) && frames.dim(2) <= (1 << 30),
      path.string(), ": cannot write MP4 from frames ", frames.str(), " (too large)");
  const core::Tensor c = frames.contiguous();
  save_mp4(path, c.data<uint8_t>(), static_cast<int>(c.dim(0)), static_cast<int>(c.dim(1)),
           static_cast<int>(c.dim(2)), fps, options);
}

void save_mp4(const fs::path& path, const std::vector<RgbImage>& frames, double fps,
              const Mp4Options& options) {
  PARADIT_CHECK(!frames.empty(), path.string(),
                ": cannot write MP4 of 0 frames (expected at least 1)");
  const int H = frames[0].height, W = frames[0].width;
  const size_t bytes = static_cast<size_t>(std::max(H, 0)) * std::max(W, 0) * 3;
  std::vector<uint8_t> all;
  all.reserve(bytes * frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    PARADIT_CHECK(frames[i].height == H && frames[i].width == W && frames[i].rgb.size() == bytes,
                  path.string(), ": cannot write MP4: frame ", i, " is ", frames[i].width, "x",
                  frames[i].height, " (width x height) with ", frames[i].rgb.size(),
                  " bytes, frame 0 is ", W, "x", H);
    all.insert(all.end(), frames[i].rgb.begin(), frames[i].rgb.end());
  }
  save_mp4(path, all.data(), static_cast<int>(frames.size()), H, W, fps, options);
}

void save_mp4_video(const fs::path& path, const core::Tensor& video, double fps,
                    FrameRounding rounding, const Mp4Options& options) {
  const std::vector<uint8_t> rgb = to_rgb8_video(video, rounding);
  save_mp4(path, rgb.data(), static_cast<int>(video.dim(-3)), static_cast<int>(video.dim(-2)),
           static_cast<int>(video.dim(-1)), fps, options);
}

}  // namespace paradit::io
