// The parallel methods on CUDA with 2 ranks sharing one GPU (the test machine has exactly one:
// the communicators stage device tensors through the host), each against the 1-rank CUDA run of
// the same command: Ulysses, Ring and CFG parallel through `paradit forward` on the fixtures, and
// through `paradit generate` on random tiny pipelines CFG parallel, Ulysses with the
// patch-parallel VAE (the PNG), Ring, and PipeFusion with full warm-up (exact).
//
// Bounds. F32: latents / samples within 1e-5 relative L2 (DESIGN.md's invariant: the parallel
// result equals the single-process one up to reassociation), PNGs within 1 of 255. BF16: 2e-2
// relative L2 and a PSNR of 30 dB for the PNG: both runs round every activation to 8 bits of
// mantissa, and a different split (fewer rows per GEMM, attention in blocks, halo rows) changes
// which roundings happen, so the two differ by up to the BF16 rounding error of a run itself —
// the error the BF16 golden tests bound by 2e-2 (tests/cuda_golden). A lost block, a wrong
// offset or a dtype mix-up in the staged transfers gives O(1).
//
// Every test skips, with the reason, without a GPU (PARADIT_REQUIRE_GPU=1: fails instead) or
// without MPI; the test program starts mpirun itself. PARADIT_PARALLEL_ON_CPU=1 runs the same
// commands on the CPU where no GPU is (a check of the harness).

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "io/safetensors.h"
#include "support/cli_process.h"

#ifdef PARADIT_WITH_CUDA
#include "backend/cuda/runtime.h"
#endif

namespace paradit {
namespace {

namespace fs = std::filesystem;
using testing::Proc;
using testing::run_command;
using testing::run_np;

const fs::path kData = fs::path(PARADIT_TEST_DATA) / "transformer";
const fs::path kDir = fs::path(PARADIT_TEST_BINARY_DIR) / "cuda_parallel";

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

// PARADIT_PARALLEL_ON_CPU=1 on a machine without a GPU: the same commands with --device cpu,
// a check of this test's own commands and bounds (the CPU's parallel tests are the real ones).
bool on_cpu_check() {
#ifdef PARADIT_WITH_CUDA
  if (backend::cuda::available()) return false;
#endif
  return env_flag("PARADIT_PARALLEL_ON_CPU");
}

std::string no_gpu_reason() {
  if (on_cpu_check()) return {};
#ifdef PARADIT_WITH_CUDA
  if (backend::cuda::available()) return {};
  return "no CUDA device visible (backend::cuda::device_count() = 0)";
#else
  return "this build has no CUDA backend (configured with PARADIT_WITH_CUDA=OFF)";
#endif
}

#define SKIP_WITHOUT_GPU_OR_LAUNCHER()                                                           \
  do {                                                                                           \
    const std::string why_ = no_gpu_reason();                                                    \
    if (!why_.empty()) {                                                                         \
      if (env_flag("PARADIT_REQUIRE_GPU")) FAIL() << "PARADIT_REQUIRE_GPU is set, but " << why_; \
      GTEST_SKIP() << why_;                                                                      \
    }                                                                                            \
    SKIP_UNLESS_LAUNCHER();                                                                      \
  } while (0)

struct Precision {
  const char* flag;  // --dtype
  double latent_tol;
};
const Precision kF32{"f32", 1e-5};
const Precision kBF16{"bf16", 2e-2};

std::string device(const Precision& d) {
  return std::string(on_cpu_check() ? " --device cpu" : " --device cuda") + " --dtype " + d.flag;
}

// ‖a − b‖ / ‖b‖ of tensor `name` of two files, printed.
double compare_files(const fs::path& got, const fs::path& ref, const std::string& name,
                     const std::string& what) {
  const double e = testing::latent_rel_diff(got, ref, name);
  std::printf("  %-70s rel-L2 %.2e\n", what.c_str(), e);
  std::fflush(stdout);
  return e;
}

// The 1-rank run of `cmd` (cached by its output file), then the 2-rank run with `flags`.
void expect_same(const std::string& cmd, const fs::path& ref, const fs::path& out,
                 const std::string& flags, const Precision& d, const std::string& tensor) {
  if (!fs::exists(ref)) {
    const Proc a = run_np(1, cmd + " --output '" + ref.string() + "'" + device(d));
    ASSERT_EQ(a.status, 0) << a.output;
  }
  const Proc b = run_np(2, cmd + " --output '" + out.string() + "'" + device(d) + " " + flags);
  ASSERT_EQ(b.status, 0) << flags << "\n" << b.output;
  const double e = compare_files(out, ref, tensor, flags + " --dtype " + d.flag);
  EXPECT_LE(e, d.latent_tol) << flags << " --dtype " << d.flag << "\n" << b.output;
}

// ---------------------------------------------------------------- forward on the fixtures

std::string forward_cmd(const std::string& fixture) {
  return std::string(PARADIT_BINARY) + " forward --model '" + (kData / fixture).string() +
         "' --inputs '" + (kData / fixture / "inputs.safetensors").string() + "'";
}

class CudaParallel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!no_gpu_reason().empty() || testing::mpirun().empty() || comm::launched_by_mpi()) return;
    fs::remove_all(kDir);
    fs::create_directories(kDir);
    // Random tiny pipelines (CPU work): Flux (2 + 2 layers) and SD3 (CFG, 2 layers).
    for (const char* arch : {"flux", "sd3"}) {
      const Proc r =
          run_command(std::string(PARADIT_BINARY) + " make-model --arch " + arch +
                      " --preset tiny --seed 5 --pipeline '" + (kDir / arch).string() + "'");
      ASSERT_EQ(r.status, 0) << r.output;
    }
  }
  static fs::path file(const std::string& tag, const Precision& d, const char* ext) {
    return kDir / (tag + "_" + d.flag + ext);
  }
};

TEST_F(CudaParallel, ForwardUlysses) {
  SKIP_WITHOUT_GPU_OR_LAUNCHER();
  for (const Precision& d : {kF32, kBF16}) {
    expect_same(forward_cmd("flux"), file("flux_fwd_ref", d, ".safetensors"),
                file("flux_fwd_ulysses", d, ".safetensors"), "--ulysses_degree 2", d, "sample");
  }
}

TEST_F(CudaParallel, ForwardRing) {
  SKIP_WITHOUT_GPU_OR_LAUNCHER();
  for (const Precision& d : {kF32, kBF16}) {
    expect_same(forward_cmd("flux"), file("flux_fwd_ref", d, ".safetensors"),
                file("flux_fwd_ring", d, ".safetensors"), "--ring_degree 2", d, "sample");
  }
}

// SD3's fixture holds a batch of 2: the CFG halves.
TEST_F(CudaParallel, ForwardCfg) {
  SKIP_WITHOUT_GPU_OR_LAUNCHER();
  for (const Precision& d : {kF32, kBF16}) {
    expect_same(forward_cmd("sd3"), file("sd3_fwd_ref", d, ".safetensors"),
                file("sd3_fwd_cfg", d, ".safetensors"), "--use_cfg_parallel", d, "sample");
  }
}

// ---------------------------------------------------------------- generate on tiny pipelines

std::string generate_cmd(const std::string& arch, const std::string& extra = "") {
  return std::string(PARADIT_BINARY) + " generate --model '" + (kDir / arch).string() +
         "' --prompt 'a red cat' --height 64 --width 64 --num_inference_steps 3 --seed 11 " +
         "--warmup_steps 3" + extra;
}

TEST_F(CudaParallel, GenerateCfg) {
  SKIP_WITHOUT_GPU_OR_LAUNCHER();
  for (const Precision& d : {kF32, kBF16}) {
    expect_same(generate_cmd("sd3", " --output_type latent"),
                file("sd3_gen_ref", d, ".safetensors"), file("sd3_gen_cfg", d, ".safetensors"),
                "--use_cfg_parallel", d, "latents");
  }
}

TEST_F(CudaParallel, GenerateRing) {
  SKIP_WITHOUT_GPU_OR_LAUNCHER();
  for (const Precision& d : {kF32, kBF16}) {
    expect_same(generate_cmd("flux", " --output_type latent"),
                file("flux_gen_ref", d, ".safetensors"), file("flux_gen_ring", d, ".safetensors"),
                "--ring_degree 2", d, "latents");
  }
}

// Full warm-up (--warmup_steps = steps): every step sees fresh K/V, so PipeFusion is exact.
TEST_F(CudaParallel, GeneratePipeFusionFullWarmup) {
  SKIP_WITHOUT_GPU_OR_LAUNCHER();
  for (const Precision& d : {kF32, kBF16}) {
    expect_same(generate_cmd("flux", " --output_type latent"),
                file("flux_gen_ref", d, ".safetensors"), file("flux_gen_pp", d, ".safetensors"),
                "--pipefusion_parallel_degree 2 --num_pipeline_patch 2", d, "latents");
  }
}

// The patch-parallel VAE: two ranks (Ulysses 2) decode the image's rows together; the PNG must
// be the 1-rank PNG.
TEST_F(CudaParallel, GenerateUlyssesWithParallelVae) {
  SKIP_WITHOUT_GPU_OR_LAUNCHER();
  for (const Precision& d : {kF32, kBF16}) {
    const fs::path ref = file("sd3_png_ref", d, ".png"), out = file("sd3_png_pvae", d, ".png");
    const std::string flags = "--ulysses_degree 2 --use_parallel_vae";
    if (!fs::exists(ref)) {
      const Proc a =
          run_np(1, generate_cmd("sd3") + " --output '" + ref.string() + "'" + device(d));
      ASSERT_EQ(a.status, 0) << a.output;
    }
    const Proc b = run_np(
        2, generate_cmd("sd3") + " --output '" + out.string() + "'" + device(d) + " " + flags);
    ASSERT_EQ(b.status, 0) << b.output;
    const int diff = testing::png_diff(out, ref);
    const double psnr = testing::png_psnr(out, ref);
    std::printf("  %-70s max diff %d/255, PSNR %.1f dB\n", (flags + " --dtype " + d.flag).c_str(),
                diff, psnr);
    if (d.latent_tol == kF32.latent_tol) {
      EXPECT_LE(diff, 1) << flags << " f32\n" << b.output;
    } else {
      EXPECT_GE(psnr, 30.0) << flags << " bf16\n" << b.output;
    }
    // The latents of the same layout (no VAE) as well.
    expect_same(generate_cmd("sd3", " --output_type latent"),
                file("sd3_gen_ref", d, ".safetensors"), file("sd3_gen_ulysses", d, ".safetensors"),
                "--ulysses_degree 2", d, "latents");
  }
}

}  // namespace
}  // namespace paradit
