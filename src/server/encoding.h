#pragma once
// Encodings for HTTP answers: PNG into memory (libpng with write callbacks) and base64, so an
// image travels inside a JSON body (the OpenAI images API's b64_json).

#include <cstdint>
#include <string>

namespace paradit::server {

// An 8-bit RGB PNG of height × width pixels from `rgb` (H·W·3 bytes, HWC), as the bytes of the
// file io::save_png would write. Error when libpng fails.
std::string encode_png(const uint8_t* rgb, int height, int width);

// Standard base64 (RFC 4648, with '=' padding, no line breaks).
std::string base64_encode(const std::string& bytes);

}  // namespace paradit::server
