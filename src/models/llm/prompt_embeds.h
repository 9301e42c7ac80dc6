#pragma once
// What the pipelines make of a decoder LLM's hidden states (diffusers 0.42):
//   - Qwen-Image: the last hidden state at the tokens of each prompt, less a fixed template
//     prefix, zero-padded to the longest (with a mask);
//   - Z-Image: the second-to-last hidden state at the tokens of each prompt (a list);
//   - FLUX.2 / klein: several hidden states side by side on the feature axis;
//   - HunyuanVideo: a hidden state from a fixed position on, with the mask cut the same way.
// Padding is on the right everywhere, so "the tokens of a prompt" are its first n positions.

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace paradit::models::llm {

// Per sample b: the number of nonzero entries of mask (B, S).
std::vector<int64_t> token_counts(const core::Tensor& mask);

// hidden (B, S, D), counts per sample → per sample the rows [drop, counts[b]) as (n_b, D).
std::vector<core::Tensor> valid_rows(const core::Tensor& hidden, const std::vector<int64_t>& counts,
                                     int64_t drop);

struct PaddedEmbeds {
  core::Tensor embeds;  // (B, max_n, D), zero rows past each sample's length
  core::Tensor mask;    // (B, max_n) I64, 1 on real rows
};
// Stacks per-sample (n_b, D) rows, zero-padded to the longest (or to `length` when > 0, cutting
// longer ones).
PaddedEmbeds pad_rows(const std::vector<core::Tensor>& rows, int64_t length = 0);

// [h_0 | h_1 | …] on the last axis: (B, S, D) each → (B, S, n·D) (FLUX.2's stacking rule).
core::Tensor stack_features(const std::vector<core::Tensor>& hidden_states);

}  // namespace paradit::models::llm
