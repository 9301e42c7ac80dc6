// gemm.h through oneDNN's matmul primitive.
//
// Creating a oneDNN primitive costs tens to hundreds of microseconds (JIT code generation), so
// every distinct problem (shapes, strides, transposes, dtypes, alpha/beta, bias) gets its
// primitive built once and kept in a process-wide cache. Primitives run with a user-provided
// scratchpad (one per calling thread) so that concurrent calls never share scratch memory.

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <dnnl.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/cpu/gemm.h"
#include "core/dtype.h"
#include "core/error.h"

namespace paradit::backend::cpu {
namespace {

using dnnl::memory;
using Dt = memory::data_type;

// Everything that decides the primitive. Strides are part of it: oneDNN bakes them into code.
struct Key {
  Dt a_dt = Dt::f32, b_dt = Dt::f32;
  bool trans_a = false, trans_b = false, has_bias = false;
  int64_t batch = 1, M = 0, N = 0, K = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  uint32_t alpha_bits = 0, beta_bits = 0;

  bool operator==(const Key& o) const {
    return a_dt == o.a_dt && b_dt == o.b_dt && trans_a == o.trans_a && trans_b == o.trans_b &&
           has_bias == o.has_bias && batch == o.batch && M == o.M && N == o.N && K == o.K &&
           lda == o.lda && ldb == o.ldb && ldc == o.ldc && stride_a == o.stride_a &&
           stride_b == o.stride_b && stride_c == o.stride_c && alpha_bits == o.alpha_bits &&
           beta_bits == o.beta_bits;
  }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix(static_cast<uint64_t>(k.a_dt));
    mix(static_cast<uint64_t>(k.b_dt));
    mix((k.trans_a ? 1u : 0u) | (k.trans_b ? 2u : 0u) | (k.has_bias ? 4u : 0u));
    for (int64_t v :
         {k.batch, k.M, k.N, k.K, k.lda, k.ldb, k.ldc, k.stride_a, k.stride_b, k.stride_c}) {
      mix(static_cast<uint64_t>(v));
    }
    mix(k.alpha_bits);
    mix(k.beta_bits);
    return static_cast<size_t>(h);
  }
};

struct Entry {
  dnnl::matmul primitive;
  memory::desc a_md, b_md, bias_md, c_md;
  size_t scratch_bytes = 0;
};

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

uint32_t float_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

std::string describe(const Key& k) {
  return detail::concat("gemm (", k.a_dt == Dt::bf16 ? "bf16" : "f32", " x ",
                        k.b_dt == Dt::bf16 ? "bf16" : "f32", ", batch=", k.batch, ", M=", k.M,
                        ", N=", k.N, ", K=", k.K, ", trans_a=", k.trans_a, ", trans_b=", k.trans_b,
                        ", lda=", k.lda, ", ldb=", k.ldb, ", ldc=", k.ldc, ")");
}

std::shared_ptr<const Entry> build(const Key& k) {
  // Row-major matrices described by explicit strides; a transposed operand just swaps them.
  const bool batched = k.batch > 1;
  auto md = [&](int64_t rows, int64_t cols, bool trans, int64_t ld, int64_t bstride, Dt dt,
                int64_t batch) {
    memory::dims strides2 = trans ? memory::dims{1, ld} : memory::dims{ld, 1};
    if (!batched) return memory::desc({rows, cols}, dt, strides2);
    // A broadcast operand (batch 1) still needs a plausible stride for its size-1 dim.
    if (batch == 1) bstride = ld * (trans ? cols : rows);
    return memory::desc({batch, rows, cols}, dt, {bstride, strides2[0], strides2[1]});
  };
  auto e = std::make_shared<Entry>();
  e->a_md = md(k.M, k.K, k.trans_a, k.lda, k.stride_a, k.a_dt, k.batch);
  // A zero batch stride on B is a broadcast: oneDNN expresses it as a batch dim of 1.
  e->b_md = md(k.K, k.N, k.trans_b, k.ldb, k.stride_b, k.b_dt, k.stride_b == 0 ? 1 : k.batch);
  e->c_md = md(k.M, k.N, false, k.ldc, k.stride_c, Dt::f32, k.batch);
  if (k.has_bias) {
    e->bias_md = batched ? memory::desc({1, 1, k.N}, Dt::f32, {k.N, k.N, 1})
                         : memory::desc({1, k.N}, Dt::f32, {k.N, 1});
  }

  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  float alpha, beta;
  std::memcpy(&alpha, &k.alpha_bits, 4);
  std::memcpy(&beta, &k.beta_bits, 4);
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(beta);
    attr.set_post_ops(ops);
  }
  try {
    auto desc = k.has_bias ? dnnl::matmul::desc(e->a_md, e->b_md, e->bias_md, e->c_md)
                           : dnnl::matmul::desc(e->a_md, e->b_md, e->c_md);
    dnnl::matmul::primitive_desc pd(desc, attr, cpu_engine());
    e->scratch_bytes = pd.scratchpad_desc().get_size();
    e->primitive = dnnl::matmul(pd);
  } catch (const dnnl::error& err) {
    fail(describe(k), ": oneDNN could not create a matmul primitive: ", err.what());
  }
  return e;
}

// The process-wide primitive cache. Bounded so that a caller cycling through endless shapes
// (or alpha values) cannot grow it without limit; a full cache simply starts over.
class PrimitiveCache {
 public:
  std::shared_ptr<const Entry> get(const Key& k) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = map_.find(k);
      if (it != map_.end()) return it->second;
    }
    // Built outside the lock: creation is slow and other shapes should not wait for it. Two
    // threads racing on the same key both build; one result is kept.
    auto entry = build(k);
    std::lock_guard<std::mutex> lock(mutex_);
    if (map_.size() >= kCapacity) map_.clear();
    return map_.emplace(k, std::move(entry)).first->second;
  }

 private:
  static constexpr size_t kCapacity = 4096;
  std::mutex mutex_;
  std::unordered_map<Key, std::shared_ptr<const Entry>, KeyHash> map_;
};

PrimitiveCache& cache() {
  static PrimitiveCache c;
  return c;
}

// Grow-only per-thread buffer: scratchpads and bf16 copies of A are needed on every call, and
// re-allocating tens of MiB each time would cost page faults on every call.
template <typename T>
T* thread_buffer(std::vector<T>& buf, size_t n) {
  if (buf.size() < n) {
    buf.clear();
    buf.shrink_to_fit();
    buf.resize(n);
  }
  return buf.data();
}

void execute(const Key& k, const void* A, const void* B, const float* bias, float* C) {
  auto e = cache().get(k);
  thread_local std::vector<char> scratch;
  thread_local std::unique_ptr<dnnl::stream> stream;
  if (!stream) stream = std::make_unique<dnnl::stream>(cpu_engine());
  const dnnl::engine& eng = cpu_engine();
  try {
    memory a_mem(e->a_md, eng, const_cast<void*>(A));
    memory b_mem(e->b_md, eng, const_cast<void*>(B));
    memory c_mem(e->c_md, eng, C);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}};
    if (k.has_bias) {
      args.emplace(DNNL_ARG_BIAS, memory(e->bias_md, eng, const_cast<float*>(bias)));
    }
    if (e->scratch_bytes > 0) {
      char* s = thread_buffer(scratch, e->scratch_bytes);
      args.emplace(DNNL_ARG_SCRATCHPAD,
                   memory(memory::desc({static_cast<int64_t>(e->scratch_bytes)}, Dt::u8,
                                       memory::format_tag::a),
                          eng, s));
    }
    e->primitive.execute(*stream, args);
    stream->wait();
  } catch (const dnnl::error& err) {
    fail(describe(k), ": oneDNN matmul failed: ", err.what());
  }
}

// C = beta·C for the K = 0 case, which oneDNN does not accept as a problem.
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) {
      std::fill_n(c, N, 0.0f);
    } else {
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
    }
  }
}

// f32 → bf16 (round to nearest even) of a rows×cols block; parallel over rows unless already
// inside a parallel region. Written so the compiler vectorizes the inner loop.
void to_bf16(int64_t rows, int64_t cols, const float* src, int64_t ld_src, uint16_t* dst) {
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15) && !omp_in_parallel())
  for (int64_t i = 0; i < rows; ++i) {
    const float* s = src + i * ld_src;
    uint16_t* d = dst + i * cols;
    for (int64_t j = 0; j < cols; ++j) d[j] = core::f32_to_bf16(s[j]);
  }
}

Key make_key(Dt a_dt, Dt b_dt, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, int64_t lda, int64_t ldb, float beta, int64_t ldc) {
  Key k;
  k.a_dt = a_dt;
  k.b_dt = b_dt;
  k.trans_a = trans_a;
  k.trans_b = trans_b;
  k.M = M;
  k.N = N;
  k.K = K;
  k.lda = lda;
  k.ldb = ldb;
  k.ldc = ldc;
  k.alpha_bits = float_bits(alpha);
  k.beta_bits = float_bits(beta == 0.0f ? 0.0f : beta);  // -0 and +0 alike
  return k;
}

void check_args(const char* what, int64_t M, int64_t N, int64_t K) {
  PARADIT_CHECK(M >= 0 && N >= 0 && K >= 0, what, ": negative size M=", M, " N=", N, " K=", K);
}

// A converted to bf16 (row-major, dense). Up to kKeepBytes it lives in this thread's reusable
// buffer; a larger copy is owned by this object, so that one huge call does not pin its memory
// for the rest of the thread's life.
class Bf16Copy {
 public:
  Bf16Copy(bool trans_a, int64_t M, int64_t K, const float* A, int64_t lda) {
    thread_local std::vector<uint16_t> buf;
    const int64_t rows = trans_a ? K : M;
    const int64_t cols = trans_a ? M : K;
    const size_t n = static_cast<size_t>(rows * cols);
    uint16_t* dst;
    if (n * sizeof(uint16_t) <= kKeepBytes) {
      dst = thread_buffer(buf, n);
    } else {
      owned_.reset(new uint16_t[n]);  // uninitialized: every element is written below
      dst = owned_.get();
    }
    to_bf16(rows, cols, A, lda, dst);
    data_ = dst;
    ld_ = cols;
  }
  const uint16_t* data() const { return data_; }
  int64_t ld() const { return ld_; }

 private:
  static constexpr size_t kKeepBytes = size_t{64} << 20;
  std::unique_ptr<uint16_t[]> owned_;
  const uint16_t* data_ = nullptr;
  int64_t ld_ = 0;
};

}  // namespace

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  check_args("gemm_f32", M, N, K);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  Key k = make_key(Dt::f32, Dt::f32, trans_a, trans_b, M, N, K, alpha, lda, ldb, beta, ldc);
  execute(k, A, B, nullptr, C);
}

void gemm_f32_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta,
                   float* C, int64_t ldc) {
  check_args("gemm_f32_bf16", M, N, K);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  const Bf16Copy a16(trans_a, M, K, A, lda);
  Key k = make_key(Dt::bf16, Dt::bf16, trans_a, trans_b, M, N, K, alpha, a16.ld(), ldb, beta, ldc);
  execute(k, a16.data(), B, nullptr, C);
}

void linear_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* W,
                int64_t ldw, const float* bias, float* C, int64_t ldc) {
  check_args("linear_f32", M, N, K);
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = bias ? bias[j] : 0.0f;
    }
    return;
  }
  Key k = make_key(Dt::f32, Dt::f32, false, true, M, N, K, 1.0f, lda, ldw, 0.0f, ldc);
  k.has_bias = bias != nullptr;
  execute(k, A, W, bias, C);
}

void linear_f32_bf16(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                     const uint16_t* W, int64_t ldw, const float* bias, float* C, int64_t ldc) {
  check_args("linear_f32_bf16", M, N, K);
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = bias ? bias[j] : 0.0f;
    }
    return;
  }
  const Bf16Copy a16(false, M, K, A, lda);
  Key k = make_key(Dt::bf16, Dt::bf16, false, true, M, N, K, 1.0f, a16.ld(), ldw, 0.0f, ldc);
  k.has_bias = bias != nullptr;
  execute(k, a16.data(), W, bias, C);
}

void gemm_batched_f32(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                      const float* A, int64_t stride_a, int64_t lda, const float* B,
                      int64_t stride_b, int64_t ldb, float* C, int64_t stride_c, int64_t ldc) {
  check_args("gemm_batched_f32", M, N, K);
  PARADIT_CHECK(batch >= 0, "gemm_batched_f32: negative batch ", batch);
  if (batch == 0 || M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t b = 0; b < batch; ++b) scale_c(M, N, 0.0f, C + b * stride_c, ldc);
    return;
  }
  if (batch == 1) {
    return gemm_f32(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
  }
  Key k = make_key(Dt::f32, Dt::f32, trans_a, trans_b, M, N, K, 1.0f, lda, ldb, 0.0f, ldc);
  k.batch = batch;
  k.stride_a = stride_a;
  k.stride_b = stride_b;
  k.stride_c = stride_c;
  execute(k, A, B, nullptr, C);
}

const char* gemm_library_name() {
  static const std::string name = [] {
    const dnnl_version_t* v = dnnl_version();
    return detail::concat("oneDNN ", v->major, ".", v->minor, ".", v->patch);
  }();
  return name.c_str();
}

}  // namespace paradit::backend::cpu
