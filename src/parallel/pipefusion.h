#pragma once
// PipeFusion's pieces that are not tied to a model or a pipeline: the patches an image's token
// grid is cut into, the stale K/V every attention layer of a stage keeps, and the split of the
// layers into stages.
//
// PipeFusion (xDiT) cuts the transformer's layers into P stages (one per rank of the pp group)
// and the image's token grid along its height into M patches of whole token rows. After a few
// synchronous warm-up steps over the whole image, each step streams the patches through the
// stages; a layer's attention uses fresh K/V for the patch it computes and the K/V each other
// patch left there most recently (this step for the patches before it, the previous step for
// those after it). The driver is pipelines/pipefusion.cpp; the attention call that reads and
// writes the buffers is parallel::joint_attention (joint.h).
//
// Under sequence parallelism inside a stage, a pass's tokens (one patch, or the whole image) are
// sharded over the ring × ulysses ranks as in an ordinary forward; the attention all-gathers the
// pass's K/V over them, so every rank's buffer holds the whole image's K/V in token order and
// its queries attend locally. The keys are then in the single-process order, and a run whose
// steps are all warm-up steps equals one process. (xDiT keeps only a rank's heads after the
// Ulysses all-to-all; this keeps every head, trading memory and K/V traffic for simplicity.)

#include <cstdint>
#include <map>
#include <vector>

#include "core/tensor.h"
#include "parallel/sequence.h"

namespace paradit::parallel {

// The image's token grid (rows × cols tokens, row-major) cut along its height into `count`
// patches of whole token rows; the first rows % count patches get one row more.
struct PatchGrid {
  int64_t rows = 0;
  int64_t cols = 0;
  int count = 1;

  // Error (naming --num_pipeline_patch) when a patch would hold no token row.
  PatchGrid(int64_t rows, int64_t cols, int count);
  PatchGrid() = default;

  int64_t row_begin(int m) const;  // m in [0, count]; row_begin(count) = rows
  int64_t patch_rows(int m) const { return row_begin(m + 1) - row_begin(m); }
  int64_t token_begin(int m) const { return row_begin(m) * cols; }
  int64_t patch_tokens(int m) const { return patch_rows(m) * cols; }
  int64_t tokens() const { return rows * cols; }
};

// One attention's K/V on one rank: (B, S_txt + S_img, H, D) each, the text rows and the whole
// image's rows in the order of an ordinary forward (Flux: text first; SD3: image first).
// Allocated by the first pass that writes it (a warm-up pass writes every row).
struct KVBuffer {
  core::Tensor k, v;
};

// The buffers of one layer: slot 0 for its joint / self-attention, slot 1 for SD3.5's second,
// image-only attention.
struct LayerKV {
  KVBuffer slot[2];
};

// The stale K/V of every layer a stage runs, by global layer index.
class StaleKV {
 public:
  LayerKV& layer(int64_t index) { return layers_[index]; }
  // Bytes held by every buffer (for reports).
  size_t nbytes() const;

 private:
  std::map<int64_t, LayerKV> layers_;
};

// What a pass of the forward computes under PipeFusion: patch `patch` of `grid`, or every patch
// at once (patch = -1: a synchronous warm-up pass), reading and writing `kv`.
struct PassPlan {
  const PatchGrid* grid = nullptr;
  int patch = -1;
  StaleKV* kv = nullptr;
};

// Layer ranges [begin, end) of `stages` stages over layers whose relative costs are `costs`
// (e.g. their parameter counts, which the FLOPs per token follow): contiguous, each non-empty,
// cut where the running cost crosses k/stages of the total. More stages than layers → Error
// naming --pipefusion_parallel_degree.
std::vector<std::pair<int64_t, int64_t>> balance_stages(const std::vector<double>& costs,
                                                        int stages);

}  // namespace paradit::parallel
