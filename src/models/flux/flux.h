#pragma once
// Flux.1 (diffusers FluxTransformer2DModel): double-stream MMDiT blocks over text and image
// tokens, then single-stream blocks over their concatenation; 3-axis RoPE from txt_ids/img_ids.
// Flux.1-dev (guidance_embeds) and Flux.1-schnell share the code.

#include <memory>
#include <utility>
#include <vector>

#include "io/diffusers.h"
#include "models/common/embeddings.h"
#include "models/common/modules.h"
#include "models/common/weights.h"
#include "models/transformer.h"
#include "parallel/joint.h"

namespace paradit::models::flux {

// config.json fields with FluxTransformer2DModel's defaults.
struct FluxConfig {
  int64_t patch_size = 1;
  int64_t in_channels = 64;
  int64_t out_channels = 64;  // null in config.json → in_channels
  int64_t num_layers = 19;
  int64_t num_single_layers = 38;
  int64_t attention_head_dim = 128;
  int64_t num_attention_heads = 24;
  int64_t joint_attention_dim = 4096;
  int64_t pooled_projection_dim = 768;
  bool guidance_embeds = false;
  std::vector<int64_t> axes_dims_rope = {16, 56, 56};
  double rope_theta = 10000.0;  // fixed in diffusers' FluxPosEmbed

  int64_t inner_dim() const { return num_attention_heads * attention_head_dim; }
  // Error naming the file and key for inconsistent values.
  static FluxConfig from(const io::Config& config);
};

// Rotary tables for the joint sequence (text tokens first): (S_txt + S_img, head_dim) each; under
// sequence parallelism this rank's rows only (its text rows, then its image block).
struct Rope {
  core::Tensor cos, sin;
};

// FluxPosEmbed: per axis i, get_1d_rotary_pos_embed(axes_dims_rope[i], ids[:, i], theta,
// repeat_interleave_real), concatenated over the axes. ids: (S, n_axes) → Rope.
Rope flux_rope(const core::Tensor& ids, const std::vector<int64_t>& axes_dims, double theta);

// FluxAttention's projections. The double-stream block uses all of them; the single-stream
// block (pre_only) only to_q/k/v and norm_q/k.
struct FluxAttention {
  common::Linear to_q, to_k, to_v;
  common::RMSNorm norm_q, norm_k;
  common::Linear add_q_proj, add_k_proj, add_v_proj;
  common::RMSNorm norm_added_q, norm_added_k;
  common::Linear to_out;  // to_out.0
  common::Linear to_add_out;
};

// FluxTransformerBlock (double stream).
struct FluxTransformerBlock {
  common::AdaLayerNormZero norm1, norm1_context;
  FluxAttention attn;
  common::FeedForward ff, ff_context;
  int64_t heads = 0;

  void bind(const common::WeightScope& w, const FluxConfig& cfg);
  // x: (B, S_img, D)   c: (B, S_txt, D)   temb: (B, D) → (c, x) updated. Under sequence
  // parallelism x and c are this rank's rows as `tokens` lays them out.
  std::pair<core::Tensor, core::Tensor> forward(const core::Tensor& x, const core::Tensor& c,
                                                const core::Tensor& temb, const Rope& rope,
                                                const parallel::TokenLayout& tokens) const;
};

// FluxSingleTransformerBlock: attention and MLP in parallel over the joint sequence.
struct FluxSingleTransformerBlock {
  common::AdaLayerNormZeroSingle norm;
  FluxAttention attn;
  common::Linear proj_mlp, proj_out;
  int64_t heads = 0;

  void bind(const common::WeightScope& w, const FluxConfig& cfg);
  // joint: (B, S_txt + S_img, D) (this rank's rows: text first)   temb: (B, D) → same shape
  core::Tensor forward(const core::Tensor& joint, const core::Tensor& temb, const Rope& rope,
                       const parallel::TokenLayout& tokens) const;
};

class FluxTransformer2DModel : public Transformer {
 public:
  FluxTransformer2DModel(const FluxConfig& cfg, const common::WeightProvider& weights,
                         const core::Placement& place);

  std::string class_name() const override { return "FluxTransformer2DModel"; }
  // Inputs: hidden_states (B, S_img, in_channels) packed latents, encoder_hidden_states
  // (B, S_txt, joint_attention_dim), pooled_projections (B, pooled_projection_dim), timestep
  // (B) in [0, 1] (t/1000), guidance (B) when guidance_embeds, img_ids (S_img, 3), txt_ids
  // (S_txt, 3) (a leading batch dim is accepted). Returns sample (B, S_img, p·p·out_channels).
  core::Tensor forward(const NamedTensors& inputs) const override;
  core::Tensor forward(const NamedTensors& inputs,
                       const parallel::SequenceContext* sp) const override;
  // The same forward with typed arguments (guidance may be undefined for schnell); `sp` as in
  // Transformer::forward.
  core::Tensor forward(const core::Tensor& hidden_states, const core::Tensor& encoder_hidden_states,
                       const core::Tensor& pooled_projections, const core::Tensor& timestep,
                       const core::Tensor& guidance, const core::Tensor& img_ids,
                       const core::Tensor& txt_ids,
                       const parallel::SequenceContext* sp = nullptr) const;

  const FluxConfig& config() const { return cfg_; }

  // PipeFusion (Transformer): layers 0 … num_layers−1 are the double-stream blocks (streams:
  // text, image), the rest the single-stream blocks (one stream: [text, image]). The token grid
  // comes from img_ids (row, column in axes 1 and 2).
  int64_t num_layers() const override;
  std::pair<int64_t, int64_t> token_grid(const NamedTensors& inputs) const override;
  std::unique_ptr<TransformerPass> begin_pass(const NamedTensors& inputs,
                                              const parallel::SequenceContext* sp,
                                              const parallel::PassPlan* plan,
                                              bool embed) const override;
  std::vector<core::Shape> stream_shapes(const TransformerPass& pass,
                                         int64_t layer) const override;
  void run_layers(TransformerPass& pass, int64_t begin, int64_t end) const override;
  core::Tensor end_pass(TransformerPass& pass) const override;
  // TeaCache: the first block's adaLN-modulated norm1 of the image tokens (TeaCache4FLUX).
  CacheProbe teacache_probe(const TransformerPass& pass) const override;
  std::vector<double> teacache_coefficients() const override;
  // xDiT's TeaCache default for Flux, 0.6 (TeaCache4FLUX's "2.0x speedup" setting).
  double teacache_default_threshold() const override { return 0.6; }

 private:
  struct Pass;
  std::unique_ptr<Pass> begin_typed(const core::Tensor& hidden_states,
                                    const core::Tensor& encoder_hidden_states,
                                    const core::Tensor& pooled_projections,
                                    const core::Tensor& timestep, const core::Tensor& guidance,
                                    const core::Tensor& img_ids, const core::Tensor& txt_ids,
                                    const parallel::SequenceContext* sp,
                                    const parallel::PassPlan* plan, bool embed) const;

  FluxConfig cfg_;
  core::Placement place_;
  // Members named after their checkpoint modules.
  common::Linear x_embedder_, context_embedder_;
  common::CombinedTimestepTextProjEmbeddings time_text_embed_;
  std::vector<FluxTransformerBlock> transformer_blocks_;
  std::vector<FluxSingleTransformerBlock> single_transformer_blocks_;
  common::AdaLayerNormContinuous norm_out_;
  common::Linear proj_out_;
};

std::unique_ptr<Transformer> make_flux_transformer(const io::Config& config,
                                                   const common::WeightProvider& weights,
                                                   const core::Placement& place);

}  // namespace paradit::models::flux
