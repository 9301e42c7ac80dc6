#pragma once
// Encodings for HTTP answers: images into memory (PNG through libpng with write callbacks; JPEG
// and WebP through FFmpeg's mjpeg and libwebp encoders) and base64, so an image travels inside a
// JSON body (the OpenAI images API's b64_json).

#include <cstdint>
#include <string>

#include "server/request.h"

namespace paradit::server {

// An 8-bit RGB PNG of height × width pixels from `rgb` (H·W·3 bytes, HWC), as the bytes of the
// file io::save_png would write. Error when libpng fails.
std::string encode_png(const uint8_t* rgb, int height, int width);

// A baseline JFIF JPEG (FFmpeg's mjpeg encoder, full-range BT.601; 4:4:4 from quality 90, else
// 4:2:0) or a WebP file (FFmpeg's libwebp encoder; lossless at quality 100) of the same pixels.
// `quality` 0–100: 100 keeps the most detail. Error naming the encoder when FFmpeg lacks it or
// fails.
std::string encode_jpeg(const uint8_t* rgb, int height, int width, int quality);
std::string encode_webp(const uint8_t* rgb, int height, int width, int quality);

// One of the above by format (`quality` unused for PNG).
std::string encode_image(const uint8_t* rgb, int height, int width, ImageFormat format,
                         int quality);

// Standard base64 (RFC 4648, with '=' padding, no line breaks).
std::string base64_encode(const std::string& bytes);

}  // namespace paradit::server
