#pragma once
// DiT (diffusers DiTTransformer2DModel, class-conditional, norm_type ada_norm_zero): a
// patch-embedded latent with fixed 2-D sin-cos positions, blocks with their own AdaLN-Zero
// conditioning on timestep + class label, self-attention and a gelu-tanh MLP, and a final
// modulation from the first block's conditioning embedding.
//
// Forward inputs: hidden_states (B, C, H, W), timestep (B) or (1), class_labels (B) I64/I32
// (num_classes = num_embeds_ada_norm is the classifier-free-guidance null class).
// Output `sample` (B, out_channels, H, W).
//
// Tensor parallel (make_dit_transformer with a group): see below.

#include <memory>

#include "models/transformer.h"

namespace paradit::models::dit {

// Tensor parallel over `tp`: each block's heads (to_q/k/v by columns, to_out by rows) and MLP
// hidden units (ff.net.0.proj by columns, ff.net.2 by rows) split into equal shares, one
// all-reduce after attention and one after the MLP; the AdaLN-Zero conditioning, norms, patch
// embedding and output layers whole. Degrees that do not divide the heads and the MLP width →
// Error naming the valid degrees.
std::unique_ptr<Transformer> make_dit_transformer(const io::Config& config,
                                                  const common::WeightProvider& weights,
                                                  const core::Placement& place,
                                                  const parallel::TensorParallel& tp = {});

}  // namespace paradit::models::dit
