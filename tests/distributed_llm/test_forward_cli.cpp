// `paradit forward` with the arguments of the new families: Qwen-Image's non-tensor img_shapes
// as JSON in the inputs file's __metadata__, Z-Image's list arguments x.i / cap_feats.i with the
// list output sample.i, against diffusers' outputs, alone and under mpirun (np 4).

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "io/safetensors.h"
#include "support/cli_process.h"
#include "support/transformer_fixtures.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using testing::Proc;
using testing::run_np;

const fs::path kData = fs::path(PARADIT_TEST_DATA) / "transformer";
const fs::path kDir = fs::path(PARADIT_TEST_BINARY_DIR) / "forward_cli";

std::string forward(const fs::path& model, const fs::path& in, const fs::path& out,
                    const std::string& flags = "") {
  return std::string(PARADIT_BINARY) + " forward --model '" + model.string() + "' --inputs '" +
         in.string() + "' --output '" + out.string() + "' " + flags;
}

// The fixture's tensors with the non-tensor arguments as its meta.json records them.
fs::path qwen_inputs_with_metadata() {
  fs::create_directories(kDir);
  const fs::path path = kDir / "qwen_image_inputs.safetensors";
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  for (const auto& [name, t] : testing::read_all(kData / "qwen_image" / "inputs.safetensors")) {
    tensors.emplace_back(name, t);
  }
  io::save_safetensors(path, tensors,
                       {{"img_shapes", "[[[1, 4, 4]], [[1, 4, 4]]]"},
                        {"guidance", "null"},
                        {"attention_kwargs", "{}"}});
  return path;
}

TEST(ForwardCli, QwenImageImgShapesFromMetadata) {
  const fs::path in = qwen_inputs_with_metadata(), out = kDir / "qwen_image_out.safetensors";
  const Proc p = run_np(1, forward(kData / "qwen_image", in, out));
  ASSERT_EQ(p.status, 0) << p.output;
  const auto got = io::TensorSource::open(out).load("sample");
  EXPECT_LE(testing::rel_l2_err(got, testing::reference_sample(kData / "qwen_image")), 1e-4);
  // Under mpirun: Ulysses 2 × CFG 2 equals the single-process file.
  const fs::path out4 = kDir / "qwen_image_np4.safetensors";
  const Proc p4 =
      run_np(4, forward(kData / "qwen_image", in, out4, "--ulysses_degree 2 --use_cfg_parallel"));
  ASSERT_EQ(p4.status, 0) << p4.output;
  EXPECT_LE(testing::latent_rel_diff(out4, out, "sample"), 1e-5);
}

TEST(ForwardCli, QwenImageWithoutImgShapesExits2) {
  fs::create_directories(kDir);
  const Proc p =
      run_np(1, forward(kData / "qwen_image", kData / "qwen_image" / "inputs.safetensors",
                        kDir / "never.safetensors"));
  EXPECT_EQ(p.status, 2) << p.output;
  EXPECT_NE(p.output.find("img_shapes"), std::string::npos) << p.output;
  EXPECT_FALSE(fs::exists(kDir / "never.safetensors"));
}

TEST(ForwardCli, ZImageListArgumentsAndOutputs) {
  fs::create_directories(kDir);
  const fs::path in = kData / "z_image" / "inputs.safetensors", out = kDir / "z_out.safetensors";
  const Proc p = run_np(1, forward(kData / "z_image", in, out));
  ASSERT_EQ(p.status, 0) << p.output;
  const auto got = io::TensorSource::open(out);
  const auto ref = io::TensorSource::open(kData / "z_image" / "outputs.safetensors");
  for (const char* name : {"sample.0", "sample.1"}) {
    EXPECT_LE(testing::rel_l2_err(got.load(name), ref.load(name)), 1e-4) << name;
  }
  const fs::path out4 = kDir / "z_np4.safetensors";
  const Proc p4 =
      run_np(4, forward(kData / "z_image", in, out4, "--ring_degree 2 --data_parallel_degree 2"));
  ASSERT_EQ(p4.status, 0) << p4.output;
  EXPECT_LE(testing::latent_rel_diff(out4, out, "sample.1"), 1e-5);
}

}  // namespace
}  // namespace paradit
