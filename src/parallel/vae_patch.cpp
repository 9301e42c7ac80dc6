// Patch-parallel VAE: halo exchange for convolutions, group-wide GroupNorm statistics and
// gathered keys/values for the mid-block attention (see vae_patch.h).
#include "parallel/vae_patch.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "core/ops.h"

namespace paradit::parallel {

using core::Tensor;

namespace {

// Tags of the two halo directions, so that a rank's messages to its upper and lower
// neighbours never match each other's receives when the group has two ranks.
constexpr int kTagToAbove = 7301;  // first rows of a band, sent to the band above
constexpr int kTagToBelow = 7302;  // last rows of a band, sent to the band below

// Adds the wall time of its scope to *slot (when slot is non-null).
class ScopedTimer {
 public:
  explicit ScopedTimer(double* slot) : slot_(slot), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() {
    if (slot_)
      *slot_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  double* slot_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

std::vector<RowBand> split_rows(int64_t rows, int parts) {
  PARADIT_CHECK(parts >= 1, "split_rows: ", parts, " parts (expected at least 1)");
  PARADIT_CHECK(rows >= parts, "patch-parallel VAE: ", rows, " rows cannot be split across ", parts,
                " ranks (each rank needs at least one latent row)");
  std::vector<RowBand> bands(static_cast<size_t>(parts));
  const int64_t base = rows / parts, extra = rows % parts;
  int64_t begin = 0;
  for (int i = 0; i < parts; ++i) {
    const int64_t n = base + (i < extra ? 1 : 0);
    bands[i] = {begin, begin + n};
    begin += n;
  }
  return bands;
}

// ---------------------------------------------------------------- convolution

Tensor RowSplitOps::conv2d(const Tensor& x, const Tensor& w, const Tensor& bias,
                           const core::Conv2dOptions& opt) const {
  const int P = group_.size(), r = group_.rank();
  if (P == 1) {
    ScopedTimer t(times_ ? &times_->conv : nullptr);
    return core::conv2d(x, w, bias, opt);
  }
  PARADIT_CHECK(x.ndim() == 4 && w.ndim() == 4, "RowSplitOps conv2d: x ", x.str(), " and w ",
                w.str(), " must be (N, C, H, W) and (O, C, kh, kw)");
  const int64_t kh = w.dim(2), s = opt.stride_h, rows = x.dim(2);
  // Output row i of a band starting at a multiple of s reads input rows i·s − pad_top …
  // i·s − pad_top + kh − 1: pad_top rows above the band and kh − s − pad_top below it.
  const int64_t top = opt.pad_top, bottom = kh - s - opt.pad_top;
  PARADIT_CHECK(bottom >= 0, "RowSplitOps conv2d: kernel height ", kh, " with stride ", s,
                " and pad_top ", opt.pad_top, " cannot be split by rows");
  if (s == 1) {
    PARADIT_CHECK(opt.pad_top == opt.pad_bottom, "RowSplitOps conv2d: stride-1 conv with pad_top ",
                  opt.pad_top, " != pad_bottom ", opt.pad_bottom, " cannot be split by rows");
  } else {
    PARADIT_CHECK(r == P - 1 || rows % s == 0, "RowSplitOps conv2d: band of ", rows,
                  " rows on rank ", r, " is not a multiple of the stride ", s);
  }
  if (top == 0 && bottom == 0) {  // 1×1 (row-local)
    ScopedTimer t(times_ ? &times_->conv : nullptr);
    return core::conv2d(x, w, bias, opt);
  }
  if (times_) ++times_->convs;
  // A band thinner than a halo would need rows from beyond its neighbour.
  const bool sends_up = r > 0 && bottom > 0, sends_down = r < P - 1 && top > 0;
  PARADIT_CHECK((!sends_up || rows >= bottom) && (!sends_down || rows >= top),
                "RowSplitOps conv2d: band of ", rows, " rows on rank ", r,
                " is thinner than the halo (", top, " above, ", bottom, " below)");
  // Output rows that need a halo: `top` at the band's top unless it is the image's, `bottom`
  // at its bottom likewise. Each border conv reads 2·halo rows of the band.
  const int64_t need_top = r > 0 ? top : 0, need_bottom = r < P - 1 ? bottom : 0;
  if (s != 1 || rows < need_top + need_bottom + 1 || rows < 2 * std::max(top, bottom)) {
    return conv2d_exchange_first(x, w, bias, opt, top, bottom);
  }

  const int64_t N = x.dim(0), C = x.dim(1), W = x.dim(3);
  std::vector<comm::Request> requests;
  Tensor above, below;  // halo rows from the neighbour bands
  if (need_top > 0) {
    above = Tensor::empty({N, C, top, W}, x.dtype(), x.device());  // (N, C, top, W)
    requests.push_back(group_.irecv(above, r - 1, kTagToBelow));
  }
  if (need_bottom > 0) {
    below = Tensor::empty({N, C, bottom, W}, x.dtype(), x.device());  // (N, C, bottom, W)
    requests.push_back(group_.irecv(below, r + 1, kTagToAbove));
  }
  if (sends_up) requests.push_back(group_.isend(x.slice(2, 0, bottom), r - 1, kTagToAbove));
  if (sends_down)
    requests.push_back(group_.isend(x.slice(2, rows - top, rows), r + 1, kTagToBelow));

  std::vector<Tensor> parts;  // output rows, top to bottom
  Tensor interior;
  {
    // Output rows [need_top, rows − need_bottom) from the band alone (the image border keeps
    // its zero padding) while the halos travel.
    ScopedTimer t(times_ ? &times_->conv : nullptr);
    core::Conv2dOptions local = opt;
    local.pad_top = need_top > 0 ? 0 : opt.pad_top;
    local.pad_bottom = need_bottom > 0 ? 0 : opt.pad_bottom;
    interior = core::conv2d(x, w, bias, local);  // (N, O, rows − need_top − need_bottom, W')
  }
  {
    ScopedTimer t(times_ ? &times_->halo_wait : nullptr);
    comm::wait_all(requests);
  }
  ScopedTimer t(times_ ? &times_->conv : nullptr);
  core::Conv2dOptions border = opt;
  border.pad_top = 0;
  border.pad_bottom = 0;
  if (need_top > 0) {
    const Tensor ext =
        core::concat({above, x.slice(2, 0, top + bottom)}, 2);  // (N, C, 2·top + bottom, W)
    parts.push_back(core::conv2d(ext, w, bias, border));        // (N, O, top, W')
  }
  parts.push_back(interior);
  if (need_bottom > 0) {
    const Tensor ext = core::concat({x.slice(2, rows - top - bottom, rows), below},
                                    2);                   // (N, C, top + 2·bottom, W)
    parts.push_back(core::conv2d(ext, w, bias, border));  // (N, O, bottom, W')
  }
  return parts.size() == 1 ? interior : core::concat(parts, 2);  // (N, O, rows, W')
}

Tensor RowSplitOps::conv2d_exchange_first(const Tensor& x, const Tensor& w, const Tensor& bias,
                                          const core::Conv2dOptions& opt, int64_t top,
                                          int64_t bottom) const {
  const int P = group_.size(), r = group_.rank();
  const int64_t rows = x.dim(2);
  const bool sends_up = r > 0 && bottom > 0, sends_down = r < P - 1 && top > 0;
  const int64_t N = x.dim(0), C = x.dim(1), W = x.dim(3);
  std::vector<comm::Request> requests;
  Tensor above, below;  // halo rows from the neighbour bands
  if (r > 0 && top > 0) {
    above = Tensor::empty({N, C, top, W}, x.dtype(), x.device());  // (N, C, top, W)
    requests.push_back(group_.irecv(above, r - 1, kTagToBelow));
  }
  if (r < P - 1 && bottom > 0) {
    below = Tensor::empty({N, C, bottom, W}, x.dtype(), x.device());  // (N, C, bottom, W)
    requests.push_back(group_.irecv(below, r + 1, kTagToAbove));
  }
  if (sends_up) requests.push_back(group_.isend(x.slice(2, 0, bottom), r - 1, kTagToAbove));
  if (sends_down)
    requests.push_back(group_.isend(x.slice(2, rows - top, rows), r + 1, kTagToBelow));
  {
    ScopedTimer t(times_ ? &times_->halo_wait : nullptr);
    comm::wait_all(requests);
  }

  ScopedTimer t(times_ ? &times_->conv : nullptr);
  std::vector<Tensor> parts;
  if (above.defined()) parts.push_back(above);
  parts.push_back(x);
  if (below.defined()) parts.push_back(below);
  const Tensor ext = parts.size() == 1 ? x : core::concat(parts, 2);  // (N, C, top+h+bottom, W)
  // Zero padding stays only at the image border; inside, the halo rows replace it.
  core::Conv2dOptions local = opt;
  local.pad_top = r == 0 ? opt.pad_top : 0;
  local.pad_bottom = r == P - 1 ? opt.pad_bottom : 0;
  return core::conv2d(ext, w, bias, local);  // (N, O, h/s, W')
}

// ---------------------------------------------------------------- group norm

Tensor RowSplitOps::group_norm(const Tensor& x, int groups, const Tensor& weight,
                               const Tensor& bias, float eps) const {
  ScopedTimer timer(times_ ? &times_->norm : nullptr);
  if (times_) ++times_->norms;
  if (group_.size() == 1) return core::group_norm(x, groups, weight, bias, eps);
  PARADIT_CHECK(x.defined() && x.ndim() >= 2, "RowSplitOps group_norm: x ",
                x.defined() ? x.str() : std::string("undefined"), " must be (N, C, *spatial)");
  const int64_t N = x.dim(0), C = x.dim(1);
  PARADIT_CHECK(groups > 0 && C % groups == 0, "RowSplitOps group_norm: ", C, " channels of x ",
                x.str(), " do not split into ", groups, " groups");
  const int64_t G = N * groups;

  // Each band's (count, mean, centered second moment) per group, gathered and merged in rank
  // order with the pairwise update of Chan et al.: the same two-pass accuracy as one process
  // (no E[x²] − E[x]² cancellation), and the same numbers on every rank. The statistics are a
  // few doubles per group: merged on the host, then applied on x's device.
  core::GroupNormStats stats = core::group_norm_stats(x, groups);  // (G) F64 each, x's device
  const Tensor mean_h = stats.mean.to_device(core::Device::CPU);
  const Tensor var_h = stats.var.to_device(core::Device::CPU);
  const double* mean = mean_h.data<double>();
  const double* var = var_h.data<double>();
  int64_t L = 1;  // local prod(spatial)
  for (int i = 2; i < x.ndim(); ++i) L *= x.dim(i);
  const double count = static_cast<double>(C / groups * L);
  Tensor mine = Tensor::empty({1, 1 + 2 * G}, core::DType::F64);  // (1, 1 + 2G): n, means, M2s
  double* m = mine.data<double>();
  m[0] = count;
  for (int64_t g = 0; g < G; ++g) {
    m[1 + g] = mean[g];
    m[1 + G + g] = var[g] * count;
  }
  Tensor all;
  {
    ScopedTimer t(times_ ? &times_->norm_exchange : nullptr);
    all = group_.all_gather(mine, 0);  // (P, 1 + 2G), host
  }
  const double* a = all.data<double>();
  std::vector<double> total_mean(static_cast<size_t>(G), 0.0), total_m2(total_mean.size(), 0.0);
  double total = 0.0;
  for (int p = 0; p < group_.size(); ++p) {
    const double* row = a + p * (1 + 2 * G);
    const double n = row[0];
    if (n == 0.0) continue;
    const double merged = total + n;
    for (int64_t g = 0; g < G; ++g) {
      const double delta = row[1 + g] - total_mean[g];
      total_mean[g] += delta * (n / merged);
      total_m2[g] += row[1 + G + g] + delta * delta * (total * n / merged);
    }
    total = merged;
  }
  for (int64_t g = 0; g < G; ++g) total_m2[g] /= total;  // population variance

  Tensor merged_mean = Tensor::empty({G}, core::DType::F64);
  Tensor merged_var = Tensor::empty({G}, core::DType::F64);
  std::copy(total_mean.begin(), total_mean.end(), merged_mean.data<double>());
  std::copy(total_m2.begin(), total_m2.end(), merged_var.data<double>());
  stats.mean = merged_mean.to_device(x.device());
  stats.var = merged_var.to_device(x.device());
  return core::group_norm_apply(x, groups, stats, weight, bias, eps);  // (N, C, *spatial)
}

// ---------------------------------------------------------------- attention

Tensor RowSplitOps::attention(const Tensor& q, const Tensor& k, const Tensor& v,
                              float scale) const {
  ScopedTimer timer(times_ ? &times_->attention : nullptr);
  core::AttentionOptions options;
  options.scale = scale;
  if (group_.size() == 1) return core::attention(q, k, v, options).out;
  PARADIT_CHECK(k.ndim() == 4 && v.ndim() == 4 && k.dim(1) == v.dim(1), "RowSplitOps attention: k ",
                k.str(), " and v ", v.str(), " must be (B, S, H, D) with the same S");
  // Bands may differ by a row, so the token counts are exchanged first.
  Tensor n = Tensor::from_vector_i64({k.dim(1)}, {1});                      // (1)
  const std::vector<int64_t> counts = group_.all_gather(n, 0).to_vector_i64();  // (P)
  const Tensor k_all = group_.all_gather(k, 1, counts);  // (B, Sk_total, 1, C)
  const Tensor v_all = group_.all_gather(v, 1, counts);  // (B, Sk_total, 1, C)
  return core::attention(q, k_all, v_all, options).out;  // (B, Sq, 1, C)
}

// ---------------------------------------------------------------- whole decode / encode

Tensor decode_in_bands(const Tensor& z, const comm::Communicator& group, int64_t scale_factor,
                       const BandDecode& decode, RowSplitTimes* times) {
  PARADIT_CHECK(z.defined() && z.ndim() == 4, "decode_row_parallel: latents ",
                z.defined() ? z.str() : std::string("undefined"), " must be (N, C, h, w)");
  const std::vector<RowBand> bands = split_rows(z.dim(2), group.size());
  const RowBand band = bands[group.rank()];
  const RowSplitOps ops(group, times);
  const Tensor local = z.slice(2, band.begin, band.end).contiguous();  // (N, C, rows, w)
  const Tensor image = decode(local, ops);                             // (N, out, rows·f, w·f)
  const int64_t f = scale_factor;
  PARADIT_CHECK(image.dim(2) == band.rows() * f, "decode_row_parallel: band of ", band.rows(),
                " latent rows decoded to ", image.dim(2), " rows (expected ", band.rows() * f, ")");
  std::vector<int64_t> counts;
  for (const RowBand& b : bands) counts.push_back(b.rows() * f);
  return group.all_gather(image, 2, counts);  // (N, out, h·f, w·f)
}

std::pair<Tensor, Tensor> encode_in_bands(const Tensor& x, const comm::Communicator& group,
                                          int64_t scale_factor, const BandEncode& encode) {
  const int64_t f = scale_factor;
  PARADIT_CHECK(x.defined() && x.ndim() == 4 && x.dim(2) % f == 0, "encode_row_parallel: image ",
                x.defined() ? x.str() : std::string("undefined"),
                " must be (N, C, H, W) with H a multiple of the VAE scale factor ", f);
  const std::vector<RowBand> bands = split_rows(x.dim(2) / f, group.size());
  const RowBand band = bands[group.rank()];
  const RowSplitOps ops(group);
  // Bands of whole latent rows keep every stride-2 conv's input band even-sized and aligned.
  const Tensor local = x.slice(2, band.begin * f, band.end * f).contiguous();  // (N, C, rows·f, W)
  auto [mean, std] = encode(local, ops);  // (N, latent, rows, w) each
  std::vector<int64_t> counts;
  for (const RowBand& b : bands) counts.push_back(b.rows());
  return {group.all_gather(mean, 2, counts), group.all_gather(std, 2, counts)};  // (N, L, h, w)
}

}  // namespace paradit::parallel
