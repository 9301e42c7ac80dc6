#pragma once
// Per-rank memory of a generation under a parallel layout, estimated before anything is
// loaded: from the safetensors headers (tensor shapes only), the configs and the request's
// sizes. What `paradit generate --dry-run` and `paradit info` print, so that a user can pick a
// layout before launching.
//
// Per rank (world order, coordinates as comm::ProcessMesh orders them):
//   weights      the transformer's parameters this rank binds, each in the dtype it is held in
//                (matrices: the placement's dtype; vectors: F32), from the header shapes; under
//                PipeFusion only the stage's layers (parallel::balance_stages over the layers'
//                parameter counts, as the pipeline cuts them) plus the embedding/output layers;
//                under tensor parallelism 1/tp of the attention q/k/v/out and MLP matrices.
//   activations  one transformer block's live tensors: b · n · (2·D + (4·D + F)/tp) elements
//                (q, k, v, the attention output and the MLP hidden split by tp), with b the
//                rank's samples (the CFG pair doubled, split by cfg × dp), n its rows (image
//                tokens padded to the sequence degree and cut into blocks, text tokens cut the
//                same way when they divide, else whole), D the hidden size, F the MLP width.
//   kv           K/V held beyond one process's: Ulysses' gathered k, v for the rank's heads
//                (2 · b · U·n · h·Dh, h the rank's share of heads/tp), the ring's two receive
//                sets (4 · b · U·n · h·Dh), and PipeFusion's stale K/V of every layer of the stage (2 · b · (S + T) · D each),
//                in the activation dtype.
// The text encoders and the VAE run before and after the denoising loop, whole on every rank
// (other_weights).

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/diffusers.h"
#include "parallel/config.h"

namespace paradit::pipelines {

struct RankMemory {
  int rank = 0;
  int stage = 0;      // PipeFusion stage (pp coordinate)
  int64_t heads = 0;  // attention heads this rank computes
  uint64_t weights = 0, activations = 0, kv = 0;
  uint64_t denoise_total() const { return weights + activations + kv; }
};

struct MemoryEstimate {
  std::string layout;           // "dp=1 × cfg=2 × ..."
  int64_t batch = 0;            // transformer batch (prompts, ×2 with classifier-free guidance)
  int64_t image_tokens = 0;     // per sample
  int64_t text_tokens = 0;      // per sample, joint with the image tokens (0: none)
  int64_t hidden = 0;           // D
  int64_t heads = 0;            // H
  int64_t mlp = 0;              // F
  uint64_t transformer_bytes = 0;  // every transformer weight as held (one process)
  uint64_t other_weights = 0;      // text encoders + VAE as held (every rank)
  std::vector<RankMemory> ranks;
};

struct EstimateInputs {
  int64_t batch = 1;         // transformer batch
  int64_t image_tokens = 0;  // per sample
  int64_t text_tokens = 0;   // per sample
  core::Placement place;
};

// The estimate for a pipeline or transformer folder's transformer (`transformer_dir`, its
// config.json and weight headers) and, when non-empty, the other components' weight folders.
MemoryEstimate estimate_memory(const std::filesystem::path& transformer_dir,
                               const std::vector<std::filesystem::path>& other_dirs,
                               const parallel::ParallelConfig& layout,
                               const EstimateInputs& inputs);

// Image tokens per sample that the transformer of `config` makes of latents of `latent_shape`:
// packed (B, S, C) → S; (B, C, h, w) → (h/p)·(w/p); (B, C, f, h, w) → (f/pt)·(h/ph)·(w/pw)
// (patch_size as an int or [pt, ph, pw], patch_size_t; Z-Image's all_patch_size).
int64_t transformer_tokens(const core::Shape& latent_shape, const io::Config& config);

// The table printed by --dry-run and info (one line per rank, sizes in MiB).
std::string format_memory_estimate(const MemoryEstimate& e);

}  // namespace paradit::pipelines
