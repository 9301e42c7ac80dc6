#pragma once
// `make-model --pipeline` for the LLM-conditioned families (pipeline_maker.cpp dispatches here):
//   qwen-image   QwenImagePipeline: Qwen2_5_VLForConditionalGeneration (language model only) +
//                Qwen2Tokenizer, AutoencoderKLQwenImage, FlowMatchEuler (dynamic, shift_terminal)
//   z-image      ZImagePipeline: Qwen3Model + Qwen2Tokenizer, AutoencoderKL (16 ch), FlowMatch
//                (shift 3)
//   flux2        Flux2Pipeline: Mistral3ForConditionalGeneration (31 layers: hidden states 10, 20,
//                30 exist) + the tekken-style tokenizer, AutoencoderKLFlux2 (BatchNorm statistics
//                mean 0 / var 1), FlowMatch (dynamic)
//   flux2-klein  Flux2KleinPipeline (is_distilled false): Qwen3ForCausalLM (28 layers: 9, 18,
//                27) + Qwen2Tokenizer, AutoencoderKLFlux2, FlowMatch (dynamic)
// The tokenizers are models/tokenizers/qwen2 and mistral. The text encoders are stand-ins with the
// right interfaces: width = the transformer's text width (tiny), 256 / 128 (small, whose
// transformer text width follows), the published configs at full.

#include <filesystem>
#include <string>

#include "core/dtype.h"
#include "io/diffusers.h"
#include "models/common/random_weights.h"
#include "models/pipeline_maker.h"

namespace paradit::models {

bool is_llm_pipeline_arch(const std::string& arch);
// preset_config, with the small presets' text width narrowed to the stand-in encoders'.
io::Json llm_pipeline_transformer_config(const std::string& arch, const std::string& size);
// Writes every component of the pipeline into `root` (an empty folder).
void fill_llm_pipeline(const std::filesystem::path& root, const std::string& arch,
                       const std::string& preset, uint64_t seed, core::DType dtype,
                       const io::Json& transformer_config,
                       const common::RandomWeights& transformer_weights,
                       const std::filesystem::path& tokenizers);

}  // namespace paradit::models
