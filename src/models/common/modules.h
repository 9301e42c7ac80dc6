#pragma once
// Building blocks shared by the DiT families (Flux, SD3, PixArt, DiT …), each matching the
// diffusers module of the same name numerically and binding the same checkpoint names:
// activations, attention head reshapes, q/k norms, FeedForward, the adaLN modulations
// (AdaLayerNormZero, AdaLayerNormZeroSingle, SD35AdaLayerNormZeroX, AdaLayerNormContinuous),
// patchify/unpatchify, and forward-input access with one-line errors.

#include <map>
#include <string>
#include <vector>

#include "core/ops.h"
#include "models/common/weights.h"

namespace paradit::models::common {

// ---------------------------------------------------------------- activations
enum class Activation { kIdentity, kSiLU, kGelu, kGeluTanh, kQuickGelu };

core::Tensor activate(const core::Tensor& x, Activation act);
// diffusers names ("silu", "swish", "gelu", "gelu_tanh", "gelu-approximate", "quick_gelu",
// "linear"/"identity"); Error naming `where` and the name when unknown.
Activation activation_from_name(const std::string& name, const std::string& where);

// ---------------------------------------------------------------- forward inputs
// The named forward inputs (same type as models::NamedTensors).
using Inputs = std::map<std::string, core::Tensor>;
// The input `name`, converted to F32; Error "<model>: forward input 'name' is missing
// (expected <expected>)" when absent.
core::Tensor require_input(const Inputs& inputs, const std::string& name, const std::string& model,
                           const std::string& expected);
// The input `name` as F32, or an undefined tensor when absent.
core::Tensor optional_input(const Inputs& inputs, const std::string& name);
// A per-sample scalar input (timestep, guidance) as (B) F32: accepts (B), (1) or a 0-d tensor
// (repeated to B); Error naming the input otherwise.
core::Tensor batch_vector(const core::Tensor& t, int64_t batch, const std::string& name,
                          const std::string& model);
// A table built on the host (positions, rotary angles, masks, sinusoidal embeddings) on x's
// device in x's dtype, ready to meet x in an op (a no-op on the CPU in F32).
core::Tensor like(const core::Tensor& table, const core::Tensor& x);
// Error "<model>: forward input 'name' has shape [..], expected <expected>" unless `ok`.
void check_input(bool ok, const core::Tensor& t, const std::string& name, const std::string& model,
                 const std::string& expected);

// ---------------------------------------------------------------- attention heads
// x: (B, S, H·D) → (B, S, H, D); a free view when x is contiguous, else one copy.
core::Tensor split_heads(const core::Tensor& x, int64_t heads);
// x: (B, S, H, D) → (B, S, H·D)
core::Tensor merge_heads(const core::Tensor& x);

// Per-head q/k normalization as diffusers' Attention(qk_norm=...) builds it, over head_dim.
enum class HeadNormKind { kNone, kRMSNorm, kLayerNorm };
// Parses the config's qk_norm value ("" or null → kNone, "rms_norm", "layer_norm"); Error
// naming `where` for the unsupported ones.
HeadNormKind head_norm_kind_from_name(const std::string& name, const std::string& where);

struct HeadNorm {
  HeadNormKind kind = HeadNormKind::kNone;
  RMSNorm rms;
  LayerNorm ln;
  // Binds nothing for kNone. `affine`: diffusers' elementwise_affine.
  void bind(const WeightScope& w, int64_t head_dim, HeadNormKind kind, float eps,
            bool affine = true);
  // x: (B, S, H, D) → same; identity for kNone.
  core::Tensor operator()(const core::Tensor& x) const;
};

// ---------------------------------------------------------------- FeedForward
// diffusers attention.FeedForward: net.0 (an activation module with its `proj`), net.2 linear.
enum class FeedForwardKind {
  kGelu,        // "gelu": proj → gelu(erf)
  kGeluTanh,    // "gelu-approximate": proj → gelu(tanh)
  kGeGLU,       // "geglu": proj to 2·inner → h · gelu(gate)
  kApproxGelu,  // "geglu-approximate" (ApproximateGELU): proj → x·sigmoid(1.702x)
  kSwiGLU,      // "swiglu": proj to 2·inner → h · silu(gate)
  kLinearSiLU,  // "linear-silu": proj → silu
};
FeedForwardKind feed_forward_kind_from_name(const std::string& activation_fn,
                                            const std::string& where);

struct FeedForward {
  FeedForwardKind kind = FeedForwardKind::kGeluTanh;
  Linear proj;  // net.0.proj: (inner, dim), or (2·inner, dim) for the gated kinds
  Linear out;   // net.2: (dim_out, inner)
  // inner_dim 0 → mult·dim (diffusers' int(dim * mult)); dim_out 0 → dim.
  void bind(const WeightScope& w, int64_t dim, FeedForwardKind kind, int64_t dim_out = 0,
            int64_t inner_dim = 0, double mult = 4.0, bool bias = true);
  // Tensor parallel: hidden units [begin, end) of `inner` (proj by columns, for the gated kinds
  // the same units of both halves; out by rows, its bias only where `out_bias`). The call then
  // returns this share's partial sum of the output, (..., dim).
  void bind_share(const WeightScope& w, int64_t dim, FeedForwardKind kind, int64_t inner,
                  int64_t begin, int64_t end, bool out_bias, bool bias = true);
  // x: (..., dim) → (..., dim_out)
  core::Tensor operator()(const core::Tensor& x) const;
};

// The feed-forward half of an MM-DiT stream (Flux, SD3 and HunyuanVideo dual-stream blocks):
// x + gate_mlp · ff(layer_norm(x) · (1 + scale_mlp) + shift_mlp), the norm without affine.
// x: (B, S, D)   shift_mlp, scale_mlp, gate_mlp: (B, D) → (B, S, D)
core::Tensor modulated_feed_forward(const core::Tensor& x, const core::Tensor& shift_mlp,
                                    const core::Tensor& scale_mlp, const core::Tensor& gate_mlp,
                                    const FeedForward& ff, float eps);

// ---------------------------------------------------------------- adaLN modulations
// linear(silu(emb)) split in n equal chunks.   emb: (B, C) → n × (B, D) (views)
std::vector<core::Tensor> ada_modulation(const Linear& linear, const core::Tensor& emb, int n);

// AdaLayerNormZero (norm_type layer_norm, no embedding of its own): `linear` (6·D, D);
// layer_norm without affine, eps 1e-6.
struct AdaLayerNormZero {
  Linear linear;
  float eps = 1e-6f;
  struct Out {
    core::Tensor x;  // (B, S, D): norm(x)·(1 + scale_msa) + shift_msa
    core::Tensor gate_msa, shift_mlp, scale_mlp, gate_mlp;  // (B, D) each
  };
  void bind(const WeightScope& w, int64_t dim, bool bias = true);
  // x: (B, S, D)   emb: (B, D)
  Out operator()(const core::Tensor& x, const core::Tensor& emb) const;
};

// AdaLayerNormZeroSingle (Flux single blocks): `linear` (3·D, D).
struct AdaLayerNormZeroSingle {
  Linear linear;
  float eps = 1e-6f;
  struct Out {
    core::Tensor x;         // (B, S, D)
    core::Tensor gate_msa;  // (B, D)
  };
  void bind(const WeightScope& w, int64_t dim, bool bias = true);
  Out operator()(const core::Tensor& x, const core::Tensor& emb) const;
};

// SD35AdaLayerNormZeroX (SD3.5 blocks with a second attention): `linear` (9·D, D).
struct AdaLayerNormZeroX {
  Linear linear;
  float eps = 1e-6f;
  struct Out {
    core::Tensor x;                                         // (B, S, D)
    core::Tensor gate_msa, shift_mlp, scale_mlp, gate_mlp;  // (B, D)
    core::Tensor x2;                                        // (B, S, D) for attn2
    core::Tensor gate_msa2;                                 // (B, D)
  };
  void bind(const WeightScope& w, int64_t dim, bool bias = true);
  Out operator()(const core::Tensor& x, const core::Tensor& emb) const;
};

// AdaLayerNormContinuous (norm_type layer_norm): `linear` (2·D, cond_dim) giving (scale, shift)
// in that order; norm(x)·(1 + scale) + shift.
struct AdaLayerNormContinuous {
  Linear linear;
  LayerNorm norm;
  void bind(const WeightScope& w, int64_t dim, int64_t cond_dim, bool elementwise_affine, float eps,
            bool bias = true);
  // x: (B, S, D)   cond: (B, cond_dim) → (B, S, D)
  core::Tensor operator()(const core::Tensor& x, const core::Tensor& cond) const;
};

// ---------------------------------------------------------------- patches
// x: (B, C, H, W) → (B, (H/p)·(W/p), C·p·p), each row ordered (c, py, px) like a conv
// weight (D, C, p, p) flattened; patches row-major over (H/p, W/p).
core::Tensor patchify(const core::Tensor& x, int64_t p);
// x: (B, h·w, p·p·C) → (B, C, h·p, w·p)   (diffusers' einsum "nhwpqc->nchpwq")
core::Tensor unpatchify(const core::Tensor& x, int64_t h, int64_t w, int64_t p, int64_t channels);

}  // namespace paradit::models::common
