// T5Tokenizer against transformers' own outputs (tests/data/tokenizer/t5/cases.json, made by
// transformers 5.17 / sentencepiece 0.2.2) and against Hugging Face tokenizers on more strings
// (extra_cases.json, see make_extra_cases.py).

#include <gtest/gtest.h>

#include "core/error.h"
#include "models/t5/tokenizer.h"
#include "tokenizers/cases.h"

namespace paradit::models::t5 {
namespace {

using paradit::test::int_list;
using paradit::test::load_reference;
using paradit::test::tokenizer_data;

class T5TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tok_ = new T5Tokenizer(T5Tokenizer::load(tokenizer_data() / "t5"));
    tok_->set_warn_on_truncation(false);
  }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  static T5Tokenizer* tok_;
};
T5Tokenizer* T5TokenizerTest::tok_ = nullptr;

TEST_F(T5TokenizerTest, SpecialIds) {
  EXPECT_EQ(tok_->pad_id(), 0);
  EXPECT_EQ(tok_->eos_id(), 1);
  EXPECT_EQ(tok_->unk_id(), 2);
  EXPECT_EQ(tok_->vocab_size(), 1100);
  EXPECT_EQ(tok_->id_to_token(1000), "<extra_id_99>");
  EXPECT_EQ(tok_->id_to_token(1099), "<extra_id_0>");
  EXPECT_EQ(tok_->id_to_token(4), "\xE2\x96\x81the");  // "▁the"
}

TEST_F(T5TokenizerTest, SharedCases) {
  const auto ref = load_reference(tokenizer_data() / "t5" / "cases.json");
  ASSERT_EQ(ref.at("cases").size(), 40u);
  for (const auto& c : ref.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE("text: '" + text + "'");
    EXPECT_EQ(tok_->sentencepiece_encode(text), int_list(c.at("sentencepiece_encode")));
    EXPECT_EQ(tok_->encode_unpadded(text), int_list(c.at("ids_unpadded")));
    EXPECT_EQ(tok_->tokenize(text), c.at("tokens").get<std::vector<std::string>>());
    for (int length : {16, 77, 256}) {
      SCOPED_TRACE("max_length " + std::to_string(length));
      const auto& want = c.at("max_length_" + std::to_string(length));
      const Encoding enc = tok_->encode(text, length, /*pad_to_max=*/true);
      EXPECT_EQ(enc.ids, int_list(want.at("input_ids")));
      EXPECT_EQ(enc.mask, int_list(want.at("attention_mask")));
      // Without padding: the same ids up to the first padded position.
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

TEST_F(T5TokenizerTest, ExtraCases) {
  const auto ref = load_reference(tokenizer_data() / "extra_cases.json");
  ASSERT_FALSE(ref.at("t5").empty());
  for (const auto& c : ref.at("t5")) {
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

TEST_F(T5TokenizerTest, DecodeRoundTrip) {
  EXPECT_EQ(tok_->decode(tok_->encode_unpadded("a photo of a cat")), "a photo of a cat");
  EXPECT_EQ(tok_->decode(tok_->encode_unpadded("the <extra_id_0> license")), "the license");
}

TEST_F(T5TokenizerTest, BadLengths) {
  EXPECT_THROW(tok_->encode("a cat", 0, /*pad_to_max=*/true), Error);
  const Encoding one = tok_->encode("a cat", 1, /*pad_to_max=*/true);
  EXPECT_EQ(one.ids, std::vector<int64_t>{1});
  // No limit: the whole prompt.
  EXPECT_EQ(tok_->encode("a cat", 0, /*pad_to_max=*/false).ids, tok_->encode_unpadded("a cat"));
}

TEST(T5TokenizerWarn, TruncationWarnsOnceOnStderr) {
  const T5Tokenizer tok = T5Tokenizer::load(tokenizer_data() / "t5");
  ::testing::internal::CaptureStderr();
  tok.encode("a photo of a cat", 77, /*pad_to_max=*/true);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  ::testing::internal::CaptureStderr();
  tok.encode("the license of the software\nand more", 4, /*pad_to_max=*/true);
  const std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(warning.find("truncated"), std::string::npos) << warning;
  EXPECT_NE(warning.find("software and more"), std::string::npos) << warning;
  ASSERT_FALSE(warning.empty());
  EXPECT_EQ(warning.find('\n'), warning.size() - 1) << warning;  // one line
}

TEST(T5TokenizerLoad, MissingModel) {
  const auto dir = paradit::test::scratch_dir("t5_missing");
  try {
    T5Tokenizer::load(dir);
    FAIL() << "expected paradit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("spiece.model"), std::string::npos) << e.what();
  }
}

TEST(T5TokenizerLoad, GarbageModel) {
  const auto dir = paradit::test::scratch_dir("t5_garbage");
  paradit::test::write_file(dir / "spiece.model",
                            std::string("this is not a protobuf \x01\xff", 26));
  try {
    T5Tokenizer::load(dir);
    FAIL() << "expected paradit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("spiece.model"), std::string::npos) << e.what();
  }
}

TEST(T5TokenizerLoad, MalformedConfig) {
  const auto dir = paradit::test::scratch_dir("t5_bad_config");
  std::filesystem::copy_file(tokenizer_data() / "t5" / "spiece.model", dir / "spiece.model");
  paradit::test::write_file(dir / "tokenizer_config.json", "{ not json");
  try {
    T5Tokenizer::load(dir);
    FAIL() << "expected paradit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json"), std::string::npos) << e.what();
  }
}

TEST(T5TokenizerLoad, SpieceOnlyFollowsT5Convention) {
  // Without any json file: <extra_id_N> = pieces + 100 - 1 - N, as T5's slow tokenizer builds it.
  const auto dir = paradit::test::scratch_dir("t5_spiece_only");
  std::filesystem::copy_file(tokenizer_data() / "t5" / "spiece.model", dir / "spiece.model");
  const T5Tokenizer tok = T5Tokenizer::load(dir);
  EXPECT_EQ(tok.vocab_size(), 1100);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.pad_id(), 0);
  const std::vector<int64_t> want{95, 1099, 3, 82, 98, 162, 6, 16, 1098, 78, 19, 21, 162, 1};
  EXPECT_EQ(tok.encode_unpadded("The <extra_id_0> walks in <extra_id_1> park"), want);
}

}  // namespace
}  // namespace paradit::models::t5
