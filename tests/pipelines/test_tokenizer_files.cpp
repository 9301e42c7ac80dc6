// The pipelines' tokenizer loading on folders that ship only tokenizer.json (as transformers 5
// saves pipelines): the shapes model's tokenizer must give the input ids recorded with it. (Each
// file form of the tokenizer fixtures is tested in tests/tokenizers.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "helpers.h"
#include "io/diffusers.h"
#include "pipelines/tokenizer_files.h"

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

TEST(TokenizerFiles, ShapesModelTokenizerFromTokenizerJson) {
  FastOnlyDir dir(shapes_model() / "tokenizer");
  const models::t5::T5Tokenizer tok = load_t5_tokenizer(dir.path());
  const io::Json refs = io::read_json(shapes_model() / "reference" / "references.json");
  for (const auto& c : refs["cases"]) {
    const auto e = tok.encode(c["prompt"].get<std::string>(), 32, true);
    EXPECT_EQ(e.ids, c["input_ids"].get<std::vector<int64_t>>()) << c["prompt"];
  }
}

TEST(TokenizerFiles, ShapesModelTokenizerFromSpieceOnly) {
  const fs::path dir =
      fs::temp_directory_path() / ("paradit_spiece_only_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(shapes_model() / "tokenizer" / "spiece.model", dir / "spiece.model");
  const models::t5::T5Tokenizer tok = load_t5_tokenizer(dir);
  const io::Json refs = io::read_json(shapes_model() / "reference" / "references.json");
  for (const auto& c : refs["cases"]) {
    const auto e = tok.encode(c["prompt"].get<std::string>(), 32, true);
    EXPECT_EQ(e.ids, c["input_ids"].get<std::vector<int64_t>>()) << c["prompt"];
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace paradit::pipelines
