// Tokenizers of folders that ship only tokenizer.json (as transformers 5 saves pipelines): the
// rebuilt spiece.model / vocab.json + merges.txt must tokenize exactly as transformers did. The
// references are the tokenizer fixtures' cases.json (transformers' ids) and the shapes model's
// recorded input ids; the folders under test hold tokenizer.json and configs only.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "io/diffusers.h"
#include "pipelines/tokenizer_files.h"
#include "helpers.h"

namespace paradit::pipelines {
namespace {

using namespace paradit::pipelines::testing;

// A copy of `from` with only the files tokenizers' "fast" format needs.
class FastOnlyDir {
 public:
  explicit FastOnlyDir(const fs::path& from) {
    path_ = fs::temp_directory_path() /
            ("paradit_fast_tok_" + std::to_string(getpid()) + "_" + from.filename().string());
    fs::remove_all(path_);
    fs::create_directories(path_);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
      if (fs::exists(from / f)) fs::copy_file(from / f, path_ / f);
    }
  }
  ~FastOnlyDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(TokenizerFiles, T5FromTokenizerJsonMatchesTransformers) {
  FastOnlyDir dir(test_data("tokenizer/t5"));
  ASSERT_FALSE(fs::exists(dir.path() / "spiece.model"));
  models::t5::T5Tokenizer tok = load_t5_tokenizer(dir.path());
  tok.set_warn_on_truncation(false);
  EXPECT_EQ(tok.vocab_size(), 1100);
  const io::Json cases = io::read_json(test_data("tokenizer/t5/cases.json"))["cases"];
  ASSERT_GE(cases.size(), 40u);
  for (const auto& c : cases) {
    const std::string text = c["text"];
    EXPECT_EQ(tok.encode_unpadded(text), c["ids_unpadded"].get<std::vector<int64_t>>()) << text;
    const auto e = tok.encode(text, 16, true);
    EXPECT_EQ(e.ids, c["max_length_16"]["input_ids"].get<std::vector<int64_t>>()) << text;
    EXPECT_EQ(e.mask, c["max_length_16"]["attention_mask"].get<std::vector<int64_t>>()) << text;
  }
  EXPECT_FALSE(fs::exists(dir.path() / "spiece.model")) << "the source folder stays untouched";
}

TEST(TokenizerFiles, ClipFromTokenizerJsonMatchesTransformers) {
  FastOnlyDir dir(test_data("tokenizer/clip"));
  models::clip::ClipTokenizer tok = load_clip_tokenizer(dir.path());
  tok.set_warn_on_truncation(false);
  const io::Json cases = io::read_json(test_data("tokenizer/clip/cases.json"))["cases"];
  ASSERT_GE(cases.size(), 40u);
  for (const auto& c : cases) {
    const std::string text = c["text"];
    EXPECT_EQ(tok.encode_unpadded(text), c["ids_unpadded"].get<std::vector<int64_t>>()) << text;
    const auto e = tok.encode(text, 77, true);
    EXPECT_EQ(e.ids, c["max_length_77"]["input_ids"].get<std::vector<int64_t>>()) << text;
  }
}

TEST(TokenizerFiles, ShapesModelTokenizerFromTokenizerJson) {
  FastOnlyDir dir(shapes_model() / "tokenizer");
  const models::t5::T5Tokenizer tok = load_t5_tokenizer(dir.path());
  const io::Json refs = io::read_json(shapes_model() / "reference" / "references.json");
  for (const auto& c : refs["cases"]) {
    const auto e = tok.encode(c["prompt"].get<std::string>(), 32, true);
    EXPECT_EQ(e.ids, c["input_ids"].get<std::vector<int64_t>>()) << c["prompt"];
  }
}

TEST(TokenizerFiles, RejectsANonUnigramModel) {
  const io::Json bpe = io::read_json(test_data("tokenizer/clip/tokenizer.json"));
  EXPECT_THROW(sentencepiece_model_from_tokenizer_json(bpe, "clip/tokenizer.json"), Error);
}

}  // namespace
}  // namespace paradit::pipelines
