#pragma once
// A pipeline's tokenizer folders. The tokenizers themselves read whichever files a folder has
// (T5: spiece.model or tokenizer.json; CLIP: vocab.json + merges.txt or tokenizer.json) with the
// folder's special tokens, model_max_length and padding side; these are the pipelines' names
// for that.

#include <filesystem>

#include "models/clip/tokenizer.h"
#include "models/t5/tokenizer.h"

namespace paradit::pipelines {

inline models::t5::T5Tokenizer load_t5_tokenizer(const std::filesystem::path& dir) {
  return models::t5::T5Tokenizer::load(dir);
}

inline models::clip::ClipTokenizer load_clip_tokenizer(const std::filesystem::path& dir) {
  return models::clip::ClipTokenizer::load(dir);
}

}  // namespace paradit::pipelines
