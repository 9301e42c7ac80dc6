// T5Tokenizer against transformers' own outputs (tests/data/tokenizer/t5/cases.json, made by
// transformers 5.17 / sentencepiece 0.2.2) and against Hugging Face tokenizers on more strings
// (extra_cases.json, see make_extra_cases.py).

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "core/error.h"
#include "models/t5/tokenizer.h"
#include "tokenizers/cases.h"

namespace paradit::models::t5 {
namespace {

using paradit::test::expect_extra_cases;
using paradit::test::expect_length_cases;
using paradit::test::int_list;
using paradit::test::load_reference;
using paradit::test::tokenizer_data;

// Every test of the suite runs on each file form of the fixture folder (see FileForm): the
// slow files, tokenizer.json, and both, must give transformers' ids.
class T5TokenizerTest : public ::testing::TestWithParam<paradit::test::FileForm> {
 protected:
  void SetUp() override {
    tok_ = std::make_unique<T5Tokenizer>(
        T5Tokenizer::load(paradit::test::tokenizer_folder("t5", GetParam())));
    tok_->set_warn_on_truncation(false);
  }
  std::unique_ptr<T5Tokenizer> tok_;
};

TEST_P(T5TokenizerTest, SpecialIds) {
  EXPECT_EQ(tok_->pad_id(), 0);
  EXPECT_EQ(tok_->eos_id(), 1);
  EXPECT_EQ(tok_->unk_id(), 2);
  EXPECT_EQ(tok_->vocab_size(), 1100);
  EXPECT_EQ(tok_->id_to_token(1000), "<extra_id_99>");
  EXPECT_EQ(tok_->id_to_token(1099), "<extra_id_0>");
  EXPECT_EQ(tok_->id_to_token(4), "\xE2\x96\x81the");  // "▁the"
}

TEST_P(T5TokenizerTest, SharedCases) {
  const auto ref = load_reference(tokenizer_data() / "t5" / "cases.json");
  ASSERT_EQ(ref.at("cases").size(), 40u);
  for (const auto& c : ref.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE("text: '" + text + "'");
    EXPECT_EQ(tok_->sentencepiece_encode(text), int_list(c.at("sentencepiece_encode")));
    EXPECT_EQ(tok_->encode_unpadded(text), int_list(c.at("ids_unpadded")));
    EXPECT_EQ(tok_->tokenize(text), c.at("tokens").get<std::vector<std::string>>());
    expect_length_cases(*tok_, text, c, {16, 77, 256}, /*unpadded_too=*/true);
  }
}

TEST_P(T5TokenizerTest, ExtraCases) {
  expect_extra_cases(*tok_, "t5", {16, 77});
}

TEST_P(T5TokenizerTest, DecodeRoundTrip) {
  EXPECT_EQ(tok_->decode(tok_->encode_unpadded("a photo of a cat")), "a photo of a cat");
  EXPECT_EQ(tok_->decode(tok_->encode_unpadded("the <extra_id_0> license")), "the license");
}

TEST_P(T5TokenizerTest, BadLengths) {
  EXPECT_THROW(tok_->encode("a cat", 0, /*pad_to_max=*/true), Error);
  const Encoding one = tok_->encode("a cat", 1, /*pad_to_max=*/true);
  EXPECT_EQ(one.ids, std::vector<int64_t>{1});
  // No limit: the whole prompt.
  EXPECT_EQ(tok_->encode("a cat", 0, /*pad_to_max=*/false).ids, tok_->encode_unpadded("a cat"));
}

INSTANTIATE_TEST_SUITE_P(FileForms, T5TokenizerTest, paradit::test::kAllForms,
                         paradit::test::form_param_name);

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

void expect_load_error(const std::filesystem::path& dir, const std::string& names) {
  try {
    T5Tokenizer::load(dir);
    FAIL() << "expected paradit::Error naming " << names;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(names), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(T5TokenizerLoad, MalformedTokenizerJson) {
  // A folder with tokenizer.json only: every way it can be wrong names it.
  const auto dir = paradit::test::scratch_dir("t5_bad_tokenizer_json");
  paradit::test::write_file(dir / "tokenizer.json", "{\"model\": {\"type\": \"Unigram\", ");
  expect_load_error(dir, "tokenizer.json");
  paradit::test::write_file(dir / "tokenizer.json", "[]");
  expect_load_error(dir, "tokenizer.json");
  // CLIP's BPE model is not a T5 tokenizer.
  std::filesystem::remove(dir / "tokenizer.json");
  std::filesystem::copy_file(tokenizer_data() / "clip" / "tokenizer.json", dir / "tokenizer.json");
  expect_load_error(dir, "tokenizer.json");
  // T5's own file with a piece that is not [piece, score], or a normalizer SentencePiece lacks.
  nlohmann::json tj = load_reference(tokenizer_data() / "t5" / "tokenizer.json");
  tj["model"]["vocab"][5] = "oops";
  paradit::test::write_file(dir / "tokenizer.json", tj.dump());
  expect_load_error(dir, "tokenizer.json");
  tj = load_reference(tokenizer_data() / "t5" / "tokenizer.json");
  tj["normalizer"] = {{"type", "Lowercase"}};
  paradit::test::write_file(dir / "tokenizer.json", tj.dump());
  expect_load_error(dir, "tokenizer.json");
  tj = load_reference(tokenizer_data() / "t5" / "tokenizer.json");
  tj["pre_tokenizer"]["pretokenizers"][1]["prepend_scheme"] = "never";
  paradit::test::write_file(dir / "tokenizer.json", tj.dump());
  expect_load_error(dir, "tokenizer.json");
}

TEST(T5TokenizerLoad, NoModelFileNamesBoth) {
  const auto dir = paradit::test::scratch_dir("t5_no_model");
  std::filesystem::copy_file(tokenizer_data() / "t5" / "tokenizer_config.json",
                             dir / "tokenizer_config.json");
  expect_load_error(dir, "neither spiece.model nor tokenizer.json");
}

TEST(T5TokenizerLoad, UnreadableModelFile) {
  // spiece.model is a folder: it exists but cannot be read as a file.
  const auto dir = paradit::test::scratch_dir("t5_unreadable");
  std::filesystem::create_directories(dir / "spiece.model");
  expect_load_error(dir, "spiece.model");
}

TEST(T5TokenizerSettings, MaxLengthAndSides) {
  const T5Tokenizer tok = T5Tokenizer::load(tokenizer_data() / "t5");
  EXPECT_EQ(tok.model_max_length(), 512);  // tokenizer_config.json
  EXPECT_EQ(tok.padding_side(), common::Side::kRight);
  const T5Tokenizer bare =
      T5Tokenizer::load(paradit::test::tokenizer_folder("t5", paradit::test::FileForm::kJsonOnly));
  EXPECT_EQ(bare.model_max_length(), 0);  // no config: no limit
}

// The folder's padding / truncation side, from tokenizer_config.json or (without one) from
// tokenizer.json's padding and truncation blocks: the reference is transformers' untruncated ids
// padded / cut at the other end.
TEST(T5TokenizerSettings, LeftPaddingAndTruncation) {
  const auto ref = load_reference(tokenizer_data() / "t5" / "cases.json");
  for (bool in_config : {true, false}) {
    SCOPED_TRACE(in_config ? "tokenizer_config.json" : "tokenizer.json");
    const auto dir = paradit::test::scratch_dir("t5_left");
    nlohmann::json tj = load_reference(tokenizer_data() / "t5" / "tokenizer.json");
    nlohmann::json config = load_reference(tokenizer_data() / "t5" / "tokenizer_config.json");
    if (in_config) {
      config["padding_side"] = "left";
      config["truncation_side"] = "left";
    } else {
      config.erase("padding_side");
      config.erase("truncation_side");
      tj["padding"]["direction"] = "Left";
      tj["truncation"]["direction"] = "Left";
    }
    paradit::test::write_file(dir / "tokenizer.json", tj.dump());
    paradit::test::write_file(dir / "tokenizer_config.json", config.dump());
    T5Tokenizer tok = T5Tokenizer::load(dir);
    tok.set_warn_on_truncation(false);
    EXPECT_EQ(tok.padding_side(), common::Side::kLeft);
    EXPECT_EQ(tok.truncation_side(), common::Side::kLeft);
    for (const auto& c : ref.at("cases")) {
      const std::string text = c.at("text").get<std::string>();
      SCOPED_TRACE("text: '" + text + "'");
      std::vector<int64_t> content = int_list(c.at("ids_unpadded"));
      content.pop_back();  // </s>
      const size_t L = 16, keep = std::min(content.size(), L - 1);
      std::vector<int64_t> want(L - keep - 1, tok.pad_id());
      std::vector<int64_t> want_mask(L - keep - 1, 0);
      want.insert(want.end(), content.end() - static_cast<std::ptrdiff_t>(keep), content.end());
      want.push_back(tok.eos_id());
      want_mask.resize(L, 1);
      const Encoding enc = tok.encode(text, static_cast<int>(L), /*pad_to_max=*/true);
      EXPECT_EQ(enc.ids, want);
      EXPECT_EQ(enc.mask, want_mask);
    }
  }
}

TEST(T5TokenizerSettings, BadPaddingSideNamesTheConfig) {
  const auto dir = paradit::test::scratch_dir("t5_bad_side");
  std::filesystem::copy_file(tokenizer_data() / "t5" / "spiece.model", dir / "spiece.model");
  paradit::test::write_file(dir / "tokenizer_config.json", "{\"padding_side\": \"middle\"}");
  expect_load_error(dir, "tokenizer_config.json");
}

}  // namespace
}  // namespace paradit::models::t5
