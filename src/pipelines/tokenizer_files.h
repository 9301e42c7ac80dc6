#pragma once
// Loading a pipeline's tokenizers whatever files it ships. The tokenizers read the "slow" files
// (T5: spiece.model; CLIP: vocab.json + merges.txt), which the published checkpoints have, but
// a pipeline saved by transformers 5 has only tokenizer.json. Then the slow files are rebuilt
// from tokenizer.json in a temporary folder (removed again after loading):
// - T5 (Unigram model): a SentencePiece ModelProto with tokenizer.json's pieces and scores (the
//   added tokens after the SentencePiece vocabulary, <extra_id_N>, left out: the tokenizer adds
//   them itself), <unk> typed UNKNOWN, the other special tokens CONTROL, and the Precompiled
//   normalizer's charsmap; add_dummy_prefix / remove_extra_whitespaces / escape_whitespaces on,
//   as the Metaspace(prepend "always") + WhitespaceSplit pre-tokenizers do it.
// - CLIP (BPE model): vocab.json from model.vocab, merges.txt from model.merges.

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "models/clip/tokenizer.h"
#include "models/t5/tokenizer.h"

namespace paradit::pipelines {

models::t5::T5Tokenizer load_t5_tokenizer(const std::filesystem::path& dir);
models::clip::ClipTokenizer load_clip_tokenizer(const std::filesystem::path& dir);

// The serialized SentencePiece ModelProto (the bytes of a spiece.model) equivalent to a Unigram
// tokenizer.json. Error naming `where` when it is not a Unigram model with a Precompiled
// normalizer.
std::string sentencepiece_model_from_tokenizer_json(const nlohmann::json& tokenizer_json,
                                                    const std::string& where);

}  // namespace paradit::pipelines
