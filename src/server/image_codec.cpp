// JPEG and WebP into memory through FFmpeg's image encoders: one frame in, one packet out, and
// that packet is the whole file (mjpeg writes SOI … EOI, libwebp the RIFF container).
#include <mutex>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libswscale/swscale.h>
}

#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "server/encoding.h"

namespace paradit::server {

namespace {

struct CodecContextDeleter {
  void operator()(AVCodecContext* p) const { avcodec_free_context(&p); }
};
struct FrameDeleter {
  void operator()(AVFrame* p) const { av_frame_free(&p); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* p) const { sws_freeContext(p); }
};

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

// Encodes `frame` (already filled) with an opened encoder: the one packet it gives.
std::string encode_one(AVCodecContext* enc, AVFrame* frame, const char* what) {
  std::unique_ptr<AVPacket, PacketDeleter> packet(av_packet_alloc());
  PARADIT_CHECK(packet != nullptr, "encode ", what, ": out of memory");
  int r = avcodec_send_frame(enc, frame);
  PARADIT_CHECK(r >= 0, "encode ", what, ": ", av_error(r));
  r = avcodec_send_frame(enc, nullptr);
  PARADIT_CHECK(r >= 0, "encode ", what, ": ", av_error(r));
  std::string out;
  for (;;) {
    r = avcodec_receive_packet(enc, packet.get());
    if (r == AVERROR_EOF || r == AVERROR(EAGAIN)) break;
    PARADIT_CHECK(r >= 0, "encode ", what, ": ", av_error(r));
    out.append(reinterpret_cast<const char*>(packet->data), static_cast<size_t>(packet->size));
    av_packet_unref(packet.get());
  }
  PARADIT_CHECK(!out.empty(), "encode ", what, ": the encoder gave no data");
  return out;
}

struct Encoder {
  std::unique_ptr<AVCodecContext, CodecContextDeleter> enc;
  std::unique_ptr<AVFrame, FrameDeleter> frame;
};

// An encoder `name` for height × width frames of `pix_fmt`, not yet opened, and a frame with its
// buffers.
Encoder make_encoder(const char* name, AVPixelFormat pix_fmt, int height, int width) {
  static std::once_flag quiet;
  std::call_once(quiet, [] {
    if (av_log_get_level() > AV_LOG_ERROR) av_log_set_level(AV_LOG_ERROR);
  });
  PARADIT_CHECK(height > 0 && width > 0 && height <= 16384 && width <= 16384, "encode ", name,
                ": image size ", width, "x", height, " (width x height) is out of range");
  const AVCodec* codec = avcodec_find_encoder_by_name(name);
  PARADIT_CHECK(codec != nullptr, "encode: this FFmpeg has no '", name, "' encoder");
  Encoder e;
  e.enc.reset(avcodec_alloc_context3(codec));
  e.frame.reset(av_frame_alloc());
  PARADIT_CHECK(e.enc && e.frame, "encode ", name, ": out of memory");
  e.enc->width = width;
  e.enc->height = height;
  e.enc->pix_fmt = pix_fmt;
  e.enc->time_base = AVRational{1, 25};
  e.frame->format = pix_fmt;
  e.frame->width = width;
  e.frame->height = height;
  const int r = av_frame_get_buffer(e.frame.get(), 0);
  PARADIT_CHECK(r >= 0, "encode ", name, ": cannot allocate a frame: ", av_error(r));
  return e;
}

void check_quality(int quality, const char* what) {
  PARADIT_CHECK(quality >= 0 && quality <= 100, "encode ", what,
                ": quality must be in [0, 100], "
                "found ",
                quality);
}

}  // namespace

std::string encode_jpeg(const uint8_t* rgb, int height, int width, int quality) {
  check_quality(quality, "jpeg");
  // JFIF: full-range BT.601 YCbCr. From quality 90 on the chroma keeps every pixel (4:4:4):
  // generated images have sharp saturated edges that 4:2:0 visibly smears; below, chroma is
  // halved both ways (4:2:0) as most JPEG writers do.
  const AVPixelFormat yuv = quality >= 90 ? AV_PIX_FMT_YUVJ444P : AV_PIX_FMT_YUVJ420P;
  Encoder e = make_encoder("mjpeg", yuv, height, width);
  e.enc->color_range = AVCOL_RANGE_JPEG;
  e.frame->color_range = AVCOL_RANGE_JPEG;
  // Quality 100 → quantizer scale 2, 0 → 31 (FFmpeg's -q:v range for mjpeg).
  const int qscale = 2 + static_cast<int>(std::lround((100 - quality) * 29 / 100.0));
  e.enc->flags |= AV_CODEC_FLAG_QSCALE;
  e.enc->global_quality = FF_QP2LAMBDA * qscale;
  e.frame->quality = e.enc->global_quality;
  int r = avcodec_open2(e.enc.get(), e.enc->codec, nullptr);
  PARADIT_CHECK(r >= 0, "encode jpeg: cannot open the mjpeg encoder: ", av_error(r));
  std::unique_ptr<SwsContext, SwsDeleter> sws(sws_getContext(
      width, height, AV_PIX_FMT_RGB24, width, height, yuv,
      SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr));
  PARADIT_CHECK(sws != nullptr, "encode jpeg: cannot create the RGB to YCbCr converter");
  const uint8_t* planes[1] = {rgb};
  const int strides[1] = {width * 3};
  sws_scale(sws.get(), planes, strides, 0, height, e.frame->data, e.frame->linesize);
  e.frame->pts = 0;
  return encode_one(e.enc.get(), e.frame.get(), "jpeg");
}

std::string encode_webp(const uint8_t* rgb, int height, int width, int quality) {
  check_quality(quality, "webp");
  // RGB32 is BGRA in memory on little-endian hosts (ARGB words): libwebp then converts to YUV
  // itself, with its own sharp RGB→YUV.
  Encoder e = make_encoder("libwebp", AV_PIX_FMT_RGB32, height, width);
  e.enc->global_quality = FF_QP2LAMBDA * quality;  // libwebp's quality factor 0–100
  // 100 (no compression loss asked for, OpenAI's default): lossless WebP, with libwebp's fast
  // method 1 (its default 4 took ~1.7 s for a grainy 1024x1024 image for the same size).
  AVDictionary* options = nullptr;
  if (quality == 100) {
    av_dict_set(&options, "lossless", "1", 0);
    e.enc->compression_level = 1;
  }
  int r = avcodec_open2(e.enc.get(), e.enc->codec, &options);
  av_dict_free(&options);
  PARADIT_CHECK(r >= 0, "encode webp: cannot open the libwebp encoder: ", av_error(r));
  for (int y = 0; y < height; ++y) {
    const uint8_t* src = rgb + static_cast<size_t>(y) * static_cast<size_t>(width) * 3;
    uint32_t* dst = reinterpret_cast<uint32_t*>(e.frame->data[0] +
                                                static_cast<ptrdiff_t>(y) * e.frame->linesize[0]);
    for (int x = 0; x < width; ++x) {
      // One native-endian ARGB word per pixel, as AV_PIX_FMT_RGB32 defines it.
      dst[x] = (uint32_t{255} << 24) | (uint32_t{src[3 * x]} << 16) |
               (uint32_t{src[3 * x + 1]} << 8) | uint32_t{src[3 * x + 2]};
    }
  }
  e.frame->pts = 0;
  return encode_one(e.enc.get(), e.frame.get(), "webp");
}

std::string encode_image(const uint8_t* rgb, int height, int width, ImageFormat format,
                         int quality) {
  switch (format) {
    case ImageFormat::kJpeg:
      return encode_jpeg(rgb, height, width, quality);
    case ImageFormat::kWebp:
      return encode_webp(rgb, height, width, quality);
    case ImageFormat::kPng:
      break;
  }
  return encode_png(rgb, height, width);
}

}  // namespace paradit::server
