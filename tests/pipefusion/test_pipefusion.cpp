// PipeFusion (`--pipefusion_parallel_degree`) under mpirun, against the single-process run of the
// same `paradit generate` command (whose pipelines test_pipelines checks against diffusers):
//   - with every step a warm-up step the result must equal one process (latents ≤ 1e-5 relative,
//     8-bit pixels within 1), alone and in hybrids with Ulysses, Ring, CFG and data parallel,
//     for PixArt (the shipped shapes model), Flux, SD3 and SD3.5 (random make-model pipelines);
//   - with one warm-up step the stale K/V make the result approximate: the PSNR of the image
//     against one process must stay above a bound (see kMinPsnr);
//   - bad layouts end with one line and exit 2.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "support/cli_process.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using testing::latent_rel_diff;
using testing::mpirun;
using testing::png_diff;
using testing::png_psnr;
using testing::Proc;
using testing::run_command;
using testing::run_np;

const fs::path kDir = fs::path(PARADIT_TEST_BINARY_DIR) / "pipefusion";
const std::string kPromptA = "a small red circle on the left on a blue background";
const std::string kPromptB = "a big green square at the top on a yellow background";

// A generate command writing `out` (PNG, or latents for a .safetensors name).
std::string generate(const std::string& args, const fs::path& out) {
  std::string cmd = std::string(PARADIT_BINARY) + " generate " + args + " --output '" +
                    out.string() + "'";
  if (out.extension() == ".safetensors") cmd += " --output_type latent";
  return cmd;
}

// Runs `args` on one process and on `np` processes with `flags` and checks that they agree as
// one process's run would: the latents, and with `png` also the PNG files.
void expect_same_as_one_process(const std::string& tag, const std::string& args, int np,
                                const std::string& flags, int images = 1, bool png = false) {
  const fs::path dir = kDir / tag;
  fs::create_directories(dir);
  for (const char* ext : {".safetensors", ".png"}) {
    if (std::string(ext) == ".png" && !png) continue;
    const fs::path ref = dir / (std::string("ref") + ext);
    if (!fs::exists(ref)) {
      const Proc a = run_np(1, generate(args, ref));
      ASSERT_EQ(a.status, 0) << a.output;
    }
    const fs::path out = dir / ("np" + std::to_string(np) + "_" +
                                std::to_string(std::hash<std::string>{}(flags)) + ext);
    const Proc b = run_np(np, generate(args + " " + flags, out));
    ASSERT_EQ(b.status, 0) << flags << "\n" << b.output;
    if (std::string(ext) == ".safetensors") {  // one file holds every image's latents
      EXPECT_LE(latent_rel_diff(out, ref), 1e-5) << tag << ": " << flags;
      continue;
    }
    for (int i = 0; i < images; ++i) {  // one PNG per prompt: out_0.png, out_1.png …
      const auto nth = [&](const fs::path& p) {
        return images == 1 ? p
                           : p.parent_path() / (p.stem().string() + "_" + std::to_string(i) +
                                                p.extension().string());
      };
      EXPECT_LE(png_diff(nth(out), nth(ref)), 1) << tag << ": " << flags;
    }
  }
}

std::string shapes_args(int steps, int size) {
  return "--num_inference_steps " + std::to_string(steps) + " --seed 7 --height " +
         std::to_string(size) + " --width " + std::to_string(size) + " --prompt '" + kPromptA +
         "'";
}

class PipeFusion : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (mpirun().empty() || comm::launched_by_mpi()) return;
    fs::remove_all(kDir);
    fs::create_directories(kDir);
    // Random Flux / SD3 / SD3.5 pipelines (2 + 2 layers, 2 layers).
    for (const char* arch : {"flux", "sd3", "sd35"}) {
      const Proc r = run_command(std::string(PARADIT_BINARY) + " make-model --arch " + arch +
                                 " --preset tiny --seed 3 --pipeline '" +
                                 (kDir / arch).string() + "'");
      ASSERT_EQ(r.status, 0) << r.output;
    }
  }
};

// ---- full warm-up: exact

TEST_F(PipeFusion, FullWarmupEqualsOneProcessOnTheShapesModel) {
  SKIP_UNLESS_LAUNCHER();
  const std::string args = shapes_args(4, 64) + " --warmup_steps 4";
  for (const auto& [np, flags] : std::vector<std::pair<int, std::string>>{
           {2, "--pipefusion_parallel_degree 2"},
           {4, "--pipefusion_parallel_degree 4 --num_pipeline_patch 8"},
           {4, "--pipefusion_parallel_degree 2 --ring_degree 2"},
           {6, "--pipefusion_parallel_degree 2 --ulysses_degree 3"},  // padded patches
           {8, "--pipefusion_parallel_degree 2 --ring_degree 2 --use_cfg_parallel"},
       }) {
    expect_same_as_one_process("shapes", args, np, flags);
  }
  // The written PNG too, with the patch-parallel VAE.
  for (const auto& [np, flags] : std::vector<std::pair<int, std::string>>{
           {4, "--pipefusion_parallel_degree 2 --use_cfg_parallel --use_parallel_vae"},
           {8, "--pipefusion_parallel_degree 2 --ulysses_degree 2 --use_cfg_parallel"},
       }) {
    expect_same_as_one_process("shapes", args, np, flags, 1, /*png=*/true);
  }
}

TEST_F(PipeFusion, FullWarmupWithDataParallelEqualsOneProcess) {
  SKIP_UNLESS_LAUNCHER();
  const std::string args = shapes_args(4, 64) + " --prompt '" + kPromptB + "' --warmup_steps 4";
  expect_same_as_one_process("shapes_dp", args, 4,
                             "--pipefusion_parallel_degree 2 --data_parallel_degree 2", 2,
                             /*png=*/true);
}

TEST_F(PipeFusion, FullWarmupEqualsOneProcessOnFluxAndSd3) {
  SKIP_UNLESS_LAUNCHER();
  for (const char* arch : {"flux", "sd3", "sd35"}) {
    const std::string args = "--model '" + (kDir / arch).string() +
                             "' --prompt 'a cat' --height 64 --width 64 --num_inference_steps 3 "
                             "--seed 2 --warmup_steps 3";
    for (const auto& [np, flags] : std::vector<std::pair<int, std::string>>{
             {2, "--pipefusion_parallel_degree 2"},
             {4, "--pipefusion_parallel_degree 4"},
             {4, "--pipefusion_parallel_degree 2 --ulysses_degree 2"},
             {4, "--pipefusion_parallel_degree 2 --use_cfg_parallel"},
         }) {
      // Flux has 4 layers (2 + 2 single), SD3 2: more stages than layers is tested below.
      if (std::string(arch) != "flux" && flags.find("degree 4") != std::string::npos) continue;
      expect_same_as_one_process(arch, args, np, flags);
    }
  }
}

// ---- stale K/V: approximate, bounded

// The bound: stale K/V change each streamed step's model output a little, and the scheduler
// integrates those changes; a PSNR of 25 dB (RMS error under 6 of 255) keeps every picture
// recognisably the same scene, while a pipeline bug (a patch written to the wrong rows, a stale
// buffer never refreshed, a patch skipped) gives noise-like differences far below it.
constexpr double kMinPsnr = 25.0;

TEST_F(PipeFusion, OneWarmupStepStaysCloseToOneProcess) {
  SKIP_UNLESS_LAUNCHER();
  // 64 px: 8 token rows, so up to 8 patches.
  const std::string args = shapes_args(20, 64) + " --warmup_steps 1";
  const fs::path dir = kDir / "stale";
  fs::create_directories(dir);
  const fs::path ref = dir / "ref.png";
  const Proc a = run_np(1, generate(args, ref));
  ASSERT_EQ(a.status, 0) << a.output;
  for (const auto& [p, m] : std::vector<std::pair<int, int>>{{2, 2}, {2, 4}, {4, 4}, {4, 8}}) {
    const fs::path out = dir / ("pp" + std::to_string(p) + "_m" + std::to_string(m) + ".png");
    const Proc b = run_np(p, generate(args + " --pipefusion_parallel_degree " + std::to_string(p) +
                                          " --num_pipeline_patch " + std::to_string(m),
                                      out));
    ASSERT_EQ(b.status, 0) << b.output;
    const double psnr = png_psnr(out, ref);
    std::printf("[ PSNR     ] shapes 64px, 20 steps, 1 warm-up step, P=%d M=%d: %.2f dB\n", p, m,
                psnr);
    EXPECT_GE(psnr, kMinPsnr) << "P=" << p << " M=" << m;
  }
}

// ---- bad layouts

TEST_F(PipeFusion, BadLayoutsEndWithOneLine) {
  SKIP_UNLESS_LAUNCHER();
  const fs::path out = kDir / "bad.png";
  const std::string args = shapes_args(2, 64);
  struct Case {
    int np;
    std::string flags;
    std::string message;
  };
  const std::string fixture = std::string(PARADIT_TEST_DATA) + "/pipeline/pixart_sigma";
  for (const Case& c : std::vector<Case>{
           {2, "--pipefusion_parallel_degree 2 --num_pipeline_patch 1",
            "--num_pipeline_patch 1 is less than --pipefusion_parallel_degree 2"},
           {2, "--pipefusion_parallel_degree 2 --warmup_steps 0", "--warmup_steps must be at least 1"},
           // 64 px: 8 token rows (VAE factor 4, patch 2), so 16 patches would be too thin.
           {2, "--pipefusion_parallel_degree 2 --num_pipeline_patch 16", "thinner than one patch"},
           // The fixture pipeline's transformer has 2 layers.
           {4, "--model '" + fixture + "' --pipefusion_parallel_degree 4",
            "has only 2 layers to split into stages"},
       }) {
    fs::remove(out);
    const Proc r = run_np(c.np, generate(args + " " + c.flags, out));
    EXPECT_EQ(r.status, 2) << c.flags << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.flags << "\n" << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.flags;
  }
}

}  // namespace
}  // namespace paradit
