#include "models/t5/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>

#include "core/error.h"

namespace paradit::models::t5 {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kDefaultExtraIds = 100;

json read_optional_json(const fs::path& path, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return json::object();
  return common::read_json_file(path, what);
}

// Adds content → id unless the content is already known (earlier sources win).
void add_token(std::map<std::string, int64_t>& added, const std::string& content, int64_t id) {
  if (!content.empty() && id >= 0) added.emplace(content, id);
}

}  // namespace

T5Tokenizer T5Tokenizer::load(const fs::path& dir) {
  T5Tokenizer tok;
  const fs::path model_path = dir / "spiece.model";
  const std::string model_bytes = common::read_text_file(model_path, "T5 tokenizer model");
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->LoadFromSerializedProto(model_bytes);
  if (!status.ok()) {
    fail("T5 tokenizer model ", model_path.string(), ": not a SentencePiece model (",
         status.ToString(), ")");
  }
  PARADIT_CHECK(sp->GetPieceSize() > 0, "T5 tokenizer model ", model_path.string(),
                ": the model has no pieces");
  const int64_t piece_count = sp->GetPieceSize();

  // The special tokens, in the order transformers trusts them: the fast tokenizer's file, then
  // the config's decoder table, then the slow tokenizer's added_tokens.json.
  std::map<std::string, int64_t> added;
  const fs::path tokenizer_json_path = dir / "tokenizer.json";
  const json tokenizer_json = read_optional_json(tokenizer_json_path, "T5 tokenizer");
  if (tokenizer_json.contains("added_tokens") && tokenizer_json.at("added_tokens").is_array()) {
    for (const json& t : tokenizer_json.at("added_tokens")) {
      PARADIT_CHECK(t.is_object() && t.contains("content") && t.at("content").is_string() &&
                        t.contains("id") && t.at("id").is_number_integer(),
                    "T5 tokenizer ", tokenizer_json_path.string(),
                    ": added_tokens entries need a string 'content' and an integer 'id'");
      add_token(added, t.at("content").get<std::string>(), t.at("id").get<int64_t>());
    }
  }
  const fs::path config_path = dir / "tokenizer_config.json";
  const json config = read_optional_json(config_path, "T5 tokenizer config");
  if (config.contains("added_tokens_decoder") && config.at("added_tokens_decoder").is_object()) {
    for (const auto& [key, t] : config.at("added_tokens_decoder").items()) {
      const std::string content = common::token_content(t);
      int64_t id = -1;
      try {
        id = std::stoll(key);
      } catch (const std::exception&) {
        fail("T5 tokenizer config ", config_path.string(), ": added_tokens_decoder key '", key,
             "' is not a token id");
      }
      add_token(added, content, id);
    }
  }
  const fs::path added_json_path = dir / "added_tokens.json";
  const json added_json = read_optional_json(added_json_path, "T5 tokenizer");
  for (const auto& [content, id] : added_json.items()) {
    PARADIT_CHECK(id.is_number_integer(), "T5 tokenizer ", added_json_path.string(), ": token '",
                  content, "' has a non-integer id");
    add_token(added, content, id.get<int64_t>());
  }

  // pad / eos / unk: named by the configs (T5: <pad>, </s>, <unk>), ids from the added tokens or
  // the SentencePiece model.
  const json special_map =
      read_optional_json(dir / "special_tokens_map.json", "T5 tokenizer special tokens map");
  auto token_name = [&](const std::string& key, const std::string& fallback) {
    std::string name = common::special_token_name(config, key);
    if (name.empty()) name = common::special_token_name(special_map, key);
    return name.empty() ? fallback : name;
  };
  auto resolve = [&](const std::string& key, const std::string& fallback) -> int64_t {
    const std::string name = token_name(key, fallback);
    if (auto it = added.find(name); it != added.end()) return it->second;
    const int id = sp->PieceToId(name);
    PARADIT_CHECK(name == token_name("unk_token", "<unk>") || id != sp->unk_id(), "T5 tokenizer ",
                  dir.string(), ": ", key, " '", name,
                  "' is neither an added token nor a piece of ", model_path.string());
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
  Encoding enc = common::finish_encoding({}, encode_content(text), {eos_id_}, max_length,
                                         pad_to_max, pad_id_, "T5", &truncated);
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
