#pragma once
// The denoising transformer interface every family implements, and the factory that picks the
// family from config.json's `_class_name`.

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "io/diffusers.h"
#include "models/common/weights.h"
#include "parallel/config.h"
#include "parallel/sequence.h"

namespace paradit::models {

// Named forward inputs, as diffusers names the forward arguments: hidden_states,
// encoder_hidden_states, pooled_projections, timestep, guidance, img_ids, txt_ids,
// encoder_attention_mask, class_labels, added_cond_kwargs.resolution,
// added_cond_kwargs.aspect_ratio.
using NamedTensors = std::map<std::string, core::Tensor>;

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
std::unique_ptr<Transformer> make_transformer(const io::Config& config,
                                              const common::WeightProvider& weights,
                                              core::DType matrix_dtype = core::DType::F32);

// Loads config.json + weights from a transformer component folder (or a pipeline folder: its
// transformer/). The returned model keeps the checkpoint mapping alive.
std::unique_ptr<Transformer> load_transformer(const std::filesystem::path& dir,
                                              core::DType matrix_dtype = core::DType::F32);

}  // namespace paradit::models
