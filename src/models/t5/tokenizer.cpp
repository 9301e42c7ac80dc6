#include "models/t5/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "core/error.h"

namespace paradit::models::t5 {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kDefaultExtraIds = 100;

// Adds content → id unless the content is already known (earlier sources win).
void add_token(std::map<std::string, int64_t>& added, const std::string& content, int64_t id) {
  if (!content.empty() && id >= 0) added.emplace(content, id);
}

// ---------------------------------------------------------------- protobuf wire format
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, int field, int wire_type) {
  put_varint(out, (static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire_type));
}
// int32 fields encode negative values as 64-bit two's complement varints.
void put_int(std::string& out, int field, int64_t v) {
  put_tag(out, field, 0);
  put_varint(out, static_cast<uint64_t>(v));
}
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
void put_float(std::string& out, int field, float v) {
  put_tag(out, field, 5);
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}

std::string base64_decode(const std::string& in, const std::string& where) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    const int v = value(c);
    PARADIT_CHECK(v >= 0, where, ": normalizer.precompiled_charsmap is not valid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// The normalizers of a (possibly Sequence) normalizer, flattened; none for null.
void flatten(const json& n, const char* list_key, std::vector<const json*>& out) {
  if (n.is_null()) return;
  if (n.is_object() && n.value("type", "") == "Sequence" && n.contains(list_key) &&
      n.at(list_key).is_array()) {
    for (const json& child : n.at(list_key)) flatten(child, list_key, out);
    return;
  }
  out.push_back(&n);
}

// The Precompiled charsmap of a normalizer SentencePiece can reproduce (Precompiled, plus the
// " {2,}" → " " collapse that remove_extra_whitespaces does anyway); "" for a null normalizer.
std::string precompiled_charsmap(const json& normalizer, const std::string& where) {
  std::vector<const json*> parts;
  flatten(normalizer, "normalizers", parts);
  std::string charsmap;
  for (const json* n : parts) {
    const std::string type = n->is_object() ? n->value("type", "") : "";
    if (type == "Precompiled") {
      PARADIT_CHECK(
          n->contains("precompiled_charsmap") && n->at("precompiled_charsmap").is_string(), where,
          ": the Precompiled normalizer has no precompiled_charsmap string");
      charsmap = base64_decode(n->at("precompiled_charsmap").get<std::string>(), where);
      continue;
    }
    if (type == "Replace" && n->value("content", "") == " " && n->contains("pattern") &&
        n->at("pattern").is_object() && n->at("pattern").value("Regex", "") == " {2,}") {
      continue;
    }
    fail(where, ": normalizer '", n->dump().substr(0, 80),
         "' is not one a T5 (SentencePiece) tokenizer has");
  }
  return charsmap;
}

// Checks the pre-tokenizer is T5's: optional WhitespaceSplit, then Metaspace("▁") prepending
// "▁" to every word (prepend_scheme "always", or the older add_prefix_space true).
void check_metaspace(const json& pre_tokenizer, const std::string& where) {
  std::vector<const json*> parts;
  flatten(pre_tokenizer, "pretokenizers", parts);
  bool metaspace = false;
  for (const json* p : parts) {
    const std::string type = p->is_object() ? p->value("type", "") : "";
    if (type == "WhitespaceSplit") continue;
    PARADIT_CHECK(type == "Metaspace", where, ": pre_tokenizer '", p->dump().substr(0, 80),
                  "' is not one a T5 (SentencePiece) tokenizer has");
    PARADIT_CHECK(p->value("replacement", "") == "\u2581", where,
                  ": the Metaspace pre-tokenizer's replacement is not '\u2581'");
    const bool always = p->contains("prepend_scheme") ? p->at("prepend_scheme") == "always"
                                                      : p->value("add_prefix_space", false);
    PARADIT_CHECK(always, where,
                  ": the Metaspace pre-tokenizer does not prepend '\u2581' always (T5 does)");
    metaspace = true;
  }
  PARADIT_CHECK(metaspace, where, ": no Metaspace pre-tokenizer (a T5 tokenizer has one)");
}

}  // namespace

std::string sentencepiece_model_from_tokenizer_json(const json& tj, const std::string& where) {
  PARADIT_CHECK(tj.is_object() && tj.contains("model") && tj.at("model").is_object(), where,
                ": no 'model' object");
  const json& model = tj.at("model");
  PARADIT_CHECK(model.value("type", "") == "Unigram", where, ": model type '",
                model.value("type", ""), "' is not Unigram (a T5 tokenizer needs a Unigram model)");
  PARADIT_CHECK(model.contains("vocab") && model.at("vocab").is_array(), where,
                ": model.vocab is not a list of [piece, score]");
  PARADIT_CHECK(!model.value("byte_fallback", false), where,
                ": Unigram byte_fallback is not supported (T5 has none)");
  const json& vocab = model.at("vocab");
  const json unk = model.contains("unk_id") ? model.at("unk_id") : json();
  const int64_t unk_id = unk.is_number_integer() ? unk.get<int64_t>() : -1;
  check_metaspace(tj.contains("pre_tokenizer") ? tj.at("pre_tokenizer") : json(), where);
  const std::string charsmap =
      precompiled_charsmap(tj.contains("normalizer") ? tj.at("normalizer") : json(), where);

  std::set<int64_t> added, special;
  if (tj.contains("added_tokens") && tj.at("added_tokens").is_array()) {
    for (const json& t : tj.at("added_tokens")) {
      const int64_t id = t.value("id", int64_t{-1});
      added.insert(id);
      if (t.value("special", false)) special.insert(id);
    }
  }
  // The SentencePiece vocabulary ends where the trailing added tokens (<extra_id_N>) begin.
  int64_t n = static_cast<int64_t>(vocab.size());
  while (n > 0 && added.count(n - 1) != 0 && n - 1 != unk_id) --n;
  PARADIT_CHECK(n > 0, where, ": the Unigram vocabulary is empty");
  PARADIT_CHECK(unk_id >= 0 && unk_id < n, where, ": model.unk_id ", unk.dump(),
                " is not an id of the ", n, " pieces");

  std::string proto;
  int64_t pad_id = -1, eos_id = -1, bos_id = -1;
  for (int64_t id = 0; id < n; ++id) {
    const json& entry = vocab.at(static_cast<size_t>(id));
    PARADIT_CHECK(
        entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_number(),
        where, ": model.vocab[", id, "] is not [piece, score]");
    const std::string piece = entry[0].get<std::string>();
    int type = 1;  // NORMAL
    if (id == unk_id) {
      type = 2;  // UNKNOWN
    } else if (special.count(id) != 0) {
      type = 3;  // CONTROL
      if (piece == "<pad>") pad_id = id;
      if (piece == "</s>") eos_id = id;
      if (piece == "<s>") bos_id = id;
    }
    std::string sp;
    put_bytes(sp, 1, piece);
    put_float(sp, 2, entry[1].get<float>());
    if (type != 1) put_int(sp, 3, type);
    put_bytes(proto, 1, sp);  // ModelProto.pieces
  }

  std::string trainer;
  put_int(trainer, 3, 1);  // model_type UNIGRAM
  put_int(trainer, 4, n);  // vocab_size
  put_int(trainer, 40, unk_id);
  put_int(trainer, 41, bos_id);
  put_int(trainer, 42, eos_id);
  put_int(trainer, 43, pad_id);
  put_bytes(proto, 2, trainer);  // ModelProto.trainer_spec

  std::string normalizer;
  if (!charsmap.empty()) {
    put_bytes(normalizer, 1, "nmt_nfkc");
    put_bytes(normalizer, 2, charsmap);
  } else {
    put_bytes(normalizer, 1, "identity");
  }
  put_int(normalizer, 3, 1);        // add_dummy_prefix
  put_int(normalizer, 4, 1);        // remove_extra_whitespaces
  put_int(normalizer, 5, 1);        // escape_whitespaces
  put_bytes(proto, 3, normalizer);  // ModelProto.normalizer_spec
  return proto;
}

T5Tokenizer T5Tokenizer::load(const fs::path& dir) {
  T5Tokenizer tok;
  const fs::path model_path = dir / "spiece.model";
  const fs::path tokenizer_json_path = dir / "tokenizer.json";
  const fs::path config_path = dir / "tokenizer_config.json";
  std::error_code ec;
  const bool has_spiece = fs::exists(model_path, ec);
  PARADIT_CHECK(has_spiece || fs::exists(tokenizer_json_path, ec), "T5 tokenizer ", dir.string(),
                ": neither spiece.model nor tokenizer.json found");
  const json tokenizer_json = common::read_optional_json_file(tokenizer_json_path, "T5 tokenizer");
  // The file the SentencePiece model comes from, for the messages.
  const std::string model_file = has_spiece ? model_path.string() : tokenizer_json_path.string();
  const std::string model_bytes =
      has_spiece ? common::read_text_file(model_path, "T5 tokenizer model")
                 : sentencepiece_model_from_tokenizer_json(tokenizer_json, model_file);
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->LoadFromSerializedProto(model_bytes);
  if (!status.ok()) {
    fail("T5 tokenizer model ", model_file, ": not a SentencePiece model (", status.ToString(),
         ")");
  }
  PARADIT_CHECK(sp->GetPieceSize() > 0, "T5 tokenizer model ", model_file,
                ": the model has no pieces");
  const int64_t piece_count = sp->GetPieceSize();

  // The special tokens, in the order transformers trusts them: the fast tokenizer's file, then
  // the config's decoder table, then the slow tokenizer's added_tokens.json.
  std::map<std::string, int64_t> added;
  const json config = common::read_optional_json_file(config_path, "T5 tokenizer config");
  common::collect_added_tokens(tokenizer_json, tokenizer_json_path, config, config_path, added);
  const fs::path added_json_path = dir / "added_tokens.json";
  const json added_json = common::read_optional_json_file(added_json_path, "T5 tokenizer");
  PARADIT_CHECK(added_json.is_object(), "T5 tokenizer ", added_json_path.string(),
                ": expected a JSON object token → id");
  for (const auto& [content, id] : added_json.items()) {
    PARADIT_CHECK(id.is_number_integer(), "T5 tokenizer ", added_json_path.string(), ": token '",
                  content, "' has a non-integer id");
    add_token(added, content, id.get<int64_t>());
  }
  tok.settings_ =
      common::read_tokenizer_settings(config, config_path, tokenizer_json, tokenizer_json_path);

  // pad / eos / unk: named by the configs (T5: <pad>, </s>, <unk>), ids from the added tokens or
  // the SentencePiece model.
  const json special_map = common::read_optional_json_file(dir / "special_tokens_map.json",
                                                           "T5 tokenizer special tokens map");
  auto token_name = [&](const std::string& key, const std::string& fallback) {
    std::string name = common::special_token_name(config, key);
    if (name.empty()) name = common::special_token_name(special_map, key);
    if (name.empty() && key == "pad_token") name = tok.settings_.pad_token;
    return name.empty() ? fallback : name;
  };
  auto resolve = [&](const std::string& key, const std::string& fallback) -> int64_t {
    const std::string name = token_name(key, fallback);
    if (auto it = added.find(name); it != added.end()) return it->second;
    const int id = sp->PieceToId(name);
    PARADIT_CHECK(name == token_name("unk_token", "<unk>") || id != sp->unk_id(), "T5 tokenizer ",
                  dir.string(), ": ", key, " '", name,
                  "' is neither an added token nor a piece of ", model_file);
    return id;
  };
  tok.unk_id_ = resolve("unk_token", "<unk>");
  tok.eos_id_ = resolve("eos_token", "</s>");
  tok.pad_id_ = resolve("pad_token", "<pad>");
  add_token(added, token_name("unk_token", "<unk>"), tok.unk_id_);
  add_token(added, token_name("eos_token", "</s>"), tok.eos_id_);
  add_token(added, token_name("pad_token", "<pad>"), tok.pad_id_);

  // <extra_id_N> when no file listed them: T5 appends them after the pieces in reverse order.
  if (added.find("<extra_id_0>") == added.end()) {
    int64_t extra_ids = kDefaultExtraIds;
    if (config.contains("extra_ids") && config.at("extra_ids").is_number_integer()) {
      extra_ids = config.at("extra_ids").get<int64_t>();
    }
    for (int64_t n = 0; n < extra_ids; ++n) {
      add_token(added, "<extra_id_" + std::to_string(n) + ">", piece_count + extra_ids - 1 - n);
    }
  }

  tok.vocab_size_ = piece_count;
  for (const auto& [content, id] : added) {
    tok.added_by_id_.emplace(id, content);
    tok.vocab_size_ = std::max(tok.vocab_size_, id + 1);
  }
  tok.added_ = std::move(added);
  tok.sp_ = std::move(sp);
  return tok;
}

std::vector<int64_t> T5Tokenizer::sentencepiece_encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  PARADIT_CHECK(status.ok(), "T5 tokenizer: SentencePiece failed to encode the prompt (",
                status.ToString(), ")");
  return std::vector<int64_t>(ids.begin(), ids.end());
}

std::vector<int64_t> T5Tokenizer::encode_content(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const common::TextPart& part : common::split_on_added_tokens(text, added_)) {
    if (part.token_id >= 0) {
      ids.push_back(part.token_id);
      continue;
    }
    // Each part separately: SentencePiece adds its ▁ prefix to every part, as the tokenizers
    // pipeline (Metaspace, prepend_scheme "always") does after an added token.
    const std::vector<int64_t> piece_ids = sentencepiece_encode(part.text);
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }
  return ids;
}

std::vector<int64_t> T5Tokenizer::encode_unpadded(const std::string& text) const {
  std::vector<int64_t> ids = encode_content(text);
  ids.push_back(eos_id_);
  return ids;
}

Encoding T5Tokenizer::encode(const std::string& text, int max_length, bool pad_to_max) const {
  std::vector<int64_t> truncated;
  Encoding enc =
      common::finish_encoding({}, encode_content(text), {eos_id_}, max_length, pad_to_max, pad_id_,
                              "T5", &truncated, settings_.padding_side, settings_.truncation_side);
  if (!truncated.empty() && warn_on_truncation_) {
    common::warn_truncated("T5", max_length, truncated.size(), decode(truncated));
  }
  return enc;
}

std::string T5Tokenizer::id_to_token(int64_t id) const {
  if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return it->second;
  PARADIT_CHECK(id >= 0 && id < sp_->GetPieceSize(), "T5 tokenizer: token id ", id,
                " out of range [0, ", vocab_size_, ")");
  return sp_->IdToPiece(static_cast<int>(id));
}

std::vector<std::string> T5Tokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> tokens;
  for (int64_t id : encode_unpadded(text)) tokens.push_back(id_to_token(id));
  return tokens;
}

std::string T5Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> plain;
  for (int64_t id : ids) {
    if (added_by_id_.count(id) != 0 || id < 0 || id >= sp_->GetPieceSize()) continue;
    if (sp_->IsControl(static_cast<int>(id))) continue;
    plain.push_back(static_cast<int>(id));
  }
  return sp_->DecodeIds(plain);
}

}  // namespace paradit::models::t5
