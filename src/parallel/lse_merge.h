#pragma once
// Exact merge of attention partials computed over disjoint key blocks: with (out_i, lse_i) the
// result of attending to block i,
//   lse = log Σ_i exp(lse_i)        out = Σ_i exp(lse_i − lse) · out_i
// equals attention over the union of the blocks. A block with no visible key for a row has
// lse_i = −inf and contributes nothing; a row with no visible key anywhere keeps out = 0 and
// lse = −inf.

#include <vector>

#include "core/tensor.h"

namespace paradit::parallel {

// acc_out: (B, S, H, Dv) F32 contiguous   acc_lse: (B, H, S) F32 contiguous   (updated in place)
// part_out: (B, S, H, Dv) F32, rows may be a view with contiguous (H, Dv) inner block
// part_lse: (B, H, S) F32, may be a view with contiguous last dim.
void merge_attention_partial(core::Tensor& acc_out, core::Tensor& acc_lse,
                             const core::Tensor& part_out, const core::Tensor& part_lse);

// Exact merge of unnormalized partials (backend::cpu::AttentionArgs::row_max / row_sum): with
// block i giving o_i = Σ_j 2^(s_j − m_i) v_j, l_i = Σ_j 2^(s_j − m_i) and an integer m_i,
//   out = Σ_i 2^(m_i − m) o_i / Σ_i 2^(m_i − m) l_i        (m = max_i m_i)
// accumulated in double: the rescalings are exact powers of two and the sums carry 29 bits
// more than the f32 partials, so the one rounding left is the final f32 division. The kernel's
// probabilities do not depend on the reference they are taken against, so this differs from
// attention over all the keys at once only by how the f32 sums inside the blocks are grouped.
class ExactAttentionMerger {
 public:
  // out: (B, S, H, Dv) F32 with contiguous (H, Dv) rows; row_max, row_sum: (B, H, S) F32 with a
  // contiguous last dim. Every partial must have the first one's shape.
  void add(const core::Tensor& out, const core::Tensor& row_max, const core::Tensor& row_sum);
  // (B, S, H, Dv) F32: the merged output (0 for a row no partial saw a key for).
  core::Tensor out() const;

 private:
  core::Shape shape_;
  std::vector<double> acc_;  // (B, S, H, Dv): Σ 2^(m_i − ref_) · o_i
  std::vector<double> ref_;  // (B, S, H): max of the m_i so far (−inf before any visible key)
  std::vector<double> sum_;  // (B, S, H): Σ 2^(m_i − ref_) · l_i
};

}  // namespace paradit::parallel
