// The shared text utilities: UTF-8, character classes, lowercase and NFC against Python's
// unicodedata (nfc_cases.json) and hand-checked values.

#include "models/common/text.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizers/cases.h"

namespace paradit::models::common {
namespace {

TEST(Text, Utf8RoundTrip) {
  const std::string s = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";  // a é 中 😀
  const std::u32string cps = utf8_to_u32(s);
  EXPECT_EQ(cps, (std::u32string{U'a', 0xE9, 0x4E2D, 0x1F600}));
  EXPECT_EQ(u32_to_utf8(cps), s);
}

TEST(Text, Utf8InvalidBytesBecomeReplacement) {
  // A lone continuation byte, a truncated sequence, an overlong '/' and a surrogate.
  EXPECT_EQ(utf8_to_u32("\x80"
                        "a"),
            (std::u32string{0xFFFD, U'a'}));
  EXPECT_EQ(utf8_to_u32("\xE4\xB8"), (std::u32string{0xFFFD, 0xFFFD}));
  EXPECT_EQ(utf8_to_u32("\xC0\xAF"), (std::u32string{0xFFFD, 0xFFFD}));
  EXPECT_EQ(utf8_to_u32("\xED\xA0\x80"), (std::u32string{0xFFFD, 0xFFFD, 0xFFFD}));
}

TEST(Text, Classes) {
  for (char32_t c : {U'a', U'Z', char32_t(0xE9), char32_t(0xDF), char32_t(0x3A3), char32_t(0x416),
                     char32_t(0x4E2D), char32_t(0x3042), char32_t(0xAC00), char32_t(0x2B0),
                     char32_t(0x1D400), char32_t(0x20000)}) {
    EXPECT_TRUE(is_letter(c)) << std::hex << static_cast<uint32_t>(c);
    EXPECT_FALSE(is_number(c)) << std::hex << static_cast<uint32_t>(c);
  }
  for (char32_t c : {U'0', U'9', char32_t(0x663), char32_t(0xBD), char32_t(0x216B), char32_t(0xB2),
                     char32_t(0x2460), char32_t(0xFF11), char32_t(0x1D7CE)}) {
    EXPECT_TRUE(is_number(c)) << std::hex << static_cast<uint32_t>(c);
    EXPECT_FALSE(is_letter(c)) << std::hex << static_cast<uint32_t>(c);
  }
  for (char32_t c : {U'_', U'-', U' ', char32_t(0x301), char32_t(0x1F600), char32_t(0x200D),
                     char32_t(0x3000), char32_t(0x10FFFF)}) {
    EXPECT_FALSE(is_letter(c)) << std::hex << static_cast<uint32_t>(c);
    EXPECT_FALSE(is_number(c)) << std::hex << static_cast<uint32_t>(c);
  }
  for (char32_t c :
       {U' ', U'\t', U'\n', U'\r', char32_t(0x0B), char32_t(0x0C), char32_t(0x85), char32_t(0xA0),
        char32_t(0x1680), char32_t(0x2000), char32_t(0x200A), char32_t(0x2028), char32_t(0x2029),
        char32_t(0x202F), char32_t(0x205F), char32_t(0x3000)}) {
    EXPECT_TRUE(is_whitespace(c)) << std::hex << static_cast<uint32_t>(c);
  }
  for (char32_t c : {U'a', char32_t(0x200B), char32_t(0x180E), char32_t(0xFEFF)}) {
    EXPECT_FALSE(is_whitespace(c)) << std::hex << static_cast<uint32_t>(c);
  }
  EXPECT_EQ(combining_class(0x301), 230);
  EXPECT_EQ(combining_class(0x323), 220);
  EXPECT_EQ(combining_class(U'a'), 0);
}

TEST(Text, Lowercase) {
  EXPECT_EQ(to_lower(U"ABC xyz"), U"abc xyz");
  EXPECT_EQ(to_lower(std::u32string{0x130}), (std::u32string{U'i', 0x307}));          // İ → i̇
  EXPECT_EQ(to_lower(std::u32string{0x3A3, 0x3A3}), (std::u32string{0x3C3, 0x3C3}));  // no ς
  EXPECT_EQ(to_lower(std::u32string{0x2126, 0x212A, 0x1C5, 0xFF21, 0xC4, 0x10400}),
            (std::u32string{0x3C9, U'k', 0x1C6, 0xFF41, 0xE4, 0x10428}));
  EXPECT_EQ(to_lower(std::u32string{0x3C3, 0x4E2D, 0x1F600}),
            (std::u32string{0x3C3, 0x4E2D, 0x1F600}));
}

TEST(Text, CollapseWhitespace) {
  EXPECT_EQ(collapse_whitespace(U"  a \t\n b\u3000\u00a0c "), U" a b c ");
}

TEST(Text, NfcMatchesUnicodedata) {
  const auto ref =
      paradit::test::load_reference(paradit::test::tokenizer_data() / "nfc_cases.json");
  ASSERT_GT(ref.at("cases").size(), 100u);
  for (const auto& c : ref.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    EXPECT_EQ(u32_to_utf8(nfc(utf8_to_u32(text))), c.at("nfc").get<std::string>())
        << "text: '" << text << "'";
  }
  EXPECT_EQ(nfc(U"e\u0301"), U"\u00e9");
  EXPECT_EQ(nfc(U"\u1100\u1161\u11a8"), U"\uac01");
  EXPECT_EQ(nfc(U"\u212b"), U"\u00c5");  // singleton decomposition
  EXPECT_EQ(nfc(U""), U"");
}

TEST(Text, SplitOnAddedTokens) {
  const std::map<std::string, int64_t> added{{"<a>", 1}, {"<ab>", 2}, {"b", 3}};
  const auto parts = split_on_added_tokens("x<ab>y<a>bz<", added);
  ASSERT_EQ(parts.size(), 6u);
  EXPECT_EQ(parts[0].text, "x");
  EXPECT_EQ(parts[0].token_id, -1);
  EXPECT_EQ(parts[1].token_id, 2);  // the longest match at a position wins
  EXPECT_EQ(parts[2].text, "y");
  EXPECT_EQ(parts[3].token_id, 1);
  EXPECT_EQ(parts[4].token_id, 3);
  EXPECT_EQ(parts[5].text, "z<");
  EXPECT_TRUE(split_on_added_tokens("", added).empty());
}

TEST(Text, FinishEncoding) {
  std::vector<int64_t> cut;
  const Encoding e = finish_encoding({9}, {1, 2, 3, 4}, {8}, 5, true, 0, "test", &cut);
  EXPECT_EQ(e.ids, (std::vector<int64_t>{9, 1, 2, 3, 8}));
  EXPECT_EQ(e.mask, (std::vector<int64_t>{1, 1, 1, 1, 1}));
  EXPECT_EQ(cut, (std::vector<int64_t>{4}));
  const Encoding p = finish_encoding({9}, {1}, {8}, 5, true, 7, "test", &cut);
  EXPECT_EQ(p.ids, (std::vector<int64_t>{9, 1, 8, 7, 7}));
  EXPECT_EQ(p.mask, (std::vector<int64_t>{1, 1, 1, 0, 0}));
  EXPECT_TRUE(cut.empty());
  EXPECT_THROW(finish_encoding({9}, {1}, {8}, 1, false, 0, "test", nullptr), Error);
  // Left truncation keeps the last content ids; left padding puts the pads first.
  const Encoding l =
      finish_encoding({9}, {1, 2, 3, 4}, {8}, 4, true, 0, "test", &cut, Side::kRight, Side::kLeft);
  EXPECT_EQ(l.ids, (std::vector<int64_t>{9, 3, 4, 8}));
  EXPECT_EQ(cut, (std::vector<int64_t>{1, 2}));
  const Encoding q = finish_encoding({9}, {1}, {8}, 5, true, 7, "test", &cut, Side::kLeft);
  EXPECT_EQ(q.ids, (std::vector<int64_t>{7, 7, 9, 1, 8}));
  EXPECT_EQ(q.mask, (std::vector<int64_t>{0, 0, 1, 1, 1}));
}

TEST(Text, ReadErrorsNameTheFile) {
  const auto dir = paradit::test::scratch_dir("text_files");
  try {
    read_json_file(dir / "nope.json", "thing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.json"), std::string::npos) << e.what();
  }
  paradit::test::write_file(dir / "bad.json", "{\n\"a\":");
  try {
    read_json_file(dir / "bad.json", "thing");
    FAIL();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("bad.json"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace paradit::models::common
