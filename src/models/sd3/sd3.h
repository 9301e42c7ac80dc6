#pragma once
// Stable Diffusion 3 / 3.5 (diffusers SD3Transformer2DModel): patch embedding with a cropped
// position table, MMDiT JointTransformerBlocks over [image, text] tokens (SD3.5: q/k RMSNorm and,
// in dual_attention_layers, a second image-only self-attention), adaLN output, unpatchify.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/diffusers.h"
#include "models/common/embeddings.h"
#include "models/common/modules.h"
#include "models/common/weights.h"
#include "models/transformer.h"
#include "parallel/joint.h"

namespace paradit::models::sd3 {

// config.json fields with SD3Transformer2DModel's defaults.
struct SD3Config {
  int64_t sample_size = 128;
  int64_t patch_size = 2;
  int64_t in_channels = 16;
  int64_t num_layers = 18;
  int64_t attention_head_dim = 64;
  int64_t num_attention_heads = 18;
  int64_t joint_attention_dim = 4096;
  int64_t caption_projection_dim = 1152;
  int64_t pooled_projection_dim = 2048;
  int64_t out_channels = 16;        // null → in_channels
  int64_t pos_embed_max_size = 96;  // null → 0: sincos at the input grid
  std::vector<int64_t> dual_attention_layers;
  common::HeadNormKind qk_norm = common::HeadNormKind::kNone;

  int64_t inner_dim() const { return num_attention_heads * attention_head_dim; }
  bool is_dual(int64_t layer) const;
  // Error naming the file and key for unsupported or inconsistent values.
  static SD3Config from(const io::Config& config);
};

// Attention(query_dim=D, added_kv_proj_dim=D or none, qk_norm) as the joint blocks build it.
struct SD3Attention {
  common::Linear to_q, to_k, to_v;
  common::HeadNorm norm_q, norm_k;
  common::Linear add_q_proj, add_k_proj, add_v_proj;  // joint attention only
  common::HeadNorm norm_added_q, norm_added_k;
  common::Linear to_out;      // to_out.0
  common::Linear to_add_out;  // joint attention unless context_pre_only
};

// JointTransformerBlock.
struct JointTransformerBlock {
  bool context_pre_only = false;    // the last block: text stream ends here
  bool use_dual_attention = false;  // SD3.5 dual_attention_layers: attn2 on the image tokens
  int64_t heads = 0;
  common::AdaLayerNormZero norm1;                    // when !use_dual_attention
  common::AdaLayerNormZeroX norm1_x;                 // norm1 when use_dual_attention
  common::AdaLayerNormZero norm1_context;            // when !context_pre_only
  common::AdaLayerNormContinuous norm1_context_out;  // norm1_context when context_pre_only
  SD3Attention attn, attn2;
  common::FeedForward ff, ff_context;

  void bind(const common::WeightScope& w, const SD3Config& cfg, int64_t layer);
  // x: (B, S_img, D)   c: (B, S_txt, D)   temb: (B, D) → (c, x); c undefined after a
  // context_pre_only block. Under sequence parallelism x and c are this rank's rows as `tokens`
  // lays them out.
  std::pair<core::Tensor, core::Tensor> forward(const core::Tensor& x, const core::Tensor& c,
                                                const core::Tensor& temb,
                                                const parallel::TokenLayout& tokens) const;
};

class SD3Transformer2DModel : public Transformer {
 public:
  SD3Transformer2DModel(const SD3Config& cfg, const common::WeightProvider& weights,
                        const core::Placement& place);

  std::string class_name() const override { return "SD3Transformer2DModel"; }
  // Inputs: hidden_states (B, in_channels, H, W), encoder_hidden_states
  // (B, S_txt, joint_attention_dim), pooled_projections (B, pooled_projection_dim), timestep
  // (B) in [0, 1000]. Returns sample (B, out_channels, H, W).
  core::Tensor forward(const NamedTensors& inputs) const override;
  core::Tensor forward(const NamedTensors& inputs,
                       const parallel::SequenceContext* sp) const override;
  core::Tensor forward(const core::Tensor& hidden_states, const core::Tensor& encoder_hidden_states,
                       const core::Tensor& pooled_projections, const core::Tensor& timestep,
                       const parallel::SequenceContext* sp = nullptr) const;

  const SD3Config& config() const { return cfg_; }

  // PipeFusion (Transformer): the joint blocks are the layers; streams: text, image.
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
  // TeaCache: the first block's adaLN-modulated norm1 of the image tokens (no published
  // polynomial).
  CacheProbe teacache_probe(const TransformerPass& pass) const override;

 private:
  struct Pass;
  std::unique_ptr<Pass> begin_typed(const core::Tensor& hidden_states,
                                    const core::Tensor& encoder_hidden_states,
                                    const core::Tensor& pooled_projections,
                                    const core::Tensor& timestep,
                                    const parallel::SequenceContext* sp,
                                    const parallel::PassPlan* plan, bool embed) const;

  SD3Config cfg_;
  core::Placement place_;
  // Members named after their checkpoint modules.
  common::PatchEmbed pos_embed_;
  common::CombinedTimestepTextProjEmbeddings time_text_embed_;
  common::Linear context_embedder_;
  std::vector<JointTransformerBlock> transformer_blocks_;
  common::AdaLayerNormContinuous norm_out_;
  common::Linear proj_out_;
};

std::unique_ptr<Transformer> make_sd3_transformer(const io::Config& config,
                                                  const common::WeightProvider& weights,
                                                  const core::Placement& place);

}  // namespace paradit::models::sd3
