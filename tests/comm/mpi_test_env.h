#pragma once
// GoogleTest glue for programs that run under mpirun (and also alone): a global environment
// that starts the communication runtime before the first test (and puts each rank on its GPU,
// comm::bind_device, where there are GPUs) and ends it after the last, so the stock gtest_main
// works. Ranks other than 0 print only their failures (tagged with the
// rank) instead of the full progress output. Include from exactly one .cpp of a test program
// and write `PARADIT_REGISTER_COMM_TEST_ENVIRONMENT();` at namespace scope.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "comm/device.h"
#include "comm/runtime.h"

namespace paradit::testing {

class CommEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { comm::bind_device(comm::init(nullptr, nullptr)); }
  void TearDown() override { comm::finalize(); }
};

// Prints failed assertions and failed tests only, each prefixed by the rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 r.file_name() ? r.file_name() : "?", r.line_number(), r.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
    }
  }

 private:
  int rank_;
};

inline bool register_comm_test_environment() {
  ::testing::AddGlobalTestEnvironment(new CommEnvironment);
  // The launcher's rank variable is there before MPI starts, so the printer can be chosen now.
  const char* rank_env = std::getenv("OMPI_COMM_WORLD_RANK");
  if (rank_env == nullptr) rank_env = std::getenv("PMIX_RANK");
  const int rank = rank_env ? std::atoi(rank_env) : 0;
  if (rank > 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  return true;
}

}  // namespace paradit::testing

#define PARADIT_REGISTER_COMM_TEST_ENVIRONMENT()                      \
  [[maybe_unused]] static const bool kCommTestEnvironmentRegistered = \
      ::paradit::testing::register_comm_test_environment()
