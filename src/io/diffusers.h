#pragma once
// The diffusers folder layout: model_index.json → components; each component's config.json and
// weights; model ids resolved offline in a Hugging Face cache.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace paradit::io {

using Json = nlohmann::json;

// Reads and parses a JSON file; Error "<path>: <problem>" when missing or malformed.
Json read_json(const std::filesystem::path& path);
// What read_json does after reading: NaN/Infinity literals kept, depth-bounded; `where` names
// the text in errors.
Json parse_json_text(std::string_view text, const std::string& where);

// The most layers or blocks a config may ask for (keys naming "layers" or "blocks").
inline constexpr int64_t kMaxLayerCount = 4096;

// Typed config access with one-line errors naming the file and key.
class Config {
 public:
  Config() = default;
  Config(Json json, std::string where) : json_(std::move(json)), where_(std::move(where)) {}
  static Config load(const std::filesystem::path& config_json);
  // The same checks on a config's text (or parsed JSON); `where` names it in errors.
  static Config parse(std::string_view text, const std::string& where);
  static Config from_json(Json json, const std::string& where);

  bool has(const std::string& key) const;  // present and not null
  int64_t get_int(const std::string& key) const;  // required
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key, std::vector<int64_t> fallback) const;
  std::string class_name() const { return get_string("_class_name", ""); }
  const Json& json() const { return json_; }
  const std::string& where() const { return where_; }

 private:
  Json json_;
  std::string where_;
};

struct Component {
  std::string name;        // "transformer", "vae", ...
  std::string library;     // "diffusers", "transformers"
  std::string class_name;  // "FluxTransformer2DModel", ...
  std::filesystem::path dir;
};

// A pipeline folder (model_index.json) or a single component folder (config.json only).
class ModelFolder {
 public:
  // `path_or_id`: a folder, or a model id "ORG/NAME" resolved offline in the Hugging Face cache
  // (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub: models--ORG--NAME/
  // snapshots/<rev from refs/main, else the only one>/).
  static ModelFolder open(const std::string& path_or_id);

  const std::filesystem::path& root() const { return root_; }
  bool is_pipeline() const { return is_pipeline_; }
  std::string pipeline_class() const;  // "" for a component folder
  const std::vector<Component>& components() const { return components_; }
  bool has_component(const std::string& name) const;
  const Component& component(const std::string& name) const;  // Error if absent
  // The folder of the transformer: `transformer/` of a pipeline, or the root itself.
  std::filesystem::path transformer_dir() const;
  const Json& model_index() const { return model_index_; }

 private:
  std::filesystem::path root_;
  bool is_pipeline_ = false;
  Json model_index_;
  std::vector<Component> components_;
};

// Resolves "ORG/NAME" in the Hugging Face cache; empty path when not found.
std::filesystem::path resolve_hf_cache(const std::string& model_id);

}  // namespace paradit::io
