#include "models/registry_llm_families.h"

#include "models/flux2/flux2.h"
#include "models/qwen_image/qwen_image.h"
#include "models/z_image/z_image.h"

namespace paradit::models {

std::unique_ptr<Transformer> make_llm_family_transformer(const io::Config& config,
                                                         const common::WeightProvider& weights,
                                                         const core::Placement& place) {
  const std::string cls = config.class_name();
  if (cls == "Flux2Transformer2DModel") {
    return flux2::make_flux2_transformer(config, weights, place);
  }
  if (cls == "QwenImageTransformer2DModel") {
    return qwen_image::make_qwen_image_transformer(config, weights, place);
  }
  if (cls == "ZImageTransformer2DModel") {
    return z_image::make_z_image_transformer(config, weights, place);
  }
  return nullptr;
}

std::vector<std::string> llm_family_layer_prefixes(const io::Config& config) {
  const std::string cls = config.class_name();
  if (cls == "Flux2Transformer2DModel") return flux2::flux2_layer_prefixes(config);
  if (cls == "QwenImageTransformer2DModel") return qwen_image::qwen_image_layer_prefixes(config);
  return {};
}

const char* llm_family_class_names() {
  return ", Flux2Transformer2DModel, QwenImageTransformer2DModel, ZImageTransformer2DModel";
}

}  // namespace paradit::models
