// make_transformer / load_transformer: picks the family from config.json's `_class_name`.
#include "io/diffusers.h"
#include "models/dit/dit.h"
#include "models/flux/flux.h"
#include "models/hunyuan_video/hunyuan_video.h"
#include "models/pixart/pixart.h"
#include "models/registry_llm_families.h"
#include "models/sd3/sd3.h"
#include "models/transformer.h"
#include "models/wan/wan.h"
#include "parallel/batch.h"

namespace paradit::models {

namespace {

// Hands out every tensor except those of the layers outside a stage, which become shape-only
// placeholders (never read); counts the bytes bound.
class StageWeights : public common::WeightProvider {
 public:
  StageWeights(const common::WeightProvider& base, std::vector<std::string> skipped)
      : base_(&base), skipped_(std::move(skipped)) {}
  core::Tensor get(const std::string& name, const core::Shape& expected,
                   core::DType dtype) const override {
    for (const std::string& prefix : skipped_) {
      if (name.compare(0, prefix.size(), prefix) == 0) {
        return core::Tensor::broadcast_placeholder(expected, dtype);
      }
    }
    core::Tensor t = base_->get(name, expected, dtype);
    bytes_ += t.nbytes();
    return t;
  }
  bool has(const std::string& name) const override { return base_->has(name); }
  size_t bytes() const { return bytes_; }

 private:
  const common::WeightProvider* base_;
  std::vector<std::string> skipped_;  // "transformer_blocks.7." …
  mutable size_t bytes_ = 0;
};

constexpr const char* kSupported =
    "FluxTransformer2DModel, SD3Transformer2DModel, PixArtTransformer2DModel, "
    "DiTTransformer2DModel, WanTransformer3DModel, HunyuanVideoTransformer3DModel, "
    "Transformer2DModel with norm_type ada_norm_single|ada_norm_zero";

}  // namespace

std::unique_ptr<Transformer> make_transformer(const io::Config& config,
                                              const common::WeightProvider& weights,
                                              const core::Placement& place,
                                              const parallel::TensorParallel& tp) {
  PARADIT_CHECK(place.dtype == core::DType::F32 || place.dtype == core::DType::BF16 || (place.device == core::Device::CUDA && place.dtype == core::DType::F16),
                config.where(), ": weight dtype ", core::dtype_name(place.dtype),
                " is not supported (expected F32 or BF16)");
  const std::string cls = config.class_name();
  const bool dit = cls == "DiTTransformer2DModel" ||
                   (cls == "Transformer2DModel" &&
                    config.get_string("norm_type", "layer_norm") == "ada_norm_zero");
  if (dit) return dit::make_dit_transformer(config, weights, place, tp);
  PARADIT_CHECK(!tp.parallel(), config.where(), ": --tensor_parallel_degree ", tp.degree(),
                " is not supported yet for ", cls.empty() ? "this class" : cls,
                " (supported: DiTTransformer2DModel; use --tensor_parallel_degree 1)");
  if (cls == "FluxTransformer2DModel") {
    return flux::make_flux_transformer(config, weights, place);
  }
  if (cls == "SD3Transformer2DModel")
    return sd3::make_sd3_transformer(config, weights, place);
  if (cls == "PixArtTransformer2DModel") {
    return pixart::make_pixart_transformer(config, weights, place);
  }
  if (cls == "WanTransformer3DModel") {
    return wan::make_wan_transformer(config, weights, place);
  }
  if (cls == "HunyuanVideoTransformer3DModel") {
    return hunyuan_video::make_hunyuan_video_transformer(config, weights, place);
  }
  if (auto model = make_llm_family_transformer(config, weights, place)) return model;
  // Checkpoints converted before diffusers 0.28 (facebook/DiT-*, PixArt-α) name the generic class;
  // diffusers remaps them by norm_type, and so do we. The tensor names are the same.
  if (cls == "Transformer2DModel") {
    const std::string norm = config.get_string("norm_type", "layer_norm");
    if (norm == "ada_norm_single") {
      return pixart::make_pixart_transformer(config, weights, place);
    }
    fail(config.where(), ": Transformer2DModel with norm_type '", norm,
         "' is not supported (expected ada_norm_single or ada_norm_zero)");
  }
  fail(config.where(), ": _class_name '", cls,
       "' is not a supported transformer (supported: ", kSupported, llm_family_class_names(), ")");
}

std::unique_ptr<Transformer> load_transformer(const std::filesystem::path& dir,
                                              const core::Placement& place,
                                              const parallel::TensorParallel& tp) {
  const std::filesystem::path tdir = io::ModelFolder::open(dir.string()).transformer_dir();
  const io::Config config = io::Config::load(tdir / "config.json");
  // Tensors bound from the source are views of its mapping (or converted copies), so the model
  // keeps what it needs alive after the source goes out of scope.
  const io::TensorSource source = io::TensorSource::open(tdir);
  const common::CheckpointWeights weights(source);
  return make_transformer(config, weights, place, tp);
}

std::vector<std::string> pipeline_layer_prefixes(const io::Config& config) {
  const std::string cls = config.class_name();
  const std::string norm = config.get_string("norm_type", "");
  std::vector<std::string> out;
  const auto add = [&](const std::string& name, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out.push_back(name + "." + std::to_string(i));
  };
  if (cls == "FluxTransformer2DModel") {
    add("transformer_blocks", config.get_int("num_layers", 19));
    add("single_transformer_blocks", config.get_int("num_single_layers", 38));
  } else if (cls == "SD3Transformer2DModel") {
    add("transformer_blocks", config.get_int("num_layers", 18));
  } else if (cls == "PixArtTransformer2DModel" ||
             (cls == "Transformer2DModel" && norm == "ada_norm_single")) {
    add("transformer_blocks", config.get_int("num_layers", 28));
  } else {
    out = llm_family_layer_prefixes(config);
  }
  return out;
}

StageModel load_transformer_stage(
    const std::filesystem::path& dir, const core::Placement& place,
    const std::function<std::pair<int64_t, int64_t>(const std::vector<double>&)>& layers) {
  const std::filesystem::path tdir = io::ModelFolder::open(dir.string()).transformer_dir();
  const io::Config config = io::Config::load(tdir / "config.json");
  const std::vector<std::string> prefixes = pipeline_layer_prefixes(config);
  PARADIT_CHECK(!prefixes.empty(), config.where(), ": PipeFusion is not supported for ",
                config.class_name(), " (supported: Flux, SD3, PixArt)");
  const io::TensorSource source = io::TensorSource::open(tdir);
  StageModel stage;
  // A layer's cost: its parameter count, which its FLOPs per token follow.
  stage.layer_costs.assign(prefixes.size(), 0.0);
  for (const std::string& name : source.names()) {
    for (size_t i = 0; i < prefixes.size(); ++i) {
      const std::string p = prefixes[i] + ".";
      if (name.compare(0, p.size(), p) != 0) continue;
      double n = 1;
      for (int64_t d : source.info(name).shape) n *= static_cast<double>(d);
      stage.layer_costs[i] += n;
    }
  }
  const auto [begin, end] = layers(stage.layer_costs);
  std::vector<std::string> skipped;
  for (int64_t i = 0; i < static_cast<int64_t>(prefixes.size()); ++i) {
    if (i < begin || i >= end) skipped.push_back(prefixes[static_cast<size_t>(i)] + ".");
  }
  const common::CheckpointWeights checkpoint(source);
  const StageWeights weights(checkpoint, std::move(skipped));
  stage.model = make_transformer(config, weights, place);
  PARADIT_CHECK(stage.model->num_layers() == static_cast<int64_t>(prefixes.size()),
                config.where(), ": PipeFusion is not supported for ", config.class_name());
  stage.weight_bytes = weights.bytes();
  return stage;
}

std::pair<int64_t, int64_t> Transformer::token_grid(const NamedTensors&) const {
  fail(class_name(), ": PipeFusion is not supported for this family");
}

std::unique_ptr<TransformerPass> Transformer::begin_pass(const NamedTensors&,
                                                         const parallel::SequenceContext*,
                                                         const parallel::PassPlan*, bool) const {
  fail(class_name(), ": PipeFusion is not supported for this family");
}

std::vector<core::Shape> Transformer::stream_shapes(const TransformerPass&, int64_t) const {
  fail(class_name(), ": PipeFusion is not supported for this family");
}

void Transformer::run_layers(TransformerPass&, int64_t, int64_t) const {
  fail(class_name(), ": PipeFusion is not supported for this family");
}

core::Tensor Transformer::end_pass(TransformerPass&) const {
  fail(class_name(), ": PipeFusion is not supported for this family");
}

core::Tensor Transformer::image_hidden(const TransformerPass& pass) const {
  const parallel::TokenLayout& t = pass.tokens;
  if (pass.streams.size() == 2) return pass.streams[1];
  PARADIT_CHECK(pass.streams.size() == 1, class_name(), ": a pass with ", pass.streams.size(),
                " streams has no image stream");
  const core::Tensor& s = pass.streams[0];
  if (t.local_text == 0) return s;
  const int64_t begin = t.text_first ? t.local_text : 0;
  return s.slice(1, begin, begin + t.local_image);  // (B, local_image, D)
}

CacheProbe Transformer::teacache_probe(const TransformerPass&) const {
  fail(class_name(), ": TeaCache is not supported for this family");
}

core::Tensor Transformer::forward(const NamedTensors& inputs,
                                  const parallel::SequenceContext* sp) const {
  PARADIT_CHECK(sp == nullptr || !sp->parallel(), class_name(),
                ": sequence parallelism (ulysses × ring = ", sp ? sp->degree() : 1,
                ") is not supported yet for this family (use --ulysses_degree 1 --ring_degree 1)");
  return forward(inputs);
}

core::Tensor parallel_forward(const Transformer& model, const NamedTensors& inputs,
                              const parallel::ParallelRuntime& runtime, bool split_dp) {
  const parallel::SequenceContext* sp = &runtime.sequence();
  return parallel::run_batch_parallel(
      inputs, "hidden_states", runtime.mesh(),
      [&](const NamedTensors& share) { return model.forward(share, sp); }, split_dp);
}

}  // namespace paradit::models
