// make_transformer / load_transformer: picks the family from config.json's `_class_name`.
#include "io/diffusers.h"
#include "models/dit/dit.h"
#include "models/flux/flux.h"
#include "models/hunyuan_video/hunyuan_video.h"
#include "models/pixart/pixart.h"
#include "models/sd3/sd3.h"
#include "models/transformer.h"
#include "models/wan/wan.h"
#include "parallel/batch.h"

namespace paradit::models {

namespace {

constexpr const char* kSupported =
    "FluxTransformer2DModel, SD3Transformer2DModel, PixArtTransformer2DModel, "
    "DiTTransformer2DModel, WanTransformer3DModel, HunyuanVideoTransformer3DModel, "
    "Transformer2DModel with norm_type ada_norm_single|ada_norm_zero";

}  // namespace

std::unique_ptr<Transformer> make_transformer(const io::Config& config,
                                              const common::WeightProvider& weights,
                                              core::DType matrix_dtype) {
  PARADIT_CHECK(matrix_dtype == core::DType::F32 || matrix_dtype == core::DType::BF16,
                config.where(), ": weight dtype ", core::dtype_name(matrix_dtype),
                " is not supported (expected F32 or BF16)");
  const std::string cls = config.class_name();
  if (cls == "FluxTransformer2DModel") {
    return flux::make_flux_transformer(config, weights, matrix_dtype);
  }
  if (cls == "SD3Transformer2DModel")
    return sd3::make_sd3_transformer(config, weights, matrix_dtype);
  if (cls == "PixArtTransformer2DModel") {
    return pixart::make_pixart_transformer(config, weights, matrix_dtype);
  }
  if (cls == "DiTTransformer2DModel") {
    return dit::make_dit_transformer(config, weights, matrix_dtype);
  }
  if (cls == "WanTransformer3DModel") {
    return wan::make_wan_transformer(config, weights, matrix_dtype);
  }
  if (cls == "HunyuanVideoTransformer3DModel") {
    return hunyuan_video::make_hunyuan_video_transformer(config, weights, matrix_dtype);
  }
  // Checkpoints converted before diffusers 0.28 (facebook/DiT-*, PixArt-α) name the generic class;
  // diffusers remaps them by norm_type, and so do we. The tensor names are the same.
  if (cls == "Transformer2DModel") {
    const std::string norm = config.get_string("norm_type", "layer_norm");
    if (norm == "ada_norm_single") {
      return pixart::make_pixart_transformer(config, weights, matrix_dtype);
    }
    if (norm == "ada_norm_zero") return dit::make_dit_transformer(config, weights, matrix_dtype);
    fail(config.where(), ": Transformer2DModel with norm_type '", norm,
         "' is not supported (expected ada_norm_single or ada_norm_zero)");
  }
  fail(config.where(), ": _class_name '", cls,
       "' is not a supported transformer (supported: ", kSupported, ")");
}

std::unique_ptr<Transformer> load_transformer(const std::filesystem::path& dir,
                                              core::DType matrix_dtype) {
  const std::filesystem::path tdir = io::ModelFolder::open(dir.string()).transformer_dir();
  const io::Config config = io::Config::load(tdir / "config.json");
  // Tensors bound from the source are views of its mapping (or converted copies), so the model
  // keeps what it needs alive after the source goes out of scope.
  const io::TensorSource source = io::TensorSource::open(tdir);
  const common::CheckpointWeights weights(source);
  return make_transformer(config, weights, matrix_dtype);
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
