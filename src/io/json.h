#pragma once
// JSON text → nlohmann::json with the checks every caller wants: a bounded nesting depth (a
// config file or a request nested 100 000 deep must be an error, not a stack overflow in the
// code that walks it) and nlohmann's exception turned into one line naming the source.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace paradit::io {

// Deeper than any diffusers config, tokenizer.json or request paradit reads.
constexpr int kMaxJsonDepth = 128;

// Error "<where>: malformed JSON (…)" or "<where>: JSON nests deeper than N levels".
nlohmann::json parse_json(std::string_view text, const std::string& where,
                          int max_depth = kMaxJsonDepth);

}  // namespace paradit::io
