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
#include <vector>

#include "comm/communicator.h"
#include "core/tensor.h"
#include "models/vae/autoencoder_kl.h"

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
class RowSplitOps : public models::vae::SpatialOps {
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

// vae.decode(z) with the latent rows split across `group` (RowSplitOps). z: (N, C, h, w), the
// full latent, the same on every rank; needs h ≥ group.size(). Returns the full decoded image
// (N, out_channels, h·f, w·f) on every rank (the bands are all-gathered at the end). A size-1
// group is the plain decode. Collective over the group.
// times: when given, this rank's per-operation times are added to it.
core::Tensor decode_row_parallel(const models::vae::AutoencoderKL& vae, const core::Tensor& z,
                                 const comm::Communicator& group, RowSplitTimes* times = nullptr);

// vae.encode(x) with the image split into bands of whole latent rows (multiples of the scale
// factor) across `group`. x: (N, in_channels, H, W), the full image on every rank; needs
// H / scale_factor ≥ group.size(). Returns the full latent distribution on every rank.
models::vae::LatentDistribution encode_row_parallel(const models::vae::AutoencoderKL& vae,
                                                    const core::Tensor& x,
                                                    const comm::Communicator& group);

}  // namespace paradit::parallel
