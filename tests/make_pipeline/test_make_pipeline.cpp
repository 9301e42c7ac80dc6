// `paradit make-model --pipeline`, run as the real binary (PARADIT_BINARY): every arch's tiny
// pipeline generates a PNG of the requested size, is reproducible from its seed, lists every
// component in `paradit info`, and leaves nothing behind on failure.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

struct ProcessResult {
  int status = -1;
  std::string output;
};

ProcessResult run(const std::string& args) {
  const std::string cmd = std::string(PARADIT_BINARY) + " " + args + " 2>&1";
  ProcessResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  r.status = pclose(pipe);
  return r;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every file of a folder (relative path → bytes).
std::map<std::string, std::string> folder_files(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_file(e.path());
  }
  return files;
}

// The PNG's IHDR width and height (big-endian at bytes 16 and 20).
std::pair<uint32_t, uint32_t> png_size(const fs::path& path) {
  const std::string d = read_file(path);
  if (d.size() < 24 || d.compare(1, 3, "PNG") != 0) return {0, 0};
  auto be = [&d](size_t at) {
    return (uint32_t(uint8_t(d[at])) << 24) | (uint32_t(uint8_t(d[at + 1])) << 16) |
           (uint32_t(uint8_t(d[at + 2])) << 8) | uint32_t(uint8_t(d[at + 3]));
  };
  return {be(16), be(20)};
}

class MakePipeline : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    tmp_ = fs::temp_directory_path() /
           ("paradit_make_pipeline_" + std::to_string(getpid()) + "_" + GetParam());
    fs::remove_all(tmp_);
    fs::create_directories(tmp_);
  }
  void TearDown() override { fs::remove_all(tmp_); }
  fs::path tmp_;
};

// The components each pipeline class loads (diffusers' model_index.json entries).
std::vector<std::string> expected_components(const std::string& arch) {
  if (arch.rfind("pixart", 0) == 0) {
    return {"scheduler", "text_encoder", "tokenizer", "transformer", "vae"};
  }
  if (arch.rfind("sd3", 0) == 0) {
    return {"scheduler",  "text_encoder",   "text_encoder_2", "text_encoder_3", "tokenizer",
            "tokenizer_2", "tokenizer_3",   "transformer",    "vae"};
  }
  if (arch.rfind("flux", 0) == 0) {
    return {"scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2",
            "transformer", "vae"};
  }
  return {"scheduler", "transformer", "vae"};
}

TEST_P(MakePipeline, GeneratesIsReproducibleAndListsComponents) {
  const std::string arch = GetParam();
  const fs::path a = tmp_ / "a", b = tmp_ / "b";
  for (const fs::path& dir : {a, b}) {
    const ProcessResult r = run("make-model --arch " + arch + " --preset tiny --seed 7 --pipeline " +
                      dir.string());
    ASSERT_EQ(r.status, 0) << r.output;
  }
  // Same seed → byte-identical pipelines; no temporary folder left next to them.
  const auto files_a = folder_files(a);
  EXPECT_EQ(files_a, folder_files(b));
  for (const auto& e : fs::directory_iterator(tmp_)) {
    EXPECT_TRUE(e.path() == a || e.path() == b) << "left behind: " << e.path();
  }

  // model_index.json names the pipeline class and every component folder exists.
  const nlohmann::json index = nlohmann::json::parse(read_file(a / "model_index.json"));
  const std::map<std::string, std::string> classes = {
      {"pixart-sigma", "PixArtSigmaPipeline"}, {"pixart-alpha", "PixArtAlphaPipeline"},
      {"sd3", "StableDiffusion3Pipeline"},     {"sd35", "StableDiffusion3Pipeline"},
      {"flux", "FluxPipeline"},                {"flux-schnell", "FluxPipeline"},
      {"dit", "DiTPipeline"}};
  EXPECT_EQ(index.value("_class_name", ""), classes.at(arch));
  EXPECT_TRUE(index.contains("_diffusers_version"));
  for (const std::string& c : expected_components(arch)) {
    ASSERT_TRUE(index.contains(c)) << c;
    EXPECT_TRUE(fs::is_directory(a / c)) << c;
  }
  if (arch == "dit") EXPECT_TRUE(index.contains("id2label"));
  if (arch == "pixart-alpha") {
    // diffusers' PixArtAlphaPipeline gives micro-conditions to sample_size 128 only; its
    // transformer fails without them when use_additional_conditions is set.
    const nlohmann::json t = nlohmann::json::parse(read_file(a / "transformer" / "config.json"));
    EXPECT_EQ(t.value("use_additional_conditions", true), t.value("sample_size", 0) == 128);
  }
  // Text encoders' vocabularies match the tokenizers copied next to them.
  for (const auto& [name, entry] : index.items()) {
    if (name.rfind("text_encoder", 0) != 0) continue;
    const nlohmann::json cfg = nlohmann::json::parse(read_file(a / name / "config.json"));
    const std::string tok = "tokenizer" + name.substr(std::string("text_encoder").size());
    if (cfg.value("model_type", "") == "t5") {
      EXPECT_EQ(cfg.value("vocab_size", 0), 1100) << name;
      EXPECT_TRUE(fs::exists(a / tok / "spiece.model")) << tok;
    } else {
      EXPECT_EQ(cfg.value("model_type", ""), "clip_text_model") << name;
      const nlohmann::json vocab = nlohmann::json::parse(read_file(a / tok / "vocab.json"));
      EXPECT_EQ(cfg.value("vocab_size", 0), static_cast<int>(vocab.size())) << name;
    }
  }

  // `paradit info` lists every component.
  const ProcessResult info = run("info " + a.string());
  ASSERT_EQ(info.status, 0) << info.output;
  for (const std::string& c : expected_components(arch)) {
    EXPECT_NE(info.output.find("\n" + c + " "), std::string::npos) << c << "\n" << info.output;
  }

  // generate end to end, at a non-square size.
  const fs::path png = tmp_ / "out.png";
  const ProcessResult gen = run("generate --model " + a.string() +
                      " --prompt \"a cat\" --height 64 --width 48 --num_inference_steps 2 "
                      "--seed 0 --output " + png.string());
  ASSERT_EQ(gen.status, 0) << gen.output;
  const auto [w, h] = png_size(png);
  EXPECT_EQ(w, 48u);
  EXPECT_EQ(h, 64u);
}

INSTANTIATE_TEST_SUITE_P(Archs, MakePipeline,
                         ::testing::Values("pixart-sigma", "pixart-alpha", "sd3", "sd35", "flux",
                                           "flux-schnell", "dit"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(MakePipelineErrors, RefusesANonEmptyTargetAndLeavesNothing) {
  const fs::path dir =
      fs::temp_directory_path() / ("paradit_make_pipeline_busy_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "keep.txt") << "x";
  const ProcessResult r = run("make-model --arch dit --preset tiny --seed 1 --pipeline " + dir.string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("not an empty folder"), std::string::npos) << r.output;
  EXPECT_EQ(folder_files(dir).size(), 1u);
  for (const auto& e : fs::directory_iterator(dir.parent_path())) {
    EXPECT_EQ(e.path().filename().string().find(".paradit_make_pipeline_busy_"),
              std::string::npos);
  }
  fs::remove_all(dir);
}

TEST(MakePipeline, SeedsDiffer) {
  // Different seeds → different weights; the transformer of --pipeline equals plain make-model's.
  const fs::path root =
      fs::temp_directory_path() / ("paradit_make_pipeline_seeds_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  ASSERT_EQ(run("make-model --arch dit --preset tiny --seed 1 --pipeline " + (root / "p1").string())
                .status, 0);
  ASSERT_EQ(run("make-model --arch dit --preset tiny --seed 2 --pipeline " + (root / "p2").string())
                .status, 0);
  ASSERT_EQ(run("make-model --arch dit --preset tiny --seed 1 " + (root / "t1").string()).status,
            0);
  const std::string w = "diffusion_pytorch_model.safetensors";
  EXPECT_NE(read_file(root / "p1" / "vae" / w), read_file(root / "p2" / "vae" / w));
  EXPECT_NE(read_file(root / "p1" / "transformer" / w), read_file(root / "p2" / "transformer" / w));
  EXPECT_EQ(read_file(root / "p1" / "transformer" / w), read_file(root / "t1" / w));
  fs::remove_all(root);
}

// An unreadable or malformed tokenizer file: generate exits 2 with one line naming the file,
// whichever file form the tokenizer folder has.
TEST(MakePipelineErrors, BadTokenizerFileIsOneLineExit2) {
  const fs::path root =
      fs::temp_directory_path() / ("paradit_make_pipeline_badtok_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const fs::path p = root / "p";
  ASSERT_EQ(run("make-model --arch pixart-sigma --preset tiny --seed 1 --pipeline " + p.string())
                .status, 0);
  const std::string gen = "generate --model " + p.string() +
                          " --prompt \"a cat\" --height 64 --width 64 --num_inference_steps 1 "
                          "--output " + (root / "out.png").string();
  auto expect_one_line_naming = [&](const std::string& file) {
    const ProcessResult r = run(gen);
    ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
    EXPECT_EQ(WEXITSTATUS(r.status), 2) << r.output;
    EXPECT_NE(r.output.find(file), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << r.output;
    EXPECT_FALSE(fs::exists(root / "out.png"));
  };
  const fs::path tok = p / "tokenizer";
  // tokenizer.json comes first (as transformers' fast tokenizer): cut short, then not a model.
  const std::string json = read_file(tok / "tokenizer.json");
  std::ofstream(tok / "tokenizer.json", std::ios::binary) << json.substr(0, json.size() / 2);
  expect_one_line_naming("tokenizer/tokenizer.json");
  std::ofstream(tok / "tokenizer.json", std::ios::binary) << R"({"model": {"type": "BPE"}})";
  expect_one_line_naming("tokenizer/tokenizer.json");
  // Without tokenizer.json the model comes from spiece.model.
  fs::remove(tok / "tokenizer.json");
  std::ofstream(tok / "spiece.model", std::ios::binary) << "not a model";
  expect_one_line_naming("tokenizer/spiece.model");
  fs::remove(tok / "spiece.model");
  expect_one_line_naming("neither spiece.model nor tokenizer.json");
  fs::remove_all(root);
}

}  // namespace
