#pragma once
// Helpers of the tests that run the `paradit` binary, alone or under mpirun (the test programs
// start mpirun themselves), and compare what it writes: a shell runner, the launcher, and error
// measures over PNG and latent files.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "comm/runtime.h"
#include "core/tensor.h"
#include "io/image.h"
#include "io/safetensors.h"

namespace paradit::testing {

// Hang checks: a job that must end on its own (a failing rank ends every rank) runs under
// `timeout -s KILL kHangKillSeconds` (status 137 = it hung) and must have ended within
// kEndsWithinSeconds. The bound tells a hang from an end, not a fast end from a slow one: it is
// far above the time such a job takes on a loaded 2-core machine (≈ 10 s seen in a fresh root
// while another test ran) and far below "never".
constexpr int kHangKillSeconds = 120;
constexpr double kEndsWithinSeconds = 60.0;

struct Proc {
  int status = -1;  // exit code; -1 when not exited normally
  double seconds = 0;  // wall-clock time of the run
  std::string output;
};

// A file's whole contents ("" when it cannot be read): a job's log, a written rc file.
inline std::string read_text(const std::filesystem::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return text;
}

// Runs a shell command (stderr joined to stdout) and waits for it.
inline Proc run_command(const std::string& cmd) {
  const auto start = std::chrono::steady_clock::now();
  Proc r;
  FILE* pipe = popen(("{ " + cmd + "\n} 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

// The mpirun command with the options every test job needs ("" in builds without MPI; the
// including test target defines PARADIT_MPIRUN).
inline std::string mpirun() {
#ifdef PARADIT_MPIRUN
  return std::string(PARADIT_MPIRUN) + " --allow-run-as-root --oversubscribe --bind-to none";
#else
  return "";
#endif
}

#define SKIP_UNLESS_LAUNCHER()                                                       \
  do {                                                                               \
    if (::paradit::testing::mpirun().empty()) GTEST_SKIP() << "built without MPI";   \
    if (::paradit::comm::launched_by_mpi())                                          \
      GTEST_SKIP() << "starts mpirun itself; single-process run";                    \
  } while (0)

// The environment of every run: one OpenMP thread per rank, the source tree's models.
inline std::string env() {
  return std::string("OMP_NUM_THREADS=1 PARADIT_MODELS_DIR='") + PARADIT_MODELS_DIR + "' ";
}

// `cmd` with env(): alone when np is 1, else under mpirun with np processes (killed after 120 s).
inline Proc run_np(int np, const std::string& cmd) {
  if (np == 1) return run_command(env() + cmd);
  return run_command(env() + "timeout -s KILL 120 " + mpirun() + " -np " + std::to_string(np) +
                     " " + cmd);
}

// Number of "<Pipeline>: wrote " lines (one per image-writing group) in a run's output.
inline size_t wrote_lines(const std::string& output) {
  size_t lines = 0;
  for (size_t p = output.find(": wrote "); p != std::string::npos;
       p = output.find(": wrote ", p + 1)) {
    ++lines;
  }
  return lines;
}

// Largest absolute difference of two PNGs' 8-bit samples (256 when their sizes differ).
inline int png_diff(const std::filesystem::path& a, const std::filesystem::path& b) {
  const io::RgbImage x = io::read_png(a);
  const io::RgbImage y = io::read_png(b);
  EXPECT_EQ(x.height, y.height);
  EXPECT_EQ(x.width, y.width);
  if (x.rgb.size() != y.rgb.size()) return 256;
  int worst = 0;
  for (size_t i = 0; i < x.rgb.size(); ++i) worst = std::max(worst, std::abs(x.rgb[i] - y.rgb[i]));
  return worst;
}

// PSNR (dB, peak 255) of PNG a against PNG b; infinity when equal, 0 when sizes differ.
inline double png_psnr(const std::filesystem::path& a, const std::filesystem::path& b) {
  const io::RgbImage x = io::read_png(a);
  const io::RgbImage y = io::read_png(b);
  EXPECT_EQ(x.rgb.size(), y.rgb.size());
  if (x.rgb.size() != y.rgb.size() || x.rgb.empty()) return 0;
  double se = 0;
  for (size_t i = 0; i < x.rgb.size(); ++i) {
    const double d = double(x.rgb[i]) - double(y.rgb[i]);
    se += d * d;
  }
  if (se == 0) return INFINITY;
  return 10.0 * std::log10(255.0 * 255.0 / (se / double(x.rgb.size())));
}

// ‖a − b‖ / ‖b‖ (Frobenius, in double) of the tensor `name` of two safetensors files.
inline double latent_rel_diff(const std::filesystem::path& a, const std::filesystem::path& b,
                            const std::string& name = "latents") {
  const core::Tensor x = io::TensorSource::open(a.string()).load(name).contiguous();
  const core::Tensor y = io::TensorSource::open(b.string()).load(name).contiguous();
  EXPECT_EQ(x.shape(), y.shape());
  if (x.shape() != y.shape()) return 1e30;
  double num = 0, den = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double d = double(x.data<float>()[i]) - double(y.data<float>()[i]);
    num += d * d;
    den += double(y.data<float>()[i]) * double(y.data<float>()[i]);
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace paradit::testing
