// Row-parallel video VAE decode: halo exchange for the 3-D convolutions, group-wide GroupNorm
// statistics and gathered keys/values for the mid-block attention (see video_vae_patch.h).
#include "parallel/video_vae_patch.h"

#include <string>
#include <vector>

#include "core/ops.h"
#include "parallel/vae_patch.h"

namespace paradit::parallel {

using core::Tensor;

namespace {

// Tags of the two halo directions (distinct from the image VAE's), so that a rank's messages to
// its upper and lower neighbours never match each other's receives when the group has two ranks.
constexpr int kTagToAbove = 7311;  // first rows of a band, sent to the band above
constexpr int kTagToBelow = 7312;  // last rows of a band, sent to the band below

std::string str(const Tensor& t) { return t.defined() ? t.str() : std::string("undefined"); }

// Every rank's x.dim(dim), in rank order.
std::vector<int64_t> sizes_along(const comm::Communicator& group, const Tensor& x, int dim) {
  return group.all_gather(Tensor::from_vector_i64({x.dim(dim)}, {1}), 0).to_vector_i64();  // (P)
}

// This rank's band of z's rows, and every band's decoded row count (factor per latent row).
struct Bands {
  Tensor local;              // (N, C, t, rows, w)
  int64_t rows = 0;          // this rank's latent rows
  std::vector<int64_t> out;  // decoded rows of every rank
};

Bands cut_bands(const Tensor& z, const comm::Communicator& group, int64_t factor) {
  PARADIT_CHECK(z.defined() && z.ndim() == 5, "decode_video_row_parallel: latents ", str(z),
                " must be (N, C, frames, h, w)");
  const std::vector<RowBand> bands = split_rows(z.dim(3), group.size());
  const RowBand band = bands[group.rank()];
  Bands b;
  b.local = z.slice(3, band.begin, band.end).contiguous();  // (N, C, t, rows, w)
  b.rows = band.rows();
  for (const RowBand& r : bands) b.out.push_back(r.rows() * factor);
  return b;
}

// The whole frames from this rank's decoded rows. video: (N, out, F, rows·f, w·f)
Tensor gather_bands(const Tensor& video, const Bands& b, const comm::Communicator& group) {
  const int64_t expected = b.out[group.rank()];
  PARADIT_CHECK(video.dim(3) == expected, "decode_video_row_parallel: band of ", b.rows,
                " latent rows decoded to ", video.dim(3), " rows (expected ", expected, ")");
  return group.all_gather(video, 3, b.out);  // (N, out, F, h·f, w·f)
}

// The decoded bands of every rank, gathered along the rows: z's band decoded by `decode`.
template <typename Decode>
Tensor decode_bands(const Tensor& z, const comm::Communicator& group, int64_t factor,
                    const Decode& decode) {
  const Bands b = cut_bands(z, group, factor);
  const VideoRowSplitOps ops(group);
  return gather_bands(decode(b.local, ops), b, group);  // (N, out, F, h·f, w·f)
}

}  // namespace

// ---------------------------------------------------------------- convolution

Tensor VideoRowSplitOps::conv3d(const Tensor& x, const Tensor& w, const Tensor& bias,
                                const core::Conv3dOptions& opt) const {
  const int P = group_.size(), r = group_.rank();
  if (P == 1) return core::conv3d(x, w, bias, opt);
  PARADIT_CHECK(x.ndim() == 5 && w.ndim() == 5, "VideoRowSplitOps conv3d: x ", str(x), " and w ",
                str(w), " must be (N, C, T, H, W) and (O, C, kt, kh, kw)");
  const int64_t kh = w.dim(3), rows = x.dim(3);
  const int64_t halo = opt.pad_top;
  PARADIT_CHECK(opt.stride_h == 1 && opt.pad_top == opt.pad_bottom && kh == 2 * halo + 1,
                "VideoRowSplitOps conv3d: kernel height ", kh, " with stride ", opt.stride_h,
                " and padding ", opt.pad_top, "/", opt.pad_bottom,
                " cannot be split by rows (the row-parallel decode needs stride 1 and "
                "symmetric padding (kh − 1)/2)");
  if (halo == 0) return core::conv3d(x, w, bias, opt);  // kernel height 1: row-local
  PARADIT_CHECK(rows >= halo, "VideoRowSplitOps conv3d: band of ", rows, " rows on rank ", r,
                " is thinner than the halo of ", halo, " rows");

  const int64_t N = x.dim(0), C = x.dim(1), T = x.dim(2), W = x.dim(4);
  std::vector<comm::Request> requests;
  Tensor above, below;  // halo rows of every frame from the neighbour bands
  if (r > 0) {
    above = Tensor::empty({N, C, T, halo, W}, x.dtype(), x.device());  // (N, C, T, halo, W)
    requests.push_back(group_.irecv(above, r - 1, kTagToBelow));
  }
  if (r < P - 1) {
    below = Tensor::empty({N, C, T, halo, W}, x.dtype(), x.device());  // (N, C, T, halo, W)
    requests.push_back(group_.irecv(below, r + 1, kTagToAbove));
  }
  if (r > 0) requests.push_back(group_.isend(x.slice(3, 0, halo).contiguous(), r - 1, kTagToAbove));
  if (r < P - 1) {
    requests.push_back(
        group_.isend(x.slice(3, rows - halo, rows).contiguous(), r + 1, kTagToBelow));
  }
  comm::wait_all(requests);

  std::vector<Tensor> parts;
  if (above.defined()) parts.push_back(above);
  parts.push_back(x);
  if (below.defined()) parts.push_back(below);
  const Tensor ext = core::concat(parts, 3);  // (N, C, T, halo + h + halo, W)
  // The frame border keeps its padding (zeros, or the edge row repeated, as opt says); inside,
  // the halo rows replace it.
  core::Conv3dOptions local = opt;
  local.pad_top = r == 0 ? opt.pad_top : 0;
  local.pad_bottom = r == P - 1 ? opt.pad_bottom : 0;
  return core::conv3d(ext, w, bias, local);  // (N, O, T', h, W')
}

// ---------------------------------------------------------------- group norm and attention

Tensor VideoRowSplitOps::group_norm(const Tensor& x, int groups, const Tensor& weight,
                                    const Tensor& bias, float eps) const {
  // The image version merges the bands' statistics over any (N, C, *spatial) layout.
  return RowSplitOps(group_).group_norm(x, groups, weight, bias, eps);
}

Tensor VideoRowSplitOps::gather_rows(const Tensor& x, int dim) const {
  if (group_.size() == 1) return x;
  return group_.all_gather(x.contiguous(), dim, sizes_along(group_, x, dim));
}

// ---------------------------------------------------------------- whole decode

Tensor decode_video_in_bands(const Tensor& z, const comm::Communicator& group,
                             int64_t spatial_factor, const VideoBandDecode& decode) {
  return decode_bands(z, group, spatial_factor, decode);
}

void decode_video_in_bands_streaming(const Tensor& z, const comm::Communicator& group,
                                     int64_t spatial_factor, const VideoBandStream& decode,
                                     const FramesSink& on_frames) {
  const Bands b = cut_bands(z, group, spatial_factor);
  const VideoRowSplitOps ops(group);
  decode(b.local, ops, [&](const Tensor& frames) { on_frames(gather_bands(frames, b, group)); });
}

}  // namespace paradit::parallel
