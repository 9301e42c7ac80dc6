// concat, split, chunk and embedding lookup.

#include <algorithm>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/ops.h"
#include "core/ops_common.h"

namespace paradit::core {

namespace {

int wrap_dim(const char* op, int dim, const Tensor& t) {
  const int d = dim < 0 ? dim + t.ndim() : dim;
  PARADIT_CHECK(d >= 0 && d < t.ndim(), op, ": dim ", dim, " out of range for ", t.str());
  return d;
}

}  // namespace

Tensor concat(const std::vector<Tensor>& parts, int dim) {
  PARADIT_CHECK(!parts.empty(), "concat: no tensors");
  const Tensor& first = parts[0];
  PARADIT_CHECK(first.defined(), "concat: part 0 is undefined");
  const int d = wrap_dim("concat", dim, first);
  Shape shape = first.shape();
  shape[d] = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Tensor& p = parts[i];
    PARADIT_CHECK(p.defined(), "concat: part ", i, " is undefined");
    PARADIT_CHECK(p.device() == Device::CPU, "concat: part ", i, " is on ", device_name(p.device()),
                  "; this op has only a CPU body");
    PARADIT_CHECK(p.dtype() == first.dtype(), "concat: part ", i, " ", p.str(),
                  " differs in dtype from part 0 ", first.str());
    bool same = p.ndim() == first.ndim();
    for (int k = 0; same && k < p.ndim(); ++k) same = k == d || p.dim(k) == first.dim(k);
    PARADIT_CHECK(same, "concat: part ", i, " ", p.str(), " does not match part 0 ", first.str(),
                  " outside dim ", d);
    shape[d] += p.dim(d);
  }
  Tensor out = Tensor::empty(shape, first.dtype());  // parts joined along d
  int64_t offset = 0;
  for (const Tensor& p : parts) {
    const int64_t n = p.dim(d);
    if (n == 0) continue;
    Tensor dst = out.slice(d, offset, offset + n);
    backend::cpu::strided_copy(p.ndim(), p.shape().data(), p.raw_data(), p.strides().data(),
                               dst.raw_data(), dst.strides().data(), p.itemsize());
    offset += n;
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim) {
  PARADIT_CHECK(x.defined(), "split: x is undefined");
  const int d = wrap_dim("split", dim, x);
  int64_t total = 0;
  for (int64_t s : sizes) {
    PARADIT_CHECK(s >= 0, "split: negative size ", s, " for ", x.str());
    total += s;
  }
  PARADIT_CHECK(total == x.dim(d), "split: sizes sum to ", total, ", dim ", d, " of ", x.str(),
                " is ", x.dim(d));
  std::vector<Tensor> out;
  out.reserve(sizes.size());
  int64_t offset = 0;
  for (int64_t s : sizes) {
    out.push_back(x.slice(d, offset, offset + s));
    offset += s;
  }
  return out;
}

// As torch.chunk: pieces of ceil(n / chunks) along dim, the last one smaller when chunks does
// not divide n (so fewer than `chunks` pieces can come back).
std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim) {
  PARADIT_CHECK(x.defined(), "chunk: x is undefined");
  PARADIT_CHECK(chunks >= 1, "chunk: ", chunks, " chunks of ", x.str());
  const int d = wrap_dim("chunk", dim, x);
  const int64_t n = x.dim(d);
  const int64_t step = (n + chunks - 1) / chunks;
  std::vector<Tensor> out;
  if (step == 0) {  // n == 0: torch returns `chunks` empty pieces
    for (int i = 0; i < chunks; ++i) out.push_back(x.slice(d, 0, 0));
    return out;
  }
  for (int64_t start = 0; start < n; start += step)
    out.push_back(x.slice(d, start, std::min(n, start + step)));
  return out;
}

Tensor embedding(const Tensor& table, const Tensor& ids) {
  PARADIT_CHECK(table.defined() && (table.dtype() == DType::F32 || table.dtype() == DType::BF16),
                "embedding: table must be F32 or BF16, got ",
                table.defined() ? table.str() : std::string("undefined"));
  PARADIT_CHECK(table.ndim() == 2, "embedding: table ", table.str(), " must be (V, D)");
  PARADIT_CHECK(ids.defined() && (ids.dtype() == DType::I64 || ids.dtype() == DType::I32),
                "embedding: ids must be I64 or I32, got ",
                ids.defined() ? ids.str() : std::string("undefined"));
  PARADIT_CHECK(table.device() == Device::CPU && ids.device() == Device::CPU,
                "embedding: this op has only a CPU body");
  const int64_t V = table.dim(0), D = table.dim(1);
  const Tensor ic = ids.contiguous();
  const int64_t n = ids.numel();
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = ic.dtype() == DType::I64 ? ic.data<int64_t>()[i] : ic.data<int32_t>()[i];
    PARADIT_CHECK(id >= 0 && id < V, "embedding: id ", id, " at position ", i, " of ids ",
                  ids.str(), " is out of range for a table of ", V, " rows");
    idx[static_cast<size_t>(i)] = id;
  }
  const Tensor tc = table.contiguous();
  Shape shape = ids.shape();
  shape.push_back(D);
  Tensor out = Tensor::empty(shape);  // (..., D)
  backend::cpu::embedding_f32(tc.raw_data(), tc.dtype() == DType::BF16, D, idx.data(), n,
                              out.data<float>());
  return out;
}

}  // namespace paradit::core
