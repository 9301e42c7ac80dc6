#include "models/llm/prompt_embeds.h"

#include <algorithm>

#include "core/error.h"
#include "core/ops.h"

namespace paradit::models::llm {

using core::Tensor;

std::vector<int64_t> token_counts(const Tensor& mask) {
  PARADIT_CHECK(mask.ndim() == 2, "token_counts: mask must be (B, S), got ", mask.str());
  const std::vector<float> m = mask.to_vector();
  std::vector<int64_t> counts(static_cast<size_t>(mask.dim(0)), 0);
  for (int64_t b = 0; b < mask.dim(0); ++b) {
    for (int64_t s = 0; s < mask.dim(1); ++s) counts[b] += m[b * mask.dim(1) + s] != 0.0f ? 1 : 0;
  }
  return counts;
}

std::vector<Tensor> valid_rows(const Tensor& hidden, const std::vector<int64_t>& counts,
                               int64_t drop) {
  PARADIT_CHECK(hidden.ndim() == 3 && static_cast<size_t>(hidden.dim(0)) == counts.size(),
                "valid_rows: hidden ", hidden.str(), " does not match ", counts.size(), " samples");
  std::vector<Tensor> out;
  for (int64_t b = 0; b < hidden.dim(0); ++b) {
    const int64_t n = counts[static_cast<size_t>(b)];
    PARADIT_CHECK(n >= drop && n <= hidden.dim(1), "valid_rows: sample ", b, " has ", n,
                  " tokens, fewer than the ", drop, " template tokens dropped");
    out.push_back(hidden.select(0, b).slice(0, drop, n));  // (n - drop, D)
  }
  return out;
}

PaddedEmbeds pad_rows(const std::vector<Tensor>& rows, int64_t length) {
  PARADIT_CHECK(!rows.empty(), "pad_rows: no rows");
  const int64_t D = rows[0].dim(1);
  int64_t longest = 0;
  for (const Tensor& r : rows) longest = std::max(longest, r.dim(0));
  const int64_t L = length > 0 ? length : longest;
  std::vector<Tensor> samples;
  std::vector<int64_t> mask;
  for (const Tensor& r : rows) {
    const int64_t n = std::min(r.dim(0), L);
    std::vector<Tensor> parts{r.slice(0, 0, n)};
    if (n < L) parts.push_back(Tensor::zeros({L - n, D}, r.dtype(), r.device()));
    samples.push_back(core::concat(parts, 0).unsqueeze(0));  // (1, L, D)
    for (int64_t s = 0; s < L; ++s) mask.push_back(s < n ? 1 : 0);
  }
  const int64_t B = static_cast<int64_t>(rows.size());
  return {core::concat(samples, 0), Tensor::from_vector_i64(mask, {B, L})};
}

Tensor stack_features(const std::vector<Tensor>& hidden_states) {
  return core::concat(hidden_states, 2);  // (B, S, n·D)
}

}  // namespace paradit::models::llm
