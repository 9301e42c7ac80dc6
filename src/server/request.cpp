#include "server/request.h"

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "io/json.h"

namespace paradit::server {

namespace {

using Json = nlohmann::json;

template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

// A value as a message shows it: strings quoted, long ones cut.
std::string shown(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

// The body's fields, with null meaning absent.
class Fields {
 public:
  explicit Fields(const Json& j) : j_(j) {}
  bool has(const char* key) const {
    const auto it = j_.find(key);
    return it != j_.end() && !it->is_null();
  }
  const Json& at(const char* key) const { return *j_.find(key); }

  std::string string(const char* key, size_t max_bytes) const {
    const Json& v = at(key);
    if (!v.is_string()) {
      throw BadRequest(cat("'", key, "' must be a string, found ", v.type_name()), key,
                       "invalid_type");
    }
    std::string s = v.get<std::string>();
    if (s.size() > max_bytes) {
      throw BadRequest(
          cat("'", key, "' is too long: at most ", max_bytes, " bytes, found ", s.size()), key);
    }
    return s;
  }

  // One of `allowed`, else 400 listing them.
  std::string choice(const char* key, const std::vector<std::string>& allowed) const {
    const std::string s = string(key, 64);
    for (const std::string& a : allowed) {
      if (s == a) return s;
    }
    std::string list;
    for (const std::string& a : allowed) list += (list.empty() ? "\"" : ", \"") + a + "\"";
    throw BadRequest(cat("'", key, "' must be one of ", list, "; found \"", s, "\""), key);
  }

  // An integer in [lo, hi]; `limit` (a serve flag) is named when the value is above hi.
  int64_t integer(const char* key, int64_t lo, int64_t hi, const char* limit = nullptr) const {
    const Json& v = at(key);
    // JSON booleans and fractions are not integers (2.0 included: a client sending it is
    // confused).
    if (!v.is_number_integer()) {
      throw BadRequest(cat("'", key, "' must be an integer, found ", v.type_name(), " ", shown(v)),
                       key, "invalid_type");
    }
    const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi);
    const int64_t x = too_big ? hi : v.get<int64_t>();
    if (too_big || x > hi) {
      if (limit != nullptr) {
        throw BadRequest(
            cat("'", key, "' is ", shown(v), ", above this server's limit ", limit, " ", hi), key,
            "limit_exceeded");
      }
      throw BadRequest(cat("'", key, "' must be in [", lo, ", ", hi, "], found ", shown(v)), key);
    }
    if (x < lo) {
      throw BadRequest(cat("'", key, "' must be in [", lo, ", ", hi, "], found ", x), key);
    }
    return x;
  }

  double number(const char* key) const {
    const Json& v = at(key);
    if (!v.is_number()) {
      throw BadRequest(cat("'", key, "' must be a number, found ", v.type_name(), " ", shown(v)),
                       key, "invalid_type");
    }
    return v.get<double>();
  }

  bool boolean(const char* key) const {
    const Json& v = at(key);
    if (!v.is_boolean()) {
      throw BadRequest(cat("'", key, "' must be true or false, found ", shown(v)), key,
                       "invalid_type");
    }
    return v.get<bool>();
  }

 private:
  const Json& j_;
};

bool digits_only(const std::string& t) {
  return !t.empty() && t.size() <= 6 && t.find_first_not_of("0123456789") == std::string::npos;
}

// "WxH" (or "auto": the model's default) → width and height, each a positive multiple of the
// pipeline's size unit, their product within --max_pixels.
void parse_size(const std::string& s, const RequestLimits& limits, ImageRequest& out) {
  if (s == "auto") return;  // the defaults are already in `out`
  const size_t x = s.find('x');
  if (x == std::string::npos || !digits_only(s.substr(0, x)) || !digits_only(s.substr(x + 1))) {
    throw BadRequest(cat("'size' must be \"WIDTHxHEIGHT\" (e.g. \"", limits.default_width, "x",
                         limits.default_height, "\") or \"auto\", found \"", s.substr(0, 32), "\""),
                     "size");
  }
  const int64_t w = std::stoll(s.substr(0, x));
  const int64_t h = std::stoll(s.substr(x + 1));
  const int64_t m = limits.size_multiple;
  if (w < m || h < m || w % m != 0 || h % m != 0) {
    throw BadRequest(cat("'size': width and height must be positive multiples of ", m,
                         " (VAE scale x patch size), found ", s),
                     "size");
  }
  if (w * h > limits.max_pixels) {
    throw BadRequest(
        cat("'size' ", s, " is ", w * h, " pixels, above this server's limit --max_pixels ",
            limits.max_pixels, " (e.g. ", limits.default_width, "x", limits.default_height, " is ",
            limits.default_width * limits.default_height, ")"),
        "size", "limit_exceeded");
  }
  out.width = w;
  out.height = h;
}

const std::set<std::string>& known_fields(Endpoint endpoint) {
  static const std::set<std::string> kImages = {
      // OpenAI images API
      "model", "prompt", "n", "size", "response_format", "output_format", "output_compression",
      "background", "quality", "style", "moderation", "user", "safety_identifier", "complexity",
      "frame_count", "frame_duration_ms", "svg", "stream", "partial_images",
      // paradit's own
      "negative_prompt", "num_inference_steps", "guidance_scale", "seed", "use_fbcache",
      "fbcache_threshold", "use_teacache", "teacache_threshold", "cache_warmup_steps",
      // video models through the jobs API
      "num_frames", "fps", "seconds"};
  static const std::set<std::string> kVideos = {
      // OpenAI videos API
      "model", "prompt", "seconds", "size", "input_reference",
      // paradit's own
      "n", "num_frames", "fps", "negative_prompt", "num_inference_steps", "guidance_scale", "seed",
      "use_fbcache", "fbcache_threshold", "use_teacache", "teacache_threshold",
      "cache_warmup_steps"};
  return endpoint == Endpoint::kVideos ? kVideos : kImages;
}

// The OpenAI images fields paradit accepts but does not act on: each is named in `ignored` when
// the request asks for something paradit does not do.
void note_unhonoured(const Fields& f, ApiRequest& r) {
  if (f.has("quality")) {
    r.quality =
        f.choice("quality", {"auto", "low", "medium", "high", "xhigh", "max", "standard", "hd"});
    if (r.quality != "auto") r.ignored.push_back("quality=" + r.quality);
  }
  if (f.has("background")) {
    const std::string b = f.choice("background", {"auto", "opaque", "transparent"});
    if (b == "transparent") r.ignored.push_back("background=transparent");
  }
  if (f.has("style")) r.ignored.push_back("style=" + f.choice("style", {"vivid", "natural"}));
  if (f.has("moderation")) {
    r.ignored.push_back("moderation=" + f.choice("moderation", {"low", "auto"}));
  }
  if (f.has("complexity")) {
    r.ignored.push_back("complexity=" + f.choice("complexity", {"low", "medium", "high"}));
  }
  for (const char* id : {"user", "safety_identifier"}) {
    if (f.has(id)) {
      f.string(id, 1024);
      r.ignored.push_back(id);
    }
  }
}

// The step-caching fields, as generate's flags: one method at most, a threshold only with its
// method, finite and ≥ 0; warm-up steps in [0, --max_steps].
void parse_cache_fields(const Fields& f, const RequestLimits& limits, ImageRequest& g) {
  if (f.has("use_fbcache")) g.use_fbcache = f.boolean("use_fbcache");
  if (f.has("use_teacache")) g.use_teacache = f.boolean("use_teacache");
  if (g.use_fbcache && g.use_teacache) {
    throw BadRequest("'use_fbcache' and 'use_teacache': choose one step cache, not both",
                     "use_teacache");
  }
  const auto threshold = [&](const char* key, bool enabled, const char* method) {
    std::optional<double> out;
    if (!f.has(key)) return out;
    const double v = f.number(key);
    if (!enabled) throw BadRequest(cat("'", key, "' needs '", method, "': true"), key);
    if (!std::isfinite(v) || v < 0) {
      throw BadRequest(cat("'", key, "' must be a finite number >= 0, found ", v), key);
    }
    out = v;
    return out;
  };
  g.fbcache_threshold = threshold("fbcache_threshold", g.use_fbcache, "use_fbcache");
  g.teacache_threshold = threshold("teacache_threshold", g.use_teacache, "use_teacache");
  if (f.has("cache_warmup_steps")) {
    if (!g.use_fbcache && !g.use_teacache) {
      throw BadRequest("'cache_warmup_steps' needs 'use_fbcache' or 'use_teacache'",
                       "cache_warmup_steps");
    }
    g.cache_warmup_steps =
        static_cast<int>(f.integer("cache_warmup_steps", 0, limits.max_steps, "--max_steps"));
  }
}

void parse_image_fields(const Fields& f, const RequestLimits& limits, ApiRequest& r) {
  ImageRequest& g = r.generation;
  if (f.has("response_format")) {
    r.url = f.choice("response_format", {"b64_json", "url"}) == "url";
  }
  if (f.has("output_format")) {
    const std::string o = f.string("output_format", 64);
    if (o == "png") {
      g.output_format = ImageFormat::kPng;
    } else if (o == "jpeg" || o == "jpg") {
      g.output_format = ImageFormat::kJpeg;
    } else if (o == "webp") {
      g.output_format = ImageFormat::kWebp;
    } else {
      throw BadRequest(cat("'output_format' must be \"png\", \"jpeg\" or \"webp\" (what paradit "
                           "encodes), found \"",
                           o, "\""),
                       "output_format", "unsupported_value");
    }
  }
  if (f.has("output_compression")) {
    g.output_compression = static_cast<int>(f.integer("output_compression", 0, 100));
    if (g.output_format == ImageFormat::kPng) r.ignored.push_back("output_compression (png)");
  }
  for (const char* gif_only : {"frame_count", "frame_duration_ms"}) {
    if (f.has(gif_only)) {
      f.integer(gif_only, 0, 1 << 30);
      r.ignored.push_back(gif_only);
    }
  }
  if (f.has("svg")) r.ignored.push_back("svg");
  note_unhonoured(f, r);
  if (f.has("stream")) r.stream = f.boolean("stream");
  if (f.has("partial_images")) {
    g.partial_images = static_cast<int>(f.integer("partial_images", 0, 3));
    if (!r.stream && g.partial_images > 0) {
      r.ignored.push_back("partial_images (without stream)");
      g.partial_images = 0;
    }
  }
}

void parse_video_fields(const Fields& f, Endpoint endpoint, const RequestLimits& limits,
                        ApiRequest& r) {
  ImageRequest& g = r.generation;
  const bool video = limits.default_frames > 0;
  for (const char* field : {"num_frames", "fps", "seconds"}) {
    if (!video && f.has(field)) {
      throw BadRequest(cat("'", field, "' is for video models; this model makes images"), field);
    }
  }
  if (!video) return;
  for (const char* field : {"output_format", "output_compression", "partial_images", "stream"}) {
    if (f.has(field)) {
      throw BadRequest(cat("'", field, "' is for image models; this model makes MP4 videos"),
                       field);
    }
  }
  if (f.has("input_reference")) {
    throw BadRequest(
        "'input_reference' is not supported: paradit's video models generate from "
        "text only",
        "input_reference", "unsupported_value");
  }
  g.fps = limits.default_fps;
  if (f.has("fps")) {
    const double fps = f.number("fps");
    if (!std::isfinite(fps) || fps <= 0 || fps > limits.max_fps) {
      throw BadRequest(cat("'fps' must be in (0, ", limits.max_fps, "], found ", fps), "fps");
    }
    g.fps = fps;
  }
  const int64_t k = limits.temporal_factor;
  g.num_frames = limits.default_frames;
  if (f.has("num_frames") && f.has("seconds")) {
    throw BadRequest("give 'seconds' or 'num_frames', not both", "seconds");
  }
  if (f.has("num_frames")) {
    const int64_t frames = f.integer("num_frames", 1, limits.max_frames, "--max_frames");
    if ((frames - 1) % k != 0) {
      throw BadRequest(cat("'num_frames' must be ", k, "k+1 (1, ", 1 + k, ", ", 1 + 2 * k,
                           ", ...) for this model's VAE, found ", frames),
                       "num_frames");
    }
    g.num_frames = frames;
  }
  if (f.has("seconds")) {
    // OpenAI sends seconds as a string ("4"); a number is accepted as well.
    const Json& v = f.at("seconds");
    double s = NAN;
    std::string text;
    if (v.is_number()) {
      s = v.get<double>();
      text = v.dump(-1, ' ', false, Json::error_handler_t::replace);
    } else if (v.is_string()) {
      text = v.get<std::string>().substr(0, 32);
      char* end = nullptr;
      s = std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size()) s = NAN;
    }
    if (!std::isfinite(s) || s <= 0) {
      throw BadRequest(
          cat("'seconds' must be a positive number of seconds (e.g. \"4\"), found ", shown(v)),
          "seconds");
    }
    // The frame count nearest to seconds · fps on the VAE's 4k+1 grid, at least 1.
    const double want = s * *g.fps;
    const double steps = std::round((want - 1.0) / static_cast<double>(k));
    const double frames = 1.0 + static_cast<double>(k) * std::max(0.0, steps);
    if (frames > static_cast<double>(limits.max_frames)) {
      throw BadRequest(cat("'seconds' ", text, " at ", *g.fps, " fps is ", frames,
                           " frames, above this server's limit --max_frames ", limits.max_frames),
                       "seconds", "limit_exceeded");
    }
    g.num_frames = static_cast<int64_t>(frames);
  }
  if (endpoint == Endpoint::kVideos && g.n != 1) {
    throw BadRequest("'n' must be 1 for /v1/videos (one video per job; use /v1/jobs for more)",
                     "n");
  }
}

}  // namespace

const char* format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "png";
    case ImageFormat::kJpeg:
      return "jpeg";
    case ImageFormat::kWebp:
      return "webp";
  }
  return "png";
}

const char* format_mime_type(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "image/png";
    case ImageFormat::kJpeg:
      return "image/jpeg";
    case ImageFormat::kWebp:
      return "image/webp";
  }
  return "application/octet-stream";
}

std::vector<int> preview_steps(int partial_images, int total) {
  std::vector<int> steps;
  for (int k = 1; k <= partial_images; ++k) {
    const int s = static_cast<int>(static_cast<int64_t>(k) * total / (partial_images + 1));
    if (s >= 1 && s <= total - 1 && (steps.empty() || steps.back() != s)) steps.push_back(s);
  }
  return steps;
}

ApiRequest parse_request(const std::string& body, Endpoint endpoint, const RequestLimits& limits,
                         const std::string& model_id) {
  // Depth-bounded; an error names the byte and the field it is in (its raw bytes never echoed:
  // they may not be UTF-8).
  io::JsonError error;
  std::optional<Json> j = io::try_parse_json(body, &error, kMaxRequestDepth);
  if (!j) {
    const std::string field = io::key_before(body, error.byte);
    throw BadRequest(cat(field.empty() ? std::string() : "'" + field + "': ",
                         "malformed JSON body at byte ", error.byte, " (", error.reason, ")"),
                     field, "invalid_json");
  }
  return parse_request(*j, endpoint, limits, model_id);
}

ApiRequest parse_request(const Json& j, Endpoint endpoint, const RequestLimits& limits,
                         const std::string& model_id) {
  if (!j.is_object()) {
    throw BadRequest(cat("the body must be a JSON object, found ", j.type_name()), "",
                     "invalid_json");
  }
  ApiRequest r;
  const std::set<std::string>& known = known_fields(endpoint);
  for (const auto& [key, value] : j.items()) {
    if (known.count(key) == 0) r.ignored.push_back(key.substr(0, 64));
  }
  const Fields f(j);
  try {
    if (f.has("model")) {
      r.model = f.string("model", 256);
      if (*r.model != model_id) {
        throw BadRequest(cat("The model '", *r.model, "' does not exist: this server serves '",
                             model_id, "' (GET /v1/models)"),
                         "model", "model_not_found", 404);
      }
    }
    ImageRequest& g = r.generation;
    if (!f.has("prompt")) {
      throw BadRequest("'prompt' is required", "prompt", "missing_required_parameter");
    }
    g.prompt = f.string("prompt", limits.max_prompt_bytes);
    if (g.prompt.empty()) throw BadRequest("'prompt' must not be empty", "prompt");
    if (f.has("n")) g.n = static_cast<int>(f.integer("n", 1, limits.max_n, "--max_n"));
    g.height = limits.default_height;
    g.width = limits.default_width;
    if (f.has("size")) parse_size(f.string("size", 64), limits, g);
    if (f.has("negative_prompt")) {
      g.negative_prompt = f.string("negative_prompt", limits.max_prompt_bytes);
    }
    if (f.has("num_inference_steps")) {
      g.num_inference_steps =
          static_cast<int>(f.integer("num_inference_steps", 1, limits.max_steps, "--max_steps"));
    }
    if (f.has("guidance_scale")) {
      const double v = f.number("guidance_scale");
      if (!std::isfinite(v) || v < limits.min_guidance || v > limits.max_guidance) {
        throw BadRequest(cat("'guidance_scale' must be in [", limits.min_guidance, ", ",
                             limits.max_guidance, "], found ", v),
                         "guidance_scale");
      }
      g.guidance_scale = v;
    }
    if (f.has("seed")) {
      const Json& s = f.at("seed");
      if (!s.is_number_unsigned() && !(s.is_number_integer() && s.get<int64_t>() >= 0)) {
        throw BadRequest(cat("'seed' must be a non-negative integer, found ", shown(s)), "seed",
                         "invalid_type");
      }
      g.seed = s.get<uint64_t>();
    }
    parse_cache_fields(f, limits, g);
    if (endpoint == Endpoint::kImages) parse_image_fields(f, limits, r);
    parse_video_fields(f, endpoint, limits, r);
  } catch (const Json::exception& e) {
    // The checks above test every type before reading; this only guards against a slip.
    throw BadRequest(cat("bad request body (", e.what(), ")"), "", "invalid_value");
  }
  return r;
}

Json form_to_json(const std::vector<FormField>& fields) {
  static const std::set<std::string> kNumbers = {
      "n",   "num_inference_steps", "guidance_scale", "seed",        "num_frames",
      "fps", "output_compression",  "partial_images", "frame_count", "frame_duration_ms",
      "fbcache_threshold", "teacache_threshold", "cache_warmup_steps"};
  static const std::set<std::string> kBooleans = {"stream", "use_fbcache", "use_teacache"};
  Json j = Json::object();
  for (const FormField& field : fields) {
    // A form carries bytes; JSON (and every answer that echoes a field) needs UTF-8.
    try {
      (void)Json(field.name).dump();
      (void)Json(field.filename.empty() ? field.content : field.filename).dump();
    } catch (const Json::exception&) {
      throw BadRequest(cat("form field '", field.name.substr(0, 64), "' is not valid UTF-8"),
                       field.name.substr(0, 64), "invalid_value");
    }
    if (!field.filename.empty()) {
      j[field.name] = {{"filename", field.filename}};
      continue;
    }
    Json value = field.content;
    if (kNumbers.count(field.name) != 0) {
      const Json parsed = Json::parse(field.content, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_number()) value = parsed;
    } else if (kBooleans.count(field.name) != 0) {
      if (field.content == "true") value = true;
      if (field.content == "false") value = false;
    }
    j[field.name] = value;
  }
  return j;
}

}  // namespace paradit::server
