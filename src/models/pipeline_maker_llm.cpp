#include "models/pipeline_maker_llm.h"

#include <fstream>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/llm/decoder_lm.h"
#include "models/presets.h"
#include "models/presets_llm.h"
#include "models/vae/autoencoder_kl.h"
#include "models/vae/wan.h"

namespace paradit::models {

namespace {

namespace fs = std::filesystem;
using io::Json;

constexpr const char* kDiffusersVersion = "0.42.1";
constexpr const char* kTransformersVersion = "5.25.0";
constexpr int64_t kQwenVocab = 766;     // models/tokenizers/qwen2
constexpr int64_t kMistralVocab = 788;  // models/tokenizers/mistral

void write_json(const fs::path& path, const Json& json) {
  std::ofstream out(path);
  out << json.dump(2) << "\n";
  out.close();
  PARADIT_CHECK(out.good(), "make-model: cannot write '", path.string(), "'");
}

void write_weights(const fs::path& path, const common::RandomWeights& weights,
                   std::vector<std::pair<std::string, core::Tensor>> extra = {}) {
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  for (const auto& e : weights.entries()) tensors.emplace_back(e.name, e.stored);
  for (auto& t : extra) tensors.push_back(std::move(t));
  io::save_safetensors(path, tensors, {{"format", "pt"}});
}

void copy_tokenizer(const fs::path& from, const fs::path& to) {
  PARADIT_CHECK(fs::is_directory(from), "make-model: tokenizer folder '", from.string(),
                "' does not exist");
  fs::create_directory(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    if (entry.is_regular_file()) fs::copy_file(entry.path(), to / entry.path().filename());
  }
}

Json flow_match(double shift, bool dynamic, double max_shift, int64_t max_seq,
                Json shift_terminal = nullptr) {
  Json c;
  c["_class_name"] = "FlowMatchEulerDiscreteScheduler";
  c["_diffusers_version"] = kDiffusersVersion;
  c["base_image_seq_len"] = 256;
  c["base_shift"] = 0.5;
  c["invert_sigmas"] = false;
  c["max_image_seq_len"] = max_seq;
  c["max_shift"] = max_shift;
  c["num_train_timesteps"] = 1000;
  c["shift"] = shift;
  c["shift_terminal"] = shift_terminal;
  c["stochastic_sampling"] = false;
  c["time_shift_type"] = "exponential";
  c["use_beta_sigmas"] = false;
  c["use_dynamic_shifting"] = dynamic;
  c["use_exponential_sigmas"] = false;
  c["use_karras_sigmas"] = false;
  return c;
}

// AutoencoderKL / AutoencoderKLFlux2 (4 levels: the real 8× scale factor).
Json kl_vae(bool tiny, int64_t latent, bool flux2) {
  Json c;
  c["_class_name"] = flux2 ? "AutoencoderKLFlux2" : "AutoencoderKL";
  c["_diffusers_version"] = kDiffusersVersion;
  c["act_fn"] = "silu";
  c["block_out_channels"] = tiny ? Json{8, 16, 16, 16} : Json{128, 256, 512, 512};
  c["down_block_types"] = std::vector<std::string>(4, "DownEncoderBlock2D");
  c["up_block_types"] = std::vector<std::string>(4, "UpDecoderBlock2D");
  c["in_channels"] = 3;
  c["out_channels"] = 3;
  c["latent_channels"] = latent;
  c["layers_per_block"] = tiny ? 1 : 2;
  c["mid_block_add_attention"] = true;
  c["norm_num_groups"] = tiny ? 8 : 32;
  c["sample_size"] = tiny ? 64 : 1024;
  if (flux2) {
    c["batch_norm_eps"] = 1e-4;
    c["batch_norm_momentum"] = 0.1;
    c["decoder_block_out_channels"] = nullptr;
    c["patch_size"] = {2, 2};
    c["use_quant_conv"] = true;
    c["use_post_quant_conv"] = true;
  } else {  // Z-Image's (FLUX.1's) VAE
    c["force_upcast"] = true;
    c["latents_mean"] = nullptr;
    c["latents_std"] = nullptr;
    c["scaling_factor"] = 0.3611;
    c["shift_factor"] = 0.1159;
    c["use_quant_conv"] = false;
    c["use_post_quant_conv"] = false;
  }
  return c;
}

// AutoencoderKLQwenImage (the Wan 2.1 VAE layout with Qwen-Image's latent statistics).
Json qwen_vae(bool tiny) {
  Json c;
  c["_class_name"] = "AutoencoderKLQwenImage";
  c["_diffusers_version"] = kDiffusersVersion;
  c["attn_scales"] = Json::array();
  c["base_dim"] = tiny ? 4 : 96;
  c["dim_mult"] = tiny ? Json{1, 2, 2, 2} : Json{1, 2, 4, 4};
  c["dropout"] = 0.0;
  c["input_channels"] = 3;
  c["num_res_blocks"] = tiny ? 1 : 2;
  c["temperal_downsample"] = {false, true, true};
  c["z_dim"] = 16;
  c["latents_mean"] = {-0.7571, -0.7089, -0.9113, 0.1075,  -0.1745, 0.9653,  -0.1517, 1.5508,
                       0.4134,  -0.0715, 0.5517,  -0.3632, -0.1922, -0.9497, 0.2503,  -0.2921};
  c["latents_std"] = {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                      3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916};
  return c;
}

struct LmShape {
  int64_t hidden, layers, heads, kv_heads, head_dim, ffn, vocab;
  double theta;
  double eps;
};

// The language-model part of a transformers config.
Json lm_text_config(const std::string& model_type, const LmShape& s) {
  Json t;
  t["model_type"] = model_type;
  t["hidden_size"] = s.hidden;
  t["intermediate_size"] = s.ffn;
  t["num_hidden_layers"] = s.layers;
  t["num_attention_heads"] = s.heads;
  t["num_key_value_heads"] = s.kv_heads;
  t["head_dim"] = s.head_dim;
  t["hidden_act"] = "silu";
  t["rms_norm_eps"] = s.eps;
  t["vocab_size"] = s.vocab;
  t["max_position_embeddings"] = 32768;
  t["attention_dropout"] = 0.0;
  t["tie_word_embeddings"] = false;
  t["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", s.theta}};
  return t;
}

struct TextEncoder {
  Json config;
  std::string prefix;      // where the language model's weights live
  std::string class_name;  // model_index.json
  std::string tokenizer;   // models/tokenizers/<name>
  std::string tokenizer_class;
};

TextEncoder text_encoder(const std::string& arch, const std::string& preset, const Json& tcfg) {
  const bool tiny = preset == "tiny", full = preset == "full";
  TextEncoder te;
  if (arch == "qwen-image") {
    const int64_t H = tcfg.at("joint_attention_dim").get<int64_t>();
    const LmShape s =
        full ? LmShape{3584, 28, 28, 4, 128, 18944, 152064, 1e6, 1e-6}
             : LmShape{H,   2,   H / 64 > 0 ? H / 64 : H / 16, 1, tiny ? 16 : 64, 2 * H, kQwenVocab,
                       1e6, 1e-6};
    Json text = lm_text_config("qwen2_5_vl_text", s);
    const int64_t half = s.head_dim / 2;  // M-RoPE sections (t, h, w) over head_dim / 2
    text["rope_parameters"]["mrope_section"] = {half - 2 * (3 * half / 8), 3 * half / 8,
                                                3 * half / 8};
    text["rope_parameters"]["type"] = "mrope";
    te.config = {{"architectures", {"Qwen2_5_VLForConditionalGeneration"}},
                 {"model_type", "qwen2_5_vl"},
                 {"text_config", text},
                 {"vision_config",
                  {{"model_type", "qwen2_5_vl_vision"},
                   {"depth", 1},
                   {"hidden_size", 16},
                   {"intermediate_size", 32},
                   {"num_heads", 2},
                   {"out_hidden_size", s.hidden},
                   {"patch_size", 14},
                   {"spatial_merge_size", 2},
                   {"temporal_patch_size", 2}}},
                 {"tie_word_embeddings", false}};
    te.prefix = "model";
    te.class_name = "Qwen2_5_VLForConditionalGeneration";
    te.tokenizer = "qwen2";
    te.tokenizer_class = "Qwen2Tokenizer";
  } else if (arch == "z-image" || arch == "flux2-klein") {
    const bool klein = arch == "flux2-klein";
    const int64_t H = klein ? tcfg.at("joint_attention_dim").get<int64_t>() / 3
                            : tcfg.at("cap_feat_dim").get<int64_t>();
    const int64_t hd = tiny ? 16 : 64;
    // klein stacks hidden states 9, 18, 27: at least 28 layers; Z-Image takes hidden_states[-2]
    const LmShape s = full
                          ? LmShape{2560, 36, 32, 8, 128, 9728, 151936, 1e6, 1e-6}
                          : LmShape{H, klein ? 28 : 3, H / hd, 1, hd, 2 * H, kQwenVocab, 1e6, 1e-6};
    te.config = lm_text_config("qwen3", s);
    te.config["architectures"] = {klein ? "Qwen3ForCausalLM" : "Qwen3Model"};
    te.config["attention_bias"] = false;
    if (klein) te.config["tie_word_embeddings"] = true;
    te.prefix = klein ? "model" : "";
    te.class_name = klein ? "Qwen3ForCausalLM" : "Qwen3Model";
    te.tokenizer = "qwen2";
    te.tokenizer_class = "Qwen2Tokenizer";
  } else {  // flux2: Mistral 3, hidden states 10, 20, 30 stacked
    const int64_t H = tcfg.at("joint_attention_dim").get<int64_t>() / 3;
    const int64_t hd = tiny ? 16 : 64;
    const LmShape s = full ? LmShape{5120, 40, 32, 8, 128, 32768, 131072, 1e9, 1e-5}
                           : LmShape{H, 31, H / hd, 1, hd, 2 * H, kMistralVocab, 1e9, 1e-5};
    te.config = {{"architectures", {"Mistral3ForConditionalGeneration"}},
                 {"model_type", "mistral3"},
                 {"text_config", lm_text_config("mistral", s)},
                 {"vision_config",
                  {{"model_type", "pixtral"},
                   {"hidden_size", 16},
                   {"intermediate_size", 32},
                   {"num_hidden_layers", 1},
                   {"num_attention_heads", 2},
                   {"head_dim", 8},
                   {"image_size", 32},
                   {"patch_size", 16}}},
                 {"image_token_index", 10},
                 {"spatial_merge_size", 2},
                 {"vision_feature_layer", -1},
                 {"multimodal_projector_bias", false},
                 {"projector_hidden_act", "gelu"}};
    te.prefix = "language_model.model";
    te.class_name = "Mistral3ForConditionalGeneration";
    te.tokenizer = "mistral";
    te.tokenizer_class = "TokenizersBackend";
  }
  te.config["transformers_version"] = kTransformersVersion;
  te.config["dtype"] = "float32";
  return te;
}

}  // namespace

bool is_llm_pipeline_arch(const std::string& arch) {
  for (const auto& a : llm_family_archs()) {
    if (a == arch) return true;
  }
  return false;
}

Json llm_pipeline_transformer_config(const std::string& arch, const std::string& size) {
  Json c = preset_config(arch, size);
  if (size == "small") {
    // Narrow stand-in text encoders (width 256 / 128): the transformer's text width follows.
    if (arch == "qwen-image") c["joint_attention_dim"] = 256;
    if (arch == "z-image") c["cap_feat_dim"] = 256;
    if (arch == "flux2" || arch == "flux2-klein") c["joint_attention_dim"] = 3 * 128;
  }
  return c;
}

void fill_llm_pipeline(const fs::path& root, const std::string& arch, const std::string& preset,
                       uint64_t seed, core::DType dtype, const Json& transformer_config,
                       const common::RandomWeights& transformer_weights,
                       const fs::path& tokenizers) {
  const bool tiny = preset == "tiny";
  Json index;
  index["_diffusers_version"] = kDiffusersVersion;
  index["_class_name"] = arch == "qwen-image" ? "QwenImagePipeline"
                         : arch == "z-image"  ? "ZImagePipeline"
                         : arch == "flux2"    ? "Flux2Pipeline"
                                              : "Flux2KleinPipeline";
  if (arch == "flux2-klein") index["is_distilled"] = false;

  // transformer
  fs::create_directory(root / "transformer");
  write_json(root / "transformer" / "config.json", transformer_config);
  write_weights(root / "transformer" / "diffusion_pytorch_model.safetensors", transformer_weights);
  index["transformer"] = {"diffusers", transformer_config.value("_class_name", std::string())};

  // scheduler (the published pipelines' settings)
  const Json sched = arch == "qwen-image" ? flow_match(1.0, true, 0.9, 8192, 0.02)
                     : arch == "z-image"  ? flow_match(3.0, false, 1.15, 4096)
                                          : flow_match(3.0, true, 1.15, 4096);
  fs::create_directory(root / "scheduler");
  write_json(root / "scheduler" / "scheduler_config.json", sched);
  index["scheduler"] = {"diffusers", "FlowMatchEulerDiscreteScheduler"};

  // vae
  const fs::path vae_dir = root / "vae";
  fs::create_directory(vae_dir);
  common::RandomWeights vae_weights(component_seed(seed, "vae"), dtype);
  Json vae;
  std::vector<std::pair<std::string, core::Tensor>> extra;
  if (arch == "qwen-image") {
    vae = qwen_vae(tiny);
    vae::AutoencoderKLWan model(
        vae::AutoencoderKLWanConfig::from(io::Config(vae, (vae_dir / "config.json").string())),
        vae_weights, dtype);
  } else {
    const bool flux2 = arch != "z-image";
    const int64_t latent = flux2 ? transformer_config.at("in_channels").get<int64_t>() / 4 : 16;
    vae = kl_vae(tiny, latent, flux2);
    vae::AutoencoderKL model(
        vae::AutoencoderKLConfig::from(io::Config(vae, (vae_dir / "config.json").string())),
        vae_weights, dtype);
    if (flux2) {  // the latent BatchNorm statistics the FLUX.2 pipelines de-normalize with
      extra.emplace_back("bn.running_mean", core::Tensor::zeros({4 * latent}));
      extra.emplace_back("bn.running_var", core::Tensor::full({4 * latent}, 1.0f));
    }
  }
  write_json(vae_dir / "config.json", vae);
  write_weights(vae_dir / "diffusion_pytorch_model.safetensors", vae_weights, std::move(extra));
  index["vae"] = {"diffusers", vae["_class_name"]};

  // text encoder and tokenizer
  const TextEncoder te = text_encoder(arch, preset, transformer_config);
  const fs::path te_dir = root / "text_encoder";
  fs::create_directory(te_dir);
  common::RandomWeights te_weights(component_seed(seed, "text_encoder"), dtype);
  const llm::DecoderLMConfig lm_cfg =
      llm::DecoderLMConfig::from(io::Config(te.config, (te_dir / "config.json").string()));
  llm::DecoderLM::bind(lm_cfg, te_weights, te.prefix, dtype);
  write_json(te_dir / "config.json", te.config);
  write_weights(te_dir / "model.safetensors", te_weights);
  index["text_encoder"] = {"transformers", te.class_name};
  copy_tokenizer(tokenizers / te.tokenizer, root / "tokenizer");
  index["tokenizer"] = {"transformers", te.tokenizer_class};

  write_json(root / "model_index.json", index);
}

}  // namespace paradit::models
