// ClipTokenizer against transformers' own outputs (tests/data/tokenizer/clip/cases.json, made by
// transformers 5.17 without ftfy) and against Hugging Face tokenizers on more strings
// (extra_cases.json, see make_extra_cases.py).

#include <gtest/gtest.h>

#include <memory>

#include "core/error.h"
#include "models/clip/tokenizer.h"
#include "tokenizers/cases.h"

namespace paradit::models::clip {
namespace {

using paradit::test::expect_extra_cases;
using paradit::test::expect_length_cases;
using paradit::test::int_list;
using paradit::test::load_reference;
using paradit::test::tokenizer_data;

// Every test of the suite runs on each file form of the fixture folder (see FileForm): the
// slow files, tokenizer.json, and both, must give transformers' ids.
class ClipTokenizerTest : public ::testing::TestWithParam<paradit::test::FileForm> {
 protected:
  void SetUp() override {
    tok_ = std::make_unique<ClipTokenizer>(
        ClipTokenizer::load(paradit::test::tokenizer_folder("clip", GetParam())));
    tok_->set_warn_on_truncation(false);
  }
  std::unique_ptr<ClipTokenizer> tok_;
};

TEST_P(ClipTokenizerTest, SpecialIds) {
  EXPECT_EQ(tok_->bos_id(), 1512);
  EXPECT_EQ(tok_->eos_id(), 1513);
  EXPECT_EQ(tok_->pad_id(), 1513);
  EXPECT_EQ(tok_->unk_id(), 1513);
  EXPECT_EQ(tok_->vocab_size(), 1514);
}

TEST_P(ClipTokenizerTest, SharedCases) {
  const auto ref = load_reference(tokenizer_data() / "clip" / "cases.json");
  ASSERT_EQ(ref.at("cases").size(), 40u);
  for (const auto& c : ref.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE("text: '" + text + "'");
    EXPECT_EQ(tok_->encode_unpadded(text), int_list(c.at("ids_unpadded")));
    EXPECT_EQ(tok_->tokenize(text), c.at("tokens").get<std::vector<std::string>>());
    expect_length_cases(*tok_, text, c, {16, 77}, /*unpadded_too=*/true);
  }
}

TEST_P(ClipTokenizerTest, ExtraCases) {
  expect_extra_cases(*tok_, "clip", {16, 77});
}

TEST_P(ClipTokenizerTest, DecodeRoundTrip) {
  EXPECT_EQ(tok_->decode(tok_->encode_unpadded("a photo of a cat, café 😀")),
            "a photo of a cat , café 😀");
}

TEST_P(ClipTokenizerTest, BadLengths) {
  EXPECT_THROW(tok_->encode("a cat", 1, /*pad_to_max=*/true), Error);  // bos + eos need 2
  EXPECT_THROW(tok_->encode("a cat", 0, /*pad_to_max=*/true), Error);
  const Encoding two = tok_->encode("a cat", 2, /*pad_to_max=*/true);
  EXPECT_EQ(two.ids, (std::vector<int64_t>{1512, 1513}));
}

INSTANTIATE_TEST_SUITE_P(FileForms, ClipTokenizerTest, paradit::test::kAllForms,
                         paradit::test::form_param_name);

TEST(ClipTokenizerWarn, TruncationWarnsOnceOnStderr) {
  const ClipTokenizer tok = ClipTokenizer::load(tokenizer_data() / "clip");
  ::testing::internal::CaptureStderr();
  tok.encode("a photo of a cat", 77, /*pad_to_max=*/true);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  ::testing::internal::CaptureStderr();
  tok.encode("a photo of a cat", 4, /*pad_to_max=*/true);
  const std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(warning.find("truncated"), std::string::npos) << warning;
  EXPECT_NE(warning.find("of a cat"), std::string::npos) << warning;
  ASSERT_FALSE(warning.empty());
  EXPECT_EQ(warning.find('\n'), warning.size() - 1) << warning;
}

void expect_load_error(const std::filesystem::path& dir, const std::string& names) {
  try {
    ClipTokenizer::load(dir);
    FAIL() << "expected paradit::Error naming " << names;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(names), std::string::npos) << e.what();
  }
}

TEST(ClipTokenizerLoad, MissingVocab) {
  const auto dir = paradit::test::scratch_dir("clip_missing_vocab");
  std::filesystem::copy_file(tokenizer_data() / "clip" / "merges.txt", dir / "merges.txt");
  expect_load_error(dir, "vocab.json");
}

TEST(ClipTokenizerLoad, GarbageVocab) {
  const auto dir = paradit::test::scratch_dir("clip_garbage_vocab");
  std::filesystem::copy_file(tokenizer_data() / "clip" / "merges.txt", dir / "merges.txt");
  paradit::test::write_file(dir / "vocab.json", "{\"a\": 1, \"b\": ");
  expect_load_error(dir, "vocab.json");
  paradit::test::write_file(dir / "vocab.json", "[1, 2, 3]");
  expect_load_error(dir, "vocab.json");
  paradit::test::write_file(dir / "vocab.json", "{\"a\": \"x\"}");
  expect_load_error(dir, "vocab.json");
}

TEST(ClipTokenizerLoad, MissingOrBadMerges) {
  const auto dir = paradit::test::scratch_dir("clip_bad_merges");
  std::filesystem::copy_file(tokenizer_data() / "clip" / "vocab.json", dir / "vocab.json");
  expect_load_error(dir, "merges.txt");
  paradit::test::write_file(dir / "merges.txt", "#version: 0.2\nt h\nthis line is wrong\n");
  expect_load_error(dir, "merges.txt line 3");
  paradit::test::write_file(dir / "merges.txt", "#version: 0.2\nq z\n");  // "qz" not in vocab
  expect_load_error(dir, "merges.txt line 2");
}

TEST(ClipTokenizerLoad, VocabAndMergesOnly) {
  // Defaults without any config: <|startoftext|> / <|endoftext|> (pad = eos).
  const auto dir = paradit::test::scratch_dir("clip_minimal");
  std::filesystem::copy_file(tokenizer_data() / "clip" / "vocab.json", dir / "vocab.json");
  std::filesystem::copy_file(tokenizer_data() / "clip" / "merges.txt", dir / "merges.txt");
  const ClipTokenizer tok = ClipTokenizer::load(dir);
  EXPECT_EQ(tok.pad_id(), 1513);
  EXPECT_EQ(tok.encode_unpadded("a photo of a cat"),
            (std::vector<int64_t>{1512, 320, 1474, 78, 532, 523, 320, 66, 553, 1513}));
}

TEST(ClipTokenizerLoad, MalformedTokenizerJson) {
  // A folder with tokenizer.json only: every way it can be wrong names it.
  const auto dir = paradit::test::scratch_dir("clip_bad_tokenizer_json");
  paradit::test::write_file(dir / "tokenizer.json", "{\"model\": ");
  expect_load_error(dir, "tokenizer.json");
  // T5's Unigram model is not a CLIP tokenizer.
  std::filesystem::remove(dir / "tokenizer.json");
  std::filesystem::copy_file(tokenizer_data() / "t5" / "tokenizer.json", dir / "tokenizer.json");
  expect_load_error(dir, "tokenizer.json");
  nlohmann::json tj = load_reference(tokenizer_data() / "clip" / "tokenizer.json");
  tj["model"]["merges"][3] = 17;
  paradit::test::write_file(dir / "tokenizer.json", tj.dump());
  expect_load_error(dir, "tokenizer.json model.merges[3]");
  tj = load_reference(tokenizer_data() / "clip" / "tokenizer.json");
  tj["model"]["vocab"] = nlohmann::json::array();
  paradit::test::write_file(dir / "tokenizer.json", tj.dump());
  expect_load_error(dir, "tokenizer.json");
  tj = load_reference(tokenizer_data() / "clip" / "tokenizer.json");
  tj["model"]["end_of_word_suffix"] = "";
  paradit::test::write_file(dir / "tokenizer.json", tj.dump());
  expect_load_error(dir, "tokenizer.json");
}

TEST(ClipTokenizerLoad, MergesAsPairsOrStrings) {
  // tokenizers writes merges as ["a", "b"] (newer) or "a b" (older): both load the same model.
  const auto ref = load_reference(tokenizer_data() / "clip" / "cases.json");
  nlohmann::json tj = load_reference(tokenizer_data() / "clip" / "tokenizer.json");
  nlohmann::json strings = nlohmann::json::array();
  for (const auto& m : tj["model"]["merges"]) {
    strings.push_back(m.is_string() ? m.get<std::string>()
                                    : m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  tj["model"]["merges"] = strings;
  const auto dir = paradit::test::scratch_dir("clip_string_merges");
  paradit::test::write_file(dir / "tokenizer.json", tj.dump());
  const ClipTokenizer tok = ClipTokenizer::load(dir);
  for (const auto& c : ref.at("cases")) {
    EXPECT_EQ(tok.encode_unpadded(c.at("text").get<std::string>()), int_list(c.at("ids_unpadded")));
  }
}

TEST(ClipTokenizerSettings, MaxLengthAndLeftPadding) {
  EXPECT_EQ(ClipTokenizer::load(tokenizer_data() / "clip").model_max_length(), 77);
  const auto dir = paradit::test::scratch_dir("clip_left");
  std::filesystem::copy_file(tokenizer_data() / "clip" / "tokenizer.json", dir / "tokenizer.json");
  nlohmann::json config = load_reference(tokenizer_data() / "clip" / "tokenizer_config.json");
  config["padding_side"] = "left";
  paradit::test::write_file(dir / "tokenizer_config.json", config.dump());
  ClipTokenizer tok = ClipTokenizer::load(dir);
  tok.set_warn_on_truncation(false);
  const auto ref = load_reference(tokenizer_data() / "clip" / "cases.json");
  for (const auto& c : ref.at("cases")) {
    SCOPED_TRACE(c.at("text").get<std::string>());
    // transformers' right-padded ids, with the padding moved to the front.
    const auto& want = c.at("max_length_77");
    std::vector<int64_t> ids, mask, right_ids = int_list(want.at("input_ids")),
                                    right_mask = int_list(want.at("attention_mask"));
    for (size_t i = 0; i < right_ids.size(); ++i) {
      if (right_mask[i] == 0) ids.push_back(right_ids[i]), mask.push_back(0);
    }
    for (size_t i = 0; i < right_ids.size(); ++i) {
      if (right_mask[i] == 1) ids.push_back(right_ids[i]), mask.push_back(1);
    }
    const Encoding enc = tok.encode(c.at("text").get<std::string>(), 77, /*pad_to_max=*/true);
    EXPECT_EQ(enc.ids, ids);
    EXPECT_EQ(enc.mask, mask);
  }
}

}  // namespace
}  // namespace paradit::models::clip
