#pragma once
// Exact merge of attention partials computed over disjoint key blocks: with (out_i, lse_i) the
// result of attending to block i,
//   lse = log Σ_i exp(lse_i)        out = Σ_i exp(lse_i − lse) · out_i
// equals attention over the union of the blocks. A block with no visible key for a row has
// lse_i = −inf and contributes nothing; a row with no visible key anywhere keeps out = 0 and
// lse = −inf.

#include "core/tensor.h"

namespace paradit::parallel {

// acc_out: (B, S, H, Dv) F32 contiguous   acc_lse: (B, H, S) F32 contiguous   (updated in place)
// part_out: (B, S, H, Dv) F32, rows may be a view with contiguous (H, Dv) inner block
// part_lse: (B, H, S) F32, may be a view with contiguous last dim.
void merge_attention_partial(core::Tensor& acc_out, core::Tensor& acc_lse,
                             const core::Tensor& part_out, const core::Tensor& part_lse);

}  // namespace paradit::parallel
