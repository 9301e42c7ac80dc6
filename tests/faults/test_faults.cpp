// Faults under a real mpirun, against the real binary (PARADIT_BINARY):
//   - a rank stopped with SIGSTOP mid-generation: its peer's wait hits --collective_timeout, the
//     job ends with exit code 124 and one line naming the operation, the group and the rank
//     that does not answer, within the timeout + 10 s (issue finding 7);
//   - admission errors, the same on every rank or seen by one rank only, end every rank alike:
//     exit code 2, one "paradit: error:" line, no MPI_Abort (finding 1's CLI side).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "support/cli_process.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using namespace paradit::testing;
using Clock = std::chrono::steady_clock;

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

class Faults : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("paradit_faults_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

// The pid a rank wrote (0 while the file is missing or not yet written).
pid_t read_pid(const fs::path& file) {
  std::ifstream in(file);
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(pid);
}

// Ends a background job's ranks whatever happened (a failed assertion must not leave a job
// running, or a stopped process behind).
struct KillRanks {
  fs::path dir;
  ~KillRanks() {
    for (const char* r : {"pid.0", "pid.1"}) {
      const pid_t pid = read_pid(dir / r);
      if (pid > 0 && ::kill(pid, 0) == 0) {
        ::kill(pid, SIGKILL);
        ::kill(pid, SIGCONT);
      }
    }
  }
};

TEST_F(Faults, StoppedRankEndsTheJobWithinTheCollectiveTimeout) {
  SKIP_UNLESS_LAUNCHER();
  constexpr int kTimeout = 20;
  const fs::path out = dir_ / "x.png", log = dir_ / "log.txt", rc = dir_ / "rc.txt";
  // Each rank writes its pid, then becomes paradit (exec keeps the pid). The job runs in the
  // background; its exit code lands in rc.txt.
  const std::string rank_cmd =
      "echo \\$\\$ > " + (dir_ / "pid.").string() + "\\$OMPI_COMM_WORLD_RANK; exec " + PARADIT_BINARY +
      " generate --prompt 'a red circle' --ulysses_degree 2 --num_inference_steps 900"
      " --collective_timeout " + std::to_string(kTimeout) + " --output " + out.string();
  const std::string job = env() + "timeout -s KILL 200 " + mpirun() + " -np 2 sh -c \"" +
                          rank_cmd + "\" > " + log.string() + " 2>&1; echo $? > " + rc.string();
  ASSERT_EQ(std::system(("(" + job + ") &").c_str()), 0);

  const KillRanks cleanup{dir_};
  // Stop rank 1 once the denoising loop runs (a step line is out).
  const auto started = Clock::now();
  while (read_text(log).find("step 2/") == std::string::npos || read_pid(dir_ / "pid.1") <= 0) {
    ASSERT_FALSE(fs::exists(rc)) << "the job ended before the stop:\n" << read_text(log);
    ASSERT_LT(std::chrono::duration<double>(Clock::now() - started).count(), 120.0)
        << "no step after 120 s:\n" << read_text(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const pid_t victim = read_pid(dir_ / "pid.1");
  ASSERT_GT(victim, 0);
  ASSERT_EQ(::kill(victim, SIGSTOP), 0);
  const auto stopped = Clock::now();
  while (!fs::exists(rc) || read_text(rc).empty()) {
    if (std::chrono::duration<double>(Clock::now() - stopped).count() > 150.0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double took = std::chrono::duration<double>(Clock::now() - stopped).count();
  const std::string text = read_text(log);
  ASSERT_TRUE(fs::exists(rc)) << "the job did not end " << took << " s after the stop:\n" << text;
  EXPECT_EQ(std::stoi(read_text(rc)), 124) << text;
  EXPECT_LE(took, kTimeout + 10.0) << text;
  // One line from the waiting rank: the operation, the group, the silent rank.
  EXPECT_EQ(count(text, "paradit: error: rank 0: "), 1u) << text;
  EXPECT_NE(text.find("on group 'ulysses' (world ranks 0,1)"), std::string::npos) << text;
  EXPECT_NE(text.find("--collective_timeout 20"), std::string::npos) << text;
  EXPECT_NE(text.find("no answer from rank 1 (stopped, dead or hung)"), std::string::npos)
      << text;
  EXPECT_FALSE(fs::exists(out));
}

// The job's output when it ends on an admission error: exit 2, one error line, no abort.
void expect_agreed(const Proc& r, const std::string& needle) {
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(count(r.output, "paradit: error:"), 1u) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("MPI_ABORT"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("step 1/"), std::string::npos) << "work started:\n" << r.output;
}

TEST_F(Faults, AdmissionErrorsEndEveryRankWithOneLine) {
  SKIP_UNLESS_LAUNCHER();
  const std::string out = (dir_ / "x.png").string();
  const std::string gen = std::string(PARADIT_BINARY) + " generate --prompt 'a red circle'";
  // The request against the layout: 4 PipeFusion patches of a 2-token-row image.
  expect_agreed(run_np(2, gen + " --pipefusion_parallel_degree 2 --num_pipeline_patch 4"
                                " --height 16 --width 16 --num_inference_steps 2 --output " + out),
                "--num_pipeline_patch 4");
  // The patch-parallel VAE: 2 latent rows (the demo model's VAE scales by 4) on 4 ranks.
  expect_agreed(run_np(4, gen + " --ring_degree 4 --use_parallel_vae --height 8 --width 8"
                                " --num_inference_steps 2 --output " + out),
                "patch-parallel VAE");
  // The mesh: degrees that do not multiply to the job's size.
  expect_agreed(run_np(2, gen + " --ulysses_degree 3 --output " + out), "ulysses=3");
  // Refused sizes and paths, the same on every rank.
  expect_agreed(run_np(2, gen + " --ulysses_degree 2 --num_inference_steps 2000000000 --output " +
                              out),
                "--num_inference_steps");
  expect_agreed(run_np(2, gen + " --ulysses_degree 2 --output " + (dir_ / "x.jpg").string()),
                "x.jpg");
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(Faults, OneRanksOwnProblemIsNamedWithItsRank) {
  SKIP_UNLESS_LAUNCHER();
  // Rank 1 alone is given a model folder that does not exist (as a node without the files).
  const std::string out = (dir_ / "x.png").string();
  const std::string common = " generate --prompt 'a red circle' --ulysses_degree 2 --output " + out;
  const std::string cmd = "sh -c \"if [ \\$OMPI_COMM_WORLD_RANK = 1 ]; then exec " +
                          std::string(PARADIT_BINARY) + common + " --model " +
                          (dir_ / "nowhere").string() + "; else exec " + PARADIT_BINARY + common +
                          "; fi\"";
  const Proc r = run_np(2, cmd);
  expect_agreed(r, "rank 1: ");
  EXPECT_NE(r.output.find("nowhere"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_empty(dir_));
}

}  // namespace
}  // namespace paradit
