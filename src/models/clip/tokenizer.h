#pragma once
// CLIP's tokenizer as transformers' CLIPTokenizer (tokenizers backend, no ftfy) runs it:
//   1. split the raw text on the added tokens (<|startoftext|>, <|endoftext|>);
//   2. normalize each other part: NFC, every whitespace run → one space, lowercase;
//   3. pre-tokenize with CLIP's pattern
//        <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//      keeping the matches only, then GPT-2's byte-level split of each match;
//   4. byte-level BPE on each word (bytes → printable symbols, "</w>" on the last symbol, merges
//      by rank);
//   5. <|startoftext|> + ids + <|endoftext|>; truncation keeps both; padding (on the side the
//      folder declares, right for CLIP) with the checkpoint's pad token (<|endoftext|> for
//      CLIP-L, "!" for SD3's CLIP-G) and mask 0.
// The BPE model comes from vocab.json + merges.txt or, in a folder saved by transformers 5 that
// has only tokenizer.json, from tokenizer.json's BPE model (model.vocab, model.merges).

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/common/text.h"

namespace paradit::models::clip {

using Encoding = common::Encoding;

class ClipTokenizer {
 public:
  // Loads a tokenizer folder: the BPE model from vocab.json and merges.txt, else from
  // tokenizer.json's model; the special tokens from tokenizer_config.json /
  // special_tokens_map.json and the added tokens from tokenizer.json (added_tokens) or
  // tokenizer_config.json (added_tokens_decoder) where present; model_max_length, padding_side
  // and truncation_side from tokenizer_config.json or tokenizer.json's padding / truncation.
  // Error naming the file when one is missing or malformed.
  static ClipTokenizer load(const std::filesystem::path& dir);

  // bos + ids[:max_length-2] + eos (the last ids with truncation_side left); with pad_to_max,
  // padded to max_length with the pad token on the padding side.
  // max_length <= 0 (and pad_to_max false) means no truncation. Warns on stderr when truncating.
  Encoding encode(const std::string& text, int max_length, bool pad_to_max) const;
  // bos + ids + eos, untruncated.
  std::vector<int64_t> encode_unpadded(const std::string& text) const;
  // The token strings of encode_unpadded ("a</w>", byte-level symbols such as "Ã").
  std::vector<std::string> tokenize(const std::string& text) const;
  // Ids back to text (byte-level symbols → bytes, "</w>" → space); special tokens are skipped.
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t unk_id() const { return unk_id_; }
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }
  std::string id_to_token(int64_t id) const;
  // tokenizer_config.json's model_max_length (77 for CLIP); 0 when the folder sets no limit.
  int model_max_length() const { return settings_.model_max_length; }
  common::Side padding_side() const { return settings_.padding_side; }
  common::Side truncation_side() const { return settings_.truncation_side; }
  // Turns the stderr warning on truncation on or off (on by default).
  void set_warn_on_truncation(bool on) { warn_on_truncation_ = on; }

 private:
  ClipTokenizer() = default;
  std::vector<int64_t> encode_content(const std::string& text) const;
  // BPE of one pre-tokenized word (UTF-8 bytes); appends the ids.
  void bpe(const std::string& word, std::vector<int64_t>& ids) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  // "left right" → rank (line order in merges.txt); symbols never contain a space.
  std::unordered_map<std::string, int32_t> merge_ranks_;
  std::map<std::string, int64_t> added_;  // content → id, split before normalization
  std::map<int64_t, std::string> added_by_id_;
  std::string byte_symbol_[256];                       // byte → its printable UTF-8 symbol
  std::unordered_map<char32_t, uint8_t> symbol_byte_;  // symbol → byte, for decode
  int64_t bos_id_ = 0, eos_id_ = 0, pad_id_ = 0, unk_id_ = 0;
  common::TokenizerSettings settings_;
  bool warn_on_truncation_ = true;
};

}  // namespace paradit::models::clip
