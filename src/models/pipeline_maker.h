#pragma once
// `paradit make-model --pipeline`: a complete random-weight diffusers pipeline folder around a
// preset transformer — model_index.json, scheduler/, vae/, transformer/, and the text encoders
// and tokenizers the pipeline class loads — so that `paradit generate --model DIR` runs end to
// end on any architecture without downloading a checkpoint.
//
// Components per arch (diffusers' / transformers' class names, as the published pipelines):
//   pixart-sigma/-alpha  PixArtSigmaPipeline/PixArtAlphaPipeline: T5EncoderModel + T5Tokenizer,
//                        DPMSolverMultistepScheduler (PixArt-Σ settings), AutoencoderKL (4 ch)
//   sd3/sd35             StableDiffusion3Pipeline: CLIPTextModelWithProjection ×2 + CLIPTokenizer
//                        ×2, T5EncoderModel + T5Tokenizer, FlowMatchEulerDiscreteScheduler
//                        (shift 3.0), AutoencoderKL (16 ch, SD3 scaling/shift)
//   flux/flux-schnell    FluxPipeline: CLIPTextModel + CLIPTokenizer, T5EncoderModel +
//                        T5Tokenizer, FlowMatchEulerDiscreteScheduler (dev: dynamic shifting;
//                        schnell: shift 1), AutoencoderKL (16 ch, Flux scaling/shift)
//   dit                  DiTPipeline: DPMSolverMultistepScheduler, AutoencoderKL (4 ch), and an
//                        id2label table in model_index.json; no text encoder
//
// Text encoders are sized to feed the transformer (T5 d_model = joint_attention_dim /
// caption_channels, CLIP widths so that the pooled vector is pooled_projection_dim) with the
// vocabularies of the shipped tokenizers (models/tokenizers: T5 1100, CLIP 1514). They have 2
// layers at every preset: stand-ins with the right interfaces, not the published depths.
//
// Seeds: the transformer uses `seed` itself (the same tensors as plain make-model); every other
// component draws from component_seed(seed, folder name), so equal tensor names in two
// components (text_encoder and text_encoder_2) get different values.

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/dtype.h"
#include "io/diffusers.h"
#include "models/common/random_weights.h"

namespace paradit::models {

// The transformer config of a pipeline made around preset `arch` / `size`: preset_config, except
// that PixArtAlphaPipeline passes the resolution / aspect-ratio micro-conditions only to a
// transformer of sample_size 128 (and diffusers' transformer then fails without them), so a
// pixart-alpha pipeline's transformer has use_additional_conditions = (sample_size == 128).
io::Json pipeline_transformer_config(const std::string& arch, const std::string& size);

// The seed of component `component` ("vae", "text_encoder_2", ...) of a pipeline made with
// `seed`: SplitMix64(seed ^ fnv1a64(component)).
uint64_t component_seed(uint64_t seed, const std::string& component);

// The folder holding the shipped tokenizers (t5/, clip/): $PARADIT_MODELS_DIR/tokenizers, then
// <exe dir>/../models/tokenizers, <exe dir>/../share/paradit/models/tokenizers, then the source
// tree's models/tokenizers. Error listing the places tried when none exists.
std::filesystem::path tokenizers_dir();

// Writes the whole pipeline into `dir` (absent or an empty folder) through a hidden sibling
// folder renamed at the end, so nothing is left behind on failure. `transformer_config` and
// `transformer_weights` are the transformer make-model bound (written to transformer/) from
// pipeline_transformer_config (Error otherwise for pixart-alpha); `dtype` is the storage dtype
// of every component.
void write_pipeline(const std::filesystem::path& dir, const std::string& arch,
                    const std::string& preset, uint64_t seed, core::DType dtype,
                    const io::Json& transformer_config,
                    const common::RandomWeights& transformer_weights);

}  // namespace paradit::models
