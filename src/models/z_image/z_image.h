#pragma once
// Z-Image (diffusers ZImageTransformer2DModel): a single-stream DiT over [image tokens, caption
// tokens] per sample.
//   - Image latents (C, F, H, W) are cut into 2×2 patches whose features run (ph, pw, c), embedded
//     (all_x_embedder.2-1) and padded to a multiple of 32 with the learned x_pad_token; captions
//     are embedded (cap_embedder: RMSNorm + linear) and padded likewise with cap_pad_token.
//   - noise_refiner blocks (modulated) run over the image tokens, context_refiner blocks (not
//     modulated) over the caption tokens, then the main layers over the joint sequence.
//   - Blocks: RMSNorm sandwich (attention_norm1/2, ffn_norm1/2), per-head RMSNorm q/k, complex
//     3-axis RoPE (theta 256), SwiGLU feed-forward (w1, w3, w2); the modulation is
//     adaLN_modulation(t_emb) → (scale_msa, gate_msa, scale_mlp, gate_mlp) with 1 + scale and
//     tanh(gate).
//   - RoPE positions (f, h, w): caption token k (pads included) (1 + k, 0, 0); image token
//     (padded caption length + 1 + f, row, col); image pad tokens (0, 0, 0).
//   - The final layer scales LayerNorm(x) by 1 + adaLN_modulation(silu(t_emb)), projects, and the
//     image tokens are un-patchified.
//
// Forward inputs, two forms:
//   - diffusers' lists: x.0, x.1 … (C, F, H, W), cap_feats.0 … (L_i, cap_feat_dim), t (B);
//   - batched (what CFG/data parallel split): hidden_states (B, C, F, H, W), encoder_hidden_states
//     (B, L, cap_feat_dim) with encoder_attention_mask (B, L) (1 on each caption's tokens, at the
//     front) or without it (all L tokens), timestep (B).
// Every image of a call must have the same size. Returns sample (B, C, F, H, W) (the model's
// output, before the pipeline's sign flip).

#include <memory>
#include <utility>
#include <vector>

#include "io/diffusers.h"
#include "models/common/modules.h"
#include "models/common/weights.h"
#include "models/flux/flux.h"
#include "models/transformer.h"
#include "parallel/joint.h"

namespace paradit::models::z_image {

struct ZImageConfig {
  int64_t patch_size = 2;    // all_patch_size[0]
  int64_t f_patch_size = 1;  // all_f_patch_size[0]
  int64_t in_channels = 16;
  int64_t dim = 3840;
  int64_t n_layers = 30;
  int64_t n_refiner_layers = 2;
  int64_t n_heads = 30;
  float norm_eps = 1e-5f;
  bool qk_norm = true;
  int64_t cap_feat_dim = 2560;
  double rope_theta = 256.0;
  double t_scale = 1000.0;
  std::vector<int64_t> axes_dims = {32, 48, 48};
  std::vector<int64_t> axes_lens = {1024, 512, 512};

  int64_t head_dim() const { return dim / n_heads; }
  int64_t adaln_dim() const { return dim < 256 ? dim : 256; }
  int64_t ffn_dim() const { return static_cast<int64_t>(static_cast<double>(dim) / 3.0 * 8.0); }
  static ZImageConfig from(const io::Config& config);
};

// ZImageTransformerBlock (modulated or not).
struct ZImageBlock {
  bool modulation = true;
  common::Linear adaln;  // adaLN_modulation.0: (4·D, adaln_dim)
  common::Linear to_q, to_k, to_v, to_out;
  common::RMSNorm norm_q, norm_k;
  common::RMSNorm attention_norm1, attention_norm2, ffn_norm1, ffn_norm2;
  common::Linear w1, w2, w3;  // feed_forward
  int64_t heads = 0;

  void bind(const common::WeightScope& w, const ZImageConfig& cfg, bool modulation);
  // x: (B, n, D) this rank's rows   adaln: (B, adaln_dim) or {} (not modulated)
  // rope: one table pair per sample (or one for all), rows as x → (B, n, D)
  core::Tensor forward(const core::Tensor& x, const core::Tensor& adaln,
                       const std::vector<flux::Rope>& rope,
                       const parallel::TokenLayout& tokens) const;
  // The attention's input: attention_norm1(x), times 1 + scale_msa when modulated. → (B, n, D)
  core::Tensor modulated_input(const core::Tensor& x, const core::Tensor& adaln) const;
};

class ZImageTransformer2DModel : public Transformer {
 public:
  ZImageTransformer2DModel(const ZImageConfig& cfg, const common::WeightProvider& weights,
                           const core::Placement& place);

  std::string class_name() const override { return "ZImageTransformer2DModel"; }
  core::Tensor forward(const NamedTensors& inputs) const override;
  core::Tensor forward(const NamedTensors& inputs,
                       const parallel::SequenceContext* sp) const override;

  const ZImageConfig& config() const { return cfg_; }

  // The forward in parts (for the step caches; no PipeFusion): begin_pass embeds and runs both
  // refiners, the layers are the main layers over the joint [image, caption] stream.
  int64_t num_layers() const override { return static_cast<int64_t>(layers_.size()); }
  std::unique_ptr<TransformerPass> begin_pass(const NamedTensors& inputs,
                                              const parallel::SequenceContext* sp,
                                              const parallel::PassPlan* plan,
                                              bool embed) const override;
  void run_layers(TransformerPass& pass, int64_t begin, int64_t end) const override;
  core::Tensor end_pass(TransformerPass& pass) const override;
  // TeaCache: the first main layer's modulated attention input on the image tokens.
  CacheProbe teacache_probe(const TransformerPass& pass) const override;

  // The list form (x.i, cap_feats.i, t) as the batched form (hidden_states,
  // encoder_hidden_states, encoder_attention_mask, timestep); other inputs pass through.
  static NamedTensors batch_list_inputs(const NamedTensors& inputs);

 private:
  struct Pass;
  ZImageConfig cfg_;
  core::Placement place_;
  common::Linear x_embedder_;                 // all_x_embedder.{p}-{pf}
  core::Tensor x_pad_token_, cap_pad_token_;  // (1, D)
  common::Linear t_mlp0_, t_mlp2_;            // t_embedder.mlp.0 / .2
  common::RMSNorm cap_norm_;                  // cap_embedder.0
  common::Linear cap_linear_;                 // cap_embedder.1
  std::vector<ZImageBlock> noise_refiner_, context_refiner_, layers_;
  common::Linear final_adaln_, final_linear_;  // all_final_layer.{p}-{pf}
};

std::unique_ptr<Transformer> make_z_image_transformer(const io::Config& config,
                                                      const common::WeightProvider& weights,
                                                      const core::Placement& place);

}  // namespace paradit::models::z_image
