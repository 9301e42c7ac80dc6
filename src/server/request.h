#pragma once
// The bodies of the generation endpoints, parsed and checked field by field before anything is
// queued: POST /v1/images/generations and POST /v1/jobs (the OpenAI images API's fields plus
// diffusers' knobs) and POST /v1/videos (the OpenAI videos API's fields plus the same knobs).
//
// Rules (what OpenAI-style clients rely on):
// - every field may be absent or null (null = absent); `prompt` is required;
// - a known field with a wrong type or an invalid value → BadRequest naming it (HTTP 400 with the
//   OpenAI error body), as does a value above one of the operator's limits (naming the limit);
// - an unknown field, or a known one paradit cannot honour (quality, style, moderation, user,
//   background "transparent", ...), is ignored and reported in ApiRequest::ignored so the server
//   can name it once in its log; clients add fields over time and must not be refused for it.

#include <cstdint>
#include <exception>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace paradit::server {

// What the served pipeline allows: its sizes (from pipelines::Pipeline) and the operator's
// limits (serve flags).
struct RequestLimits {
  int64_t size_multiple = 8;  // VAE scale × patch size
  int64_t default_height = 0;
  int64_t default_width = 0;
  int64_t max_pixels = 0;  // width × height (--max_pixels)
  int max_n = 10;          // images per request (--max_n)
  int max_steps = 200;     // num_inference_steps (--max_steps)
  double min_guidance = 0.0;
  double max_guidance = 50.0;
  size_t max_prompt_bytes = 4096;
  // Video pipelines: num_frames = 1 + temporal_factor · k, at most max_frames (--max_frames);
  // default_frames 0: an image pipeline (video fields are refused).
  int64_t default_frames = 0;
  int64_t temporal_factor = 1;
  int64_t max_frames = 129;
  double default_fps = 0;
  double max_fps = 120;
};

enum class ImageFormat { kPng, kJpeg, kWebp };
const char* format_name(ImageFormat format);       // "png", "jpeg", "webp"
const char* format_mime_type(ImageFormat format);  // "image/png", ...

// One generation as the executors run it (it travels to the ranks of a group under mpirun).
struct ImageRequest {
  std::string prompt;
  int n = 1;
  int64_t height = 0;  // pixels (from size "WxH", or the model's default)
  int64_t width = 0;
  std::optional<std::string> negative_prompt;
  std::optional<int> num_inference_steps;
  std::optional<double> guidance_scale;
  uint64_t seed = 0;
  // Video models only, always set for them (the model's defaults when the body has none); unset
  // for image models.
  std::optional<int64_t> num_frames;
  std::optional<double> fps;  // of the MP4 answered
  // Images: the encoding of every answer (previews included); compression 0–100 is the JPEG/WebP
  // quality (100, OpenAI's default: the least loss — JPEG at its finest quantizer, lossless
  // WebP), unused for PNG.
  ImageFormat output_format = ImageFormat::kPng;
  int output_compression = 100;
  // Previews (streaming): this many images decoded from the predicted clean latents at evenly
  // spaced steps (preview_steps).
  int partial_images = 0;
  // Step caching (generate's --use_fbcache / --use_teacache, models/step_cache.h): at most one
  // method; a threshold only with its method (unset: the method's default).
  bool use_fbcache = false;
  bool use_teacache = false;
  std::optional<double> fbcache_threshold;
  std::optional<double> teacache_threshold;
  int cache_warmup_steps = 0;
};

// The 1-based steps after which a request with `partial_images` previews and `total` steps shows
// one: floor(k · total / (partial_images + 1)) for k = 1 … partial_images, those in [1, total − 1]
// (the last step's image is the final one), each once.
std::vector<int> preview_steps(int partial_images, int total);

// What the HTTP layer needs besides the generation itself.
struct ApiRequest {
  ImageRequest generation;
  std::optional<std::string> model;  // as the client named it
  bool stream = false;               // Server-Sent Events (images API)
  bool url = false;                  // response_format "url" (else b64_json)
  std::string quality = "auto";      // echoed in the answer (not honoured)
  // Fields accepted but not acted on, each "name" or "name=value" (unknown fields and the OpenAI
  // fields paradit cannot honour), for the server log.
  std::vector<std::string> ignored;
};

// Thrown for a request the client must fix: HTTP `status` (400, or 404 for an unknown model) with
// the OpenAI error body {"error": {"message", "type", "param", "code"}}.
class BadRequest : public std::exception {
 public:
  explicit BadRequest(std::string message, std::string param = {},
                      std::string code = "invalid_value", int status = 400)
      : message_(Error::one_line(std::move(message))),  // quoted input stays one line
        param_(Error::one_line(std::move(param))),
        code_(std::move(code)),
        status_(status) {}
  const char* what() const noexcept override { return message_.c_str(); }
  const std::string& param() const { return param_; }  // empty: none
  const std::string& code() const { return code_; }
  int status() const { return status_; }

 private:
  std::string message_;
  std::string param_;
  std::string code_;
  int status_;
};

enum class Endpoint {
  kImages,  // POST /v1/images/generations and POST /v1/jobs
  kVideos,  // POST /v1/videos
};

// The deepest nesting a request body may have (every field of the API is at depth 1 or 2).
constexpr int kMaxRequestDepth = 16;

// Parses a JSON object body (or a multipart form converted by form_to_json). BadRequest naming the
// field on malformed JSON, a wrong type, an invalid value or a value above a limit. `model_id`:
// the served model's id (a different `model` → BadRequest 404 "model_not_found").
ApiRequest parse_request(const std::string& body, Endpoint endpoint, const RequestLimits& limits,
                         const std::string& model_id);
ApiRequest parse_request(const nlohmann::json& body, Endpoint endpoint, const RequestLimits& limits,
                         const std::string& model_id);

// A multipart/form-data body (what the OpenAI client sends to POST /v1/videos) as a JSON object:
// each field's text, with the numeric and boolean fields this API knows turned into numbers and
// booleans when they read as such (a form carries only text). Files other than known text fields
// are kept as {"filename": ...} objects so the parser can refuse them by name. BadRequest when a
// field's name or text is not valid UTF-8.
struct FormField {
  std::string name;
  std::string content;
  std::string filename;  // non-empty for an uploaded file
};
nlohmann::json form_to_json(const std::vector<FormField>& fields);

}  // namespace paradit::server
