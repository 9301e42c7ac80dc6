// The model registry (make_transformer / load_transformer dispatch), the random-weight generator
// behind make-model, and the presets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/diffusers.h"
#include "models/common/random_weights.h"
#include "models/presets.h"
#include "models/transformer.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using models::common::RandomWeights;

io::Config preset(const std::string& arch, const std::string& size) {
  return io::Config(models::preset_config(arch, size), "preset " + arch + "/" + size);
}

TEST(Registry, DispatchesEveryPresetArchToItsClass) {
  for (const auto& arch : models::preset_archs()) {
    const io::Config config = preset(arch, "tiny");
    RandomWeights weights(1);
    auto model = models::make_transformer(config, weights);
    EXPECT_EQ(model->class_name(), config.class_name()) << arch;
    EXPECT_GT(weights.parameter_count(), 0) << arch;
  }
}

TEST(Registry, UnknownClassNameIsAnError) {
  io::Json json = models::preset_config("dit", "tiny");
  json["_class_name"] = "UNet2DConditionModel";
  RandomWeights weights(1);
  try {
    models::make_transformer(io::Config(json, "x/config.json"), weights);
    FAIL() << "expected paradit::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("UNet2DConditionModel"), std::string::npos) << msg;
    EXPECT_NE(msg.find("x/config.json"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// Checkpoints converted before diffusers 0.28 say Transformer2DModel; norm_type picks the family.
TEST(Registry, LegacyTransformer2DModelDispatchesByNormType) {
  io::Json dit = models::preset_config("dit", "tiny");
  dit["_class_name"] = "Transformer2DModel";
  io::Json pixart = models::preset_config("pixart-sigma", "tiny");
  pixart["_class_name"] = "Transformer2DModel";
  RandomWeights w1(1), w2(1);
  EXPECT_EQ(models::make_transformer(io::Config(dit, "dit"), w1)->class_name(),
            "DiTTransformer2DModel");
  EXPECT_EQ(models::make_transformer(io::Config(pixart, "pixart"), w2)->class_name(),
            "PixArtTransformer2DModel");
  io::Json other = dit;
  other["norm_type"] = "layer_norm";
  RandomWeights w3(1);
  EXPECT_THROW(models::make_transformer(io::Config(other, "other"), w3), Error);
}

// A pipeline folder resolves to its transformer/ component.
TEST(Registry, LoadsFromAPipelineFolder) {
  const fs::path root =
      fs::temp_directory_path() / ("paradit_test_pipeline_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "transformer");
  const fs::path src = fs::path(PARADIT_TEST_DATA) / "transformer" / "dit";
  fs::copy_file(src / "config.json", root / "transformer" / "config.json");
  fs::copy_file(src / "diffusion_pytorch_model.safetensors",
                root / "transformer" / "diffusion_pytorch_model.safetensors");
  std::ofstream(root / "model_index.json")
      << R"({"_class_name": "DiTPipeline", "_diffusers_version": "0.40.0.dev0",
            "transformer": ["diffusers", "DiTTransformer2DModel"]})";
  std::string cls;
  try {
    cls = models::load_transformer(root)->class_name();
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
  }
  fs::remove_all(root);
  EXPECT_EQ(cls, "DiTTransformer2DModel");
}

// ---------------------------------------------------------------- random weights
// An independent implementation of the generator as random_weights.h documents it.
struct DocumentedGenerator {
  static uint64_t fnv1a(const std::string& s) {
    uint64_t h = 14695981039346656037ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
  }
  static uint64_t splitmix(uint64_t& x) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  // Standard normals of chunk 0 (n ≤ 65536).
  static std::vector<double> normals(uint64_t seed, const std::string& name, size_t n) {
    uint64_t sm = (fnv1a(name) ^ (seed * 0x9E3779B97F4A7C15ull)) + 0;
    uint64_t s[4];
    for (auto& w : s) w = splitmix(sm);
    auto next = [&] {
      const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
      s[2] ^= s[0];
      s[3] ^= s[1];
      s[1] ^= s[2];
      s[0] ^= s[3];
      s[2] ^= t;
      s[3] = rotl(s[3], 45);
      return r;
    };
    std::vector<double> out;
    while (out.size() < n) {
      const double u1 = 1.0 - (next() >> 11) * 0x1.0p-53, u2 = (next() >> 11) * 0x1.0p-53;
      const double r = std::sqrt(-2 * std::log(u1));
      out.push_back(r * std::cos(2 * std::numbers::pi * u2));
      out.push_back(r * std::sin(2 * std::numbers::pi * u2));
    }
    out.resize(n);
    return out;
  }
};

TEST(RandomWeights, FollowsTheDocumentedGenerator) {
  RandomWeights weights(42);
  const core::Tensor m = weights.get("blocks.0.attn.to_q.weight", {8, 16}, core::DType::F32);
  const core::Tensor b = weights.get("blocks.0.attn.to_q.bias", {8}, core::DType::F32);
  const core::Tensor g = weights.get("blocks.0.norm.weight", {8}, core::DType::F32);
  const auto zm = DocumentedGenerator::normals(42, "blocks.0.attn.to_q.weight", 128);
  const auto zb = DocumentedGenerator::normals(42, "blocks.0.attn.to_q.bias", 8);
  const auto zg = DocumentedGenerator::normals(42, "blocks.0.norm.weight", 8);
  const std::vector<float> vm = m.to_vector(), vb = b.to_vector(), vg = g.to_vector();
  for (size_t i = 0; i < 128; ++i) EXPECT_NEAR(vm[i], zm[i] / 4.0, 1e-6) << i;  // 1/sqrt(16)
  for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(vb[i], 0.05 * zb[i], 1e-6) << i;
  for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(vg[i], 1.0 + 0.1 * zg[i], 1e-6) << i;
}

TEST(RandomWeights, DeterministicPerSeedAndName) {
  RandomWeights a(7), b(7), c(8);
  // Request order must not matter.
  b.get("other", {3, 3}, core::DType::F32);
  const auto va = a.get("w", {300, 300}, core::DType::F32).to_vector();
  const auto vb = b.get("w", {300, 300}, core::DType::F32).to_vector();
  const auto vc = c.get("w", {300, 300}, core::DType::F32).to_vector();
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  // Many chunks: the statistics of a (300, 300) matrix are those of randn / sqrt(300).
  double mean = 0, sq = 0;
  for (float v : va) mean += v, sq += double(v) * v;
  mean /= va.size();
  const double sd = std::sqrt(sq / va.size() - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.01 / std::sqrt(300.0) * 3);
  EXPECT_NEAR(sd * std::sqrt(300.0), 1.0, 0.02);
}

TEST(RandomWeights, RecordsNamesShapesAndStoresBF16) {
  RandomWeights w(3, core::DType::BF16);
  const core::Tensor f = w.get("a.weight", {4, 6}, core::DType::F32);
  const core::Tensor h = w.get("a.weight", {4, 6}, core::DType::BF16);  // the same tensor again
  w.get("a.bias", {4}, core::DType::F32);
  ASSERT_EQ(w.entries().size(), 2u);
  EXPECT_EQ(w.entries()[0].name, "a.weight");
  EXPECT_EQ(w.entries()[0].stored.dtype(), core::DType::BF16);
  EXPECT_EQ(w.parameter_count(), 28);
  EXPECT_EQ(w.stored_bytes(), 56u);
  EXPECT_EQ(f.to_vector(), h.to_vector());  // F32 view of the rounded values
  EXPECT_THROW(w.get("a.weight", {6, 4}, core::DType::F32), Error);
}

TEST(RandomWeights, DryRunCountsWithoutAllocating) {
  RandomWeights real(5), dry(5, core::DType::F32, /*dry_run=*/true);
  models::make_transformer(preset("pixart-alpha", "tiny"), real);
  models::make_transformer(preset("pixart-alpha", "tiny"), dry);
  EXPECT_EQ(dry.parameter_count(), real.parameter_count());
  EXPECT_EQ(dry.entries().size(), real.entries().size());
  const core::Tensor p = dry.get("x", {1 << 20, 1 << 12}, core::DType::F32);  // 16 GiB if real
  EXPECT_EQ(p.shape(), (core::Shape{1 << 20, 1 << 12}));
  EXPECT_LE(p.storage()->nbytes, 64u);
}

// ---------------------------------------------------------------- presets
// Parameter counts from the architecture's closed form (diffusers' module list), independent of
// the binding code.
int64_t pixart_params(int64_t D, int64_t L, int64_t c_in, int64_t p, int64_t caption, int64_t c_out,
                      bool micro) {
  const int64_t S = D / 3;
  int64_t n = D * c_in * p * p + D;                           // pos_embed.proj
  n += 256 * D + D + D * D + D;                               // adaln_single.emb.timestep_embedder
  if (micro) n += 2 * (256 * S + S + S * S + S);              // resolution / aspect_ratio embedders
  n += D * 6 * D + 6 * D;                                     // adaln_single.linear
  n += caption * D + D + D * D + D;                           // caption_projection
  const int64_t block = 6 * D + 4 * (D * D + D)               // scale_shift_table, attn1
                        + 4 * (D * D + D)                     // attn2 (cross dim = D)
                        + D * 4 * D + 4 * D + 4 * D * D + D;  // ff
  n += L * block;
  n += 2 * D + D * p * p * c_out + p * p * c_out;  // scale_shift_table, proj_out
  return n;
}

int64_t dit_params(int64_t D, int64_t L, int64_t c_in, int64_t p, int64_t classes, int64_t c_out) {
  int64_t n = D * c_in * p * p + D;                                    // pos_embed.proj
  const int64_t block = (256 * D + D + D * D + D) + (classes + 1) * D  // norm1.emb
                        + D * 6 * D + 6 * D                            // norm1.linear
                        + 4 * (D * D + D)                              // attn1
                        + D * 4 * D + 4 * D + 4 * D * D + D;           // ff
  n += L * block;
  n += D * 2 * D + 2 * D + D * p * p * c_out + p * p * c_out;  // proj_out_1, proj_out_2
  return n;
}

TEST(Presets, ParameterCountsMatchTheArchitectures) {
  struct Case {
    std::string arch, size;
    int64_t expected;
  };
  const std::vector<Case> cases = {
      {"pixart-sigma", "tiny", pixart_params(64, 2, 4, 2, 32, 8, false)},
      {"pixart-alpha", "tiny", pixart_params(96, 2, 4, 2, 32, 8, true)},
      {"pixart-sigma", "small", pixart_params(768, 12, 4, 2, 4096, 8, false)},
      {"pixart-sigma", "full", pixart_params(1152, 28, 4, 2, 4096, 8, false)},
      {"pixart-alpha", "full", pixart_params(1152, 28, 4, 2, 4096, 8, true)},
      {"dit", "tiny", dit_params(64, 2, 4, 2, 1000, 8)},
      {"dit", "full", dit_params(1152, 28, 4, 2, 1000, 8)},
  };
  for (const auto& c : cases) {
    RandomWeights dry(0, core::DType::F32, /*dry_run=*/true);
    models::make_transformer(preset(c.arch, c.size), dry);
    EXPECT_EQ(dry.parameter_count(), c.expected) << c.arch << "/" << c.size;
  }
}

// The tiny presets have the fixtures' shapes: same parameter counts as diffusers reported for
// them (the fixtures' meta.json n_params), plus, for SD3, the persistent pos_embed buffer
// (1, 16·16, 64) that the checkpoint holds but parameters() does not count.
TEST(Presets, TinyPresetsHaveTheFixtureParameterCounts) {
  const int64_t sd3_buffer = 16 * 16 * 64;
  const std::vector<std::pair<std::string, int64_t>> cases = {{"flux", 488960},
                                                              {"flux-schnell", 318912},
                                                              {"sd3", 289984 + sd3_buffer},
                                                              {"sd35", 319264 + sd3_buffer},
                                                              {"pixart-sigma", 188640},
                                                              {"pixart-alpha", 424384},
                                                              {"dit", 330208}};
  for (const auto& [arch, expected] : cases) {
    RandomWeights dry(0, core::DType::F32, /*dry_run=*/true);
    models::make_transformer(preset(arch, "tiny"), dry);
    EXPECT_EQ(dry.parameter_count(), expected) << arch;
  }
}

TEST(Presets, UnknownNamesAreErrors) {
  EXPECT_THROW(models::preset_config("sdxl", "tiny"), Error);
  EXPECT_THROW(models::preset_config("flux", "huge"), Error);
}

}  // namespace
}  // namespace paradit
