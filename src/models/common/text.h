#pragma once
// Text utilities shared by the tokenizers (T5, CLIP): UTF-8 ↔ code points, the Unicode classes
// and normalizations that Hugging Face `tokenizers` applies (letters/numbers/whitespace as the
// Oniguruma regex engine sees them, per-character lowercase, NFC), splitting on added special
// tokens, and the truncate/pad step that turns token ids into a model input.

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace paradit::models::common {

// ---------------------------------------------------------------- UTF-8
// Decodes UTF-8; an invalid or truncated sequence becomes U+FFFD (one per bad byte), so any
// byte string can be tokenized.
std::u32string utf8_to_u32(std::string_view text);
std::string u32_to_utf8(std::u32string_view text);
void append_utf8(char32_t cp, std::string& out);

// ---------------------------------------------------------------- character classes
bool is_letter(char32_t cp);      // \p{L}: General_Category Lu, Ll, Lt, Lm, Lo
bool is_number(char32_t cp);      // \p{N}: Nd, Nl, No
bool is_whitespace(char32_t cp);  // \s in Oniguruma with Unicode: White_Space
uint8_t combining_class(char32_t cp);

// ---------------------------------------------------------------- normalization
// Full lowercase one character at a time (no context: Σ always becomes σ), as Rust's
// char::to_lowercase and hence the `tokenizers` Lowercase normalizer.
std::u32string to_lower(std::u32string_view text);
// Unicode Normalization Form C (canonical decomposition, ordering, canonical composition).
std::u32string nfc(std::u32string_view text);
// Every run of whitespace becomes one space (the `Replace(\s+, " ")` normalizer).
std::u32string collapse_whitespace(std::u32string_view text);
// The Unicode version of the tables above.
const char* unicode_version();

// ---------------------------------------------------------------- added tokens
// A part of the input text: either plain text for the model, or one added (special) token that
// was matched verbatim in the raw text before any normalization, as `tokenizers` does.
struct TextPart {
  std::string text;
  int64_t token_id = -1;  // >= 0: an added token
};
// Splits `text` on the added tokens (content → id), leftmost match first and the longest
// content at a given position. Empty text parts are dropped.
std::vector<TextPart> split_on_added_tokens(const std::string& text,
                                            const std::map<std::string, int64_t>& added);

// ---------------------------------------------------------------- files
// Reads a whole file; Error "<what> <path>: cannot read ..." when missing or unreadable.
std::string read_text_file(const std::filesystem::path& path, const std::string& what);
// Reads and parses a JSON file; Error naming the file when missing or malformed.
nlohmann::json read_json_file(const std::filesystem::path& path, const std::string& what);
// A JSON file a tokenizer folder may have: {} when absent; Error naming the file when malformed.
nlohmann::json read_optional_json_file(const std::filesystem::path& path, const std::string& what);
// A token as tokenizer configs write it: either "<s>" or {"content": "<s>", ...}; "" otherwise.
std::string token_content(const nlohmann::json& value);
// The special token `key` ("eos_token", ...) of a tokenizer config; "" when absent or null.
std::string special_token_name(const nlohmann::json& config, const std::string& key);

// The added (special) tokens a tokenizer folder lists, content → id, into `added` (an entry
// already there wins): tokenizer.json's added_tokens, then tokenizer_config.json's
// added_tokens_decoder. Errors name the file whose entry is malformed.
void collect_added_tokens(const nlohmann::json& tokenizer_json,
                          const std::filesystem::path& tokenizer_json_path,
                          const nlohmann::json& config, const std::filesystem::path& config_path,
                          std::map<std::string, int64_t>& added);

// Which end padding / truncation acts on.
enum class Side { kRight, kLeft };

// What transformers takes from a tokenizer folder besides the vocabulary: tokenizer_config.json
// first, then tokenizer.json's "padding" / "truncation" blocks (which the fast tokenizer uses as
// defaults), then transformers' defaults.
struct TokenizerSettings {
  int model_max_length = 0;  // 0: no limit (absent, or transformers' 1e30 sentinel)
  Side padding_side = Side::kRight;
  Side truncation_side = Side::kRight;
  std::string pad_token;  // tokenizer.json's padding.pad_token; "" when none
};
// Error naming the file when a side is neither "left" nor "right".
TokenizerSettings read_tokenizer_settings(const nlohmann::json& config,
                                          const std::filesystem::path& config_path,
                                          const nlohmann::json& tokenizer_json,
                                          const std::filesystem::path& tokenizer_json_path);

// ---------------------------------------------------------------- encodings
// Token ids and attention mask (1 = real token, 0 = padding), as the tokenizer call
// `tok(text, padding='max_length', max_length=L, truncation=True)` returns them.
struct Encoding {
  std::vector<int64_t> ids, mask;
};

// Builds prefix + content + suffix. With max_length > 0 the content is truncated (at its end, or
// at its start for Side::kLeft) so that the whole fits (the special tokens are kept); with
// pad_to_max it is then padded with pad_id (mask 0) up to max_length, after the tokens or before
// them for Side::kLeft. `truncated` (optional) receives the removed content ids.
// Error when max_length cannot hold the special tokens.
Encoding finish_encoding(const std::vector<int64_t>& prefix, const std::vector<int64_t>& content,
                         const std::vector<int64_t>& suffix, int max_length, bool pad_to_max,
                         int64_t pad_id, const std::string& tokenizer_name,
                         std::vector<int64_t>* truncated, Side padding_side = Side::kRight,
                         Side truncation_side = Side::kRight);

// One line on stderr, as diffusers warns when a prompt is longer than the text encoder takes.
void warn_truncated(const std::string& tokenizer_name, int max_length, size_t removed_tokens,
                    const std::string& removed_text);

}  // namespace paradit::models::common
