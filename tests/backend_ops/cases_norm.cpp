// layer_norm / rms_norm (affine or not, fused adaLN modulation with every parameter layout,
// strided rows), group_norm and its two halves (statistics, apply) with the fused activation,
// and channel_norm (the Wan VAE's RMS_norm).

#include <cmath>

#include "backend_ops.h"
#include "support/random.h"

namespace paradit::backend_ops {
namespace {

using core::Activation;

// ---------------------------------------------------------------- layer / rms norm

// The adaLN modulation's parameters, as the models pass them.
enum class ModKind : uint8_t {
  kNone,
  kBD,     // shift, scale (B, D)
  kB1D,    // (B, 1, D)
  kOneD,   // (1, D): one row for the whole batch
  kChunk,  // slices of one (B, 6·D) embedding (row stride 6·D), as AdaLayerNormZero chunks it
  kMixed,  // shift (B, D), scale (1, D): each parameter with its own batch stride
};
// The dtype of the modulation parameters.
enum class ParamDType : uint8_t { kF32, kAct, kBF16 };
std::string fmt_pdtype(ParamDType p) {
  return p == ParamDType::kF32 ? "F32" : p == ParamDType::kAct ? "act" : "BF16";
}
std::string fmt_mod(ModKind m) {
  switch (m) {
    case ModKind::kNone:
      return "none";
    case ModKind::kBD:
      return "BD";
    case ModKind::kB1D:
      return "B1D";
    case ModKind::kOneD:
      return "1D";
    case ModKind::kChunk:
      return "chunk";
    case ModKind::kMixed:
      return "BD+1D";
  }
  return "?";
}

enum class RowView : uint8_t {
  kNone,
  kCols,  // x a slice of the last dim of a wider tensor: uniform row stride > D
  kRows,  // x a slice of dim 1: rows not uniformly strided (the front end copies)
};
std::string fmt_rows(RowView v) {
  return v == RowView::kNone ? "none" : v == RowView::kCols ? "cols" : "rows";
}

struct NormCase : Case {
  bool rms;
  Shape x;  // (..., D); (B, S, D) with a modulation
  bool weight, bias;
  float eps, offset;
  ModKind mod;
  ParamDType mod_dtype;
  RowView view;
  NormCase(bool rms, Shape x, bool weight, bool bias, float eps, float offset = 0.0f,
           ModKind mod = ModKind::kNone, ParamDType mod_dtype = ParamDType::kF32,
           RowView view = RowView::kNone)
      : rms(rms),
        x(std::move(x)),
        weight(weight),
        bias(bias && !rms),
        eps(eps),
        offset(offset),
        mod(mod),
        mod_dtype(mod_dtype),
        view(view) {}

  int64_t D() const { return x.back(); }
  std::vector<Op> ops() const override {
    if (mod != ModKind::kNone) return {rms ? Op::kRmsNorm : Op::kLayerNorm, Op::kModulate};
    return {rms ? Op::kRmsNorm : Op::kLayerNorm};
  }
  std::string vars() const override {
    return backend_ops::vars("x", x, "weight", weight, "bias", bias, "eps", double(eps), "offset",
                             double(offset), "mod", fmt_mod(mod), "mod_dtype",
                             fmt_pdtype(mod_dtype), "view", fmt_rows(view));
  }
  InputSpec param(const std::string& name, Shape s) const {
    if (mod_dtype == ParamDType::kAct) return act(name, std::move(s));
    if (mod_dtype == ParamDType::kBF16) return fixed(name, std::move(s), DType::BF16);
    return f32(name, std::move(s));
  }
  std::vector<InputSpec> inputs() const override {
    Shape xs = x;
    if (view == RowView::kCols) xs.back() += 5;
    if (view == RowView::kRows) xs[1] += 3;
    std::vector<InputSpec> in = {act("x", xs, offset - 1.0f, offset + 1.0f)};
    if (weight) in.push_back(f32("weight", {D()}, 0.5f, 1.5f));
    if (bias) in.push_back(f32("bias", {D()}));
    const int64_t B = x[0];
    switch (mod) {
      case ModKind::kNone:
        break;
      case ModKind::kBD:
        in.push_back(param("shift", {B, D()}));
        in.push_back(param("scale", {B, D()}));
        break;
      case ModKind::kB1D:
        in.push_back(param("shift", {B, 1, D()}));
        in.push_back(param("scale", {B, 1, D()}));
        break;
      case ModKind::kOneD:
        in.push_back(param("shift", {1, D()}));
        in.push_back(param("scale", {1, D()}));
        break;
      case ModKind::kChunk:
        in.push_back(param("emb", {B, 6 * D()}));
        break;
      case ModKind::kMixed:
        in.push_back(param("shift", {B, D()}));
        in.push_back(param("scale", {1, D()}));
        break;
    }
    return in;
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    std::vector<Tensor> v = in;
    if (view == RowView::kCols) v[0] = in[0].slice(-1, 2, 2 + D());
    if (view == RowView::kRows) v[0] = in[0].slice(1, 1, 1 + x[1]);
    if (mod == ModKind::kChunk) {
      const Tensor emb = v.back();
      v.back() = emb.slice(1, 3 * D(), 4 * D());    // shift: chunk 3
      v.push_back(emb.slice(1, 4 * D(), 5 * D()));  // scale: chunk 4
    }
    return v;
  }
  // Positions of the optional tensors in the viewed inputs.
  Tensor opt(const std::vector<Tensor>& in, int which) const {
    // which: 0 weight, 1 bias, 2 shift, 3 scale
    size_t i = 1;
    const bool present[4] = {weight, bias, mod != ModKind::kNone, mod != ModKind::kNone};
    for (int k = 0; k < which; ++k) i += present[k] ? 1 : 0;
    return present[which] ? in[i] : Tensor();
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    const core::Modulation m{opt(in, 2), opt(in, 3)};
    const Tensor y = rms ? core::rms_norm(in[0], opt(in, 0), eps, m)
                         : core::layer_norm(in[0], opt(in, 0), opt(in, 1), eps, m);
    return {{{"y", y}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> xv = values(in[0]);
    const Tensor w = opt(in, 0), b = opt(in, 1), sh = opt(in, 2), sc = opt(in, 3);
    const std::vector<double> wv = w.defined() ? values(w) : std::vector<double>(D(), 1.0);
    const std::vector<double> bv = b.defined() ? values(b) : std::vector<double>(D(), 0.0);
    const std::vector<double> shv = sh.defined() ? values(sh) : std::vector<double>();
    const std::vector<double> scv = sc.defined() ? values(sc) : std::vector<double>();
    const int64_t d = D(), rows = static_cast<int64_t>(xv.size()) / d;
    const int64_t per_batch = x.size() == 3 ? x[1] : rows;
    // Parameter rows of one row serve every batch.
    const bool shift_one = mod == ModKind::kOneD;
    const bool scale_one = mod == ModKind::kOneD || mod == ModKind::kMixed;
    std::vector<double> y(xv.size());
    for (int64_t r = 0; r < rows; ++r) {
      const double* row = xv.data() + r * d;
      double mean = 0, ms = 0;
      for (int64_t j = 0; j < d; ++j) mean += row[j];
      mean /= static_cast<double>(d);
      for (int64_t j = 0; j < d; ++j) {
        const double c = rms ? row[j] : row[j] - mean;
        ms += c * c;
      }
      ms /= static_cast<double>(d);
      const double inv = 1.0 / std::sqrt(ms + eps);
      const int64_t sh_b = shift_one ? 0 : r / per_batch, sc_b = scale_one ? 0 : r / per_batch;
      for (int64_t j = 0; j < d; ++j) {
        double v = ((rms ? row[j] : row[j] - mean) * inv) * wv[j] + bv[j];
        if (!shv.empty()) v = v * (1.0 + scv[sc_b * d + j]) + shv[sh_b * d + j];
        y[r * d + j] = v;
      }
    }
    return {ref_output("y", x, y)};
  }
};

// ---------------------------------------------------------------- group norm

// Mean and population variance of each (n, group) in double; x (N, C, L) values.
void group_stats(const std::vector<double>& x, int64_t N, int64_t C, int64_t L, int64_t G,
                 std::vector<double>* mean, std::vector<double>* var) {
  const int64_t per = C / G * L;
  mean->assign(N * G, 0.0);
  var->assign(N * G, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t g = 0; g < G; ++g) {
      const double* p = x.data() + (n * C + g * (C / G)) * L;
      double m = 0, v = 0;
      for (int64_t i = 0; i < per; ++i) m += p[i];
      m /= static_cast<double>(per);
      for (int64_t i = 0; i < per; ++i) v += (p[i] - m) * (p[i] - m);
      (*mean)[n * G + g] = m;
      (*var)[n * G + g] = v / static_cast<double>(per);
    }
  }
}

std::vector<double> group_apply(const std::vector<double>& x, int64_t N, int64_t C, int64_t L,
                                int64_t G, const std::vector<double>& mean,
                                const std::vector<double>& var, double eps,
                                const std::vector<double>& w, const std::vector<double>& b,
                                Activation act) {
  std::vector<double> y(x.size());
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      const int64_t g = c / (C / G);
      const double rstd = 1.0 / std::sqrt(var[n * G + g] + eps);
      for (int64_t l = 0; l < L; ++l) {
        const int64_t i = (n * C + c) * L + l;
        const double v =
            (x[i] - mean[n * G + g]) * rstd * (w.empty() ? 1.0 : w[c]) + (b.empty() ? 0.0 : b[c]);
        y[i] = act == Activation::kNone ? v : activate(act, v);
      }
    }
  }
  return y;
}

int64_t spatial(const Shape& x) {
  int64_t L = 1;
  for (size_t i = 2; i < x.size(); ++i) L *= x[i];
  return L;
}

struct GroupNormCase : Case {
  Shape x;  // (N, C, *spatial)
  int groups;
  bool affine;
  float eps;
  Activation act;
  float offset;
  bool strided;  // x a slice of the last spatial dim of a wider tensor
  GroupNormCase(Shape x, int groups, bool affine, float eps, Activation act, float offset = 0.0f,
                bool strided = false)
      : x(std::move(x)),
        groups(groups),
        affine(affine),
        eps(eps),
        act(act),
        offset(offset),
        strided(strided) {}
  std::vector<Op> ops() const override { return {Op::kGroupNorm}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, "groups", groups, "affine", affine, "eps", double(eps), "act",
                             act, "offset", double(offset), "strided", strided);
  }
  std::vector<InputSpec> inputs() const override {
    Shape xs = x;
    if (strided) xs.back() += 3;
    std::vector<InputSpec> in = {backend_ops::act("x", xs, offset - 1.0f, offset + 1.0f)};
    if (affine) {
      in.push_back(f32("weight", {x[1]}, 0.5f, 1.5f));
      in.push_back(f32("bias", {x[1]}));
    }
    return in;
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    std::vector<Tensor> v = in;
    if (strided) v[0] = in[0].slice(-1, 1, 1 + x.back());
    return v;
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::group_norm(in[0], groups, affine ? in[1] : Tensor(),
                                    affine ? in[2] : Tensor(), eps, act)}},
            {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> xv = values(in[0]);
    std::vector<double> mean, var;
    const int64_t N = x[0], C = x[1], L = spatial(x);
    group_stats(xv, N, C, L, groups, &mean, &var);
    return {ref_output("y", x,
                       group_apply(xv, N, C, L, groups, mean, var, eps,
                                   affine ? values(in[1]) : std::vector<double>(),
                                   affine ? values(in[2]) : std::vector<double>(), act))};
  }
};

struct GroupNormStatsCase : Case {
  Shape x;
  int groups;
  float offset;
  GroupNormStatsCase(Shape x, int groups, float offset)
      : x(std::move(x)), groups(groups), offset(offset) {}
  std::vector<Op> ops() const override { return {Op::kGroupNormStats}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, "groups", groups, "offset", double(offset));
  }
  std::vector<InputSpec> inputs() const override {
    return {act("x", x, offset - 1.0f, offset + 1.0f)};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    const core::GroupNormStats s = core::group_norm_stats(in[0], groups);
    return {{{"mean", s.mean}, {"var", s.var}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    std::vector<double> mean, var;
    group_stats(values(in[0]), x[0], x[1], spatial(x), groups, &mean, &var);
    const int64_t n = x[0] * groups;
    return {ref_output("mean", {n}, mean), ref_output("var", {n}, var)};
  }
  // F64 statistics accumulated in double from the same inputs on every device.
  double tolerance(const Run&) const override { return 1e-6; }
  double reference_tolerance() const override { return 1e-9; }
};

struct GroupNormApplyCase : Case {
  Shape x;
  int groups;
  bool affine;
  Activation act;
  GroupNormApplyCase(Shape x, int groups, bool affine, Activation act)
      : x(std::move(x)), groups(groups), affine(affine), act(act) {}
  std::vector<Op> ops() const override { return {Op::kGroupNormApply}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, "groups", groups, "affine", affine, "act", act);
  }
  std::vector<InputSpec> inputs() const override {
    const int64_t n = x[0] * groups;
    // Statistics as a patch-parallel caller passes them: combined over ranks, any values.
    std::vector<InputSpec> in = {backend_ops::act("x", x),
                                 fixed("mean", {n}, DType::F64, {}, -0.5f, 0.5f),
                                 fixed("var", {n}, DType::F64, {}, 0.2f, 2.0f)};
    if (affine) {
      in.push_back(f32("weight", {x[1]}, 0.5f, 1.5f));
      in.push_back(f32("bias", {x[1]}));
    }
    return in;
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::group_norm_apply(in[0], groups, {in[1], in[2]}, affine ? in[3] : Tensor(),
                                          affine ? in[4] : Tensor(), 1e-5f, act)}},
            {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    return {
        ref_output("y", x,
                   group_apply(values(in[0]), x[0], x[1], spatial(x), groups, values(in[1]),
                               values(in[2]), 1e-5f, affine ? values(in[3]) : std::vector<double>(),
                               affine ? values(in[4]) : std::vector<double>(), act))};
  }
};

// ---------------------------------------------------------------- channel norm

struct ChannelNormCase : Case {
  Shape x;  // (N, C, *spatial)
  float scale, eps, amplitude;
  bool zero_column;  // every channel of spatial position 0 is zero: the norm is 0, eps decides
  ChannelNormCase(Shape x, float scale, float eps, float amplitude = 1.0f, bool zero_column = false)
      : x(std::move(x)), scale(scale), eps(eps), amplitude(amplitude), zero_column(zero_column) {}
  std::vector<Op> ops() const override { return {Op::kChannelNorm}; }
  std::string vars() const override {
    return backend_ops::vars("x", x, "scale", double(scale), "eps", double(eps), "amplitude",
                             double(amplitude), "zero_column", zero_column);
  }
  std::vector<InputSpec> inputs() const override {
    InputSpec xs = act("x", x, -amplitude, amplitude);
    if (zero_column) {
      const int64_t L = spatial(x);
      const float a = amplitude;
      xs.values = [L, a](size_t n, uint64_t seed) {
        std::vector<float> v = testing::random_values(n, seed, -a, a);
        for (size_t i = 0; i < n; i += static_cast<size_t>(L)) v[i] = 0.0f;
        return v;
      };
    }
    return {xs, f32("gamma", {x[1]}, 0.5f, 1.5f)};
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    return {{{"y", core::channel_norm(in[0], in[1], scale, eps)}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const std::vector<double> xv = values(in[0]), g = values(in[1]);
    const int64_t N = x[0], C = x[1], L = spatial(x);
    std::vector<double> y(xv.size());
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t l = 0; l < L; ++l) {
        double ss = 0;
        for (int64_t c = 0; c < C; ++c) ss += xv[(n * C + c) * L + l] * xv[(n * C + c) * L + l];
        const double denom = std::max(std::sqrt(ss), static_cast<double>(eps));
        for (int64_t c = 0; c < C; ++c) {
          y[(n * C + c) * L + l] = xv[(n * C + c) * L + l] / denom * scale * g[c];
        }
      }
    }
    return {ref_output("y", x, y)};
  }
};

}  // namespace

void add_norm_cases(CaseList& c) {
  using M = ModKind;
  using A = Activation;
  using PD = ParamDType;
  // layer_norm
  c.push_back(std::make_unique<NormCase>(false, Shape{2, 13, 96}, false, false, 1e-6f));
  c.push_back(std::make_unique<NormCase>(false, Shape{2, 13, 96}, true, true, 1e-5f));
  c.push_back(std::make_unique<NormCase>(false, Shape{2, 13, 96}, true, false, 1e-5f));
  c.push_back(std::make_unique<NormCase>(false, Shape{3, 5, 96}, true, true, 1e-6f, 4.0f));
  c.push_back(std::make_unique<NormCase>(false, Shape{4, 1}, true, true, 1e-5f));
  c.push_back(std::make_unique<NormCase>(false, Shape{3, 7}, true, true, 1e-5f));
  c.push_back(std::make_unique<NormCase>(false, Shape{2, 1000}, true, true, 1e-5f));
  c.push_back(std::make_unique<NormCase>(false, Shape{1, 2, 4096}, false, false, 1e-6f));
  c.push_back(std::make_unique<NormCase>(false, Shape{2, 13, 96}, true, true, 1e-5f, 0.0f, M::kNone,
                                         PD::kF32, RowView::kCols));
  c.push_back(std::make_unique<NormCase>(false, Shape{2, 13, 96}, true, true, 1e-5f, 0.0f, M::kNone,
                                         PD::kF32, RowView::kRows));
  // layer_norm with the fused modulation (Flux/SD3: no affine).
  for (M m : {M::kBD, M::kB1D, M::kOneD, M::kChunk, M::kMixed}) {
    c.push_back(std::make_unique<NormCase>(false, Shape{2, 13, 96}, false, false, 1e-6f, 0.0f, m));
  }
  c.push_back(std::make_unique<NormCase>(false, Shape{2, 13, 96}, false, false, 1e-6f, 0.0f, M::kBD,
                                         PD::kAct));
  c.push_back(std::make_unique<NormCase>(false, Shape{2, 13, 96}, true, true, 1e-6f, 2.0f,
                                         M::kChunk, PD::kAct));
  c.push_back(std::make_unique<NormCase>(false, Shape{2, 13, 96}, false, false, 1e-6f, 0.0f, M::kBD,
                                         PD::kF32, RowView::kCols));
  // Parameters in BF16 whatever the activations (CUDA takes any float dtype; the CPU widens).
  c.push_back(std::make_unique<NormCase>(false, Shape{2, 13, 96}, false, false, 1e-6f, 0.0f, M::kBD,
                                         PD::kBF16));
  // rms_norm
  c.push_back(std::make_unique<NormCase>(true, Shape{3, 5, 64}, true, false, 1e-6f, 0.0f, M::kMixed,
                                         PD::kBF16));
  c.push_back(std::make_unique<NormCase>(true, Shape{2, 7, 3, 64}, true, false, 1e-6f));
  c.push_back(std::make_unique<NormCase>(true, Shape{2, 7, 3, 64}, false, false, 1e-6f));
  c.push_back(std::make_unique<NormCase>(true, Shape{5, 33}, true, false, 1e-5f, 1.0f));
  c.push_back(std::make_unique<NormCase>(true, Shape{2, 7, 128}, true, false, 1e-6f, 0.0f, M::kNone,
                                         PD::kF32, RowView::kCols));
  c.push_back(std::make_unique<NormCase>(true, Shape{2, 7, 64}, true, false, 1e-6f, 0.0f, M::kBD));
  c.push_back(std::make_unique<NormCase>(true, Shape{2, 7, 64}, true, false, 1e-6f, 0.0f, M::kOneD,
                                         PD::kAct));
  c.push_back(std::make_unique<NormCase>(true, Shape{2, 7, 64}, false, false, 1e-6f, 0.0f,
                                         M::kChunk, PD::kF32, RowView::kRows));

  // group_norm
  c.push_back(std::make_unique<GroupNormCase>(Shape{2, 32, 5, 7}, 8, true, 1e-6f, A::kNone));
  c.push_back(std::make_unique<GroupNormCase>(Shape{2, 32, 5, 7}, 8, true, 1e-6f, A::kSilu));
  c.push_back(std::make_unique<GroupNormCase>(Shape{2, 32, 5, 7}, 8, false, 1e-5f, A::kGeluErf));
  c.push_back(std::make_unique<GroupNormCase>(Shape{1, 12, 9, 4}, 1, true, 1e-6f, A::kNone));
  c.push_back(std::make_unique<GroupNormCase>(Shape{2, 6, 3, 3}, 6, true, 1e-6f, A::kSilu));
  c.push_back(std::make_unique<GroupNormCase>(Shape{1, 16, 3, 4, 5}, 4, true, 1e-6f, A::kSilu));
  c.push_back(
      std::make_unique<GroupNormCase>(Shape{1, 64, 16, 16}, 32, true, 1e-6f, A::kSilu, 3.0f));
  c.push_back(
      std::make_unique<GroupNormCase>(Shape{2, 32, 5, 7}, 8, true, 1e-6f, A::kSilu, 0.0f, true));
  c.push_back(std::make_unique<GroupNormCase>(Shape{3, 8, 17}, 2, true, 1e-6f, A::kNone));
  // its halves
  c.push_back(std::make_unique<GroupNormStatsCase>(Shape{2, 32, 5, 7}, 8, 0.0f));
  c.push_back(std::make_unique<GroupNormStatsCase>(Shape{1, 16, 3, 4, 5}, 4, 4.0f));
  c.push_back(std::make_unique<GroupNormStatsCase>(Shape{3, 6, 1}, 3, 0.5f));
  c.push_back(std::make_unique<GroupNormApplyCase>(Shape{2, 32, 5, 7}, 8, true, A::kNone));
  c.push_back(std::make_unique<GroupNormApplyCase>(Shape{2, 32, 5, 7}, 8, true, A::kSilu));
  c.push_back(std::make_unique<GroupNormApplyCase>(Shape{1, 16, 3, 4, 5}, 4, false, A::kNone));

  // channel_norm
  c.push_back(std::make_unique<ChannelNormCase>(Shape{2, 16, 3, 4, 5}, 4.0f, 1e-12f));
  c.push_back(std::make_unique<ChannelNormCase>(Shape{1, 8, 6, 6}, std::sqrt(8.0f), 1e-12f));
  c.push_back(std::make_unique<ChannelNormCase>(Shape{1, 8, 6, 6}, 1.0f, 1e-12f, 1.0f, true));
  c.push_back(std::make_unique<ChannelNormCase>(Shape{2, 4, 9}, 2.0f, 0.5f, 0.1f));
}

}  // namespace paradit::backend_ops
