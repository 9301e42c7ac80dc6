// Decoder-LLM text encoders (src/models/llm) against the transformers 5.25 fixtures
// (tests/data/text_encoder/{qwen2_5_vl,qwen3,mistral3,llama}): every hidden state, and the prompt
// embeddings each pipeline derives from them.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/llm/decoder_lm.h"
#include "models/llm/prompt_embeds.h"
#include "support/transformer_fixtures.h"

namespace paradit {
namespace {

using core::Tensor;
using models::llm::DecoderLM;
using testing::rel_l2_err;

constexpr double kTol = 1e-4;

std::filesystem::path case_dir(const std::string& name) {
  return std::filesystem::path(PARADIT_TEST_DATA) / "text_encoder" / name;
}

struct Case {
  DecoderLM model;
  models::NamedTensors inputs, outputs;
};

Case load_case(const std::string& name) {
  const auto dir = case_dir(name);
  return {DecoderLM::load(dir), testing::read_all(dir / "inputs.safetensors"),
          testing::read_all(dir / "outputs.safetensors")};
}

// Every hidden_states.i of the fixture.
void check_all_hidden_states(const Case& c, const std::string& prefix = "") {
  const int L = static_cast<int>(c.model.config().num_layers);
  std::vector<int> all;
  for (int i = 0; i <= L; ++i) all.push_back(i);
  const auto hs = c.model.hidden_states(c.inputs.at(prefix + "input_ids"),
                                        c.inputs.at(prefix + "attention_mask"), all);
  for (int i = 0; i <= L; ++i) {
    const std::string key = "hidden_states." + std::to_string(i);
    SCOPED_TRACE(key);
    const double err = rel_l2_err(hs[static_cast<size_t>(i)], c.outputs.at(key));
    EXPECT_LE(err, kTol);
    if (i == L) std::printf("  %s: rel-L2 %.2e\n", key.c_str(), err);
  }
}

TEST(DecoderLM, Qwen25VLTextPathAndQwenImageEmbeds) {
  const Case c = load_case("qwen2_5_vl");
  EXPECT_TRUE(c.model.config().mrope);
  EXPECT_TRUE(c.model.config().qkv_bias);
  check_all_hidden_states(c);
  // QwenImagePipeline: hidden_states[-1] at the tokens, less the 34 template tokens, padded.
  const Tensor& mask = c.inputs.at("attention_mask");
  const Tensor last = c.model.hidden_states(c.inputs.at("input_ids"), mask, {-1})[0];
  const auto padded =
      models::llm::pad_rows(models::llm::valid_rows(last, models::llm::token_counts(mask), 34));
  EXPECT_LE(rel_l2_err(padded.embeds, c.outputs.at("prompt_embeds")), kTol);
  EXPECT_EQ(padded.mask.to_vector(), c.outputs.at("prompt_embeds_mask").to_vector());
}

TEST(DecoderLM, Qwen3ZImageAndKleinEmbeds) {
  const Case c = load_case("qwen3");
  EXPECT_TRUE(c.model.config().qk_norm);
  check_all_hidden_states(c);
  // Z-Image: hidden_states[-2] at each prompt's tokens.
  const Tensor& mask = c.inputs.at("attention_mask");
  const Tensor h = c.model.hidden_states(c.inputs.at("input_ids"), mask, {-2})[0];
  const auto rows = models::llm::valid_rows(h, models::llm::token_counts(mask), 0);
  ASSERT_EQ(rows.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_LE(rel_l2_err(rows[i], c.outputs.at("z_image.prompt_embeds." + std::to_string(i))),
              kTol);
  }
  // FLUX.2 klein: hidden states 9, 18, 27 side by side, every position.
  const auto hs = c.model.hidden_states(c.inputs.at("flux2_klein.input_ids"),
                                        c.inputs.at("flux2_klein.attention_mask"), {9, 18, 27});
  EXPECT_LE(rel_l2_err(models::llm::stack_features(hs), c.outputs.at("flux2_klein.prompt_embeds")),
            kTol);
}

TEST(DecoderLM, Mistral3LanguageModelFlux2Embeds) {
  const Case c = load_case("mistral3");
  check_all_hidden_states(c);
  const auto hs =
      c.model.hidden_states(c.inputs.at("input_ids"), c.inputs.at("attention_mask"), {10, 20, 30});
  EXPECT_LE(rel_l2_err(models::llm::stack_features(hs), c.outputs.at("prompt_embeds")), kTol);
}

TEST(DecoderLM, LlamaHunyuanVideoEmbeds) {
  const Case c = load_case("llama");
  check_all_hidden_states(c);
  // HunyuanVideo: hidden_states[-3][:, 95:] and the mask from 95 on.
  const Tensor& mask = c.inputs.at("attention_mask");
  const Tensor h = c.model.hidden_states(c.inputs.at("input_ids"), mask, {-3})[0];
  EXPECT_LE(rel_l2_err(h.slice(1, 95, h.dim(1)), c.outputs.at("prompt_embeds")), kTol);
  EXPECT_EQ(mask.slice(1, 95, mask.dim(1)).to_vector(),
            c.outputs.at("prompt_attention_mask").to_vector());
}

TEST(DecoderLM, Bf16WeightsStayClose) {
  const auto dir = case_dir("llama");
  const DecoderLM f32 = DecoderLM::load(dir);
  const DecoderLM bf16 = DecoderLM::load(dir, core::DType::BF16);
  const auto in = testing::read_all(dir / "inputs.safetensors");
  const Tensor a = f32.hidden_states(in.at("input_ids"), in.at("attention_mask"), {-1})[0];
  const Tensor b = bf16.hidden_states(in.at("input_ids"), in.at("attention_mask"), {-1})[0];
  EXPECT_LE(rel_l2_err(b, a), 3e-2);
  EXPECT_GT(rel_l2_err(b, a), 0.0);  // the bf16 path really ran
}

TEST(DecoderLM, UnknownArchitectureNamesTheClass) {
  const io::Config config(io::Json{{"architectures", {"GemmaForCausalLM"}}}, "te/config.json");
  try {
    models::llm::DecoderLMConfig::from(config);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text encoder architecture 'GemmaForCausalLM'"),
              std::string::npos)
        << e.what();
  }
}

TEST(DecoderLM, HiddenStateIndexOutOfRange) {
  const Case c = load_case("llama");
  EXPECT_THROW(c.model.hidden_states(c.inputs.at("input_ids"), {}, {5}), Error);
  EXPECT_THROW(c.model.hidden_states(c.inputs.at("input_ids"), {}, {-5}), Error);
}

}  // namespace
}  // namespace paradit
