// Bad input around the decoder-LLM text encoders, through `paradit generate`: a text encoder
// class paradit lacks is named with exit 2 and no output; a prompt longer than the encoder's
// limit is truncated as diffusers does, with one warning line; sharded LLM weights load.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "io/diffusers.h"
#include "io/safetensors.h"
#include "models/llm/decoder_lm.h"
#include "pipelines/helpers.h"
#include "support/cli_process.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using testing::Proc;
using testing::run_np;

const fs::path kData = fs::path(PARADIT_TEST_DATA);
const fs::path kDir = fs::path(PARADIT_TEST_BINARY_DIR) / "llm_bad_input";

std::string generate(const fs::path& model, const std::string& prompt, const fs::path& out,
                     const std::string& flags = "") {
  return std::string(PARADIT_BINARY) + " generate --model '" + model.string() + "' --prompt '" +
         prompt + "' --height 64 --width 64 --num_inference_steps 1 --output '" + out.string() +
         "' " + flags;
}

TEST(LLMBadInput, UnknownTextEncoderArchitectureNamesTheClass) {
  const fs::path pipe = kDir / "z_image_gemma";
  fs::remove_all(pipe);
  fs::create_directories(kDir);
  fs::copy(kData / "pipeline" / "z_image", pipe, fs::copy_options::recursive);
  io::Json cfg = io::read_json(pipe / "text_encoder" / "config.json");
  cfg["architectures"] = {"Gemma3ForCausalLM"};
  std::ofstream(pipe / "text_encoder" / "config.json") << cfg.dump(2);
  const fs::path out = kDir / "never.png";
  const Proc p = run_np(1, generate(pipe, "a cat", out));
  EXPECT_EQ(p.status, 2) << p.output;
  EXPECT_NE(p.output.find("text encoder architecture 'Gemma3ForCausalLM' is not supported"),
            std::string::npos)
      << p.output;
  EXPECT_FALSE(fs::exists(out));
}

TEST(LLMBadInput, LongPromptIsTruncatedWithAWarning) {
  fs::create_directories(kDir);
  std::string prompt;
  for (int i = 0; i < 40; ++i) prompt += "a very long prompt about a cat ";
  const fs::path out = kDir / "long.png";
  const Proc p =
      run_np(1, generate(kData / "pipeline" / "z_image", prompt, out, "--max_sequence_length 32"));
  EXPECT_EQ(p.status, 0) << p.output;
  EXPECT_NE(p.output.find("paradit: warning: the prompt is longer than"), std::string::npos)
      << p.output;
  EXPECT_TRUE(fs::exists(out));
}

// The llama fixture's weights cut into two shards with an index load to the same hidden states.
TEST(LLMBadInput, ShardedWeightsLoad) {
  const fs::path src = kData / "text_encoder" / "llama", dir = kDir / "llama_sharded";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(src / "config.json", dir / "config.json");
  const io::TensorSource all = io::TensorSource::open(src / "model.safetensors");
  std::vector<std::pair<std::string, core::Tensor>> a, b;
  io::Json map = io::Json::object();
  for (const std::string& n : all.names()) {
    const bool first = n.find("layers.0.") != std::string::npos || n == "embed_tokens.weight";
    (first ? a : b).emplace_back(n, all.load(n));
    map[n] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  io::save_safetensors(dir / "model-00001-of-00002.safetensors", a);
  io::save_safetensors(dir / "model-00002-of-00002.safetensors", b);
  std::ofstream(dir / "model.safetensors.index.json")
      << io::Json{{"metadata", io::Json::object()}, {"weight_map", map}}.dump();
  const auto in = io::TensorSource::open(src / "inputs.safetensors");
  const core::Tensor ids = in.load("input_ids", core::DType::I64), mask = in.load("attention_mask");
  const auto one = models::llm::DecoderLM::load(src).hidden_states(ids, mask, {-1})[0];
  const auto two = models::llm::DecoderLM::load(dir).hidden_states(ids, mask, {-1})[0];
  EXPECT_EQ(pipelines::testing::max_abs(one, two), 0.0);
}

}  // namespace
}  // namespace paradit
