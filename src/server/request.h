#pragma once
// The body of POST /v1/images/generations and POST /v1/jobs (the OpenAI images API's shape plus
// diffusers' knobs), parsed and checked field by field before anything is queued.

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <utility>

namespace paradit::server {

// What the served pipeline allows; filled from pipelines::Pipeline (sizes) and server limits.
struct RequestLimits {
  int64_t size_multiple = 8;  // VAE scale × patch size
  int64_t max_side = 2048;    // pixels
  int64_t default_height = 0;
  int64_t default_width = 0;
  int max_images = 8;         // n
  int max_steps = 200;
  double min_guidance = 0.0;
  double max_guidance = 50.0;
  size_t max_prompt_bytes = 4096;
  // Video pipelines (Pipeline::is_video()): num_frames = 1 + temporal_factor · k, at most
  // max_frames; 0 default_frames: an image pipeline (num_frames and fps are refused).
  int64_t default_frames = 0;
  int64_t temporal_factor = 1;
  int64_t max_frames = 129;
  double default_fps = 0;
  double max_fps = 120;
};

struct ImageRequest {
  std::string prompt;
  int n = 1;
  int64_t height = 0;  // pixels (from size "WxH", or the model's default)
  int64_t width = 0;
  std::optional<std::string> negative_prompt;
  std::optional<int> num_inference_steps;
  std::optional<double> guidance_scale;
  uint64_t seed = 0;
  // Video models only, always set for them by parse_image_request (the model's defaults when the
  // body has none); unset for image models.
  std::optional<int64_t> num_frames;
  std::optional<double> fps;  // of the MP4 answered
};

// Thrown for a request the client must fix (answered 400 with the message).
class BadRequest : public std::exception {
 public:
  explicit BadRequest(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// Parses a JSON body. BadRequest naming the field on malformed JSON, a wrong type, a value out of
// range or an unknown field.
ImageRequest parse_image_request(const std::string& body, const RequestLimits& limits);

}  // namespace paradit::server
