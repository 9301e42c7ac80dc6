#pragma once
// JSON text → nlohmann::json with the checks every caller wants: a bounded nesting depth (a
// config file or a request nested 100 000 deep must be an error, not a stack overflow in the
// code that walks it) and nlohmann's exception turned into one line naming the source.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace paradit::io {

// Deeper than any diffusers config, tokenizer.json or request paradit reads.
constexpr int kMaxJsonDepth = 128;

// Why a text is not accepted: the reason in one line (no library prefix, no raw bytes of the
// input), the byte where it was found (the start of the offending value where the library does
// not say), and whether it is the depth limit.
struct JsonError {
  std::string reason;
  size_t byte = 0;
  bool too_deep = false;
};

// The parsed value, or nullopt with *error filled.
std::optional<nlohmann::json> try_parse_json(std::string_view text, JsonError* error,
                                             int max_depth = kMaxJsonDepth);

// Error "<where>: malformed JSON (…)" or "<where>: JSON nests deeper than N levels".
nlohmann::json parse_json(std::string_view text, const std::string& where,
                          int max_depth = kMaxJsonDepth);

// The object key whose value encloses or precedes byte `pos` of a JSON text ("prompt" for a bad
// byte inside {"prompt": "…"}); "" when there is none. For error messages: a lexical scan that
// needs no valid document.
std::string key_before(std::string_view text, size_t pos);

}  // namespace paradit::io
