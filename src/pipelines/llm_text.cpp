#include "pipelines/llm_text.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "models/llm/decoder_lm.h"
#include "models/tokenizers/tokenizer.h"

namespace paradit::pipelines {

namespace fs = std::filesystem;
using core::Tensor;

const char* const kFlux2SystemMessage =
    "You are an AI that reasons about image descriptions. You give structured responses "
    "focusing on object relationships, object\nattribution and actions without speculation.";

std::string qwen_chat(const std::string& user, bool enable_thinking) {
  std::string out = "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
  if (!enable_thinking) out += "<think>\n\n</think>\n\n";
  return out;
}

std::string flux2_mistral_chat(const std::string& prompt, const std::string& system) {
  std::string cleaned = prompt;
  for (size_t at = cleaned.find("[IMG]"); at != std::string::npos; at = cleaned.find("[IMG]")) {
    cleaned.erase(at, 5);
  }
  return "<s>[SYSTEM_PROMPT]" + system + "[/SYSTEM_PROMPT][INST]" + cleaned + "[/INST]";
}

TokenBatch tokenize_llm(const fs::path& tokenizer_dir, const std::vector<std::string>& texts,
                        int max_length, bool pad_to_max, bool add_special_tokens) {
  const models::tokenizers::Tokenizer tok = models::tokenizers::Tokenizer::load(tokenizer_dir);
  std::vector<models::common::Encoding> rows;
  size_t longest = 0;
  for (const std::string& text : texts) {
    rows.push_back(tok.encode(text, max_length, pad_to_max, add_special_tokens));
    longest = std::max(longest, rows.back().ids.size());
  }
  PARADIT_CHECK(!rows.empty(), tokenizer_dir.string(), ": no text to tokenize");
  const int64_t B = static_cast<int64_t>(rows.size()), L = static_cast<int64_t>(longest);
  std::vector<int64_t> ids, mask;
  for (const auto& r : rows) {
    // padding=True (longest): pad the shorter rows on the tokenizer's padding side
    const size_t n_pad = longest - r.ids.size();
    PARADIT_CHECK(n_pad == 0 || tok.pad_id() >= 0, tokenizer_dir.string(),
                  ": padding needs a pad token, and the tokenizer defines none");
    const bool left = tok.padding_side() == models::common::Side::kLeft;
    if (left) ids.insert(ids.end(), n_pad, tok.pad_id()), mask.insert(mask.end(), n_pad, 0);
    ids.insert(ids.end(), r.ids.begin(), r.ids.end());
    mask.insert(mask.end(), r.mask.begin(), r.mask.end());
    if (!left) ids.insert(ids.end(), n_pad, tok.pad_id()), mask.insert(mask.end(), n_pad, 0);
  }
  return {Tensor::from_vector_i64(ids, {B, L}), Tensor::from_vector_i64(mask, {B, L})};
}

std::vector<Tensor> run_decoder_lm(const fs::path& encoder_dir, const core::Placement& place,
                                   const TokenBatch& tokens, const std::vector<int>& layers,
                                   double* load_seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  const models::llm::DecoderLM lm = models::llm::DecoderLM::load(encoder_dir, place);
  if (load_seconds != nullptr) {
    *load_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return lm.hidden_states(tokens.ids, tokens.mask, layers);
}

}  // namespace paradit::pipelines
