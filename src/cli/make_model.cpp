// `paradit make-model --arch A --preset P --seed S [--dtype f32|bf16] [--dry-run] DIR`: a
// random-weight transformer checkpoint in diffusers layout (config.json +
// diffusion_pytorch_model.safetensors), bound through the very model code that loads it.
// `--pipeline DIR` instead writes a whole diffusers pipeline around it (scheduler, VAE, text
// encoders, tokenizers; models/pipeline_maker.h).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/common/embeddings.h"
#include "models/common/random_weights.h"
#include "models/pipeline_maker.h"
#include "models/presets.h"
#include "models/transformer.h"

namespace paradit::cli {

namespace {

namespace fs = std::filesystem;

struct MakeModelOptions {
  std::string arch;
  std::string preset;
  uint64_t seed = 0;
  std::string dtype = "f32";
  bool dry_run = false;
  std::string dir;
  std::string pipeline;  // --pipeline DIR: a whole pipeline folder
};

// DIR may be absent or an empty folder; anything else is refused rather than overwritten.
void check_target(const fs::path& dir) {
  fs::path parent = dir.parent_path();
  if (parent.empty()) parent = ".";
  PARADIT_CHECK(fs::is_directory(parent), "make-model: directory '", parent.string(),
                "' (the parent of DIR) does not exist");
  if (fs::exists(dir)) {
    PARADIT_CHECK(fs::is_directory(dir) && fs::is_empty(dir), "make-model: '", dir.string(),
                  "' already exists and is not an empty folder");
  }
}

// Writes config.json and the weights into a hidden sibling folder, then renames it to `dir`,
// so a failure (disk full, interrupted write) never leaves a partial model behind.
void write_model_atomically(const fs::path& dir, const io::Json& config,
                            const models::common::RandomWeights& weights) {
  const fs::path tmp = (dir.parent_path().empty() ? fs::path(".") : dir.parent_path()) /
                       ("." + dir.filename().string() + ".tmp-" + std::to_string(getpid()));
  std::error_code ec;
  fs::remove_all(tmp, ec);
  PARADIT_CHECK(fs::create_directory(tmp, ec) && !ec, "make-model: cannot create '", tmp.string(),
                "': ", ec.message());
  try {
    {
      std::ofstream out(tmp / "config.json");
      out << config.dump(2) << "\n";
      out.close();
      PARADIT_CHECK(out.good(), "make-model: cannot write '", (tmp / "config.json").string(), "'");
    }
    std::vector<std::pair<std::string, core::Tensor>> tensors;
    tensors.reserve(weights.entries().size());
    for (const auto& e : weights.entries()) tensors.emplace_back(e.name, e.stored);
    io::save_safetensors(tmp / "diffusion_pytorch_model.safetensors", tensors, {{"format", "pt"}});
    if (fs::exists(dir)) fs::remove(dir);  // an empty folder (check_target)
    fs::rename(tmp, dir, ec);
    PARADIT_CHECK(!ec, "make-model: cannot rename '", tmp.string(), "' to '", dir.string(),
                  "': ", ec.message());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

// SD3's PatchEmbed keeps its sin-cos table as a persistent buffer `pos_embed.pos_embed`
// (1, M·M, D), M = pos_embed_max_size: write the table diffusers computes (grid M×M, base_size =
// sample_size / patch_size, interpolation_scale 1) rather than noise, as real checkpoints hold.
core::Tensor fixed_buffer(const io::Config& config, const std::string& name,
                          const core::Shape& shape) {
  if (name != "pos_embed.pos_embed" || shape.size() != 3 || !config.has("pos_embed_max_size")) {
    return {};
  }
  const int64_t M = config.get_int("pos_embed_max_size");
  const double base =
      static_cast<double>(config.get_int("sample_size", 128) / config.get_int("patch_size", 2));
  core::Tensor table = models::common::get_2d_sincos_pos_embed(shape[2], M, M, base, 1.0);
  return table.reshape({1, M * M, shape[2]});  // (1, M·M, D)
}

// The weights are generated in memory and then written: refuse up front (one line, no partial
// output) when they cannot fit in RAM or on the target's file system, instead of being killed.
void check_capacity(const io::Config& config, core::DType dtype, const fs::path& dir) {
  models::common::RandomWeights dry(0, dtype, /*dry_run=*/true);
  { auto model = models::make_transformer(config, dry, dtype); }
  const double gib = static_cast<double>(dry.stored_bytes()) / (1ull << 30);
  const double ram =
      static_cast<double>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE) / (1ull << 30);
  PARADIT_CHECK(ram <= 0 || gib < 0.9 * ram, "make-model: ", config.where(), " needs ", gib,
                " GiB of weights in memory, this machine has ", ram,
                " GiB (try --dtype bf16, or --dry-run)");
  fs::path parent = dir.parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  const fs::space_info space = fs::space(parent, ec);
  PARADIT_CHECK(ec || space.available > dry.stored_bytes() + (64u << 20),
                "make-model: ", config.where(), " needs ", gib, " GiB on disk, '", parent.string(),
                "' has ", static_cast<double>(space.available) / (1ull << 30), " GiB free");
}

int run_make_model(const MakeModelOptions& opt) {
  const core::DType dtype = opt.dtype == "bf16" ? core::DType::BF16 : core::DType::F32;
  io::Json json = opt.pipeline.empty()
                      ? models::preset_config(opt.arch, opt.preset)
                      : models::pipeline_transformer_config(opt.arch, opt.preset);
  const io::Config config(json, "preset " + opt.arch + "/" + opt.preset);
  PARADIT_CHECK(opt.pipeline.empty() || opt.dir.empty(), "make-model: give either DIR ('",
                opt.dir, "') or --pipeline DIR ('", opt.pipeline, "'), not both");
  const std::string target = opt.pipeline.empty() ? opt.dir : opt.pipeline;
  if (!opt.dry_run) {
    PARADIT_CHECK(!target.empty(), "make-model: DIR is required (or use --dry-run)");
    check_target(target);
    check_capacity(config, dtype, target);
  }

  // Binding the model against the generator is what names and shapes the tensors; matrices are
  // requested in the storage dtype so the model and the generator share them.
  models::common::RandomWeights weights(opt.seed, dtype, opt.dry_run);
  weights.set_fixed_values([&config](const std::string& name, const core::Shape& shape) {
    return fixed_buffer(config, name, shape);
  });
  { auto model = models::make_transformer(config, weights, dtype); }
  const int64_t params = weights.parameter_count();
  const uint64_t bytes = weights.stored_bytes();
  std::printf("arch: %s  preset: %s  class: %s  seed: %llu\n", opt.arch.c_str(), opt.preset.c_str(),
              config.class_name().c_str(), static_cast<unsigned long long>(opt.seed));
  std::printf("tensors: %zu\n", weights.entries().size());
  std::printf("parameters: %lld (%.1f M)\n", static_cast<long long>(params), params / 1e6);
  std::printf("weights: %llu bytes (%.2f GiB) as %s\n", static_cast<unsigned long long>(bytes),
              static_cast<double>(bytes) / (1ull << 30),
              std::string(core::dtype_name(dtype)).c_str());
  if (opt.dry_run) return 0;

  if (!opt.pipeline.empty()) {
    models::write_pipeline(opt.pipeline, opt.arch, opt.preset, opt.seed, dtype, json, weights);
    std::printf("wrote pipeline %s\n", opt.pipeline.c_str());
    return 0;
  }
  write_model_atomically(opt.dir, json, weights);
  std::printf("wrote %s\n", opt.dir.c_str());
  return 0;
}

}  // namespace

void add_make_model_command(CLI::App& app, Commands& commands) {
  auto opt = std::make_shared<MakeModelOptions>();
  CLI::App* sub = app.add_subcommand(
      "make-model", "Write a random-weight transformer checkpoint in diffusers layout");
  std::string archs, sizes;
  for (const auto& a : models::preset_archs()) archs += (archs.empty() ? "" : "|") + a;
  for (const auto& s : models::preset_sizes()) sizes += (sizes.empty() ? "" : "|") + s;
  sub->add_option("--arch", opt->arch, "Architecture: " + archs)
      ->required()
      ->check(CLI::IsMember(models::preset_archs()));
  sub->add_option("--preset", opt->preset, "Size: " + sizes)
      ->required()
      ->check(CLI::IsMember(models::preset_sizes()));
  sub->add_option("--seed", opt->seed, "Seed of the weight generator")->required();
  sub->add_option("--dtype", opt->dtype, "Stored dtype: f32 or bf16")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  sub->add_flag("--dry-run,--dry_run", opt->dry_run,
                "Bind the model without allocating; print tensor and parameter counts and size");
  sub->add_option("dir", opt->dir, "Output folder (must not exist, or be empty)");
  sub->add_option("--pipeline", opt->pipeline,
                  "Write a whole diffusers pipeline (scheduler, VAE, text encoders, tokenizers, "
                  "transformer) into this folder (must not exist, or be empty)");
  commands.push_back({sub, [opt] { return run_make_model(*opt); }});
}

}  // namespace paradit::cli
