// The server's memory mode: Pipeline::set_keep_loaded and the TextEncoderCache behind it. A kept
// pipeline must give exactly what a fresh default pipeline gives, call after call; the cache must
// hold encoders only while it is in use.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "core/tensor.h"
#include "pipelines/pipeline.h"
#include "pipelines/text_encoding.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using core::Tensor;

bool same(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  const Tensor x = a.contiguous(), y = b.contiguous();
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (x.data<float>()[i] != y.data<float>()[i]) return false;
  }
  return true;
}

class KeepLoadedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      model_ = pipelines::default_model_dir();
    } catch (const std::exception& e) {
      GTEST_SKIP() << "no shipped model: " << e.what();
    }
  }
  fs::path model_;
};

pipelines::GenerateRequest request(uint64_t seed, const std::string& prompt) {
  pipelines::GenerateRequest r;
  r.prompts = {prompt};
  r.width = 16;
  r.height = 16;
  r.num_inference_steps = 2;
  r.seed = seed;
  return r;
}

TEST_F(KeepLoadedTest, KeptPipelineEqualsFreshDefaultPipelineCallAfterCall) {
  auto kept = pipelines::Pipeline::open(model_);
  kept->set_keep_loaded(true);
  kept->preload();
  const std::vector<pipelines::GenerateRequest> calls = {
      request(1, "a small red circle on the left on a blue background"),
      request(2, "a big green square at the top on a yellow background"),
      request(1, "a small red circle on the left on a blue background")};
  std::vector<Tensor> kept_images;
  for (const auto& call : calls) {
    const pipelines::GenerateResult got = kept->generate(call);
    auto fresh = pipelines::Pipeline::open(model_);  // default mode, a new pipeline each time
    const pipelines::GenerateResult want = fresh->generate(call);
    EXPECT_TRUE(same(got.embeddings.at("prompt_embeds"), want.embeddings.at("prompt_embeds")));
    EXPECT_TRUE(same(got.latents, want.latents));
    EXPECT_TRUE(same(got.images, want.images));
    kept_images.push_back(got.images);
  }
  EXPECT_TRUE(same(kept_images[0], kept_images[2]));
  EXPECT_FALSE(same(kept_images[0], kept_images[1]));
  // Back to the default mode: what was kept is freed, results unchanged.
  kept->set_keep_loaded(false);
  EXPECT_TRUE(same(kept->generate(calls[1]).images, kept_images[1]));
}

TEST_F(KeepLoadedTest, TextEncoderCacheKeepsOnlyWhileInUse) {
  const fs::path encoder = model_ / "text_encoder";
  const pipelines::TokenBatch tokens =
      pipelines::tokenize_t5(model_ / "tokenizer", {"a blue square"}, 16);
  const Tensor plain = pipelines::run_t5(encoder, {}, tokens, true);  // (1, 16, d)

  pipelines::TextEncoderCache cache;
  double load_seconds = 0;
  {
    const pipelines::TextEncoderCache::Use use(&cache);
    EXPECT_EQ(pipelines::TextEncoderCache::current(), &cache);
    EXPECT_TRUE(same(pipelines::run_t5(encoder, {}, tokens, true, &load_seconds), plain));
    EXPECT_EQ(cache.size(), 1u);
    const double first_load = load_seconds;
    EXPECT_GT(first_load, 0.0);
    // Kept: the second call loads nothing (adds exactly 0 seconds) and gives the same output.
    EXPECT_TRUE(same(pipelines::run_t5(encoder, {}, tokens, true, &load_seconds), plain));
    EXPECT_EQ(load_seconds, first_load);
    EXPECT_EQ(cache.size(), 1u);
  }
  EXPECT_EQ(pipelines::TextEncoderCache::current(), nullptr);
  pipelines::run_t5(encoder, {}, tokens, true);  // no cache in use: nothing is added
  EXPECT_EQ(cache.size(), 1u);
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace paradit
