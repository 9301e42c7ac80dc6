#include "parallel/sequence.h"

#include <algorithm>

#include "comm/pack.h"

namespace paradit::parallel {

using core::Tensor;

SequenceContext SequenceContext::from_mesh(const comm::ProcessMesh& mesh) {
  SequenceContext ctx;
  ctx.ulysses = &mesh.group(comm::MeshDim::kUlysses);
  ctx.ring = &mesh.group(comm::MeshDim::kRing);
  return ctx;
}

int SequenceContext::shard_index() const {
  const int r = ring ? ring->rank() : 0;
  const int u = ulysses ? ulysses->rank() : 0;
  return r * ulysses_degree() + u;
}

HeadRange ulysses_heads(int64_t heads, int degree, int rank) {
  PARADIT_CHECK(heads >= 0 && degree >= 1 && rank >= 0 && rank < degree, "ulysses_heads: ", heads,
                " heads, rank ", rank, " of ", degree);
  const int64_t begin = rank * heads / degree, end = (rank + 1) * heads / degree;
  return HeadRange{begin, end - begin};
}

int64_t padded_length(int64_t length, int degree) {
  PARADIT_CHECK(degree >= 1, "padded_length: degree ", degree);
  return (length + degree - 1) / degree * degree;
}

static int wrap(int dim, const Tensor& x, const char* what) {
  const int d = dim < 0 ? dim + x.ndim() : dim;
  PARADIT_CHECK(d >= 0 && d < x.ndim(), what, ": dim ", dim, " out of range for ", x.str());
  return d;
}

Tensor pad_sequence(const Tensor& x, int dim, int64_t length) {
  const int d = wrap(dim, x, "pad_sequence");
  PARADIT_CHECK(length >= x.dim(d), "pad_sequence: length ", length, " is shorter than dim ", d,
                " of ", x.str());
  if (length == x.dim(d)) return x;
  core::Shape shape = x.shape();
  shape[d] = length;
  Tensor out = Tensor::zeros(shape, x.dtype(), x.device());
  comm::copy_bytes(out.slice(d, 0, x.dim(d)), x);
  return out;
}

Tensor shard_sequence(const Tensor& x, int dim, const SequenceContext& ctx) {
  const int d = wrap(dim, x, "shard_sequence");
  const int p = ctx.degree();
  const int64_t len = x.dim(d);
  const int64_t block = padded_length(len, p) / p;
  const int64_t start = ctx.shard_index() * block;
  // Rows [start, start + block) of the padded sequence: the real ones, then zeros.
  core::Shape shape = x.shape();
  shape[d] = block;
  const int64_t real_end = std::min(start + block, len);
  const int64_t real = std::max<int64_t>(real_end - start, 0);
  Tensor out = real == block ? Tensor::empty(shape, x.dtype(), x.device())
                              : Tensor::zeros(shape, x.dtype(), x.device());
  if (real > 0) comm::copy_bytes(out.slice(d, 0, real), x.slice(d, start, start + real));
  return out;
}

Tensor shard_key_mask(int64_t batch, int64_t length, const SequenceContext& ctx,
                      const Tensor& full_mask) {
  const int p = ctx.degree();
  const int64_t block = padded_length(length, p) / p;
  const int64_t start = ctx.shard_index() * block;
  // Built on the host (a table of the layout), on full_mask's device when one is given.
  std::vector<float> m(static_cast<size_t>(batch * block), 0.0f);  // (B, S_local)
  if (full_mask.defined()) {
    PARADIT_CHECK(full_mask.shape() == core::Shape({batch, length}), "shard_key_mask: mask ",
                  full_mask.str(), " does not match (batch, length) = (", batch, ", ", length, ")");
    const int64_t real = std::clamp<int64_t>(length - start, 0, block);
    if (real > 0) {
      const std::vector<float> src = full_mask.slice(1, start, start + real).to_vector();
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < real; ++i)
          m[static_cast<size_t>(b * block + i)] = src[b * real + i] != 0.0f ? 1.0f : 0.0f;
    }
  } else {
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < block; ++i)
        m[static_cast<size_t>(b * block + i)] = start + i < length ? 1.0f : 0.0f;
  }
  return Tensor::from_vector(m, {batch, block},
                             full_mask.defined() ? full_mask.device() : core::Device::CPU);
}

Tensor gather_sequence(const Tensor& local, int dim, int64_t length, const SequenceContext& ctx) {
  const int d = wrap(dim, local, "gather_sequence");
  const int64_t padded = local.dim(d) * ctx.degree();
  PARADIT_CHECK(length >= 0 && length <= padded, "gather_sequence: length ", length,
                " does not fit ", ctx.degree(), " blocks of ", local.dim(d), " along dim ", d,
                " of ", local.str());
  Tensor full = local;
  // Ulysses first (contiguous blocks of one ring stage), then the ring stages in order.
  if (ctx.ulysses_degree() > 1) full = ctx.ulysses->all_gather(full, d);
  if (ctx.ring_degree() > 1) full = ctx.ring->all_gather(full, d);
  if (full.dim(d) == length) return full;
  return full.slice(d, 0, length).contiguous();
}

}  // namespace paradit::parallel
