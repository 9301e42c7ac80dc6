#pragma once
// Exact merge of unnormalized attention partials computed over disjoint key blocks (ring
// attention), over core::attention_merge_add / attention_merge_result: with block i giving
// o_i = Σ_j 2^(s_j − m_i) v_j, l_i = Σ_j 2^(s_j − m_i) and an integer m_i,
//   out = Σ_i 2^(m_i − m) o_i / Σ_i 2^(m_i − m) l_i        (m = max_i m_i)
// accumulated in double: the rescalings are exact powers of two and the sums carry 29 bits
// more than the f32 partials, so the one rounding left is the final division. The kernel's
// probabilities do not depend on the reference they are taken against, so this differs from
// attention over all the keys at once only by how the f32 sums inside the blocks are grouped.
// A block with no visible key for a row contributes nothing; a row with no visible key
// anywhere gets out = 0.

#include "core/ops.h"

namespace paradit::parallel {

class ExactAttentionMerger {
 public:
  // out: (B, S, H, Dv) with contiguous (H, Dv) rows; row_max, row_sum: (B, H, S) F32 with a
  // contiguous last dim, on out's device. Every partial must have the first one's shape.
  void add(const core::Tensor& out, const core::Tensor& row_max, const core::Tensor& row_sum) {
    core::attention_merge_add(state_, out, row_max, row_sum);
  }
  // (B, S, H, Dv) in the partials' dtype: the merged output (0 for a row no partial saw a key
  // for).
  core::Tensor out() const { return core::attention_merge_result(state_); }

 private:
  core::AttentionMergeState state_;
};

}  // namespace paradit::parallel
