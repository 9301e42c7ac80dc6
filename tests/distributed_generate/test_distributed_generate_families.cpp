// `paradit generate` under mpirun for the Flux, SD3 and DiT pipelines (PixArt has its own file):
// the random tiny pipelines `paradit make-model --pipeline` writes, 64×64, 4 steps, two prompts
// (two images per run, so data parallel has a prompt per group). Each parallel layout must write
// the same PNGs as one process (8-bit samples within 1) and the same latents (1e-5 relative).
// Flux-dev folds guidance into an embedding (no uncond/cond batch), so it has no CFG layout.
// Nine layouts, each flag on at least two families: Ulysses, Ring, USP, CFG, DP, parallel VAE.
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <string>

#include "support/cli_process.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using testing::env;
using testing::mpirun;
using testing::Proc;
using testing::run_command;
using testing::run_np;

const fs::path kRoot = fs::path(PARADIT_TEST_BINARY_DIR) / "distributed_generate_families";
const char* const kArchs[] = {"flux", "sd3", "dit"};

// The generate command (without environment or launcher) on arch's pipeline; two prompts (DiT:
// two class ids).
std::string generate_cmd(const std::string& arch, const fs::path& output,
                         const std::string& extra) {
  const std::string prompts =
      arch == "dit" ? "--prompt 207 --prompt 360" : "--prompt 'a red cat' --prompt 'a blue house'";
  return std::string(PARADIT_BINARY) + " generate --model '" + (kRoot / arch).string() + "' " +
         prompts + " --height 64 --width 64 --num_inference_steps 4 --seed 11 --output '" +
         output.string() + "' " + extra;
}

class DistributedGenerateFamilies : public ::testing::Test {
 protected:
  // One random pipeline per family and its single-process PNGs and latents, made once.
  static void SetUpTestSuite() {
    if (mpirun().empty() || comm::launched_by_mpi()) return;
    fs::remove_all(kRoot);
    fs::create_directories(kRoot);
    for (const std::string arch : kArchs) {
      const Proc make =
          run_command(std::string(PARADIT_BINARY) + " make-model --arch " + arch +
                      " --preset tiny --seed 5 --pipeline '" + (kRoot / arch).string() + "'");
      ASSERT_EQ(make.status, 0) << make.output;
      const Proc png = run_command(env() + generate_cmd(arch, kRoot / (arch + "_ref.png"), ""));
      ASSERT_EQ(png.status, 0) << png.output;
      const Proc lat = run_command(
          env() + generate_cmd(arch, kRoot / (arch + "_ref.safetensors"), "--output_type latent"));
      ASSERT_EQ(lat.status, 0) << lat.output;
    }
  }

  // `flags` at np ranks, PNG and latent output, against the single-process references.
  static void expect_same(const std::string& arch, int np, const std::string& flags) {
    std::string tag = arch + "_np" + std::to_string(np);
    for (char c : flags) tag += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    const Proc png = run_np(np, generate_cmd(arch, kRoot / (tag + ".png"), flags));
    ASSERT_EQ(png.status, 0) << png.output;
    for (int i = 0; i < 2; ++i) {
      const std::string suffix = "_" + std::to_string(i) + ".png";
      EXPECT_LE(testing::png_diff(kRoot / (tag + suffix), kRoot / (arch + "_ref" + suffix)),
                1)
          << arch << " " << flags << " image " << i;
    }
    const bool dp = flags.find("--data_parallel_degree 2") != std::string::npos;
    EXPECT_EQ(testing::wrote_lines(png.output), dp ? 2u : 1u) << png.output;

    const Proc lat = run_np(
        np, generate_cmd(arch, kRoot / (tag + ".safetensors"), flags + " --output_type latent"));
    ASSERT_EQ(lat.status, 0) << lat.output;
    const double rel = testing::latent_rel_diff(kRoot / (tag + ".safetensors"),
                                                      kRoot / (arch + "_ref.safetensors"));
    std::printf("%s %s: latents relative L2 difference %.2e\n", arch.c_str(), flags.c_str(), rel);
    EXPECT_LE(rel, 1e-5) << arch << " " << flags;
  }
};

TEST_F(DistributedGenerateFamilies, FluxUlyssesNp2) {
  SKIP_UNLESS_LAUNCHER();
  expect_same("flux", 2, "--ulysses_degree 2");
}

TEST_F(DistributedGenerateFamilies, FluxDataParallelNp2) {
  SKIP_UNLESS_LAUNCHER();
  expect_same("flux", 2, "--data_parallel_degree 2");
}

TEST_F(DistributedGenerateFamilies, FluxUspParallelVaeNp4) {
  SKIP_UNLESS_LAUNCHER();
  expect_same("flux", 4, "--ulysses_degree 2 --ring_degree 2 --use_parallel_vae");
}

TEST_F(DistributedGenerateFamilies, Sd3RingNp2) {
  SKIP_UNLESS_LAUNCHER();
  expect_same("sd3", 2, "--ring_degree 2");
}

TEST_F(DistributedGenerateFamilies, Sd3CfgParallelNp2) {
  SKIP_UNLESS_LAUNCHER();
  expect_same("sd3", 2, "--use_cfg_parallel");
}

TEST_F(DistributedGenerateFamilies, Sd3UlyssesCfgParallelVaeNp4) {
  SKIP_UNLESS_LAUNCHER();
  expect_same("sd3", 4, "--ulysses_degree 2 --use_cfg_parallel --use_parallel_vae");
}

TEST_F(DistributedGenerateFamilies, DitUlyssesParallelVaeNp2) {
  SKIP_UNLESS_LAUNCHER();
  expect_same("dit", 2, "--ulysses_degree 2 --use_parallel_vae");
}

TEST_F(DistributedGenerateFamilies, DitRingCfgParallelNp4) {
  SKIP_UNLESS_LAUNCHER();
  expect_same("dit", 4, "--ring_degree 2 --use_cfg_parallel");
}

TEST_F(DistributedGenerateFamilies, DitDataParallelCfgNp4) {
  SKIP_UNLESS_LAUNCHER();
  expect_same("dit", 4, "--data_parallel_degree 2 --use_cfg_parallel --use_parallel_vae");
}

}  // namespace
}  // namespace paradit
