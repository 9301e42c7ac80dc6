#pragma once
// The decoder-LLM half of the new pipelines' encode_prompt (Qwen-Image, Z-Image, FLUX.2 dev and
// klein, HunyuanVideo's Llama path): chat templates as the checkpoints' templates render the
// pipelines' messages, tokenizing with the folder's tokenizer.json (models::tokenizers), and
// running the decoder LLM once over the batch for the hidden states the pipeline takes (the
// encoder is freed before returning).

#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "pipelines/text_encoding.h"

namespace paradit::pipelines {

// The Qwen chat template on one user message, with the assistant turn opened
// (add_generation_prompt) and, with enable_thinking false, the empty think block Qwen3 adds.
std::string qwen_chat(const std::string& user, bool enable_thinking);
// FLUX.2's Mistral Small 3.1 template over format_input([prompt], system): "<s>[SYSTEM_PROMPT]…
// [/SYSTEM_PROMPT][INST]prompt[/INST]" ("[IMG]" removed from the prompt, as format_input does).
std::string flux2_mistral_chat(const std::string& prompt, const std::string& system);
// FLUX.2's SYSTEM_MESSAGE (diffusers pipelines/flux2/system_messages.py).
extern const char* const kFlux2SystemMessage;

// tokenizer(texts, padding=…, max_length=L, truncation=True) with tokenizer.json:
// pad_to_max → every row L tokens; otherwise padded to the longest row. add_special_tokens as
// the call (apply_chat_template tokenizes without them). Warns (one line) when it truncates.
TokenBatch tokenize_llm(const std::filesystem::path& tokenizer_dir,
                        const std::vector<std::string>& texts, int max_length, bool pad_to_max,
                        bool add_special_tokens = true);

// The decoder LLM of `encoder_dir` (models::llm::DecoderLM) over the batch, returning the
// hidden states `layers` (transformers' output_hidden_states indices; negative from the end).
// The encoder is loaded, run and freed; `load_seconds` (optional) receives the load time.
std::vector<core::Tensor> run_decoder_lm(const std::filesystem::path& encoder_dir,
                                         const core::Placement& place, const TokenBatch& tokens,
                                         const std::vector<int>& layers,
                                         double* load_seconds = nullptr);

}  // namespace paradit::pipelines
