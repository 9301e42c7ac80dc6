#pragma once
// T5's tokenizer as transformers' T5Tokenizer (tokenizers backend) runs it: the text is first
// split on the added special tokens (<pad>, </s>, <unk>, <extra_id_N>), each other part goes
// through the SentencePiece model (spiece.model: nmt_nfkc normalization, whitespace → ▁, unigram
// pieces, unknown characters fused into one <unk>), then </s> is appended. Truncation keeps the
// </s>; padding is with <pad> and attention mask 0, on the side the folder declares (right for
// T5).
//
// The SentencePiece model comes from spiece.model or, in a folder saved by transformers 5 that
// has only tokenizer.json, from tokenizer.json's Unigram model, rebuilt in memory as the
// SentencePiece ModelProto it was converted from (see sentencepiece_model_from_tokenizer_json).

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/common/text.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace paradit::models::t5 {

using Encoding = common::Encoding;

class T5Tokenizer {
 public:
  // Loads a tokenizer folder: the model from spiece.model, else from tokenizer.json (one of them
  // is required; spiece.model wins when both are there, being the model tokenizer.json was
  // converted from); the special tokens from tokenizer.json (added_tokens), tokenizer_config.json
  // (added_tokens_decoder, extra_ids, token names), added_tokens.json and special_tokens_map.json
  // where present; model_max_length, padding_side and truncation_side from tokenizer_config.json
  // or tokenizer.json's padding / truncation blocks. Without any json file the T5 convention
  // applies: <extra_id_N> = piece_count + extra_ids - 1 - N, extra_ids = 100.
  // Error naming the file when the model is missing, unreadable or malformed.
  static T5Tokenizer load(const std::filesystem::path& dir);

  // ids = pieces[:max_length-1] + </s> (the last pieces instead with truncation_side left); with
  // pad_to_max, padded to max_length with <pad> on the padding side. max_length <= 0 (and
  // pad_to_max false) means no truncation. Warns on stderr when truncating.
  Encoding encode(const std::string& text, int max_length, bool pad_to_max) const;
  // pieces + </s>, untruncated.
  std::vector<int64_t> encode_unpadded(const std::string& text) const;
  // The token strings of encode_unpadded (unknown characters show as the unk token's name).
  std::vector<std::string> tokenize(const std::string& text) const;
  // SentencePiece alone on the whole text (no added-token split, no </s>).
  std::vector<int64_t> sentencepiece_encode(const std::string& text) const;
  // Ids back to text; special tokens are skipped.
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t pad_id() const { return pad_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t unk_id() const { return unk_id_; }
  // SentencePiece pieces + added tokens beyond them (1100 for the fixture, 32100 for T5).
  int64_t vocab_size() const { return vocab_size_; }
  std::string id_to_token(int64_t id) const;
  // tokenizer_config.json's model_max_length; 0 when the folder sets no limit.
  int model_max_length() const { return settings_.model_max_length; }
  common::Side padding_side() const { return settings_.padding_side; }
  common::Side truncation_side() const { return settings_.truncation_side; }
  // Turns the stderr warning on truncation on or off (on by default).
  void set_warn_on_truncation(bool on) { warn_on_truncation_ = on; }

 private:
  T5Tokenizer() = default;
  std::vector<int64_t> encode_content(const std::string& text) const;

  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
  std::map<std::string, int64_t> added_;        // content → id, split before SentencePiece
  std::map<int64_t, std::string> added_by_id_;  // id → content
  int64_t pad_id_ = 0, eos_id_ = 1, unk_id_ = 2;
  int64_t vocab_size_ = 0;
  common::TokenizerSettings settings_;
  bool warn_on_truncation_ = true;
};

// The serialized SentencePiece ModelProto (the bytes of a spiece.model) equivalent to a
// tokenizer.json with a Unigram model, as transformers' converter builds that file from
// spiece.model: the pieces and scores (without the trailing added tokens <extra_id_N>, which the
// tokenizer adds itself), <unk> typed UNKNOWN and the other special tokens CONTROL, the
// Precompiled normalizer's charsmap (nmt_nfkc; identity without one), and add_dummy_prefix /
// remove_extra_whitespaces / escape_whitespaces as the WhitespaceSplit + Metaspace(prepend
// "always") pre-tokenizers do it. Error naming `where` for anything else (another model type,
// byte fallback, a Metaspace that does not always prepend).
std::string sentencepiece_model_from_tokenizer_json(const nlohmann::json& tokenizer_json,
                                                    const std::string& where);

}  // namespace paradit::models::t5
