// make-model --pipeline for the LLM-conditioned families: a tiny random-weight pipeline folder
// (transformer, scheduler, VAE, decoder-LLM text encoder, byte-level tokenizer) that `paradit
// generate` runs end to end. (diffusers 0.42.1 loads and runs these folders too; checked by hand
// with the reference venv, see the report.)

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "io/diffusers.h"
#include "support/cli_process.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using testing::Proc;
using testing::run_np;

const fs::path kDir = fs::path(PARADIT_TEST_BINARY_DIR) / "make_llm_pipeline";

class MakeLLMPipeline : public ::testing::TestWithParam<std::string> {};

TEST_P(MakeLLMPipeline, TinyPipelineGenerates) {
  const std::string arch = GetParam();
  const fs::path dir = kDir / arch;
  fs::remove_all(dir);
  fs::create_directories(kDir);
  const Proc make = run_np(1, std::string(PARADIT_BINARY) + " make-model --arch " + arch +
                                  " --preset tiny --seed 3 --pipeline '" + dir.string() + "'");
  ASSERT_EQ(make.status, 0) << make.output;
  for (const char* c : {"transformer", "scheduler", "vae", "text_encoder", "tokenizer"}) {
    EXPECT_TRUE(fs::is_directory(dir / c)) << c;
  }
  const io::Json index = io::read_json(dir / "model_index.json");
  EXPECT_EQ(index.at("text_encoder").at(0), "transformers");
  const fs::path png = kDir / (arch + ".png");
  const Proc gen = run_np(1, std::string(PARADIT_BINARY) + " generate --model '" + dir.string() +
                                 "' --prompt 'a cat' --negative_prompt 'blurry' --true_cfg_scale 4"
                                 " --height 64 --width 64 --num_inference_steps 2 --output '" +
                                 png.string() + "'");
  ASSERT_EQ(gen.status, 0) << gen.output;
  EXPECT_TRUE(fs::exists(png));
  if (arch == "qwen-image") {
    // Qwen-Image's scheduler stretches sigmas to shift_terminal 0.02, which divides by zero
    // with one step (diffusers then draws NaN): refused with exit code 2 and no file.
    fs::remove(png);
    const Proc one = run_np(1, std::string(PARADIT_BINARY) + " generate --model '" +
                                   dir.string() + "' --prompt 'a cat' --height 64 --width 64"
                                   " --num_inference_steps 1 --output '" + png.string() + "'");
    EXPECT_EQ(one.status, 2) << one.output;
    EXPECT_NE(one.output.find("non-finite sigma"), std::string::npos) << one.output;
    EXPECT_FALSE(fs::exists(png));
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, MakeLLMPipeline,
                         ::testing::Values("qwen-image", "z-image", "flux2", "flux2-klein"));

}  // namespace
}  // namespace paradit
