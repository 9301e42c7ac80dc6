#pragma once
// paradit::Error: the one exception type of the engine. Its message is a single line that
// names the thing that is wrong (file, tensor, flag) with the expected and found values; the
// command line prints it and exits with code 2.

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace paradit {

class Error : public std::runtime_error {
 public:
  // Control characters (a newline in a config key, a carriage return in a request field) become
  // '?': the message stays one line whatever input it quotes.
  explicit Error(const std::string& message) : std::runtime_error(one_line(message)) {}

  static std::string one_line(std::string s) {
    for (char& c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) c = '?';
    }
    return s;
  }
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// Throws paradit::Error with the concatenation of the arguments.
template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(detail::concat(std::forward<Args>(args)...));
}

}  // namespace paradit

// PARADIT_CHECK(cond, message parts...): throws paradit::Error when cond is false.
#define PARADIT_CHECK(cond, ...)                   \
  do {                                             \
    if (!(cond)) ::paradit::fail(__VA_ARGS__);     \
  } while (0)
