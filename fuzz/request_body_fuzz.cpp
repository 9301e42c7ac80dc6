// libFuzzer target: the input is the body of POST /v1/images/generations (or /v1/videos). The
// request parser must either accept it — a prompt that is non-empty and a size within the
// limits — or throw server::BadRequest with a 4xx status and a one-line message (no control
// characters, no library exception text). Anything else (another exception, a
// crash, a leak, undefined behaviour) is a bug. Built and run by scripts/fuzz.sh request_body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/request.h"

namespace {
void check(const paradit::server::BadRequest& e, const std::string& body) {
  if (e.status() < 400 || e.status() > 499) __builtin_trap();
  const std::string_view message = e.what();
  if (message.empty()) __builtin_trap();
  for (char c : message) {  // one line: no control characters (quoted UTF-8 text may stay)
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) __builtin_trap();
  }
  // The library's prefix only where the input itself holds it (a field name is echoed).
  if (message.find("[json.exception.") != std::string_view::npos &&
      body.find("[json.exception.") == std::string::npos) {
    __builtin_trap();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace paradit::server;
  RequestLimits limits;
  limits.default_height = 64;
  limits.default_width = 64;
  limits.max_pixels = 1 << 20;
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (const Endpoint endpoint : {Endpoint::kImages, Endpoint::kVideos}) {
    if (endpoint == Endpoint::kVideos) {
      limits.default_frames = 9;
      limits.temporal_factor = 4;
      limits.default_fps = 16;
    }
    try {
      const ApiRequest r = parse_request(body, endpoint, limits, "paradit-model");
      if (r.generation.prompt.empty()) __builtin_trap();
      if (r.generation.height * r.generation.width > limits.max_pixels) __builtin_trap();
    } catch (const BadRequest& e) {
      check(e, body);
    }
  }
  return 0;
}
