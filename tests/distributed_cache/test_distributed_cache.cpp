// Step caching (--use_fbcache / --use_teacache) through `paradit generate`:
//   - threshold 0 writes the uncached run's latents bit for bit (one process);
//   - under mpirun, every parallel mode (Ulysses, Ring, USP, CFG, data parallel, PipeFusion with
//     full warm-up, parallel VAE) writes what the cached single-process run writes (latents
//     ≤ 1e-5 relative; PNGs within one 8-bit level for parallel VAE) and reuses the same steps:
//     the per-run line's "reused steps" list of every printing rank equals one process's, which
//     is not empty (the threshold reuses some steps and computes others).
// Models: the shipped shapes model (PixArt, CFG, 64×64) for every mode, random tiny Flux (USP and
// PipeFusion) and the Wan fixture pipeline (video; Ulysses + CFG and Ring). The thresholds sit between the distances the
// runs compare, away from each (printed by the single-process run with the decisions).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "support/cli_process.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using testing::latent_rel_diff;
using testing::mpirun;
using testing::png_diff;
using testing::Proc;
using testing::run_command;
using testing::run_np;

const fs::path kDir = fs::path(PARADIT_TEST_BINARY_DIR) / "distributed_cache";
const std::string kPromptA = "a small red circle on the left on a blue background";
const std::string kPromptB = "a big green square at the top on a yellow background";

// The "reused steps" list of every per-run cache line in `output` ("" for a line without one).
std::vector<std::string> reused_lists(const std::string& output) {
  std::vector<std::string> lists;
  for (size_t p = output.find("step cache ("); p != std::string::npos;
       p = output.find("step cache (", p + 1)) {
    const size_t end = output.find('\n', p);
    const std::string line = output.substr(p, end == std::string::npos ? end : end - p);
    const size_t at = line.find("reused steps ");
    lists.push_back(at == std::string::npos ? "" : line.substr(at + 13));
  }
  return lists;
}

// A generate command writing `out` (latents for a .safetensors name, else PNG).
std::string generate(const std::string& args, const fs::path& out) {
  std::string cmd = std::string(PARADIT_BINARY) + " generate " + args + " --output '" +
                    out.string() + "'";
  if (out.extension() == ".safetensors") cmd += " --output_type latent";
  return cmd;
}

// A file name for a command line.
std::string slug(const std::string& s) { return std::to_string(std::hash<std::string>{}(s)); }

class DistributedCache : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (mpirun().empty() || comm::launched_by_mpi()) return;
    fs::remove_all(kDir);
    fs::create_directories(kDir);
    const Proc r = run_command(std::string(PARADIT_BINARY) +
                               " make-model --arch flux --preset tiny --seed 5 --pipeline '" +
                               (kDir / "flux").string() + "'");
    ASSERT_EQ(r.status, 0) << r.output;
  }

  // `args` (model, prompts, steps, cache flags) at np ranks with `flags` against the same args
  // on one process (run once per args and extension): the output and the reused steps.
  void expect_same(const std::string& args, int np, const std::string& flags,
                   const char* ext = ".safetensors") {
    const fs::path ref = kDir / (slug(args) + ext);
    if (refs_.count(ref.string()) == 0) {
      const Proc a = run_np(1, generate(args, ref));
      ASSERT_EQ(a.status, 0) << a.output;
      const std::vector<std::string> lists = reused_lists(a.output);
      ASSERT_EQ(lists.size(), 1u) << a.output;
      refs_[ref.string()] = lists[0];
      std::printf("%s\n  one process reuses steps [%s]\n", args.c_str(), lists[0].c_str());
    }
    const std::string& want = refs_[ref.string()];
    EXPECT_FALSE(want.empty()) << args << ": the threshold reuses no step";

    const fs::path out = kDir / (slug(args + flags) + ext);
    const Proc b = run_np(np, generate(args + " " + flags, out));
    ASSERT_EQ(b.status, 0) << flags << "\n" << b.output;
    const std::vector<std::string> lists = reused_lists(b.output);
    ASSERT_FALSE(lists.empty()) << b.output;
    for (const std::string& got : lists) EXPECT_EQ(got, want) << flags;
    if (std::string(ext) == ".safetensors") {
      const double rel = latent_rel_diff(out, ref);
      std::printf("  np %d %s: latents relative L2 difference %.2e\n", np, flags.c_str(), rel);
      EXPECT_LE(rel, 1e-5) << args << " | " << flags;
    } else {
      EXPECT_LE(png_diff(out, ref), 1) << args << " | " << flags;
    }
  }

  static std::map<std::string, std::string> refs_;  // reference file → its reused steps
};
std::map<std::string, std::string> DistributedCache::refs_;

std::string shapes(int prompts, const std::string& cache) {
  std::string a = "--num_inference_steps 10 --seed 7 --height 64 --width 64 --prompt '" +
                  kPromptA + "'";
  if (prompts == 2) a += " --prompt '" + kPromptB + "'";
  return a + " " + cache;
}

// Threshold 0 never skips: the uncached latents, bit for bit (one process).
TEST_F(DistributedCache, ThresholdZeroIsTheUncachedRun) {
  SKIP_UNLESS_LAUNCHER();
  const fs::path plain = kDir / "plain.safetensors";
  ASSERT_EQ(run_np(1, generate(shapes(1, ""), plain)).status, 0);
  for (const char* cache : {"--use_fbcache --fbcache_threshold 0",
                            "--use_teacache --teacache_threshold 0"}) {
    const fs::path out = kDir / (slug(cache) + ".safetensors");
    const Proc r = run_np(1, generate(shapes(1, cache), out));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(latent_rel_diff(out, plain), 0.0) << cache;
    EXPECT_NE(r.output.find("10 of 10 steps computed in full, 0 reused"), std::string::npos)
        << r.output;
  }
}

const std::string kFb = "--use_fbcache --fbcache_threshold 0.2";
const std::string kTea = "--use_teacache --teacache_threshold 0.2";

TEST_F(DistributedCache, ShapesFbCacheEveryMode) {
  SKIP_UNLESS_LAUNCHER();
  expect_same(shapes(1, kFb), 2, "--ulysses_degree 2");
  expect_same(shapes(1, kFb), 2, "--ring_degree 2");
  expect_same(shapes(1, kFb), 4, "--ulysses_degree 2 --ring_degree 2");
  expect_same(shapes(1, kFb), 2, "--use_cfg_parallel");
  expect_same(shapes(2, kFb), 2, "--data_parallel_degree 2");
  expect_same(shapes(1, kFb), 2, "--pipefusion_parallel_degree 2 --warmup_steps 10");
  expect_same(shapes(1, kFb), 2, "--ulysses_degree 2 --use_parallel_vae", ".png");
}

TEST_F(DistributedCache, ShapesTeaCache) {
  SKIP_UNLESS_LAUNCHER();
  expect_same(shapes(1, kTea), 4, "--ulysses_degree 2 --use_cfg_parallel");
  expect_same(shapes(1, kTea), 2, "--pipefusion_parallel_degree 2 --warmup_steps 10");
}

// Flux: no CFG batch; the single-stream blocks merge the streams inside the cached layers (on
// PipeFusion's second stage). TeaCache with TeaCache4FLUX's polynomial.
std::string flux(const std::string& cache) {
  return "--model '" + (kDir / "flux").string() +
         "' --prompt 'a red cat' --height 64 --width 64 --num_inference_steps 8 --seed 11 " + cache;
}

TEST_F(DistributedCache, Flux) {
  SKIP_UNLESS_LAUNCHER();
  expect_same(flux("--use_fbcache --fbcache_threshold 0.58"), 4,
              "--ulysses_degree 2 --ring_degree 2");
  expect_same(flux("--use_teacache --teacache_threshold 1"), 2,
              "--pipefusion_parallel_degree 2 --warmup_steps 8");
}

// Wan (video): the TeaCache probe is the timestep embedding, one row per sample on every rank.
std::string wan(const std::string& cache) {
  return "--model '" + std::string(PARADIT_TEST_DATA) +
         "/pipeline/wan' --prompt '" + kPromptA +
         "' --height 32 --width 48 --num_frames 9 --num_inference_steps 8 --seed 7 " +
         cache;
}

TEST_F(DistributedCache, Wan) {
  SKIP_UNLESS_LAUNCHER();
  expect_same(wan("--use_teacache --teacache_threshold 1"), 4,
              "--ulysses_degree 2 --use_cfg_parallel");
  expect_same(wan("--use_fbcache --fbcache_threshold 0.78"), 2, "--ring_degree 2");
}

}  // namespace
}  // namespace paradit
