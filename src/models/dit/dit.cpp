#include "models/dit/dit.h"

#include <string>
#include <utility>
#include <vector>

#include "models/common/embeddings.h"
#include "models/common/modules.h"
#include "parallel/joint.h"

namespace paradit::models::dit {

namespace {

using common::Linear;
using core::Tensor;

constexpr const char* kName = "DiTTransformer2DModel";

// config.json with diffusers' DiTTransformer2DModel.__init__ defaults.
struct DiTConfig {
  int64_t heads = 16;
  int64_t head_dim = 72;
  int64_t dim = 0;  // heads · head_dim
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  int64_t num_layers = 28;
  int64_t sample_size = 32;
  int64_t patch_size = 2;
  int64_t num_classes = 1000;  // num_embeds_ada_norm
  bool attention_bias = true;
  bool norm_elementwise_affine = false;
  float norm_eps = 1e-5f;
  common::FeedForwardKind ff_kind = common::FeedForwardKind::kGeluTanh;

  static DiTConfig parse(const io::Config& c) {
    DiTConfig d;
    const std::string& where = c.where();
    d.heads = c.get_int("num_attention_heads", 16);
    d.head_dim = c.get_int("attention_head_dim", 72);
    d.dim = d.heads * d.head_dim;
    d.in_channels = c.get_int("in_channels", 4);
    d.out_channels = c.get_int("out_channels", d.in_channels);  // null → in_channels
    d.num_layers = c.get_int("num_layers", 28);
    d.sample_size = c.get_int("sample_size", 32);
    d.patch_size = c.get_int("patch_size", 2);
    PARADIT_CHECK(c.has("num_embeds_ada_norm") || !c.json().contains("num_embeds_ada_norm"), where,
                  ": num_embeds_ada_norm must not be null for norm_type ada_norm_zero");
    d.num_classes = c.get_int("num_embeds_ada_norm", 1000);
    d.attention_bias = c.get_bool("attention_bias", true);
    d.norm_elementwise_affine = c.get_bool("norm_elementwise_affine", false);
    d.norm_eps = static_cast<float>(c.get_float("norm_eps", 1e-5));
    d.ff_kind = common::feed_forward_kind_from_name(
        c.get_string("activation_fn", "gelu-approximate"), where);
    const std::string norm_type = c.get_string("norm_type", "ada_norm_zero");
    PARADIT_CHECK(norm_type == "ada_norm_zero", where, ": norm_type '", norm_type,
                  "' is not supported by ", kName, " (expected ada_norm_zero)");
    PARADIT_CHECK(d.heads > 0 && d.head_dim > 0 && d.num_layers >= 1 && d.patch_size > 0 &&
                      d.sample_size > 0 && d.in_channels > 0 && d.out_channels > 0 &&
                      d.num_classes > 0,
                  where, ": sizes must be positive (and num_layers at least 1)");
    return d;
  }
};

// diffusers CombinedTimestepLabelEmbeddings: sinusoidal timestep (256, flip, shift 1) →
// TimestepEmbedding, plus the class embedding (num_classes + 1 rows: the last is CFG's null class).
struct TimestepLabelEmbedding {
  common::Timesteps time_proj{256, true, 1.0};
  common::TimestepEmbedding timestep_embedder;
  Tensor class_table;  // (num_classes + 1, D)
  void bind(const common::WeightScope& w, int64_t num_classes, int64_t dim) {
    timestep_embedder.bind(w / "timestep_embedder", 256, dim);
    class_table = w.matrix("class_embedder.embedding_table.weight", {num_classes + 1, dim});
  }
  // t: (B) F32   labels: (B) I64 → (B, D)
  Tensor operator()(const Tensor& t, const Tensor& labels) const {
    Tensor temb = timestep_embedder(time_proj(t));       // (B, D)
    Tensor cemb = core::embedding(class_table, labels);  // (B, D)
    return core::add(temb, cemb);                        // (B, D)
  }
};

// Self-attention projections; under tensor parallelism only the columns [c0, c1) of this
// rank's heads (to_q/k/v: output features, to_out: input features, its bias on rank 0 alone).
struct AttentionWeights {
  Linear to_q, to_k, to_v, to_out;
  void bind(const common::WeightScope& w, int64_t dim, bool bias,
            const parallel::TensorParallel& tp, int64_t heads, int64_t head_dim) {
    const auto [h0, h1] = tp.share(heads);
    const int64_t c0 = h0 * head_dim, c1 = h1 * head_dim;
    to_q.bind_columns(w / "to_q", dim, dim, c0, c1, bias);
    to_k.bind_columns(w / "to_k", dim, dim, c0, c1, bias);
    to_v.bind_columns(w / "to_v", dim, dim, c0, c1, bias);
    to_out.bind_rows(w / "to_out" / "0", dim, dim, c0, c1, tp.rank() == 0);
  }
};

// BasicTransformerBlock with norm_type ada_norm_zero and no cross-attention.
struct Block {
  TimestepLabelEmbedding emb;      // norm1.emb
  common::AdaLayerNormZero norm1;  // norm1.linear (6·D, D); layer norm eps 1e-6, no affine
  AttentionWeights attn1;
  common::LayerNorm norm3;  // eps = config norm_eps
  common::FeedForward ff;
};

// The one place DiT calls attention: self-attention over this rank's block of the image tokens
// (sequence parallel through parallel/joint.h; padded keys masked). q, k, v (B, N, H, Dh) →
// (B, N, H, Dh).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v,
              const parallel::TokenLayout& tokens) {
  return parallel::joint_attention(q, k, v, tokens);
}

class DiTTransformer : public Transformer {
 public:
  DiTTransformer(const io::Config& config, const common::WeightProvider& provider,
                 const core::Placement& place, const parallel::TensorParallel& tp)
      : cfg_(DiTConfig::parse(config)), place_(place), tp_(tp) {
    const common::WeightScope w(provider, "", place);
    const int64_t D = cfg_.dim, inner = 4 * D;  // FeedForward's mult 4
    parallel::check_tensor_parallel(
        tp.degree(), {cfg_.heads, inner},
        detail::concat("the ", cfg_.heads, " attention heads and the MLP width ", inner), kName);
    const auto [u0, u1] = tp.share(inner);  // this rank's MLP hidden units

    common::PatchEmbedOptions pe;
    pe.height = pe.width = cfg_.sample_size;
    pe.patch_size = cfg_.patch_size;
    pe.in_channels = cfg_.in_channels;
    pe.embed_dim = D;
    pe.interpolation_scale = 1.0;
    pe.pos_embed = common::PosEmbedKind::kSinCos;
    pos_embed_.bind(w / "pos_embed", pe);

    blocks_.resize(static_cast<size_t>(cfg_.num_layers));
    for (int64_t i = 0; i < cfg_.num_layers; ++i) {
      const common::WeightScope b = w / "transformer_blocks" / static_cast<int>(i);
      Block& blk = blocks_[static_cast<size_t>(i)];
      blk.emb.bind(b / "norm1" / "emb", cfg_.num_classes, D);
      blk.norm1.bind(b / "norm1", D);
      blk.attn1.bind(b / "attn1", D, cfg_.attention_bias, tp, cfg_.heads, cfg_.head_dim);
      blk.norm3.bind(b / "norm3", D, cfg_.norm_eps, cfg_.norm_elementwise_affine);
      blk.ff.bind_share(b / "ff", D, cfg_.ff_kind, inner, u0, u1, tp.rank() == 0);
    }
    norm_out_.eps = 1e-6f;  // nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
    proj_out_1_.bind(w / "proj_out_1", D, 2 * D);
    proj_out_2_.bind(w / "proj_out_2", D, cfg_.patch_size * cfg_.patch_size * cfg_.out_channels);
  }

  std::string class_name() const override { return kName; }

  Tensor forward(const NamedTensors& inputs) const override { return forward(inputs, nullptr); }

  Tensor forward(const NamedTensors& inputs, const parallel::SequenceContext* sp) const override {
    const std::unique_ptr<TransformerPass> pass = begin_pass(inputs, sp, nullptr, true);
    run_layers(*pass, 0, num_layers());
    return end_pass(*pass);
  }

  // The forward in parts (for the step caches; no PipeFusion: begin_pass takes no PassPlan).
  int64_t num_layers() const override { return cfg_.num_layers; }

  std::unique_ptr<TransformerPass> begin_pass(const NamedTensors& inputs,
                                              const parallel::SequenceContext* sp,
                                              const parallel::PassPlan* plan,
                                              bool embed) const override {
    PARADIT_CHECK(plan == nullptr, kName, ": PipeFusion is not supported for this family");
    const int64_t p = cfg_.patch_size;
    const Tensor x_in = common::require_input(inputs, "hidden_states", kName, "(B, C, H, W)");
    common::check_input(
        x_in.ndim() == 4 && x_in.dim(1) == cfg_.in_channels && x_in.dim(2) % p == 0 &&
            x_in.dim(3) % p == 0,
        x_in, "hidden_states", kName,
        detail::concat("(B, ", cfg_.in_channels, ", H, W) with H, W multiples of ", p));
    const int64_t B = x_in.dim(0), h = x_in.dim(2) / p, w = x_in.dim(3) / p;
    auto pass = std::make_unique<Pass>();
    pass->t = batch_timestep(inputs, B);     // (B)
    pass->labels = class_labels(inputs, B);  // (B) I64
    pass->h = h;
    pass->w = w;

    // Under sequence parallelism this rank keeps its block of the image tokens (padded to a
    // multiple of the degree).
    pass->tokens = parallel::plan_tokens(B, 0, h * w, sp, false, nullptr, place_.device);
    if (embed) {
      pass->streams = {
          pass->tokens.shard_image(pos_embed_(place_.activation(x_in)),
                                   1)};  // (B, N, D), N = h·w (local block), on the model's device
    }
    return pass;
  }

  void run_layers(TransformerPass& pass, int64_t begin, int64_t end) const override {
    const Pass& ps = static_cast<const Pass&>(pass);
    const int64_t H = cfg_.heads / tp_.degree();  // this rank's heads
    Tensor x = pass.streams.at(0);  // (B, N, D)
    for (int64_t i = begin; i < end; ++i) {
      const Block& blk = blocks_[static_cast<size_t>(i)];
      const Tensor cond = blk.emb(ps.t, ps.labels);  // (B, D)
      const auto m = blk.norm1(x, cond);             // m.x: (B, N, D); gates, shift, scale: (B, D)

      // self-attention over this rank's H = heads / tp heads
      Tensor q = common::split_heads(blk.attn1.to_q(m.x), H);  // (B, N, H, Dh)
      Tensor k = common::split_heads(blk.attn1.to_k(m.x), H);  // (B, N, H, Dh)
      Tensor v = common::split_heads(blk.attn1.to_v(m.x), H);  // (B, N, H, Dh)
      Tensor a = attend(q, k, v, ps.tokens);                   // (B, N, H, Dh)
      a = blk.attn1.to_out(common::merge_heads(a));            // (B, N, D), this rank's part
      tp_.reduce(a);                                           // (B, N, D), summed over tp
      x = core::gated_add(x, m.gate_msa, a);                   // (B, N, D)

      // feed-forward over this rank's share of the hidden units
      Tensor n = blk.norm3(x, {m.shift_mlp, m.scale_mlp});  // (B, N, D), modulated
      Tensor f = blk.ff(n);                                 // (B, N, D), this rank's part
      tp_.reduce(f);                                        // (B, N, D), summed over tp
      x = core::gated_add(x, m.gate_mlp, f);                // (B, N, D)
    }
    pass.streams = {x};
  }

  Tensor end_pass(TransformerPass& pass) const override {
    const Pass& ps = static_cast<const Pass&>(pass);
    const int64_t p = cfg_.patch_size;
    // The output modulation reuses the first block's conditioning embedding, as diffusers does.
    const Tensor cond = blocks_.front().emb(ps.t, ps.labels);               // (B, D)
    const auto shift_scale = common::ada_modulation(proj_out_1_, cond, 2);  // shift, scale (B, D)
    Tensor x = norm_out_(pass.streams.at(0), {shift_scale[0], shift_scale[1]});  // (B, N, D)
    x = proj_out_2_(x);                                              // (B, N, p·p·C_out)
    x = ps.tokens.gather_image(x, 1);                                // (B, h·w, p·p·C_out)
    return common::unpatchify(x, ps.h, ps.w, p, cfg_.out_channels);  // (B, C_out, H, W)
  }

  // TeaCache: the first block's adaLN-modulated input of the image tokens.
  CacheProbe teacache_probe(const TransformerPass& pass) const override {
    const Pass& ps = static_cast<const Pass&>(pass);
    const Block& blk = blocks_.front();
    return {blk.norm1(pass.streams.at(0), blk.emb(ps.t, ps.labels)).x, true};  // (B, N, D)
  }

 private:
  // A pass's conditioning: the timestep and class labels every block embeds.
  struct Pass : TransformerPass {
    Tensor t;              // (B)
    Tensor labels;         // (B) I64
    int64_t h = 0, w = 0;  // token grid
  };

  static Tensor batch_timestep(const NamedTensors& inputs, int64_t B) {
    Tensor v = common::require_input(inputs, "timestep", kName, detail::concat("(", B, ")"));
    common::check_input(v.numel() == B || v.numel() == 1, v, "timestep", kName,
                        detail::concat("(", B, ") or a single value"));
    v = v.contiguous().reshape({v.numel()});
    if (v.numel() == 1 && B != 1) v = core::add(Tensor::zeros({B}), v);  // (B)
    return v;
  }

  Tensor class_labels(const NamedTensors& inputs, int64_t B) const {
    auto it = inputs.find("class_labels");
    PARADIT_CHECK(it != inputs.end() && it->second.defined(), kName,
                  ": forward input 'class_labels' is missing (expected (", B,
                  ") I64 class indices)");
    Tensor labels = it->second;
    PARADIT_CHECK(labels.dtype() == core::DType::I64 || labels.dtype() == core::DType::I32, kName,
                  ": forward input 'class_labels' has dtype ", core::dtype_name(labels.dtype()),
                  ", expected I64 or I32");
    common::check_input(labels.numel() == B, labels, "class_labels", kName,
                        detail::concat("(", B, ")"));
    labels = labels.contiguous().reshape({B});
    const std::vector<int64_t> ids = labels.to_vector_i64();  // host metadata
    for (int64_t i = 0; i < B; ++i) {
      const int64_t id = ids[static_cast<size_t>(i)];
      PARADIT_CHECK(id >= 0 && id <= cfg_.num_classes, kName, ": class_labels[", i, "] = ", id,
                    " is out of range [0, ", cfg_.num_classes, "] (", cfg_.num_classes,
                    " is the unconditional class)");
    }
    return labels;
  }

  DiTConfig cfg_;
  core::Placement place_;
  parallel::TensorParallel tp_;  // whole layers when degree 1
  common::PatchEmbed pos_embed_;
  std::vector<Block> blocks_;
  common::LayerNorm norm_out_;
  Linear proj_out_1_, proj_out_2_;
};

}  // namespace

std::unique_ptr<Transformer> make_dit_transformer(const io::Config& config,
                                                  const common::WeightProvider& weights,
                                                  const core::Placement& place,
                                                  const parallel::TensorParallel& tp) {
  return std::make_unique<DiTTransformer>(config, weights, place, tp);
}

}  // namespace paradit::models::dit
