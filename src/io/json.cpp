#include "io/json.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "core/error.h"

namespace paradit::io {

namespace {

struct TooDeep {};  // thrown by the depth guard, caught below

// nlohmann's text without its "[json.exception.…] " prefix, "parse error at line …, column …:"
// or the "; last read: '…'" tail (which quotes raw input bytes), on one line.
std::string clean_reason(const std::string& text) {
  std::string what = text;
  if (const auto p = what.find("] "); what.rfind("[json.exception", 0) == 0 && p != what.npos) {
    what = what.substr(p + 2);
  }
  if (what.rfind("parse error", 0) == 0) {
    if (const auto p = what.find(": "); p != what.npos) what = what.substr(p + 2);
  }
  if (const auto p = what.find("; last read"); p != what.npos) what = what.substr(0, p);
  for (char& c : what) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = ' ';  // never echo bytes that may not be UTF-8
  }
  return what;
}

}  // namespace

std::optional<nlohmann::json> try_parse_json(std::string_view text, JsonError* error,
                                             int max_depth) {
  using Json = nlohmann::json;
  size_t deep_at = 0;
  // The parser keeps its own stack; the callback stops a deep document before anything
  // recursive (our walks, a printer) sees it.
  auto depth_guard = [&](int depth, Json::parse_event_t event, Json&) {
    if ((event == Json::parse_event_t::object_start ||
         event == Json::parse_event_t::array_start) &&
        depth >= max_depth) {
      throw TooDeep{};
    }
    return true;
  };
  JsonError e;
  try {
    return Json::parse(text.begin(), text.end(), depth_guard, /*allow_exceptions=*/true);
  } catch (const TooDeep&) {
    e.too_deep = true;
    e.reason = "JSON nests deeper than " + std::to_string(max_depth) + " levels";
    // The first bracket past the limit.
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (in_string) {
        if (c == '\\') ++i;
        else if (c == '"') in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '[' || c == '{') {
        if (++depth > max_depth) {
          deep_at = i;
          break;
        }
      } else if (c == ']' || c == '}') {
        --depth;
      }
    }
    e.byte = deep_at;
  } catch (const Json::parse_error& x) {
    e.reason = clean_reason(x.what());
    e.byte = x.byte > 0 ? x.byte - 1 : 0;
  } catch (const Json::exception& x) {
    // e.g. out_of_range 406 "number overflow parsing '1e400'": find the literal it quotes.
    const std::string what = x.what();
    e.reason = clean_reason(what);
    const auto q = what.find("parsing '");
    if (q != what.npos) {
      const auto end = what.find('\'', q + 9);
      const std::string literal = what.substr(q + 9, end == what.npos ? what.npos : end - q - 9);
      const auto at = text.find(literal);
      if (!literal.empty() && at != text.npos) e.byte = at;
    }
  }
  if (error) *error = e;
  return std::nullopt;
}

nlohmann::json parse_json(std::string_view text, const std::string& where, int max_depth) {
  JsonError e;
  std::optional<nlohmann::json> j = try_parse_json(text, &e, max_depth);
  if (j) return std::move(*j);
  if (e.too_deep) fail(where, ": ", e.reason);
  fail(where, ": malformed JSON (", e.reason, ")");
}

std::string key_before(std::string_view text, size_t pos) {
  // Walks the text as tokens up to pos, remembering the last string followed by ':'; a key is
  // forgotten when its object or array closes.
  std::vector<std::string> keys;  // per open container: the current key ("" in arrays)
  std::string last_string;
  bool have_string = false;
  for (size_t i = 0; i < text.size() && i <= pos; ++i) {
    const char c = text[i];
    if (c == '"') {
      std::string s;
      size_t j = i + 1;
      for (; j < text.size() && text[j] != '"'; ++j) {
        if (text[j] == '\\') ++j;
        else s += text[j];
      }
      if (j > pos && !keys.empty()) break;  // pos is inside this string: a value of the key
      last_string = s;
      have_string = true;
      i = j;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    if (c == ':' && have_string && !keys.empty()) keys.back() = last_string;
    if (c == '{' || c == '[') keys.push_back("");
    if ((c == '}' || c == ']') && !keys.empty()) keys.pop_back();
    have_string = false;
  }
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) {
    if (!it->empty()) {
      std::string k = it->substr(0, 64);
      for (char& ch : k) {
        const auto u = static_cast<unsigned char>(ch);
        if (u < 0x20 || u >= 0x7f) ch = '?';
      }
      return k;
    }
  }
  return "";
}

}  // namespace paradit::io
