#pragma once
// The regular expressions of Hugging Face `tokenizers` pre-tokenizers and normalizers
// (tokenizer.json's {"Regex": ...} patterns), matched as the Oniguruma engine that `tokenizers`
// uses does: leftmost-first (Perl) alternation, greedy / lazy / possessive quantifiers, and
// Unicode classes over code points.
//
// Supported syntax, the subset that GPT-2, CLIP, Llama 3, Qwen2, tekken (Mistral) and similar
// split patterns use: literals and escapes (\r \n \t \f \v \e \0 \xHH \x{H..} \uHHHH and escaped
// punctuation), `.` (any but \n), \s \S \d \D \w \W, \p{X} \P{X} \p{^X} with a General
// Category (L Lu Ll Lt Lm Lo M Mn Mc Me N Nd Nl No P.. S.. Z.. C..) or L& / Any, bracket classes
// with ranges, negation and nested escapes, groups (...), (?:...), (?i:...), (?i), (?>...),
// look-ahead (?=...) (?!...), alternation, and the quantifiers ? * + {n} {n,} {n,m} with a `?`
// (lazy) or `+` (possessive) suffix. Anything else is an Error naming the pattern and position.
// Case-insensitive matching folds one code point at a time (simple case folding).

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace paradit::models::tokenizers {

// The Unicode General_Category values, in the order of the generated table.
enum class GeneralCategory : uint8_t {
  kCn,
  kLu,
  kLl,
  kLt,
  kLm,
  kLo,
  kMn,
  kMc,
  kMe,
  kNd,
  kNl,
  kNo,
  kPc,
  kPd,
  kPs,
  kPe,
  kPi,
  kPf,
  kPo,
  kSm,
  kSc,
  kSk,
  kSo,
  kZs,
  kZl,
  kZp,
  kCc,
  kCf,
  kCs,
  kCo,
};
GeneralCategory general_category(char32_t cp);
const char* category_unicode_version();

class Regex {
 public:
  Regex() = default;
  // Compiles `pattern` (UTF-8); Error "<where>: regex '<pattern>': <problem> at offset N".
  Regex(std::string_view pattern, const std::string& where);

  // Every non-overlapping match in `text`, left to right, as [begin, end) code-point offsets
  // (after an empty match the search moves on by one code point, as Oniguruma's find_iter).
  std::vector<std::pair<size_t, size_t>> find_all(std::u32string_view text) const;
  const std::string& pattern() const { return pattern_; }
  bool defined() const { return !nodes_.empty(); }

  // One node of the compiled pattern.
  struct ClassItem {
    enum Kind : uint8_t { kRange, kCategoryMask, kSpace, kWord } kind = kRange;
    bool negated = false;  // \S, \P{..}, \W …
    char32_t lo = 0, hi = 0;
    uint32_t mask = 0;  // bit per GeneralCategory
  };
  struct Node {
    enum Kind : uint8_t { kSeq, kAlt, kClass, kRepeat, kLookahead, kAtomic } kind = kSeq;
    std::vector<int> kids;
    std::vector<ClassItem> items;  // kClass: matches when any item does (xor negated)
    bool negated = false;          // kClass: [^..]; kLookahead: (?!..)
    bool icase = false;            // kClass: compare case-folded
    int min = 0, max = 0;          // kRepeat; max -1 = unbounded
    bool lazy = false, possessive = false;
  };

 private:
  friend class Matcher;
  std::string pattern_;
  std::vector<Node> nodes_;
  int root_ = -1;
};

}  // namespace paradit::models::tokenizers
