// A failing rank must end the whole job: mpirun -np 2 on a probe whose rank 1 aborts while
// rank 0 blocks must exit non-zero, with rank 1's message, well before a hang
// (support/cli_process.h).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "comm/runtime.h"
#include "support/cli_process.h"

namespace paradit::comm {
namespace {

TEST(Abort, FailingRankEndsTheJobQuickly) {
#if !defined(PARADIT_MPIRUN) || !defined(PARADIT_ABORT_PROBE)
  GTEST_SKIP() << "built without MPI";
#else
  if (launched_by_mpi()) GTEST_SKIP() << "runs mpirun itself; only in the single-process run";
  // `timeout` is the safety net should the abort fail: the test then fails instead of hanging.
  const std::string cmd = "timeout -s KILL " + std::to_string(paradit::testing::kHangKillSeconds) +
                          " " + PARADIT_MPIRUN +
                          " --allow-run-as-root --oversubscribe --bind-to none -np 2 " +
                          PARADIT_ABORT_PROBE + " 2>&1";
  const auto start = std::chrono::steady_clock::now();
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  const int status = pclose(pipe);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_NE(WEXITSTATUS(status), 0) << output;
  EXPECT_NE(WEXITSTATUS(status), 137) << "killed by the timeout: the job hung\n" << output;
  EXPECT_LT(seconds, paradit::testing::kEndsWithinSeconds) << output;
  EXPECT_NE(output.find("paradit: error: abort_probe: rank 1 fails on purpose"), std::string::npos)
      << output;
  std::printf("mpirun -np 2 with a failing rank exited with %d after %.2f s\n", WEXITSTATUS(status),
              seconds);
#endif
}

}  // namespace
}  // namespace paradit::comm
