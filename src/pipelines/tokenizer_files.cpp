#include "pipelines/tokenizer_files.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <set>
#include <system_error>

#include "core/error.h"
#include "models/common/text.h"

namespace paradit::pipelines {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

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
  auto value = [&](char c) -> int {
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
    PARADIT_CHECK(v >= 0, where, ": precompiled_charsmap is not valid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// The first Precompiled normalizer in a normalizer tree, or null.
const Json* find_precompiled(const Json& n) {
  if (!n.is_object()) return nullptr;
  if (n.value("type", "") == "Precompiled") return &n;
  if (n.contains("normalizers") && n["normalizers"].is_array()) {
    for (const Json& child : n["normalizers"]) {
      if (const Json* p = find_precompiled(child)) return p;
    }
  }
  return nullptr;
}

// A scratch folder removed when the object goes.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("paradit_tokenizer_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  PARADIT_CHECK(out.good(), path.string(), ": cannot write a temporary tokenizer file");
}

// Copies the side files the tokenizers read (special tokens, added tokens) next to the rebuilt
// model file.
void copy_side_files(const fs::path& from, const fs::path& to) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "added_tokens.json"}) {
    if (fs::exists(from / name)) fs::copy_file(from / name, to / name);
  }
}

}  // namespace

std::string sentencepiece_model_from_tokenizer_json(const Json& tj, const std::string& where) {
  PARADIT_CHECK(tj.contains("model") && tj["model"].is_object(), where, ": no 'model' object");
  const Json& model = tj["model"];
  PARADIT_CHECK(model.value("type", "") == "Unigram", where, ": model type '",
                model.value("type", ""), "' is not Unigram (a T5 tokenizer needs a Unigram model)");
  PARADIT_CHECK(model.contains("vocab") && model["vocab"].is_array(), where,
                ": model.vocab is not a list of [piece, score]");
  const Json& vocab = model["vocab"];
  const int64_t unk_id = model.value("unk_id", int64_t{-1});

  std::set<int64_t> added, special;
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
    for (const Json& t : tj["added_tokens"]) {
      const int64_t id = t.value("id", int64_t{-1});
      added.insert(id);
      if (t.value("special", false)) special.insert(id);
    }
  }
  // The SentencePiece vocabulary ends where the trailing added tokens (<extra_id_N>) begin.
  int64_t n = static_cast<int64_t>(vocab.size());
  while (n > 0 && added.count(n - 1) != 0 && n - 1 != unk_id) --n;
  PARADIT_CHECK(n > 0, where, ": the Unigram vocabulary is empty");

  std::string proto;
  int64_t pad_id = -1, eos_id = -1, bos_id = -1;
  for (int64_t id = 0; id < n; ++id) {
    const Json& entry = vocab[static_cast<size_t>(id)];
    PARADIT_CHECK(entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
                      entry[1].is_number(),
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
  const Json* pre = tj.contains("normalizer") ? find_precompiled(tj["normalizer"]) : nullptr;
  if (pre && pre->contains("precompiled_charsmap") && (*pre)["precompiled_charsmap"].is_string()) {
    put_bytes(normalizer, 1, "nmt_nfkc");
    put_bytes(normalizer, 2, base64_decode((*pre)["precompiled_charsmap"].get<std::string>(), where));
  } else {
    put_bytes(normalizer, 1, "identity");
  }
  put_int(normalizer, 3, 1);  // add_dummy_prefix
  put_int(normalizer, 4, 1);  // remove_extra_whitespaces
  put_int(normalizer, 5, 1);  // escape_whitespaces
  put_bytes(proto, 3, normalizer);  // ModelProto.normalizer_spec
  return proto;
}

models::t5::T5Tokenizer load_t5_tokenizer(const fs::path& dir) {
  if (fs::exists(dir / "spiece.model") || !fs::exists(dir / "tokenizer.json")) {
    return models::t5::T5Tokenizer::load(dir);  // errors name the missing file
  }
  const fs::path json_path = dir / "tokenizer.json";
  const Json tj = models::common::read_json_file(json_path, "T5 tokenizer");
  TempDir tmp;
  write_file(tmp.path() / "spiece.model",
             sentencepiece_model_from_tokenizer_json(tj, json_path.string()));
  copy_side_files(dir, tmp.path());
  return models::t5::T5Tokenizer::load(tmp.path());
}

models::clip::ClipTokenizer load_clip_tokenizer(const fs::path& dir) {
  if ((fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) ||
      !fs::exists(dir / "tokenizer.json")) {
    return models::clip::ClipTokenizer::load(dir);
  }
  const fs::path json_path = dir / "tokenizer.json";
  const Json tj = models::common::read_json_file(json_path, "CLIP tokenizer");
  PARADIT_CHECK(tj.contains("model") && tj["model"].value("type", "") == "BPE" &&
                    tj["model"].contains("vocab") && tj["model"]["vocab"].is_object() &&
                    tj["model"].contains("merges") && tj["model"]["merges"].is_array(),
                json_path.string(), ": not a BPE model with vocab and merges (a CLIP tokenizer)");
  TempDir tmp;
  write_file(tmp.path() / "vocab.json", tj["model"]["vocab"].dump());
  std::string merges = "#version: 0.2\n";
  for (const Json& m : tj["model"]["merges"]) {
    // tokenizers writes merges as "a b" (older) or ["a", "b"] (newer).
    if (m.is_string()) {
      merges += m.get<std::string>();
    } else {
      PARADIT_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                    json_path.string(), ": model.merges has an entry that is not a pair");
      merges += m[0].get<std::string>() + " " + m[1].get<std::string>();
    }
    merges += "\n";
  }
  write_file(tmp.path() / "merges.txt", merges);
  copy_side_files(dir, tmp.path());
  return models::clip::ClipTokenizer::load(tmp.path());
}

}  // namespace paradit::pipelines
