#pragma once
// Shared helpers of the tokenizer tests: the reference files under tests/data/tokenizer.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace paradit::test {

inline std::filesystem::path tokenizer_data() {
  return std::filesystem::path(PARADIT_TEST_DATA) / "tokenizer";
}

inline nlohmann::json load_reference(const std::filesystem::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return nlohmann::json::parse(in);
}

inline std::vector<int64_t> int_list(const nlohmann::json& j) {
  return j.get<std::vector<int64_t>>();
}

// A fresh, empty folder under the test binary directory.
inline std::filesystem::path scratch_dir(const std::string& name) {
  const auto dir = std::filesystem::path(PARADIT_TEST_BINARY_DIR) / "tokenizers_scratch" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

}  // namespace paradit::test
