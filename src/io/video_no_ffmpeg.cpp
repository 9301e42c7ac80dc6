// io/video.h's MP4 functions in a build without FFmpeg (PARADIT_WITH_FFMPEG=OFF, e.g. a GPU
// machine without the libav*-dev packages): everything else of paradit works, and asking for an
// MP4 is an Error that says why, never a missing symbol.
#include "core/error.h"
#include "io/video.h"

namespace paradit::io {

namespace {

constexpr const char* kWhy =
    "this paradit was built without FFmpeg (PARADIT_WITH_FFMPEG=OFF); use --output_type frames "
    "or rebuild with the libavcodec, libavformat, libswscale and libavutil development packages";

}  // namespace

bool mp4_supported() { return false; }

void save_mp4(const std::filesystem::path& path, const uint8_t*, int, int, int, double,
              const Mp4Options&) {
  fail(path.string(), ": cannot write MP4 (", kWhy, ")");
}

std::string encode_mp4(const uint8_t*, int, int, int, double, const Mp4Options&) {
  fail("cannot encode MP4 (", kWhy, ")");
}

VideoFile read_video(const std::filesystem::path& path) {
  fail(path.string(), ": cannot read video (", kWhy, ")");
}

}  // namespace paradit::io
