#include "parallel/lse_merge.h"

#include <cmath>
#include <limits>

namespace paradit::parallel {

using core::Tensor;

void merge_attention_partial(Tensor& acc_out, Tensor& acc_lse, const Tensor& part_out,
                             const Tensor& part_lse) {
  PARADIT_CHECK(acc_out.ndim() == 4 && acc_lse.ndim() == 3, "merge_attention_partial: out ",
                acc_out.str(), " and lse ", acc_lse.str(), " must be (B, S, H, Dv) and (B, H, S)");
  PARADIT_CHECK(part_out.shape() == acc_out.shape() && part_lse.shape() == acc_lse.shape(),
                "merge_attention_partial: partial ", part_out.str(), " / ", part_lse.str(),
                " does not match the accumulator ", acc_out.str(), " / ", acc_lse.str());
  PARADIT_CHECK(acc_out.is_contiguous() && acc_lse.is_contiguous(),
                "merge_attention_partial: accumulator must be contiguous");
  const int64_t B = acc_out.dim(0), S = acc_out.dim(1), H = acc_out.dim(2), Dv = acc_out.dim(3);
  PARADIT_CHECK(part_out.stride(3) == 1 && part_out.stride(2) == Dv && part_lse.stride(2) == 1,
                "merge_attention_partial: partial ", part_out.str(), " needs contiguous rows");
  const int64_t pob = part_out.stride(0), pos = part_out.stride(1);
  const int64_t plb = part_lse.stride(0), plh = part_lse.stride(1);
  float* ao = acc_out.data<float>();
  float* al = acc_lse.data<float>();
  const float* po = part_out.data<float>();
  const float* pl = part_lse.data<float>();
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();

#pragma omp parallel for collapse(2) if (B * S * H * Dv > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t h = 0; h < H; ++h) {
        float& l0 = al[(b * H + h) * S + s];
        const float l1 = pl[b * plb + h * plh + s];
        const float m = std::fmax(l0, l1);
        if (m == kNegInf) continue;  // no visible key in either part: keep out = 0, lse = −inf
        const float w0 = std::exp(l0 - m), w1 = std::exp(l1 - m);
        const float sum = w0 + w1;
        const float c0 = w0 / sum, c1 = w1 / sum;
        float* o = ao + ((b * S + s) * H + h) * Dv;
        const float* p = po + b * pob + s * pos + h * Dv;
        for (int64_t d = 0; d < Dv; ++d) o[d] = c0 * o[d] + c1 * p[d];
        l0 = m + std::log(sum);
      }
    }
  }
}

}  // namespace paradit::parallel

namespace paradit::parallel {

void ExactAttentionMerger::add(const Tensor& part_out, const Tensor& row_max,
                               const Tensor& row_sum) {
  PARADIT_CHECK(
      part_out.ndim() == 4 && row_max.ndim() == 3 && row_sum.shape() == row_max.shape() &&
          row_max.shape() == core::Shape({part_out.dim(0), part_out.dim(2), part_out.dim(1)}),
      "ExactAttentionMerger: partial ", part_out.str(), " / ", row_max.str(), " / ", row_sum.str(),
      " must be (B, S, H, Dv), (B, H, S), (B, H, S)");
  const int64_t B = part_out.dim(0), S = part_out.dim(1), H = part_out.dim(2), Dv = part_out.dim(3);
  PARADIT_CHECK(part_out.stride(3) == 1 && part_out.stride(2) == Dv && row_max.stride(2) == 1 &&
                    row_sum.stride(2) == 1,
                "ExactAttentionMerger: partial ", part_out.str(), " needs contiguous rows");
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  if (acc_.empty()) {
    shape_ = part_out.shape();
    acc_.assign(static_cast<size_t>(B * S * H * Dv), 0.0);
    ref_.assign(static_cast<size_t>(B * S * H), kNegInf);
    sum_.assign(static_cast<size_t>(B * S * H), 0.0);
  }
  PARADIT_CHECK(part_out.shape() == shape_, "ExactAttentionMerger: partial ", part_out.str(),
                " does not match the first partial's shape");
  const int64_t pob = part_out.stride(0), pos = part_out.stride(1);
  const int64_t mb = row_max.stride(0), mh = row_max.stride(1);
  const int64_t lb = row_sum.stride(0), lh = row_sum.stride(1);
  const float* po = part_out.data<float>();
  const float* pm = row_max.data<float>();
  const float* pl = row_sum.data<float>();

#pragma omp parallel for collapse(2) if (B * S * H * Dv > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t h = 0; h < H; ++h) {
        const float m = pm[b * mb + h * mh + s];
        if (m == -std::numeric_limits<float>::infinity()) continue;  // no visible key here
        const int64_t row = (b * S + s) * H + h;
        double* o = acc_.data() + row * Dv;
        // Factors are powers of two: the products are exact.
        if (m > ref_[row]) {  // rescale what is accumulated to the new reference
          if (ref_[row] != kNegInf) {
            const double c = std::ldexp(1.0, static_cast<int>(ref_[row] - m));
            for (int64_t d = 0; d < Dv; ++d) o[d] *= c;
            sum_[row] *= c;
          }
          ref_[row] = m;
        }
        const double c = std::ldexp(1.0, static_cast<int>(m - ref_[row]));
        const float* p = po + b * pob + s * pos + h * Dv;
        for (int64_t d = 0; d < Dv; ++d) o[d] += c * static_cast<double>(p[d]);
        sum_[row] += c * static_cast<double>(pl[b * lb + h * lh + s]);
      }
    }
  }
}

Tensor ExactAttentionMerger::out() const {
  Tensor out = Tensor::zeros(shape_);  // (B, S, H, Dv)
  float* dst = out.data<float>();
  const int64_t rows = static_cast<int64_t>(sum_.size());
  const int64_t Dv = rows > 0 ? static_cast<int64_t>(acc_.size()) / rows : 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (sum_[r] == 0.0) continue;
    for (int64_t d = 0; d < Dv; ++d)
      dst[r * Dv + d] = static_cast<float>(acc_[r * Dv + d] / sum_[r]);
  }
  return out;
}

}  // namespace paradit::parallel
