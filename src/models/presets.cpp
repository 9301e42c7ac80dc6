#include "models/presets.h"

#include <algorithm>

#include "core/error.h"
#include "models/presets_llm.h"

namespace paradit::models {

namespace {

constexpr const char* kDiffusersVersion = "0.40.0.dev0";

std::string joined(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : "|") + item;
  return s;
}

// Sizes are indexed tiny = 0, small = 1, full = 2.
io::Json flux(int size, bool guidance) {
  io::Json c;
  c["_class_name"] = "FluxTransformer2DModel";
  c["patch_size"] = 1;
  c["in_channels"] = 64;
  c["out_channels"] = nullptr;
  c["guidance_embeds"] = guidance;
  if (size == 0) {  // the fixture's shape
    c["num_layers"] = guidance ? 2 : 1;
    c["num_single_layers"] = 2;
    c["num_attention_heads"] = 4;
    c["attention_head_dim"] = 16;
    c["joint_attention_dim"] = 32;
    c["pooled_projection_dim"] = 24;
    c["axes_dims_rope"] = {4, 6, 6};
  } else if (size == 1) {
    c["num_layers"] = 4;
    c["num_single_layers"] = 8;
    c["num_attention_heads"] = 12;
    c["attention_head_dim"] = 64;
    c["joint_attention_dim"] = 4096;
    c["pooled_projection_dim"] = 768;
    c["axes_dims_rope"] = {8, 28, 28};
  } else {  // FLUX.1-dev / FLUX.1-schnell
    c["num_layers"] = 19;
    c["num_single_layers"] = 38;
    c["num_attention_heads"] = 24;
    c["attention_head_dim"] = 128;
    c["joint_attention_dim"] = 4096;
    c["pooled_projection_dim"] = 768;
    c["axes_dims_rope"] = {16, 56, 56};
  }
  return c;
}

io::Json sd3(int size, bool sd35) {
  io::Json c;
  c["_class_name"] = "SD3Transformer2DModel";
  c["patch_size"] = 2;
  c["in_channels"] = 16;
  c["out_channels"] = 16;
  c["qk_norm"] = sd35 ? io::Json("rms_norm") : io::Json(nullptr);
  c["dual_attention_layers"] = io::Json::array();
  if (size == 0) {  // the fixtures' shape
    c["sample_size"] = 8;
    c["num_layers"] = 2;
    c["num_attention_heads"] = 4;
    c["attention_head_dim"] = 16;
    c["caption_projection_dim"] = 64;
    c["joint_attention_dim"] = 32;
    c["pooled_projection_dim"] = 24;
    c["pos_embed_max_size"] = 16;
    if (sd35) c["dual_attention_layers"] = {0};
  } else if (size == 1) {
    c["sample_size"] = 64;
    c["num_layers"] = 12;
    c["num_attention_heads"] = 12;
    c["attention_head_dim"] = 64;
    c["caption_projection_dim"] = 768;
    c["joint_attention_dim"] = 4096;
    c["pooled_projection_dim"] = 2048;
    c["pos_embed_max_size"] = 96;
    if (sd35) c["dual_attention_layers"] = {0, 1, 2, 3, 4, 5};
  } else if (!sd35) {  // stable-diffusion-3-medium
    c["sample_size"] = 128;
    c["num_layers"] = 24;
    c["num_attention_heads"] = 24;
    c["attention_head_dim"] = 64;
    c["caption_projection_dim"] = 1536;
    c["joint_attention_dim"] = 4096;
    c["pooled_projection_dim"] = 2048;
    c["pos_embed_max_size"] = 192;
  } else {  // stable-diffusion-3.5-large
    c["sample_size"] = 128;
    c["num_layers"] = 38;
    c["num_attention_heads"] = 38;
    c["attention_head_dim"] = 64;
    c["caption_projection_dim"] = 2432;
    c["joint_attention_dim"] = 4096;
    c["pooled_projection_dim"] = 2048;
    c["pos_embed_max_size"] = 192;
  }
  return c;
}

io::Json pixart(int size, bool alpha) {
  io::Json c;
  c["_class_name"] = "PixArtTransformer2DModel";
  c["activation_fn"] = "gelu-approximate";
  c["attention_bias"] = true;
  c["attention_type"] = "default";
  c["dropout"] = 0.0;
  c["in_channels"] = 4;
  c["out_channels"] = 8;
  c["norm_elementwise_affine"] = false;
  c["norm_eps"] = 1e-6;
  c["norm_num_groups"] = 32;
  c["norm_type"] = "ada_norm_single";
  c["num_embeds_ada_norm"] = 1000;
  c["patch_size"] = 2;
  c["upcast_attention"] = false;
  // α's resolution / aspect-ratio micro-conditions: the 1024 model (sample_size 128) has them,
  // the 512 one (sample_size 64, the small preset) not, as diffusers decides from sample_size.
  // The tiny preset keeps them to have the fixture's shape; a pipeline around it drops them
  // (pipeline_transformer_config), since PixArtAlphaPipeline passes them to 128 only.
  c["use_additional_conditions"] = alpha && size != 1;
  c["interpolation_scale"] = nullptr;
  if (size == 0) {  // the fixtures' shape (α uses 24-wide heads: hidden 96 splits in thirds)
    c["sample_size"] = 8;
    c["num_layers"] = 2;
    c["num_attention_heads"] = 4;
    c["attention_head_dim"] = alpha ? 24 : 16;
    c["cross_attention_dim"] = alpha ? 96 : 64;
    c["caption_channels"] = 32;
  } else if (size == 1) {
    c["sample_size"] = 64;
    c["num_layers"] = 12;
    c["num_attention_heads"] = 12;
    c["attention_head_dim"] = 64;
    c["cross_attention_dim"] = 768;
    c["caption_channels"] = 4096;
  } else {  // PixArt-Sigma-XL-2-1024-MS / PixArt-XL-2-1024-MS
    c["sample_size"] = 128;
    c["num_layers"] = 28;
    c["num_attention_heads"] = 16;
    c["attention_head_dim"] = 72;
    c["cross_attention_dim"] = 1152;
    c["caption_channels"] = 4096;
    c["interpolation_scale"] = 2;
  }
  return c;
}

io::Json dit(int size) {
  io::Json c;
  c["_class_name"] = "DiTTransformer2DModel";
  c["activation_fn"] = "gelu-approximate";
  c["attention_bias"] = true;
  c["dropout"] = 0.0;
  c["in_channels"] = 4;
  c["out_channels"] = 8;
  c["norm_elementwise_affine"] = false;
  c["norm_eps"] = 1e-5;
  c["norm_num_groups"] = 32;
  c["norm_type"] = "ada_norm_zero";
  c["num_embeds_ada_norm"] = 1000;
  c["patch_size"] = 2;
  c["upcast_attention"] = false;
  if (size == 0) {  // the fixture's shape
    c["sample_size"] = 8;
    c["num_layers"] = 2;
    c["num_attention_heads"] = 4;
    c["attention_head_dim"] = 16;
  } else if (size == 1) {  // DiT-B/2 at 256²
    c["sample_size"] = 32;
    c["num_layers"] = 12;
    c["num_attention_heads"] = 12;
    c["attention_head_dim"] = 64;
  } else {  // DiT-XL/2 at 256²
    c["sample_size"] = 32;
    c["num_layers"] = 28;
    c["num_attention_heads"] = 16;
    c["attention_head_dim"] = 72;
  }
  return c;
}

}  // namespace

const std::vector<std::string>& preset_archs() {
  static const std::vector<std::string> archs = [] {
    std::vector<std::string> a = {"flux",         "flux-schnell", "sd3", "sd35",
                                  "pixart-sigma", "pixart-alpha", "dit"};
    a.insert(a.end(), llm_family_archs().begin(), llm_family_archs().end());
    return a;
  }();
  return archs;
}

const std::vector<std::string>& preset_sizes() {
  static const std::vector<std::string> sizes = {"tiny", "small", "full"};
  return sizes;
}

io::Json preset_config(const std::string& arch, const std::string& size) {
  const auto& sizes = preset_sizes();
  auto it = std::find(sizes.begin(), sizes.end(), size);
  PARADIT_CHECK(it != sizes.end(), "--preset: '", size, "' is not a preset (expected ",
                joined(sizes), ")");
  const int s = static_cast<int>(it - sizes.begin());
  io::Json c;
  if (arch == "flux") {
    c = flux(s, true);
  } else if (arch == "flux-schnell") {
    c = flux(s, false);
  } else if (arch == "sd3") {
    c = sd3(s, false);
  } else if (arch == "sd35") {
    c = sd3(s, true);
  } else if (arch == "pixart-sigma") {
    c = pixart(s, false);
  } else if (arch == "pixart-alpha") {
    c = pixart(s, true);
  } else if (arch == "dit") {
    c = dit(s);
  } else if (io::Json l = llm_family_preset(arch, s); !l.is_null()) {
    c = l;
  } else {
    fail("--arch: '", arch, "' is not an architecture (expected ", joined(preset_archs()), ")");
  }
  c["_diffusers_version"] = kDiffusersVersion;
  return c;
}

}  // namespace paradit::models
