#include "models/common/modules.h"

namespace paradit::models::common {

// ---------------------------------------------------------------- activations
core::Tensor activate(const core::Tensor& x, Activation act) {
  switch (act) {
    case Activation::kIdentity:
      return x;
    case Activation::kSiLU:
      return core::silu(x);
    case Activation::kGelu:
      return core::gelu(x, /*tanh_approx=*/false);
    case Activation::kGeluTanh:
      return core::gelu(x, /*tanh_approx=*/true);
    case Activation::kQuickGelu:
      return core::quick_gelu(x);
  }
  fail("activate: unknown activation ", static_cast<int>(act));
}

Activation activation_from_name(const std::string& name, const std::string& where) {
  if (name == "silu" || name == "swish") return Activation::kSiLU;
  if (name == "gelu") return Activation::kGelu;
  if (name == "gelu_tanh" || name == "gelu-approximate" || name == "gelu_pytorch_tanh")
    return Activation::kGeluTanh;
  if (name == "quick_gelu") return Activation::kQuickGelu;
  if (name == "linear" || name == "identity") return Activation::kIdentity;
  fail(where, ": activation '", name,
       "' is not supported (expected silu, swish, gelu, gelu_tanh, quick_gelu or linear)");
}

// ---------------------------------------------------------------- forward inputs
core::Tensor require_input(const Inputs& inputs, const std::string& name, const std::string& model,
                           const std::string& expected) {
  auto it = inputs.find(name);
  if (it == inputs.end() || !it->second.defined()) {
    fail(model, ": forward input '", name, "' is missing (expected ", expected, ")");
  }
  return it->second.to(core::DType::F32);
}

core::Tensor optional_input(const Inputs& inputs, const std::string& name) {
  auto it = inputs.find(name);
  if (it == inputs.end() || !it->second.defined()) return {};
  return it->second.to(core::DType::F32);
}

core::Tensor like(const core::Tensor& table, const core::Tensor& x) {
  return table.to_device(x.device()).to(x.dtype());
}

core::Tensor batch_vector(const core::Tensor& t, int64_t batch, const std::string& name,
                          const std::string& model) {
  check_input(t.ndim() <= 1 && (t.numel() == batch || t.numel() == 1), t, name, model,
              detail::concat("[", batch, "] (one value per sample) or [1]"));
  std::vector<float> v = t.to_vector();
  if (static_cast<int64_t>(v.size()) != batch) v.assign(batch, v[0]);
  return core::Tensor::from_vector(v, {batch});
}

void check_input(bool ok, const core::Tensor& t, const std::string& name, const std::string& model,
                 const std::string& expected) {
  if (!ok) {
    fail(model, ": forward input '", name, "' has shape ", core::shape_str(t.shape()),
         ", expected ", expected);
  }
}

// ---------------------------------------------------------------- attention heads
core::Tensor split_heads(const core::Tensor& x, int64_t heads) {
  PARADIT_CHECK(x.ndim() == 3 && heads > 0 && x.dim(2) % heads == 0, "split_heads: ", x.str(),
                " cannot be split into ", heads, " heads");
  return x.contiguous().reshape({x.dim(0), x.dim(1), heads, x.dim(2) / heads});
}

core::Tensor merge_heads(const core::Tensor& x) {
  PARADIT_CHECK(x.ndim() == 4, "merge_heads: expected (B, S, H, D), got ", x.str());
  return x.contiguous().reshape({x.dim(0), x.dim(1), x.dim(2) * x.dim(3)});
}

HeadNormKind head_norm_kind_from_name(const std::string& name, const std::string& where) {
  if (name.empty() || name == "null" || name == "none") return HeadNormKind::kNone;
  if (name == "rms_norm") return HeadNormKind::kRMSNorm;
  if (name == "layer_norm") return HeadNormKind::kLayerNorm;
  fail(where, ": qk_norm '", name, "' is not supported (expected null, rms_norm or layer_norm)");
}

void HeadNorm::bind(const WeightScope& w, int64_t head_dim, HeadNormKind kind_, float eps,
                    bool affine) {
  kind = kind_;
  if (kind == HeadNormKind::kRMSNorm) rms.bind(w, head_dim, eps, affine);
  if (kind == HeadNormKind::kLayerNorm) ln.bind(w, head_dim, eps, affine, affine);
}

core::Tensor HeadNorm::operator()(const core::Tensor& x) const {
  switch (kind) {
    case HeadNormKind::kNone:
      return x;
    case HeadNormKind::kRMSNorm:
      return rms(x);
    case HeadNormKind::kLayerNorm:
      return ln(x);
  }
  return x;
}

// ---------------------------------------------------------------- FeedForward
FeedForwardKind feed_forward_kind_from_name(const std::string& fn, const std::string& where) {
  if (fn == "gelu") return FeedForwardKind::kGelu;
  if (fn == "gelu-approximate") return FeedForwardKind::kGeluTanh;
  if (fn == "geglu") return FeedForwardKind::kGeGLU;
  if (fn == "geglu-approximate") return FeedForwardKind::kApproxGelu;
  if (fn == "swiglu") return FeedForwardKind::kSwiGLU;
  if (fn == "linear-silu") return FeedForwardKind::kLinearSiLU;
  fail(where, ": activation_fn '", fn,
       "' is not supported (expected gelu, gelu-approximate, geglu, geglu-approximate, swiglu "
       "or linear-silu)");
}

static bool is_gated(FeedForwardKind k) {
  return k == FeedForwardKind::kGeGLU || k == FeedForwardKind::kSwiGLU;
}

void FeedForward::bind(const WeightScope& w, int64_t dim, FeedForwardKind kind_, int64_t dim_out,
                       int64_t inner_dim, double mult, bool bias) {
  kind = kind_;
  const int64_t inner = inner_dim > 0 ? inner_dim : static_cast<int64_t>(dim * mult);
  const int64_t out_dim = dim_out > 0 ? dim_out : dim;
  proj.bind(w / "net" / "0" / "proj", dim, is_gated(kind) ? 2 * inner : inner, bias);
  out.bind(w / "net" / "2", inner, out_dim, bias);
}

void FeedForward::bind_share(const WeightScope& w, int64_t dim, FeedForwardKind kind_,
                             int64_t inner, int64_t begin, int64_t end, bool out_bias, bool bias) {
  kind = kind_;
  const WeightScope p = w / "net" / "0" / "proj";
  if (!is_gated(kind)) {
    proj.bind_columns(p, dim, inner, begin, end, bias);  // (end − begin, dim)
  } else {
    // [hidden; gate] rows: this share's units of each half, kept in that order.
    const core::Shape shape{2 * inner, dim};
    proj.weight = core::concat({p.matrix_slice("weight", shape, 0, begin, end),
                                p.matrix_slice("weight", shape, 0, inner + begin, inner + end)},
                               0);  // (2·(end − begin), dim)
    proj.bias = bias ? core::concat({p.vector_slice("bias", {2 * inner}, begin, end),
                                     p.vector_slice("bias", {2 * inner}, inner + begin,
                                                    inner + end)},
                                    0)
                     : core::Tensor{};
  }
  out.bind_rows(w / "net" / "2", inner, dim, begin, end, bias && out_bias);  // (dim, end − begin)
}

core::Tensor modulated_feed_forward(const core::Tensor& x, const core::Tensor& shift_mlp,
                                    const core::Tensor& scale_mlp, const core::Tensor& gate_mlp,
                                    const FeedForward& ff, float eps) {
  const core::Tensor h =
      core::layer_norm(x, {}, {}, eps, {shift_mlp, scale_mlp});  // (B, S, D), modulated
  return core::gated_add(x, gate_mlp, ff(h));                    // (B, S, D)
}

core::Tensor FeedForward::operator()(const core::Tensor& x) const {
  // The plain kinds fuse the activation into the projection (an epilogue on CUDA).
  core::Tensor h;  // (..., inner)
  switch (kind) {
    case FeedForwardKind::kGelu:
      h = core::linear(x, proj.weight, proj.bias, core::Activation::kGeluErf);
      break;
    case FeedForwardKind::kGeluTanh:
      h = core::linear(x, proj.weight, proj.bias, core::Activation::kGeluTanh);
      break;
    case FeedForwardKind::kApproxGelu:
      h = core::linear(x, proj.weight, proj.bias, core::Activation::kQuickGelu);
      break;
    case FeedForwardKind::kLinearSiLU:
      h = core::linear(x, proj.weight, proj.bias, core::Activation::kSilu);
      break;
    case FeedForwardKind::kGeGLU: {
      h = proj(x);                                           // (..., 2·inner)
      auto parts = core::chunk(h, 2, -1);                    // hidden, gate: (..., inner)
      h = core::mul(parts[0], core::gelu(parts[1], false));  // (..., inner)
      break;
    }
    case FeedForwardKind::kSwiGLU: {
      h = proj(x);                                    // (..., 2·inner)
      auto parts = core::chunk(h, 2, -1);             // hidden, gate: (..., inner)
      h = core::mul(parts[0], core::silu(parts[1]));  // (..., inner)
      break;
    }
  }
  return out(h);  // (..., dim_out)
}

// ---------------------------------------------------------------- adaLN modulations
std::vector<core::Tensor> ada_modulation(const Linear& linear, const core::Tensor& emb, int n) {
  PARADIT_CHECK(emb.ndim() == 2, "adaLN: the conditioning embedding must be (B, C), got ",
                emb.str());
  core::Tensor e = linear(core::silu(emb));  // (B, n·D)
  return core::chunk(e, n, 1);               // n × (B, D)
}

void AdaLayerNormZero::bind(const WeightScope& w, int64_t dim, bool bias) {
  linear.bind(w / "linear", dim, 6 * dim, bias);
}

AdaLayerNormZero::Out AdaLayerNormZero::operator()(const core::Tensor& x,
                                                   const core::Tensor& emb) const {
  auto m = ada_modulation(linear, emb, 6);  // shift_msa, scale_msa, gate_msa, shift_mlp,
                                            // scale_mlp, gate_mlp: (B, D)
  return {core::layer_norm(x, {}, {}, eps, {m[0], m[1]}), m[2], m[3], m[4], m[5]};  // (B, S, D)
}

void AdaLayerNormZeroSingle::bind(const WeightScope& w, int64_t dim, bool bias) {
  linear.bind(w / "linear", dim, 3 * dim, bias);
}

AdaLayerNormZeroSingle::Out AdaLayerNormZeroSingle::operator()(const core::Tensor& x,
                                                               const core::Tensor& emb) const {
  auto m = ada_modulation(linear, emb, 3);                 // shift, scale, gate: (B, D)
  return {core::layer_norm(x, {}, {}, eps, {m[0], m[1]}), m[2]};  // (B, S, D)
}

void AdaLayerNormZeroX::bind(const WeightScope& w, int64_t dim, bool bias) {
  linear.bind(w / "linear", dim, 9 * dim, bias);
}

AdaLayerNormZeroX::Out AdaLayerNormZeroX::operator()(const core::Tensor& x,
                                                     const core::Tensor& emb) const {
  auto m = ada_modulation(linear, emb, 9);  // shift_msa, scale_msa, gate_msa, shift_mlp,
                                            // scale_mlp, gate_mlp, shift_msa2, scale_msa2,
                                            // gate_msa2: (B, D)
  core::Tensor normed = core::layer_norm(x, {}, {}, eps);  // (B, S, D)
  Out out;
  out.x = core::modulate(normed, m[0], m[1]);  // (B, S, D): one norm, two modulations
  out.gate_msa = m[2];
  out.shift_mlp = m[3];
  out.scale_mlp = m[4];
  out.gate_mlp = m[5];
  out.x2 = core::modulate(normed, m[6], m[7]);  // (B, S, D)
  out.gate_msa2 = m[8];
  return out;
}

void AdaLayerNormContinuous::bind(const WeightScope& w, int64_t dim, int64_t cond_dim,
                                  bool elementwise_affine, float eps, bool bias) {
  linear.bind(w / "linear", cond_dim, 2 * dim, bias);
  norm.bind(w / "norm", dim, eps, elementwise_affine, bias);
}

core::Tensor AdaLayerNormContinuous::operator()(const core::Tensor& x,
                                                const core::Tensor& cond) const {
  auto m = ada_modulation(linear, cond, 2);    // scale, shift: (B, D) — this order in diffusers
  return core::layer_norm(x, norm.weight, norm.bias, norm.eps, {m[1], m[0]});  // (B, S, D)
}

// ---------------------------------------------------------------- patches
core::Tensor patchify(const core::Tensor& x, int64_t p) {
  PARADIT_CHECK(x.ndim() == 4, "patchify: expected (B, C, H, W), got ", x.str());
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  PARADIT_CHECK(p > 0 && H % p == 0 && W % p == 0, "patchify: ", x.str(), " is not divisible into ",
                p, "x", p, " patches");
  const int64_t h = H / p, w = W / p;
  core::Tensor t = x.contiguous().reshape({B, C, h, p, w, p});  // (B, C, h, p, w, p)
  t = t.permute({0, 2, 4, 1, 3, 5});                            // (B, h, w, C, p, p)
  return t.reshape({B, h * w, C * p * p});                      // (B, h·w, C·p·p)
}

core::Tensor unpatchify(const core::Tensor& x, int64_t h, int64_t w, int64_t p, int64_t channels) {
  PARADIT_CHECK(x.ndim() == 3 && x.dim(1) == h * w && x.dim(2) == p * p * channels,
                "unpatchify: ", x.str(), " does not hold ", h, "x", w, " patches of ", p, "x", p,
                "x", channels);
  const int64_t B = x.dim(0);
  core::Tensor t = x.contiguous().reshape({B, h, w, p, p, channels});  // (B, h, w, p, q, C)
  t = t.permute({0, 5, 1, 3, 2, 4});                                   // (B, C, h, p, w, q)
  return t.reshape({B, channels, h * p, w * p});                       // (B, C, H, W)
}

}  // namespace paradit::models::common
