// attention (head dims 64/72/128 and odd ones, Dv ≠ D, sequence tails, key masks F32/Bool with a
// batch that sees no key, additive biases broadcast three ways, the LSE, fused-projection views,
// no keys at all; on CUDA through cuDNN, paradit's kernels and the default), its unnormalized
// form, and attention_merge (synthetic partials, and a ring of key blocks that must give the
// full attention).

#include <cmath>
#include <numbers>

#include "backend_ops.h"
#include "support/random.h"

namespace paradit::backend_ops {
namespace {

using core::AttentionBackend;

enum class Mask : uint8_t {
  kNone,
  kF32,    // (B, Sk) F32: batch 0 drops every third key, the others every fourth
  kBool,   // the same as BOOL
  kEmpty,  // F32, and batch 1 keeps no key at all (its rows: out 0, lse −inf)
};
enum class Bias : uint8_t {
  kNone,
  kHeads,  // (1, H, Sq, Sk)
  kKeys,   // (B, 1, 1, Sk): one row per sample (a padding mask as a bias)
  kFull,   // (B, H, Sq, Sk)
};
enum class Layout : uint8_t {
  kSeparate,  // q, k, v tensors of their own
  kFused,     // head slices of one (B, S, 3·H, D) projection (Sq = Sk, D = Dv)
  kPacked,    // slices of the last dim of one (B, S, H, 3·D) tensor (Sq = Sk, D = Dv)
};

std::string fmt_mask(Mask m) {
  switch (m) {
    case Mask::kNone:
      return "none";
    case Mask::kF32:
      return "F32";
    case Mask::kBool:
      return "BOOL";
    case Mask::kEmpty:
      return "F32_empty_batch1";
  }
  return "?";
}
std::string fmt_bias(Bias b) {
  switch (b) {
    case Bias::kNone:
      return "none";
    case Bias::kHeads:
      return "1HQK";
    case Bias::kKeys:
      return "B11K";
    case Bias::kFull:
      return "BHQK";
  }
  return "?";
}
std::string fmt_layout(Layout l) {
  return l == Layout::kSeparate ? "separate" : l == Layout::kFused ? "fused_heads" : "packed_dim";
}
std::string fmt_backend(AttentionBackend b) {
  return b == AttentionBackend::kAuto    ? "auto"
         : b == AttentionBackend::kCudnn ? "cudnn"
                                         : "paradit";
}

bool keeps(Mask m, int64_t b, int64_t j) {
  if (m == Mask::kNone) return true;
  if (m == Mask::kEmpty && b == 1) return false;
  return b == 0 ? j % 3 != 1 : j % 4 != 2;
}

ValueFn mask_values(Mask m, int64_t Sk) {
  return [m, Sk](size_t n, uint64_t) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) {
      v[i] = keeps(m, static_cast<int64_t>(i) / Sk, static_cast<int64_t>(i) % Sk) ? 1.0f : 0.0f;
    }
    return v;
  };
}

Shape bias_shape(Bias b, int64_t B, int64_t H, int64_t Sq, int64_t Sk) {
  switch (b) {
    case Bias::kHeads:
      return {1, H, Sq, Sk};
    case Bias::kKeys:
      return {B, 1, 1, Sk};
    case Bias::kFull:
      return {B, H, Sq, Sk};
    case Bias::kNone:
      break;
  }
  return {};
}

// The plain attention of one problem in double: out (B, Sq, H, Dv), lse (B, H, Sq).
struct Plain {
  std::vector<double> out, lse;
};
Plain plain_attention(const std::vector<double>& q, const std::vector<double>& k,
                      const std::vector<double>& v, int64_t B, int64_t Sq, int64_t Sk, int64_t H,
                      int64_t D, int64_t Dv, double scale, const std::vector<double>& keep,
                      const std::vector<double>& bias, const Shape& bias_shape) {
  Plain p;
  p.out.assign(B * Sq * H * Dv, 0.0);
  p.lse.assign(B * H * Sq, -INFINITY);
  std::vector<double> s(Sk);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < Sq; ++i) {
        double m = -INFINITY;
        for (int64_t j = 0; j < Sk; ++j) {
          if (!keep.empty() && keep[b * Sk + j] == 0.0) {
            s[j] = -INFINITY;
            continue;
          }
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) {
            dot += q[((b * Sq + i) * H + h) * D + d] * k[((b * Sk + j) * H + h) * D + d];
          }
          s[j] = dot * scale;
          if (!bias.empty()) {
            const int64_t bb = bias_shape[0] == 1 ? 0 : b, bh = bias_shape[1] == 1 ? 0 : h,
                          bi = bias_shape[2] == 1 ? 0 : i;
            s[j] += bias[((bb * bias_shape[1] + bh) * bias_shape[2] + bi) * Sk + j];
          }
          m = std::max(m, s[j]);
        }
        if (m == -INFINITY) continue;  // no visible key: out 0, lse −inf
        double sum = 0;
        for (int64_t j = 0; j < Sk; ++j) sum += s[j] == -INFINITY ? 0.0 : std::exp(s[j] - m);
        double* o = p.out.data() + ((b * Sq + i) * H + h) * Dv;
        for (int64_t j = 0; j < Sk; ++j) {
          if (s[j] == -INFINITY) continue;
          const double w = std::exp(s[j] - m) / sum;
          for (int64_t d = 0; d < Dv; ++d) o[d] += w * v[((b * Sk + j) * H + h) * Dv + d];
        }
        p.lse[(b * H + h) * Sq + i] = m + std::log(sum);
      }
    }
  }
  return p;
}

struct AttentionCase : Case {
  int64_t B, Sq, Sk, H, D, Dv;
  Mask mask;
  Bias bias;
  bool lse;
  float scale;  // 0: 1/√D
  Layout layout;
  AttentionBackend backend;
  AttentionCase(int64_t B, int64_t Sq, int64_t Sk, int64_t H, int64_t D, int64_t Dv, Mask mask,
                Bias bias, bool lse, float scale, Layout layout, AttentionBackend backend)
      : B(B),
        Sq(Sq),
        Sk(Sk),
        H(H),
        D(D),
        Dv(Dv),
        mask(mask),
        bias(bias),
        lse(lse),
        scale(scale),
        layout(layout),
        backend(backend) {}
  std::vector<Op> ops() const override { return {Op::kAttention}; }
  std::string vars() const override {
    return backend_ops::vars("B", B, "Sq", Sq, "Sk", Sk, "H", H, "D", D, "Dv", Dv, "mask",
                             fmt_mask(mask), "bias", fmt_bias(bias), "lse", lse, "scale",
                             double(scale), "layout", fmt_layout(layout), "backend",
                             fmt_backend(backend));
  }
  std::vector<InputSpec> inputs() const override {
    std::vector<InputSpec> in;
    if (layout == Layout::kFused) {
      in.push_back(act("qkv", {B, Sq, 3 * H, D}, -2.0f, 2.0f));
    } else if (layout == Layout::kPacked) {
      in.push_back(act("qkv", {B, Sq, H, 3 * D}, -2.0f, 2.0f));
    } else {
      in.push_back(act("q", {B, Sq, H, D}, -2.0f, 2.0f));
      in.push_back(act("k", {B, Sk, H, D}, -2.0f, 2.0f));
      in.push_back(act("v", {B, Sk, H, Dv}));
    }
    if (mask == Mask::kBool) {
      in.push_back(fixed("key_mask", {B, Sk}, DType::Bool, mask_values(mask, Sk)));
    } else if (mask != Mask::kNone) {
      InputSpec m = f32("key_mask", {B, Sk});
      m.values = mask_values(mask, Sk);
      in.push_back(m);
    }
    if (bias != Bias::kNone) in.push_back(f32("bias", bias_shape(bias, B, H, Sq, Sk), -3.0f, 3.0f));
    return in;
  }
  // → q, k, v, [mask], [bias]
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    if (layout == Layout::kSeparate) return in;
    std::vector<Tensor> v;
    const Tensor& t = in[0];
    if (layout == Layout::kFused) {
      v = {t.slice(2, 0, H), t.slice(2, H, 2 * H), t.slice(2, 2 * H, 3 * H)};
    } else {
      v = {t.slice(3, 0, D), t.slice(3, D, 2 * D), t.slice(3, 2 * D, 3 * D)};
    }
    v.insert(v.end(), in.begin() + 1, in.end());
    return v;
  }
  core::AttentionOptions options(const std::vector<Tensor>& in) const {
    core::AttentionOptions o;
    o.scale = scale;
    o.backend = backend;
    o.return_lse = lse;
    size_t i = 3;
    if (mask != Mask::kNone) o.key_mask = in[i++];
    if (bias != Bias::kNone) o.bias = in[i++];
    return o;
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    const core::AttentionResult r = core::attention(in[0], in[1], in[2], options(in));
    Result res;
    res.outputs.push_back({"out", r.out});
    if (lse) res.outputs.push_back({"lse", r.lse});
    return res;
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    size_t i = 3;
    std::vector<double> keep, bv;
    if (mask != Mask::kNone) keep = values(in[i++]);
    if (bias != Bias::kNone) bv = values(in[i++]);
    const double sc = scale != 0.0f ? scale : 1.0 / std::sqrt(static_cast<double>(D));
    const Plain p = plain_attention(values(in[0]), values(in[1]), values(in[2]), B, Sq, Sk, H, D,
                                    Dv, sc, keep, bv, bias_shape(bias, B, H, Sq, Sk));
    std::vector<RefOutput> r = {ref_output("out", {B, Sq, H, Dv}, p.out)};
    if (lse) r.push_back(ref_output("lse", {B, H, Sq}, p.lse));
    return r;
  }
  // cuDNN's fused attention takes these (backend/cuda/attention.h: cudnn_unsupported_reason);
  // the explicit cuDNN backend is an error otherwise, reported here as unsupported.
  std::string unsupported(const Run& r) const override {
    if (r.device != Device::CUDA || backend != AttentionBackend::kCudnn) return {};
    if (!cudnn_built()) return "the cuDNN backend: this build has no cuDNN";
    if (r.dtype != DType::BF16 && r.dtype != DType::F16) {
      return "the cuDNN backend takes BF16/F16 only";
    }
    if (D % 8 != 0 || Dv % 8 != 0 || D > 256 || Dv > 256) {
      return "the cuDNN backend takes head dims that are multiples of 8 up to 256";
    }
    if ((bias == Bias::kHeads || bias == Bias::kFull) && Sk % 4 != 0) {
      return "the cuDNN backend needs 16-byte aligned bias rows (Sk % 4 == 0)";
    }
    return {};
  }
};

// The unnormalized form (ring attention's partials): out = Σ 2^(s_j − row_max) v_j,
// row_sum = Σ 2^(s_j − row_max), s_j the base-2 scores, row_max an integer ≥ max s_j. row_max is
// the implementation's choice, so the runs compare out / row_sum (the attention) and
// row_max + log2(row_sum) (the base-2 LSE), and check the contract itself.
struct AttentionPartialCase : Case {
  int64_t B, Sq, Sk, H, D;
  Mask mask;
  Layout layout;
  AttentionPartialCase(int64_t B, int64_t Sq, int64_t Sk, int64_t H, int64_t D, Mask mask,
                       Layout layout = Layout::kSeparate)
      : B(B), Sq(Sq), Sk(Sk), H(H), D(D), mask(mask), layout(layout) {}
  std::vector<Op> ops() const override { return {Op::kAttention}; }
  std::string vars() const override {
    return backend_ops::vars("unnormalized", true, "B", B, "Sq", Sq, "Sk", Sk, "H", H, "D", D,
                             "mask", fmt_mask(mask), "layout", fmt_layout(layout));
  }
  std::vector<InputSpec> inputs() const override {
    AttentionCase a(B, Sq, Sk, H, D, D, mask, Bias::kNone, false, 0.0f, layout,
                    AttentionBackend::kAuto);
    return a.inputs();
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    AttentionCase a(B, Sq, Sk, H, D, D, mask, Bias::kNone, false, 0.0f, layout,
                    AttentionBackend::kAuto);
    return a.views(in);
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    core::AttentionOptions o;
    o.unnormalized = true;
    if (mask != Mask::kNone) o.key_mask = in[3];
    const core::AttentionResult r = core::attention(in[0], in[1], in[2], o);
    const std::vector<double> out = values(r.out), mx = values(r.row_max), sm = values(r.row_sum);
    std::vector<float> norm(out.size()), lse2(mx.size());
    Result res;
    for (int64_t b = 0; b < B; ++b) {
      int64_t visible = 0;
      for (int64_t j = 0; j < Sk; ++j) visible += keeps(mask, b, j) ? 1 : 0;
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t i = 0; i < Sq; ++i) {
          const size_t si = static_cast<size_t>((b * H + h) * Sq + i);
          const double m = mx[si], l = sm[si];
          std::string bad;
          if (visible == 0) {
            if (!(l == 0 && m == -INFINITY))
              bad = "a row with no visible key needs row_sum 0, row_max -inf";
          } else if (!(std::isfinite(m) && m == std::floor(m))) {
            bad = "row_max is not an integer";
          } else if (!(l > 0 && l <= static_cast<double>(visible) * (1 + 1e-6))) {
            bad = "row_sum outside (0, visible keys]";
          }
          if (!bad.empty() && res.contract.empty()) {
            res.contract = bad + " at [" + std::to_string(b) + "," + std::to_string(h) + "," +
                           std::to_string(i) + "]: row_max " + fmt(m) + ", row_sum " + fmt(l);
          }
          lse2[si] = static_cast<float>(l > 0 ? m + std::log2(l) : -INFINITY);
          for (int64_t d = 0; d < D; ++d) {
            const size_t oi = static_cast<size_t>(((b * Sq + i) * H + h) * D + d);
            norm[oi] = static_cast<float>(l > 0 ? out[oi] / l : out[oi]);
          }
        }
      }
    }
    res.outputs = {{"out/row_sum", Tensor::from_vector(norm, {B, Sq, H, D})},
                   {"row_max+log2(row_sum)", Tensor::from_vector(lse2, {B, H, Sq})}};
    return res;
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const double sc = 1.0 / std::sqrt(static_cast<double>(D));
    const Plain p =
        plain_attention(values(in[0]), values(in[1]), values(in[2]), B, Sq, Sk, H, D, D, sc,
                        mask != Mask::kNone ? values(in[3]) : std::vector<double>(), {}, {});
    std::vector<double> lse2 = p.lse;
    for (double& x : lse2) x = x / std::numbers::ln2;
    return {ref_output("out/row_sum", {B, Sq, H, D}, p.out),
            ref_output("row_max+log2(row_sum)", {B, H, Sq}, lse2)};
  }
};

// attention_merge on synthetic partials: out_p (B, S, H, Dv) in the run's dtype, row_max_p
// integers with −inf (no visible key in that block) at some rows, row_sum_p > 0 (0 there);
// rows (b, h, s) with r % 7 == 6 see no key in any block (result 0).
struct MergeCase : Case {
  int64_t B, S, H, Dv;
  int parts;
  bool strided;  // partials as slices of wider tensors (out along S, row stats along S)
  MergeCase(int64_t B, int64_t S, int64_t H, int64_t Dv, int parts, bool strided)
      : B(B), S(S), H(H), Dv(Dv), parts(parts), strided(strided) {}
  std::vector<Op> ops() const override { return {Op::kAttentionMerge}; }
  std::string vars() const override {
    return backend_ops::vars("B", B, "S", S, "H", H, "Dv", Dv, "parts", parts, "strided", strided);
  }
  int64_t Sx() const { return strided ? S + 3 : S; }
  static bool empty_row(int64_t r, int p) { return r % 7 == 6 || (r + p) % 5 == 0; }
  std::vector<InputSpec> inputs() const override {
    std::vector<InputSpec> in;
    for (int p = 0; p < parts; ++p) {
      in.push_back(act(indexed("out", p), {B, Sx(), H, Dv}, -3.0f, 3.0f));
      InputSpec m = f32(indexed("row_max", p), {B, H, Sx()});
      m.values = [p](size_t n, uint64_t seed) {
        std::vector<float> v = testing::random_values(n, seed, -4.0f, 4.0f);
        for (size_t i = 0; i < n; ++i) {
          v[i] = empty_row(static_cast<int64_t>(i), p) ? -INFINITY : std::round(v[i]);
        }
        return v;
      };
      InputSpec l = f32(indexed("row_sum", p), {B, H, Sx()});
      l.values = [p](size_t n, uint64_t seed) {
        std::vector<float> v = testing::random_values(n, seed, 0.5f, 4.0f);
        for (size_t i = 0; i < n; ++i) {
          if (empty_row(static_cast<int64_t>(i), p)) v[i] = 0.0f;
        }
        return v;
      };
      in.push_back(m);
      in.push_back(l);
    }
    return in;
  }
  std::vector<Tensor> views(const std::vector<Tensor>& in) const override {
    if (!strided) return in;
    std::vector<Tensor> v;
    for (int p = 0; p < parts; ++p) {
      v.push_back(in[3 * p].slice(1, 2, 2 + S));
      v.push_back(in[3 * p + 1].slice(2, 1, 1 + S));
      v.push_back(in[3 * p + 2].slice(2, 1, 1 + S));
    }
    return v;
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    core::AttentionMergeState st;
    for (int p = 0; p < parts; ++p)
      core::attention_merge_add(st, in[3 * p], in[3 * p + 1], in[3 * p + 2]);
    return {{{"out", core::attention_merge_result(st)}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    std::vector<std::vector<double>> o, m, l;
    for (int p = 0; p < parts; ++p) {
      o.push_back(values(in[3 * p]));
      m.push_back(values(in[3 * p + 1]));
      l.push_back(values(in[3 * p + 2]));
    }
    std::vector<double> out(B * S * H * Dv, 0.0);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t s = 0; s < S; ++s) {
        for (int64_t h = 0; h < H; ++h) {
          const int64_t si = (b * H + h) * S + s;
          double mm = -INFINITY;
          for (int p = 0; p < parts; ++p) mm = std::max(mm, m[p][si]);
          if (mm == -INFINITY) continue;
          double den = 0;
          for (int p = 0; p < parts; ++p) {
            if (m[p][si] != -INFINITY) den += std::exp2(m[p][si] - mm) * l[p][si];
          }
          for (int64_t d = 0; d < Dv; ++d) {
            double num = 0;
            const int64_t oi = ((b * S + s) * H + h) * Dv + d;
            for (int p = 0; p < parts; ++p) {
              if (m[p][si] != -INFINITY) num += std::exp2(m[p][si] - mm) * o[p][oi];
            }
            out[oi] = den > 0 ? num / den : 0.0;
          }
        }
      }
    }
    return {ref_output("out", {B, S, H, Dv}, out)};
  }
};

// Ring attention on one device: the keys in `blocks` uneven blocks, each block's unnormalized
// attention merged; equal to the attention over all keys.
struct RingCase : Case {
  int64_t B, Sq, Sk, H, D;
  int blocks;
  Mask mask;
  RingCase(int64_t B, int64_t Sq, int64_t Sk, int64_t H, int64_t D, int blocks, Mask mask)
      : B(B), Sq(Sq), Sk(Sk), H(H), D(D), blocks(blocks), mask(mask) {}
  std::vector<Op> ops() const override { return {Op::kAttentionMerge, Op::kAttention}; }
  std::string vars() const override {
    return backend_ops::vars("ring_blocks", blocks, "B", B, "Sq", Sq, "Sk", Sk, "H", H, "D", D,
                             "mask", fmt_mask(mask));
  }
  std::vector<InputSpec> inputs() const override {
    AttentionCase a(B, Sq, Sk, H, D, D, mask, Bias::kNone, false, 0.0f, Layout::kSeparate,
                    AttentionBackend::kAuto);
    return a.inputs();
  }
  Result run(const std::vector<Tensor>& in, const Run&) const override {
    core::AttentionMergeState st;
    int64_t start = 0;
    for (int i = 0; i < blocks; ++i) {
      // Uneven blocks: the first ones larger.
      const int64_t end =
          i + 1 == blocks ? Sk : start + (Sk - start + (blocks - i) / 2) / (blocks - i);
      core::AttentionOptions o;
      o.unnormalized = true;
      if (mask != Mask::kNone) o.key_mask = in[3].slice(1, start, end);
      const core::AttentionResult r =
          core::attention(in[0], in[1].slice(1, start, end), in[2].slice(1, start, end), o);
      core::attention_merge_add(st, r.out, r.row_max, r.row_sum);
      start = end;
    }
    return {{{"out", core::attention_merge_result(st)}}, {}};
  }
  std::vector<RefOutput> reference(const std::vector<Tensor>& in) const override {
    const Plain p =
        plain_attention(values(in[0]), values(in[1]), values(in[2]), B, Sq, Sk, H, D, D,
                        1.0 / std::sqrt(static_cast<double>(D)),
                        mask != Mask::kNone ? values(in[3]) : std::vector<double>(), {}, {});
    return {ref_output("out", {B, Sq, H, D}, p.out)};
  }
};

}  // namespace

void add_attention_cases(CaseList& c) {
  using AB = AttentionBackend;
  const AB kAll[] = {AB::kAuto, AB::kCudnn, AB::kParadit};
  auto add = [&](int64_t B, int64_t Sq, int64_t Sk, int64_t H, int64_t D, int64_t Dv, Mask m,
                 Bias b, bool lse, float scale, Layout l, AB be) {
    c.push_back(std::make_unique<AttentionCase>(B, Sq, Sk, H, D, Dv, m, b, lse, scale, l, be));
  };
  for (AB be : kAll) {
    // Tails in both sequences, head dims 64 and 128 (paradit's flash kernel), masks, LSE.
    add(2, 77, 131, 2, 64, 64, Mask::kNone, Bias::kNone, true, 0.0f, Layout::kSeparate, be);
    add(3, 77, 131, 2, 64, 64, Mask::kF32, Bias::kNone, true, 0.0f, Layout::kSeparate, be);
    add(2, 45, 70, 2, 128, 128, Mask::kBool, Bias::kNone, true, 0.0f, Layout::kSeparate, be);
    // 72 (Hunyuan): cuDNN yes, paradit's reference kernel.
    add(2, 33, 50, 3, 72, 72, Mask::kNone, Bias::kNone, true, 0.0f, Layout::kSeparate, be);
    // Projection views, explicit scale.
    add(2, 100, 100, 3, 128, 128, Mask::kNone, Bias::kNone, false, 0.05f, Layout::kFused, be);
    add(1, 64, 64, 2, 64, 64, Mask::kNone, Bias::kNone, true, 0.0f, Layout::kPacked, be);
    // A bias cuDNN takes (rows of Sk = 32 floats) and one broadcast over heads and queries.
    add(2, 24, 32, 2, 64, 64, Mask::kNone, Bias::kFull, true, 0.0f, Layout::kSeparate, be);
    add(2, 24, 40, 2, 64, 64, Mask::kNone, Bias::kKeys, false, 0.0f, Layout::kSeparate, be);
    // Long sequence: many key tiles.
    add(1, 1100, 1100, 2, 128, 128, Mask::kNone, Bias::kNone, true, 0.0f, Layout::kSeparate, be);
  }
  // A batch that sees no key: zeros and −inf, per backend (cuDNN gets it as seq_kv = 0).
  add(3, 20, 37, 2, 64, 64, Mask::kEmpty, Bias::kNone, true, 0.0f, Layout::kSeparate, AB::kParadit);
  add(3, 20, 37, 2, 64, 64, Mask::kEmpty, Bias::kNone, true, 0.0f, Layout::kSeparate, AB::kCudnn);
  add(3, 20, 37, 2, 40, 40, Mask::kEmpty, Bias::kNone, true, 0.0f, Layout::kSeparate, AB::kAuto);
  // Dv ≠ D, odd head dims (paradit's reference kernel; cuDNN refuses the odd ones).
  add(2, 19, 23, 3, 40, 24, Mask::kF32, Bias::kHeads, true, 0.0f, Layout::kSeparate, AB::kAuto);
  add(2, 19, 23, 3, 40, 24, Mask::kNone, Bias::kNone, true, 0.0f, Layout::kSeparate, AB::kCudnn);
  add(2, 17, 29, 2, 33, 33, Mask::kBool, Bias::kNone, true, 0.0f, Layout::kSeparate, AB::kAuto);
  add(1, 9, 13, 2, 7, 5, Mask::kNone, Bias::kFull, true, 0.7f, Layout::kSeparate, AB::kParadit);
  // Degenerate sizes: one query and one key; no keys at all.
  add(2, 1, 1, 4, 64, 64, Mask::kNone, Bias::kNone, true, 0.0f, Layout::kSeparate, AB::kAuto);
  add(2, 5, 0, 2, 64, 64, Mask::kNone, Bias::kNone, true, 0.0f, Layout::kSeparate, AB::kAuto);
  // Realistic head count.
  add(1, 256, 256, 24, 128, 128, Mask::kNone, Bias::kNone, true, 0.0f, Layout::kFused, AB::kAuto);

  // The unnormalized form (paradit's kernels on CUDA; cuDNN has none).
  c.push_back(std::make_unique<AttentionPartialCase>(2, 77, 131, 2, 64, Mask::kNone));
  c.push_back(std::make_unique<AttentionPartialCase>(3, 40, 70, 2, 128, Mask::kEmpty));
  c.push_back(std::make_unique<AttentionPartialCase>(2, 19, 23, 3, 40, Mask::kBool));
  c.push_back(
      std::make_unique<AttentionPartialCase>(2, 64, 64, 2, 64, Mask::kNone, Layout::kFused));

  // attention_merge
  c.push_back(std::make_unique<MergeCase>(2, 9, 3, 16, 2, false));
  c.push_back(std::make_unique<MergeCase>(2, 9, 3, 16, 4, true));
  c.push_back(std::make_unique<MergeCase>(1, 31, 2, 72, 3, false));
  c.push_back(std::make_unique<RingCase>(2, 50, 131, 2, 64, 3, Mask::kNone));
  c.push_back(std::make_unique<RingCase>(3, 40, 70, 2, 128, 4, Mask::kEmpty));
  c.push_back(std::make_unique<RingCase>(2, 19, 23, 3, 40, 2, Mask::kF32));
}

}  // namespace paradit::backend_ops
