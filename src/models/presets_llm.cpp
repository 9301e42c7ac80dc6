#include "models/presets_llm.h"

namespace paradit::models {

namespace {

io::Json qwen_image(int size) {
  io::Json c;
  c["_class_name"] = "QwenImageTransformer2DModel";
  c["patch_size"] = 2;
  c["in_channels"] = 64;
  c["out_channels"] = 16;
  c["guidance_embeds"] = false;
  c["zero_cond_t"] = false;
  c["use_additional_t_cond"] = false;
  c["use_layer3d_rope"] = false;
  if (size == 0) {  // the fixture's shape
    c["num_layers"] = 2;
    c["num_attention_heads"] = 4;
    c["attention_head_dim"] = 16;
    c["joint_attention_dim"] = 32;
    c["axes_dims_rope"] = {4, 6, 6};
  } else if (size == 1) {
    c["num_layers"] = 8;
    c["num_attention_heads"] = 12;
    c["attention_head_dim"] = 64;
    c["joint_attention_dim"] = 3584;  // Qwen2.5-VL-7B's hidden size
    c["axes_dims_rope"] = {8, 28, 28};
  } else {  // Qwen/Qwen-Image
    c["num_layers"] = 60;
    c["num_attention_heads"] = 24;
    c["attention_head_dim"] = 128;
    c["joint_attention_dim"] = 3584;
    c["axes_dims_rope"] = {16, 56, 56};
  }
  return c;
}

io::Json z_image(int size) {
  io::Json c;
  c["_class_name"] = "ZImageTransformer2DModel";
  c["all_patch_size"] = {2};
  c["all_f_patch_size"] = {1};
  c["in_channels"] = 16;
  c["qk_norm"] = true;
  c["norm_eps"] = 1e-5;
  c["rope_theta"] = 256.0;
  c["t_scale"] = 1000.0;
  c["axes_lens"] = {1024, 512, 512};
  c["siglip_feat_dim"] = nullptr;
  if (size == 0) {  // the fixture's shape
    c["dim"] = 64;
    c["n_layers"] = 2;
    c["n_refiner_layers"] = 1;
    c["n_heads"] = 4;
    c["n_kv_heads"] = 4;
    c["cap_feat_dim"] = 32;
    c["axes_dims"] = {4, 6, 6};
  } else if (size == 1) {
    c["dim"] = 768;
    c["n_layers"] = 8;
    c["n_refiner_layers"] = 2;
    c["n_heads"] = 12;
    c["n_kv_heads"] = 12;
    c["cap_feat_dim"] = 2560;  // Qwen3-4B's hidden size
    c["axes_dims"] = {16, 24, 24};
  } else {  // Tongyi-MAI/Z-Image-Turbo: 30 heads of 128
    c["dim"] = 3840;
    c["n_layers"] = 30;
    c["n_refiner_layers"] = 2;
    c["n_heads"] = 30;
    c["n_kv_heads"] = 30;
    c["cap_feat_dim"] = 2560;
    c["axes_dims"] = {32, 48, 48};
  }
  return c;
}

io::Json flux2(int size, bool klein) {
  io::Json c;
  c["_class_name"] = "Flux2Transformer2DModel";
  c["patch_size"] = 1;
  c["out_channels"] = nullptr;
  c["mlp_ratio"] = 3.0;
  c["rope_theta"] = 2000;
  c["eps"] = 1e-6;
  c["timestep_guidance_channels"] = 256;
  c["guidance_embeds"] = !klein;
  if (size == 0) {  // the fixture's shape
    c["in_channels"] = 32;
    c["num_layers"] = 2;
    c["num_single_layers"] = 2;
    c["num_attention_heads"] = 4;
    c["attention_head_dim"] = 16;
    c["joint_attention_dim"] = 96;
    c["axes_dims_rope"] = {4, 4, 4, 4};
  } else if (size == 1) {
    c["in_channels"] = 128;
    c["num_layers"] = 2;
    c["num_single_layers"] = 8;
    c["num_attention_heads"] = 12;
    c["attention_head_dim"] = 64;
    c["joint_attention_dim"] = klein ? 7680 : 15360;  // 3 × Qwen3-4B / Mistral-Small hidden
    c["axes_dims_rope"] = {16, 16, 16, 16};
  } else if (klein) {  // black-forest-labs/FLUX.2-klein-4B
    c["in_channels"] = 128;
    c["num_layers"] = 5;
    c["num_single_layers"] = 20;
    c["num_attention_heads"] = 24;
    c["attention_head_dim"] = 128;
    c["joint_attention_dim"] = 7680;
    c["axes_dims_rope"] = {32, 32, 32, 32};
  } else {  // black-forest-labs/FLUX.2-dev
    c["in_channels"] = 128;
    c["num_layers"] = 8;
    c["num_single_layers"] = 48;
    c["num_attention_heads"] = 48;
    c["attention_head_dim"] = 128;
    c["joint_attention_dim"] = 15360;
    c["axes_dims_rope"] = {32, 32, 32, 32};
  }
  return c;
}

}  // namespace

const std::vector<std::string>& llm_family_archs() {
  static const std::vector<std::string> archs = {"qwen-image", "z-image", "flux2", "flux2-klein"};
  return archs;
}

io::Json llm_family_preset(const std::string& arch, int size) {
  if (arch == "qwen-image") return qwen_image(size);
  if (arch == "z-image") return z_image(size);
  if (arch == "flux2") return flux2(size, false);
  if (arch == "flux2-klein") return flux2(size, true);
  return nullptr;
}

}  // namespace paradit::models
