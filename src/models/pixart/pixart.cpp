#include "models/pixart/pixart.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "models/common/embeddings.h"
#include "models/common/modules.h"
#include "parallel/joint.h"

namespace paradit::models::pixart {

namespace {

using common::Linear;
using core::Tensor;

constexpr const char* kName = "PixArtTransformer2DModel";

// config.json with diffusers' PixArtTransformer2DModel.__init__ defaults.
struct PixArtConfig {
  int64_t heads = 16;
  int64_t head_dim = 72;
  int64_t dim = 0;  // heads · head_dim
  int64_t in_channels = 4;
  int64_t out_channels = 8;
  int64_t num_layers = 28;
  int64_t cross_attention_dim = 1152;
  int64_t sample_size = 128;
  int64_t patch_size = 2;
  int64_t caption_channels = 0;  // 0: no caption_projection
  bool attention_bias = true;
  bool norm_elementwise_affine = false;
  float norm_eps = 1e-6f;
  double interpolation_scale = 1.0;
  bool use_additional_conditions = false;
  common::FeedForwardKind ff_kind = common::FeedForwardKind::kGeluTanh;

  static PixArtConfig parse(const io::Config& c) {
    PixArtConfig p;
    const std::string& where = c.where();
    p.heads = c.get_int("num_attention_heads", 16);
    p.head_dim = c.get_int("attention_head_dim", 72);
    p.dim = p.heads * p.head_dim;
    p.in_channels = c.get_int("in_channels", 4);
    // diffusers: out_channels defaults to 8; an explicit null means in_channels.
    p.out_channels =
        c.json().contains("out_channels") ? c.get_int("out_channels", p.in_channels) : 8;
    p.num_layers = c.get_int("num_layers", 28);
    p.cross_attention_dim = c.get_int("cross_attention_dim", 1152);
    p.sample_size = c.get_int("sample_size", 128);
    p.patch_size = c.get_int("patch_size", 2);
    p.caption_channels = c.get_int("caption_channels", 0);
    p.attention_bias = c.get_bool("attention_bias", true);
    p.norm_elementwise_affine = c.get_bool("norm_elementwise_affine", false);
    p.norm_eps = static_cast<float>(c.get_float("norm_eps", 1e-6));
    p.interpolation_scale = c.has("interpolation_scale")
                                ? c.get_float("interpolation_scale")
                                : static_cast<double>(std::max<int64_t>(p.sample_size / 64, 1));
    // diffusers: null → micro-conditions only for the 1024² models (sample_size 128).
    p.use_additional_conditions = c.has("use_additional_conditions")
                                      ? c.get_bool("use_additional_conditions", false)
                                      : p.sample_size == 128;
    p.ff_kind = common::feed_forward_kind_from_name(
        c.get_string("activation_fn", "gelu-approximate"), where);

    const std::string norm_type = c.get_string("norm_type", "ada_norm_single");
    PARADIT_CHECK(norm_type == "ada_norm_single", where, ": norm_type '", norm_type,
                  "' is not supported by ", kName, " (expected ada_norm_single)");
    PARADIT_CHECK(c.has("num_embeds_ada_norm") || !c.json().contains("num_embeds_ada_norm"), where,
                  ": num_embeds_ada_norm must not be null for norm_type ada_norm_single");
    const std::string attention_type = c.get_string("attention_type", "default");
    PARADIT_CHECK(attention_type == "default", where, ": attention_type '", attention_type,
                  "' is not supported (expected default)");
    PARADIT_CHECK(p.heads > 0 && p.head_dim > 0 && p.num_layers >= 0 && p.patch_size > 0 &&
                      p.sample_size > 0 && p.in_channels > 0 && p.out_channels > 0,
                  where, ": sizes must be positive");
    PARADIT_CHECK(!p.use_additional_conditions || p.dim % 3 == 0, where,
                  ": use_additional_conditions needs a hidden size divisible by 3, found ", p.dim);
    return p;
  }
};

// diffusers Attention (processor AttnProcessor2_0) as BasicTransformerBlock builds it: separate
// to_q/to_k/to_v, to_out.0, no q/k norm.
struct AttentionWeights {
  Linear to_q, to_k, to_v, to_out;
  void bind(const common::WeightScope& w, int64_t dim, int64_t kv_dim, bool bias) {
    to_q.bind(w / "to_q", dim, dim, bias);
    to_k.bind(w / "to_k", kv_dim, dim, bias);
    to_v.bind(w / "to_v", kv_dim, dim, bias);
    to_out.bind(w / "to_out" / "0", dim, dim, true);
  }
};

// BasicTransformerBlock with norm_type ada_norm_single.
struct Block {
  Tensor scale_shift_table;        // (6, D)
  common::LayerNorm norm1, norm2;  // no affine unless norm_elementwise_affine
  AttentionWeights attn1, attn2;   // self-attention, cross-attention to the caption
  common::FeedForward ff;
};

// The places PixArt calls attention. Self-attention over this rank's block of the image tokens
// (sequence parallel through parallel/joint.h; padded keys masked): q, k, v (B, N, H, Dh) →
// (B, N, H, Dh).
Tensor self_attend(const Tensor& q, const Tensor& k, const Tensor& v,
                   const parallel::TokenLayout& tokens) {
  return parallel::joint_attention(q, k, v, tokens);
}

// Cross-attention: this rank's queries against the whole caption, which every rank holds, so it
// needs no communication. q (B, Sq, H, Dh), k/v (B, Sk, H, Dh), key_mask (B, Sk) or {} →
// (B, Sq, H, Dh).
Tensor cross_attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask) {
  core::AttentionOptions options;
  options.key_mask = key_mask;
  return core::attention(q, k, v, options).out;
}

class PixArtTransformer : public Transformer {
 public:
  PixArtTransformer(const io::Config& config, const common::WeightProvider& provider,
                    const core::Placement& place)
      : cfg_(PixArtConfig::parse(config)), place_(place) {
    const common::WeightScope w(provider, "", place);
    const int64_t D = cfg_.dim;

    common::PatchEmbedOptions pe;
    pe.height = pe.width = cfg_.sample_size;
    pe.patch_size = cfg_.patch_size;
    pe.in_channels = cfg_.in_channels;
    pe.embed_dim = D;
    pe.interpolation_scale = cfg_.interpolation_scale;
    pe.pos_embed = common::PosEmbedKind::kSinCos;
    pos_embed_.bind(w / "pos_embed", pe);

    // adaln_single: AdaLayerNormSingle over PixArtAlphaCombinedTimestepSizeEmbeddings.
    const common::WeightScope emb = w / "adaln_single" / "emb";
    timestep_embedder_.bind(emb / "timestep_embedder", 256, D);
    if (cfg_.use_additional_conditions) {
      resolution_embedder_.bind(emb / "resolution_embedder", 256, D / 3);
      aspect_ratio_embedder_.bind(emb / "aspect_ratio_embedder", 256, D / 3);
    }
    adaln_linear_.bind(w / "adaln_single" / "linear", D, 6 * D);
    if (cfg_.caption_channels > 0) {
      caption_projection_.bind(w / "caption_projection", cfg_.caption_channels, D, 0,
                               common::Activation::kGeluTanh);
    }

    blocks_.resize(static_cast<size_t>(cfg_.num_layers));
    for (int64_t i = 0; i < cfg_.num_layers; ++i) {
      const common::WeightScope b = w / "transformer_blocks" / static_cast<int>(i);
      Block& blk = blocks_[static_cast<size_t>(i)];
      blk.scale_shift_table = b.param("scale_shift_table", {6, D});
      blk.norm1.bind(b / "norm1", D, cfg_.norm_eps, cfg_.norm_elementwise_affine);
      blk.attn1.bind(b / "attn1", D, D, cfg_.attention_bias);
      blk.norm2.bind(b / "norm2", D, cfg_.norm_eps, cfg_.norm_elementwise_affine);
      blk.attn2.bind(b / "attn2", D, cfg_.cross_attention_dim, cfg_.attention_bias);
      blk.ff.bind(b / "ff", D, cfg_.ff_kind);
    }
    scale_shift_table_ = w.param("scale_shift_table", {2, D});
    norm_out_.eps = 1e-6f;  // nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
    proj_out_.bind(w / "proj_out", D, cfg_.patch_size * cfg_.patch_size * cfg_.out_channels);
  }

  std::string class_name() const override { return kName; }

  Tensor forward(const NamedTensors& inputs) const override { return forward(inputs, nullptr); }

  Tensor forward(const NamedTensors& inputs, const parallel::SequenceContext* sp) const override {
    const std::unique_ptr<TransformerPass> pass = begin_pass(inputs, sp, nullptr, true);
    run_layers(*pass, 0, num_layers());
    return end_pass(*pass);
  }

  int64_t num_layers() const override { return cfg_.num_layers; }

  std::pair<int64_t, int64_t> token_grid(const NamedTensors& inputs) const override {
    const Tensor x = check_hidden_states(inputs);
    return {x.dim(2) / cfg_.patch_size, x.dim(3) / cfg_.patch_size};
  }

  std::unique_ptr<TransformerPass> begin_pass(const NamedTensors& inputs,
                                              const parallel::SequenceContext* sp,
                                              const parallel::PassPlan* plan,
                                              bool embed) const override {
    const Tensor x_in = check_hidden_states(inputs);
    const int64_t B = x_in.dim(0), h = x_in.dim(2) / cfg_.patch_size,
                  w = x_in.dim(3) / cfg_.patch_size;
    const int64_t ctx_channels =
        cfg_.caption_channels > 0 ? cfg_.caption_channels : cfg_.cross_attention_dim;
    Tensor ctx = common::require_input(inputs, "encoder_hidden_states", kName,
                                       detail::concat("(B, S_txt, ", ctx_channels, ")"));
    common::check_input(ctx.ndim() == 3 && ctx.dim(0) == B && ctx.dim(2) == ctx_channels, ctx,
                        "encoder_hidden_states", kName,
                        detail::concat("(", B, ", S_txt, ", ctx_channels, ")"));
    const Tensor t = batch_vector(inputs, "timestep", B);  // (B)
    Tensor key_mask = common::optional_input(inputs, "encoder_attention_mask");
    if (key_mask.defined()) {
      common::check_input(
          key_mask.ndim() == 2 && key_mask.dim(0) == B && key_mask.dim(1) == ctx.dim(1), key_mask,
          "encoder_attention_mask", kName,
          detail::concat("(", B, ", ", ctx.dim(1), ") with 1 = keep, 0 = drop"));
    }

    auto pass = std::make_unique<Pass>();
    pass->width = w;
    pass->key_mask = key_mask.defined() ? key_mask.to_device(place_.device) : key_mask;
    // Under sequence parallelism this rank keeps its block of the image tokens (padded to a
    // multiple of the degree); the caption stays whole on every rank. Under PipeFusion the pass
    // holds one patch of them (or every patch).
    pass->tokens = parallel::plan_tokens(B, 0, h * w, sp, false, plan, place_.device);

    // ---- embeddings
    if (embed) {
      pass->streams = {pass->tokens.shard_image(pos_embed_(place_.activation(x_in)),
                                                1)};  // (B, N, D), N local, on the device
    }
    pass->emb = timestep_embedder_(time_proj_(t));  // (B, D)
    if (cfg_.use_additional_conditions) pass->emb = core::add(pass->emb, size_embedding(inputs, B));
    const Tensor t6 = adaln_linear_(core::silu(pass->emb));  // (B, 6·D)
    pass->t6v = t6.reshape({B, 6, cfg_.dim});                 // (B, 6, D)
    ctx = place_.activation(ctx);
    pass->ctx = cfg_.caption_channels > 0 ? caption_projection_(ctx) : ctx;  // (B, S_txt, D)
    return pass;
  }

  std::vector<core::Shape> stream_shapes(const TransformerPass& pass, int64_t) const override {
    const Pass& ps = static_cast<const Pass&>(pass);
    return {{ps.t6v.dim(0), ps.tokens.local_image, cfg_.dim}};
  }

  void run_layers(TransformerPass& pass, int64_t begin, int64_t end) const override {
    Pass& ps = static_cast<Pass&>(pass);
    const int64_t H = cfg_.heads;
    Tensor x = ps.streams.at(0);  // (B, N, D)
    for (int64_t i = begin; i < end; ++i) {
      const Block& blk = blocks_[static_cast<size_t>(i)];
      const parallel::TokenLayout tokens = ps.tokens.for_layer(i);
      const Tensor mod = core::add(blk.scale_shift_table.unsqueeze(0), ps.t6v);  // (B, 6, D)
      const Tensor shift_msa = mod.select(1, 0), scale_msa = mod.select(1, 1),
                   gate_msa = mod.select(1, 2), shift_mlp = mod.select(1, 3),
                   scale_mlp = mod.select(1, 4), gate_mlp = mod.select(1, 5);  // (B, D) each

      // self-attention
      Tensor n = blk.norm1(x, {shift_msa, scale_msa});                // (B, N, D), modulated
      Tensor q = common::split_heads(blk.attn1.to_q(n), H);           // (B, N, H, Dh)
      Tensor k = common::split_heads(blk.attn1.to_k(n), H);           // (B, N, H, Dh)
      Tensor v = common::split_heads(blk.attn1.to_v(n), H);           // (B, N, H, Dh)
      Tensor a = self_attend(q, k, v, tokens);                        // (B, N, H, Dh)
      a = blk.attn1.to_out(common::merge_heads(a));                   // (B, N, D)
      x = core::gated_add(x, gate_msa, a);                            // (B, N, D)

      // cross-attention to the caption (no norm in ada_norm_single blocks)
      q = common::split_heads(blk.attn2.to_q(x), H);       // (B, N, H, Dh)
      k = common::split_heads(blk.attn2.to_k(ps.ctx), H);  // (B, S_txt, H, Dh)
      v = common::split_heads(blk.attn2.to_v(ps.ctx), H);  // (B, S_txt, H, Dh)
      a = cross_attend(q, k, v, ps.key_mask);              // (B, N, H, Dh)
      a = blk.attn2.to_out(common::merge_heads(a));        // (B, N, D)
      core::add_(x, a);                                    // x: (B, N, D)

      // feed-forward
      n = blk.norm2(x, {shift_mlp, scale_mlp});                // (B, N, D), modulated
      x = core::gated_add(x, gate_mlp, blk.ff(n));             // (B, N, D)
    }
    ps.streams = {x};
  }

  Tensor end_pass(TransformerPass& pass) const override {
    Pass& ps = static_cast<Pass&>(pass);
    const int64_t p = cfg_.patch_size;
    // ---- output: modulation by the embedded timestep, projection, unpatchify
    const Tensor mod =
        core::add(scale_shift_table_.unsqueeze(0), ps.emb.unsqueeze(1));  // (B, 2, D)
    Tensor x = norm_out_(ps.streams.at(0), {mod.select(1, 0), mod.select(1, 1)});  // (B, N, D)
    x = proj_out_(x);                            // (B, N, p·p·C_out)
    x = ps.tokens.gather_image(x, 1);            // (B, rows·w, p·p·C_out): the pass's rows
    const int64_t rows = ps.tokens.image_len / ps.width;
    return common::unpatchify(x, rows, ps.width, p, cfg_.out_channels);  // (B, C_out, rows·p, W)
  }

  // TeaCache: the first block's modulated norm1 of the image tokens (no published polynomial).
  CacheProbe teacache_probe(const TransformerPass& pass) const override {
    const Pass& ps = static_cast<const Pass&>(pass);
    const Block& blk = blocks_.front();
    const Tensor mod = core::add(blk.scale_shift_table.unsqueeze(0), ps.t6v);  // (B, 6, D)
    return {blk.norm1(pass.streams.at(0), {mod.select(1, 0), mod.select(1, 1)}), true};
  }

 private:
  // A pass's conditioning: the embedded timestep, its six modulations, the projected caption.
  struct Pass : TransformerPass {
    Tensor emb;       // (B, D)
    Tensor t6v;       // (B, 6, D)
    Tensor ctx;       // (B, S_txt, D)
    Tensor key_mask;  // (B, S_txt) or {}
    int64_t width = 0;  // token columns
  };

  Tensor check_hidden_states(const NamedTensors& inputs) const {
    const int64_t p = cfg_.patch_size;
    const Tensor x = common::require_input(inputs, "hidden_states", kName, "(B, C, H, W)");
    common::check_input(
        x.ndim() == 4 && x.dim(1) == cfg_.in_channels && x.dim(2) % p == 0 && x.dim(3) % p == 0, x,
        "hidden_states", kName,
        detail::concat("(B, ", cfg_.in_channels, ", H, W) with H, W multiples of ", p));
    return x;
  }

  // A per-sample scalar input given as (B) or a single value shared by the batch.
  static Tensor batch_vector(const NamedTensors& inputs, const std::string& name, int64_t B) {
    Tensor v = common::require_input(inputs, name, kName, detail::concat("(", B, ")"));
    common::check_input(v.numel() == B || v.numel() == 1, v, name, kName,
                        detail::concat("(", B, ") or a single value"));
    v = v.contiguous().reshape({v.numel()});
    if (v.numel() == 1 && B != 1) v = core::add(Tensor::zeros({B}), v);  // (B)
    return v;
  }

  // PixArt-α micro-conditions: resolution (B, 2) and aspect_ratio (B, 1), each value through the
  // sinusoidal projection and its embedder → (B, 2·D/3) ‖ (B, D/3) = (B, D).
  Tensor size_embedding(const NamedTensors& inputs, int64_t B) const {
    const std::string res_name = "added_cond_kwargs.resolution";
    const std::string ar_name = "added_cond_kwargs.aspect_ratio";
    const std::string why = " (use_additional_conditions is true)";
    const Tensor res =
        common::require_input(inputs, res_name, kName, detail::concat("(", B, ", 2)", why));
    common::check_input(res.numel() == 2 * B, res, res_name, kName, detail::concat("(", B, ", 2)"));
    const Tensor ar =
        common::require_input(inputs, ar_name, kName, detail::concat("(", B, ", 1)", why));
    common::check_input(ar.numel() == B, ar, ar_name, kName, detail::concat("(", B, ", 1)"));
    const int64_t S = cfg_.dim / 3;
    Tensor r = resolution_embedder_(time_proj_(res.contiguous().reshape({2 * B})));  // (2B, S)
    r = r.reshape({B, 2 * S});                                                       // (B, 2S)
    Tensor a = aspect_ratio_embedder_(time_proj_(ar.contiguous().reshape({B})));     // (B, S)
    return core::concat({r, a}, 1);                                                  // (B, D)
  }

  PixArtConfig cfg_;
  core::Placement place_;
  common::PatchEmbed pos_embed_;
  common::Timesteps time_proj_{256, true, 0.0};  // also the additional_condition_proj
  common::TimestepEmbedding timestep_embedder_, resolution_embedder_, aspect_ratio_embedder_;
  Linear adaln_linear_;
  common::TextProjection caption_projection_;
  std::vector<Block> blocks_;
  Tensor scale_shift_table_;  // (2, D)
  common::LayerNorm norm_out_;
  Linear proj_out_;
};

}  // namespace

std::unique_ptr<Transformer> make_pixart_transformer(const io::Config& config,
                                                     const common::WeightProvider& weights,
                                                     const core::Placement& place) {
  return std::make_unique<PixArtTransformer>(config, weights, place);
}

}  // namespace paradit::models::pixart
