#include "models/common/text.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "core/error.h"
#include "io/json.h"

namespace paradit::models::common {

namespace {

struct CodeRange {
  char32_t lo, hi;
};
struct CodeMap {
  char32_t from, to;
};
struct LowerMulti {
  char32_t from;
  char32_t to[3];
};
struct Decomposition {
  char32_t cp, first, second;
};
struct Composition {
  char32_t first, second, composite;
};
struct CombiningRange {
  char32_t lo, hi;
  uint8_t ccc;
};

#include "models/common/text_unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t cp) {
  const CodeRange* end = table + N;
  // First range whose end is >= cp.
  const CodeRange* it =
      std::lower_bound(table, end, cp, [](const CodeRange& r, char32_t c) { return r.hi < c; });
  return it != end && it->lo <= cp;
}

// Hangul syllables compose and decompose algorithmically (Unicode §3.12).
constexpr char32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
constexpr char32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr char32_t kHangulNCount = kHangulVCount * kHangulTCount;  // 588
constexpr char32_t kHangulSCount = kHangulLCount * kHangulNCount;  // 11172

void decompose(char32_t cp, std::u32string& out) {
  if (cp >= kHangulS && cp < kHangulS + kHangulSCount) {
    const char32_t s = cp - kHangulS;
    out.push_back(kHangulL + s / kHangulNCount);
    out.push_back(kHangulV + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount != 0) out.push_back(kHangulT + s % kHangulTCount);
    return;
  }
  const Decomposition* end = kDecompositions + std::size(kDecompositions);
  const Decomposition* it = std::lower_bound(
      kDecompositions, end, cp, [](const Decomposition& d, char32_t c) { return d.cp < c; });
  if (it == end || it->cp != cp) {
    out.push_back(cp);
    return;
  }
  decompose(it->first, out);  // mappings are one level deep in the table: recurse
  if (it->second != 0) decompose(it->second, out);
}

// The primary composite of (first, second), or 0.
char32_t compose(char32_t first, char32_t second) {
  if (first >= kHangulL && first < kHangulL + kHangulLCount && second >= kHangulV &&
      second < kHangulV + kHangulVCount) {
    return kHangulS + ((first - kHangulL) * kHangulVCount + (second - kHangulV)) * kHangulTCount;
  }
  if (first >= kHangulS && first < kHangulS + kHangulSCount &&
      (first - kHangulS) % kHangulTCount == 0 && second > kHangulT &&
      second < kHangulT + kHangulTCount) {
    return first + (second - kHangulT);
  }
  const Composition* end = kCompositions + std::size(kCompositions);
  const Composition* it = std::lower_bound(
      kCompositions, end, std::make_pair(first, second),
      [](const Composition& c, const std::pair<char32_t, char32_t>& key) {
        return c.first < key.first || (c.first == key.first && c.second < key.second);
      });
  if (it != end && it->first == first && it->second == second) return it->composite;
  return 0;
}

bool starts_with_at(const std::string& text, size_t pos, const std::string& token) {
  return text.compare(pos, token.size(), token) == 0;
}

}  // namespace

// ---------------------------------------------------------------- UTF-8

std::u32string utf8_to_u32(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    int len = 0;
    char32_t cp = 0, min = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    }
    bool ok = len > 0 && i + len <= n;
    for (int k = 1; ok && k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
    if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string u32_to_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(cp, out);
  return out;
}

// ---------------------------------------------------------------- character classes

bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  return in_ranges(kLetterRanges, cp);
}

bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(kNumberRanges, cp);
}

bool is_whitespace(char32_t cp) {
  // White_Space: Cc 09-0D and 85, Zs, Zl, Zp (U+180E left Zs in Unicode 6.3).
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const CombiningRange* end = kCombiningClasses + std::size(kCombiningClasses);
  const CombiningRange* it = std::lower_bound(
      kCombiningClasses, end, cp, [](const CombiningRange& r, char32_t c) { return r.hi < c; });
  return (it != end && it->lo <= cp) ? it->ccc : 0;
}

const char* unicode_version() { return kUnicodeVersion; }

// ---------------------------------------------------------------- normalization

std::u32string to_lower(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t cp : text) {
    if (cp < 0x80) {
      out.push_back(cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp);
      continue;
    }
    const CodeMap* end = kLowercase + std::size(kLowercase);
    const CodeMap* it = std::lower_bound(kLowercase, end, cp,
                                         [](const CodeMap& m, char32_t c) { return m.from < c; });
    if (it != end && it->from == cp) {
      out.push_back(it->to);
      continue;
    }
    bool multi = false;
    for (const LowerMulti& m : kLowercaseMulti) {
      if (m.from != cp) continue;
      for (char32_t t : m.to) {
        if (t != 0) out.push_back(t);
      }
      multi = true;
      break;
    }
    if (!multi) out.push_back(cp);
  }
  return out;
}

std::u32string nfc(std::u32string_view text) {
  // Below U+0300 every character is NFC_Quick_Check=Yes and composes with nothing before it.
  if (std::all_of(text.begin(), text.end(), [](char32_t cp) { return cp < 0x300; })) {
    return std::u32string(text);
  }
  std::u32string d;
  d.reserve(text.size() + 8);
  for (char32_t cp : text) decompose(cp, d);

  // Canonical ordering: a stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < d.size();) {
    if (combining_class(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && combining_class(d[j]) != 0) ++j;
    std::stable_sort(
        d.begin() + static_cast<std::ptrdiff_t>(i), d.begin() + static_cast<std::ptrdiff_t>(j),
        [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }

  // Canonical composition: a character joins the last starter unless a character between them
  // has a combining class >= its own (it is "blocked").
  std::u32string out;
  out.reserve(d.size());
  if (d.empty()) return out;
  out.push_back(d[0]);
  size_t starter_pos = 0;
  int last_class = combining_class(d[0]) == 0 ? 0 : 256;  // a leading non-starter blocks all
  for (size_t i = 1; i < d.size(); ++i) {
    const char32_t ch = d[i];
    const int ch_class = combining_class(ch);
    const char32_t composite = compose(out[starter_pos], ch);
    if (composite != 0 && (last_class < ch_class || last_class == 0)) {
      out[starter_pos] = composite;
      continue;
    }
    if (ch_class == 0) starter_pos = out.size();
    last_class = ch_class;
    out.push_back(ch);
  }
  return out;
}

std::u32string collapse_whitespace(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  bool in_space = false;
  for (char32_t cp : text) {
    if (is_whitespace(cp)) {
      if (!in_space) out.push_back(U' ');
      in_space = true;
    } else {
      out.push_back(cp);
      in_space = false;
    }
  }
  return out;
}

// ---------------------------------------------------------------- added tokens

std::vector<TextPart> split_on_added_tokens(const std::string& text,
                                            const std::map<std::string, int64_t>& added) {
  std::vector<TextPart> parts;
  bool first_byte[256] = {};
  for (const auto& [content, id] : added) {
    if (!content.empty()) first_byte[static_cast<unsigned char>(content[0])] = true;
  }
  size_t plain_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    const std::pair<const std::string, int64_t>* best = nullptr;
    if (first_byte[static_cast<unsigned char>(text[i])]) {
      for (const auto& entry : added) {
        if (entry.first.empty() || !starts_with_at(text, i, entry.first)) continue;
        if (best == nullptr || entry.first.size() > best->first.size()) best = &entry;
      }
    }
    if (best == nullptr) {
      ++i;
      continue;
    }
    if (i > plain_start) parts.push_back({text.substr(plain_start, i - plain_start), -1});
    parts.push_back({best->first, best->second});
    i += best->first.size();
    plain_start = i;
  }
  if (plain_start < text.size()) parts.push_back({text.substr(plain_start), -1});
  return parts;
}

// ---------------------------------------------------------------- files

std::string read_text_file(const std::filesystem::path& path, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    fail(what, " ", path.string(), ": file not found (expected a regular file)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(what, " ", path.string(), ": cannot open (", std::strerror(errno), ")");
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) fail(what, " ", path.string(), ": read error");
  return os.str();
}

nlohmann::json read_json_file(const std::filesystem::path& path, const std::string& what) {
  return io::parse_json(read_text_file(path, what), what + " " + path.string());
}

nlohmann::json read_optional_json_file(const std::filesystem::path& path, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return nlohmann::json::object();
  return read_json_file(path, what);
}

void collect_added_tokens(const nlohmann::json& tokenizer_json,
                          const std::filesystem::path& tokenizer_json_path,
                          const nlohmann::json& config, const std::filesystem::path& config_path,
                          std::map<std::string, int64_t>& added) {
  auto add = [&](const std::string& content, int64_t id) {
    if (!content.empty() && id >= 0) added.emplace(content, id);
  };
  if (tokenizer_json.is_object() && tokenizer_json.contains("added_tokens") &&
      tokenizer_json.at("added_tokens").is_array()) {
    for (const nlohmann::json& t : tokenizer_json.at("added_tokens")) {
      PARADIT_CHECK(t.is_object() && t.contains("content") && t.at("content").is_string() &&
                        t.contains("id") && t.at("id").is_number_integer(),
                    "tokenizer ", tokenizer_json_path.string(),
                    ": added_tokens entries need a string 'content' and an integer 'id'");
      add(t.at("content").get<std::string>(), t.at("id").get<int64_t>());
    }
  }
  if (config.is_object() && config.contains("added_tokens_decoder") &&
      config.at("added_tokens_decoder").is_object()) {
    for (const auto& [key, t] : config.at("added_tokens_decoder").items()) {
      int64_t id = -1;
      try {
        id = std::stoll(key);
      } catch (const std::exception&) {
        fail("tokenizer config ", config_path.string(), ": added_tokens_decoder key '", key,
             "' is not a token id");
      }
      add(token_content(t), id);
    }
  }
}

namespace {

// "left" / "right" (tokenizer_config.json) or "Left" / "Right" (tokenizer.json).
Side parse_side(const nlohmann::json& value, const std::filesystem::path& path,
                const std::string& key) {
  const std::string s = value.is_string() ? value.get<std::string>() : value.dump();
  if (s == "right" || s == "Right") return Side::kRight;
  if (s == "left" || s == "Left") return Side::kLeft;
  fail("tokenizer ", path.string(), ": ", key, " is '", s, "', expected 'left' or 'right'");
}

}  // namespace

TokenizerSettings read_tokenizer_settings(const nlohmann::json& config,
                                          const std::filesystem::path& config_path,
                                          const nlohmann::json& tokenizer_json,
                                          const std::filesystem::path& tokenizer_json_path) {
  TokenizerSettings s;
  const nlohmann::json null;
  auto block = [&](const char* name) -> const nlohmann::json& {
    if (!tokenizer_json.is_object()) return null;
    auto it = tokenizer_json.find(name);
    return it != tokenizer_json.end() && it->is_object() ? *it : null;
  };
  const nlohmann::json& padding = block("padding");
  const nlohmann::json& truncation = block("truncation");

  if (config.is_object() && config.contains("model_max_length")) {
    const nlohmann::json& v = config.at("model_max_length");
    PARADIT_CHECK(v.is_number(), "tokenizer config ", config_path.string(),
                  ": model_max_length is ", v.dump(), ", expected a number");
    // transformers writes a huge sentinel (int(1e30)) when the tokenizer has no limit.
    const double n = v.get<double>();
    if (n >= 1 && n <= 1e9) s.model_max_length = static_cast<int>(n);
  }
  if (config.is_object() && config.contains("padding_side")) {
    s.padding_side = parse_side(config.at("padding_side"), config_path, "padding_side");
  } else if (padding.contains("direction")) {
    s.padding_side = parse_side(padding.at("direction"), tokenizer_json_path, "padding.direction");
  }
  if (config.is_object() && config.contains("truncation_side")) {
    s.truncation_side = parse_side(config.at("truncation_side"), config_path, "truncation_side");
  } else if (truncation.contains("direction")) {
    s.truncation_side =
        parse_side(truncation.at("direction"), tokenizer_json_path, "truncation.direction");
  }
  if (padding.contains("pad_token") && padding.at("pad_token").is_string()) {
    s.pad_token = padding.at("pad_token").get<std::string>();
  }
  return s;
}

std::string special_token_name(const nlohmann::json& config, const std::string& key) {
  if (!config.is_object() || !config.contains(key)) return "";
  return token_content(config.at(key));
}

std::string token_content(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value.at("content").is_string()) {
    return value.at("content").get<std::string>();
  }
  return "";
}

// ---------------------------------------------------------------- encodings

Encoding finish_encoding(const std::vector<int64_t>& prefix, const std::vector<int64_t>& content,
                         const std::vector<int64_t>& suffix, int max_length, bool pad_to_max,
                         int64_t pad_id, const std::string& tokenizer_name,
                         std::vector<int64_t>* truncated, Side padding_side, Side truncation_side) {
  const size_t n_special = prefix.size() + suffix.size();
  PARADIT_CHECK(!pad_to_max || max_length > 0, tokenizer_name,
                " tokenizer: padding to max_length needs max_length > 0, found ", max_length);
  PARADIT_CHECK(max_length <= 0 || static_cast<size_t>(max_length) >= n_special, tokenizer_name,
                " tokenizer: max_length ", max_length, " cannot hold the ", n_special,
                " special tokens it adds");
  size_t keep = content.size();
  if (max_length > 0 && n_special + content.size() > static_cast<size_t>(max_length)) {
    keep = static_cast<size_t>(max_length) - n_special;
  }
  // The kept content is [first, first + keep).
  const size_t first = truncation_side == Side::kLeft ? content.size() - keep : 0;
  const auto begin = content.begin() + static_cast<std::ptrdiff_t>(first);
  const auto end = begin + static_cast<std::ptrdiff_t>(keep);
  if (truncated != nullptr) {
    truncated->assign(content.begin(), begin);
    truncated->insert(truncated->end(), end, content.end());
  }
  Encoding enc;
  enc.ids.reserve(pad_to_max ? static_cast<size_t>(max_length) : keep + n_special);
  enc.ids.insert(enc.ids.end(), prefix.begin(), prefix.end());
  enc.ids.insert(enc.ids.end(), begin, end);
  enc.ids.insert(enc.ids.end(), suffix.begin(), suffix.end());
  enc.mask.assign(enc.ids.size(), 1);
  if (pad_to_max && enc.ids.size() < static_cast<size_t>(max_length)) {
    const size_t n_pad = static_cast<size_t>(max_length) - enc.ids.size();
    if (padding_side == Side::kLeft) {
      enc.ids.insert(enc.ids.begin(), n_pad, pad_id);
      enc.mask.insert(enc.mask.begin(), n_pad, 0);
    } else {
      enc.ids.insert(enc.ids.end(), n_pad, pad_id);
      enc.mask.insert(enc.mask.end(), n_pad, 0);
    }
  }
  return enc;
}

void warn_truncated(const std::string& tokenizer_name, int max_length, size_t removed_tokens,
                    const std::string& removed_text) {
  std::string shown = removed_text;
  std::replace_if(
      shown.begin(), shown.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  std::cerr << "paradit: warning: the prompt is longer than the " << tokenizer_name
            << " tokenizer's max_length " << max_length << "; " << removed_tokens
            << " tokens were truncated: \"" << shown << "\"\n";
}

}  // namespace paradit::models::common
