#pragma once
// Shared helpers of the tokenizer tests: the reference files under tests/data/tokenizer.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
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

// The file sets a tokenizer folder comes in; each must tokenize identically.
enum class FileForm {
  kAll,            // the fixture folder as it is: model files, tokenizer.json and configs
  kSlowFiles,      // spiece.model / vocab.json + merges.txt with the configs, no tokenizer.json
  kTokenizerJson,  // tokenizer.json + tokenizer_config.json, as transformers 5 saves a folder
  kJsonOnly,       // tokenizer.json alone
};

inline std::string form_name(FileForm form) {
  switch (form) {
    case FileForm::kAll:
      return "All";
    case FileForm::kSlowFiles:
      return "SlowFiles";
    case FileForm::kTokenizerJson:
      return "TokenizerJson";
    case FileForm::kJsonOnly:
      return "JsonOnly";
  }
  return "?";
}

// tokenizer_data()/name ("t5", "clip") in the given form: the fixture folder itself for kAll,
// else a scratch folder with a copy of the form's files.
inline std::filesystem::path tokenizer_folder(const std::string& name, FileForm form) {
  const auto from = tokenizer_data() / name;
  if (form == FileForm::kAll) return from;
  std::vector<std::string> files;
  if (form == FileForm::kSlowFiles) {
    files = {"spiece.model", "vocab.json", "merges.txt", "tokenizer_config.json",
             "special_tokens_map.json"};
  } else if (form == FileForm::kTokenizerJson) {
    files = {"tokenizer.json", "tokenizer_config.json"};
  } else {
    files = {"tokenizer.json"};
  }
  const auto dir = scratch_dir(name + "_" + form_name(form));
  for (const std::string& f : files) {
    if (std::filesystem::exists(from / f)) std::filesystem::copy_file(from / f, dir / f);
  }
  return dir;
}

inline const auto kAllForms = ::testing::Values(FileForm::kAll, FileForm::kSlowFiles,
                                                FileForm::kTokenizerJson, FileForm::kJsonOnly);

inline std::string form_param_name(const ::testing::TestParamInfo<FileForm>& info) {
  return form_name(info.param);
}

// One reference case's `max_length_<n>` encodings, padded and unpadded, for each length: the
// padded ids/mask exactly, and without padding the same ids up to the first padded position.
template <typename Tokenizer>
void expect_length_cases(const Tokenizer& tok, const std::string& text, const nlohmann::json& c,
                         std::initializer_list<int> lengths, bool unpadded_too) {
  for (int length : lengths) {
    SCOPED_TRACE("max_length " + std::to_string(length));
    const auto& want = c.at("max_length_" + std::to_string(length));
    const auto enc = tok.encode(text, length, /*pad_to_max=*/true);
    EXPECT_EQ(enc.ids, int_list(want.at("input_ids")));
    EXPECT_EQ(enc.mask, int_list(want.at("attention_mask")));
    if (!unpadded_too) continue;
    const auto unpadded = tok.encode(text, length, /*pad_to_max=*/false);
    std::vector<int64_t> want_unpadded;
    for (size_t i = 0; i < enc.mask.size(); ++i) {
      if (int_list(want.at("attention_mask"))[i] == 1) {
        want_unpadded.push_back(int_list(want.at("input_ids"))[i]);
      }
    }
    EXPECT_EQ(unpadded.ids, want_unpadded);
    EXPECT_EQ(unpadded.mask, std::vector<int64_t>(want_unpadded.size(), 1));
  }
}

// extra_cases.json's cases under `key` ("t5", "clip"): unpadded ids and the padded lengths.
template <typename Tokenizer>
void expect_extra_cases(const Tokenizer& tok, const std::string& key,
                        std::initializer_list<int> lengths) {
  const auto ref = load_reference(tokenizer_data() / "extra_cases.json");
  ASSERT_FALSE(ref.at(key).empty());
  for (const auto& c : ref.at(key)) {
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE("text: '" + text + "'");
    EXPECT_EQ(tok.encode_unpadded(text), int_list(c.at("ids_unpadded")));
    expect_length_cases(tok, text, c, lengths, /*unpadded_too=*/false);
  }
}

}  // namespace paradit::test
