#include "models/pipeline_maker.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/clip/encoder.h"
#include "models/pipeline_maker_llm.h"
#include "models/presets.h"
#include "models/t5/encoder.h"
#include "models/vae/autoencoder_kl.h"

namespace paradit::models {

namespace {

namespace fs = std::filesystem;
using io::Json;

constexpr const char* kDiffusersVersion = "0.40.0.dev0";
constexpr const char* kTransformersVersion = "5.17.0";
constexpr int64_t kT5Vocab = 1100;    // models/tokenizers/t5: 1000 pieces + 100 extra ids
constexpr int64_t kClipVocab = 1514;  // models/tokenizers/clip/vocab.json
constexpr int64_t kClipBos = 1512;
constexpr int64_t kClipEos = 1513;

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

void write_json(const fs::path& path, const Json& json) {
  std::ofstream out(path);
  out << json.dump(2) << "\n";
  out.close();
  PARADIT_CHECK(out.good(), "make-model: cannot write '", path.string(), "'");
}

void write_weights(const fs::path& path, const common::RandomWeights& weights) {
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  tensors.reserve(weights.entries().size());
  for (const auto& e : weights.entries()) tensors.emplace_back(e.name, e.stored);
  io::save_safetensors(path, tensors, {{"format", "pt"}});
}

struct Family {
  std::string pipeline;  // model_index.json _class_name
  bool t5 = false;
  int clips = 0;              // 0, 1 (Flux: CLIPTextModel) or 2 (SD3: WithProjection)
  int64_t latent_channels = 4;
  double scaling_factor = 0.18215;
  std::optional<double> shift_factor;
};

Family family_of(const std::string& arch) {
  if (arch == "pixart-sigma") return {"PixArtSigmaPipeline", true, 0, 4, 0.13025, std::nullopt};
  if (arch == "pixart-alpha") return {"PixArtAlphaPipeline", true, 0, 4, 0.18215, std::nullopt};
  if (arch == "sd3" || arch == "sd35") return {"StableDiffusion3Pipeline", true, 2, 16, 1.5305, 0.0609};
  if (arch == "flux" || arch == "flux-schnell") return {"FluxPipeline", true, 1, 16, 0.3611, 0.1159};
  if (arch == "dit") return {"DiTPipeline", false, 0, 4, 0.18215, std::nullopt};
  fail("make-model --pipeline: unknown --arch '", arch, "'");
}

// The scheduler each published pipeline ships.
Json scheduler_config(const std::string& arch) {
  Json c;
  if (arch.rfind("pixart", 0) == 0 || arch == "dit") {
    // PixArt-Σ's DPMSolverMultistepScheduler (the one shapes-pixart ships); DiT uses the same
    // solver with its linear betas.
    c["_class_name"] = "DPMSolverMultistepScheduler";
    c["_diffusers_version"] = kDiffusersVersion;
    c["algorithm_type"] = "dpmsolver++";
    c["beta_end"] = 0.02;
    c["beta_schedule"] = "linear";
    c["beta_start"] = 0.0001;
    c["dynamic_thresholding_ratio"] = 0.995;
    c["euler_at_final"] = false;
    c["final_sigmas_type"] = "zero";
    c["lower_order_final"] = true;
    c["num_train_timesteps"] = 1000;
    c["prediction_type"] = "epsilon";
    c["sample_max_value"] = 1.0;
    c["solver_order"] = 2;
    c["solver_type"] = "midpoint";
    c["steps_offset"] = 0;
    c["thresholding"] = false;
    c["timestep_spacing"] = "linspace";
    c["trained_betas"] = nullptr;
    c["use_karras_sigmas"] = false;
    c["use_lu_lambdas"] = false;
    c["variance_type"] = nullptr;
    return c;
  }
  const bool flux = arch == "flux";
  c["_class_name"] = "FlowMatchEulerDiscreteScheduler";
  c["_diffusers_version"] = kDiffusersVersion;
  c["base_image_seq_len"] = 256;
  c["base_shift"] = 0.5;
  c["invert_sigmas"] = false;
  c["max_image_seq_len"] = 4096;
  c["max_shift"] = 1.15;
  c["num_train_timesteps"] = 1000;
  c["shift"] = arch == "flux-schnell" ? 1.0 : 3.0;
  c["shift_terminal"] = nullptr;
  c["stochastic_sampling"] = false;
  c["time_shift_type"] = "exponential";
  c["use_beta_sigmas"] = false;
  c["use_dynamic_shifting"] = flux;  // FLUX.1-dev; schnell has a fixed shift of 1
  c["use_exponential_sigmas"] = false;
  c["use_karras_sigmas"] = false;
  return c;
}

Json vae_config(const Family& f, bool tiny) {
  Json c;
  c["_class_name"] = "AutoencoderKL";
  c["_diffusers_version"] = kDiffusersVersion;
  c["act_fn"] = "silu";
  // Four blocks keep the real 8× scale factor, so image sizes match the published pipelines.
  c["block_out_channels"] = tiny ? Json{8, 8, 16, 16} : Json{128, 256, 512, 512};
  const std::vector<std::string> down(4, "DownEncoderBlock2D"), up(4, "UpDecoderBlock2D");
  c["down_block_types"] = down;
  c["up_block_types"] = up;
  c["force_upcast"] = true;
  c["in_channels"] = 3;
  c["out_channels"] = 3;
  c["latent_channels"] = f.latent_channels;
  c["latents_mean"] = nullptr;
  c["latents_std"] = nullptr;
  c["layers_per_block"] = tiny ? 1 : 2;
  c["mid_block_add_attention"] = true;
  c["norm_num_groups"] = tiny ? 4 : 32;
  c["sample_size"] = tiny ? 64 : 1024;
  c["scaling_factor"] = f.scaling_factor;
  c["shift_factor"] = f.shift_factor ? Json(*f.shift_factor) : Json(nullptr);
  // SD3 and Flux VAEs have no quant convs.
  c["use_quant_conv"] = f.latent_channels == 4;
  c["use_post_quant_conv"] = f.latent_channels == 4;
  return c;
}

Json t5_config(int64_t d_model, bool tiny) {
  Json c;
  c["architectures"] = {"T5EncoderModel"};
  c["classifier_dropout"] = 0.0;
  const int64_t heads = tiny ? 4 : d_model / 64;
  c["d_kv"] = d_model / heads;
  c["d_ff"] = 2 * d_model;
  c["d_model"] = d_model;
  c["decoder_start_token_id"] = 0;
  c["dense_act_fn"] = "gelu_new";
  c["dropout_rate"] = 0.0;
  c["dtype"] = "float32";
  c["eos_token_id"] = 1;
  c["feed_forward_proj"] = "gated-gelu";
  c["initializer_factor"] = 1.0;
  c["is_encoder_decoder"] = false;
  c["is_gated_act"] = true;
  c["layer_norm_epsilon"] = 1e-6;
  c["model_type"] = "t5";
  c["num_decoder_layers"] = 2;
  c["num_heads"] = heads;
  c["num_layers"] = 2;
  c["pad_token_id"] = 0;
  c["relative_attention_max_distance"] = 128;
  c["relative_attention_num_buckets"] = 32;
  c["tie_word_embeddings"] = true;
  c["transformers_version"] = kTransformersVersion;
  c["use_cache"] = false;
  c["vocab_size"] = kT5Vocab;
  return c;
}

Json clip_config(bool with_projection, int64_t hidden, int64_t projection, int64_t heads) {
  Json c;
  c["architectures"] = {with_projection ? "CLIPTextModelWithProjection" : "CLIPTextModel"};
  c["attention_dropout"] = 0.0;
  c["bos_token_id"] = kClipBos;
  c["dropout"] = 0.0;
  c["dtype"] = "float32";
  c["eos_token_id"] = kClipEos;
  c["hidden_act"] = "quick_gelu";
  c["hidden_size"] = hidden;
  c["initializer_factor"] = 1.0;
  c["initializer_range"] = 0.02;
  c["intermediate_size"] = 2 * hidden;
  c["layer_norm_eps"] = 1e-5;
  c["max_position_embeddings"] = 77;
  c["model_type"] = "clip_text_model";
  c["num_attention_heads"] = heads;
  c["num_hidden_layers"] = 2;
  c["pad_token_id"] = kClipEos;
  c["projection_dim"] = projection;
  c["transformers_version"] = kTransformersVersion;
  c["vocab_size"] = kClipVocab;
  return c;
}

void copy_tokenizer(const fs::path& from, const fs::path& to) {
  PARADIT_CHECK(fs::is_directory(from), "make-model: tokenizer folder '", from.string(),
                "' does not exist");
  fs::create_directory(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    if (entry.is_regular_file()) fs::copy_file(entry.path(), to / entry.path().filename());
  }
}

// DiTPipeline maps prompts through id2label; the real table names ImageNet classes. A few
// readable names (so `--prompt "a cat"` works) and "class N" for the rest.
Json dit_id2label(int64_t classes) {
  static const char* kNames[] = {"a cat, cat, tabby", "a dog, dog", "a bird, bird",
                                 "a fish, fish",      "a car, car", "a house, house"};
  Json labels = Json::object();
  for (int64_t i = 0; i < classes; ++i) {
    labels[std::to_string(i)] = i < 6 ? std::string(kNames[i]) : "class " + std::to_string(i);
  }
  return labels;
}

// Binds `bind_fn` against a fresh generator for `component` and writes config + weights.
template <typename BindFn>
void write_component(const fs::path& root, const std::string& component, const Json& config,
                     const std::string& weights_file, uint64_t seed, core::DType dtype,
                     BindFn&& bind_fn) {
  const fs::path dir = root / component;
  fs::create_directory(dir);
  common::RandomWeights weights(component_seed(seed, component), dtype);
  bind_fn(io::Config(config, (dir / "config.json").string()), weights);
  write_json(dir / "config.json", config);
  write_weights(dir / weights_file, weights);
}

void fill_pipeline(const fs::path& root, const std::string& arch, const std::string& preset,
                   uint64_t seed, core::DType dtype, const Json& transformer_config,
                   const common::RandomWeights& transformer_weights) {
  if (is_llm_pipeline_arch(arch)) {
    fill_llm_pipeline(root, arch, preset, seed, dtype, transformer_config, transformer_weights,
                      tokenizers_dir());
    return;
  }
  const Family f = family_of(arch);
  const bool tiny = preset == "tiny";
  const io::Config tcfg(transformer_config, "transformer config");
  if (f.pipeline == "PixArtAlphaPipeline") {
    const bool micro = tcfg.get_int("sample_size", 128) == 128;
    PARADIT_CHECK(tcfg.get_bool("use_additional_conditions", micro) == micro,
                  "make-model --pipeline: a PixArtAlphaPipeline transformer of sample_size ",
                  tcfg.get_int("sample_size", 128), " needs use_additional_conditions ",
                  micro ? "true" : "false", " (diffusers passes micro-conditions to 128 only)");
  }
  Json index;
  index["_class_name"] = f.pipeline;
  index["_diffusers_version"] = kDiffusersVersion;

  fs::create_directory(root / "transformer");
  write_json(root / "transformer" / "config.json", transformer_config);
  write_weights(root / "transformer" / "diffusion_pytorch_model.safetensors", transformer_weights);
  index["transformer"] = {"diffusers", transformer_config.value("_class_name", std::string())};

  fs::create_directory(root / "scheduler");
  const Json sched = scheduler_config(arch);
  write_json(root / "scheduler" / "scheduler_config.json", sched);
  index["scheduler"] = {"diffusers", sched["_class_name"]};

  write_component(root, "vae", vae_config(f, tiny), "diffusion_pytorch_model.safetensors", seed,
                  dtype, [dtype](const io::Config& c, const common::WeightProvider& w) {
                    vae::AutoencoderKL model(vae::AutoencoderKLConfig::from(c), w, dtype);
                  });
  index["vae"] = {"diffusers", "AutoencoderKL"};

  const fs::path tokenizers = f.t5 || f.clips > 0 ? tokenizers_dir() : fs::path();
  auto bind_t5 = [dtype](const io::Config& c, const common::WeightProvider& w) {
    t5::T5Encoder::bind(c, w, dtype);
  };
  auto bind_clip = [dtype](const io::Config& c, const common::WeightProvider& w) {
    clip::ClipTextEncoder::bind(c, w, dtype);
  };
  auto add_clip = [&](const std::string& suffix, bool with_projection, int64_t hidden,
                      int64_t projection, int64_t heads) {
    write_component(root, "text_encoder" + suffix,
                    clip_config(with_projection, hidden, projection, heads), "model.safetensors",
                    seed, dtype, bind_clip);
    copy_tokenizer(tokenizers / "clip", root / ("tokenizer" + suffix));
    index["text_encoder" + suffix] = {
        "transformers", with_projection ? "CLIPTextModelWithProjection" : "CLIPTextModel"};
    index["tokenizer" + suffix] = {"transformers", "CLIPTokenizer"};
  };
  auto add_t5 = [&](const std::string& suffix, int64_t d_model) {
    write_component(root, "text_encoder" + suffix, t5_config(d_model, tiny), "model.safetensors",
                    seed, dtype, bind_t5);
    copy_tokenizer(tokenizers / "t5", root / ("tokenizer" + suffix));
    index["text_encoder" + suffix] = {"transformers", "T5EncoderModel"};
    index["tokenizer" + suffix] = {"transformers", "T5Tokenizer"};
  };

  if (f.pipeline == "PixArtSigmaPipeline" || f.pipeline == "PixArtAlphaPipeline") {
    add_t5("", tcfg.get_int("caption_channels"));
  } else if (f.pipeline == "StableDiffusion3Pipeline") {
    // prompt_embeds = [CLIP-L ⊕ CLIP-G hidden states zero-padded to the T5 width ; T5], pooled =
    // CLIP-L ⊕ CLIP-G text_embeds: both CLIP widths must fit the joint width together.
    const int64_t joint = tcfg.get_int("joint_attention_dim");
    const int64_t pooled = tcfg.get_int("pooled_projection_dim");
    const int64_t hidden = tiny ? joint / 2 : pooled / 2;
    const int64_t heads = tiny ? 2 : hidden / 64;
    add_clip("", true, hidden, pooled / 2, heads);
    add_clip("_2", true, hidden, pooled - pooled / 2, heads);
    add_t5("_3", joint);
    index["feature_extractor"] = {nullptr, nullptr};
    index["image_encoder"] = {nullptr, nullptr};
  } else if (f.pipeline == "FluxPipeline") {
    // pooled_prompt_embeds is CLIPTextModel's pooler_output (hidden_size wide).
    const int64_t pooled = tcfg.get_int("pooled_projection_dim");
    add_clip("", false, pooled, pooled, tiny ? 4 : pooled / 64);
    add_t5("_2", tcfg.get_int("joint_attention_dim"));
    index["feature_extractor"] = {nullptr, nullptr};
    index["image_encoder"] = {nullptr, nullptr};
  } else {  // DiTPipeline
    index["id2label"] = dit_id2label(tcfg.get_int("num_embeds_ada_norm", 1000));
  }
  write_json(root / "model_index.json", index);
}

}  // namespace

Json pipeline_transformer_config(const std::string& arch, const std::string& size) {
  if (is_llm_pipeline_arch(arch)) return llm_pipeline_transformer_config(arch, size);
  Json c = preset_config(arch, size);
  if (arch == "pixart-alpha") {
    c["use_additional_conditions"] = c.value("sample_size", 128) == 128;
  }
  return c;
}

uint64_t component_seed(uint64_t seed, const std::string& component) {
  uint64_t z = seed ^ fnv1a64(component);
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

fs::path tokenizers_dir() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("PARADIT_MODELS_DIR"); env && *env) {
    candidates.push_back(fs::path(env) / "tokenizers");
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path bin = exe.parent_path();
    candidates.push_back(bin / ".." / "models" / "tokenizers");
    candidates.push_back(bin / ".." / "share" / "paradit" / "models" / "tokenizers");
  }
#ifdef PARADIT_MODELS_DIR
  candidates.push_back(fs::path(PARADIT_MODELS_DIR) / "tokenizers");
#endif
  std::string tried;
  for (const fs::path& c : candidates) {
    if (fs::is_directory(c / "t5") && fs::is_directory(c / "clip")) return c.lexically_normal();
    tried += (tried.empty() ? "" : ", ") + c.string();
  }
  fail("make-model --pipeline: no tokenizers folder (models/tokenizers with t5/ and clip/); tried ",
       tried);
}

void write_pipeline(const fs::path& dir, const std::string& arch, const std::string& preset,
                    uint64_t seed, core::DType dtype, const Json& transformer_config,
                    const common::RandomWeights& transformer_weights) {
  // Built by appending: g++ 12 warns (-Wrestrict, a false positive) on "." + std::string.
  std::string hidden(".");
  hidden += dir.filename().string();
  hidden += ".tmp-";
  hidden += std::to_string(getpid());
  const fs::path tmp = (dir.parent_path().empty() ? fs::path(".") : dir.parent_path()) / hidden;
  std::error_code ec;
  fs::remove_all(tmp, ec);
  PARADIT_CHECK(fs::create_directory(tmp, ec) && !ec, "make-model: cannot create '", tmp.string(),
                "': ", ec.message());
  try {
    fill_pipeline(tmp, arch, preset, seed, dtype, transformer_config, transformer_weights);
    if (fs::exists(dir)) fs::remove(dir);  // an empty folder (checked by the caller)
    fs::rename(tmp, dir, ec);
    PARADIT_CHECK(!ec, "make-model: cannot rename '", tmp.string(), "' to '", dir.string(),
                  "': ", ec.message());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace paradit::models
