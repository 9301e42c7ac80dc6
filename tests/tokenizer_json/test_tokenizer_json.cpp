// The tokenizer.json tokenizer (src/models/tokenizers) against the byte-level BPE fixtures
// (Qwen2-, Mistral tekken- and Llama 3-style tokenizer.json files with the transformers 5.25
// ids in cases.json) and CLIP's tokenizer.json (tests/data/tokenizer/clip/cases.json).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "models/tokenizers/regex.h"
#include "models/tokenizers/tokenizer.h"
#include "tokenizers/cases.h"

namespace paradit {
namespace {

using models::tokenizers::Regex;
using models::tokenizers::Tokenizer;
using test::int_list;
using test::load_reference;
using test::tokenizer_data;

std::vector<std::string> token_strings(const Tokenizer& tok, const std::vector<int64_t>& ids) {
  std::vector<std::string> out;
  for (int64_t id : ids) out.push_back(tok.id_to_token(id));
  return out;
}

TEST(TokenizerJson, Qwen2Style) {
  const auto dir = tokenizer_data() / "bpe_bytelevel";
  const Tokenizer tok = Tokenizer::load(dir);
  const nlohmann::json ref = load_reference(dir / "cases.json");
  EXPECT_EQ(tok.vocab_size(), ref["info"]["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok.pad_id(), 756);
  EXPECT_EQ(tok.eos_id(), 758);
  const std::string qwen_template = ref["info"]["qwen_image_template"].get<std::string>();
  ASSERT_EQ(ref["cases"].size(), 39u);
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    SCOPED_TRACE(text);
    const std::vector<int64_t> ids = tok.encode(text);
    EXPECT_EQ(ids, int_list(c["ids"]));
    EXPECT_EQ(token_strings(tok, ids), c["tokens"].get<std::vector<std::string>>());
    EXPECT_EQ(tok.decode(ids), c["decode"].get<std::string>());
    std::string templated = qwen_template;
    templated.replace(templated.find("{}"), 2, text);
    EXPECT_EQ(tok.encode(templated), int_list(c["qwen_image"]["ids"]));
    EXPECT_EQ(tok.encode(c["z_image"]["text"].get<std::string>()), int_list(c["z_image"]["ids"]));
    EXPECT_EQ(tok.encode(c["flux2_klein"]["text"].get<std::string>()),
              int_list(c["flux2_klein"]["ids"]));
  }
}

TEST(TokenizerJson, MistralTekkenStyle) {
  const auto dir = tokenizer_data() / "bpe_bytelevel_mistral";
  const Tokenizer tok = Tokenizer::load(dir);
  const nlohmann::json ref = load_reference(dir / "cases.json");
  EXPECT_EQ(tok.vocab_size(), ref["info"]["vocab_size"].get<int64_t>());
  ASSERT_EQ(ref["cases"].size(), 39u);
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    SCOPED_TRACE(text);
    const std::vector<int64_t> ids = tok.encode(text);
    EXPECT_EQ(ids, int_list(c["ids"]));
    EXPECT_EQ(tok.encode(text, false), int_list(c["ids_no_special"]));
    EXPECT_EQ(token_strings(tok, ids), c["tokens"].get<std::vector<std::string>>());
    EXPECT_EQ(tok.decode(ids, /*skip_special_tokens=*/true), c["decode"].get<std::string>());
    // The chat template renders "<s>[SYSTEM_PROMPT]…": the rendered text already holds <s>.
    EXPECT_EQ(tok.encode(c["flux2"]["text"].get<std::string>(), false),
              int_list(c["flux2"]["ids"]));
  }
}

TEST(TokenizerJson, Llama3Style) {
  const auto dir = tokenizer_data() / "bpe_bytelevel_llama3";
  const Tokenizer tok = Tokenizer::load(dir);
  const nlohmann::json ref = load_reference(dir / "cases.json");
  EXPECT_EQ(tok.vocab_size(), ref["info"]["vocab_size"].get<int64_t>());
  const std::string hv_template = ref["info"]["hunyuan_template"].get<std::string>();
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    SCOPED_TRACE(text);
    const std::vector<int64_t> ids = tok.encode(text);
    EXPECT_EQ(ids, int_list(c["ids"]));
    EXPECT_EQ(token_strings(tok, ids), c["tokens"].get<std::vector<std::string>>());
    EXPECT_EQ(tok.decode(ids, true), c["decode"].get<std::string>());
    std::string templated = hv_template;
    templated.replace(templated.find("{}"), 2, text);
    EXPECT_EQ(tok.encode(templated), int_list(c["hunyuan_video"]["ids"]));
  }
}

// CLIP's tokenizer.json (NFC + whitespace Replace + Lowercase, a Split with invert, ByteLevel
// with GPT-2's regex, BPE with "</w>", RobertaProcessing) through the same code.
TEST(TokenizerJson, ClipTokenizerJson) {
  const auto dir = tokenizer_data() / "clip";
  Tokenizer tok = Tokenizer::load(dir);
  tok.set_warn_on_truncation(false);
  const nlohmann::json ref = load_reference(dir / "cases.json");
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    SCOPED_TRACE(text);
    EXPECT_EQ(tok.encode(text), int_list(c["ids_unpadded"]));
    for (int L : {16, 77}) {
      const auto& want = c["max_length_" + std::to_string(L)];
      const auto enc = tok.encode(text, L, true);
      EXPECT_EQ(enc.ids, int_list(want["input_ids"]));
      EXPECT_EQ(enc.mask, int_list(want["attention_mask"]));
    }
  }
}

// T5's tokenizer.json (Precompiled nmt_nfkc charsmap, WhitespaceSplit + Metaspace, a Unigram
// model, "$A </s>"): the ids transformers' T5Tokenizer and `tokenizers` give.
TEST(TokenizerJson, T5UnigramTokenizerJson) {
  const auto dir = tokenizer_data() / "t5";
  Tokenizer tok = Tokenizer::load(dir);
  tok.set_warn_on_truncation(false);
  EXPECT_EQ(tok.vocab_size(), 1100);
  EXPECT_EQ(tok.pad_id(), 0);
  const nlohmann::json ref = load_reference(dir / "cases.json");
  ASSERT_EQ(ref["cases"].size(), 40u);
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    SCOPED_TRACE(text);
    EXPECT_EQ(tok.encode(text), int_list(c["ids_unpadded"]));
    for (int L : {16, 77, 256}) {
      const auto& want = c["max_length_" + std::to_string(L)];
      const auto enc = tok.encode(text, L, true);
      EXPECT_EQ(enc.ids, int_list(want["input_ids"]));
      EXPECT_EQ(enc.mask, int_list(want["attention_mask"]));
    }
  }
  // tokenizers' own encode of further strings (combining marks, odd spaces, …)
  const nlohmann::json extra = load_reference(tokenizer_data() / "extra_cases.json");
  ASSERT_GT(extra["t5"].size(), 10u);
  for (const auto& c : extra["t5"]) {
    SCOPED_TRACE(c["text"].get<std::string>());
    EXPECT_EQ(tok.encode(c["text"].get<std::string>()), int_list(c["ids_unpadded"]));
  }
}

TEST(TokenizerJson, ClipExtraCases) {
  Tokenizer tok = Tokenizer::load(tokenizer_data() / "clip");
  const nlohmann::json extra = load_reference(tokenizer_data() / "extra_cases.json");
  ASSERT_GT(extra["clip"].size(), 10u);
  for (const auto& c : extra["clip"]) {
    SCOPED_TRACE(c["text"].get<std::string>());
    EXPECT_EQ(tok.encode(c["text"].get<std::string>()), int_list(c["ids_unpadded"]));
  }
}

// Padding and truncation as the pipelines call them.
TEST(TokenizerJson, PadsAndTruncatesKeepingSpecialTokens) {
  Tokenizer tok = Tokenizer::load(tokenizer_data() / "bpe_bytelevel_llama3");
  tok.set_warn_on_truncation(false);
  const std::vector<int64_t> full = tok.encode("a photo of a cat wearing sunglasses");
  ASSERT_GT(full.size(), 6u);
  const auto cut = tok.encode("a photo of a cat wearing sunglasses", 5, true);
  EXPECT_EQ(cut.ids, std::vector<int64_t>(full.begin(), full.begin() + 5));
  const auto padded = tok.encode("a cat", 12, true);
  const std::vector<int64_t> short_ids = tok.encode("a cat");
  ASSERT_EQ(padded.ids.size(), 12u);
  for (size_t i = 0; i < 12; ++i) {
    EXPECT_EQ(padded.ids[i], i < short_ids.size() ? short_ids[i] : tok.pad_id());
    EXPECT_EQ(padded.mask[i], i < short_ids.size() ? 1 : 0);
  }
}

TEST(TokenizerJson, RegexSubset) {
  const Regex r(R"((?i:'s|'t)|\p{N}{1,3}|\s+(?!\S)|\s+|[^\s\p{L}\p{N}]+)", "test");
  const std::u32string text = U"IT'S 12345   x!!";
  std::vector<std::u32string> got;
  for (auto [b, e] : r.find_all(text)) got.push_back(text.substr(b, e - b));
  const std::vector<std::u32string> want = {U"'S", U" ", U"123", U"45", U"  ", U" ", U"!!"};
  EXPECT_EQ(got, want);
  EXPECT_THROW(Regex("(?<=a)b", "test"), Error);
  EXPECT_THROW(Regex(R"(\p{Greek})", "test"), Error);
  EXPECT_THROW(Regex("(ab", "test"), Error);
}

TEST(TokenizerJson, UnsupportedComponentsNameTheFile) {
  nlohmann::json tj = {{"model", {{"type", "WordPiece"}, {"vocab", nlohmann::json::object()}}}};
  try {
    Tokenizer::from_json(tj, "x/tokenizer.json");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x/tokenizer.json: model type 'WordPiece'"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace paradit
