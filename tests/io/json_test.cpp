// io/json: the depth bound (a document nested 100 000 deep is an error, not a stack overflow),
// errors in one line without the input's raw bytes, and key_before's field naming.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "io/diffusers.h"
#include "io/json.h"

namespace paradit::io {
namespace {

std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(Json, DepthIsBounded) {
  EXPECT_NO_THROW(parse_json(nested(kMaxJsonDepth), "x.json"));
  for (int depth : {kMaxJsonDepth + 1, 100000}) {
    JsonError e;
    EXPECT_FALSE(try_parse_json(nested(depth), &e).has_value());
    EXPECT_TRUE(e.too_deep);
    EXPECT_EQ(e.byte, static_cast<size_t>(kMaxJsonDepth));  // the first bracket past the limit
    try {
      parse_json(nested(depth), "x.json");
      ADD_FAILURE() << "depth " << depth << " accepted";
    } catch (const Error& err) {
      EXPECT_EQ(std::string(err.what()), "x.json: JSON nests deeper than 128 levels");
    }
  }
  // Objects count too, and a smaller bound applies.
  JsonError e;
  EXPECT_FALSE(try_parse_json(R"({"a": {"b": {"c": 1}}})", &e, 2).has_value());
  EXPECT_TRUE(e.too_deep);
  EXPECT_TRUE(try_parse_json(R"({"a": {"b": 1}})", &e, 2).has_value());
}

TEST(Json, ErrorsNameTheByteAndNeverEchoRawBytes) {
  JsonError e;
  const std::string bad_utf8 = "{\"prompt\": \"\xff red\"}";
  EXPECT_FALSE(try_parse_json(bad_utf8, &e).has_value());
  EXPECT_FALSE(e.too_deep);
  EXPECT_EQ(e.byte, 12u);  // the 0xff byte
  for (char c : e.reason) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << e.reason;
  EXPECT_EQ(e.reason.find("json.exception"), std::string::npos) << e.reason;
  EXPECT_EQ(key_before(bad_utf8, e.byte), "prompt");

  const std::string overflow = R"({"prompt": "red", "seed": 1e400})";
  EXPECT_FALSE(try_parse_json(overflow, &e).has_value());
  EXPECT_EQ(e.byte, overflow.find("1e400"));
  EXPECT_EQ(key_before(overflow, e.byte), "seed");
}

TEST(Json, KeyBeforeFollowsNesting) {
  const std::string t = R"({"a": 1, "b": [1, {"c": "x"}, 2], "d": true})";
  EXPECT_EQ(key_before(t, t.find("1")), "a");
  EXPECT_EQ(key_before(t, t.find("\"x\"") + 1), "c");   // inside c's string value
  EXPECT_EQ(key_before(t, t.find(", 2") + 2), "b");     // back in b's array
  EXPECT_EQ(key_before(t, t.find("true")), "d");
  EXPECT_EQ(key_before("[1, 2]", 4), "");
  EXPECT_EQ(key_before("", 0), "");
}

TEST(Json, ConfigTextChecks) {
  // Config::parse: the same checks as Config::load, on text.
  EXPECT_THROW(Config::parse("[1]", "c.json"), Error);  // not an object
  EXPECT_THROW(Config::parse("{\"a\": " + nested(200) + "}", "c.json"), Error);
  const Config c = Config::parse(R"({"num_layers": 28, "x": NaN, "sizes": [1, 2]})", "c.json");
  EXPECT_EQ(c.get_int("num_layers"), 28);
  EXPECT_TRUE(std::isnan(c.get_float("x")));
  EXPECT_EQ(c.get_int_list("sizes"), (std::vector<int64_t>{1, 2}));
  // A layer count past the bound is refused by name before anything is sized by it.
  try {
    Config::parse(R"({"num_layers": 1000000000})", "c.json").get_int("num_layers");
    ADD_FAILURE() << "a billion layers accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("'num_layers' = 1000000000 is outside [0, 4096]"),
              std::string::npos)
        << err.what();
  }
}

}  // namespace
}  // namespace paradit::io
