#pragma once
// Videos out of the engine: the video pipelines' postprocess (a decoded (3, F, H, W) tensor in
// [-1, 1] → 8-bit RGB frames) and MP4 files through Debian's FFmpeg libraries (libavformat,
// libavcodec, libswscale): H.264 by libx264 in yuv420p, or MPEG-4 Part 2 (FFmpeg's built-in
// encoder, with a warning on stderr) where libx264 is missing. Reading back is for tests and
// video inputs.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/image.h"

namespace paradit::io {

// How [0, 1] values become bytes.
enum class FrameRounding {
  kTruncate,  // (v · 255).astype(uint8): diffusers' export_to_video of the pipelines' default
              // output_type "np" frames (the documented Wan/HunyuanVideo usage)
  kRound,     // (v · 255).round(): output_type "pil" (numpy_to_pil), as to_rgb8 for images
};

// The video pipelines' postprocess: v = (x/2 + 0.5).clamp(0, 1) in f32 (VideoProcessor
// .postprocess_video), then v · 255 as an f32 product, truncated or rounded half to even. NaN
// maps to 0. video: (3, F, H, W) or (1, 3, F, H, W) F32 → F·H·W·3 bytes, frame after frame, each
// row-major with interleaved RGB (HWC).
std::vector<uint8_t> to_rgb8_video(const core::Tensor& video,
                                   FrameRounding rounding = FrameRounding::kTruncate);

// Whether this build reads and writes MP4 files (the CMake option PARADIT_WITH_FFMPEG). Without
// FFmpeg, save_mp4, encode_mp4 and read_video throw an Error saying so; tests skip on it.
bool mp4_supported();

struct Mp4Options {
  // "libx264" (H.264), or "mpeg4" (FFmpeg's built-in MPEG-4 Part 2 encoder, which is also the
  // fallback, with a warning on stderr, when this FFmpeg has no libx264).
  std::string encoder = "libx264";
  int crf = 18;  // libx264 constant rate factor (0 lossless … 51); ~visually lossless
  std::string preset = "medium";  // libx264 speed/size trade-off
};

// Writes `frames` RGB frames of height × width (rgb: frames·H·W·3 bytes, HWC, frame after
// frame) as an MP4 at `fps` frames per second: H.264 (libx264, yuv420p, BT.601 limited range,
// moov atom in front for streaming; macroblock-tree rate control off, so the same frames always
// give the same stream). yuv420p needs even sizes: an odd height or width is padded
// by repeating the last row or column, so the stored size is rounded up to even. The file is
// written beside `path` under a temporary name and renamed, so a failed write leaves no file.
// Error "<path>: cannot write MP4 (<why>)".
void save_mp4(const std::filesystem::path& path, const uint8_t* rgb, int frames, int height,
              int width, double fps, const Mp4Options& options = {});
// frames: (F, H, W, 3) U8 tensor.
void save_mp4(const std::filesystem::path& path, const core::Tensor& frames, double fps,
              const Mp4Options& options = {});
// Frames of equal size.
void save_mp4(const std::filesystem::path& path, const std::vector<RgbImage>& frames, double fps,
              const Mp4Options& options = {});
// One decoded video, (3, F, H, W) or (1, 3, F, H, W) in [-1, 1]: to_rgb8_video then save_mp4.
void save_mp4_video(const std::filesystem::path& path, const core::Tensor& video, double fps,
                    FrameRounding rounding = FrameRounding::kTruncate,
                    const Mp4Options& options = {});

// The bytes of the file save_mp4 writes for the same arguments (same encoder and settings), for
// answers that carry a video in memory (paradit serve). It goes through a private temporary
// folder (mkdtemp under the system temp directory), removed whether or not the encode succeeds.
// Error "cannot encode MP4 (<why>)".
std::string encode_mp4(const uint8_t* rgb, int frames, int height, int width, double fps,
                       const Mp4Options& options = {});

struct VideoFile {
  std::string codec;         // FFmpeg codec name: "h264", "mpeg4", ...
  std::string pixel_format;  // the stream's: "yuv420p", ...
  int width = 0, height = 0;
  double fps = 0.0;              // the stream's average frame rate
  int64_t container_frames = 0;  // as the container states it (0 when it does not)
  std::vector<RgbImage> frames;  // every decoded frame, converted to RGB
};
// Reads a video file (any container/codec the FFmpeg libraries know) and decodes every frame.
// Error "<path>: cannot read video (<why>)".
VideoFile read_video(const std::filesystem::path& path);

}  // namespace paradit::io
