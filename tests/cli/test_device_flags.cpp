// --device / --dtype / --attention_backend on `paradit generate`, `forward` and `serve`, run as
// the real binary: refusals name the flag and exit 2 without writing anything; on the CPU the
// default placement is the one every other test uses (F32), and --dtype bf16 keeps bf16
// matrices (the image differs from f32's by bf16 rounding only).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/op_registry.h"
#include "io/image.h"
#include "support/cli_process.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using testing::Proc;
using testing::run_command;

const std::string kPrompt = "\"a small red circle on the left on a blue background\"";

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("paradit_device_flags_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

Proc generate(const std::string& args, const fs::path& out) {
  return run_command(testing::env() + PARADIT_BINARY + " generate --prompt " + kPrompt +
                     " --num_inference_steps 2 --seed 3 --output " + out.string() + " " + args);
}

bool gpu_visible() {
  // A CUDA build on a machine with a GPU takes --device cuda; nothing here may assume either.
  const Proc r = run_command(std::string("nvidia-smi -L > /dev/null 2>&1"));
  return core::kCudaBuilt && r.status == 0;
}

TEST(DeviceFlags, CudaWithoutGpuOrBackendIsOneLineExit2) {
  if (gpu_visible()) GTEST_SKIP() << "a GPU is visible: --device cuda is valid here";
  const fs::path d = scratch("cuda");
  const fs::path out = d / "x.png";
  const Proc r = generate("--device cuda", out);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("paradit: error: --device cuda: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(core::kCudaBuilt ? "no CUDA device is visible" : "no CUDA backend"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(out));
}

TEST(DeviceFlags, F16OnTheCpuAndUnknownValuesAreRefused) {
  const fs::path d = scratch("values");
  const fs::path out = d / "x.png";
  Proc r = generate("--device cpu --dtype f16", out);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--dtype f16"), std::string::npos) << r.output;
  r = generate("--device tpu", out);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--device"), std::string::npos) << r.output;
  r = generate("--attention_backend flash3", out);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--attention_backend"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
}

TEST(DeviceFlags, CpuBf16WeightsStayCloseToF32) {
  const fs::path d = scratch("bf16");
  const Proc f32 = generate("--device cpu --dtype f32", d / "f32.png");
  const Proc bf16 = generate("--device cpu --dtype bf16", d / "bf16.png");
  const Proc dflt = generate("--device cpu", d / "default.png");
  ASSERT_EQ(f32.status, 0) << f32.output;
  ASSERT_EQ(bf16.status, 0) << bf16.output;
  ASSERT_EQ(dflt.status, 0) << dflt.output;
  const io::RgbImage a = io::read_png(d / "f32.png");
  const io::RgbImage b = io::read_png(d / "bf16.png");
  const io::RgbImage c = io::read_png(d / "default.png");
  EXPECT_EQ(a.rgb, c.rgb) << "the CPU default is F32 weights";
  ASSERT_EQ(a.rgb.size(), b.rgb.size());
  int max_diff = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i)
    max_diff = std::max(max_diff, std::abs(int(a.rgb[i]) - int(b.rgb[i])));
  // bf16 matrices (8 mantissa bits) move the 2-step image a little, never to another picture.
  EXPECT_GT(max_diff, 0) << "--dtype bf16 made no difference: were the weights kept in bf16?";
  EXPECT_LT(max_diff, 64) << "bf16 weights changed the picture";
}

}  // namespace
}  // namespace paradit
