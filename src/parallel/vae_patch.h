#pragma once
// Patch-parallel VAE (`--use_parallel_vae`): the ranks of one group share one image and each
// computes a contiguous band of its rows, top to bottom in rank order. Only three operations of
// the VAE look outside a pixel's own row, and RowSplitOps gives each a row-split form:
//   - convolutions with kernel height > 1 exchange halo rows with the neighbour bands (isend /
//     irecv), the image border keeping its zero padding; a stride-1 conv convolves the rows that
//     need no halo while the halos are in flight, then the few border rows, so a rank waits for
//     its neighbours only when they are more than one convolution behind;
//   - GroupNorm combines every band's (count, mean, centered second moment) in double, so the
//     statistics are those of the whole image up to reassociation;
//   - the mid-block attention gathers the keys and values of all bands (it runs at the latent
//     resolution, where they are small) and attends its own queries.
// Upsampling, activations and residual adds are row-local and run unchanged. The result equals
// the single-process decode up to floating-point reassociation.

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "core/tensor.h"
#include "parallel/spatial_ops.h"

namespace paradit::parallel {

// Rows [begin, end) of a band.
struct RowBand {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t rows() const { return end - begin; }
};

// `rows` cut into `parts` contiguous bands as evenly as possible (the first rows % parts bands
// get one row more), in order. rows < parts (an empty band) → Error naming both.
std::vector<RowBand> split_rows(int64_t rows, int parts);

// Where a rank's decode time goes (wall seconds summed over the calls), for profiling.
struct RowSplitTimes {
  double conv = 0;           // convolutions (halo convs: the local compute)
  double halo_wait = 0;      // waiting for halo rows after the interior convolution
  double norm = 0;           // GroupNorm statistics and normalization
  double norm_exchange = 0;  // all-gather of the GroupNorm statistics (includes waiting)
  double attention = 0;      // mid-block attention, the key/value all-gathers included
  int convs = 0, norms = 0;
};

// SpatialOps over the ranks of `group`, each holding the band of rows given by its rank. Every
// rank of the group must run the same VAE forward (the operations are collective). The group
// (and `times`, when given: accumulated per operation) must outlive the object.
class RowSplitOps : public SpatialOps {
 public:
  explicit RowSplitOps(const comm::Communicator& group, RowSplitTimes* times = nullptr)
      : group_(group), times_(times) {}

  // x: local rows (N, C, h, W) → local rows of the full-image conv. Stride-1 convs with
  // symmetric vertical padding need (kh − 1)/2 halo rows each side; a stride-s conv (the
  // encoder's Downsample2D) needs pad_top rows above and kh − s − pad_top below, and every band
  // but the last must have a multiple of s rows. A neighbour band thinner than its halo → Error.
  core::Tensor conv2d(const core::Tensor& x, const core::Tensor& w, const core::Tensor& bias,
                      const core::Conv2dOptions& opt) const override;
  // x: local rows (N, C, h, W); statistics over the whole image. → (N, C, h, W)
  core::Tensor group_norm(const core::Tensor& x, int groups, const core::Tensor& weight,
                          const core::Tensor& bias, float eps) const override;
  // q: local tokens (B, Sq, 1, C); k, v: local tokens (B, Sk, 1, C), gathered over the group.
  core::Tensor attention(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                         float scale) const override;

  const comm::Communicator& group() const { return group_; }

 private:
  // x with halo rows exchanged first, convolved whole (strided convs, thin bands).
  core::Tensor conv2d_exchange_first(const core::Tensor& x, const core::Tensor& w,
                                     const core::Tensor& bias, const core::Conv2dOptions& opt,
                                     int64_t top, int64_t bottom) const;

  const comm::Communicator& group_;
  RowSplitTimes* times_;
};

// The band machinery of a row-parallel decode, the VAE given as `decode(local_z, ops)`: this
// rank's band of z's rows (split_rows over z: (N, C, h, w), the same whole latent on every rank;
// needs h ≥ group.size()) decoded with RowSplitOps over `group`, then every band's decoded rows
// (scale_factor per latent row) all-gathered: the whole image on every rank. Collective over the
// group. `times`: this rank's per-operation times are added to it. (pipelines/vae_decode.h
// binds it to the VAE models.)
using BandDecode = std::function<core::Tensor(const core::Tensor& local, const SpatialOps& ops)>;
core::Tensor decode_in_bands(const core::Tensor& z, const comm::Communicator& group,
                             int64_t scale_factor, const BandDecode& decode,
                             RowSplitTimes* times = nullptr);

// The encoder's side: the image x (N, C, H, W), the same on every rank, cut into bands of whole
// latent rows (multiples of scale_factor, needs H / scale_factor ≥ group.size()), each band
// encoded by `encode(local_x, ops)` into latent rows (mean, std), both all-gathered along the
// rows. Collective over the group.
using BandEncode = std::function<std::pair<core::Tensor, core::Tensor>(const core::Tensor& local,
                                                                       const SpatialOps& ops)>;
std::pair<core::Tensor, core::Tensor> encode_in_bands(const core::Tensor& x,
                                                      const comm::Communicator& group,
                                                      int64_t scale_factor,
                                                      const BandEncode& encode);

}  // namespace paradit::parallel
