// The unnormalized attention partials of the CPU kernel (AttentionArgs::row_max / row_sum) and
// their exact merge (parallel::ExactAttentionMerger), which ring attention uses: against a
// double-precision softmax(QKᵀ)V with plain loops and against core::attention over all keys.
// Local only (no communication): every rank of the mpirun jobs runs the same checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend/cpu/attention.h"
#include "core/ops.h"
#include "parallel/lse_merge.h"
#include "support/random.h"

namespace paradit {
namespace {

using core::Tensor;

// Values uniform in (−amplitude, amplitude).
Tensor random_values(const core::Shape& shape, uint64_t seed, float amplitude) {
  return testing::random_tensor(shape, seed, -amplitude, amplitude);
}

struct Partial {
  Tensor out, row_max, row_sum;
};

// Keys [k0, k1) of contiguous q (B, Sq, H, D), k, v (B, Sk, H, D) in the unnormalized form;
// keep: (B, Sk) bytes.
Partial block(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<uint8_t>& keep,
              int64_t k0, int64_t k1) {
  const int64_t B = q.dim(0), Sq = q.dim(1), H = q.dim(2), D = q.dim(3), Sk = k.dim(1);
  std::vector<uint8_t> keep_block;
  for (int64_t b = 0; b < B; ++b) {
    keep_block.insert(keep_block.end(), keep.begin() + b * Sk + k0, keep.begin() + b * Sk + k1);
  }
  backend::cpu::AttentionArgs a;
  a.batch = B;
  a.seq_q = Sq;
  a.seq_k = k1 - k0;
  a.heads = H;
  a.head_dim = D;
  a.head_dim_v = D;
  a.q = q.data<float>();
  a.q_stride_b = Sq * H * D;
  a.q_stride_s = H * D;
  a.q_stride_h = D;
  a.k = k.data<float>() + k0 * H * D;
  a.v = v.data<float>() + k0 * H * D;
  a.k_stride_b = a.v_stride_b = Sk * H * D;
  a.k_stride_s = a.v_stride_s = H * D;
  a.k_stride_h = a.v_stride_h = D;
  a.key_keep = keep_block.data();
  a.scale = 1.0f / std::sqrt(static_cast<float>(D));
  Partial p{Tensor::empty({B, Sq, H, D}), Tensor::empty({B, H, Sq}), Tensor::empty({B, H, Sq})};
  a.out = p.out.data<float>();
  a.row_max = p.row_max.data<float>();
  a.row_sum = p.row_sum.data<float>();
  backend::cpu::attention_f32(a);
  return p;
}

double rel_l2(const Tensor& a, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num += (a.data<float>()[i] - ref[i]) * (a.data<float>()[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

TEST(ExactAttentionMerger, KeyBlocksInAnyOrderMatchAttentionOverAllKeys) {
  const int64_t B = 2, Sq = 37, H = 3, D = 24, Sk = 150;  // three key panels of the kernel
  const Tensor q = random_values({B, Sq, H, D}, 1, 3.0f);
  const Tensor k = random_values({B, Sk, H, D}, 2, 3.0f);
  const Tensor v = random_values({B, Sk, H, D}, 3, 1.0f);
  // Batch 1 drops every third key and all of [64, 128), so one block has no key for it.
  std::vector<uint8_t> keep(B * Sk, 1);
  std::vector<float> mask(B * Sk, 1.0f);
  for (int64_t j = 0; j < Sk; ++j) {
    if (j % 3 == 0 || (j >= 64 && j < 128)) keep[Sk + j] = 0, mask[Sk + j] = 0.0f;
  }

  // Reference: softmax in double over the visible keys, plain loops.
  std::vector<double> ref(B * Sq * H * D, 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < Sq; ++i) {
      for (int64_t h = 0; h < H; ++h) {
        std::vector<double> s(Sk, -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < Sk; ++j) {
          if (!keep[b * Sk + j]) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) {
            dot += double(q.data<float>()[((b * Sq + i) * H + h) * D + d]) *
                   k.data<float>()[((b * Sk + j) * H + h) * D + d];
          }
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double l = 0;
        for (int64_t j = 0; j < Sk; ++j) l += std::exp(s[j] - mx);
        for (int64_t j = 0; j < Sk; ++j) {
          const double p = std::exp(s[j] - mx) / l;
          for (int64_t d = 0; d < D; ++d) {
            ref[((b * Sq + i) * H + h) * D + d] +=
                p * v.data<float>()[((b * Sk + j) * H + h) * D + d];
          }
        }
      }
    }
  }
  core::AttentionOptions opt;
  opt.key_mask = Tensor::from_vector(mask, {B, Sk});
  const Tensor whole = core::attention(q, k, v, opt).out;  // (B, Sq, H, D)
  EXPECT_LE(rel_l2(whole, ref), 1e-6);

  // One block holding every key merges to core::attention's bits (the same one rounding).
  {
    parallel::ExactAttentionMerger m;
    const Partial p = block(q, k, v, keep, 0, Sk);
    m.add(p.out, p.row_max, p.row_sum);
    const Tensor out = m.out();
    int64_t differ = 0;
    for (int64_t i = 0; i < out.numel(); ++i)
      differ += out.data<float>()[i] != whole.data<float>()[i];
    EXPECT_EQ(differ, 0);
  }
  // Blocks along the kernel's panels and across them, merged in a scrambled order.
  for (const std::vector<int64_t>& cuts :
       {std::vector<int64_t>{0, 64, 128, 150}, std::vector<int64_t>{0, 50, 51, 150}}) {
    parallel::ExactAttentionMerger m;
    for (size_t blk : {size_t{2}, size_t{0}, size_t{1}}) {
      const Partial p = block(q, k, v, keep, cuts[blk], cuts[blk + 1]);
      // Reference maxima are integers; a row with no visible key has max -inf and sum 0.
      for (int64_t i = 0; i < p.row_max.numel(); ++i) {
        const float mx = p.row_max.data<float>()[i], l = p.row_sum.data<float>()[i];
        if (l == 0.0f) {
          EXPECT_EQ(mx, -std::numeric_limits<float>::infinity());
        } else {
          EXPECT_EQ(mx, std::ceil(mx));
          EXPECT_GE(l, 0.5f);  // the largest term is 2^(s_max − ceil(s_max)) ≥ ½
        }
      }
      m.add(p.out, p.row_max, p.row_sum);
    }
    const Tensor out = m.out();
    EXPECT_LE(rel_l2(out, ref), 1e-6) << cuts[1];
    double worst = 0;
    for (int64_t i = 0; i < out.numel(); ++i) {
      worst = std::max(worst, std::abs(double(out.data<float>()[i]) - whole.data<float>()[i]));
    }
    EXPECT_LE(worst, 1e-6) << cuts[1];
  }
}

TEST(ExactAttentionMerger, RowWithoutVisibleKeysIsZero) {
  parallel::ExactAttentionMerger m;
  const float inf = std::numeric_limits<float>::infinity();
  m.add(Tensor::full({1, 1, 1, 2}, 0.0f), Tensor::full({1, 1, 1}, -inf), Tensor::zeros({1, 1, 1}));
  m.add(Tensor::full({1, 1, 1, 2}, 0.0f), Tensor::full({1, 1, 1}, -inf), Tensor::zeros({1, 1, 1}));
  const Tensor out = m.out();
  EXPECT_EQ(out.item_at({0, 0, 0, 0}), 0.0);
  EXPECT_EQ(out.item_at({0, 0, 0, 1}), 0.0);
}

}  // namespace
}  // namespace paradit
