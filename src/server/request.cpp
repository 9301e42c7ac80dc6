#include "server/request.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <sstream>

namespace paradit::server {

namespace {

using Json = nlohmann::json;

template <typename... Args>
[[noreturn]] void reject(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  throw BadRequest(os.str());
}

const char* type_name(const Json& v) { return v.type_name(); }

std::string get_string(const Json& v, const char* field, size_t max_bytes) {
  if (!v.is_string()) reject("'", field, "' must be a string, found ", type_name(v));
  std::string s = v.get<std::string>();
  if (s.size() > max_bytes) {
    reject("'", field, "' is too long: at most ", max_bytes, " bytes, found ", s.size());
  }
  return s;
}

int64_t get_integer(const Json& v, const char* field, int64_t lo, int64_t hi) {
  // JSON booleans and fractions are not integers (2.0 included: a client sending it is confused).
  if (!v.is_number_integer()) reject("'", field, "' must be an integer, found ", type_name(v));
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) {
    reject("'", field, "' must be in [", lo, ", ", hi, "], found ", v.get<uint64_t>());
  }
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) reject("'", field, "' must be in [", lo, ", ", hi, "], found ", x);
  return x;
}

// "WxH" → (height, width), each a positive multiple of the pipeline's size unit.
void parse_size(const std::string& s, const RequestLimits& limits, ImageRequest& out) {
  const size_t x = s.find('x');
  auto digits = [](const std::string& t) {
    return !t.empty() && t.size() <= 6 &&
           t.find_first_not_of("0123456789") == std::string::npos;
  };
  if (x == std::string::npos || !digits(s.substr(0, x)) || !digits(s.substr(x + 1))) {
    reject("'size' must be \"WIDTHxHEIGHT\" (e.g. \"64x64\"), found \"", s.substr(0, 32), "\"");
  }
  const int64_t w = std::stoll(s.substr(0, x));
  const int64_t h = std::stoll(s.substr(x + 1));
  const int64_t m = limits.size_multiple;
  for (const int64_t v : {w, h}) {
    if (v < m || v > limits.max_side || v % m != 0) {
      reject("'size': width and height must be multiples of ", m, " in [", m, ", ",
             limits.max_side, "] (VAE scale x patch size), found ", s);
    }
  }
  out.width = w;
  out.height = h;
}

}  // namespace

ImageRequest parse_image_request(const std::string& body, const RequestLimits& limits) {
  Json j;
  try {
    j = Json::parse(body);
  } catch (const Json::parse_error& e) {
    reject("malformed JSON body (", e.what(), ")");
  }
  if (!j.is_object()) reject("the body must be a JSON object, found ", type_name(j));

  static const std::set<std::string> kKnown = {
      "prompt",          "n",                   "size",           "response_format",
      "negative_prompt", "num_inference_steps", "guidance_scale", "seed",
      "num_frames",      "fps"};
  for (const auto& [key, value] : j.items()) {
    if (kKnown.count(key) == 0) {
      reject("unknown field '", key.substr(0, 64),
             "' (known: prompt, n, size, response_format, negative_prompt, "
             "num_inference_steps, guidance_scale, seed, num_frames, fps)");
    }
  }

  ImageRequest r;
  if (!j.contains("prompt")) reject("'prompt' is required");
  r.prompt = get_string(j["prompt"], "prompt", limits.max_prompt_bytes);
  if (r.prompt.empty()) reject("'prompt' must not be empty");
  if (j.contains("n")) r.n = static_cast<int>(get_integer(j["n"], "n", 1, limits.max_images));
  r.height = limits.default_height;
  r.width = limits.default_width;
  if (j.contains("size")) parse_size(get_string(j["size"], "size", 64), limits, r);
  if (j.contains("response_format")) {
    const std::string f = get_string(j["response_format"], "response_format", 64);
    if (f != "b64_json") {
      reject("'response_format' must be \"b64_json\" (the only one served), found \"", f, "\"");
    }
  }
  if (j.contains("negative_prompt")) {
    r.negative_prompt = get_string(j["negative_prompt"], "negative_prompt",
                                   limits.max_prompt_bytes);
  }
  if (j.contains("num_inference_steps")) {
    r.num_inference_steps = static_cast<int>(
        get_integer(j["num_inference_steps"], "num_inference_steps", 1, limits.max_steps));
  }
  if (j.contains("guidance_scale")) {
    const Json& g = j["guidance_scale"];
    if (!g.is_number()) reject("'guidance_scale' must be a number, found ", type_name(g));
    const double v = g.get<double>();
    if (!std::isfinite(v) || v < limits.min_guidance || v > limits.max_guidance) {
      reject("'guidance_scale' must be in [", limits.min_guidance, ", ", limits.max_guidance,
             "], found ", v);
    }
    r.guidance_scale = v;
  }
  if (j.contains("seed")) {
    const Json& s = j["seed"];
    if (!s.is_number_integer() || (s.is_number_integer() && !s.is_number_unsigned() &&
                                   s.get<int64_t>() < 0)) {
      reject("'seed' must be a non-negative integer, found ", s.dump().substr(0, 32));
    }
    r.seed = s.get<uint64_t>();
  }
  const bool video = limits.default_frames > 0;
  for (const char* field : {"num_frames", "fps"}) {
    if (!video && j.contains(field)) {
      reject("'", field, "' is for video models; this model makes images");
    }
  }
  if (video) {
    r.num_frames = limits.default_frames;
    if (j.contains("num_frames")) {
      const int64_t k = limits.temporal_factor;
      const int64_t f = get_integer(j["num_frames"], "num_frames", 1, limits.max_frames);
      if ((f - 1) % k != 0) {
        reject("'num_frames' must be ", k, "k+1 (1, ", 1 + k, ", ", 1 + 2 * k,
               ", ...) for this model's VAE, found ", f);
      }
      r.num_frames = f;
    }
    r.fps = limits.default_fps;
    if (j.contains("fps")) {
      const Json& v = j["fps"];
      if (!v.is_number()) reject("'fps' must be a number, found ", type_name(v));
      const double fps = v.get<double>();
      if (!std::isfinite(fps) || fps <= 0 || fps > limits.max_fps) {
        reject("'fps' must be in (0, ", limits.max_fps, "], found ", fps);
      }
      r.fps = fps;
    }
  }
  return r;
}

}  // namespace paradit::server
