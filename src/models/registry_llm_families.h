#pragma once
// The registry's entries for the LLM-conditioned families (Qwen-Image, Z-Image, FLUX.2), kept
// beside registry.cpp so that adding them touches it in two lines.

#include <memory>
#include <string>
#include <vector>

#include "models/transformer.h"

namespace paradit::models {

// The family named by config.json's _class_name, or null when it is not one of these.
std::unique_ptr<Transformer> make_llm_family_transformer(const io::Config& config,
                                                         const common::WeightProvider& weights,
                                                         const core::Placement& place);
// PipeFusion layer prefixes of these families; empty for other classes.
std::vector<std::string> llm_family_layer_prefixes(const io::Config& config);
// ", Flux2Transformer2DModel, …" for the registry's list of supported classes.
const char* llm_family_class_names();

}  // namespace paradit::models
