#pragma once
// HunyuanVideo (diffusers HunyuanVideoTransformer3DModel): Conv3d patch embedding; the text goes
// through a token refiner (its own timestep + mean-pooled text conditioning, masked
// self-attention blocks); dual-stream blocks over [video, text] tokens like Flux's double
// blocks, then single-stream blocks over their concatenation; 3-D RoPE on the video tokens;
// adaLN output, unpatchify to (B, C, F, H, W).
//
// Text padding: every query sees the video tokens and the first sum(encoder_attention_mask[b])
// text tokens (diffusers counts the ones and assumes the padding is at the end). In the token
// refiner a query and a key see each other when both are unmasked; key 0 is always visible.
//
// Sequence parallel (forward with a SequenceContext), as Flux: the video tokens are padded to a
// multiple of ulysses × ring and cut into one block per rank, the RoPE tables with them; the
// token refiner runs on the whole text on every rank, then each rank keeps its text block (text
// length divisible by the degree) or all the text (parallel/joint.h). The joint attention of the
// dual- and single-stream blocks masks the padded video keys and the text padding. The output
// layers run on the block, then the blocks are gathered.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/diffusers.h"
#include "models/common/embeddings.h"
#include "models/common/modules.h"
#include "models/common/weights.h"
#include "models/transformer.h"
#include "models/wan/patch_embed_3d.h"
#include "parallel/joint.h"

namespace paradit::models::hunyuan_video {

using wan::Patch3d;

// config.json fields with HunyuanVideoTransformer3DModel's defaults.
struct HunyuanVideoConfig {
  int64_t in_channels = 16;
  int64_t out_channels = 16;  // null → in_channels
  int64_t num_attention_heads = 24;
  int64_t attention_head_dim = 128;
  int64_t num_layers = 20;
  int64_t num_single_layers = 40;
  int64_t num_refiner_layers = 2;
  double mlp_ratio = 4.0;
  int64_t patch_size = 2;
  int64_t patch_size_t = 1;
  common::HeadNormKind qk_norm = common::HeadNormKind::kRMSNorm;
  bool guidance_embeds = true;
  int64_t text_embed_dim = 4096;
  int64_t pooled_projection_dim = 768;
  double rope_theta = 256.0;
  std::vector<int64_t> rope_axes_dim = {16, 56, 56};
  // image_condition_type: null or "latent_concat" (the image rides in the input channels);
  // "token_replace" (HunyuanVideo-I2V's first-frame blocks) is rejected by from().

  int64_t inner_dim() const { return num_attention_heads * attention_head_dim; }
  Patch3d patch() const { return {patch_size_t, patch_size, patch_size}; }
  // Error naming the file and key for unsupported or inconsistent values.
  static HunyuanVideoConfig from(const io::Config& config);
};

// Rotary tables per token, (S, head_dim) each, interleaved pairs (core::RopeStyle::kInterleaved).
struct Rope {
  core::Tensor cos, sin;
};
// HunyuanVideoRotaryPosEmbed at token grid (f, h, w): per token (t, y, x) the t, y and x
// tables of rope_axes_dim channels, in float32 as diffusers computes them. (f·h·w, head_dim).
Rope hunyuan_video_rope(const std::vector<int64_t>& axes_dim, double theta, const Patch3d& grid);
// The same tables followed by `text_tokens` identity rows (cos 1, sin 0): the joint sequence
// [video, text] rotated in one call leaves the text tokens exactly as they are.
Rope with_identity_rows(const Rope& rope, int64_t text_tokens);

// The joint [video, text] tokens of one forward: this rank's rows (video first, then text);
// layout.text_key_mask holds the visible text keys, (B, S_txt) F32: 1 for the first
// sum(mask[b]) text tokens of sample b, else 0 ({} when every text token is visible). The
// attention over them is parallel::joint_attention (collective under sequence parallelism).
struct JointTokens {
  parallel::TokenLayout layout;  // text_first false
};

// HunyuanVideoIndividualTokenRefinerBlock.
struct TokenRefinerBlock {
  common::LayerNorm norm1, norm2;           // affine, eps 1e-6
  common::Linear to_q, to_k, to_v, to_out;  // attn.*, to_out.0
  common::FeedForward ff;                   // linear-silu
  common::Linear norm_out;                  // norm_out.linear: (gate_msa, gate_mlp)
  int64_t heads = 0;
  void bind(const common::WeightScope& w, const HunyuanVideoConfig& cfg);
  // c: (B, S_txt, D)   temb: (B, D)   bias: (B, 1, S_txt, S_txt) 0 / -inf → (B, S_txt, D)
  core::Tensor forward(const core::Tensor& c, const core::Tensor& temb,
                       const core::Tensor& bias) const;
};

// HunyuanVideoTokenRefiner: the context_embedder.
struct TokenRefiner {
  common::CombinedTimestepTextProjEmbeddings time_text_embed;
  common::Linear proj_in;
  std::vector<TokenRefinerBlock> refiner_blocks;  // token_refiner.refiner_blocks.i
  void bind(const common::WeightScope& w, const HunyuanVideoConfig& cfg);
  // text: (B, S_txt, text_embed_dim)   timestep: (B)   mask: (B, S_txt) 1/0 → (B, S_txt, D)
  core::Tensor forward(const core::Tensor& text, const core::Tensor& timestep,
                       const core::Tensor& mask) const;
};

// The attention of both block kinds (the single-stream one uses only to_q/k/v and norm_q/k).
struct HunyuanVideoAttention {
  common::Linear to_q, to_k, to_v;
  common::HeadNorm norm_q, norm_k;
  common::Linear add_q_proj, add_k_proj, add_v_proj;
  common::HeadNorm norm_added_q, norm_added_k;
  common::Linear to_out;  // to_out.0
  common::Linear to_add_out;
};

// HunyuanVideoTransformerBlock (dual stream).
struct HunyuanVideoTransformerBlock {
  common::AdaLayerNormZero norm1, norm1_context;
  HunyuanVideoAttention attn;
  common::FeedForward ff, ff_context;
  int64_t heads = 0;
  void bind(const common::WeightScope& w, const HunyuanVideoConfig& cfg);
  // x: (B, S_img, D)   c: (B, S_txt, D), this rank's rows   temb: (B, D)
  // rope: (S_img + S_txt, hd) → (x, c) updated
  std::pair<core::Tensor, core::Tensor> forward(const core::Tensor& x, const core::Tensor& c,
                                                const core::Tensor& temb, const JointTokens& tokens,
                                                const Rope& rope) const;
};

// HunyuanVideoSingleTransformerBlock: attention and MLP in parallel over [video, text].
struct HunyuanVideoSingleTransformerBlock {
  common::AdaLayerNormZeroSingle norm;
  HunyuanVideoAttention attn;
  common::Linear proj_mlp, proj_out;
  int64_t heads = 0;
  void bind(const common::WeightScope& w, const HunyuanVideoConfig& cfg);
  // joint: (B, S_img + S_txt, D), this rank's rows → same
  core::Tensor forward(const core::Tensor& joint, const core::Tensor& temb,
                       const JointTokens& tokens, const Rope& rope) const;
};

class HunyuanVideoTransformer3DModel : public Transformer {
 public:
  HunyuanVideoTransformer3DModel(const HunyuanVideoConfig& cfg,
                                 const common::WeightProvider& weights, const core::Placement& place);

  std::string class_name() const override { return "HunyuanVideoTransformer3DModel"; }
  // Inputs: hidden_states (B, in_channels, F, H, W), timestep (B) in [0, 1000],
  // encoder_hidden_states (B, S_txt, text_embed_dim), encoder_attention_mask (B, S_txt) 1/0,
  // pooled_projections (B, pooled_projection_dim), guidance (B) (guidance scale · 1000) when
  // guidance_embeds. Returns sample (B, out_channels, F, H, W).
  core::Tensor forward(const NamedTensors& inputs) const override;
  // Sequence parallel over sp (see the top of this file); any Ulysses degree (the heads split
  // unevenly when it does not divide them).
  core::Tensor forward(const NamedTensors& inputs,
                       const parallel::SequenceContext* sp) const override;
  core::Tensor forward(const core::Tensor& hidden_states, const core::Tensor& timestep,
                       const core::Tensor& encoder_hidden_states,
                       const core::Tensor& encoder_attention_mask,
                       const core::Tensor& pooled_projections, const core::Tensor& guidance,
                       const parallel::SequenceContext* sp = nullptr) const;

  const HunyuanVideoConfig& config() const { return cfg_; }

  // The forward in parts (for the step caches; no PipeFusion): layers 0 … num_layers−1 are the
  // dual-stream blocks (streams: video, text), the rest the single-stream blocks (one stream:
  // [video, text]).
  int64_t num_layers() const override;
  std::unique_ptr<TransformerPass> begin_pass(const NamedTensors& inputs,
                                              const parallel::SequenceContext* sp,
                                              const parallel::PassPlan* plan,
                                              bool embed) const override;
  void run_layers(TransformerPass& pass, int64_t begin, int64_t end) const override;
  core::Tensor end_pass(TransformerPass& pass) const override;
  core::Tensor image_hidden(const TransformerPass& pass) const override;
  // TeaCache4HunyuanVideo: the first dual-stream block's img_mod-modulated norm1 of the video.
  CacheProbe teacache_probe(const TransformerPass& pass) const override;
  std::vector<double> teacache_coefficients() const override;
  // TeaCache4HunyuanVideo's faster setting, 0.15 (its README: 0.1 and 0.15).
  double teacache_default_threshold() const override { return 0.15; }

 private:
  struct Pass;
  std::unique_ptr<Pass> begin_typed(const core::Tensor& hidden_states, const core::Tensor& timestep,
                                    const core::Tensor& encoder_hidden_states,
                                    const core::Tensor& encoder_attention_mask,
                                    const core::Tensor& pooled_projections,
                                    const core::Tensor& guidance,
                                    const parallel::SequenceContext* sp, bool embed) const;

  HunyuanVideoConfig cfg_;
  core::Placement place_;
  // Members named after their checkpoint modules.
  wan::PatchEmbed3d x_embedder_;  // x_embedder.proj
  TokenRefiner context_embedder_;
  common::CombinedTimestepTextProjEmbeddings time_text_embed_;
  std::vector<HunyuanVideoTransformerBlock> transformer_blocks_;
  std::vector<HunyuanVideoSingleTransformerBlock> single_transformer_blocks_;
  common::AdaLayerNormContinuous norm_out_;
  common::Linear proj_out_;
};

std::unique_ptr<Transformer> make_hunyuan_video_transformer(const io::Config& config,
                                                            const common::WeightProvider& weights,
                                                            const core::Placement& place);

}  // namespace paradit::models::hunyuan_video
