// MP4 files through the FFmpeg libraries (builds with PARADIT_WITH_FFMPEG; video_no_ffmpeg.cpp
// stands in otherwise). Every FFmpeg object is owned by a unique_ptr, so an Error thrown half-way
// frees them and removes the temporary file. The FFmpeg-free parts (the postprocess numerics, the
// overloads of save_mp4) are in video_frames.cpp.
#include "io/video.h"

#include "io/atomic_file.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>

#include "core/error.h"

namespace paradit::io {

namespace fs = std::filesystem;

bool mp4_supported() { return true; }

namespace {

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

// FFmpeg's own log lines (x264's statistics, muxer notes) stay quiet; its errors come back to
// us as return codes and become paradit::Error messages.
void quiet_ffmpeg_logs() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_ERROR); });
}

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
struct OutputDeleter {
  void operator()(AVFormatContext* p) const {
    if (p->pb) avio_closep(&p->pb);
    avformat_free_context(p);
  }
};
struct InputDeleter {
  void operator()(AVFormatContext* p) const { avformat_close_input(&p); }
};
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;


}  // namespace

void save_mp4(const fs::path& path, const uint8_t* rgb, int frames, int height, int width,
              double fps, const Mp4Options& options) {
  const std::string where = path.string();
  auto fail_write = [&](const std::string& why) { fail(where, ": cannot write MP4 (", why, ")"); };
  PARADIT_CHECK(frames >= 1, where, ": cannot write MP4 of ", frames,
                " frames (expected at least 1)");
  PARADIT_CHECK(height > 0 && width > 0, where, ": cannot write MP4 of ", width, "x", height,
                " (width x height) pixels (expected positive sizes)");
  PARADIT_CHECK(height <= 16384 && width <= 16384, where, ": cannot write MP4 of ", width, "x",
                height, " (width x height) pixels (the largest is 16384 per side)");
  PARADIT_CHECK(std::isfinite(fps) && fps > 0.0 && fps <= 1000.0, where, ": cannot write MP4 at ",
                fps, " frames per second (expected 0 < fps <= 1000)");
  PARADIT_CHECK(rgb != nullptr, where, ": cannot write MP4 (no pixel data)");
  quiet_ffmpeg_logs();

  // yuv420p halves the chroma planes: an odd size is padded by one repeated row/column.
  const int H2 = height + (height & 1), W2 = width + (width & 1);

  PARADIT_CHECK(options.encoder == "libx264" || options.encoder == "mpeg4", where,
                ": cannot write MP4 with encoder '", options.encoder,
                "' (expected libx264 or mpeg4)");
  const AVCodec* codec = avcodec_find_encoder_by_name(options.encoder.c_str());
  if (!codec) {
    codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!codec) fail_write("this FFmpeg has neither the libx264 nor the mpeg4 encoder");
    std::fprintf(stderr,
                 "paradit: warning: FFmpeg has no %s encoder; %s is written as MPEG-4 Part 2 "
                 "video instead\n",
                 options.encoder.c_str(), where.c_str());
  }
  const bool x264 = std::string(codec->name) == "libx264";

  AtomicFile file(path, "MP4");  // a temporary beside the target, renamed at the end

  AVFormatContext* raw_oc = nullptr;
  int r = avformat_alloc_output_context2(&raw_oc, nullptr, "mp4", file.temp_path().c_str());
  if (r < 0 || !raw_oc) fail_write("no MP4 muxer: " + av_error(r));
  std::unique_ptr<AVFormatContext, OutputDeleter> oc(raw_oc);

  AVStream* stream = avformat_new_stream(oc.get(), nullptr);
  if (!stream) fail_write("cannot add a video stream");
  CodecContextPtr enc(avcodec_alloc_context3(codec));
  if (!enc) fail_write("cannot allocate the encoder");
  // The MPEG-4 standard limits the time base denominator to 16 bits.
  const AVRational rate = av_d2q(fps, 65535);
  enc->width = W2;
  enc->height = H2;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = av_inv_q(rate);
  enc->framerate = rate;
  enc->sample_aspect_ratio = AVRational{1, 1};
  // swscale's RGB → YUV conversion below is BT.601, limited range: tag the stream so.
  enc->colorspace = AVCOL_SPC_SMPTE170M;
  enc->color_range = AVCOL_RANGE_MPEG;
  if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  AVDictionary* codec_opts = nullptr;
  if (x264) {
    av_dict_set(&codec_opts, "crf", std::to_string(options.crf).c_str(), 0);
    av_dict_set(&codec_opts, "preset", options.preset.c_str(), 0);
    // x264's macroblock-tree rate control reads memory it never wrote on small frames: the same
    // frames encoded twice in one process (a server) gave different streams, decoded pixels up
    // to 16 apart, depending on what the heap held before (MALLOC_PERTURB_ made it repeatable).
    // Without it the stream is a function of the frames alone.
    av_dict_set(&codec_opts, "x264-params", "mbtree=0", 0);
  } else {
    enc->flags |= AV_CODEC_FLAG_QSCALE;  // constant quality, qscale 2 (high)
    enc->global_quality = FF_QP2LAMBDA * 2;
  }
  r = avcodec_open2(enc.get(), codec, &codec_opts);
  av_dict_free(&codec_opts);
  if (r < 0) fail_write("cannot open the " + std::string(codec->name) + " encoder: " + av_error(r));
  r = avcodec_parameters_from_context(stream->codecpar, enc.get());
  if (r < 0) fail_write("cannot set the stream parameters: " + av_error(r));
  stream->time_base = enc->time_base;
  stream->avg_frame_rate = rate;

  r = avio_open(&oc->pb, file.temp_path().c_str(), AVIO_FLAG_WRITE);
  if (r < 0) fail_write(av_error(r));
  AVDictionary* mux_opts = nullptr;
  av_dict_set(&mux_opts, "movflags", "+faststart", 0);  // index in front: plays while loading
  r = avformat_write_header(oc.get(), &mux_opts);
  av_dict_free(&mux_opts);
  if (r < 0) fail_write("cannot write the MP4 header: " + av_error(r));

  FramePtr frame(av_frame_alloc());
  PacketPtr packet(av_packet_alloc());
  if (!frame || !packet) fail_write("out of memory");
  frame->format = enc->pix_fmt;
  frame->width = W2;
  frame->height = H2;
  frame->color_range = enc->color_range;
  frame->colorspace = enc->colorspace;
  r = av_frame_get_buffer(frame.get(), 0);
  if (r < 0) fail_write("cannot allocate a frame: " + av_error(r));
  SwsPtr sws(sws_getContext(W2, H2, AV_PIX_FMT_RGB24, W2, H2, AV_PIX_FMT_YUV420P,
                            SWS_BILINEAR | SWS_ACCURATE_RND, nullptr, nullptr, nullptr));
  if (!sws) fail_write("cannot create the RGB to YUV converter");

  auto drain = [&]() {
    for (;;) {
      const int rc = avcodec_receive_packet(enc.get(), packet.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      if (rc < 0) fail_write("encoding failed: " + av_error(rc));
      av_packet_rescale_ts(packet.get(), enc->time_base, stream->time_base);
      packet->stream_index = stream->index;
      const int wr = av_interleaved_write_frame(oc.get(), packet.get());  // unrefs the packet
      if (wr < 0) fail_write(av_error(wr));
    }
  };

  const size_t frame_bytes = static_cast<size_t>(height) * width * 3;
  std::vector<uint8_t> padded;  // W2 × H2 × 3 when the size is odd
  if (H2 != height || W2 != width) padded.resize(static_cast<size_t>(H2) * W2 * 3);
  for (int f = 0; f < frames; ++f) {
    const uint8_t* src = rgb + f * frame_bytes;
    int src_stride = width * 3;
    if (!padded.empty()) {
      for (int y = 0; y < H2; ++y) {
        const uint8_t* row = src + static_cast<size_t>(std::min(y, height - 1)) * width * 3;
        uint8_t* dst = padded.data() + static_cast<size_t>(y) * W2 * 3;
        std::memcpy(dst, row, static_cast<size_t>(width) * 3);
        if (W2 != width) std::memcpy(dst + width * 3, row + (width - 1) * 3, 3);
      }
      src = padded.data();
      src_stride = W2 * 3;
    }
    r = av_frame_make_writable(frame.get());
    if (r < 0) fail_write("cannot write a frame: " + av_error(r));
    const uint8_t* planes[1] = {src};
    const int strides[1] = {src_stride};
    sws_scale(sws.get(), planes, strides, 0, H2, frame->data, frame->linesize);
    frame->pts = f;
    if (!x264) frame->quality = enc->global_quality;
    r = avcodec_send_frame(enc.get(), frame.get());
    if (r < 0) fail_write("encoding failed: " + av_error(r));
    drain();
  }
  r = avcodec_send_frame(enc.get(), nullptr);  // flush the encoder's delayed frames
  if (r < 0) fail_write("encoding failed: " + av_error(r));
  drain();
  r = av_write_trailer(oc.get());
  if (r < 0) fail_write("cannot finish the MP4: " + av_error(r));
  r = avio_closep(&oc->pb);
  if (r < 0) fail_write(av_error(r));

  file.commit();
}

VideoFile read_video(const fs::path& path) {
  const std::string where = path.string();
  auto fail_read = [&](const std::string& why) { fail(where, ": cannot read video (", why, ")"); };
  quiet_ffmpeg_logs();
  AVFormatContext* raw_ic = nullptr;
  int r = avformat_open_input(&raw_ic, where.c_str(), nullptr, nullptr);
  if (r < 0) fail_read(av_error(r));
  std::unique_ptr<AVFormatContext, InputDeleter> ic(raw_ic);
  r = avformat_find_stream_info(ic.get(), nullptr);
  if (r < 0) fail_read("no stream information: " + av_error(r));
  const AVCodec* decoder = nullptr;
  const int index = av_find_best_stream(ic.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
  if (index < 0 || !decoder) fail_read("no decodable video stream");
  const AVStream* stream = ic->streams[index];
  CodecContextPtr dec(avcodec_alloc_context3(decoder));
  if (!dec) fail_read("cannot allocate the decoder");
  r = avcodec_parameters_to_context(dec.get(), stream->codecpar);
  if (r < 0) fail_read(av_error(r));
  r = avcodec_open2(dec.get(), decoder, nullptr);
  if (r < 0)
    fail_read("cannot open the " + std::string(decoder->name) + " decoder: " + av_error(r));

  VideoFile out;
  out.codec = avcodec_get_name(stream->codecpar->codec_id);
  const char* pix = av_get_pix_fmt_name(static_cast<AVPixelFormat>(stream->codecpar->format));
  out.pixel_format = pix ? pix : "";
  out.width = stream->codecpar->width;
  out.height = stream->codecpar->height;
  const AVRational rate =
      stream->avg_frame_rate.num ? stream->avg_frame_rate : stream->r_frame_rate;
  out.fps = rate.den ? av_q2d(rate) : 0.0;
  out.container_frames = stream->nb_frames;

  FramePtr frame(av_frame_alloc());
  PacketPtr packet(av_packet_alloc());
  if (!frame || !packet) fail_read("out of memory");
  SwsContext* sws = nullptr;  // cached across frames; freed by the guard below
  SwsPtr sws_guard;
  auto receive = [&]() {
    for (;;) {
      const int rc = avcodec_receive_frame(dec.get(), frame.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      if (rc < 0) fail_read("decoding failed: " + av_error(rc));
      sws = sws_getCachedContext(sws, frame->width, frame->height,
                                 static_cast<AVPixelFormat>(frame->format), frame->width,
                                 frame->height, AV_PIX_FMT_RGB24, SWS_BILINEAR | SWS_ACCURATE_RND,
                                 nullptr, nullptr, nullptr);
      sws_guard.release();
      sws_guard.reset(sws);
      if (!sws) fail_read("cannot create the YUV to RGB converter");
      RgbImage img;
      img.height = frame->height;
      img.width = frame->width;
      img.rgb.resize(static_cast<size_t>(img.height) * img.width * 3);
      uint8_t* planes[1] = {img.rgb.data()};
      const int strides[1] = {img.width * 3};
      sws_scale(sws, frame->data, frame->linesize, 0, frame->height, planes, strides);
      out.frames.push_back(std::move(img));
      av_frame_unref(frame.get());
    }
  };
  while ((r = av_read_frame(ic.get(), packet.get())) >= 0) {
    if (packet->stream_index == index) {
      const int sr = avcodec_send_packet(dec.get(), packet.get());
      av_packet_unref(packet.get());
      if (sr < 0) fail_read("decoding failed: " + av_error(sr));
      receive();
    } else {
      av_packet_unref(packet.get());
    }
  }
  if (r != AVERROR_EOF) fail_read(av_error(r));
  r = avcodec_send_packet(dec.get(), nullptr);  // flush the decoder's delayed frames
  if (r < 0) fail_read("decoding failed: " + av_error(r));
  receive();
  return out;
}

std::string encode_mp4(const uint8_t* rgb, int frames, int height, int width, double fps,
                       const Mp4Options& options) {
  std::error_code ec;
  const fs::path base = fs::temp_directory_path(ec);
  PARADIT_CHECK(!ec, "cannot encode MP4 (no temporary directory: ", ec.message(), ")");
  std::string pattern = (base / "paradit-mp4-XXXXXX").string();
  PARADIT_CHECK(::mkdtemp(pattern.data()) != nullptr,
                "cannot encode MP4 (cannot create a folder in ",
                base.string(), ": ", std::strerror(errno), ")");
  // Removes the private folder on every way out, an encoder error included.
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } cleanup{pattern};
  const fs::path file = cleanup.dir / "video.mp4";
  save_mp4(file, rgb, frames, height, width, fps, options);
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  PARADIT_CHECK(in.good() || in.eof(), "cannot encode MP4 (cannot read back ", file.string(), ")");
  return bytes;
}

}  // namespace paradit::io
