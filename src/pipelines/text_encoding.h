#pragma once
// The pieces of the diffusers pipelines' encode_prompt shared by the families: tokenizing a
// batch of texts the way `tokenizer(texts, padding="max_length", max_length=L,
// truncation=True)` does, running T5 / CLIP once over the batch and freeing the encoder (or
// keeping it, see TextEncoderCache), and PixArt's caption preprocessing.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace paradit::models::t5 {
class T5Encoder;
}
namespace paradit::models::clip {
class ClipTextEncoder;
}

namespace paradit::pipelines {

// A tokenized batch: ids and attention mask (B, L) I64, right-padded.
struct TokenBatch {
  core::Tensor ids;
  core::Tensor mask;
};

// tokenizer_config.json's model_max_length (CLIPTokenizer: 77), or `fallback` when absent.
int tokenizer_max_length(const std::filesystem::path& tokenizer_dir, int fallback);

TokenBatch tokenize_t5(const std::filesystem::path& tokenizer_dir,
                       const std::vector<std::string>& texts, int max_length);
TokenBatch tokenize_clip(const std::filesystem::path& tokenizer_dir,
                         const std::vector<std::string>& texts, int max_length);

// Text encoders kept loaded between calls, by folder (a server's Pipeline::set_keep_loaded).
// While a Use of a cache is alive on a thread, run_t5 / run_clip on that thread take their
// encoder from it, loading it there on first use; without one (the default) each call loads its
// encoder and frees it before returning, so no encoder weights are alive during denoising.
// Not thread-safe: one caller at a time (the server runs one job at a time per group).
class TextEncoderCache {
 public:
  TextEncoderCache();
  ~TextEncoderCache();
  TextEncoderCache(const TextEncoderCache&) = delete;
  TextEncoderCache& operator=(const TextEncoderCache&) = delete;

  // Routes run_t5 / run_clip on this thread to `cache` until destroyed (null: no caching);
  // scopes nest, the previous one comes back at the end.
  class Use {
   public:
    explicit Use(TextEncoderCache* cache);
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

   private:
    TextEncoderCache* previous_;
  };

  // The cache in use on this thread, or null.
  static TextEncoderCache* current();
  // The encoder of `dir`, loaded on first use. `load_seconds` (optional) receives the time
  // spent loading (0 when it was kept).
  std::shared_ptr<const models::t5::T5Encoder> t5(const std::filesystem::path& dir,
                                                  const core::Placement& place,
                                                  double* load_seconds);
  std::shared_ptr<const models::clip::ClipTextEncoder> clip(const std::filesystem::path& dir,
                                                            const core::Placement& place,
                                                            double* load_seconds);
  size_t size() const { return t5_.size() + clip_.size(); }
  void clear();  // frees every kept encoder

 private:
  std::map<std::filesystem::path, std::shared_ptr<const models::t5::T5Encoder>> t5_;
  std::map<std::filesystem::path, std::shared_ptr<const models::clip::ClipTextEncoder>> clip_;
};

// T5EncoderModel(input_ids, attention_mask)[0]: last_hidden_state (B, L, d_model) on `place`.
// The encoder is loaded from `encoder_dir` onto `place` and destroyed before returning (or
// taken from the thread's TextEncoderCache). `mask` undefined = no mask (Flux
// and SD3 call T5 without one). `load_seconds` (optional) receives the time spent loading.
core::Tensor run_t5(const std::filesystem::path& encoder_dir, const core::Placement& place,
                    const TokenBatch& tokens, bool use_mask, double* load_seconds = nullptr);

struct ClipOutputs {
  core::Tensor penultimate;  // hidden_states[-2] (B, L, hidden)
  core::Tensor pooled;       // pooler_output (B, hidden)
  core::Tensor text_embeds;  // (B, projection_dim) with a projection, else undefined
};
// CLIPTextModel[WithProjection](input_ids) without an attention mask, as the pipelines call it.
ClipOutputs run_clip(const std::filesystem::path& encoder_dir, const core::Placement& place,
                     const TokenBatch& tokens, double* load_seconds = nullptr);

// PixArt's _text_preprocessing(clean_caption=False): text.lower().strip().
std::string pixart_text_preprocessing(const std::string& text);

// Rows [begin, end) of a batch tensor along dim 0, as a contiguous copy.
core::Tensor batch_rows(const core::Tensor& t, int64_t begin, int64_t end);

}  // namespace paradit::pipelines
