#include "models/clip/tokenizer.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace paradit::models::clip {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using common::is_letter;
using common::is_number;
using common::is_whitespace;

bool is_other(char32_t c) { return !is_whitespace(c) && !is_letter(c) && !is_number(c); }

// Length of a contraction ('s 't 're 've 'm 'll 'd) starting at i, or 0.
size_t contraction_at(const std::u32string& s, size_t i) {
  if (s[i] != U'\'' || i + 1 >= s.size()) return 0;
  const char32_t a = s[i + 1];
  if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
  if (i + 2 >= s.size()) return 0;
  const char32_t b = s[i + 2];
  if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
  return 0;
}

template <typename Pred>
size_t run_end(const std::u32string& s, size_t i, Pred pred) {
  while (i < s.size() && pred(s[i])) ++i;
  return i;
}

// CLIP's pattern, keeping the matches only (`Split(..., behavior=Removed, invert=True)`):
//   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// Alternatives are tried in that order at each position; the runs are greedy.
std::vector<std::u32string> clip_split(const std::u32string& s) {
  static const std::u32string kStart = U"<|startoftext|>", kEnd = U"<|endoftext|>";
  std::vector<std::u32string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t end = i;
    if (s.compare(i, kStart.size(), kStart) == 0) {
      end = i + kStart.size();
    } else if (s.compare(i, kEnd.size(), kEnd) == 0) {
      end = i + kEnd.size();
    } else if (size_t n = contraction_at(s, i); n > 0) {
      end = i + n;
    } else if (is_letter(s[i])) {
      end = run_end(s, i, is_letter);
    } else if (is_number(s[i])) {
      end = i + 1;
    } else if (!is_whitespace(s[i])) {
      end = run_end(s, i, is_other);
    } else {
      ++i;  // whitespace matches nothing and is removed
      continue;
    }
    out.push_back(s.substr(i, end - i));
    i = end;
  }
  return out;
}

// GPT-2's byte-level pattern, which the ByteLevel pre-tokenizer (use_regex) applies to each
// part: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void gpt2_split(const std::u32string& s, std::vector<std::u32string>& out) {
  size_t i = 0;
  while (i < s.size()) {
    size_t end = i;
    const size_t j = (s[i] == U' ' && i + 1 < s.size()) ? i + 1 : i;  // the optional space
    if (size_t n = contraction_at(s, i); n > 0) {
      end = i + n;
    } else if (is_letter(s[j])) {
      end = run_end(s, j, is_letter);
    } else if (is_number(s[j])) {
      end = run_end(s, j, is_number);
    } else if (is_other(s[j])) {
      end = run_end(s, j, is_other);
    } else {
      // Whitespace: the run, less its last character when a non-space follows.
      end = run_end(s, i, is_whitespace);
      if (end < s.size() && end - i > 1) --end;
    }
    out.push_back(s.substr(i, end - i));
    i = end;
  }
}

// A BPE model as read from its files: the vocabulary (token → id) and the merges in rank order,
// each "left right" with where it came from (file and line or list index), for the messages.
struct BpeSource {
  json vocab;
  std::string vocab_where, merges_where;
  std::vector<std::pair<std::string, std::string>> merges;
};

BpeSource bpe_from_files(const fs::path& vocab_path, const fs::path& merges_path) {
  BpeSource src;
  src.vocab = common::read_json_file(vocab_path, "CLIP tokenizer vocabulary");
  src.vocab_where = vocab_path.string();
  src.merges_where = merges_path.string();
  const std::string text = common::read_text_file(merges_path, "CLIP tokenizer merges");
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    src.merges.emplace_back(std::move(line),
                            merges_path.string() + " line " + std::to_string(line_no));
  }
  return src;
}

BpeSource bpe_from_tokenizer_json(const json& tj, const fs::path& path) {
  const std::string where = path.string();
  PARADIT_CHECK(tj.is_object() && tj.contains("model") && tj.at("model").is_object(),
                "CLIP tokenizer ", where, ": no 'model' object");
  const json& model = tj.at("model");
  PARADIT_CHECK(model.value("type", "") == "BPE", "CLIP tokenizer ", where, ": model type '",
                model.value("type", ""), "' is not BPE (a CLIP tokenizer needs a BPE model)");
  // CLIP marks word ends with "</w>" and has no continuation prefix; bpe() assumes both.
  PARADIT_CHECK(model.contains("end_of_word_suffix") && model.at("end_of_word_suffix") == "</w>",
                "CLIP tokenizer ", where, ": model.end_of_word_suffix is not '</w>'");
  PARADIT_CHECK(!model.contains("continuing_subword_prefix") ||
                    model.at("continuing_subword_prefix").is_null() ||
                    model.at("continuing_subword_prefix") == "",
                "CLIP tokenizer ", where, ": model.continuing_subword_prefix is not empty");
  PARADIT_CHECK(
      model.contains("vocab") && model.contains("merges") && model.at("merges").is_array(),
      "CLIP tokenizer ", where, ": the BPE model needs 'vocab' and a 'merges' list");
  BpeSource src;
  src.vocab = model.at("vocab");
  src.vocab_where = where + " model.vocab";
  src.merges_where = where + " model.merges";
  const json& list = model.at("merges");
  for (size_t i = 0; i < list.size(); ++i) {
    const json& m = list[i];
    std::string at = where + " model.merges[" + std::to_string(i) + "]";
    // tokenizers writes a merge as "a b" (older) or ["a", "b"] (newer).
    if (m.is_string()) {
      src.merges.emplace_back(m.get<std::string>(), std::move(at));
      continue;
    }
    PARADIT_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                  "CLIP tokenizer ", at, ": expected \"left right\" or [left, right], found ",
                  m.dump());
    src.merges.emplace_back(m[0].get<std::string>() + " " + m[1].get<std::string>(), std::move(at));
  }
  return src;
}

}  // namespace

ClipTokenizer ClipTokenizer::load(const fs::path& dir) {
  ClipTokenizer tok;

  // GPT-2's byte ↔ symbol table: printable Latin-1 bytes stand for themselves, the others are
  // shifted to U+0100 onwards in byte order.
  {
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const char32_t symbol = printable ? static_cast<char32_t>(b) : next++;
      tok.byte_symbol_[b].clear();
      common::append_utf8(symbol, tok.byte_symbol_[b]);
      tok.symbol_byte_[symbol] = static_cast<uint8_t>(b);
    }
  }

  // The BPE model: vocab.json + merges.txt, else tokenizer.json's model (vocab and merges).
  const fs::path vocab_path = dir / "vocab.json";
  const fs::path merges_path = dir / "merges.txt";
  const fs::path tokenizer_json_path = dir / "tokenizer.json";
  std::error_code ec;
  const bool from_json = !(fs::exists(vocab_path, ec) && fs::exists(merges_path, ec)) &&
                         fs::exists(tokenizer_json_path, ec);
  const json tokenizer_json =
      common::read_optional_json_file(tokenizer_json_path, "CLIP tokenizer");
  const BpeSource source = from_json ? bpe_from_tokenizer_json(tokenizer_json, tokenizer_json_path)
                                     : bpe_from_files(vocab_path, merges_path);
  const json& file_vocab = source.vocab;
  const std::string& vocab_where = source.vocab_where;

  PARADIT_CHECK(file_vocab.is_object() && !file_vocab.empty(), "CLIP tokenizer vocabulary ",
                vocab_where, ": expected a non-empty JSON object token → id");
  int64_t max_id = -1;
  for (const auto& [token, id] : file_vocab.items()) {
    PARADIT_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0, "CLIP tokenizer vocabulary ",
                  vocab_where, ": token '", token, "' has id ", id.dump(),
                  ", expected a non-negative integer");
    tok.vocab_.emplace(token, id.get<int64_t>());
    max_id = std::max(max_id, id.get<int64_t>());
  }
  PARADIT_CHECK(max_id < std::numeric_limits<int32_t>::max(), "CLIP tokenizer vocabulary ",
                vocab_where, ": id ", max_id, " too large");
  tok.id_to_token_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [token, id] : tok.vocab_) tok.id_to_token_[static_cast<size_t>(id)] = token;
  for (int b = 0; b < 256; ++b) {
    PARADIT_CHECK(tok.vocab_.count(tok.byte_symbol_[b]) != 0 &&
                      tok.vocab_.count(tok.byte_symbol_[b] + "</w>") != 0,
                  "CLIP tokenizer vocabulary ", vocab_where, ": byte symbol '", tok.byte_symbol_[b],
                  "' (byte ", b, ") or its '</w>' form is missing");
  }

  int32_t rank = 0;
  for (const auto& [line, at] : source.merges) {
    const size_t space = line.find(' ');
    PARADIT_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                      line.find(' ', space + 1) == std::string::npos,
                  "CLIP tokenizer merges ", at, ": expected 'left right', found '", line, "'");
    const std::string merged = line.substr(0, space) + line.substr(space + 1);
    PARADIT_CHECK(tok.vocab_.count(merged) != 0, "CLIP tokenizer merges ", at,
                  ": the merge result '", merged, "' is not in ", vocab_where);
    tok.merge_ranks_.emplace(line, rank++);  // a repeated pair keeps its first rank
  }
  PARADIT_CHECK(rank > 0, "CLIP tokenizer merges ", source.merges_where, ": no merges found");

  // Added tokens: tokenizer.json's list, the config's decoder table, then every special token
  // the configs name (transformers adds those to the split set too, e.g. SD3's CLIP-G pad "!").
  std::map<std::string, int64_t> added;
  const fs::path config_path = dir / "tokenizer_config.json";
  const json config = common::read_optional_json_file(config_path, "CLIP tokenizer config");
  common::collect_added_tokens(tokenizer_json, tokenizer_json_path, config, config_path, added);
  tok.settings_ =
      common::read_tokenizer_settings(config, config_path, tokenizer_json, tokenizer_json_path);
  const json special_map = common::read_optional_json_file(dir / "special_tokens_map.json",
                                                           "CLIP tokenizer special tokens map");
  auto token_name = [&](const std::string& key, const std::string& fallback) {
    std::string name = common::special_token_name(config, key);
    if (name.empty()) name = common::special_token_name(special_map, key);
    if (name.empty() && key == "pad_token") name = tok.settings_.pad_token;
    return name.empty() ? fallback : name;
  };
  auto resolve = [&](const std::string& key, const std::string& fallback) -> int64_t {
    const std::string name = token_name(key, fallback);
    if (auto it = added.find(name); it != added.end()) return it->second;
    auto it = tok.vocab_.find(name);
    PARADIT_CHECK(it != tok.vocab_.end(), "CLIP tokenizer ", dir.string(), ": ", key, " '", name,
                  "' is not in ", vocab_where);
    added.emplace(name, it->second);
    return it->second;
  };
  tok.bos_id_ = resolve("bos_token", "<|startoftext|>");
  tok.eos_id_ = resolve("eos_token", "<|endoftext|>");
  tok.unk_id_ = resolve("unk_token", "<|endoftext|>");
  tok.pad_id_ = resolve("pad_token", "<|endoftext|>");

  for (const auto& [content, id] : added) {
    tok.added_by_id_.emplace(id, content);
    if (static_cast<size_t>(id) >= tok.id_to_token_.size()) {
      tok.id_to_token_.resize(static_cast<size_t>(id) + 1);
    }
    tok.id_to_token_[static_cast<size_t>(id)] = content;
  }
  tok.added_ = std::move(added);
  return tok;
}

void ClipTokenizer::bpe(const std::string& word, std::vector<int64_t>& ids) const {
  // Symbols: one per byte, the last one marked as a word end.
  std::vector<std::string> symbols;
  symbols.reserve(word.size());
  for (unsigned char b : word) symbols.push_back(byte_symbol_[b]);
  if (symbols.empty()) return;
  symbols.back() += "</w>";

  // Merge the pair of lowest rank, every occurrence left to right, until none is left.
  std::string key;
  while (symbols.size() > 1) {
    int32_t best_rank = std::numeric_limits<int32_t>::max();
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      key.assign(symbols[i]).append(" ").append(symbols[i + 1]);
      auto it = merge_ranks_.find(key);
      if (it != merge_ranks_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == std::numeric_limits<int32_t>::max()) break;
    const std::string left = symbols[best], right = symbols[best + 1];
    std::vector<std::string> merged;
    merged.reserve(symbols.size());
    for (size_t i = 0; i < symbols.size();) {
      if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
        merged.push_back(left + right);
        i += 2;
      } else {
        merged.push_back(std::move(symbols[i]));
        ++i;
      }
    }
    symbols = std::move(merged);
  }
  for (const std::string& s : symbols) {
    auto it = vocab_.find(s);
    ids.push_back(it != vocab_.end() ? it->second : unk_id_);
  }
}

std::vector<int64_t> ClipTokenizer::encode_content(const std::string& text) const {
  std::vector<int64_t> ids;
  std::vector<std::u32string> words;
  for (const common::TextPart& part : common::split_on_added_tokens(text, added_)) {
    if (part.token_id >= 0) {
      ids.push_back(part.token_id);
      continue;
    }
    // Normalizer: NFC, \s+ → " ", lowercase.
    const std::u32string normalized =
        common::to_lower(common::collapse_whitespace(common::nfc(common::utf8_to_u32(part.text))));
    words.clear();
    for (const std::u32string& piece : clip_split(normalized)) gpt2_split(piece, words);
    for (const std::u32string& w : words) bpe(common::u32_to_utf8(w), ids);
  }
  return ids;
}

std::vector<int64_t> ClipTokenizer::encode_unpadded(const std::string& text) const {
  std::vector<int64_t> ids{bos_id_};
  const std::vector<int64_t> content = encode_content(text);
  ids.insert(ids.end(), content.begin(), content.end());
  ids.push_back(eos_id_);
  return ids;
}

Encoding ClipTokenizer::encode(const std::string& text, int max_length, bool pad_to_max) const {
  std::vector<int64_t> truncated;
  Encoding enc = common::finish_encoding({bos_id_}, encode_content(text), {eos_id_}, max_length,
                                         pad_to_max, pad_id_, "CLIP", &truncated,
                                         settings_.padding_side, settings_.truncation_side);
  if (!truncated.empty() && warn_on_truncation_) {
    common::warn_truncated("CLIP", max_length, truncated.size(), decode(truncated));
  }
  return enc;
}

std::string ClipTokenizer::id_to_token(int64_t id) const {
  PARADIT_CHECK(id >= 0 && static_cast<size_t>(id) < id_to_token_.size(),
                "CLIP tokenizer: token id ", id, " out of range [0, ", id_to_token_.size(), ")");
  return id_to_token_[static_cast<size_t>(id)];
}

std::vector<std::string> ClipTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> tokens;
  for (int64_t id : encode_unpadded(text)) tokens.push_back(id_to_token(id));
  return tokens;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string symbols;
  for (int64_t id : ids) {
    if (added_by_id_.count(id) != 0 || id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) {
      continue;
    }
    symbols += id_to_token_[static_cast<size_t>(id)];
  }
  // Symbols back to bytes; a word end becomes a space.
  std::string bytes;
  const std::u32string cps = common::utf8_to_u32(symbols);
  static const std::u32string kWordEnd = U"</w>";
  for (size_t i = 0; i < cps.size(); ++i) {
    if (cps.compare(i, kWordEnd.size(), kWordEnd) == 0) {
      bytes.push_back(' ');
      i += kWordEnd.size() - 1;
      continue;
    }
    auto it = symbol_byte_.find(cps[i]);
    if (it != symbol_byte_.end()) bytes.push_back(static_cast<char>(it->second));
  }
  while (!bytes.empty() && bytes.back() == ' ') bytes.pop_back();
  return bytes;
}

}  // namespace paradit::models::clip
