#include "models/tokenizers/regex.h"

#include <algorithm>
#include <functional>
#include <iterator>

#include "core/error.h"
#include "models/common/text.h"

namespace paradit::models::tokenizers {

namespace {

struct CategoryRun {
  char32_t first;
  uint8_t category;
};
#include "models/tokenizers/unicode_categories.inc"

using C = GeneralCategory;
constexpr uint32_t bit(C c) { return 1u << static_cast<uint32_t>(c); }
constexpr uint32_t kLetters = bit(C::kLu) | bit(C::kLl) | bit(C::kLt) | bit(C::kLm) | bit(C::kLo);
constexpr uint32_t kMarks = bit(C::kMn) | bit(C::kMc) | bit(C::kMe);
constexpr uint32_t kNumbers = bit(C::kNd) | bit(C::kNl) | bit(C::kNo);
constexpr uint32_t kPunct =
    bit(C::kPc) | bit(C::kPd) | bit(C::kPs) | bit(C::kPe) | bit(C::kPi) | bit(C::kPf) | bit(C::kPo);
constexpr uint32_t kSymbols = bit(C::kSm) | bit(C::kSc) | bit(C::kSk) | bit(C::kSo);
constexpr uint32_t kSeparators = bit(C::kZs) | bit(C::kZl) | bit(C::kZp);
constexpr uint32_t kOther = bit(C::kCc) | bit(C::kCf) | bit(C::kCs) | bit(C::kCo) | bit(C::kCn);

// \p{Name} → category mask; 0 when unknown.
uint32_t category_mask(std::string_view name) {
  static const std::pair<std::string_view, uint32_t> kNames[] = {
      {"L", kLetters},
      {"Letter", kLetters},
      {"L&", bit(C::kLu) | bit(C::kLl) | bit(C::kLt)},
      {"M", kMarks},
      {"Mark", kMarks},
      {"N", kNumbers},
      {"Number", kNumbers},
      {"P", kPunct},
      {"Punctuation", kPunct},
      {"S", kSymbols},
      {"Symbol", kSymbols},
      {"Z", kSeparators},
      {"Separator", kSeparators},
      {"C", kOther},
      {"Other", kOther},
      {"Any", ~0u},
  };
  for (const auto& [n, m] : kNames) {
    if (n == name) return m;
  }
  static const char* kShort[] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd",
                                 "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm",
                                 "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"};
  for (uint32_t i = 0; i < std::size(kShort); ++i) {
    if (name == kShort[i]) return 1u << i;
  }
  return 0;
}

// Simple case folding of one code point (Oniguruma folds ſ to s and the Kelvin sign to k).
char32_t fold(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp == 0x17F) return U's';
  const std::u32string lower = common::to_lower(std::u32string_view(&cp, 1));
  return lower.size() == 1 ? lower[0] : cp;
}

bool is_word(char32_t cp) {
  return ((kLetters | kMarks | bit(C::kNd) | bit(C::kPc)) & bit(general_category(cp))) != 0;
}

bool item_matches(const Regex::ClassItem& item, char32_t cp) {
  bool m = false;
  switch (item.kind) {
    case Regex::ClassItem::kRange:
      m = cp >= item.lo && cp <= item.hi;
      break;
    case Regex::ClassItem::kCategoryMask:
      m = (item.mask & bit(general_category(cp))) != 0;
      break;
    case Regex::ClassItem::kSpace:
      m = common::is_whitespace(cp);
      break;
    case Regex::ClassItem::kWord:
      m = is_word(cp);
      break;
  }
  return m != item.negated;
}

bool class_matches(const Regex::Node& n, char32_t cp) {
  bool m = false;
  for (const auto& item : n.items) {
    m = item_matches(item, cp);
    if (!m && n.icase && item.kind == Regex::ClassItem::kRange && !item.negated) {
      const char32_t f = fold(cp);
      m = (f >= item.lo && f <= item.hi) || (item.lo == item.hi && fold(item.lo) == f);
    }
    if (m) break;
  }
  return m != n.negated;
}

// ---------------------------------------------------------------- parser
class Parser {
 public:
  Parser(std::u32string_view p, const std::string& pattern, const std::string& where,
         std::vector<Regex::Node>& nodes)
      : p_(p), pattern_(pattern), where_(where), nodes_(nodes) {}

  int parse() {
    const int root = alternation(false);
    if (i_ != p_.size()) fail("unbalanced ')'");
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(detail::concat(where_, ": regex '", pattern_, "': ", what, " at offset ", i_));
  }
  bool more() const { return i_ < p_.size(); }
  char32_t peek() const { return p_[i_]; }

  int add(Regex::Node n) {
    nodes_.push_back(std::move(n));
    return static_cast<int>(nodes_.size()) - 1;
  }

  int alternation(bool icase) {
    std::vector<int> alts{sequence(icase)};
    while (more() && peek() == U'|') {
      ++i_;
      alts.push_back(sequence(icase));
    }
    if (alts.size() == 1) return alts[0];
    Regex::Node n;
    n.kind = Regex::Node::kAlt;
    n.kids = std::move(alts);
    return add(std::move(n));
  }

  int sequence(bool icase) {
    Regex::Node seq;
    seq.kind = Regex::Node::kSeq;
    while (more() && peek() != U'|' && peek() != U')') {
      // (?i) switches case folding on for the rest of the enclosing group.
      if (p_.substr(i_, 4) == U"(?i)") {
        i_ += 4;
        icase = true;
        continue;
      }
      int atom_node = atom(icase);
      atom_node = quantified(atom_node);
      seq.kids.push_back(atom_node);
    }
    return add(std::move(seq));
  }

  int quantified(int atom_node) {
    while (more()) {
      int mn = 0, mx = -1;
      const char32_t c = peek();
      if (c == U'?') {
        mx = 1;
        ++i_;
      } else if (c == U'*') {
        ++i_;
      } else if (c == U'+') {
        mn = 1;
        ++i_;
      } else if (c == U'{' && brace_quantifier(mn, mx)) {
        // parsed
      } else {
        break;
      }
      Regex::Node r;
      r.kind = Regex::Node::kRepeat;
      r.kids = {atom_node};
      r.min = mn;
      r.max = mx;
      if (more() && peek() == U'?') {
        r.lazy = true;
        ++i_;
      } else if (more() && peek() == U'+') {
        r.possessive = true;
        ++i_;
      }
      atom_node = add(std::move(r));
    }
    return atom_node;
  }

  // {n} {n,} {n,m}; false (and nothing consumed) when the brace is a literal.
  bool brace_quantifier(int& mn, int& mx) {
    size_t j = i_ + 1;
    auto number = [&](int& out) {
      const size_t start = j;
      out = 0;
      while (j < p_.size() && p_[j] >= U'0' && p_[j] <= U'9') out = out * 10 + (p_[j++] - U'0');
      return j > start;
    };
    int a = 0, b = -1;
    if (!number(a)) return false;
    if (j < p_.size() && p_[j] == U',') {
      ++j;
      if (!number(b)) b = -1;
    } else {
      b = a;
    }
    if (j >= p_.size() || p_[j] != U'}') return false;
    if (b != -1 && b < a) fail("quantifier {n,m} with m < n");
    i_ = j + 1;
    mn = a;
    mx = b;
    return true;
  }

  int class_node(std::vector<Regex::ClassItem> items, bool negated, bool icase) {
    Regex::Node n;
    n.kind = Regex::Node::kClass;
    n.items = std::move(items);
    n.negated = negated;
    n.icase = icase;
    return add(std::move(n));
  }

  int atom(bool icase) {
    const char32_t c = p_[i_];
    if (c == U'(') return group(icase);
    if (c == U'[') return bracket(icase);
    if (c == U'.') {
      ++i_;
      return class_node({{Regex::ClassItem::kRange, false, U'\n', U'\n', 0}}, true, false);
    }
    if (c == U'^' || c == U'$') fail("anchors are not supported");
    if (c == U'*' || c == U'+' || c == U'?') fail("quantifier without an operand");
    if (c == U'\\') {
      ++i_;
      Regex::ClassItem item;
      escape(item, /*in_class=*/false);
      return class_node({item}, false, icase);
    }
    ++i_;
    return class_node({{Regex::ClassItem::kRange, false, c, c, 0}}, false, icase);
  }

  int group(bool icase) {
    ++i_;  // (
    Regex::Node wrapper;
    bool wrap = false;
    bool inner_icase = icase;
    if (more() && peek() == U'?') {
      ++i_;
      if (!more()) fail("unterminated group");
      const char32_t k = p_[i_++];
      if (k == U':') {
      } else if (k == U'=' || k == U'!') {
        wrapper.kind = Regex::Node::kLookahead;
        wrapper.negated = k == U'!';
        wrap = true;
      } else if (k == U'>') {
        wrapper.kind = Regex::Node::kAtomic;
        wrap = true;
      } else if (k == U'i' && more() && peek() == U':') {
        ++i_;
        inner_icase = true;
      } else {
        --i_;
        fail("unsupported group syntax");
      }
    }
    const int inner = alternation(inner_icase);
    if (!more() || peek() != U')') fail("missing ')'");
    ++i_;
    if (!wrap) return inner;
    wrapper.kids = {inner};
    return add(std::move(wrapper));
  }

  int bracket(bool icase) {
    ++i_;  // [
    bool negated = false;
    if (more() && peek() == U'^') {
      negated = true;
      ++i_;
    }
    std::vector<Regex::ClassItem> items;
    bool first = true;
    while (true) {
      if (!more()) fail("missing ']'");
      char32_t c = peek();
      if (c == U']' && !first) {
        ++i_;
        break;
      }
      first = false;
      if (c == U'[') fail("nested bracket classes are not supported");
      Regex::ClassItem item;
      if (c == U'\\') {
        ++i_;
        escape(item, /*in_class=*/true);
      } else {
        ++i_;
        item = {Regex::ClassItem::kRange, false, c, c, 0};
      }
      // a range a-z (a literal '-' at the end or after a class escape stays literal)
      if (item.kind == Regex::ClassItem::kRange && item.lo == item.hi && i_ + 1 < p_.size() &&
          p_[i_] == U'-' && p_[i_ + 1] != U']') {
        ++i_;
        Regex::ClassItem hi;
        if (p_[i_] == U'\\') {
          ++i_;
          escape(hi, true);
        } else {
          hi = {Regex::ClassItem::kRange, false, p_[i_], p_[i_], 0};
          ++i_;
        }
        if (hi.kind != Regex::ClassItem::kRange || hi.lo != hi.hi || hi.lo < item.lo) {
          fail("bad character range");
        }
        item.hi = hi.lo;
      }
      items.push_back(item);
    }
    return class_node(std::move(items), negated, icase);
  }

  char32_t hex(size_t digits_min, size_t digits_max) {
    char32_t v = 0;
    size_t n = 0;
    while (n < digits_max && more()) {
      const char32_t c = peek();
      int d = -1;
      if (c >= U'0' && c <= U'9') d = static_cast<int>(c - U'0');
      if (c >= U'a' && c <= U'f') d = static_cast<int>(c - U'a' + 10);
      if (c >= U'A' && c <= U'F') d = static_cast<int>(c - U'A' + 10);
      if (d < 0) break;
      v = v * 16 + static_cast<char32_t>(d);
      ++i_;
      ++n;
    }
    if (n < digits_min) fail("bad hexadecimal escape");
    return v;
  }

  // After a backslash: fills `item`.
  void escape(Regex::ClassItem& item, bool in_class) {
    if (!more()) fail("trailing backslash");
    const char32_t c = p_[i_++];
    auto literal = [&](char32_t cp) { item = {Regex::ClassItem::kRange, false, cp, cp, 0}; };
    switch (c) {
      case U'r':
        return literal(U'\r');
      case U'n':
        return literal(U'\n');
      case U't':
        return literal(U'\t');
      case U'f':
        return literal(U'\f');
      case U'v':
        return literal(U'\v');
      case U'e':
        return literal(0x1B);
      case U'a':
        return literal(0x07);
      case U'0':
        return literal(0);
      case U's':
        item = {Regex::ClassItem::kSpace, false, 0, 0, 0};
        return;
      case U'S':
        item = {Regex::ClassItem::kSpace, true, 0, 0, 0};
        return;
      case U'd':
        item = {Regex::ClassItem::kCategoryMask, false, 0, 0, bit(C::kNd)};
        return;
      case U'D':
        item = {Regex::ClassItem::kCategoryMask, true, 0, 0, bit(C::kNd)};
        return;
      case U'w':
        item = {Regex::ClassItem::kWord, false, 0, 0, 0};
        return;
      case U'W':
        item = {Regex::ClassItem::kWord, true, 0, 0, 0};
        return;
      case U'x':
        if (more() && peek() == U'{') {
          ++i_;
          const char32_t v = hex(1, 8);
          if (!more() || peek() != U'}') fail("bad \\x{...} escape");
          ++i_;
          return literal(v);
        }
        return literal(hex(1, 2));
      case U'u':
        return literal(hex(4, 4));
      case U'p':
      case U'P': {
        if (!more() || peek() != U'{') fail("expected '{' after \\p");
        ++i_;
        bool neg = c == U'P';
        if (more() && peek() == U'^') {
          neg = !neg;
          ++i_;
        }
        std::string name;
        while (more() && peek() != U'}') common::append_utf8(p_[i_++], name);
        if (!more()) fail("missing '}' after \\p{");
        ++i_;
        const uint32_t mask = category_mask(name);
        if (mask == 0) fail("unsupported property \\p{" + name + "}");
        item = {Regex::ClassItem::kCategoryMask, neg, 0, 0, mask};
        return;
      }
      default:
        break;
    }
    if ((c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z') || (c >= U'1' && c <= U'9')) {
      --i_;
      fail("unsupported escape");
    }
    (void)in_class;
    literal(c);  // escaped punctuation
  }

  std::u32string_view p_;
  const std::string& pattern_;
  const std::string& where_;
  std::vector<Regex::Node>& nodes_;
  size_t i_ = 0;
};

}  // namespace

GeneralCategory general_category(char32_t cp) {
  const CategoryRun* end = kCategoryRuns + std::size(kCategoryRuns);
  // The last run starting at or before cp.
  const CategoryRun* it = std::upper_bound(
      kCategoryRuns, end, cp, [](char32_t c, const CategoryRun& r) { return c < r.first; });
  if (it == kCategoryRuns) return GeneralCategory::kCn;
  return static_cast<GeneralCategory>(std::prev(it)->category);
}

const char* category_unicode_version() { return kCategoryUnicodeVersion; }

// ---------------------------------------------------------------- matcher
// Backtracking over the node tree with continuations: k(end) is "the rest of the pattern
// matches from end".
class Matcher {
 public:
  using Cont = std::function<bool(size_t)>;
  Matcher(const std::vector<Regex::Node>& nodes, std::u32string_view text)
      : nodes_(nodes), t_(text) {}

  bool match(int id, size_t i, const Cont& k) const {
    const Regex::Node& n = nodes_[static_cast<size_t>(id)];
    switch (n.kind) {
      case Regex::Node::kClass:
        return i < t_.size() && class_matches(n, t_[i]) && k(i + 1);
      case Regex::Node::kSeq:
        return seq(n, 0, i, k);
      case Regex::Node::kAlt:
        for (int kid : n.kids) {
          if (match(kid, i, k)) return true;
        }
        return false;
      case Regex::Node::kLookahead: {
        const bool found = match(n.kids[0], i, [](size_t) { return true; });
        return found != n.negated && k(i);
      }
      case Regex::Node::kAtomic: {
        size_t end = 0;
        if (!match(n.kids[0], i, [&](size_t j) {
              end = j;
              return true;
            })) {
          return false;
        }
        return k(end);
      }
      case Regex::Node::kRepeat:
        return repeat(n, i, k);
    }
    return false;
  }

 private:
  bool seq(const Regex::Node& n, size_t idx, size_t i, const Cont& k) const {
    if (idx == n.kids.size()) return k(i);
    return match(n.kids[idx], i, [&](size_t j) { return seq(n, idx + 1, j, k); });
  }

  bool repeat(const Regex::Node& n, size_t i, const Cont& k) const {
    const Regex::Node& child = nodes_[static_cast<size_t>(n.kids[0])];
    const size_t max = n.max < 0 ? SIZE_MAX : static_cast<size_t>(n.max);
    const size_t min = static_cast<size_t>(n.min);
    if (child.kind == Regex::Node::kClass) {
      // One code point per iteration: count the run, then back off without recursion.
      size_t run = 0;
      while (run < max && i + run < t_.size() && class_matches(child, t_[i + run])) ++run;
      if (run < min) return false;
      if (n.possessive) return k(i + run);
      if (n.lazy) {
        for (size_t c = min; c <= run; ++c) {
          if (k(i + c)) return true;
        }
        return false;
      }
      for (size_t c = run + 1; c-- > min;) {
        if (k(i + c)) return true;
      }
      return false;
    }
    if (n.possessive) {
      size_t pos = i, count = 0;
      while (count < max) {
        size_t end = pos;
        const bool ok = match(n.kids[0], pos, [&](size_t j) {
          end = j;
          return true;
        });
        if (!ok || end == pos) break;
        pos = end;
        ++count;
      }
      return count >= min && k(pos);
    }
    return general_repeat(n, 0, min, max, i, k);
  }

  bool general_repeat(const Regex::Node& n, size_t count, size_t min, size_t max, size_t i,
                      const Cont& k) const {
    auto more = [&]() {
      return count < max && match(n.kids[0], i, [&](size_t j) {
               if (j == i && count >= min) return false;  // an empty iteration ends the loop
               return general_repeat(n, count + 1, min, max, j, k);
             });
    };
    if (n.lazy) return (count >= min && k(i)) || more();
    return more() || (count >= min && k(i));
  }

  const std::vector<Regex::Node>& nodes_;
  std::u32string_view t_;
};

Regex::Regex(std::string_view pattern, const std::string& where) : pattern_(pattern) {
  const std::u32string p = common::utf8_to_u32(pattern);
  Parser parser(p, pattern_, where, nodes_);
  root_ = parser.parse();
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::u32string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  const Matcher m(nodes_, text);
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t begin = pos, end = 0;
    bool found = false;
    for (; begin <= text.size(); ++begin) {
      if (m.match(root_, begin, [&](size_t j) {
            end = j;
            return true;
          })) {
        found = true;
        break;
      }
    }
    if (!found) break;
    out.emplace_back(begin, end);
    pos = end > begin ? end : begin + 1;
  }
  return out;
}

}  // namespace paradit::models::tokenizers
