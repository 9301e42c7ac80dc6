#pragma once
// A tokenizer read from a Hugging Face `tokenizer.json` (the `tokenizers` library's format), run
// as `tokenizers` runs it:
//   1. the added tokens (special or not) are cut out of the raw text, longest content first at
//      each position (those marked normalized are matched after step 2);
//   2. each other part goes through the normalizer (NFC, Lowercase, Replace, Strip, Prepend,
//      Sequence);
//   3. the pre-tokenizer splits it (Split with a regex and a delimiter behaviour, ByteLevel with
//      or without GPT-2's regex, Sequence);
//   4. the model turns each piece into tokens: byte-level BPE with merges by rank (with an
//      end-of-word suffix, a continuing-subword prefix, byte fallback or an unknown token), or
//      a Unigram model (Viterbi over piece scores: T5's tokenizer.json) after SentencePiece's
//      Precompiled normalizer and the WhitespaceSplit + Metaspace pre-tokenizers;
//   5. the post-processor adds the special tokens (TemplateProcessing, RobertaProcessing,
//      BertProcessing, ByteLevel, Sequence).
// Truncation and padding follow the transformers call
// `tok(text, padding='max_length', max_length=L, truncation=True)`: the content is cut so that
// the special tokens still fit, then padded with the folder's pad token on its padding side.
// A component type this does not implement (a WordPiece model, NFKC …) is an Error naming the
// file and the type.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/common/text.h"
#include "models/tokenizers/regex.h"

namespace paradit::models::tokenizers {

using Encoding = common::Encoding;

class Tokenizer {
 public:
  // Loads `dir`/tokenizer.json with tokenizer_config.json (special tokens, model_max_length,
  // padding and truncation sides) where present. Error naming the file when missing, malformed
  // or using an unsupported component.
  static Tokenizer load(const std::filesystem::path& dir);
  // From a parsed tokenizer.json (`where` names it in errors) and an optional config.
  static Tokenizer from_json(const nlohmann::json& tokenizer_json, const std::string& where,
                             const nlohmann::json& config = nlohmann::json::object());

  // The ids of `text`, with the post-processor's special tokens when add_special_tokens.
  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = true) const;
  // Truncated to max_length (> 0) keeping the special tokens, padded to max_length when
  // pad_to_max, with the attention mask. Warns on stderr (one line) when truncating.
  Encoding encode(const std::string& text, int max_length, bool pad_to_max,
                  bool add_special_tokens = true) const;
  // The token strings of encode(text, false).
  std::vector<std::string> tokenize(const std::string& text) const;
  // Ids back to text through the decoder (ByteLevel; others join the tokens).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  // -1 when the token is not in the vocabulary.
  int64_t token_to_id(const std::string& token) const;
  std::string id_to_token(int64_t id) const;
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }
  // The config's special tokens (pad falls back to tokenizer.json's padding block); -1 if none.
  int64_t pad_id() const { return pad_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t bos_id() const { return bos_id_; }
  int model_max_length() const { return settings_.model_max_length; }
  common::Side padding_side() const { return settings_.padding_side; }
  const std::string& where() const { return where_; }
  void set_warn_on_truncation(bool on) { warn_on_truncation_ = on; }

  // ---- pipeline stages (public so the steps can be tested one by one)
  struct Normalizer {
    enum Kind { kNFC, kLowercase, kReplace, kStrip, kPrepend, kPrecompiled } kind = kNFC;
    Regex pattern;  // kReplace with a regex
    std::u32string literal, content;
    bool strip_left = false, strip_right = false;
  };
  struct PreTokenizer {
    enum Kind { kSplit, kByteLevel, kWhitespaceSplit, kMetaspace } kind = kSplit;
    Regex pattern;
    std::u32string literal;  // kSplit on a string
    enum Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
    Behavior behavior = kIsolated;
    bool invert = false;
    bool add_prefix_space = false, use_regex = false;
    // kMetaspace: the replacement for ' ', prepended to every piece ("always") or the first
    // ("first"), then split before each replacement (split true)
    char32_t replacement = U'\u2581';
    enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;
    bool split = true;
  };

 private:
  Tokenizer() = default;
  std::u32string normalize(std::u32string text) const;
  std::vector<std::u32string> pre_tokenize(const std::u32string& text) const;
  void bpe(const std::u32string& piece, std::vector<int64_t>& ids) const;
  // Unigram: the Viterbi segmentation of `piece` by piece scores (unknown characters score
  // min − 10 and consecutive unknowns fuse into one unk_token).
  void unigram(const std::u32string& piece, std::vector<int64_t>& ids) const;
  // A Precompiled (SentencePiece) charsmap normalization.
  std::u32string precompiled(const std::u32string& text) const;
  // Content ids of `text` (no post-processor tokens).
  std::vector<int64_t> encode_content(const std::string& text) const;
  std::vector<int64_t> encode_part(const std::string& part) const;

  std::string where_, name_;
  std::vector<Normalizer> normalizers_;
  std::vector<PreTokenizer> pre_tokenizers_;
  bool byte_level_ = false;  // a ByteLevel pre-tokenizer maps bytes to symbols

  // BPE
  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int32_t> merge_ranks_;  // "left\x01right" → rank
  std::string end_of_word_suffix_, continuing_subword_prefix_;
  int64_t unk_id_ = -1;
  // Unigram model
  bool unigram_ = false;
  std::vector<double> scores_;
  double unk_score_ = 0;
  size_t max_piece_bytes_ = 0;
  // Precompiled normalizer: darts-clone double-array units and the replacement strings
  std::vector<uint32_t> charsmap_units_;
  std::string charsmap_normalized_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;

  // added tokens
  std::map<std::string, int64_t> added_raw_, added_normalized_;
  std::map<int64_t, bool> added_special_;  // id → special
  // post-processor: the special tokens around a single sequence
  std::vector<int64_t> prefix_, suffix_;

  enum class Decoder { kNone, kByteLevel, kMetaspace } decoder_ = Decoder::kNone;
  bool metaspace_strip_first_ = true;
  int64_t pad_id_ = -1, eos_id_ = -1, bos_id_ = -1;
  common::TokenizerSettings settings_;
  bool warn_on_truncation_ = true;
};

// GPT-2's byte → printable-symbol table of the ByteLevel pre-tokenizer (a code point per byte).
const char32_t* byte_level_alphabet();

}  // namespace paradit::models::tokenizers
