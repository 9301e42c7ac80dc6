#pragma once
// Qwen-Image (diffusers QwenImageTransformer2DModel): an MMDiT of double-stream blocks only.
// Text and image streams each have their own adaLN modulation (img_mod / txt_mod: silu → linear
// to 6·D), LayerNorms without affine, GELU(tanh) feed-forwards, and one joint attention per
// block over [text, image] with per-head RMSNorm on q/k, a key mask on padded text tokens
// (encoder_hidden_states_mask), and Qwen's 3-axis complex RoPE:
//   - image token (frame, row, col) of a patch grid h × w: positions (frame,
//     row − (h − h//2), col − (w − w//2)) — centred rows/columns (scale_rope);
//   - text token k: position max(h//2, w//2) + k on all three axes.
// The text is first normalised (txt_norm: RMSNorm over joint_attention_dim) and projected
// (txt_in). `img_shapes` (frames, patch rows, patch cols) comes as an I64 tensor input.

#include <array>
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

namespace paradit::models::qwen_image {

struct QwenImageConfig {
  int64_t patch_size = 2;
  int64_t in_channels = 64;
  int64_t out_channels = 16;
  int64_t num_layers = 60;
  int64_t attention_head_dim = 128;
  int64_t num_attention_heads = 24;
  int64_t joint_attention_dim = 3584;
  std::vector<int64_t> axes_dims_rope = {16, 56, 56};
  double rope_theta = 10000.0;  // fixed in diffusers' QwenEmbedRope

  int64_t inner_dim() const { return num_attention_heads * attention_head_dim; }
  // Error naming the key for unsupported options (zero_cond_t, use_additional_t_cond,
  // use_layer3d_rope: the edit / layered variants).
  static QwenImageConfig from(const io::Config& config);
};

// QwenEmbedRope for one image grid (frames, rows, cols) and `text_len` text tokens:
// (image (F·h·w, hd), text (text_len, hd)) cos and sin tables, pairs interleaved, float32 as
// diffusers computes them.
struct QwenRope {
  flux::Rope image, text;
};
QwenRope qwen_rope(int64_t frames, int64_t rows, int64_t cols, int64_t text_len,
                   const std::vector<int64_t>& axes_dims, double theta);

// QwenImageTransformerBlock.
struct QwenImageTransformerBlock {
  common::Linear img_mod, txt_mod;  // img_mod.1 / txt_mod.1: (6·D, D)
  common::Linear to_q, to_k, to_v, add_q_proj, add_k_proj, add_v_proj, to_out, to_add_out;
  common::RMSNorm norm_q, norm_k, norm_added_q, norm_added_k;
  common::FeedForward img_mlp, txt_mlp;
  int64_t heads = 0;

  void bind(const common::WeightScope& w, const QwenImageConfig& cfg);
  // x: (B, S_img, D)   c: (B, S_txt, D)   temb: (B, D) → (c, x)
  std::pair<core::Tensor, core::Tensor> forward(const core::Tensor& x, const core::Tensor& c,
                                                const core::Tensor& temb, const flux::Rope& rope,
                                                const parallel::TokenLayout& tokens) const;
};

class QwenImageTransformer2DModel : public Transformer {
 public:
  QwenImageTransformer2DModel(const QwenImageConfig& cfg, const common::WeightProvider& weights,
                              const core::Placement& place);

  std::string class_name() const override { return "QwenImageTransformer2DModel"; }
  // Inputs: hidden_states (B, S_img, in_channels) packed latents, encoder_hidden_states (B, S_txt,
  // joint_attention_dim), encoder_hidden_states_mask (B, S_txt) optional (1 token / 0 padding),
  // timestep (B) (t/1000), img_shapes (…, 3) I64 = (frames, patch rows, patch cols) of the first
  // sample (diffusers uses the first). Returns sample (B, S_img, p·p·out_channels).
  core::Tensor forward(const NamedTensors& inputs) const override;
  core::Tensor forward(const NamedTensors& inputs,
                       const parallel::SequenceContext* sp) const override;

  const QwenImageConfig& config() const { return cfg_; }

  int64_t num_layers() const override { return cfg_.num_layers; }
  std::pair<int64_t, int64_t> token_grid(const NamedTensors& inputs) const override;
  std::unique_ptr<TransformerPass> begin_pass(const NamedTensors& inputs,
                                              const parallel::SequenceContext* sp,
                                              const parallel::PassPlan* plan,
                                              bool embed) const override;
  std::vector<core::Shape> stream_shapes(const TransformerPass& pass, int64_t layer) const override;
  void run_layers(TransformerPass& pass, int64_t begin, int64_t end) const override;
  core::Tensor end_pass(TransformerPass& pass) const override;
  // TeaCache: the first block's adaLN-modulated norm1 of the image tokens (img_mod; no published
  // polynomial).
  CacheProbe teacache_probe(const TransformerPass& pass) const override;

 private:
  struct Pass;
  QwenImageConfig cfg_;
  core::Placement place_;
  common::Timesteps time_proj_;
  common::TimestepEmbedding timestep_embedder_;  // time_text_embed.timestep_embedder
  common::RMSNorm txt_norm_;
  common::Linear img_in_, txt_in_;
  std::vector<QwenImageTransformerBlock> transformer_blocks_;
  common::AdaLayerNormContinuous norm_out_;
  common::Linear proj_out_;
};

std::unique_ptr<Transformer> make_qwen_image_transformer(const io::Config& config,
                                                         const common::WeightProvider& weights,
                                                         const core::Placement& place);
std::vector<std::string> qwen_image_layer_prefixes(const io::Config& config);

// (frames, rows, cols) from an img_shapes input (…, 3); Error naming it otherwise.
std::array<int64_t, 3> image_shape_input(const core::Tensor& img_shapes);

}  // namespace paradit::models::qwen_image
