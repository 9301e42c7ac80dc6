#include "pipelines/text_encoding.h"

#include <chrono>
#include <climits>
#include <cstring>
#include <optional>

#include "core/error.h"
#include "models/clip/encoder.h"
#include "models/clip/tokenizer.h"
#include "models/common/text.h"
#include "models/t5/encoder.h"
#include "models/t5/tokenizer.h"
#include "models/tokenizers/tokenizer.h"
#include "pipelines/tokenizer_files.h"

namespace paradit::pipelines {

namespace fs = std::filesystem;
using core::Tensor;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TokenBatch to_batch(const std::vector<models::common::Encoding>& encodings, int max_length) {
  const int64_t B = static_cast<int64_t>(encodings.size());
  std::vector<int64_t> ids, mask;
  ids.reserve(static_cast<size_t>(B * max_length));
  mask.reserve(static_cast<size_t>(B * max_length));
  for (const auto& e : encodings) {
    PARADIT_CHECK(static_cast<int64_t>(e.ids.size()) == max_length,
                  "tokenizer: expected ", max_length, " ids after padding, found ", e.ids.size());
    ids.insert(ids.end(), e.ids.begin(), e.ids.end());
    mask.insert(mask.end(), e.mask.begin(), e.mask.end());
  }
  return {Tensor::from_vector_i64(ids, {B, max_length}),     // (B, L)
          Tensor::from_vector_i64(mask, {B, max_length})};   // (B, L)
}

// Python's str.isspace(): Unicode White_Space plus the ASCII information separators.
bool python_isspace(char32_t c) {
  return models::common::is_whitespace(c) || (c >= 0x1c && c <= 0x1f);
}

}  // namespace

int tokenizer_max_length(const fs::path& tokenizer_dir, int fallback) {
  const fs::path config = tokenizer_dir / "tokenizer_config.json";
  if (!fs::exists(config)) return fallback;
  const nlohmann::json j = models::common::read_json_file(config, "tokenizer config");
  const auto it = j.find("model_max_length");
  if (it == j.end() || !it->is_number()) return fallback;
  // transformers writes a huge sentinel (1e30) when the tokenizer has no limit.
  const double v = it->get<double>();
  if (!(v >= 1) || v > INT_MAX) return fallback;
  return static_cast<int>(v);
}

namespace {
// Every folder with a tokenizer.json goes through the tokenizer.json tokenizer
// (models/tokenizers), as transformers' fast tokenizers do.
TokenBatch tokenize_json(const fs::path& tokenizer_dir, const std::vector<std::string>& texts,
                         int max_length) {
  const models::tokenizers::Tokenizer tok = models::tokenizers::Tokenizer::load(tokenizer_dir);
  std::vector<models::common::Encoding> encodings;
  for (const std::string& text : texts) encodings.push_back(tok.encode(text, max_length, true));
  return to_batch(encodings, max_length);
}
}  // namespace

TokenBatch tokenize_t5(const fs::path& tokenizer_dir, const std::vector<std::string>& texts,
                       int max_length) {
  if (fs::exists(tokenizer_dir / "tokenizer.json")) {
    return tokenize_json(tokenizer_dir, texts, max_length);
  }
  const models::t5::T5Tokenizer tok = load_t5_tokenizer(tokenizer_dir);  // spiece.model only
  std::vector<models::common::Encoding> encodings;
  for (const std::string& text : texts) encodings.push_back(tok.encode(text, max_length, true));
  return to_batch(encodings, max_length);
}

TokenBatch tokenize_clip(const fs::path& tokenizer_dir, const std::vector<std::string>& texts,
                         int max_length) {
  if (fs::exists(tokenizer_dir / "tokenizer.json")) {
    return tokenize_json(tokenizer_dir, texts, max_length);
  }
  // vocab.json + merges.txt only
  const models::clip::ClipTokenizer tok = load_clip_tokenizer(tokenizer_dir);
  std::vector<models::common::Encoding> encodings;
  for (const std::string& text : texts) encodings.push_back(tok.encode(text, max_length, true));
  return to_batch(encodings, max_length);
}

// ---------------------------------------------------------------- kept encoders

namespace {
thread_local TextEncoderCache* t_current_cache = nullptr;

// Loads an encoder into a shared pointer, timing it.
template <typename Encoder>
std::shared_ptr<const Encoder> load_encoder(const fs::path& dir, const core::Placement& place,
                                            double* load_seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  auto encoder = std::make_shared<const Encoder>(Encoder::load(dir, place));
  if (load_seconds) *load_seconds += seconds_since(t0);
  return encoder;
}

template <typename Encoder>
std::shared_ptr<const Encoder> kept_or_load(
    std::map<fs::path, std::shared_ptr<const Encoder>>& kept, const fs::path& dir,
    const core::Placement& place, double* load_seconds) {
  auto& slot = kept[dir.lexically_normal()];
  if (!slot) slot = load_encoder<Encoder>(dir, place, load_seconds);
  return slot;
}

// The encoder of `dir`: from the thread's cache, or loaded for this one call.
template <typename Encoder>
std::shared_ptr<const Encoder> acquire(const fs::path& dir, const core::Placement& place,
                                       double* load_seconds);

template <>
std::shared_ptr<const models::t5::T5Encoder> acquire(const fs::path& dir,
                                                     const core::Placement& place,
                                                     double* load_seconds) {
  TextEncoderCache* cache = TextEncoderCache::current();
  return cache ? cache->t5(dir, place, load_seconds)
               : load_encoder<models::t5::T5Encoder>(dir, place, load_seconds);
}

template <>
std::shared_ptr<const models::clip::ClipTextEncoder> acquire(const fs::path& dir,
                                                             const core::Placement& place,
                                                             double* load_seconds) {
  TextEncoderCache* cache = TextEncoderCache::current();
  return cache ? cache->clip(dir, place, load_seconds)
               : load_encoder<models::clip::ClipTextEncoder>(dir, place, load_seconds);
}
}  // namespace

TextEncoderCache::TextEncoderCache() = default;
TextEncoderCache::~TextEncoderCache() = default;

TextEncoderCache::Use::Use(TextEncoderCache* cache) : previous_(t_current_cache) {
  t_current_cache = cache;
}
TextEncoderCache::Use::~Use() { t_current_cache = previous_; }

TextEncoderCache* TextEncoderCache::current() { return t_current_cache; }

std::shared_ptr<const models::t5::T5Encoder> TextEncoderCache::t5(const fs::path& dir,
                                                                  const core::Placement& place,
                                                                  double* load_seconds) {
  return kept_or_load(t5_, dir, place, load_seconds);
}

std::shared_ptr<const models::clip::ClipTextEncoder> TextEncoderCache::clip(
    const fs::path& dir, const core::Placement& place, double* load_seconds) {
  return kept_or_load(clip_, dir, place, load_seconds);
}

void TextEncoderCache::clear() {
  t5_.clear();
  clip_.clear();
}

// ---------------------------------------------------------------- encoders

Tensor run_t5(const fs::path& encoder_dir, const core::Placement& place, const TokenBatch& tokens,
              bool use_mask, double* load_seconds) {
  // Without a cache the weights are released when `encoder` goes out of scope here.
  std::shared_ptr<const models::t5::T5Encoder> encoder =
      acquire<models::t5::T5Encoder>(encoder_dir, place, load_seconds);
  Tensor out = encoder->encode(tokens.ids, use_mask ? tokens.mask : Tensor(), false)
                   .last_hidden_state;  // (B, L, d_model)
  encoder.reset();
  return out.contiguous();
}

ClipOutputs run_clip(const fs::path& encoder_dir, const core::Placement& place,
                     const TokenBatch& tokens, double* load_seconds) {
  std::shared_ptr<const models::clip::ClipTextEncoder> encoder =
      acquire<models::clip::ClipTextEncoder>(encoder_dir, place, load_seconds);
  models::clip::ClipTextOutput o = encoder->encode(tokens.ids, Tensor(), true);
  PARADIT_CHECK(o.hidden_states.size() >= 2, encoder_dir.string(),
                ": the CLIP text encoder returned ", o.hidden_states.size(),
                " hidden states, expected at least 2");
  ClipOutputs out;
  out.penultimate = o.hidden_states[o.hidden_states.size() - 2].contiguous();  // (B, L, hidden)
  out.pooled = o.pooled_output.contiguous();                                  // (B, hidden)
  if (o.text_embeds.defined()) out.text_embeds = o.text_embeds.contiguous();  // (B, proj)
  encoder.reset();
  return out;
}

std::string pixart_text_preprocessing(const std::string& text) {
  std::u32string s = models::common::utf8_to_u32(text);
  // Python's lower() maps a capital sigma at the end of a word to the final form ς; the
  // per-character lowercase would give σ.
  std::u32string lowered = models::common::to_lower(s);
  if (lowered.size() == s.size()) {
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != U'\u03A3') continue;
      const bool after_letter = i > 0 && models::common::is_letter(s[i - 1]);
      const bool before_letter = i + 1 < s.size() && models::common::is_letter(s[i + 1]);
      if (after_letter && !before_letter) lowered[i] = U'\u03C2';
    }
  }
  size_t begin = 0, end = lowered.size();
  while (begin < end && python_isspace(lowered[begin])) ++begin;
  while (end > begin && python_isspace(lowered[end - 1])) --end;
  return models::common::u32_to_utf8(std::u32string_view(lowered).substr(begin, end - begin));
}

Tensor batch_rows(const Tensor& t, int64_t begin, int64_t end) {
  return t.slice(0, begin, end).clone();
}

}  // namespace paradit::pipelines
