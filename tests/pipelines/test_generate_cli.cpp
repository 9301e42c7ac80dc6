// `paradit generate` as the real binary (PARADIT_BINARY): PNG and latent outputs, one file per
// prompt, seeds, the exact path through --prompt_embeds / --latents files, and bad input (exit
// code 2, one line on stderr, no file left behind).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io/diffusers.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "helpers.h"

namespace paradit::pipelines {
namespace {

using namespace paradit::pipelines::testing;

struct CliRun {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

size_t count_lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

class GenerateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("paradit_generate_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  CliRun generate(const std::vector<std::string>& args) const {
    std::string cmd = std::string(PARADIT_BINARY) + " generate";
    for (const auto& a : args) cmd += " " + quote(a);
    cmd += " > " + (dir_ / "stdout.txt").string() + " 2> " + (dir_ / "stderr.txt").string();
    const int status = std::system(cmd.c_str());
    CliRun r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(dir_ / "stdout.txt");
    r.err = slurp(dir_ / "stderr.txt");
    return r;
  }

  // Only the files a test made (stdout/stderr captures aside).
  std::vector<std::string> outputs() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string n = e.path().filename().string();
      if (n != "stdout.txt" && n != "stderr.txt") names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  // Bad input: exit code 2, exactly one line on stderr naming `needle`, no output file.
  void expect_rejected(const std::vector<std::string>& args, const std::string& needle) {
    const CliRun r = generate(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_TRUE(outputs().empty()) << "left: " << (outputs().empty() ? "" : outputs()[0]);
  }

  fs::path dir_;
};

const char* kCaption = "a large green triangle at the top on a white background";

TEST_F(GenerateCli, DefaultModelWritesPngAndSeedsAreReproducible) {
  const fs::path a = dir_ / "a.png", b = dir_ / "b.png", c = dir_ / "c.png";
  // Dashed and underscored spellings of the same flags.
  const CliRun ra = generate({"--prompt", kCaption, "--num-inference-steps", "2", "--seed", "7",
                           "--output", a.string()});
  ASSERT_EQ(ra.code, 0) << ra.err;
  EXPECT_NE(ra.out.find(a.string()), std::string::npos) << ra.out;
  EXPECT_NE(ra.out.find("denoise"), std::string::npos) << ra.out;
  EXPECT_NE(ra.err.find("step 2/2"), std::string::npos) << ra.err;  // not a terminal: lines
  const io::RgbImage img = io::read_png(a);
  EXPECT_EQ(img.height, 64);
  EXPECT_EQ(img.width, 64);

  const CliRun rb = generate({"--prompt", kCaption, "--num_inference_steps", "2", "--seed", "7",
                           "--output", b.string(), "--guidance-scale", "4.5"});
  ASSERT_EQ(rb.code, 0) << rb.err;
  EXPECT_EQ(slurp(a), slurp(b)) << "same seed, same image";
  const CliRun rc = generate({"--prompt", kCaption, "--num_inference_steps", "2", "--seed", "8",
                           "--output", c.string()});
  ASSERT_EQ(rc.code, 0) << rc.err;
  EXPECT_NE(slurp(a), slurp(c)) << "another seed, another image";
}

TEST_F(GenerateCli, SeveralPromptsWriteOneFileEach) {
  const CliRun r = generate({"--prompt", kCaption, "--prompt", "a small red circle on a blue background",
                          "--num_inference_steps", "1", "--height", "32", "--width", "48",
                          "--output", (dir_ / "out.png").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(outputs(), (std::vector<std::string>{"out_0.png", "out_1.png"}));
  const io::RgbImage img = io::read_png(dir_ / "out_1.png");
  EXPECT_EQ(img.height, 32);
  EXPECT_EQ(img.width, 48);
}

TEST_F(GenerateCli, LatentOutput) {
  const fs::path out = dir_ / "lat.safetensors";
  const CliRun r = generate({"--model", shapes_model().string(), "--prompt", kCaption,
                          "--num_inference_steps", "1", "--output_type", "latent", "--output",
                          out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const io::TensorSource t = io::TensorSource::open(out);
  EXPECT_EQ(t.names(), std::vector<std::string>{"latents"});
  EXPECT_EQ(t.info("latents").shape, (core::Shape{1, 4, 16, 16}));
}

// --prompt_embeds and --latents files reproduce diffusers' recorded call exactly.
TEST_F(GenerateCli, EmbeddingAndLatentFilesMatchDiffusers) {
  const fs::path fixture = test_data("pipeline/pixart_sigma");
  const io::TensorSource c = io::TensorSource::open(fixture / "case.safetensors");
  std::vector<std::pair<std::string, core::Tensor>> embeds;
  for (const char* n : {"prompt_embeds", "prompt_attention_mask", "negative_prompt_embeds",
                        "negative_prompt_attention_mask"}) {
    embeds.emplace_back(n, c.view(n));
  }
  io::save_safetensors(dir_ / "embeds.safetensors", embeds);
  io::save_safetensors(dir_ / "latents.safetensors", {{"latents", c.view("latents_in")}});
  const fs::path out = dir_ / "final.safetensors";
  const CliRun r = generate({"--model", fixture.string(), "--prompt_embeds",
                          (dir_ / "embeds.safetensors").string(), "--latents",
                          (dir_ / "latents.safetensors").string(), "--height", "32", "--width",
                          "32", "--num_inference_steps", "3", "--guidance_scale", "4.5",
                          "--output_type", "latent", "--output", out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const io::TensorSource got = io::TensorSource::open(out);
  EXPECT_LE(rel_l2(got.load("latents"), c.load("final_latents")), 1e-4);
}

TEST_F(GenerateCli, BadInputIsOneLineAndNoFile) {
  const std::string out = (dir_ / "x.png").string();
  expect_rejected({"--prompt", kCaption, "--height", "60", "--output", out}, "--height");
  expect_rejected({"--prompt", kCaption, "--width", "0", "--output", out}, "--width");
  expect_rejected({"--prompt", kCaption, "--num_inference_steps", "0", "--output", out},
                  "--num_inference_steps");
  expect_rejected({"--prompt", kCaption, "--output", (dir_ / "missing" / "x.png").string()},
                  "does not exist");
  expect_rejected({"--prompt", kCaption, "--output", dir_.string()}, "is a directory");
  expect_rejected({"--output", out}, "--prompt");
  expect_rejected({"--prompt", kCaption, "--model", (dir_ / "nowhere").string(), "--output", out},
                  "nowhere");

  // A pipeline class paradit does not know.
  const fs::path model = fs::temp_directory_path() / ("paradit_unknown_" + std::to_string(getpid()));
  fs::create_directories(model / "unet");
  std::ofstream(model / "model_index.json")
      << R"({"_class_name": "StableDiffusionXLPipeline", "unet": ["diffusers", "UNet2DConditionModel"]})";
  expect_rejected({"--model", model.string(), "--prompt", kCaption, "--output", out},
                  "StableDiffusionXLPipeline");
  fs::remove_all(model);

  // Latents of the wrong shape.
  const fs::path lat = fs::temp_directory_path() / ("paradit_badlat_" + std::to_string(getpid()) +
                                                    ".safetensors");
  io::save_safetensors(lat, {{"latents", core::Tensor::zeros({1, 4, 8, 8})}});
  expect_rejected({"--prompt", kCaption, "--latents", lat.string(), "--output", out}, "--latents");
  fs::remove(lat);
}

}  // namespace
}  // namespace paradit::pipelines
