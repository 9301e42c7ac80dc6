// `paradit generate` with every parallel flag under mpirun, against the single-process run of
// the same command: the shipped shapes-pixart model, 4 steps. The reference is the one-process
// command line (whose pipeline test_pipelines checks against diffusers' fixtures); each layout
// must write the same PNG (8-bit pixels within 1) and the same latents (1e-5 relative).
#include <cstdio>
#include <filesystem>
#include <string>

#include "support/cli_process.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using testing::env;
using testing::latent_rel_diff;
using testing::mpirun;
using testing::png_diff;
using testing::Proc;
using testing::run_command;
using testing::run_np;

const fs::path kDir = fs::path(PARADIT_TEST_BINARY_DIR) / "distributed_generate";
const std::string kPromptA = "a small red circle on the left on a blue background";
const std::string kPromptB = "a big green square at the top on a yellow background";

// The generate command line (without environment or launcher) for one or two prompts.
std::string generate_cmd(int prompts, const fs::path& output, const std::string& extra) {
  std::string cmd = std::string(PARADIT_BINARY) +
                    " generate --num_inference_steps 4 --seed 7 --prompt '" + kPromptA + "'";
  if (prompts == 2) cmd += " --prompt '" + kPromptB + "'";
  return cmd + " --output '" + output.string() + "' " + extra;
}

class DistributedGenerate : public ::testing::Test {
 protected:
  // The single-process references, made once: one and two prompts, PNG and latents.
  static void SetUpTestSuite() {
    if (mpirun().empty() || comm::launched_by_mpi()) return;
    fs::remove_all(kDir);
    fs::create_directories(kDir);
    for (int prompts : {1, 2}) {
      const std::string tag = "ref" + std::to_string(prompts);
      const Proc a = run_command(env() + generate_cmd(prompts, kDir / (tag + ".png"), ""));
      ASSERT_EQ(a.status, 0) << a.output;
      const Proc b = run_command(
          env() + generate_cmd(prompts, kDir / (tag + ".safetensors"), "--output_type latent"));
      ASSERT_EQ(b.status, 0) << b.output;
    }
  }

  // Runs `flags` at `np` ranks for PNG and latent output and compares with the references.
  // latent_tol: the relative L2 bound of the latents.
  static void expect_same(int np, int prompts, const std::string& flags, const std::string& tag,
                          double latent_tol = 1e-5) {
    const Proc png = run_np(np, generate_cmd(prompts, kDir / (tag + ".png"), flags));
    ASSERT_EQ(png.status, 0) << png.output;
    const std::string ref = "ref" + std::to_string(prompts);
    if (prompts == 1) {
      EXPECT_LE(png_diff(kDir / (tag + ".png"), kDir / (ref + ".png")), 1) << flags;
    } else {
      for (int i = 0; i < prompts; ++i) {
        const std::string suffix = "_" + std::to_string(i) + ".png";
        EXPECT_LE(png_diff(kDir / (tag + suffix), kDir / (ref + suffix)), 1) << flags;
      }
    }
    // Only writing ranks print the final line: one per image-writing group.
    EXPECT_EQ(testing::wrote_lines(png.output),
              flags.find("--data_parallel_degree 2") != std::string::npos ? 2u : 1u)
        << png.output;

    const Proc lat = run_np(
        np, generate_cmd(prompts, kDir / (tag + ".safetensors"), flags + " --output_type latent"));
    ASSERT_EQ(lat.status, 0) << lat.output;
    std::printf("%s: latents relative L2 difference %.2e\n", flags.c_str(),
                latent_rel_diff(kDir / (tag + ".safetensors"), kDir / (ref + ".safetensors")));
    EXPECT_LE(latent_rel_diff(kDir / (tag + ".safetensors"), kDir / (ref + ".safetensors")),
              latent_tol)
        << flags;
  }
};

TEST_F(DistributedGenerate, UlyssesNp2) {
  SKIP_UNLESS_LAUNCHER();
  expect_same(2, 1, "--ulysses_degree 2", "ulysses");
}

TEST_F(DistributedGenerate, RingNp2) {
  SKIP_UNLESS_LAUNCHER();
  // Ring attention sums each query's keys in two blocks instead of one: the transformer output
  // differs from one process by f32 rounding only (1.5e-7 relative, `paradit forward`), but
  // this pipeline magnifies any such rounding ~100×: DPM-Solver's first step takes
  // x0 = (x − σ·ε)/α at t = 999, where α ≈ 0.006, and guidance 4.5 scales ε's difference
  // further. Measured 1.1e-5 to 1.9e-5 after 1 to 4 steps, so the bound is 5e-5 here; the
  // Flux/SD3/DiT ring layouts (test_distributed_generate_families) hold 1e-5, and so does this
  // pipeline at its default 20 steps (RingAtDefaultStepsWithin1e5).
  expect_same(2, 1, "--ring_degree 2", "ring", 5e-5);
}

// Ring at the pipeline's default 20 steps, where the rounding is not magnified as much: the
// issue's 1e-5 bound on the latents (measured 1.8e-6 at ring 2, 3.8e-6 at ring 4).
TEST_F(DistributedGenerate, RingAtDefaultStepsWithin1e5) {
  SKIP_UNLESS_LAUNCHER();
  const std::string base = std::string(PARADIT_BINARY) + " generate --seed 7 --prompt '" +
                           kPromptA + "' --output_type latent --output ";
  const fs::path ref = kDir / "ref20.safetensors";
  const Proc a = run_command(env() + base + "'" + ref.string() + "'");
  ASSERT_EQ(a.status, 0) << a.output;
  for (int np : {2, 4}) {
    const fs::path out = kDir / ("ring20_" + std::to_string(np) + ".safetensors");
    const Proc b = run_np(np, base + "'" + out.string() + "' --ring_degree " + std::to_string(np));
    ASSERT_EQ(b.status, 0) << b.output;
    const double rel = latent_rel_diff(out, ref);
    std::printf("--ring_degree %d, 20 steps: latents relative L2 difference %.2e\n", np, rel);
    EXPECT_LE(rel, 1e-5) << "ring " << np;
  }
}

TEST_F(DistributedGenerate, CfgParallelNp2) {
  SKIP_UNLESS_LAUNCHER();
  expect_same(2, 1, "--use_cfg_parallel", "cfg");
}

TEST_F(DistributedGenerate, ParallelVaeNp2) {
  SKIP_UNLESS_LAUNCHER();
  // Two ranks share the image (ulysses 2): the VAE decode is row-split across them.
  expect_same(2, 1, "--ulysses_degree 2 --use_parallel_vae", "vae");
}

TEST_F(DistributedGenerate, UlyssesCfgNp4) {
  SKIP_UNLESS_LAUNCHER();
  expect_same(4, 1, "--ulysses_degree 2 --use_cfg_parallel --use_parallel_vae", "ulysses_cfg");
}

TEST_F(DistributedGenerate, DataParallelTwoPromptsNp2) {
  SKIP_UNLESS_LAUNCHER();
  expect_same(2, 2, "--data_parallel_degree 2", "dp");
}

TEST_F(DistributedGenerate, DataParallelIndivisiblePromptsExit2) {
  SKIP_UNLESS_LAUNCHER();
  const Proc r = run_np(2, generate_cmd(1, kDir / "bad.png", "--data_parallel_degree 2"));
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("paradit: error: --data_parallel_degree 2: the 1 prompt(s) do not "
                          "divide into 2 equal groups"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(kDir / "bad.png"));
}

TEST(DistributedGenerateHelp, DocumentsParallelFlags) {
  const Proc r = run_command(std::string(PARADIT_BINARY) + " generate --help");
  EXPECT_EQ(r.status, 0) << r.output;
  for (const char* flag : {"--ulysses_degree", "--ring_degree", "--use_cfg_parallel",
                           "--data_parallel_degree", "--use_parallel_vae", "divide by N"}) {
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag << "\n" << r.output;
  }
}

}  // namespace
}  // namespace paradit
