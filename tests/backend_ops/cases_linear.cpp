// linear (every activation epilogue, bias or none, weight dtypes, strided views, odd tails)
// and matmul (batched, broadcast B, trans_b, strided operands).

#include "backend_ops.h"

namespace paradit::backend_ops {
namespace {

using core::Activation;

// Where the operands come from.
enum class LinearView : uint8_t {
  kNone,
  kXCols,  // x a slice of the last dim of a wider tensor (row stride > K)
  kWCols,  // w a column slice of a wider (N, K + 7) weight (ldw > K)
  kWRows,  // w a row slice of a fused (N + 5, K) weight (as q of a fused qkv projection)
};
std::string fmt_view(LinearView v) {
  switch (v) {
    case LinearView::kNone:
      return "none";
    case LinearView::kXCols:
      return "x_cols";
    case LinearView::kWCols:
      return "w_cols";
    case LinearView::kWRows:
      return "w_rows";
  }
  return "?";
}

// y = act(x · wᵀ + bias), x (..., K), w (N, K).
struct LinearCase : Case {
  Shape x;  // (..., K)
  int64_t N;
  bool bias;
  Activation act;
  WeightType w;
  LinearView view;
  LinearCase(Shape x, int64_t N, bool bias, Activation act, WeightType w = WeightType::kAct,
             LinearView view = LinearView::kNone)
      : x(std::move(x)), N(N), bias(bias), act(act), w(w), view(view) {}

  int64_t K() const { return x.back(); }
  std::vector<Op> ops() const override { return {Op::kLinear}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, "N", N, "bias", bias, "act", act, "w", w, "view",
                             fmt_view(view));
  }
  // sqrt needs a non-negative pre-activation, exp a moderate one.
  float lo() const {
    return act == Activation::kSqrt ? 0.0f : act == Activation::kExp ? -0.3f : -1.0f;
  }
  float hi() const { return act == Activation::kExp ? 0.3f : 1.0f; }
  std::vector<InputSpec> inputs() const override {
    Shape xs = x, ws{N, K()};
    if (view == LinearView::kXCols) xs.back() += 9;
    if (view == LinearView::kWCols) ws[1] += 7;
    if (view == LinearView::kWRows) ws[0] += 5;
    std::vector<InputSpec> in = {backend_ops::act("x", xs, lo(), hi()),
                                 weight("w", ws, w, lo(), hi())};
    if (bias) in.push_back(f32("bias", {N}, lo(), hi()));
    return in;
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    std::vector<Tensor> v = in;
    if (view == LinearView::kXCols) v[0] = in[0].slice(-1, 4, 4 + K());
    if (view == LinearView::kWCols) v[1] = in[1].slice(1, 3, 3 + K());
    if (view == LinearView::kWRows) v[1] = in[1].slice(0, 2, 2 + N);
    return v;
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::linear(in[0], in[1], bias ? in[2] : Tensor(), act)}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    std::vector<double> xv = values(in[0]);
    const std::vector<double> wv = values(in[1]);
    const std::vector<double> bv = bias ? values(in[2]) : std::vector<double>(N, 0.0);
    // With BF16 weights x is rounded to BF16 too (the CPU GEMM converts it, backend/cpu/gemm.h;
    // CUDA runs in the weight's dtype).
    if (in[1].dtype() == DType::BF16) {
      for (double& e : xv) e = round_to(DType::BF16, e);
    }
    const int64_t k = K(), M = static_cast<int64_t>(xv.size()) / std::max<int64_t>(k, 1);
    std::vector<double> y(static_cast<size_t>(M * N));
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        double s = bv[n];
        for (int64_t j = 0; j < k; ++j) s += xv[m * k + j] * wv[n * k + j];
        y[m * N + n] = activate(act, s);
      }
    }
    Shape ys = x;
    ys.back() = N;
    return {ref_output("y", ys, y)};
  }
  std::string unsupported(const Run& r) const override {
    if (r.device == Device::CPU && w == WeightType::kF16) {
      return "the CPU linear takes F32 or BF16 weights (ops.h)";
    }
    return {};
  }
  // CUDA runs in the weight's dtype (x converted to it).
  double tolerance(const Run& r) const override {
    return dtype_tolerance(coarser(r.dtype, weight_dtype(w, r.dtype)));
  }
};

// c = a · op(b): a (B, M, K), b (B|1, K, N) or (B|1, N, K) with trans_b.
struct MatmulCase : Case {
  int64_t B, M, K, N;
  bool trans_b, broadcast_b;
  bool strided;  // a and b slices of the last dim of wider tensors (lda, ldb > row length)
  MatmulCase(int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b, bool broadcast_b = false,
             bool strided = false)
      : B(B), M(M), K(K), N(N), trans_b(trans_b), broadcast_b(broadcast_b), strided(strided) {}
  std::vector<Op> ops() const override { return {Op::kMatmul}; }
  std::string vars() const override {
    return backend_ops::vars("B", B, "M", M, "K", K, "N", N, "trans_b", trans_b, "bcast_b",
                             broadcast_b, "strided", strided);
  }
  Shape b_shape() const {
    return trans_b ? Shape{broadcast_b ? 1 : B, N, K} : Shape{broadcast_b ? 1 : B, K, N};
  }
  std::vector<InputSpec> inputs() const override {
    Shape as{B, M, K}, bs = b_shape();
    if (strided) {
      as[2] += 6;
      bs[2] += 3;
    }
    return {act("a", as), act("b", bs)};
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    if (!strided) return in;
    const Shape bs = b_shape();
    return {in[0].slice(2, 2, 2 + K), in[1].slice(2, 1, 1 + bs[2])};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"c", core::matmul(in[0], in[1], trans_b)}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> a = values(in[0]), b = values(in[1]);
    std::vector<double> c(static_cast<size_t>(B * M * N));
    for (int64_t bi = 0; bi < B; ++bi) {
      const int64_t bb = broadcast_b ? 0 : bi;
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) {
            const double bv = trans_b ? b[(bb * N + n) * K + k] : b[(bb * K + k) * N + n];
            s += a[(bi * M + m) * K + k] * bv;
          }
          c[(bi * M + m) * N + n] = s;
        }
      }
    }
    return {ref_output("c", {B, M, N}, c)};
  }
};

}  // namespace

void add_linear_cases(CaseList& c) {
  using A = Activation;
  using W = WeightType;
  using V = LinearView;
  // Every activation epilogue, with a bias; the cuBLASLt-fused ones (none, gelu_tanh) and a
  // kernel-after one also without.
  for (A a : {A::kNone, A::kGeluErf, A::kGeluTanh, A::kSilu, A::kQuickGelu, A::kRelu, A::kExp,
              A::kSqrt, A::kTanh}) {
    c.push_back(std::make_unique<LinearCase>(Shape{2, 37, 96}, 70, true, a));
  }
  for (A a : {A::kNone, A::kGeluTanh, A::kSilu}) {
    c.push_back(std::make_unique<LinearCase>(Shape{2, 37, 96}, 70, false, a));
  }
  // Odd tails and degenerate sizes.
  c.push_back(std::make_unique<LinearCase>(Shape{33, 65}, 31, true, A::kNone));
  c.push_back(std::make_unique<LinearCase>(Shape{33, 65}, 31, false, A::kGeluTanh));
  c.push_back(std::make_unique<LinearCase>(Shape{1, 8}, 1, true, A::kNone));
  c.push_back(std::make_unique<LinearCase>(Shape{5, 1}, 3, true, A::kNone));
  c.push_back(std::make_unique<LinearCase>(Shape{1, 1, 24}, 40, true, A::kSilu));
  c.push_back(std::make_unique<LinearCase>(Shape{0, 16}, 8, true, A::kNone));
  // Larger: several tiles per dim.
  c.push_back(std::make_unique<LinearCase>(Shape{4, 77, 256}, 384, true, A::kGeluTanh));
  // Weight dtypes other than the activation's: BF16 (CPU too), F16 (CUDA), F32.
  for (W w : {W::kBF16, W::kF16, W::kF32}) {
    c.push_back(std::make_unique<LinearCase>(Shape{45, 128}, 72, true, A::kNone, w));
    c.push_back(std::make_unique<LinearCase>(Shape{45, 128}, 72, true, A::kGeluTanh, w));
  }
  c.push_back(std::make_unique<LinearCase>(Shape{45, 128}, 72, false, A::kSilu, W::kBF16));
  // Strided operands.
  c.push_back(
      std::make_unique<LinearCase>(Shape{2, 37, 40}, 24, true, A::kNone, W::kAct, V::kXCols));
  c.push_back(
      std::make_unique<LinearCase>(Shape{2, 37, 40}, 24, true, A::kGeluTanh, W::kAct, V::kWCols));
  c.push_back(std::make_unique<LinearCase>(Shape{19, 64}, 48, false, A::kNone, W::kAct, V::kWRows));
  c.push_back(std::make_unique<LinearCase>(Shape{19, 64}, 48, true, A::kNone, W::kBF16, V::kWRows));

  // matmul
  c.push_back(std::make_unique<MatmulCase>(3, 20, 48, 36, false));
  c.push_back(std::make_unique<MatmulCase>(3, 20, 48, 36, true));
  c.push_back(std::make_unique<MatmulCase>(3, 20, 48, 36, false, true));
  c.push_back(std::make_unique<MatmulCase>(3, 20, 48, 36, true, true));
  c.push_back(std::make_unique<MatmulCase>(2, 7, 13, 5, false));
  c.push_back(std::make_unique<MatmulCase>(2, 7, 13, 5, true));
  c.push_back(std::make_unique<MatmulCase>(2, 1, 33, 17, true));
  c.push_back(std::make_unique<MatmulCase>(3, 20, 48, 36, false, false, true));
  c.push_back(std::make_unique<MatmulCase>(3, 20, 48, 36, true, true, true));
  c.push_back(std::make_unique<MatmulCase>(1, 64, 128, 96, false));
}

}  // namespace paradit::backend_ops
