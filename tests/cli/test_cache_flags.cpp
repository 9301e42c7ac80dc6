// The step-caching flags of `paradit generate` (--use_fbcache / --use_teacache, their thresholds,
// --cache_warmup_steps), run as the real binary: bad combinations and values end with one line
// naming the flag and exit 2 without writing anything; a cached run prints its per-run line.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "support/cli_process.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using testing::Proc;
using testing::run_command;

Proc generate(const std::string& args, const fs::path& out) {
  return run_command(testing::env() + PARADIT_BINARY +
                     " generate --prompt 'a small red circle on the left on a blue background' "
                     "--num_inference_steps 4 --seed 3 --output " +
                     out.string() + " " + args);
}

fs::path scratch() {
  const fs::path d = fs::temp_directory_path() / "paradit_cache_flags";
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(CacheFlags, BadUseIsOneLineExit2) {
  const fs::path out = scratch() / "x.png";
  const std::pair<const char*, const char*> cases[] = {
      {"--use_fbcache --use_teacache", "--use_fbcache and --use_teacache: choose one"},
      {"--fbcache_threshold 0.1", "--fbcache_threshold: needs --use_fbcache"},
      {"--use_fbcache --teacache_threshold 0.1", "--teacache_threshold: needs --use_teacache"},
      {"--use_teacache --teacache_threshold -1", "--teacache_threshold: must be a finite number"},
      {"--use_fbcache --fbcache_threshold nan", "--fbcache_threshold"},
      {"--cache_warmup_steps 2", "--cache_warmup_steps: needs --use_fbcache or --use_teacache"},
      {"--use_fbcache --cache_warmup_steps -1", "--cache_warmup_steps: must be >= 0"},
  };
  for (const auto& [flags, message] : cases) {
    const Proc r = generate(flags, out);
    EXPECT_EQ(r.status, 2) << flags << "\n" << r.output;
    EXPECT_NE(r.output.find(std::string("paradit: error: ") + message), std::string::npos)
        << flags << "\n" << r.output;
    // One line.
    EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << flags << "\n" << r.output;
    EXPECT_FALSE(fs::exists(out)) << flags;
  }
}

TEST(CacheFlags, CachedRunPrintsItsLine) {
  const fs::path out = scratch() / "x.png";
  // Both spellings; the middle steps reused at any threshold this high, the last computed.
  const Proc r = generate("--use-fbcache --fbcache-threshold 1e9 --cache-warmup-steps 1", out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("step cache (fbcache threshold 1e+09, 1 warm-up steps): 2 of 4 steps "
                          "computed in full, 2 reused; about "),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("s saved; reused steps 2,3\n"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(out));
  const Proc help = run_command(std::string(PARADIT_BINARY) + " generate --help");
  for (const char* flag : {"--use_fbcache", "--fbcache_threshold", "--use_teacache",
                           "--teacache_threshold", "--cache_warmup_steps"}) {
    EXPECT_NE(help.output.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace paradit
