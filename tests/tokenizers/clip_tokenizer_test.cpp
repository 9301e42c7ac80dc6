// ClipTokenizer against transformers' own outputs (tests/data/tokenizer/clip/cases.json, made by
// transformers 5.17 without ftfy) and against Hugging Face tokenizers on more strings
// (extra_cases.json, see make_extra_cases.py).

#include <gtest/gtest.h>

#include "core/error.h"
#include "models/clip/tokenizer.h"
#include "tokenizers/cases.h"

namespace paradit::models::clip {
namespace {

using paradit::test::int_list;
using paradit::test::load_reference;
using paradit::test::tokenizer_data;

class ClipTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tok_ = new ClipTokenizer(ClipTokenizer::load(tokenizer_data() / "clip"));
    tok_->set_warn_on_truncation(false);
  }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  static ClipTokenizer* tok_;
};
ClipTokenizer* ClipTokenizerTest::tok_ = nullptr;

TEST_F(ClipTokenizerTest, SpecialIds) {
  EXPECT_EQ(tok_->bos_id(), 1512);
  EXPECT_EQ(tok_->eos_id(), 1513);
  EXPECT_EQ(tok_->pad_id(), 1513);
  EXPECT_EQ(tok_->unk_id(), 1513);
  EXPECT_EQ(tok_->vocab_size(), 1514);
}

TEST_F(ClipTokenizerTest, SharedCases) {
  const auto ref = load_reference(tokenizer_data() / "clip" / "cases.json");
  ASSERT_EQ(ref.at("cases").size(), 40u);
  for (const auto& c : ref.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE("text: '" + text + "'");
    EXPECT_EQ(tok_->encode_unpadded(text), int_list(c.at("ids_unpadded")));
    EXPECT_EQ(tok_->tokenize(text), c.at("tokens").get<std::vector<std::string>>());
    for (int length : {16, 77}) {
      SCOPED_TRACE("max_length " + std::to_string(length));
      const auto& want = c.at("max_length_" + std::to_string(length));
      const Encoding enc = tok_->encode(text, length, /*pad_to_max=*/true);
      EXPECT_EQ(enc.ids, int_list(want.at("input_ids")));
      EXPECT_EQ(enc.mask, int_list(want.at("attention_mask")));
      const Encoding unpadded = tok_->encode(text, length, /*pad_to_max=*/false);
      std::vector<int64_t> want_unpadded;
      for (size_t i = 0; i < enc.mask.size(); ++i) {
        if (int_list(want.at("attention_mask"))[i] == 1) {
          want_unpadded.push_back(int_list(want.at("input_ids"))[i]);
        }
      }
      EXPECT_EQ(unpadded.ids, want_unpadded);
      EXPECT_EQ(unpadded.mask, std::vector<int64_t>(want_unpadded.size(), 1));
    }
  }
}

TEST_F(ClipTokenizerTest, ExtraCases) {
  const auto ref = load_reference(tokenizer_data() / "extra_cases.json");
  ASSERT_FALSE(ref.at("clip").empty());
  for (const auto& c : ref.at("clip")) {
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE("text: '" + text + "'");
    EXPECT_EQ(tok_->encode_unpadded(text), int_list(c.at("ids_unpadded")));
    for (int length : {16, 77}) {
      SCOPED_TRACE("max_length " + std::to_string(length));
      const auto& want = c.at("max_length_" + std::to_string(length));
      const Encoding enc = tok_->encode(text, length, /*pad_to_max=*/true);
      EXPECT_EQ(enc.ids, int_list(want.at("input_ids")));
      EXPECT_EQ(enc.mask, int_list(want.at("attention_mask")));
    }
  }
}

TEST_F(ClipTokenizerTest, DecodeRoundTrip) {
  EXPECT_EQ(tok_->decode(tok_->encode_unpadded("a photo of a cat, café 😀")),
            "a photo of a cat , café 😀");
}

TEST_F(ClipTokenizerTest, BadLengths) {
  EXPECT_THROW(tok_->encode("a cat", 1, /*pad_to_max=*/true), Error);  // bos + eos need 2
  EXPECT_THROW(tok_->encode("a cat", 0, /*pad_to_max=*/true), Error);
  const Encoding two = tok_->encode("a cat", 2, /*pad_to_max=*/true);
  EXPECT_EQ(two.ids, (std::vector<int64_t>{1512, 1513}));
}

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

}  // namespace
}  // namespace paradit::models::clip
