// `paradit info PATH [--json] [--tensors]`: what a checkpoint holds — the pipeline class, then
// per component its library, class, config highlights, tensor and parameter counts, dtypes and
// weight file sizes, and the totals; for a pipeline paradit serves, the model id `paradit serve`
// gives it and one curl and one OpenAI-client example. PATH is a pipeline or component folder, a
// model id in the Hugging Face cache, or a single .safetensors / .safetensors.index.json file.
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/parallel_flags.h"
#include "core/error.h"
#include "io/diffusers.h"
#include "io/safetensors.h"
#include "pipelines/memory_estimate.h"
#include "pipelines/pipeline.h"
#include "server/server.h"

namespace paradit::cli {

namespace {

namespace fs = std::filesystem;
using io::Json;

struct ServeInfo {
  std::string model_id;
  bool video = false;
  std::string default_size;  // "WxH"
};

struct InfoOptions {
  std::string path;
  bool json = false;
  bool tensors = false;
  parallel::ParallelConfig parallel;  // the layout of the memory estimate
  std::optional<int64_t> height, width, num_frames;
};

// The estimate as JSON: the sizes it assumed and every rank's bytes.
Json memory_json(const pipelines::MemoryEstimate& e) {
  Json ranks = Json::array();
  for (const auto& m : e.ranks) {
    ranks.push_back({{"rank", m.rank},
                     {"stage", m.stage},
                     {"heads", m.heads},
                     {"weights", m.weights},
                     {"activations", m.activations},
                     {"kv", m.kv},
                     {"denoise_total", m.denoise_total()}});
  }
  return {{"layout", e.layout},
          {"batch", e.batch},
          {"image_tokens", e.image_tokens},
          {"text_tokens", e.text_tokens},
          {"hidden", e.hidden},
          {"heads", e.heads},
          {"mlp", e.mlp},
          {"transformer_bytes", e.transformer_bytes},
          {"other_weights", e.other_weights},
          {"ranks", ranks}};
}

// Config fields worth a glance, in display order; whichever a component has are shown.
constexpr const char* kHighlightKeys[] = {
    // transformers (diffusers)
    "num_layers",
    "num_single_layers",
    "num_attention_heads",
    "attention_head_dim",
    "in_channels",
    "out_channels",
    "patch_size",
    "patch_size_t",
    "sample_size",
    "joint_attention_dim",
    "caption_channels",
    "cross_attention_dim",
    "pooled_projection_dim",
    "text_dim",
    "ffn_dim",
    "guidance_embeds",
    "qk_norm",
    "num_embeds_ada_norm",
    "use_additional_conditions",
    "dual_attention_layers",
    "axes_dims_rope",
    // VAEs
    "latent_channels",
    "z_dim",
    "base_dim",
    "block_out_channels",
    "layers_per_block",
    "scaling_factor",
    "shift_factor",
    // text encoders (transformers)
    "model_type",
    "d_model",
    "d_kv",
    "d_ff",
    "num_heads",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "projection_dim",
    "vocab_size",
    "max_position_embeddings",
    // schedulers
    "num_train_timesteps",
    "prediction_type",
    "shift",
    "use_dynamic_shifting",
    "solver_order",
    "algorithm_type",
    "beta_schedule",
    "flow_shift",
};

struct ComponentReport {
  io::Component component;
  fs::path config_file;  // empty when the component has none we read
  Json highlights = Json::object();
  std::vector<fs::path> weight_files;
  std::vector<uint64_t> weight_file_bytes;
  std::vector<io::TensorInfo> tensors;  // sorted by name
  int64_t parameters = 0;
  uint64_t bytes = 0;
  std::map<std::string, int64_t> dtypes;  // dtype name → tensor count
  bool has_weights = false;
};

// The config file of a component folder: models keep config.json, schedulers
// scheduler_config.json; tokenizers have none worth reading here.
std::optional<fs::path> find_config(const fs::path& dir) {
  std::error_code ec;
  for (const char* name : {"config.json", "scheduler_config.json"}) {
    if (fs::is_regular_file(dir / name, ec)) return dir / name;
  }
  return std::nullopt;
}

void add_weights(ComponentReport& r, const io::TensorSource& source) {
  r.has_weights = true;
  for (const auto& f : source.files()) {
    r.weight_files.push_back(f.path());
    r.weight_file_bytes.push_back(f.file_bytes());
    r.bytes += f.file_bytes();
  }
  for (const auto& name : source.names()) {
    const io::TensorInfo& t = source.info(name);
    r.tensors.push_back(t);
    r.parameters += core::shape_numel(t.shape);
    ++r.dtypes[std::string(core::dtype_name(t.dtype))];
  }
}

ComponentReport inspect_component(const io::Component& c, bool require_class) {
  ComponentReport r;
  r.component = c;
  if (auto config_file = find_config(c.dir)) {
    r.config_file = *config_file;
    const io::Config config = io::Config::load(*config_file);
    // diffusers writes _class_name into every config it saves; a config without it is not
    // one diffusers (or paradit) can load.
    if (c.library == "diffusers" || (require_class && c.class_name.empty())) {
      const std::string cls = config.get_string("_class_name");
      if (r.component.class_name.empty()) r.component.class_name = cls;
    }
    for (const char* key : kHighlightKeys) {
      if (config.has(key)) r.highlights[key] = config.json()[key];
    }
  } else if (require_class) {
    fail(c.dir.string(), ": no config.json in this component folder");
  }
  if (io::find_weights(c.dir)) add_weights(r, io::TensorSource::open(c.dir));
  return r;
}

// ---- formatting ----

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1000000000) {
    std::snprintf(buf, sizeof(buf), "%.2fB", n / 1e9);
  } else if (n >= 1000000) {
    std::snprintf(buf, sizeof(buf), "%.1fM", n / 1e6);
  } else if (n >= 1000) {
    std::snprintf(buf, sizeof(buf), "%.1fK", n / 1e3);
  } else {
    return std::to_string(n);
  }
  return buf;
}

std::string dtypes_text(const ComponentReport& r) {
  std::string out;
  for (const auto& [name, count] : r.dtypes) {
    out += (out.empty() ? "" : " ") + name + ":" + std::to_string(count);
  }
  return out.empty() ? "-" : out;
}

std::string highlight_text(const Json& highlights) {
  std::string out;
  for (const char* key : kHighlightKeys) {
    if (!highlights.contains(key)) continue;
    const Json& v = highlights[key];
    out += (out.empty() ? "" : " ") + std::string(key) + "=" +
           (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

// Prints rows with columns padded to their widest cell; `right` marks right-aligned columns.
void print_table(const std::vector<std::vector<std::string>>& rows,
                 const std::vector<bool>& right) {
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const std::string pad(width[i] - row[i].size(), ' ');
      line += right[i] ? pad + row[i] : row[i] + (i + 1 < row.size() ? pad : "");
      if (i + 1 < row.size()) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

void print_text(const std::string& header, const std::vector<ComponentReport>& reports,
                bool list_tensors) {
  std::printf("%s\n\n", header.c_str());
  std::vector<std::vector<std::string>> rows = {
      {"component", "library", "class", "tensors", "parameters", "", "dtypes", "weights"}};
  int64_t total_tensors = 0, total_params = 0;
  uint64_t total_bytes = 0;
  for (const auto& r : reports) {
    const bool w = r.has_weights;
    rows.push_back({r.component.name, r.component.library.empty() ? "-" : r.component.library,
                    r.component.class_name.empty() ? "-" : r.component.class_name,
                    w ? with_commas(static_cast<int64_t>(r.tensors.size())) : "-",
                    w ? with_commas(r.parameters) : "-",
                    w ? "(" + human_count(r.parameters) + ")" : "", dtypes_text(r),
                    w ? human_bytes(r.bytes) : "-"});
    total_tensors += static_cast<int64_t>(r.tensors.size());
    total_params += r.parameters;
    total_bytes += r.bytes;
  }
  rows.push_back({"total", "", "", with_commas(total_tensors), with_commas(total_params),
                  "(" + human_count(total_params) + ")", "", human_bytes(total_bytes)});
  print_table(rows, {false, false, false, true, true, false, false, true});

  bool any_config = false;
  for (const auto& r : reports) any_config |= !r.highlights.empty();
  if (any_config) {
    std::printf("\nconfig\n");
    for (const auto& r : reports) {
      if (r.highlights.empty()) continue;
      std::printf("  %s: %s\n", r.component.name.c_str(), highlight_text(r.highlights).c_str());
    }
  }
  bool any_files = false;
  for (const auto& r : reports) any_files |= !r.weight_files.empty();
  if (any_files) {
    std::printf("\nweight files\n");
    for (const auto& r : reports) {
      for (size_t i = 0; i < r.weight_files.size(); ++i) {
        std::printf("  %s: %s (%s bytes)\n", r.component.name.c_str(),
                    r.weight_files[i].string().c_str(),
                    with_commas(static_cast<int64_t>(r.weight_file_bytes[i])).c_str());
      }
    }
  }
  if (list_tensors) {
    for (const auto& r : reports) {
      if (!r.has_weights) continue;
      std::printf("\ntensors of %s\n", r.component.name.c_str());
      std::vector<std::vector<std::string>> trows;
      for (const auto& t : r.tensors) {
        trows.push_back(
            {"  " + t.name, std::string(core::dtype_name(t.dtype)), core::shape_str(t.shape)});
      }
      if (!trows.empty()) print_table(trows, {false, false, false});
    }
  }
}

Json to_json(const std::string& path, const io::ModelFolder* folder,
             const std::vector<ComponentReport>& reports, bool list_tensors) {
  Json out = Json::object();
  out["path"] = path;
  out["is_pipeline"] = folder && folder->is_pipeline();
  out["pipeline_class"] = folder && folder->is_pipeline() ? Json(folder->pipeline_class()) : Json();
  Json components = Json::array();
  int64_t total_tensors = 0, total_params = 0;
  uint64_t total_bytes = 0;
  for (const auto& r : reports) {
    Json c = Json::object();
    c["name"] = r.component.name;
    c["library"] = r.component.library;
    c["class"] = r.component.class_name;
    c["folder"] = r.component.dir.string();
    c["config_file"] = r.config_file.empty() ? Json() : Json(r.config_file.string());
    c["config"] = r.highlights;
    Json files = Json::array();
    for (size_t i = 0; i < r.weight_files.size(); ++i) {
      files.push_back({{"file", r.weight_files[i].string()}, {"bytes", r.weight_file_bytes[i]}});
    }
    c["weights"] = files;
    c["tensors"] = r.tensors.size();
    c["parameters"] = r.parameters;
    c["bytes"] = r.bytes;
    c["dtypes"] = r.dtypes;
    if (list_tensors) {
      Json list = Json::array();
      for (const auto& t : r.tensors) {
        list.push_back({{"name", t.name},
                        {"dtype", std::string(core::dtype_name(t.dtype))},
                        {"shape", t.shape}});
      }
      c["tensor_list"] = list;
    }
    components.push_back(c);
    total_tensors += static_cast<int64_t>(r.tensors.size());
    total_params += r.parameters;
    total_bytes += r.bytes;
  }
  out["components"] = components;
  out["total"] = {{"tensors", total_tensors}, {"parameters", total_params}, {"bytes", total_bytes}};
  return out;
}

bool is_weight_file(const fs::path& p) {
  const std::string name = p.filename().string();
  auto ends = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".safetensors") || ends(".safetensors.index.json");
}

int run_info(const InfoOptions& opt) {
  std::vector<ComponentReport> reports;
  std::string header;
  std::unique_ptr<io::ModelFolder> folder;
  std::error_code ec;
  if (fs::is_regular_file(opt.path, ec) && is_weight_file(opt.path)) {
    // A bare weight file: one pseudo-component, no config.
    ComponentReport r;
    r.component.name = fs::path(opt.path).filename().string();
    r.component.dir = fs::path(opt.path).parent_path();
    add_weights(r, io::TensorSource::open(opt.path));
    reports.push_back(std::move(r));
    header = "weights: " + opt.path;
  } else {
    folder = std::make_unique<io::ModelFolder>(io::ModelFolder::open(opt.path));
    if (folder->is_pipeline()) {
      const std::string cls = folder->pipeline_class();
      header = "pipeline: " + (cls.empty() ? std::string("(no _class_name)") : cls) + "  (" +
               folder->root().string() + ")";
    } else {
      header = "component folder: " + folder->root().string();
    }
    for (const auto& c : folder->components()) {
      reports.push_back(inspect_component(c, /*require_class=*/!folder->is_pipeline()));
    }
  }
  // How `paradit serve` would serve a pipeline paradit can run (configs only, no weights).
  std::optional<ServeInfo> serve;
  std::optional<pipelines::MemoryEstimate> memory;
  if (folder && folder->is_pipeline()) {
    std::unique_ptr<pipelines::Pipeline> pipe;
    try {
      pipe = pipelines::Pipeline::open(opt.path);
    } catch (const Error&) {
      // Not a pipeline paradit runs: no serve or memory section.
    }
    if (pipe) {
      // One sample at the pipeline's default size (or the flags'); a bad layout is the user's
      // error (exit 2).
      pipelines::GenerateRequest request;
      request.prompts = {"0"};  // DiT reads it as a class id
      request.height = opt.height;
      request.width = opt.width;
      request.num_frames = opt.num_frames;
      bool resolved_ok = false;
      pipelines::GenerateRequest resolved;
      try {
        resolved = pipe->resolve(request);
        resolved_ok = true;
      } catch (const Error&) {
        // A pipeline that takes embeddings only (HunyuanVideo): no estimate.
      }
      if (resolved_ok) memory = pipe->estimate_memory(resolved, opt.parallel);
    }
    try {
      if (pipe && pipe->class_name() != "HunyuanVideoPipeline") {  // needs embeddings: not servable
        serve = ServeInfo{
            server::served_model_id(opt.path, pipe->root()), pipe->is_video(),
            std::to_string(pipe->defaults().width) + "x" + std::to_string(pipe->defaults().height)};
      }
    } catch (const Error&) {
      // Not a pipeline paradit runs: no serve section.
    }
  }
  if (opt.json) {
    Json out = to_json(opt.path, folder.get(), reports, opt.tensors);
    if (memory) out["memory"] = memory_json(*memory);
    if (serve) {
      out["serve"] = {{"model_id", serve->model_id},
                      {"kind", serve->video ? "video" : "image"},
                      {"default_size", serve->default_size}};
    }
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    print_text(header, reports, opt.tensors);
    if (memory) std::printf("\n%s", pipelines::format_memory_estimate(*memory).c_str());
    if (serve) {
      std::printf(
          "\nserve: `paradit serve --model %s` answers the OpenAI %s API as model '%s' "
          "(default size %s, width x height); e.g.\n%s",
          opt.path.c_str(), serve->video ? "videos" : "images", serve->model_id.c_str(),
          serve->default_size.c_str(),
          server::api_examples(serve->model_id, serve->video, serve->default_size).c_str());
    }
  }
  return 0;
}

}  // namespace

void add_info_command(CLI::App& app, Commands& commands) {
  auto opt = std::make_shared<InfoOptions>();
  CLI::App* sub = app.add_subcommand(
      "info", "Show a checkpoint's components, configs, tensor/parameter counts and dtypes");
  sub->add_option("path", opt->path,
                  "pipeline or component folder, a .safetensors(.index.json) file, or a model id "
                  "ORG/NAME in the Hugging Face cache")
      ->required();
  sub->add_flag("--json", opt->json, "machine-readable output (JSON on stdout)");
  sub->add_flag("--tensors", opt->tensors, "also list every tensor: name, dtype, shape");
  sub->add_option("--height", opt->height, "memory estimate: image height (default: the model's)");
  sub->add_option("--width", opt->width, "memory estimate: image width (default: the model's)");
  sub->add_option("--num_frames,--num-frames", opt->num_frames,
                  "memory estimate: video frames (default: the model's)");
  add_parallel_flags(sub, &opt->parallel);
  commands.push_back({sub, [opt] { return run_info(*opt); }});
}

}  // namespace paradit::cli
