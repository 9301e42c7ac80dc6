// make-model presets of the new families: the tiny presets bind exactly the fixtures' parameter
// counts (meta.json n_params, from diffusers), the full presets the released models' sizes, and
// every preset's model binds and runs its config through the family's checks.

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "io/diffusers.h"
#include "models/common/random_weights.h"
#include "models/presets.h"
#include "models/transformer.h"
#include "support/transformer_fixtures.h"

namespace paradit {
namespace {

int64_t parameters(const std::string& arch, const std::string& size) {
  const io::Config config(models::preset_config(arch, size), arch + "/" + size);
  models::common::RandomWeights dry(0, core::DType::F32, /*dry_run=*/true);
  { auto model = models::make_transformer(config, dry); }
  return dry.parameter_count();
}

int64_t fixture_parameters(const std::string& name) {
  std::ifstream in(testing::transformer_case_dir(name) / "meta.json");
  return io::Json::parse(in).at("n_params").get<int64_t>();
}

TEST(LLMPresets, TinyPresetsAreTheFixtures) {
  EXPECT_EQ(parameters("qwen-image", "tiny"), fixture_parameters("qwen_image"));
  EXPECT_EQ(parameters("z-image", "tiny"), fixture_parameters("z_image"));
  EXPECT_EQ(parameters("flux2", "tiny"), fixture_parameters("flux2"));
}

// The released models: Qwen-Image 20.4 B, Z-Image 6.15 B, FLUX.2-dev 32.2 B, FLUX.2-klein-4B
// 3.9 B (transformer parameters).
TEST(LLMPresets, FullPresetsHaveTheReleasedSizes) {
  const auto near = [](int64_t n, double billions) {
    return std::abs(static_cast<double>(n) / 1e9 - billions) < 0.01 * billions;
  };
  EXPECT_TRUE(near(parameters("qwen-image", "full"), 20.43)) << parameters("qwen-image", "full");
  EXPECT_TRUE(near(parameters("z-image", "full"), 6.15)) << parameters("z-image", "full");
  EXPECT_TRUE(near(parameters("flux2", "full"), 32.2)) << parameters("flux2", "full");
  EXPECT_TRUE(near(parameters("flux2-klein", "full"), 3.88)) << parameters("flux2-klein", "full");
}

TEST(LLMPresets, SmallPresetsBind) {
  for (const char* arch : {"qwen-image", "z-image", "flux2", "flux2-klein"}) {
    EXPECT_GT(parameters(arch, "small"), 50'000'000) << arch;
  }
}

}  // namespace
}  // namespace paradit
