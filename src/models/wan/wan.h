#pragma once
// Wan2.1 / Wan2.2 (diffusers WanTransformer3DModel): Conv3d patch embedding, 3-D RoPE over
// (frames, rows, columns), blocks of self-attention (RMS q/k norm across heads), cross-attention
// to the text and a gelu-tanh FFN, each modulated by the block's scale_shift_table plus the
// timestep projection; adaLN output, unpatchify to (B, C, F, H, W).
//
// The timestep is one value per sample (Wan2.1, Wan2.2 A14B) or one per token (Wan2.2 TI2V's
// expand_timesteps, where the conditioning first frame has t = 0). Both run through the same
// path: one conditioning row per distinct timestep, spread over the tokens at use.
//
// Sequence parallel (forward with a SequenceContext): the f·h·w video tokens are padded to a
// multiple of ulysses × ring and cut into one block per rank (parallel/joint.h, no text in the
// joint sequence); the RoPE tables and per-token timestep rows are cut the same way. Self-
// attention is parallel::joint_attention over the blocks (padded keys masked); the
// cross-attention attends each rank's queries to the whole text, which every rank holds. The
// output projection runs on the block, then the blocks are gathered.

#include <memory>
#include <string>
#include <vector>

#include "io/diffusers.h"
#include "models/common/embeddings.h"
#include "models/common/modules.h"
#include "models/common/weights.h"
#include "models/transformer.h"
#include "models/wan/patch_embed_3d.h"
#include "parallel/joint.h"

namespace paradit::models::wan {

// config.json fields with WanTransformer3DModel's defaults.
struct WanConfig {
  Patch3d patch_size{1, 2, 2};
  int64_t num_attention_heads = 40;
  int64_t attention_head_dim = 128;
  int64_t in_channels = 16;
  int64_t out_channels = 16;  // null → in_channels
  int64_t text_dim = 4096;
  int64_t freq_dim = 256;
  int64_t ffn_dim = 13824;
  int64_t num_layers = 40;
  bool cross_attn_norm = true;
  double eps = 1e-6;
  int64_t rope_max_seq_len = 1024;
  double rope_theta = 10000.0;  // fixed in diffusers' WanRotaryPosEmbed
  // qk_norm is not read: as in diffusers' WanAttention, every attention has RMS q/k norms across
  // the heads whatever its value. image_dim / added_kv_proj_dim (the I2V and FLF2V image branch)
  // are rejected by from(): not implemented (pos_embed_seq_len only matters with image_dim).

  int64_t inner_dim() const { return num_attention_heads * attention_head_dim; }
  // RoPE channels per head for (frames, rows, columns): h = w = 2·(head_dim / 6), t the rest.
  std::vector<int64_t> rope_split() const;
  // Error naming the file and key for unsupported or inconsistent values.
  static WanConfig from(const io::Config& config);
};

// Rotary tables per token: (f·h·w, head_dim) each, tokens frame-major; within a row the t, h, w
// channel groups, each interleaved pairs (core::RopeStyle::kInterleaved).
struct Rope {
  core::Tensor cos, sin;
};
// WanRotaryPosEmbed at token grid (f, h, w). Error when an axis exceeds rope_max_seq_len.
Rope wan_rope(const WanConfig& cfg, const Patch3d& grid);

// The timestep conditioning of a forward: one row per distinct timestep value u, and which row
// each token uses.
struct TimeConditioning {
  core::Tensor temb;   // (U, D): condition_embedder's temb, feeds the output modulation
  core::Tensor proj;   // (U, 6, D): time_proj(silu(temb)), feeds the blocks
  core::Tensor index;  // (B, S) I64: the row of each token; undefined → row b for sample b
  int64_t batch = 0, tokens = 0;

  // The conditioning of this rank's block of the tokens (index cut as `layout` cuts the video
  // tokens); itself when not parallel.
  TimeConditioning shard(const parallel::TokenLayout& layout) const;

  // x·(1 + scale) + shift, each token with its row (fp32, diffusers' order of roundings).
  // x: (B, S, D)   shift, scale: (U, D) → (B, S, D)
  core::Tensor modulate(const core::Tensor& x, const core::Tensor& shift,
                        const core::Tensor& scale) const;
  // x + gate·y, each token with its row.   x, y: (B, S, D)   gate: (U, D) → (B, S, D)
  core::Tensor gated_add(const core::Tensor& x, const core::Tensor& gate,
                         const core::Tensor& y) const;
  // rows: (U, D) → (B, S, D), each token's row (per-token timesteps only).
  core::Tensor spread(const core::Tensor& rows) const;
};

// WanTimeTextImageEmbedding without the image branch.
struct WanConditionEmbedder {
  common::Timesteps timesteps_proj;
  common::TimestepEmbedding time_embedder;
  common::Linear time_proj;
  common::TextProjection text_embedder;
  void bind(const common::WeightScope& w, const WanConfig& cfg);
  // timestep: (B) or (B, S) per token (S = tokens) → TimeConditioning
  TimeConditioning time(const core::Tensor& timestep, int64_t batch, int64_t tokens) const;
};

// WanAttention: projections and RMS norms over the full H·hd width.
struct WanAttention {
  common::Linear to_q, to_k, to_v;
  common::RMSNorm norm_q, norm_k;
  common::Linear to_out;  // to_out.0
  void bind(const common::WeightScope& w, const WanConfig& cfg);
};

struct WanTransformerBlock {
  core::Tensor scale_shift_table;         // (1, 6, D) F32
  common::LayerNorm norm1, norm2, norm3;  // norm2 affine; identity unless cross_attn_norm
  bool cross_attn_norm = true;
  WanAttention attn1, attn2;
  common::FeedForward ffn;
  int64_t heads = 0;

  void bind(const common::WeightScope& w, const WanConfig& cfg);
  // x: (B, S, D), this rank's tokens as `tokens` lays them out   context: (B, S_txt, D), whole
  // → (B, S, D)
  core::Tensor forward(const core::Tensor& x, const core::Tensor& context,
                       const TimeConditioning& time, const Rope& rope,
                       const parallel::TokenLayout& tokens) const;
};

class WanTransformer3DModel : public Transformer {
 public:
  WanTransformer3DModel(const WanConfig& cfg, const common::WeightProvider& weights,
                        const core::Placement& place);

  std::string class_name() const override { return "WanTransformer3DModel"; }
  // Inputs: hidden_states (B, in_channels, F, H, W), encoder_hidden_states (B, S_txt, text_dim),
  // timestep (B) in [0, 1000], or (B, S) with one value per token (Wan2.2 TI2V). Returns sample
  // (B, out_channels, F, H, W).
  core::Tensor forward(const NamedTensors& inputs) const override;
  // Sequence parallel over sp (see the top of this file); any Ulysses degree (the heads split
  // unevenly when it does not divide them).
  core::Tensor forward(const NamedTensors& inputs,
                       const parallel::SequenceContext* sp) const override;
  core::Tensor forward(const core::Tensor& hidden_states, const core::Tensor& encoder_hidden_states,
                       const core::Tensor& timestep,
                       const parallel::SequenceContext* sp = nullptr) const;

  const WanConfig& config() const { return cfg_; }

  // The forward in parts (for the step caches; no PipeFusion): the layers are the blocks.
  int64_t num_layers() const override { return cfg_.num_layers; }
  std::unique_ptr<TransformerPass> begin_pass(const NamedTensors& inputs,
                                              const parallel::SequenceContext* sp,
                                              const parallel::PassPlan* plan,
                                              bool embed) const override;
  void run_layers(TransformerPass& pass, int64_t begin, int64_t end) const override;
  core::Tensor end_pass(TransformerPass& pass) const override;
  // TeaCache4Wan2.1 (without use_ret_steps): the timestep embedding temb, per timestep row.
  CacheProbe teacache_probe(const TransformerPass& pass) const override;
  // The authors' polynomials for the T2V models: 1.3B (inner dim 1536) and 14B (5120).
  std::vector<double> teacache_coefficients() const override;
  // TeaCache4Wan2.1's faster settings with those polynomials (1.3B 0.08, 14B 0.2); else the
  // identity default.
  double teacache_default_threshold() const override;

 private:
  struct Pass;
  std::unique_ptr<Pass> begin_typed(const core::Tensor& hidden_states,
                                    const core::Tensor& encoder_hidden_states,
                                    const core::Tensor& timestep,
                                    const parallel::SequenceContext* sp, bool embed) const;

  WanConfig cfg_;
  core::Placement place_;
  // Members named after their checkpoint modules.
  PatchEmbed3d patch_embedding_;
  WanConditionEmbedder condition_embedder_;
  std::vector<WanTransformerBlock> blocks_;
  common::LayerNorm norm_out_;
  core::Tensor scale_shift_table_;  // (1, 2, D) F32
  common::Linear proj_out_;
};

std::unique_ptr<Transformer> make_wan_transformer(const io::Config& config,
                                                  const common::WeightProvider& weights,
                                                  const core::Placement& place);

}  // namespace paradit::models::wan
