#include "io/json.h"

#include <algorithm>

#include "core/error.h"

namespace paradit::io {

nlohmann::json parse_json(std::string_view text, const std::string& where, int max_depth) {
  using Json = nlohmann::json;
  // The parser itself keeps its own stack; the callback stops a deep document before anything
  // recursive (our walks, a printer) sees it.
  auto depth_guard = [&](int depth, Json::parse_event_t event, Json&) {
    if ((event == Json::parse_event_t::object_start ||
         event == Json::parse_event_t::array_start) &&
        depth >= max_depth) {
      fail(where, ": JSON nests deeper than ", max_depth, " levels");
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), depth_guard, /*allow_exceptions=*/true);
  } catch (const Json::exception& e) {
    std::string what = e.what();
    if (const auto p = what.find("] "); what.rfind("[json.exception", 0) == 0 && p != what.npos) {
      what = what.substr(p + 2);
    }
    std::replace(what.begin(), what.end(), '\n', ' ');
    fail(where, ": malformed JSON (", what, ")");
  }
}

}  // namespace paradit::io
