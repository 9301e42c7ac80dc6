// concat, split, chunk and embedding lookup. split and chunk are views on any device; concat
// is one strided copy per part on the parts' device (Tensor::copy_from); embedding checks the
// ids on the host and looks up on the table's device.

#include <algorithm>
#include <vector>

#include "core/ops.h"
#include "core/ops_common.h"

namespace paradit::core {

using namespace detail;

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
    PARADIT_CHECK(p.device() == first.device(), "concat: part ", i, " is on ",
                  device_name(p.device()), ", part 0 on ", device_name(first.device()));
    PARADIT_CHECK(p.dtype() == first.dtype(), "concat: part ", i, " ", p.str(),
                  " differs in dtype from part 0 ", first.str());
    bool same = p.ndim() == first.ndim();
    for (int k = 0; same && k < p.ndim(); ++k) same = k == d || p.dim(k) == first.dim(k);
    PARADIT_CHECK(same, "concat: part ", i, " ", p.str(), " does not match part 0 ", first.str(),
                  " outside dim ", d);
    shape[d] += p.dim(d);
  }
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());  // parts joined along d
  int64_t offset = 0;
  for (const Tensor& p : parts) {
    const int64_t n = p.dim(d);
    if (n == 0) continue;
    Tensor dst = out.slice(d, offset, offset + n);
    dst.copy_from(p);
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
  const Op op = Op::kEmbedding;
  PARADIT_CHECK(table.defined() && (table.dtype() == DType::F32 || table.dtype() == DType::BF16 ||
                                    (table.device() == Device::CUDA && table.dtype() == DType::F16)),
                "embedding: table must be F32 or BF16, got ",
                table.defined() ? table.str() : std::string("undefined"));
  PARADIT_CHECK(table.ndim() == 2, "embedding: table ", table.str(), " must be (V, D)");
  PARADIT_CHECK(ids.defined() && (ids.dtype() == DType::I64 || ids.dtype() == DType::I32),
                "embedding: ids must be I64 or I32, got ",
                ids.defined() ? ids.str() : std::string("undefined"));
  PARADIT_CHECK(ids.device() == Device::CPU, "embedding: ids ", ids.str(),
                " must be on the CPU (they are checked there), got ", device_name(ids.device()));
  const Device dev = table.device();
  // The output dtype: F32 on the CPU (which computes in F32), the table's dtype on CUDA.
  const DType out_dtype = dev == Device::CPU ? DType::F32 : table.dtype();
  require_support(op, dev, out_dtype);
  const int64_t V = table.dim(0), D = table.dim(1);
  const Tensor ic = ids.to(DType::I64).contiguous();
  const int64_t n = ids.numel();
  const int64_t* idp = static_cast<const int64_t*>(ic.raw_data());
  for (int64_t i = 0; i < n; ++i) {
    PARADIT_CHECK(idp[i] >= 0 && idp[i] < V, "embedding: id ", idp[i], " at position ", i,
                  " of ids ", ids.str(), " is out of range for a table of ", V, " rows");
  }
  const Tensor id_dev = ic.to_device(dev);
  const Tensor tc = table.contiguous();
  Shape shape = ids.shape();
  shape.push_back(D);
  Tensor out = Tensor::empty(shape, out_dtype, dev);  // (..., D)
  if (out.numel() == 0) return out;
  backend::EmbeddingArgs a;
  a.table = tc.raw_data();
  a.V = V;
  a.D = D;
  a.table_dtype = tc.dtype();
  a.ids = static_cast<const int64_t*>(id_dev.raw_data());
  a.n = n;
  a.out_dtype = out_dtype;
  a.out = out.raw_data();
  if (dev == Device::CPU) cpu::embedding(a); else if constexpr (kCudaBuilt) cuda::embedding(a);
  return out;
}

}  // namespace paradit::core
