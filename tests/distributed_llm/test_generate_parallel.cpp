// `paradit generate` of the LLM-conditioned pipelines (tests/data/pipeline/{flux2,flux2_klein,
// qwen_image,z_image}) under mpirun against the single-process run of the same command: Ulysses,
// Ring, USP, CFG and data parallel, patch-parallel VAE, and PipeFusion with every step a warm-up
// step (exact), all ≤ 1e-5 relative on the final latents (and the PNG within one 8-bit level).

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "support/cli_process.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using testing::Proc;
using testing::run_np;

const fs::path kData = fs::path(PARADIT_TEST_DATA) / "pipeline";
const fs::path kDir = fs::path(PARADIT_TEST_BINARY_DIR) / "generate_llm_parallel";

std::string args(const std::string& model, int prompts = 1) {
  std::string a = std::string(PARADIT_BINARY) + " generate --model '" + (kData / model).string() +
                  "' --height 64 --width 64 --num_inference_steps 3 --seed 5"
                  " --prompt 'a photo of a cat wearing sunglasses' --negative_prompt 'blurry'";
  if (prompts == 2) a += " --prompt 'a red bicycle leaning on a wall'";
  if (model == "qwen_image") a += " --true_cfg_scale 4";
  return a;
}

// The latents of `np` processes with `flags` against one process.
void expect_same(const std::string& model, int np, const std::string& flags, int prompts = 1) {
  const fs::path dir = kDir / model;
  fs::create_directories(dir);
  const std::string tag = std::to_string(prompts);
  const fs::path ref = dir / ("ref" + tag + ".safetensors");
  if (!fs::exists(ref)) {
    const Proc a =
        run_np(1, args(model, prompts) + " --output_type latent --output '" + ref.string() + "'");
    ASSERT_EQ(a.status, 0) << a.output;
  }
  const fs::path out =
      dir / ("np" + std::to_string(np) + "_" + std::to_string(std::hash<std::string>{}(flags)) +
             "_" + tag + ".safetensors");
  const Proc b = run_np(np, args(model, prompts) + " " + flags +
                                " --output_type latent --output '" + out.string() + "'");
  ASSERT_EQ(b.status, 0) << flags << "\n" << b.output;
  EXPECT_LE(testing::latent_rel_diff(out, ref), 1e-5) << model << ": " << flags;
}

class GenerateLLMParallel : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerateLLMParallel, SequenceParallel) {
  expect_same(GetParam(), 2, "--ulysses_degree 2");
  expect_same(GetParam(), 2, "--ring_degree 2");
  expect_same(GetParam(), 4, "--ulysses_degree 2 --ring_degree 2");
}

TEST_P(GenerateLLMParallel, CfgAndDataParallel) {
  const std::string m = GetParam();
  if (m != "flux2") expect_same(m, 4, "--use_cfg_parallel --ulysses_degree 2");
  expect_same(m, 2, "--data_parallel_degree 2", 2);
}

TEST_P(GenerateLLMParallel, PipeFusionFullWarmup) {
  const std::string m = GetParam();
  if (m == "z_image") GTEST_SKIP() << "PipeFusion is not implemented for Z-Image";
  expect_same(m, 2, "--pipefusion_parallel_degree 2 --num_pipeline_patch 2 --warmup_steps 3");
}

TEST_P(GenerateLLMParallel, ParallelVaePng) {
  const std::string m = GetParam();
  const fs::path dir = kDir / m;
  fs::create_directories(dir);
  const Proc a = run_np(1, args(m) + " --output '" + (dir / "one.png").string() + "'");
  ASSERT_EQ(a.status, 0) << a.output;
  const Proc b = run_np(2, args(m) + " --use_parallel_vae --ulysses_degree 2 --output '" +
                               (dir / "two.png").string() + "'");
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_LE(testing::png_diff(dir / "one.png", dir / "two.png"), 1) << m;
}

INSTANTIATE_TEST_SUITE_P(Families, GenerateLLMParallel,
                         ::testing::Values("flux2", "flux2_klein", "qwen_image", "z_image"));

}  // namespace
}  // namespace paradit
