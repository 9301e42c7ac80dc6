#pragma once
// FLUX.2 (diffusers Flux2Transformer2DModel; dev and klein share it): Flux.1's layout — double-
// stream MMDiT blocks over text and image, then single-stream blocks over [text, image] — with
// FLUX.2's changes:
//   - the modulation is shared by all blocks: double_stream_modulation_img/_txt (6·D each) and
//     single_stream_modulation (3·D) from the timestep(+guidance) embedding, no biases anywhere;
//   - feed-forwards are SwiGLU (linear_in to 2·mlp, silu(first half) · second half, linear_out);
//   - a single-stream block is one fused projection to_qkv_mlp_proj (q, k, v, 2·mlp) and one
//     to_out over [attention, swiglu(mlp)];
//   - RoPE over 4 axes (img_ids (0, row, col, 0), txt_ids (0, 0, 0, k)), theta 2000;
//   - no pooled text embedding; timestep and guidance are scaled by 1000 inside.

#include <memory>
#include <utility>
#include <vector>

#include "io/diffusers.h"
#include "models/common/embeddings.h"
#include "models/common/modules.h"
#include "models/common/weights.h"
#include "models/flux/flux.h"
#include "models/transformer.h"
#include "parallel/joint.h"

namespace paradit::models::flux2 {

// config.json fields with Flux2Transformer2DModel's defaults.
struct Flux2Config {
  int64_t patch_size = 1;
  int64_t in_channels = 128;
  int64_t out_channels = 128;  // null → in_channels
  int64_t num_layers = 8;
  int64_t num_single_layers = 48;
  int64_t attention_head_dim = 128;
  int64_t num_attention_heads = 48;
  int64_t joint_attention_dim = 15360;
  int64_t timestep_guidance_channels = 256;
  double mlp_ratio = 3.0;
  std::vector<int64_t> axes_dims_rope = {32, 32, 32, 32};
  double rope_theta = 2000.0;
  float eps = 1e-6f;
  bool guidance_embeds = true;

  int64_t inner_dim() const { return num_attention_heads * attention_head_dim; }
  int64_t mlp_dim() const {
    return static_cast<int64_t>(static_cast<double>(inner_dim()) * mlp_ratio);
  }
  static Flux2Config from(const io::Config& config);
};

// Flux2FeedForward: linear_in (2·mlp, D) → silu(a) · b → linear_out (D, mlp); no biases.
struct Flux2FeedForward {
  common::Linear linear_in, linear_out;
  void bind(const common::WeightScope& w, int64_t dim, int64_t mlp);
  core::Tensor operator()(const core::Tensor& x) const;  // (B, S, D) → (B, S, D)
};

// Flux2TransformerBlock (double stream).
struct Flux2TransformerBlock {
  common::Linear to_q, to_k, to_v, add_q_proj, add_k_proj, add_v_proj, to_out, to_add_out;
  common::RMSNorm norm_q, norm_k, norm_added_q, norm_added_k;
  Flux2FeedForward ff, ff_context;
  int64_t heads = 0;
  float eps = 1e-6f;

  void bind(const common::WeightScope& w, const Flux2Config& cfg);
  // x: (B, S_img, D)   c: (B, S_txt, D)   mod_img, mod_txt: (B, 6·D) → (c, x)
  std::pair<core::Tensor, core::Tensor> forward(const core::Tensor& x, const core::Tensor& c,
                                                const core::Tensor& mod_img,
                                                const core::Tensor& mod_txt, const flux::Rope& rope,
                                                const parallel::TokenLayout& tokens) const;
};

// Flux2SingleTransformerBlock: attention and SwiGLU MLP in parallel over [text, image].
struct Flux2SingleTransformerBlock {
  common::Linear to_qkv_mlp_proj, to_out;
  common::RMSNorm norm_q, norm_k;
  int64_t heads = 0, inner = 0, mlp = 0;
  float eps = 1e-6f;

  void bind(const common::WeightScope& w, const Flux2Config& cfg);
  // joint: (B, S, D)   mod: (B, 3·D) → (B, S, D)
  core::Tensor forward(const core::Tensor& joint, const core::Tensor& mod, const flux::Rope& rope,
                       const parallel::TokenLayout& tokens) const;
};

class Flux2Transformer2DModel : public Transformer {
 public:
  Flux2Transformer2DModel(const Flux2Config& cfg, const common::WeightProvider& weights,
                          const core::Placement& place);

  std::string class_name() const override { return "Flux2Transformer2DModel"; }
  // Inputs: hidden_states (B, S_img, in_channels), encoder_hidden_states (B, S_txt,
  // joint_attention_dim), timestep (B) (t/1000), guidance (B) when guidance_embeds, img_ids
  // (S_img, 4) and txt_ids (S_txt, 4) (a leading batch dim is accepted).
  // Returns sample (B, S_img, p·p·out_channels).
  core::Tensor forward(const NamedTensors& inputs) const override;
  core::Tensor forward(const NamedTensors& inputs,
                       const parallel::SequenceContext* sp) const override;

  const Flux2Config& config() const { return cfg_; }

  // PipeFusion: the double-stream blocks, then the single-stream blocks (as Flux.1).
  int64_t num_layers() const override;
  std::pair<int64_t, int64_t> token_grid(const NamedTensors& inputs) const override;
  std::unique_ptr<TransformerPass> begin_pass(const NamedTensors& inputs,
                                              const parallel::SequenceContext* sp,
                                              const parallel::PassPlan* plan,
                                              bool embed) const override;
  std::vector<core::Shape> stream_shapes(const TransformerPass& pass, int64_t layer) const override;
  void run_layers(TransformerPass& pass, int64_t begin, int64_t end) const override;
  core::Tensor end_pass(TransformerPass& pass) const override;
  // TeaCache: the first block's adaLN-modulated norm1 of the image tokens (no published
  // polynomial).
  CacheProbe teacache_probe(const TransformerPass& pass) const override;

 private:
  struct Pass;
  Flux2Config cfg_;
  core::Placement place_;
  // Members named after their checkpoint modules.
  common::Linear x_embedder_, context_embedder_;
  common::Linear timestep_linear_1_, timestep_linear_2_;  // time_guidance_embed.timestep_embedder
  common::Linear guidance_linear_1_, guidance_linear_2_;  // time_guidance_embed.guidance_embedder
  common::Linear double_stream_modulation_img_, double_stream_modulation_txt_;
  common::Linear single_stream_modulation_;
  std::vector<Flux2TransformerBlock> transformer_blocks_;
  std::vector<Flux2SingleTransformerBlock> single_transformer_blocks_;
  common::AdaLayerNormContinuous norm_out_;
  common::Linear proj_out_;
};

std::unique_ptr<Transformer> make_flux2_transformer(const io::Config& config,
                                                    const common::WeightProvider& weights,
                                                    const core::Placement& place);
// PipeFusion layer prefixes from config.json alone.
std::vector<std::string> flux2_layer_prefixes(const io::Config& config);

}  // namespace paradit::models::flux2
