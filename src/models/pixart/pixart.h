#pragma once
// PixArt-α / PixArt-Σ (diffusers PixArtTransformer2DModel): a patch-embedded latent, AdaLN-single
// timestep modulation shared by every block (plus per-block scale_shift_table), self-attention,
// cross-attention to the projected T5 caption under its attention mask, and a gelu-tanh MLP.
//
// Forward inputs (diffusers' names): hidden_states (B, C, H, W), encoder_hidden_states
// (B, S_txt, caption_channels), timestep (B) or (1), encoder_attention_mask (B, S_txt) 1 keep /
// 0 drop (optional), and for PixArt-α's micro-conditions added_cond_kwargs.resolution (B, 2) and
// added_cond_kwargs.aspect_ratio (B, 1). Output `sample` (B, out_channels, H, W).

#include <memory>

#include "models/transformer.h"

namespace paradit::models::pixart {

std::unique_ptr<Transformer> make_pixart_transformer(const io::Config& config,
                                                     const common::WeightProvider& weights,
                                                     const core::Placement& place);

}  // namespace paradit::models::pixart
