#include "models/tokenizers/tokenizer.h"

#include <algorithm>
#include <cstring>
#include <queue>
#include <tuple>

#include "core/error.h"

namespace paradit::models::tokenizers {

using nlohmann::json;

namespace {

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to 256 + n in order.
struct ByteAlphabet {
  char32_t symbol[256];
  std::unordered_map<char32_t, uint8_t> byte_of;
  ByteAlphabet() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      symbol[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      byte_of[symbol[b]] = static_cast<uint8_t>(b);
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

// GPT-2's pre-tokenization pattern (ByteLevel with use_regex).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string type_of(const json& j) {
  return j.is_object() && j.contains("type") && j.at("type").is_string()
             ? j.at("type").get<std::string>()
             : std::string();
}

bool get_bool(const json& j, const char* key, bool fallback) {
  return j.contains(key) && j.at(key).is_boolean() ? j.at(key).get<bool>() : fallback;
}

std::string get_string(const json& j, const char* key) {
  return j.contains(key) && j.at(key).is_string() ? j.at(key).get<std::string>() : std::string();
}

// A {"Regex": ...} or {"String": ...} pattern; a plain string is a literal.
void read_pattern(const json& p, const std::string& where, Regex& regex, std::u32string& literal) {
  if (p.is_object() && p.contains("Regex")) {
    regex = Regex(p.at("Regex").get<std::string>(), where);
  } else if (p.is_object() && p.contains("String")) {
    literal = common::utf8_to_u32(p.at("String").get<std::string>());
  } else if (p.is_string()) {
    literal = common::utf8_to_u32(p.get<std::string>());
  } else {
    fail(where, ": pattern ", p.dump(), " is neither {\"Regex\": ...} nor {\"String\": ...}");
  }
}

// [begin, end) spans of the matches of regex/literal in text.
std::vector<std::pair<size_t, size_t>> find_matches(const Regex& regex,
                                                    const std::u32string& literal,
                                                    const std::u32string& text) {
  if (regex.defined()) return regex.find_all(text);
  std::vector<std::pair<size_t, size_t>> out;
  if (literal.empty()) return out;
  for (size_t pos = text.find(literal); pos != std::u32string::npos;
       pos = text.find(literal, pos + literal.size())) {
    out.emplace_back(pos, pos + literal.size());
  }
  return out;
}

// Standard base64 (the Precompiled normalizer's charsmap in tokenizer.json).
std::string base64_decode(const std::string& in, const std::string& where) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    int v = 0;
    if (ch >= 'A' && ch <= 'Z') {
      v = ch - 'A';
    } else if (ch >= 'a' && ch <= 'z') {
      v = ch - 'a' + 26;
    } else if (ch >= '0' && ch <= '9') {
      v = ch - '0' + 52;
    } else if (ch == '+') {
      v = 62;
    } else if (ch == '/') {
      v = 63;
    } else if (ch == '=' || ch == '\n' || ch == '\r') {
      continue;
    } else {
      fail(where, ": precompiled_charsmap is not base64");
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// Whether cp continues the grapheme cluster before it (UAX #29 Extend / SpacingMark / ZWJ, and
// CR LF). An approximation that is exact for the clusters shorter than 6 UTF-8 bytes, the only
// ones the Precompiled normalizer treats as a whole.
bool continues_cluster(char32_t prev, char32_t cp) {
  if (prev == U'\r') return cp == U'\n';
  const GeneralCategory pc = general_category(prev);
  if (prev == U'\n' || pc == GeneralCategory::kCc || pc == GeneralCategory::kZl ||
      pc == GeneralCategory::kZp) {
    return false;
  }
  const GeneralCategory c = general_category(cp);
  return c == GeneralCategory::kMn || c == GeneralCategory::kMe || c == GeneralCategory::kMc ||
         cp == 0x200C || cp == 0x200D || (cp >= 0xFE00 && cp <= 0xFE0F) ||
         (cp >= 0xE0100 && cp <= 0xE01EF) || (cp >= 0x1F3FB && cp <= 0x1F3FF) || cp == 0xFF9E ||
         cp == 0xFF9F;
}

}  // namespace

const char32_t* byte_level_alphabet() { return alphabet().symbol; }

// ---------------------------------------------------------------- loading
Tokenizer Tokenizer::load(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "tokenizer.json";
  const json tj = common::read_json_file(path, "tokenizer");
  const json config =
      common::read_optional_json_file(dir / "tokenizer_config.json", "tokenizer config");
  return from_json(tj, path.string(), config);
}

Tokenizer Tokenizer::from_json(const json& tj, const std::string& where, const json& config) {
  Tokenizer tok;
  tok.where_ = where;
  PARADIT_CHECK(tj.is_object() && tj.contains("model") && tj.at("model").is_object(), where,
                ": not a tokenizer.json (no 'model' object)");

  // ---- normalizer
  std::function<void(const json&)> add_normalizer = [&](const json& n) {
    if (n.is_null()) return;
    const std::string type = type_of(n);
    Normalizer out;
    if (type == "Sequence") {
      for (const json& child : n.at("normalizers")) add_normalizer(child);
      return;
    } else if (type == "NFC") {
      out.kind = Normalizer::kNFC;
    } else if (type == "Lowercase") {
      out.kind = Normalizer::kLowercase;
    } else if (type == "Replace") {
      out.kind = Normalizer::kReplace;
      read_pattern(n.at("pattern"), where, out.pattern, out.literal);
      out.content = common::utf8_to_u32(get_string(n, "content"));
    } else if (type == "Strip") {
      out.kind = Normalizer::kStrip;
      out.strip_left = get_bool(n, "strip_left", true);
      out.strip_right = get_bool(n, "strip_right", true);
    } else if (type == "Prepend") {
      out.kind = Normalizer::kPrepend;
      out.content = common::utf8_to_u32(get_string(n, "prepend"));
    } else if (type == "Precompiled") {
      out.kind = Normalizer::kPrecompiled;
      const std::string blob = base64_decode(get_string(n, "precompiled_charsmap"), where);
      if (!blob.empty()) {
        PARADIT_CHECK(blob.size() >= 4, where, ": precompiled_charsmap is truncated");
        uint32_t trie_bytes = 0;
        std::memcpy(&trie_bytes, blob.data(), 4);
        PARADIT_CHECK(trie_bytes % 4 == 0 && 4 + static_cast<size_t>(trie_bytes) <= blob.size(),
                      where, ": precompiled_charsmap trie size ", trie_bytes, " exceeds its ",
                      blob.size(), " bytes");
        tok.charsmap_units_.resize(trie_bytes / 4);
        std::memcpy(tok.charsmap_units_.data(), blob.data() + 4, trie_bytes);
        tok.charsmap_normalized_ = blob.substr(4 + trie_bytes);
      }
    } else {
      fail(where, ": normalizer type '", type, "' is not supported");
    }
    tok.normalizers_.push_back(std::move(out));
  };
  if (tj.contains("normalizer")) add_normalizer(tj.at("normalizer"));

  // ---- pre-tokenizer
  std::function<void(const json&)> add_pre = [&](const json& p) {
    if (p.is_null()) return;
    const std::string type = type_of(p);
    PreTokenizer out;
    if (type == "Sequence") {
      for (const json& child : p.at("pretokenizers")) add_pre(child);
      return;
    } else if (type == "Split") {
      out.kind = PreTokenizer::kSplit;
      read_pattern(p.at("pattern"), where, out.pattern, out.literal);
      const std::string b = get_string(p, "behavior");
      if (b == "Removed") {
        out.behavior = PreTokenizer::kRemoved;
      } else if (b == "Isolated") {
        out.behavior = PreTokenizer::kIsolated;
      } else if (b == "MergedWithPrevious") {
        out.behavior = PreTokenizer::kMergedWithPrevious;
      } else if (b == "MergedWithNext") {
        out.behavior = PreTokenizer::kMergedWithNext;
      } else if (b == "Contiguous") {
        out.behavior = PreTokenizer::kContiguous;
      } else {
        fail(where, ": Split behavior '", b, "' is not supported");
      }
      out.invert = get_bool(p, "invert", false);
    } else if (type == "ByteLevel") {
      out.kind = PreTokenizer::kByteLevel;
      out.add_prefix_space = get_bool(p, "add_prefix_space", true);
      out.use_regex = get_bool(p, "use_regex", true);
      if (out.use_regex) out.pattern = Regex(kGpt2Pattern, where);
      tok.byte_level_ = true;
    } else if (type == "WhitespaceSplit") {
      out.kind = PreTokenizer::kWhitespaceSplit;
    } else if (type == "Metaspace") {
      out.kind = PreTokenizer::kMetaspace;
      const std::u32string rep = common::utf8_to_u32(get_string(p, "replacement"));
      if (!rep.empty()) out.replacement = rep[0];
      std::string scheme = get_string(p, "prepend_scheme");
      if (scheme.empty()) scheme = get_bool(p, "add_prefix_space", true) ? "always" : "never";
      out.prepend = scheme == "first"   ? PreTokenizer::kFirst
                    : scheme == "never" ? PreTokenizer::kNever
                                        : PreTokenizer::kAlways;
      out.split = get_bool(p, "split", true);
    } else {
      fail(where, ": pre_tokenizer type '", type, "' is not supported");
    }
    tok.pre_tokenizers_.push_back(std::move(out));
  };
  if (tj.contains("pre_tokenizer")) add_pre(tj.at("pre_tokenizer"));

  // ---- model
  const json& model = tj.at("model");
  const std::string model_type = type_of(model);
  PARADIT_CHECK(model_type == "BPE" || model_type == "Unigram" ||
                    (model_type.empty() && model.contains("merges")),
                where, ": model type '", model_type,
                "' is not supported (the tokenizer.json tokenizer implements BPE and Unigram)");
  if (model_type == "Unigram") {
    tok.unigram_ = true;
    PARADIT_CHECK(model.contains("vocab") && model.at("vocab").is_array(), where,
                  ": model.vocab of a Unigram model must be a list of [piece, score]");
    PARADIT_CHECK(!get_bool(model, "byte_fallback", false), where,
                  ": Unigram byte_fallback is not supported");
    double min_score = 0.0;
    for (const json& entry : model.at("vocab")) {
      PARADIT_CHECK(
          entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_number(),
          where, ": Unigram vocab entry ", entry.dump(), " is not [piece, score]");
      const std::string piece = entry[0].get<std::string>();
      const double score = entry[1].get<double>();
      tok.vocab_.emplace(piece, static_cast<int64_t>(tok.scores_.size()));
      tok.scores_.push_back(score);
      min_score = std::min(min_score, score);
      tok.max_piece_bytes_ = std::max(tok.max_piece_bytes_, piece.size());
    }
    tok.unk_score_ = min_score - 10.0;  // tokenizers' kUnkPenalty
    if (model.contains("unk_id") && model.at("unk_id").is_number_integer()) {
      tok.unk_id_ = model.at("unk_id").get<int64_t>();
    }
  } else {
    PARADIT_CHECK(model.contains("vocab") && model.at("vocab").is_object(), where,
                  ": model.vocab is missing or not an object");
    for (const auto& [token, id] : model.at("vocab").items()) {
      PARADIT_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0, where, ": vocab entry '",
                    token, "' has id ", id.dump(), ", expected a non-negative integer");
      tok.vocab_[token] = id.get<int64_t>();
    }
  }
  int32_t rank = 0;
  if (model.contains("merges")) {
    for (const json& m : model.at("merges")) {
      std::string left, right;
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ');
        PARADIT_CHECK(sp != std::string::npos, where, ": merge '", s, "' has no space");
        left = s.substr(0, sp);
        right = s.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else {
        fail(where, ": merge ", m.dump(), " is neither \"a b\" nor [\"a\", \"b\"]");
      }
      tok.merge_ranks_.emplace(left + '\x01' + right, rank++);
    }
  }
  tok.end_of_word_suffix_ = get_string(model, "end_of_word_suffix");
  tok.continuing_subword_prefix_ = get_string(model, "continuing_subword_prefix");
  tok.fuse_unk_ = get_bool(model, "fuse_unk", false);
  tok.byte_fallback_ = get_bool(model, "byte_fallback", false);
  tok.ignore_merges_ = get_bool(model, "ignore_merges", false);
  PARADIT_CHECK(!model.contains("dropout") || model.at("dropout").is_null(), where,
                ": BPE dropout is not supported");

  // ---- added tokens
  if (tj.contains("added_tokens")) {
    for (const json& t : tj.at("added_tokens")) {
      PARADIT_CHECK(t.is_object() && t.contains("content") && t.at("content").is_string() &&
                        t.contains("id") && t.at("id").is_number_integer(),
                    where, ": added_tokens entries need a string 'content' and an integer 'id'");
      const std::string content = t.at("content").get<std::string>();
      const int64_t id = t.at("id").get<int64_t>();
      PARADIT_CHECK(!get_bool(t, "lstrip", false) && !get_bool(t, "rstrip", false) &&
                        !get_bool(t, "single_word", false),
                    where, ": added token '", content,
                    "' uses lstrip/rstrip/single_word, which are not supported");
      (get_bool(t, "normalized", false) ? tok.added_normalized_ : tok.added_raw_)[content] = id;
      tok.added_special_[id] = get_bool(t, "special", false);
      tok.vocab_.emplace(content, id);
    }
  }
  int64_t max_id = -1;
  for (const auto& [token, id] : tok.vocab_) max_id = std::max(max_id, id);
  tok.id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : tok.vocab_) tok.id_to_token_[static_cast<size_t>(id)] = token;
  const std::string unk = get_string(model, "unk_token");
  if (!unk.empty() && !tok.unigram_) tok.unk_id_ = tok.token_to_id(unk);

  // ---- post-processor: the special tokens before and after a single sequence
  std::function<void(const json&)> add_post = [&](const json& p) {
    if (p.is_null()) return;
    const std::string type = type_of(p);
    if (type == "Sequence") {
      for (const json& child : p.at("processors")) add_post(child);
    } else if (type == "ByteLevel") {
      // offsets only
    } else if (type == "TemplateProcessing") {
      bool after = false;
      for (const json& item : p.at("single")) {
        if (item.contains("Sequence")) {
          after = true;
        } else if (item.contains("SpecialToken")) {
          const std::string name = item.at("SpecialToken").at("id").get<std::string>();
          PARADIT_CHECK(p.contains("special_tokens") && p.at("special_tokens").contains(name),
                        where, ": post_processor special token '", name, "' is not defined");
          for (const json& id : p.at("special_tokens").at(name).at("ids")) {
            (after ? tok.suffix_ : tok.prefix_).push_back(id.get<int64_t>());
          }
        }
      }
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
      tok.prefix_.push_back(p.at("cls").at(1).get<int64_t>());
      tok.suffix_.push_back(p.at("sep").at(1).get<int64_t>());
    } else {
      fail(where, ": post_processor type '", type, "' is not supported");
    }
  };
  if (tj.contains("post_processor")) add_post(tj.at("post_processor"));

  // ---- decoder
  const std::string dec = tj.contains("decoder") ? type_of(tj.at("decoder")) : std::string();
  tok.decoder_ = dec == "ByteLevel"   ? Decoder::kByteLevel
                 : dec == "Metaspace" ? Decoder::kMetaspace
                                      : Decoder::kNone;
  if (tok.decoder_ == Decoder::kMetaspace) {
    tok.metaspace_strip_first_ = get_string(tj.at("decoder"), "prepend_scheme") != "never";
  }

  // ---- config: special tokens, lengths, sides
  tok.settings_ = common::read_tokenizer_settings(config, "tokenizer_config.json", tj, where);
  auto special = [&](const char* key) -> int64_t {
    const std::string name = common::special_token_name(config, key);
    return name.empty() ? -1 : tok.token_to_id(name);
  };
  tok.pad_id_ = special("pad_token");
  if (tok.pad_id_ < 0 && !tok.settings_.pad_token.empty()) {
    tok.pad_id_ = tok.token_to_id(tok.settings_.pad_token);
  }
  tok.eos_id_ = special("eos_token");
  // The name warnings use: the config's tokenizer class ("T5Tokenizer" …), else the file.
  tok.name_ = config.is_object() && config.contains("tokenizer_class") &&
                      config.at("tokenizer_class").is_string()
                  ? config.at("tokenizer_class").get<std::string>()
                  : where;
  tok.bos_id_ = special("bos_token");
  return tok;
}

// ---------------------------------------------------------------- steps
std::u32string Tokenizer::normalize(std::u32string text) const {
  for (const Normalizer& n : normalizers_) {
    switch (n.kind) {
      case Normalizer::kNFC:
        text = common::nfc(text);
        break;
      case Normalizer::kLowercase:
        text = common::to_lower(text);
        break;
      case Normalizer::kReplace: {
        std::u32string out;
        size_t prev = 0;
        for (const auto& [b, e] : find_matches(n.pattern, n.literal, text)) {
          out.append(text, prev, b - prev);
          out += n.content;
          prev = e;
        }
        out.append(text, prev, std::u32string::npos);
        text = std::move(out);
        break;
      }
      case Normalizer::kStrip: {
        size_t b = 0, e = text.size();
        if (n.strip_left) {
          while (b < e && common::is_whitespace(text[b])) ++b;
        }
        if (n.strip_right) {
          while (e > b && common::is_whitespace(text[e - 1])) --e;
        }
        text = text.substr(b, e - b);
        break;
      }
      case Normalizer::kPrepend:
        if (!text.empty()) text = n.content + text;
        break;
      case Normalizer::kPrecompiled:
        text = precompiled(text);
        break;
    }
  }
  return text;
}

std::vector<std::u32string> Tokenizer::pre_tokenize(const std::u32string& text) const {
  std::vector<std::u32string> pieces{text};
  for (const PreTokenizer& p : pre_tokenizers_) {
    std::vector<std::u32string> next;
    for (std::u32string& piece : pieces) {
      if (p.kind == PreTokenizer::kWhitespaceSplit) {
        size_t i = 0;
        while (i < piece.size()) {
          while (i < piece.size() && common::is_whitespace(piece[i])) ++i;
          const size_t b = i;
          while (i < piece.size() && !common::is_whitespace(piece[i])) ++i;
          if (i > b) next.push_back(piece.substr(b, i - b));
        }
        continue;
      }
      if (p.kind == PreTokenizer::kMetaspace) {
        for (char32_t& c : piece) {
          if (c == U' ') c = p.replacement;
        }
        const bool first = &piece == &pieces.front();
        if ((p.prepend == PreTokenizer::kAlways || (p.prepend == PreTokenizer::kFirst && first)) &&
            (piece.empty() || piece[0] != p.replacement)) {
          piece = std::u32string(1, p.replacement) + piece;
        }
        if (!p.split) {
          next.push_back(piece);
          continue;
        }
        // MergedWithNext: each replacement starts a new piece
        size_t start = 0;
        for (size_t i = 1; i <= piece.size(); ++i) {
          if (i == piece.size() || piece[i] == p.replacement) {
            if (i > start) next.push_back(piece.substr(start, i - start));
            start = i;
          }
        }
        continue;
      }
      if (p.kind == PreTokenizer::kByteLevel) {
        if (p.add_prefix_space && !piece.empty() && piece[0] != U' ') piece = U" " + piece;
        std::vector<std::u32string> parts;
        if (p.use_regex) {
          // Isolated: matches and the text between them.
          size_t prev = 0;
          for (const auto& [b, e] : p.pattern.find_all(piece)) {
            if (b > prev) parts.push_back(piece.substr(prev, b - prev));
            if (e > b) parts.push_back(piece.substr(b, e - b));
            prev = e;
          }
          if (prev < piece.size()) parts.push_back(piece.substr(prev));
        } else {
          parts.push_back(piece);
        }
        // bytes → symbols
        for (const std::u32string& part : parts) {
          const std::string bytes = common::u32_to_utf8(part);
          std::u32string mapped;
          for (unsigned char b : bytes) mapped.push_back(alphabet().symbol[b]);
          if (!mapped.empty()) next.push_back(std::move(mapped));
        }
        continue;
      }
      // Split: the text as (span, is_match) pieces, as `tokenizers` cuts it.
      std::vector<std::tuple<size_t, size_t, bool>> spans;
      size_t prev = 0;
      for (const auto& [b, e] : find_matches(p.pattern, p.literal, piece)) {
        if (b > prev) spans.emplace_back(prev, b, false);
        spans.emplace_back(b, e, true);
        prev = e;
      }
      if (prev < piece.size()) spans.emplace_back(prev, piece.size(), false);
      if (p.invert) {
        for (auto& s : spans) std::get<2>(s) = !std::get<2>(s);
      }
      std::vector<std::pair<size_t, size_t>> kept;
      bool previous_match = false;
      switch (p.behavior) {
        case PreTokenizer::kRemoved:
          for (const auto& [b, e, m] : spans) {
            if (!m) kept.emplace_back(b, e);
          }
          break;
        case PreTokenizer::kIsolated:
          for (const auto& [b, e, m] : spans) kept.emplace_back(b, e);
          break;
        case PreTokenizer::kMergedWithPrevious:
          for (const auto& [b, e, m] : spans) {
            if (m && !previous_match && !kept.empty()) {
              kept.back().second = e;
            } else {
              kept.emplace_back(b, e);
            }
            previous_match = m;
          }
          break;
        case PreTokenizer::kMergedWithNext:
          for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
            const auto& [b, e, m] = *it;
            if (m && !previous_match && !kept.empty()) {
              kept.back().first = b;
            } else {
              kept.emplace_back(b, e);
            }
            previous_match = m;
          }
          std::reverse(kept.begin(), kept.end());
          break;
        case PreTokenizer::kContiguous:
          for (const auto& [b, e, m] : spans) {
            if (m == previous_match && !kept.empty()) {
              kept.back().second = e;
            } else {
              kept.emplace_back(b, e);
            }
            previous_match = m;
          }
          break;
      }
      for (const auto& [b, e] : kept) {
        if (e > b) next.push_back(piece.substr(b, e - b));
      }
    }
    pieces = std::move(next);
  }
  return pieces;
}

void Tokenizer::bpe(const std::u32string& piece, std::vector<int64_t>& ids) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(common::u32_to_utf8(piece) + end_of_word_suffix_);
    if (it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  // Initial symbols: one per code point (prefix / suffix attached), or unknown.
  struct Symbol {
    std::string text;
    int64_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Symbol> syms;
  int64_t pending_unk = -2;
  for (size_t i = 0; i < piece.size(); ++i) {
    std::string s;
    common::append_utf8(piece[i], s);
    if (i > 0 && !continuing_subword_prefix_.empty()) s = continuing_subword_prefix_ + s;
    if (i + 1 == piece.size()) s += end_of_word_suffix_;
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      syms.push_back({s, it->second, 0, 0, true});
      pending_unk = -2;
      continue;
    }
    if (byte_fallback_) {
      std::string utf8;
      common::append_utf8(piece[i], utf8);
      bool all = true;
      std::vector<Symbol> bytes;
      for (unsigned char b : utf8) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        auto bt = vocab_.find(name);
        if (bt == vocab_.end()) {
          all = false;
          break;
        }
        bytes.push_back({name, bt->second, 0, 0, true});
      }
      if (all) {
        // Byte tokens never merge: mark them with an impossible text.
        for (Symbol& b : bytes) b.text = '\x02' + b.text;
        syms.insert(syms.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    PARADIT_CHECK(unk_id_ >= 0, where_, ": the character '",
                  common::u32_to_utf8(piece.substr(i, 1)),
                  "' is not in the vocabulary and the model has no unk_token");
    if (fuse_unk_ && pending_unk == unk_id_) continue;
    syms.push_back({std::string("\x02unk"), unk_id_, 0, 0, true});
    pending_unk = unk_id_;
  }
  const int n = static_cast<int>(syms.size());
  for (int i = 0; i < n; ++i) {
    syms[static_cast<size_t>(i)].prev = i - 1;
    syms[static_cast<size_t>(i)].next = i + 1 < n ? i + 1 : -1;
  }
  // Merges by rank, leftmost first among equal ranks (a min-heap of (rank, position)).
  using Entry = std::tuple<int32_t, int, std::string>;  // rank, left index, merged text
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push_pair = [&](int left) {
    if (left < 0) return;
    const int right = syms[static_cast<size_t>(left)].next;
    if (right < 0) return;
    const Symbol& a = syms[static_cast<size_t>(left)];
    const Symbol& b = syms[static_cast<size_t>(right)];
    auto it = merge_ranks_.find(a.text + '\x01' + b.text);
    if (it != merge_ranks_.end()) heap.emplace(it->second, left, a.text + b.text);
  };
  for (int i = 0; i < n; ++i) push_pair(i);
  while (!heap.empty()) {
    auto [r, left, merged] = heap.top();
    heap.pop();
    Symbol& a = syms[static_cast<size_t>(left)];
    if (!a.alive || a.next < 0) continue;
    Symbol& b = syms[static_cast<size_t>(a.next)];
    if (a.text + b.text != merged) continue;  // stale entry
    auto id = vocab_.find(merged);
    PARADIT_CHECK(id != vocab_.end(), where_, ": merge result '", merged,
                  "' is not in the vocabulary");
    a.text = merged;
    a.id = id->second;
    b.alive = false;
    a.next = b.next;
    if (b.next >= 0) syms[static_cast<size_t>(b.next)].prev = left;
    push_pair(a.prev);
    push_pair(left);
  }
  for (const Symbol& s : syms) {
    if (s.alive) ids.push_back(s.id);
  }
}

std::u32string Tokenizer::precompiled(const std::u32string& text) const {
  if (charsmap_units_.empty()) return text;
  const std::vector<uint32_t>& u = charsmap_units_;
  const auto offset = [](uint32_t unit) -> size_t {
    return (unit >> 10) << ((unit & (1u << 9)) >> 6);
  };
  // darts-clone: the value of the shortest key that is a prefix of `key`, or -1
  const auto first_prefix = [&](const std::string& key) -> int64_t {
    size_t node = offset(u[0]);
    for (unsigned char c : key) {
      if (c == 0) return -1;
      node ^= c;
      if (node >= u.size()) return -1;
      const uint32_t unit = u[node];
      if ((unit & ((1u << 31) | 0xFF)) != c) return -1;
      node ^= offset(unit);
      if (node >= u.size()) return -1;
      if ((unit >> 8) & 1) return u[node] & ((1u << 31) - 1);
    }
    return -1;
  };
  const auto transform = [&](const std::string& chunk, std::string& out) {
    const int64_t at = first_prefix(chunk);
    if (at < 0 || static_cast<size_t>(at) > charsmap_normalized_.size()) return false;
    const size_t begin = static_cast<size_t>(at);
    const size_t end = charsmap_normalized_.find('\0', begin);
    out += charsmap_normalized_.substr(begin, end == std::string::npos ? end : end - begin);
    return true;
  };
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i + 1;
    while (j < text.size() && continues_cluster(text[j - 1], text[j])) ++j;
    const std::string grapheme = common::u32_to_utf8(text.substr(i, j - i));
    // A grapheme shorter than 6 bytes is looked up whole, else (or when absent) each character.
    if (!(grapheme.size() < 6 && transform(grapheme, out))) {
      for (size_t k = i; k < j; ++k) {
        const std::string ch = common::u32_to_utf8(text.substr(k, 1));
        if (!transform(ch, out)) out += ch;
      }
    }
    i = j;
  }
  return common::utf8_to_u32(out);
}

void Tokenizer::unigram(const std::u32string& piece, std::vector<int64_t>& ids) const {
  const size_t n = piece.size();
  if (n == 0) return;
  struct Best {
    double score = 0;
    int64_t id = -1;
    int64_t start = -1;  // -1: not reached
  };
  std::vector<Best> best(n + 1);
  best[0].start = 0;
  for (size_t s = 0; s < n; ++s) {
    if (s > 0 && best[s].start < 0) continue;
    const double base = best[s].score;
    bool single = false;
    std::string key;
    for (size_t e = s; e < n; ++e) {
      common::append_utf8(piece[e], key);
      if (key.size() > max_piece_bytes_) break;
      auto it = vocab_.find(key);
      if (it == vocab_.end()) continue;
      const double cand = base + scores_[static_cast<size_t>(it->second)];
      Best& b = best[e + 1];
      if (b.start < 0 || cand > b.score) b = {cand, it->second, static_cast<int64_t>(s)};
      if (e == s) single = true;
    }
    if (!single) {
      PARADIT_CHECK(unk_id_ >= 0, where_,
                    ": a character is not in the Unigram vocabulary and the model has no unk_id");
      const double cand = base + unk_score_;
      Best& b = best[s + 1];
      if (b.start < 0 || cand > b.score) b = {cand, unk_id_, static_cast<int64_t>(s)};
    }
  }
  std::vector<int64_t> path;
  for (size_t e = n; e > 0; e = static_cast<size_t>(best[e].start)) path.push_back(best[e].id);
  std::reverse(path.begin(), path.end());
  bool previous_unk = false;
  for (int64_t id : path) {
    const bool is_unk = id == unk_id_;
    if (!(is_unk && previous_unk)) ids.push_back(id);  // consecutive unknowns fuse (fuse_unk)
    previous_unk = is_unk;
  }
}

std::vector<int64_t> Tokenizer::encode_part(const std::string& part) const {
  std::vector<int64_t> ids;
  const std::u32string normalized = normalize(common::utf8_to_u32(part));
  // Added tokens that match on normalized text.
  std::vector<common::TextPart> parts;
  if (added_normalized_.empty()) {
    parts.push_back({common::u32_to_utf8(normalized), -1});
  } else {
    parts = common::split_on_added_tokens(common::u32_to_utf8(normalized), added_normalized_);
  }
  for (const common::TextPart& p : parts) {
    if (p.token_id >= 0) {
      ids.push_back(p.token_id);
      continue;
    }
    for (const std::u32string& piece : pre_tokenize(common::utf8_to_u32(p.text))) {
      if (unigram_) {
        unigram(piece, ids);
      } else {
        bpe(piece, ids);
      }
    }
  }
  return ids;
}

std::vector<int64_t> Tokenizer::encode_content(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const common::TextPart& part : common::split_on_added_tokens(text, added_raw_)) {
    if (part.token_id >= 0) {
      ids.push_back(part.token_id);
      continue;
    }
    const std::vector<int64_t> more = encode_part(part.text);
    ids.insert(ids.end(), more.begin(), more.end());
  }
  return ids;
}

// ---------------------------------------------------------------- public
std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_special_tokens) const {
  std::vector<int64_t> ids;
  if (add_special_tokens) ids = prefix_;
  const std::vector<int64_t> content = encode_content(text);
  ids.insert(ids.end(), content.begin(), content.end());
  if (add_special_tokens) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

Encoding Tokenizer::encode(const std::string& text, int max_length, bool pad_to_max,
                           bool add_special_tokens) const {
  const std::vector<int64_t> content = encode_content(text);
  const std::vector<int64_t> none;
  std::vector<int64_t> removed;
  PARADIT_CHECK(!pad_to_max || pad_id_ >= 0, where_,
                ": padding needs a pad token, and the tokenizer defines none");
  Encoding enc = common::finish_encoding(
      add_special_tokens ? prefix_ : none, content, add_special_tokens ? suffix_ : none, max_length,
      pad_to_max, pad_id_, where_, &removed, settings_.padding_side, settings_.truncation_side);
  if (!removed.empty() && warn_on_truncation_) {
    common::warn_truncated(name_, max_length, removed.size(), decode(removed, true));
  }
  return enc;
}

std::vector<std::string> Tokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (int64_t id : encode_content(text)) out.push_back(id_to_token(id));
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string out;
  for (int64_t id : ids) {
    auto sp = added_special_.find(id);
    const bool is_added = sp != added_special_.end();
    if (is_added && sp->second && skip_special_tokens) continue;
    const std::string token = id_to_token(id);
    if (decoder_ == Decoder::kByteLevel && !is_added) {
      for (char32_t c : common::utf8_to_u32(token)) {
        auto it = alphabet().byte_of.find(c);
        if (it != alphabet().byte_of.end()) {
          out.push_back(static_cast<char>(it->second));
        } else {
          common::append_utf8(c, out);
        }
      }
    } else if (decoder_ == Decoder::kMetaspace && !is_added) {
      std::string t = token;
      for (size_t at = t.find("\u2581"); at != std::string::npos; at = t.find("\u2581", at + 1)) {
        t.replace(at, 3, " ");
      }
      if (out.empty() && metaspace_strip_first_ && !t.empty() && t[0] == ' ') t.erase(0, 1);
      out += t;
    } else {
      out += token;
    }
  }
  // Invalid UTF-8 from partial byte sequences becomes U+FFFD, as from_utf8_lossy.
  return common::u32_to_utf8(common::utf8_to_u32(out));
}

int64_t Tokenizer::token_to_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

std::string Tokenizer::id_to_token(int64_t id) const {
  PARADIT_CHECK(id >= 0 && id < vocab_size(), where_, ": token id ", id,
                " is outside the vocabulary [0, ", vocab_size(), ")");
  return id_to_token_[static_cast<size_t>(id)];
}

}  // namespace paradit::models::tokenizers
