// The diffusers folder layout and offline Hugging Face cache resolution.
#include "io/diffusers.h"

#include "io/json.h"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace paradit::io {

namespace fs = std::filesystem;

namespace {

// Parser messages quote the input; keep the error on one line.
std::string one_line(std::string s, size_t max_chars = 200) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  if (s.size() > max_chars) s = s.substr(0, max_chars) + "...";
  return s;
}

std::string found(const Json& v) {
  return std::string(v.type_name()) + " " +
         one_line(v.dump(-1, ' ', false, Json::error_handler_t::replace), 60);
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// Where huggingface_hub keeps its cache, by the same environment variables.
fs::path hf_cache_dir() {
  if (auto v = env("HF_HUB_CACHE"); !v.empty()) return v;
  if (auto v = env("HUGGINGFACE_HUB_CACHE"); !v.empty()) return v;  // older name
  if (auto v = env("HF_HOME"); !v.empty()) return fs::path(v) / "hub";
  if (auto v = env("XDG_CACHE_HOME"); !v.empty()) return fs::path(v) / "huggingface" / "hub";
  return fs::path(env("HOME")) / ".cache" / "huggingface" / "hub";
}

// "ORG/NAME" (or "NAME"): what a Hub id looks like, as opposed to a local path.
bool looks_like_model_id(const std::string& s) {
  if (s.empty() || s.front() == '/' || s.front() == '.' || s.back() == '/') return false;
  int slashes = 0;
  for (char c : s) {
    if (c == '/') {
      ++slashes;
    } else if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return slashes == 1 && s.find("..") == std::string::npos;
}

// Python's json module writes float('inf') and float('nan') as bare Infinity, -Infinity and NaN
// (diffusers' DPMSolverMultistepScheduler saves "lambda_min_clipped": -Infinity); JSON has no
// such tokens. They are turned into marker strings for the parser, then into doubles.
constexpr const char* kNonFiniteMark = "\\u0000non-finite:";  // as JSON text: a NUL, then a tag

std::string quote_non_finite(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) {
        out += text[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const char* token : {"-Infinity", "Infinity", "NaN"}) {
      const size_t n = std::strlen(token);
      const bool boundary_after =
          i + n >= text.size() || !std::isalnum(static_cast<unsigned char>(text[i + n]));
      if (text.compare(i, n, token) == 0 && boundary_after) {
        out += std::string("\"") + kNonFiniteMark + token + "\"";
        i += n - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

void restore_non_finite(Json& j) {
  static const std::string mark = std::string(1, '\0') + "non-finite:";
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    if (s.rfind(mark, 0) == 0) {
      const std::string token = s.substr(mark.size());
      j = token == "NaN"        ? std::numeric_limits<double>::quiet_NaN()
          : token == "Infinity" ? std::numeric_limits<double>::infinity()
                                : -std::numeric_limits<double>::infinity();
    }
  } else if (j.is_structured()) {
    for (auto& child : j) restore_non_finite(child);
  }
}

bool is_int(const Json& v) {
  if (v.is_number_unsigned()) {
    return v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  }
  return v.is_number_integer();
}

}  // namespace

Json read_json(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) fail(path.string(), ": is a folder, expected a JSON file");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail(path.string(), ": cannot open (", fs::exists(path, ec) ? "unreadable" : "no such file",
         ")");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_json_text(text.str(), path.string());
}

Json parse_json_text(std::string_view text, const std::string& where) {
  Json j = parse_json(quote_non_finite(std::string(text)), where);  // depth-bounded
  restore_non_finite(j);
  return j;
}

// ---------------------------------------------------------------- Config

Config Config::load(const fs::path& config_json) {
  std::error_code ec;
  if (fs::is_directory(config_json, ec)) {
    fail(config_json.string(), ": is a folder, expected a JSON file");
  }
  return from_json(read_json(config_json), config_json.string());
}

Config Config::parse(std::string_view text, const std::string& where) {
  return from_json(parse_json_text(text, where), where);
}

Config Config::from_json(Json json, const std::string& where) {
  if (!json.is_object()) fail(where, ": is not a JSON object (found ", json.type_name(), ")");
  return Config(std::move(json), where);
}

bool Config::has(const std::string& key) const {
  return json_.is_object() && json_.contains(key) && !json_[key].is_null();
}

namespace {
const Json& required(const Config& c, const std::string& key) {
  if (!c.has(key)) fail(c.where(), ": missing key '", key, "'");
  return c.json()[key];
}
}  // namespace

namespace {
// Keys that count layers or blocks: "num_layers", "n_refiner_layers", "layers_per_block",
// "num_res_blocks", "num_hidden_layers", ...
bool counts_layers(const std::string& key) {
  return key.find("layers") != std::string::npos || key.find("blocks") != std::string::npos;
}
}  // namespace

int64_t Config::get_int(const std::string& key) const {
  const Json& v = required(*this, key);
  if (!is_int(v)) fail(where_, ": key '", key, "' is not an integer (found ", found(v), ")");
  const int64_t value = v.get<int64_t>();
  // A count of layers or blocks sizes arrays before any weight is read: bound it here so a
  // corrupt config cannot ask for a billion blocks.
  if (counts_layers(key) && (value < 0 || value > kMaxLayerCount)) {
    fail(where_, ": key '", key, "' = ", value, " is outside [0, ", kMaxLayerCount,
         "] (the most layers or blocks paradit builds)");
  }
  return value;
}

int64_t Config::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double Config::get_float(const std::string& key) const {
  const Json& v = required(*this, key);
  if (!v.is_number()) fail(where_, ": key '", key, "' is not a number (found ", found(v), ")");
  return v.get<double>();
}

double Config::get_float(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool Config::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const Json& v = json_[key];
  if (!v.is_boolean()) fail(where_, ": key '", key, "' is not true/false (found ", found(v), ")");
  return v.get<bool>();
}

std::string Config::get_string(const std::string& key) const {
  const Json& v = required(*this, key);
  if (!v.is_string()) fail(where_, ": key '", key, "' is not a string (found ", found(v), ")");
  return v.get<std::string>();
}

std::string Config::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::vector<int64_t> Config::get_int_list(const std::string& key) const {
  const Json& v = required(*this, key);
  bool ok = v.is_array();
  for (size_t i = 0; ok && i < v.size(); ++i) ok = is_int(v[i]);
  if (!ok) fail(where_, ": key '", key, "' is not a list of integers (found ", found(v), ")");
  std::vector<int64_t> out;
  for (const auto& e : v) out.push_back(e.get<int64_t>());
  return out;
}

std::vector<int64_t> Config::get_int_list(const std::string& key,
                                          std::vector<int64_t> fallback) const {
  return has(key) ? get_int_list(key) : std::move(fallback);
}

// ---------------------------------------------------------------- ModelFolder

fs::path resolve_hf_cache(const std::string& model_id) {
  if (!looks_like_model_id(model_id)) return {};
  std::string folder = "models--" + model_id;
  folder.replace(folder.find('/'), 1, "--");
  const fs::path repo = hf_cache_dir() / folder;
  std::error_code ec;
  if (!fs::is_directory(repo / "snapshots", ec)) return {};

  // refs/main holds the commit hash of the snapshot the Hub's main branch pointed at.
  std::ifstream ref(repo / "refs" / "main");
  std::string rev;
  if (ref && std::getline(ref, rev)) {
    while (!rev.empty() && std::isspace(static_cast<unsigned char>(rev.back()))) rev.pop_back();
    if (!rev.empty() && rev.find('/') == std::string::npos &&
        fs::is_directory(repo / "snapshots" / rev, ec)) {
      return repo / "snapshots" / rev;
    }
  }
  fs::path only;
  int count = 0;
  for (const auto& entry : fs::directory_iterator(repo / "snapshots", ec)) {
    if (entry.is_directory(ec)) {
      only = entry.path();
      ++count;
    }
  }
  return count == 1 ? only : fs::path();
}

ModelFolder ModelFolder::open(const std::string& path_or_id) {
  std::error_code ec;
  ModelFolder folder;
  if (fs::is_directory(path_or_id, ec)) {
    folder.root_ = path_or_id;
  } else if (fs::exists(path_or_id, ec)) {
    fail(path_or_id, ": not a folder (expected a diffusers pipeline or component folder)");
  } else if (looks_like_model_id(path_or_id)) {
    folder.root_ = resolve_hf_cache(path_or_id);
    if (folder.root_.empty()) {
      fail(path_or_id, ": no such folder, and no snapshot of model '", path_or_id,
           "' in the Hugging Face cache ", hf_cache_dir().string(),
           " (offline: download it first)");
    }
  } else {
    fail(path_or_id, ": no such folder");
  }

  const fs::path index_path = folder.root_ / "model_index.json";
  const fs::path config_path = folder.root_ / "config.json";
  if (fs::exists(index_path, ec)) {
    folder.is_pipeline_ = true;
    folder.model_index_ = read_json(index_path);
    const std::string where = index_path.string();
    if (!folder.model_index_.is_object()) {
      fail(where, ": is not a JSON object (found ", folder.model_index_.type_name(), ")");
    }
    for (const auto& [name, value] : folder.model_index_.items()) {
      // "_class_name", "_diffusers_version" ... are attributes; so are plain values such as
      // "force_zeros_for_empty_prompt": true. A component is ["library", "Class"]; an absent
      // optional one is null or [null, null].
      if (starts_with(name, "_") || !value.is_array()) continue;
      if (value.size() == 2 && value[0].is_null() && value[1].is_null()) continue;
      if (value.size() != 2 || !value[0].is_string() || !value[1].is_string()) {
        fail(where, ": component '", name, "' is not [library, class] (found ", found(value), ")");
      }
      Component c;
      c.name = name;
      c.library = value[0].get<std::string>();
      c.class_name = value[1].get<std::string>();
      c.dir = folder.root_ / name;
      if (!fs::is_directory(c.dir, ec)) {
        fail(c.dir.string(), ": component folder '", name, "' is missing (", where, " lists it as ",
             c.library, " ", c.class_name, ")");
      }
      folder.components_.push_back(std::move(c));
    }
    return folder;
  }
  if (fs::exists(config_path, ec)) {
    const Config config = Config::load(config_path);
    Component c;
    fs::path normal = folder.root_.lexically_normal();
    if (normal.filename().empty()) normal = normal.parent_path();  // "dir/" → "dir"
    c.name = normal.filename().string();
    if (c.name.empty() || c.name == ".")
      c.name = fs::absolute(folder.root_, ec).filename().string();
    c.library = config.has("_diffusers_version")     ? "diffusers"
                : config.has("transformers_version") ? "transformers"
                                                     : "";
    c.class_name = config.class_name();
    if (c.class_name.empty() && config.has("architectures") &&
        config.json()["architectures"].is_array() && !config.json()["architectures"].empty() &&
        config.json()["architectures"][0].is_string()) {
      c.class_name = config.json()["architectures"][0].get<std::string>();
    }
    c.dir = folder.root_;
    folder.components_.push_back(std::move(c));
    return folder;
  }
  fail(folder.root_.string(),
       ": not a diffusers folder (neither model_index.json nor config.json is there)");
}

std::string ModelFolder::pipeline_class() const {
  if (!is_pipeline_) return "";
  const auto it = model_index_.find("_class_name");
  return it != model_index_.end() && it->is_string() ? it->get<std::string>() : "";
}

bool ModelFolder::has_component(const std::string& name) const {
  for (const auto& c : components_) {
    if (c.name == name) return true;
  }
  return false;
}

const Component& ModelFolder::component(const std::string& name) const {
  for (const auto& c : components_) {
    if (c.name == name) return c;
  }
  std::string names;
  for (const auto& c : components_) names += (names.empty() ? "" : ", ") + c.name;
  fail(root_.string(), ": no component '", name, "' (has: ", names.empty() ? "none" : names, ")");
}

fs::path ModelFolder::transformer_dir() const {
  return is_pipeline_ ? component("transformer").dir : root_;
}

}  // namespace paradit::io
