#pragma once
// The denoising transformer interface every family implements, and the factory that picks the
// family from config.json's `_class_name`.

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/diffusers.h"
#include "models/common/weights.h"
#include "parallel/config.h"
#include "parallel/joint.h"
#include "parallel/pipefusion.h"
#include "parallel/sequence.h"
#include "parallel/tensor_parallel.h"

namespace paradit::models {

// Named forward inputs, as diffusers names the forward arguments: hidden_states,
// encoder_hidden_states, pooled_projections, timestep, guidance, img_ids, txt_ids,
// encoder_attention_mask, class_labels, added_cond_kwargs.resolution,
// added_cond_kwargs.aspect_ratio.
using NamedTensors = std::map<std::string, core::Tensor>;

// One pass of a forward cut into parts (begin_pass → run_layers → end_pass), so that PipeFusion
// can run a range of the layers on each rank over one patch of the image. A family keeps its
// per-pass conditioning (timestep embedding, rotary tables, projected text …) in a subclass.
struct TransformerPass {
  virtual ~TransformerPass() = default;
  parallel::TokenLayout tokens;
  // The hidden states entering the next layer, this rank's rows (Flux/SD3: text stream, image
  // stream; Flux's single-stream part and PixArt: one). What a pipeline stage sends on.
  std::vector<core::Tensor> streams;
};

// TeaCache's default threshold where the distance is not rescaled (no published polynomial):
// vLLM-Omni's TeaCache default; the shapes model still draws its captions with it.
inline constexpr double kTeaCacheIdentityThreshold = 0.2;

// What TeaCache compares from step to step (Transformer::teacache_probe).
struct CacheProbe {
  core::Tensor value;
  // true: this rank's image-token rows of the pass, (B, local_image, D) in tokens' layout (split
  // over the sequence group, padded rows last); false: rows per sample or per timestep, which
  // every rank of the sequence group holds whole.
  bool per_token = true;
};

class Transformer {
 public:
  virtual ~Transformer() = default;
  virtual std::string class_name() const = 0;
  // One forward; returns `sample` in diffusers' layout. Missing or mis-shaped inputs → Error
  // naming the input and the expected shape.
  virtual core::Tensor forward(const NamedTensors& inputs) const = 0;
  // The same forward sequence-parallel over `sp`'s groups: every rank of the context passes the
  // same inputs and gets the whole `sample` back, equal to forward(inputs) up to floating-point
  // reassociation; inside, each rank computes only its block of the image tokens (see
  // parallel/joint.h). Null or degree-1 `sp` is forward(inputs). The default (families not yet
  // sharded) gives an Error "not supported yet" for degree > 1.
  virtual core::Tensor forward(const NamedTensors& inputs,
                               const parallel::SequenceContext* sp) const;

  // ---- PipeFusion. forward(inputs, sp) is begin_pass(inputs, sp, nullptr, true), then
  // run_layers over every layer, then end_pass. Families without PipeFusion keep the defaults
  // (num_layers() 0; the others fail naming the class).

  // Layers a pipeline stage can take, in order (Flux: double-stream blocks, then single-stream).
  virtual int64_t num_layers() const { return 0; }
  // The image's token grid (rows, cols) for these inputs.
  virtual std::pair<int64_t, int64_t> token_grid(const NamedTensors& inputs) const;
  // Checks the inputs, plans the tokens (with `plan`: one patch or every patch, and the stale
  // K/V), computes the per-pass conditioning, and with `embed` the streams entering layer 0.
  virtual std::unique_ptr<TransformerPass> begin_pass(const NamedTensors& inputs,
                                                      const parallel::SequenceContext* sp,
                                                      const parallel::PassPlan* plan,
                                                      bool embed) const;
  // The shapes of the streams entering layer `layer` (what the previous stage sends).
  virtual std::vector<core::Shape> stream_shapes(const TransformerPass& pass, int64_t layer) const;
  // Layers [begin, end) on pass.streams.
  virtual void run_layers(TransformerPass& pass, int64_t begin, int64_t end) const;
  // The output layers after the last layer: the pass's rows of `sample` (PixArt/SD3: (B, C,
  // patch rows · p, W); Flux: (B, patch tokens, C)). Collective under sequence parallelism.
  virtual core::Tensor end_pass(TransformerPass& pass) const;

  // ---- step caches (models/step_cache.h): a forward is begin_pass → run_layers → end_pass for
  // every family (the video families and DiT too, without a PassPlan), and the caches work
  // between those calls. Where the streams merge (Flux's single-stream layers), the merged
  // stream is the concatenation of the streams in order along dim 1.

  // This rank's image-token rows of pass.streams as they stand, (B, local_image, D): the second
  // of two streams {text, image}, else the image rows of the one stream (in tokens' order).
  virtual core::Tensor image_hidden(const TransformerPass& pass) const;
  // TeaCache's probe for a pass whose layers have not run yet: the timestep-modulated input of
  // the first layer as the TeaCache authors take it for the family (Flux: transformer_blocks[0]
  // .norm1 of the image tokens; Wan: the timestep embedding). Needs layer 0's weights.
  virtual CacheProbe teacache_probe(const TransformerPass& pass) const;
  // The TeaCache authors' rescaling polynomial for this model, highest power first (numpy
  // poly1d order); empty where they published none (the distance is then used as it is).
  virtual std::vector<double> teacache_coefficients() const { return {}; }
  // The TeaCache threshold when none is given, on the scale of the rescaled distance: the
  // published setting that goes with the polynomial, else kTeaCacheIdentityThreshold (0.2).
  virtual double teacache_default_threshold() const { return kTeaCacheIdentityThreshold; }
};

// One forward over the whole parallel layout of `runtime`: this rank's cfg half and dp share of
// the batch (parallel/batch.h), sequence parallel inside; the whole `sample` comes back on every
// rank. The batch (hidden_states' leading dim) must divide by cfg × dp. Collective over the
// runtime's mesh. split_dp false: the dp groups already hold different samples (a pipeline that
// gives each group its own prompts); only the cfg halves are split.
core::Tensor parallel_forward(const Transformer& model, const NamedTensors& inputs,
                              const parallel::ParallelRuntime& runtime, bool split_dp = true);

// Builds the family named by `config.class_name()` and binds its weights from `weights`.
// Error naming the class when it is not supported.
// With a tensor-parallel group of degree > 1 (parallel/tensor_parallel.h) the model binds only
// this rank's share of each block's split matrices and its forward all-reduces over the group,
// which every rank of it must call together; families without it yet → one-line Error naming
// the class and the families that have it.
std::unique_ptr<Transformer> make_transformer(const io::Config& config,
                                              const common::WeightProvider& weights,
                                              const core::Placement& place = core::DType::F32,
                                              const parallel::TensorParallel& tp = {});

// Loads config.json + weights from a transformer component folder (or a pipeline folder: its
// transformer/). The returned model keeps the checkpoint mapping alive.
std::unique_ptr<Transformer> load_transformer(const std::filesystem::path& dir,
                                              const core::Placement& place = core::DType::F32,
                                              const parallel::TensorParallel& tp = {});

// ---- PipeFusion stages
// The weight-name prefix of each layer a stage can take ("transformer_blocks.3", Flux's
// "single_transformer_blocks.0" …), from config.json alone; empty for families without
// PipeFusion.
std::vector<std::string> pipeline_layer_prefixes(const io::Config& config);

// A transformer that holds only the weights of layers [begin, end) besides the embedding and
// output layers (the other layers' tensors are shape-only placeholders, never read).
struct StageModel {
  std::unique_ptr<Transformer> model;
  std::vector<double> layer_costs;  // every layer's parameter count (from the file header)
  size_t weight_bytes = 0;          // bytes of the weights this stage bound
};
// `layers`: the range, or a function of the costs that picks it (balance_stages).
StageModel load_transformer_stage(
    const std::filesystem::path& dir, const core::Placement& place,
    const std::function<std::pair<int64_t, int64_t>(const std::vector<double>&)>& layers);

}  // namespace paradit::models
