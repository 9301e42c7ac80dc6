// MP4 output: to_rgb8_video against the pipelines' postprocess formula, save_mp4 round trips
// read back with libavformat (codec, pixel format, size, fps, frame count, pixels within the
// lossy-coding error), odd sizes, a decoded Wan video, ffprobe's view when the ffmpeg CLI is
// installed, and unwritable paths (Error naming the path, no file left).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "io/video.h"
#include "models/vae/wan.h"
#include "vae_test_util.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using core::Tensor;
using test::error_of;
using test::TempDir;

// A smooth moving pattern (compresses well, so decoded pixels stay close): F × H × W × 3 bytes.
std::vector<uint8_t> pattern(int frames, int height, int width) {
  std::vector<uint8_t> v(static_cast<size_t>(frames) * height * width * 3);
  for (int f = 0; f < frames; ++f)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        uint8_t* p = v.data() + ((static_cast<size_t>(f) * height + y) * width + x) * 3;
        p[0] = static_cast<uint8_t>(40 + 170 * x / std::max(width - 1, 1));
        p[1] = static_cast<uint8_t>(40 + 170 * y / std::max(height - 1, 1));
        p[2] = static_cast<uint8_t>(60 + 12 * f);
      }
  return v;
}

// Mean |a − b| over the top-left height × width pixels of every frame (b may be padded wider).
double mean_abs_diff(const std::vector<uint8_t>& a, const io::RgbImage& b, int height, int width,
                     size_t frame) {
  double sum = 0;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        const int va = a[((frame * height + y) * width + x) * 3 + c];
        const int vb = b.rgb[(static_cast<size_t>(y) * b.width + x) * 3 + c];
        sum += std::abs(va - vb);
      }
  return sum / (3.0 * height * width);
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

TEST(VideoIo, ToRgb8VideoIsThePipelinePostprocess) {
  // (3, F=2, H=1, W=3): frame-major output, HWC within a frame.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> v = {-1.0f, 0.0f, 1.0f,  0.999f, -0.5f, 2.0f,   // R: f0, f1
                                0.25f, -3.f, nan,   0.5f,   0.1f,  -0.9f,  // G
                                0.7f,  0.3f, -0.2f, 0.0f,   1.0f,  0.6f};  // B
  const Tensor video = Tensor::from_vector(v, {3, 2, 1, 3});
  for (auto rounding : {io::FrameRounding::kTruncate, io::FrameRounding::kRound}) {
    const std::vector<uint8_t> out = io::to_rgb8_video(video.unsqueeze(0), rounding);
    ASSERT_EQ(out.size(), 2u * 3u * 3u);
    for (int f = 0; f < 2; ++f)
      for (int x = 0; x < 3; ++x)
        for (int c = 0; c < 3; ++c) {
          const float in = v[(c * 2 + f) * 3 + x];
          float u = std::isnan(in) ? 0.0f : std::min(std::max(in / 2 + 0.5f, 0.0f), 1.0f);
          const float s = u * 255.0f;
          const int expected = rounding == io::FrameRounding::kRound
                                   ? static_cast<int>(std::nearbyint(s))
                                   : static_cast<int>(s);
          EXPECT_EQ(out[(f * 3 + x) * 3 + c], expected) << "f" << f << " x" << x << " c" << c;
        }
  }
  // 0.999 → 0.9995·255 = 254.87: truncation gives 254 (export_to_video), rounding 255.
  EXPECT_EQ(io::to_rgb8_video(video)[9], 254);
  EXPECT_EQ(io::to_rgb8_video(video, io::FrameRounding::kRound)[9], 255);
  EXPECT_NE(error_of([&] {
              io::to_rgb8_video(Tensor::zeros({2, 3, 1, 4, 4}));
            }).find("(3, F, H, W)"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              io::to_rgb8_video(Tensor::zeros({4, 1, 4, 4}));
            }).find("to_rgb8_video"),
            std::string::npos);
}

TEST(VideoIo, Mp4RoundTrip) {
  TempDir dir("mp4");
  const int F = 10, H = 32, W = 48;
  const std::vector<uint8_t> rgb = pattern(F, H, W);
  const fs::path file = dir.path / "clip.mp4";
  io::save_mp4(file, rgb.data(), F, H, W, 16.0);
  EXPECT_EQ(files_in(dir.path), std::vector<std::string>{"clip.mp4"});  // no temporary left

  const io::VideoFile v = io::read_video(file);
  EXPECT_EQ(v.codec, "h264");
  EXPECT_EQ(v.pixel_format, "yuv420p");
  EXPECT_EQ(v.width, W);
  EXPECT_EQ(v.height, H);
  EXPECT_DOUBLE_EQ(v.fps, 16.0);
  EXPECT_EQ(v.container_frames, F);
  ASSERT_EQ(v.frames.size(), static_cast<size_t>(F));
  for (size_t f = 0; f < v.frames.size(); ++f) {
    ASSERT_EQ(v.frames[f].height, H);
    ASSERT_EQ(v.frames[f].width, W);
    EXPECT_LT(mean_abs_diff(rgb, v.frames[f], H, W, f), 3.0) << "frame " << f;
  }
  // The same frames as a (F, H, W, 3) U8 tensor and as RgbImages, at a fractional rate.
  Tensor t = Tensor::empty({F, H, W, 3}, core::DType::U8);
  std::copy(rgb.begin(), rgb.end(), t.data<uint8_t>());
  io::save_mp4(dir.path / "tensor.mp4", t, 24000.0 / 1001.0);
  const io::VideoFile vt = io::read_video(dir.path / "tensor.mp4");
  EXPECT_NEAR(vt.fps, 24000.0 / 1001.0, 1e-3);
  EXPECT_EQ(vt.frames.size(), static_cast<size_t>(F));
  std::vector<io::RgbImage> images(3);
  for (int f = 0; f < 3; ++f) {
    images[f].height = H;
    images[f].width = W;
    images[f].rgb.assign(rgb.begin() + f * H * W * 3, rgb.begin() + (f + 1) * H * W * 3);
  }
  io::save_mp4(dir.path / "images.mp4", images, 8.0);
  EXPECT_EQ(io::read_video(dir.path / "images.mp4").frames.size(), 3u);
  // FFmpeg's built-in MPEG-4 Part 2 encoder (the fallback where libx264 is missing).
  io::Mp4Options mpeg4;
  mpeg4.encoder = "mpeg4";
  io::save_mp4(dir.path / "mpeg4.mp4", rgb.data(), F, H, W, 16.0, mpeg4);
  const io::VideoFile vm = io::read_video(dir.path / "mpeg4.mp4");
  EXPECT_EQ(vm.codec, "mpeg4");
  EXPECT_EQ(vm.pixel_format, "yuv420p");
  EXPECT_DOUBLE_EQ(vm.fps, 16.0);
  ASSERT_EQ(vm.frames.size(), static_cast<size_t>(F));
  for (size_t f = 0; f < vm.frames.size(); ++f) {
    EXPECT_LT(mean_abs_diff(rgb, vm.frames[f], H, W, f), 4.0) << "mpeg4 frame " << f;
  }
  // A single frame works too (the encoder's delayed frames are flushed).
  io::save_mp4(dir.path / "one.mp4", rgb.data(), 1, H, W, 16.0);
  EXPECT_EQ(io::read_video(dir.path / "one.mp4").frames.size(), 1u);
}

TEST(VideoIo, OddSizesArePaddedToEven) {
  TempDir dir("odd");
  const int F = 3, H = 17, W = 25;
  const std::vector<uint8_t> rgb = pattern(F, H, W);
  io::save_mp4(dir.path / "odd.mp4", rgb.data(), F, H, W, 10.0);
  const io::VideoFile v = io::read_video(dir.path / "odd.mp4");
  EXPECT_EQ(v.width, W + 1);
  EXPECT_EQ(v.height, H + 1);
  ASSERT_EQ(v.frames.size(), static_cast<size_t>(F));
  for (size_t f = 0; f < v.frames.size(); ++f) {
    EXPECT_LT(mean_abs_diff(rgb, v.frames[f], H, W, f), 4.0) << "frame " << f;
  }
}

TEST(VideoIo, DecodedWanVideoToMp4) {
  TempDir dir("wan");
  const auto vae = models::vae::load_autoencoder_kl_wan(test::vae_case_dir("wan"));
  const Tensor z = test::load_fixture("wan", "inputs.safetensors", "latents");
  const Tensor video = vae->decode(z);  // (1, 3, 9, 32, 32)
  io::save_mp4_video(dir.path / "wan.mp4", video, 16.0);
  const io::VideoFile v = io::read_video(dir.path / "wan.mp4");
  EXPECT_EQ(v.frames.size(), 9u);
  EXPECT_EQ(v.width, 32);
  EXPECT_EQ(v.height, 32);

  // ffprobe's view of the same file, when the ffmpeg command-line tools are installed.
  if (std::system("command -v ffprobe > /dev/null 2>&1") != 0) {
    std::printf("ffprobe not installed: its check is skipped\n");
    return;
  }
  const std::string cmd =
      "ffprobe -v error -select_streams v:0 -count_frames -show_entries "
      "stream=codec_name,pix_fmt,width,height,avg_frame_rate,nb_read_frames "
      "-of default=noprint_wrappers=1 '" +
      (dir.path / "wan.mp4").string() + "'";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string text;
  char buf[256];
  while (fgets(buf, sizeof buf, p)) text += buf;
  EXPECT_EQ(pclose(p), 0) << text;
  for (const char* expected : {"codec_name=h264", "pix_fmt=yuv420p", "width=32", "height=32",
                               "avg_frame_rate=16/1", "nb_read_frames=9"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << " in\n" << text;
  }
}

TEST(VideoIo, UnwritablePathsThrowAndLeaveNoFile) {
  TempDir dir("unwritable");
  const std::vector<uint8_t> rgb = pattern(2, 16, 16);
  // A folder that does not exist.
  const fs::path missing = dir.path / "no_such_dir" / "out.mp4";
  std::string msg = error_of([&] { io::save_mp4(missing, rgb.data(), 2, 16, 16, 16.0); });
  EXPECT_NE(msg.find(missing.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("cannot write MP4"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(missing));
  // The target is a folder: everything is encoded, then the rename fails; the temporary goes.
  const fs::path folder = dir.path / "taken.mp4";
  fs::create_directories(folder);
  msg = error_of([&] { io::save_mp4(folder, rgb.data(), 2, 16, 16, 16.0); });
  EXPECT_NE(msg.find(folder.string()), std::string::npos) << msg;
  EXPECT_EQ(files_in(dir.path), std::vector<std::string>{"taken.mp4"});
  EXPECT_TRUE(fs::is_directory(folder));
  // Bad arguments name the file too, and create nothing.
  const fs::path ok = dir.path / "ok.mp4";
  EXPECT_NE(error_of([&] { io::save_mp4(ok, rgb.data(), 0, 16, 16, 16.0); }).find("ok.mp4"),
            std::string::npos);
  EXPECT_NE(error_of([&] { io::save_mp4(ok, rgb.data(), 2, 16, 16, 0.0); }).find("frames per"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              io::save_mp4(ok, Tensor::zeros({2, 16, 16, 3}), 16.0);
            }).find("U8"),
            std::string::npos);
  io::Mp4Options vp9;
  vp9.encoder = "libvpx-vp9";
  EXPECT_NE(error_of([&] { io::save_mp4(ok, rgb.data(), 2, 16, 16, 16.0, vp9); }).find("libvpx"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(ok));
  // Reading a file that is not a video names it.
  std::ofstream(dir.path / "junk.mp4") << "not a video";
  msg = error_of([&] { io::read_video(dir.path / "junk.mp4"); });
  EXPECT_NE(msg.find("junk.mp4"), std::string::npos) << msg;
}

}  // namespace
}  // namespace paradit
