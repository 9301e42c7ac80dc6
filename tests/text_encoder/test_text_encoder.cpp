// Text encoders against transformers 5.17 on the tiny fixtures (tests/data/text_encoder/{t5,
// umt5, clip_l, clip_g}): every output and every hidden state to 1e-4 relative L2. Plus the
// relative-position buckets against values torch computed, a plain double-precision T5
// reference for the cases the fixtures do not cover (a fully masked sample), the CLIP pooling
// rules, and bad-input errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/diffusers.h"
#include "io/safetensors.h"
#include "models/clip/encoder.h"
#include "models/t5/encoder.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using core::Tensor;

fs::path fixture(const std::string& name) {
  return fs::path(PARADIT_TEST_DATA) / "text_encoder" / name;
}

// ‖a − b‖₂ / ‖b‖₂ in double.
double rel_l2(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    den += double(y[i]) * y[i];
  }
  return std::sqrt(num / den);
}

Tensor input(const std::string& name, const std::string& tensor) {
  return io::TensorSource::open(fixture(name) / "inputs.safetensors")
      .load(tensor, core::DType::I64);
}

// Every reference output of a fixture, by name.
std::vector<std::pair<std::string, Tensor>> outputs(const std::string& name) {
  const io::TensorSource src = io::TensorSource::open(fixture(name) / "outputs.safetensors");
  std::vector<std::pair<std::string, Tensor>> out;
  for (const std::string& n : src.names()) out.emplace_back(n, src.load(n));
  return out;
}

int hidden_index(const std::string& key) {
  return std::stoi(key.substr(std::string("hidden_states.").size()));
}
bool is_hidden(const std::string& key) { return key.rfind("hidden_states.", 0) == 0; }

// A scratch folder removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() /
           ("paradit_test_text_encoder_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A copy of a fixture folder whose config.json has `edit` applied.
template <typename Edit>
void copy_with_config(const std::string& name, const fs::path& dst, Edit edit) {
  fs::copy_file(fixture(name) / "model.safetensors", dst / "model.safetensors");
  io::Json config = io::read_json(fixture(name) / "config.json");
  edit(config);
  std::ofstream(dst / "config.json") << config.dump(2);
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---------------------------------------------------------------- T5 / UMT5 golden

class T5Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(T5Golden, EveryOutputMatchesTransformers) {
  const std::string name = GetParam();
  const auto enc = models::t5::T5Encoder::load(fixture(name));
  EXPECT_EQ(enc.class_name(), name == "umt5" ? "UMT5EncoderModel" : "T5EncoderModel");
  EXPECT_EQ(enc.config().bias_per_layer, name == "umt5");
  const auto out = enc.encode(input(name, "input_ids"), input(name, "attention_mask"));
  ASSERT_EQ(out.hidden_states.size(), static_cast<size_t>(enc.config().num_layers + 1));
  int checked = 0;
  for (const auto& [key, ref] : outputs(name)) {
    const Tensor& got = key == "last_hidden_state" ? out.last_hidden_state
                                                   : out.hidden_states.at(hidden_index(key));
    EXPECT_LE(rel_l2(got, ref), 1e-4) << name << " " << key;
    ++checked;
  }
  EXPECT_EQ(checked, enc.config().num_layers + 2);
}

TEST_P(T5Golden, BF16WeightsStayClose) {
  const std::string name = GetParam();
  const auto enc = models::t5::T5Encoder::load(fixture(name), core::DType::BF16);
  const auto out = enc.encode(input(name, "input_ids"), input(name, "attention_mask"), false);
  EXPECT_TRUE(out.hidden_states.empty());
  for (const auto& [key, ref] : outputs(name)) {
    if (key != "last_hidden_state") continue;
    const double err = rel_l2(out.last_hidden_state, ref);
    EXPECT_LE(err, 2e-2) << name;
    EXPECT_GT(err, 0.0) << "bf16 weights should not reproduce f32 bit for bit";
  }
}

INSTANTIATE_TEST_SUITE_P(TextEncoder, T5Golden, ::testing::Values("t5", "umt5"));

// ---------------------------------------------------------------- CLIP golden

class ClipGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ClipGolden, EveryOutputMatchesTransformers) {
  const std::string name = GetParam();
  const auto enc = models::clip::ClipTextEncoder::load(fixture(name));
  EXPECT_EQ(enc.has_projection(), name == "clip_g");
  const auto out = enc.encode(input(name, "input_ids"));
  ASSERT_EQ(out.hidden_states.size(), static_cast<size_t>(enc.config().num_layers + 1));
  EXPECT_EQ(out.text_embeds.defined(), enc.has_projection());
  int checked = 0;
  for (const auto& [key, ref] : outputs(name)) {
    Tensor got;
    if (key == "last_hidden_state") got = out.last_hidden_state;
    if (key == "pooler_output") got = out.pooled_output;
    if (key == "text_embeds") got = out.text_embeds;
    if (is_hidden(key)) got = out.hidden_states.at(hidden_index(key));
    ASSERT_TRUE(got.defined()) << name << ": unexpected reference " << key;
    EXPECT_LE(rel_l2(got, ref), 1e-4) << name << " " << key;
    ++checked;
  }
  EXPECT_EQ(checked, enc.config().num_layers + 3);
}

TEST_P(ClipGolden, BF16WeightsStayClose) {
  const std::string name = GetParam();
  const auto enc = models::clip::ClipTextEncoder::load(fixture(name), core::DType::BF16);
  const auto out = enc.encode(input(name, "input_ids"), {}, false);
  EXPECT_TRUE(out.hidden_states.empty());
  for (const auto& [key, ref] : outputs(name)) {
    if (key != "last_hidden_state") continue;
    const double err = rel_l2(out.last_hidden_state, ref);
    EXPECT_LE(err, 2e-2) << name;
    EXPECT_GT(err, 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(TextEncoder, ClipGolden, ::testing::Values("clip_l", "clip_g"));

// ---------------------------------------------------------------- relative position buckets

// transformers' _relative_position_bucket (bidirectional) as torch computed it for relative
// positions -1000..1000: each pair is (first relative position of a run, its bucket).
const std::vector<std::pair<int, int>> kTorchBuckets32x128 = {
    {-1000, 15}, {-90, 14}, {-63, 13}, {-45, 12}, {-31, 11}, {-22, 10}, {-15, 9}, {-11, 8},
    {-7, 7},     {-6, 6},   {-5, 5},   {-4, 4},   {-3, 3},   {-2, 2},   {-1, 1},  {0, 0},
    {1, 17},     {2, 18},   {3, 19},   {4, 20},   {5, 21},   {6, 22},   {7, 23},  {8, 24},
    {12, 25},    {16, 26},  {23, 27},  {32, 28},  {46, 29},  {64, 30},  {91, 31}};
const std::vector<std::pair<int, int>> kTorchBuckets64x256 = {
    {-1000, 31}, {-215, 30}, {-181, 29}, {-152, 28}, {-127, 27}, {-107, 26}, {-90, 25}, {-76, 24},
    {-63, 23},   {-53, 22},  {-45, 21},  {-38, 20},  {-31, 19},  {-26, 18},  {-22, 17}, {-19, 16},
    {-15, 15},   {-14, 14},  {-13, 13},  {-12, 12},  {-11, 11},  {-10, 10},  {-9, 9},   {-8, 8},
    {-7, 7},     {-6, 6},    {-5, 5},    {-4, 4},    {-3, 3},    {-2, 2},    {-1, 1},   {0, 0},
    {1, 33},     {2, 34},    {3, 35},    {4, 36},    {5, 37},    {6, 38},    {7, 39},   {8, 40},
    {9, 41},     {10, 42},   {11, 43},   {12, 44},   {13, 45},   {14, 46},   {15, 47},  {16, 48},
    {20, 49},    {23, 50},   {27, 51},   {32, 52},   {39, 53},   {46, 54},   {54, 55},  {64, 56},
    {77, 57},    {91, 58},   {108, 59},  {128, 60},  {153, 61},  {182, 62},  {216, 63}};

void expect_buckets(const std::vector<std::pair<int, int>>& runs, int num_buckets,
                    int max_distance) {
  for (size_t r = 0; r < runs.size(); ++r) {
    const int end = r + 1 < runs.size() ? runs[r + 1].first : 1001;
    for (int rel = runs[r].first; rel < end; ++rel) {
      ASSERT_EQ(models::t5::relative_position_bucket(rel, true, num_buckets, max_distance),
                runs[r].second)
          << "relative position " << rel << ", " << num_buckets << " buckets, max distance "
          << max_distance;
    }
  }
}

TEST(RelativePositionBucket, MatchesTorchIncludingLogBucketEdges) {
  expect_buckets(kTorchBuckets32x128, 32, 128);
  expect_buckets(kTorchBuckets64x256, 64, 256);
}

TEST(RelativePositionBias, GathersTheTablePerOffset) {
  // table[bucket, h] = 100·bucket + h, so every entry names where it came from.
  std::vector<float> t(32 * 3);
  for (int b = 0; b < 32; ++b)
    for (int h = 0; h < 3; ++h) t[b * 3 + h] = 100.0f * b + h;
  const Tensor bias =
      models::t5::relative_position_bias(Tensor::from_vector(t, {32, 3}), 5, 7, 32, 128);
  ASSERT_EQ(bias.shape(), (core::Shape{1, 3, 5, 7}));
  for (int h = 0; h < 3; ++h)
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < 7; ++j) {
        const int rel = j - i;
        const int bucket = rel > 0 ? 16 + rel : -rel;  // all inside the exact range here
        EXPECT_EQ(bias.item_at({0, h, i, j}), 100.0 * bucket + h);
      }
}

// ---------------------------------------------------------------- T5 double reference

constexpr double kPi = 3.14159265358979323846;

// A plain double-precision T5 encoder (no shared code with the model) over the fixture weights.
struct T5Reference {
  io::TensorSource src;
  io::Json cfg;
  int64_t D, H, dk, F, L, nb, md;
  double eps;
  bool umt5;

  explicit T5Reference(const std::string& name)
      : src(io::TensorSource::open(fixture(name) / "model.safetensors")),
        cfg(io::read_json(fixture(name) / "config.json")) {
    D = cfg["d_model"];
    H = cfg["num_heads"];
    dk = cfg["d_kv"];
    F = cfg["d_ff"];
    L = cfg["num_layers"];
    nb = cfg["relative_attention_num_buckets"];
    md = cfg["relative_attention_max_distance"];
    eps = cfg["layer_norm_epsilon"];
    umt5 = cfg["model_type"] == "umt5";
  }
  std::vector<double> w(const std::string& n) const {
    const std::vector<float> v = src.load(n).to_vector();
    return {v.begin(), v.end()};
  }
  static int64_t bucket(int64_t rel, int64_t nb, int64_t md) {
    const int64_t n = nb / 2, exact = n / 2;
    const int64_t base = rel > 0 ? n : 0;
    rel = std::abs(rel);
    if (rel < exact) return base + rel;
    const double large = std::log(double(rel) / exact) / std::log(double(md) / exact) * (n - exact);
    return base + std::min<int64_t>(exact + int64_t(large), n - 1);
  }
  // x: (S, D) one sample → normed
  std::vector<double> rms(const std::vector<double>& x, const std::vector<double>& g) const {
    std::vector<double> y(x.size());
    for (size_t s = 0; s < x.size() / D; ++s) {
      double ms = 0;
      for (int64_t d = 0; d < D; ++d) ms += x[s * D + d] * x[s * D + d];
      const double r = 1.0 / std::sqrt(ms / D + eps);
      for (int64_t d = 0; d < D; ++d) y[s * D + d] = x[s * D + d] * r * g[d];
    }
    return y;
  }
  // x: (S, in) · Wᵀ, W: (out, in)
  static std::vector<double> mm(const std::vector<double>& x, const std::vector<double>& W,
                                int64_t in, int64_t out) {
    const size_t S = x.size() / in;
    std::vector<double> y(S * out, 0.0);
    for (size_t s = 0; s < S; ++s)
      for (int64_t o = 0; o < out; ++o) {
        double acc = 0;
        for (int64_t i = 0; i < in; ++i) acc += x[s * in + i] * W[o * in + i];
        y[s * out + o] = acc;
      }
    return y;
  }
  // One sample: ids (S), keep (S) → last_hidden_state (S, D).
  std::vector<double> run(const std::vector<int64_t>& ids, const std::vector<int>& keep) const {
    const int64_t S = ids.size();
    const std::vector<double> table = w("shared.weight");
    std::vector<double> x(S * D);
    for (int64_t s = 0; s < S; ++s)
      for (int64_t d = 0; d < D; ++d) x[s * D + d] = table[ids[s] * D + d];
    const double kMin = -3.4028234663852886e38;  // torch.finfo(float32).min, as transformers adds
    std::vector<double> rel_table;
    for (int64_t l = 0; l < L; ++l) {
      const std::string p = "encoder.block." + std::to_string(l) + ".layer.";
      if (l == 0 || umt5) rel_table = w(p + "0.SelfAttention.relative_attention_bias.weight");
      const std::vector<double> h = rms(x, w(p + "0.layer_norm.weight"));
      const auto q = mm(h, w(p + "0.SelfAttention.q.weight"), D, H * dk);
      const auto k = mm(h, w(p + "0.SelfAttention.k.weight"), D, H * dk);
      const auto v = mm(h, w(p + "0.SelfAttention.v.weight"), D, H * dk);
      std::vector<double> a(S * H * dk, 0.0);
      for (int64_t hh = 0; hh < H; ++hh)
        for (int64_t i = 0; i < S; ++i) {
          std::vector<double> sc(S);
          for (int64_t j = 0; j < S; ++j) {
            double dot = 0;
            for (int64_t e = 0; e < dk; ++e)
              dot += q[i * H * dk + hh * dk + e] * k[j * H * dk + hh * dk + e];
            // float32 semantics of "score + bias + min": a masked score is min whatever else.
            sc[j] = keep[j] ? dot + rel_table[bucket(j - i, nb, md) * H + hh] : kMin;
          }
          const double m = *std::max_element(sc.begin(), sc.end());
          double z = 0;
          for (double& s : sc) z += (s = std::exp(s - m));
          for (int64_t j = 0; j < S; ++j)
            for (int64_t e = 0; e < dk; ++e)
              a[i * H * dk + hh * dk + e] += sc[j] / z * v[j * H * dk + hh * dk + e];
        }
      const auto o = mm(a, w(p + "0.SelfAttention.o.weight"), H * dk, D);
      for (size_t n = 0; n < x.size(); ++n) x[n] += o[n];
      const std::vector<double> g = rms(x, w(p + "1.layer_norm.weight"));
      auto f0 = mm(g, w(p + "1.DenseReluDense.wi_0.weight"), D, F);
      const auto f1 = mm(g, w(p + "1.DenseReluDense.wi_1.weight"), D, F);
      for (size_t n = 0; n < f0.size(); ++n) {
        const double u = f0[n];
        f0[n] = 0.5 * u * (1 + std::tanh(std::sqrt(2 / kPi) * (u + 0.044715 * u * u * u))) * f1[n];
      }
      const auto y = mm(f0, w(p + "1.DenseReluDense.wo.weight"), F, D);
      for (size_t n = 0; n < x.size(); ++n) x[n] += y[n];
    }
    return rms(x, w("encoder.final_layer_norm.weight"));
  }
};

TEST(T5Reference, AgreesWithTheFixtures) {
  // Validates the reference itself before it judges the cases the fixtures lack.
  for (const std::string name : {"t5", "umt5"}) {
    const T5Reference ref(name);
    const Tensor ids = input(name, "input_ids"), mask = input(name, "attention_mask");
    const int64_t B = ids.dim(0), S = ids.dim(1);
    std::vector<float> all;
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> id(S);
      std::vector<int> keep(S);
      for (int64_t s = 0; s < S; ++s) {
        id[s] = static_cast<int64_t>(ids.item_at({b, s}));
        keep[s] = mask.item_at({b, s}) != 0;
      }
      for (double v : ref.run(id, keep)) all.push_back(static_cast<float>(v));
    }
    Tensor expected;
    for (const auto& [key, t] : outputs(name))
      if (key == "last_hidden_state") expected = t;
    EXPECT_LE(rel_l2(Tensor::from_vector(all, expected.shape()), expected), 1e-5) << name;
  }
}

TEST(T5Encoder, FullyMaskedSampleAttendsUniformlyAsTransformers) {
  for (const std::string name : {"t5", "umt5"}) {
    const T5Reference ref(name);
    const auto enc = models::t5::T5Encoder::load(fixture(name));
    const std::vector<int64_t> ids = {5, 17, 300, 1, 0, 0};
    const std::vector<int> keep = {0, 0, 0, 0, 0, 0};
    const auto out = enc.encode(Tensor::from_vector_i64(ids, {1, 6}),
                                Tensor::from_vector_i64({0, 0, 0, 0, 0, 0}, {1, 6}), false);
    const std::vector<double> r = ref.run(ids, keep);
    const Tensor expected = Tensor::from_vector(std::vector<float>(r.begin(), r.end()), {1, 6, 32});
    EXPECT_LE(rel_l2(out.last_hidden_state, expected), 1e-5) << name;
  }
}

TEST(T5Encoder, PaddingWithMaskLeavesRealTokensUnchanged) {
  // Relative positions and masked keys: a padded, masked batch row equals the unpadded row.
  const auto enc = models::t5::T5Encoder::load(fixture("t5"));
  const auto padded = enc.encode(Tensor::from_vector_i64({7, 8, 9, 1, 0, 0, 0}, {1, 7}),
                                 Tensor::from_vector_i64({1, 1, 1, 1, 0, 0, 0}, {1, 7}));
  const auto alone = enc.encode(Tensor::from_vector_i64({7, 8, 9, 1}, {1, 4}), {});
  EXPECT_LE(rel_l2(padded.last_hidden_state.slice(1, 0, 4).contiguous(), alone.last_hidden_state),
            1e-6);
}

TEST(T5Encoder, LoadsFromConfigAndWeightFile) {
  const auto enc = models::t5::T5Encoder::load(fixture("t5") / "config.json",
                                               fixture("t5") / "model.safetensors");
  const auto out = enc.encode(input("t5", "input_ids"), input("t5", "attention_mask"), false);
  for (const auto& [key, ref] : outputs("t5"))
    if (key == "last_hidden_state") EXPECT_LE(rel_l2(out.last_hidden_state, ref), 1e-4);
}

// A copy of a fixture folder with its tensors renamed by `rename` (old name → new name).
template <typename Rename>
void copy_renamed(const std::string& name, const fs::path& dst, Rename rename) {
  const io::TensorSource src = io::TensorSource::open(fixture(name) / "model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& n : src.names()) tensors.emplace_back(rename(n), src.load(n));
  io::save_safetensors(dst / "model.safetensors", tensors);
  fs::copy_file(fixture(name) / "config.json", dst / "config.json");
}

TEST(TextEncoderNames, AcceptsTheOtherSpellingsOfTheSameWeights) {
  {
    // T5 exports that keep only the encoder's alias of the tied embedding.
    TempDir dir("embed_tokens");
    copy_renamed("t5", dir.path, [](const std::string& n) {
      return n == "shared.weight" ? std::string("encoder.embed_tokens.weight") : n;
    });
    const auto out = models::t5::T5Encoder::load(dir.path).encode(
        input("t5", "input_ids"), input("t5", "attention_mask"), false);
    for (const auto& [key, ref] : outputs("t5"))
      if (key == "last_hidden_state") EXPECT_LE(rel_l2(out.last_hidden_state, ref), 1e-4);
  }
  {
    // CLIPTextModel as transformers 4.x saved it: everything under "text_model.".
    TempDir dir("text_model");
    copy_renamed("clip_l", dir.path, [](const std::string& n) { return "text_model." + n; });
    const auto out =
        models::clip::ClipTextEncoder::load(dir.path).encode(input("clip_l", "input_ids"));
    for (const auto& [key, ref] : outputs("clip_l")) {
      if (key == "last_hidden_state") EXPECT_LE(rel_l2(out.last_hidden_state, ref), 1e-4);
      if (key == "pooler_output") EXPECT_LE(rel_l2(out.pooled_output, ref), 1e-4);
    }
  }
}

// ---------------------------------------------------------------- CLIP pooling

// pooled_output must be last_hidden_state at `pos` of each row.
void expect_pooled_at(const models::clip::ClipTextOutput& out, const std::vector<int64_t>& pos) {
  const int64_t D = out.last_hidden_state.dim(2);
  for (size_t b = 0; b < pos.size(); ++b)
    for (int64_t d = 0; d < D; ++d)
      ASSERT_EQ(out.pooled_output.item_at({int64_t(b), d}),
                out.last_hidden_state.item_at({int64_t(b), pos[b], d}))
          << "row " << b << " should pool position " << pos[b];
}

TEST(ClipTextEncoder, PoolsAtFirstEosOrAtArgmaxWhenEosIdIsTwo) {
  const Tensor ids = Tensor::from_vector_i64({1512, 2, 900, 1513, 40, 1513,  //
                                              7, 900, 2, 40, 1500, 7},
                                             {2, 6});
  {
    // eos_token_id 900: the first 900 (rows: 2, 1), not the largest id.
    TempDir dir("eos900");
    copy_with_config("clip_l", dir.path, [](io::Json& c) { c["eos_token_id"] = 900; });
    const auto out = models::clip::ClipTextEncoder::load(dir.path).encode(ids);
    expect_pooled_at(out, {2, 1});
  }
  {
    // eos_token_id 2 (the old OpenAI configs): argmax of the ids (rows: 3, 4), not the first 2.
    TempDir dir("eos2");
    copy_with_config("clip_l", dir.path, [](io::Json& c) { c["eos_token_id"] = 2; });
    const auto out = models::clip::ClipTextEncoder::load(dir.path).encode(ids);
    expect_pooled_at(out, {3, 4});
  }
  {
    // No eos in a row: position 0, as torch.argmax of an all-zero row.
    const auto out = models::clip::ClipTextEncoder::load(fixture("clip_l"))
                         .encode(Tensor::from_vector_i64({1512, 5, 6}, {1, 3}));
    expect_pooled_at(out, {0});
  }
}

TEST(ClipTextEncoder, CausalMaskAndKeyMaskDropLaterAndMaskedTokens) {
  const auto enc = models::clip::ClipTextEncoder::load(fixture("clip_g"));
  // Causal: changing a later token leaves the earlier positions as they were.
  const auto a = enc.encode(Tensor::from_vector_i64({1512, 10, 20, 1513}, {1, 4}));
  const auto b = enc.encode(Tensor::from_vector_i64({1512, 10, 99, 1513}, {1, 4}));
  for (int64_t s : {0, 1})
    for (int64_t d = 0; d < 48; ++d)
      EXPECT_NEAR(a.last_hidden_state.item_at({0, s, d}), b.last_hidden_state.item_at({0, s, d}),
                  1e-6);
  EXPECT_GT(rel_l2(a.last_hidden_state, b.last_hidden_state), 1e-3);
  // A masked key changes nothing for rows that could see it: its token is irrelevant.
  const Tensor mask = Tensor::from_vector_i64({1, 0, 1, 1}, {1, 4});
  const auto m1 = enc.encode(Tensor::from_vector_i64({1512, 10, 20, 1513}, {1, 4}), mask);
  const auto m2 = enc.encode(Tensor::from_vector_i64({1512, 11, 20, 1513}, {1, 4}), mask);
  for (int64_t s : {2, 3})
    for (int64_t d = 0; d < 48; ++d)
      EXPECT_NEAR(m1.last_hidden_state.item_at({0, s, d}), m2.last_hidden_state.item_at({0, s, d}),
                  1e-6);
  EXPECT_GT(rel_l2(m1.last_hidden_state, a.last_hidden_state), 1e-4);
}

// ---------------------------------------------------------------- bad input

TEST(TextEncoderErrors, BadInputsNameTheProblem) {
  const auto t5 = models::t5::T5Encoder::load(fixture("t5"));
  EXPECT_NE(error_of([&] {
              t5.encode(Tensor::from_vector({1, 2}, {1, 2}));
            }).find("input_ids"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              t5.encode(Tensor::from_vector_i64({1, 5000}, {1, 2}));
            }).find("5000 is outside the vocabulary [0, 1100)"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              t5.encode(Tensor::from_vector_i64({1, 2}, {1, 2}),
                        Tensor::from_vector_i64({1, 1, 1}, {1, 3}));
            }).find("attention_mask"),
            std::string::npos);
  const auto clip = models::clip::ClipTextEncoder::load(fixture("clip_l"));
  EXPECT_NE(error_of([&] {
              clip.encode(Tensor::zeros({1, 78}, core::DType::I64));
            }).find("more than max_position_embeddings = 77"),
            std::string::npos);
}

TEST(TextEncoderErrors, BadConfigsAndCheckpointsNameTheKeyOrTensor) {
  {
    TempDir dir("layers");
    copy_with_config("t5", dir.path, [](io::Json& c) { c["num_layers"] = 3; });
    const std::string e = error_of([&] { models::t5::T5Encoder::load(dir.path); });
    EXPECT_NE(e.find("encoder.block.2.layer.0.layer_norm.weight' is missing"), std::string::npos)
        << e;
  }
  {
    TempDir dir("ffp");
    copy_with_config("t5", dir.path, [](io::Json& c) { c["feed_forward_proj"] = "gated-gelu-x"; });
    const std::string e = error_of([&] { models::t5::T5Encoder::load(dir.path); });
    EXPECT_NE(e.find("feed_forward_proj 'gated-gelu-x'"), std::string::npos) << e;
  }
  {
    TempDir dir("relu");
    // A relu (T5 v1.0) config wants DenseReluDense.wi, which this v1.1 checkpoint lacks.
    copy_with_config("t5", dir.path, [](io::Json& c) { c["feed_forward_proj"] = "relu"; });
    const std::string e = error_of([&] { models::t5::T5Encoder::load(dir.path); });
    EXPECT_NE(e.find("DenseReluDense.wi.weight' is missing"), std::string::npos) << e;
  }
  {
    TempDir dir("act");
    copy_with_config("clip_l", dir.path, [](io::Json& c) { c["hidden_act"] = "mish"; });
    const std::string e = error_of([&] { models::clip::ClipTextEncoder::load(dir.path); });
    EXPECT_NE(e.find("hidden_act 'mish'"), std::string::npos) << e;
  }
  {
    TempDir dir("width");
    copy_with_config("clip_l", dir.path, [](io::Json& c) { c["hidden_size"] = 36; });
    const std::string e = error_of([&] { models::clip::ClipTextEncoder::load(dir.path); });
    EXPECT_NE(e.find("has shape [1514, 32], the architecture expects [1514, 36]"),
              std::string::npos)
        << e;
  }
  {
    TempDir dir("type");
    copy_with_config("clip_l", dir.path, [](io::Json& c) { c["model_type"] = "bert"; });
    const std::string e = error_of([&] { models::t5::T5Encoder::load(dir.path); });
    EXPECT_NE(e.find("model_type 'bert' is not a T5 encoder"), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace paradit
