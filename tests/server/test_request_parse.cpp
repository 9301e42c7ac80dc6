// server::parse_request on hostile bodies (issue 23 finding 5): invalid UTF-8, a number that
// overflows a double, a body nested deeper than the API ever is. Each is a 400 BadRequest that
// names the field, in one line of printable ASCII, never a library exception.
#include <gtest/gtest.h>

#include <string>

#include "server/request.h"

namespace paradit::server {
namespace {

RequestLimits limits() {
  RequestLimits l;
  l.default_height = 64;
  l.default_width = 64;
  l.max_pixels = 1 << 20;
  return l;
}

BadRequest refusal(const std::string& body) {
  try {
    parse_request(body, Endpoint::kImages, limits(), "m");
  } catch (const BadRequest& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return BadRequest("accepted");
}

void expect_clean(const BadRequest& e) {
  EXPECT_EQ(e.status(), 400);
  for (char c : std::string(e.what())) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << e.what();
  EXPECT_EQ(std::string(e.what()).find("json.exception"), std::string::npos) << e.what();
}

TEST(RequestParse, InvalidUtf8NamesTheField) {
  const BadRequest e = refusal("{\"prompt\": \"\xff red\", \"size\": \"64x64\"}");
  expect_clean(e);
  EXPECT_EQ(e.param(), "prompt");
  EXPECT_NE(std::string(e.what()).find("'prompt'"), std::string::npos) << e.what();
}

TEST(RequestParse, OverflowingNumberNamesTheField) {
  const BadRequest e = refusal(R"({"prompt": "red", "seed": 1e400})");
  expect_clean(e);
  EXPECT_EQ(e.param(), "seed");
}

TEST(RequestParse, DeepBodyIsRefused) {
  const BadRequest e = refusal("{\"prompt\": \"red\", \"extra\": " + std::string(100000, '[') +
                               std::string(100000, ']') + "}");
  expect_clean(e);
  EXPECT_EQ(e.param(), "extra");
  EXPECT_NE(std::string(e.what()).find("deeper than"), std::string::npos) << e.what();
}

TEST(RequestParse, NegativeAndFractionalSeedsAreRefused) {
  for (const char* seed : {"-1", "1.5", "18446744073709551616", "\"7\""}) {
    const BadRequest e = refusal(std::string(R"({"prompt": "red", "seed": )") + seed + "}");
    expect_clean(e);
    EXPECT_EQ(e.param(), "seed") << seed << ": " << e.what();
  }
  // The largest seed is taken.
  const ApiRequest r = parse_request(R"({"prompt": "red", "seed": 18446744073709551615})",
                                     Endpoint::kImages, limits(), "m");
  EXPECT_EQ(r.generation.seed, 18446744073709551615ull);
}

}  // namespace
}  // namespace paradit::server
