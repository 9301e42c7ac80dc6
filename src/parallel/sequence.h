#pragma once
// Sequence parallelism: which groups a rank attends with, and the helpers that cut a sequence
// into per-rank blocks and put it back together.
//
// The sequence is padded at its end to a multiple of P = ring × ulysses and cut into P equal
// contiguous blocks; the rank with sequence index i = ring_rank · ulysses + ulysses_rank holds
// block i. Padded keys are masked out (shard_key_mask), padded query rows are dropped when the
// sequence is gathered back, so the padding never changes a result.

#include <cstdint>

#include "comm/communicator.h"
#include "comm/process_mesh.h"
#include "core/tensor.h"

namespace paradit::parallel {

// The sequence-parallel groups of this rank. Null (or size-1) groups mean "not split along
// that dimension"; a default-constructed context is the single-process case.
struct SequenceContext {
  const comm::Communicator* ulysses = nullptr;  // contiguous ranks; heads are split across it
  const comm::Communicator* ring = nullptr;     // K/V blocks travel round it

  // The mesh's ring and ulysses groups (the mesh must outlive the context).
  static SequenceContext from_mesh(const comm::ProcessMesh& mesh);

  int ulysses_degree() const { return ulysses ? ulysses->size() : 1; }
  int ring_degree() const { return ring ? ring->size() : 1; }
  int degree() const { return ulysses_degree() * ring_degree(); }
  // Index of this rank's sequence block.
  int shard_index() const;
  bool parallel() const { return degree() > 1; }
};

// The heads Ulysses rank `rank` of `degree` computes: [begin, begin + count) with begin =
// ⌊rank·heads/degree⌋, a balanced split of any head count over any degree (counts differ by at
// most one; a rank gets none when heads < degree).
struct HeadRange {
  int64_t begin = 0, count = 0;
};
HeadRange ulysses_heads(int64_t heads, int degree, int rank);

// length rounded up to a multiple of degree.
int64_t padded_length(int64_t length, int degree);

// x with zeros appended along `dim` up to `length` (≥ x.dim(dim)); x itself when equal.
core::Tensor pad_sequence(const core::Tensor& x, int dim, int64_t length);

// This rank's block along `dim` of the full sequence x (the same x on every rank), after padding
// to a multiple of ctx.degree(): a contiguous tensor with padded_length / degree rows.
core::Tensor shard_sequence(const core::Tensor& x, int dim, const SequenceContext& ctx);

// Key mask of this rank's block: (batch, padded_length / degree) F32, 1 for a real token and 0
// for padding; times the matching block of `full_mask` ((batch, length) F32 or Bool) if given.
core::Tensor shard_key_mask(int64_t batch, int64_t length, const SequenceContext& ctx,
                            const core::Tensor& full_mask = {});

// Inverse of shard_sequence: concatenates the blocks of every rank of the context along `dim`
// (ring-major, as the blocks were cut) and drops the padding, returning `length` rows. Every
// rank gets the whole sequence. Collective over the context's groups.
core::Tensor gather_sequence(const core::Tensor& local, int dim, int64_t length,
                             const SequenceContext& ctx);

}  // namespace paradit::parallel
