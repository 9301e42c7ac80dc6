// `paradit info` run as a real process: output on fixtures (parameter counts computed here from
// the raw headers), and every kind of bad input giving exit code 2 and one line on stderr that
// names the file and the problem.
#include <nlohmann/json.hpp>

#include "io_test_util.h"

namespace paradit::io {
namespace {

namespace fs = std::filesystem;

using testing::raw_safetensors;
using testing::read_file;
using testing::run_paradit;
using testing::RunResult;
using testing::TempDir;
using testing::test_data;
using testing::write_file;
using Json = nlohmann::json;

struct Counts {
  int64_t tensors = 0, parameters = 0;
};

// Tensor and parameter counts of a .safetensors file, from its header parsed here.
Counts count_file(const fs::path& file) {
  const std::string bytes = read_file(file);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  const Json header = Json::parse(bytes.substr(8, n));
  Counts c;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") continue;
    int64_t numel = 1;
    for (const auto& d : e["shape"]) numel *= d.get<int64_t>();
    ++c.tensors;
    c.parameters += numel;
  }
  return c;
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

// ---------------------------------------------------------------- good input

TEST(InfoCli, ComponentFixtureParameterCount) {
  const fs::path dir = test_data("transformer/pixart_sigma");
  const Counts expected = count_file(dir / "diffusion_pytorch_model.safetensors");
  const Json meta = Json::parse(read_file(dir / "meta.json"));
  ASSERT_EQ(expected.parameters, meta["n_params"].get<int64_t>()) << "fixture self-consistency";

  const RunResult json_run = run_paradit({"info", dir.string(), "--json"});
  ASSERT_EQ(json_run.code, 0) << json_run.err;
  EXPECT_EQ(json_run.err, "");
  const Json out = Json::parse(json_run.out);
  EXPECT_FALSE(out["is_pipeline"].get<bool>());
  ASSERT_EQ(out["components"].size(), 1u);
  const Json& c = out["components"][0];
  EXPECT_EQ(c["class"], "PixArtTransformer2DModel");
  EXPECT_EQ(c["library"], "diffusers");
  EXPECT_EQ(c["parameters"].get<int64_t>(), expected.parameters);
  EXPECT_EQ(c["tensors"].get<int64_t>(), expected.tensors);
  EXPECT_EQ(c["dtypes"]["F32"].get<int64_t>(), expected.tensors);
  EXPECT_EQ(c["config"]["num_layers"], 2);
  EXPECT_EQ(c["config"]["attention_head_dim"], 16);
  EXPECT_EQ(c["bytes"].get<uint64_t>(), fs::file_size(dir / "diffusion_pytorch_model.safetensors"));
  EXPECT_EQ(out["total"]["parameters"].get<int64_t>(), expected.parameters);

  const RunResult table = run_paradit({"info", dir.string()});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find(with_commas(expected.parameters)), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("PixArtTransformer2DModel"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("num_layers=2"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("F32:" + std::to_string(expected.tensors)), std::string::npos)
      << table.out;
}

TEST(InfoCli, PipelineFixtureTotals) {
  const fs::path root = test_data("pipeline/pixart_sigma");
  Counts total;
  std::map<std::string, Counts> per;
  for (const char* comp : {"scheduler", "text_encoder", "tokenizer", "transformer", "vae"}) {
    for (const char* f : {"diffusion_pytorch_model.safetensors", "model.safetensors"}) {
      if (fs::exists(root / comp / f)) {
        per[comp] = count_file(root / comp / f);
        total.parameters += per[comp].parameters;
        total.tensors += per[comp].tensors;
      }
    }
  }
  ASSERT_GT(per["transformer"].parameters, 0);

  const RunResult r = run_paradit({"info", root.string(), "--json", "--tensors"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json out = Json::parse(r.out);
  EXPECT_TRUE(out["is_pipeline"].get<bool>());
  EXPECT_EQ(out["pipeline_class"], "PixArtSigmaPipeline");
  ASSERT_EQ(out["components"].size(), 5u);
  for (const auto& c : out["components"]) {
    const std::string name = c["name"];
    EXPECT_EQ(c["parameters"].get<int64_t>(), per[name].parameters) << name;
    EXPECT_EQ(c["tensors"].get<int64_t>(), per[name].tensors) << name;
    EXPECT_EQ(static_cast<int64_t>(c["tensor_list"].size()), per[name].tensors) << name;
    if (name == "text_encoder") EXPECT_EQ(c["class"], "T5EncoderModel");
    if (name == "scheduler") EXPECT_EQ(c["config"]["num_train_timesteps"], 1000);
  }
  EXPECT_EQ(out["total"]["parameters"].get<int64_t>(), total.parameters);
  EXPECT_EQ(out["total"]["tensors"].get<int64_t>(), total.tensors);

  // --tensors in the table: each tensor's line has its dtype and shape.
  const RunResult t = run_paradit({"info", root.string(), "--tensors"});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("pipeline: PixArtSigmaPipeline"), std::string::npos) << t.out;
  for (const auto& c : out["components"]) {
    for (const auto& e : c["tensor_list"]) {
      EXPECT_NE(t.out.find(e["name"].get<std::string>()), std::string::npos) << e;
    }
  }
}

// The per-rank memory estimate (also what generate --dry-run prints) against the fixture's own
// header, parsed here: every weight in F32 on the CPU; per rank the activations and K/V of the
// documented formulas with the sizes of the config, for Ulysses 3 × Ring 2 over 4 heads (shares
// 1, 1, 2); under PipeFusion 2 the stages' weights add up to the whole plus the shared layers.
TEST(InfoCli, MemoryEstimateFromHeaders) {
  const fs::path pipe = test_data("pipeline/flux");
  const std::string bytes = read_file(pipe / "transformer" / "diffusion_pytorch_model.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  const Json header = Json::parse(bytes.substr(8, n));
  uint64_t total = 0, shared = 0;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") continue;
    uint64_t numel = 1;
    for (const auto& d : e["shape"]) numel *= d.get<uint64_t>();
    total += 4 * numel;  // F32 on the CPU
    if (name.rfind("transformer_blocks.", 0) != 0 && name.rfind("single_transformer_blocks.", 0) != 0)
      shared += 4 * numel;
  }
  const Json config = Json::parse(read_file(pipe / "transformer" / "config.json"));
  const int64_t H = config["num_attention_heads"], Dh = config["attention_head_dim"];
  const int64_t D = H * Dh, F = 4 * D;
  // 64 × 64 through the VAE (2^(levels − 1)), packed 2 × 2; Flux's 512 text tokens (512 % 6 ≠ 0:
  // replicated on every rank).
  const Json vae = Json::parse(read_file(pipe / "vae" / "config.json"));
  const int64_t side = 64 / (int64_t{1} << (vae["block_out_channels"].size() - 1)) / 2;
  const int64_t S = side * side, T = 512, b = 1;
  const int64_t rows = (S + 5) / 6 + T;
  const RunResult r = run_paradit({"info", pipe.string(), "--json", "--height", "64", "--width",
                                   "64", "--ulysses_degree", "3", "--ring_degree", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json m = Json::parse(r.out)["memory"];
  EXPECT_EQ(m["transformer_bytes"].get<uint64_t>(), total);
  EXPECT_EQ(m["image_tokens"].get<int64_t>(), S);
  ASSERT_EQ(m["ranks"].size(), 6u);
  const int64_t heads[3] = {1, 1, 2};
  for (const Json& rank : m["ranks"]) {
    const int u = rank["rank"].get<int>() % 3;
    EXPECT_EQ(rank["heads"].get<int64_t>(), heads[u]);
    EXPECT_EQ(rank["weights"].get<uint64_t>(), total);
    EXPECT_EQ(rank["activations"].get<int64_t>(), b * rows * (6 * D + F) * 4);
    // Ulysses' gathered K, V (2) and the ring's two receive sets (4) for this rank's heads.
    EXPECT_EQ(rank["kv"].get<int64_t>(), 6 * b * 3 * rows * heads[u] * Dh * 4) << rank.dump();
  }
  const RunResult pp = run_paradit({"info", pipe.string(), "--json", "--height", "64", "--width",
                                    "64", "--pipefusion_parallel_degree", "2"});
  ASSERT_EQ(pp.code, 0) << pp.err;
  const Json stages = Json::parse(pp.out)["memory"]["ranks"];
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[0]["weights"].get<uint64_t>() + stages[1]["weights"].get<uint64_t>(),
            total + shared);
  EXPECT_LT(stages[1]["weights"].get<uint64_t>(), total);
  // generate --dry-run prints the same table for a layout of 6 ranks from one process, loads
  // nothing and writes nothing.
  TempDir out;
  const RunResult dry = run_paradit({"generate", "--model", pipe.string(), "--prompt", "x",
                                     "--height", "64", "--width", "64", "--output",
                                     (out / "o.png").string(), "--dry-run", "--ulysses_degree",
                                     "3", "--ring_degree", "2"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_NE(dry.out.find("dry run, nothing loaded"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("ring=2 × ulysses=3"), std::string::npos) << dry.out;
  EXPECT_FALSE(fs::exists(out / "o.png"));
}

TEST(InfoCli, SafetensorsFileAndModelId) {
  TempDir dir;
  const std::string header = R"({"w":{"dtype":"BF16","shape":[3,5],"data_offsets":[0,30]}})";
  write_file(dir / "w.safetensors", raw_safetensors(header, std::string(30, '\0')));
  RunResult r = run_paradit({"info", (dir / "w.safetensors").string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  Json out = Json::parse(r.out);
  EXPECT_EQ(out["total"]["parameters"], 15);
  EXPECT_EQ(out["components"][0]["dtypes"]["BF16"], 1);

  // A model id resolved in a fake Hugging Face cache.
  const fs::path snap = dir / "hub" / "models--acme--tiny" / "snapshots" / "rev1";
  write_file(snap / "config.json", R"({"_class_name": "DiTTransformer2DModel"})");
  write_file(snap / "diffusion_pytorch_model.safetensors",
             raw_safetensors(header, std::string(30, '\0')));
  r = run_paradit({"info", "acme/tiny", "--json"},
                  "HF_HUB_CACHE=" + testing::shell_quote((dir / "hub").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  out = Json::parse(r.out);
  EXPECT_EQ(out["components"][0]["class"], "DiTTransformer2DModel");
  EXPECT_EQ(out["total"]["parameters"], 15);
}

// ---------------------------------------------------------------- bad input

// A component folder with a valid config and the given weight file bytes.
fs::path component_with_weights(const TempDir& dir, const std::string& weights) {
  write_file(dir / "config.json",
             R"({"_class_name": "PixArtTransformer2DModel", "_diffusers_version": "0.30.0"})");
  write_file(dir / "diffusion_pytorch_model.safetensors", weights);
  return dir / "diffusion_pytorch_model.safetensors";
}

// Runs `paradit info DIR` and checks: exit code 2, nothing on stdout, exactly one line on stderr
// of the form "paradit: error: <file>: ...<problem>...".
void expect_one_line_error(const fs::path& dir, const fs::path& file, const std::string& problem) {
  const RunResult r = run_paradit({"info", dir.string()});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.out, "") << "no partial output";
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "exactly one line: " << r.err;
  const std::string prefix = "paradit: error: " + file.string() + ": ";
  EXPECT_EQ(r.err.rfind(prefix, 0), 0u) << "names the file: " << r.err;
  EXPECT_NE(r.err.find(problem), std::string::npos) << "names the problem: " << r.err;
}

const std::string kGood = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST(InfoCliBadInput, TruncatedData) {
  TempDir dir;
  // The header promises 8 bytes of data; the file was cut after 3.
  const auto f = component_with_weights(dir, raw_safetensors(kGood, "abc"));
  expect_one_line_error(dir.path(), f,
                        "run past the end of the data section (3 bytes; file truncated?)");
}

TEST(InfoCliBadInput, TruncatedBeforeHeaderLength) {
  TempDir dir;
  const auto f = component_with_weights(dir, std::string("\x10\x00\x00", 3));
  expect_one_line_error(dir.path(), f, "file is 3 bytes, too short for the 8-byte header length");
}

TEST(InfoCliBadInput, HeaderLengthPastTheEnd) {
  TempDir dir;
  const auto f = component_with_weights(dir, raw_safetensors(kGood, std::string(8, '\0'), 4096));
  expect_one_line_error(dir.path(), f, "header length 4096 runs past the end of the file");
}

TEST(InfoCliBadInput, MalformedJson) {
  TempDir dir;
  const auto f = component_with_weights(dir, raw_safetensors(R"({"a":{"dtype":"F32",)"));
  expect_one_line_error(dir.path(), f, "header is not valid JSON");
}

TEST(InfoCliBadInput, MalformedJsonWithNewlinesStaysOneLine) {
  TempDir dir;
  const auto f = component_with_weights(dir, raw_safetensors("{\n\"a\n\n"));
  expect_one_line_error(dir.path(), f, "header is not valid JSON");
}

TEST(InfoCliBadInput, UnknownDtype) {
  TempDir dir;
  const auto f = component_with_weights(
      dir, raw_safetensors(R"({"blocks.0.w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,8]}})",
                           std::string(8, '\0')));
  expect_one_line_error(dir.path(), f, "tensor 'blocks.0.w' has unknown dtype 'Q4_K'");
}

TEST(InfoCliBadInput, OverlappingOffsets) {
  TempDir dir;
  const auto f = component_with_weights(
      dir, raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           std::string(12, '\0')));
  expect_one_line_error(dir.path(), f, "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
}

TEST(InfoCliBadInput, OutOfRangeOffsets) {
  TempDir dir;
  const auto f = component_with_weights(
      dir, raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[100,108]}})",
                           std::string(8, '\0')));
  expect_one_line_error(dir.path(), f,
                        "tensor 'a' data_offsets [100, 108] run past the end of the data section");
}

TEST(InfoCliBadInput, SizeMismatchedOffsets) {
  TempDir dir;
  const auto f = component_with_weights(
      dir, raw_safetensors(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}})",
                           std::string(8, '\0')));
  expect_one_line_error(dir.path(), f,
                        "tensor 'a' F32[2, 2] needs 16 bytes but its data_offsets [0, 8] span 8");
}

TEST(InfoCliBadInput, TooManyDims) {
  TempDir dir;
  const auto f = component_with_weights(
      dir, raw_safetensors(R"({"a":{"dtype":"U8","shape":[1,1,1,1,1,1,2],"data_offsets":[0,2]}})",
                           std::string(2, '\0')));
  expect_one_line_error(dir.path(), f, "tensor 'a' has 7 dims; at most 6 are supported");
}

TEST(InfoCliBadInput, NonUtf8Header) {
  TempDir dir;
  const auto f = component_with_weights(
      dir, raw_safetensors(std::string("{\"caf\xe9\":{\"dtype\":\"U8\",\"shape\":[1],"
                                       "\"data_offsets\":[0,1]}}"),
                           "x"));
  expect_one_line_error(dir.path(), f, "header is not valid UTF-8 (byte 5");
}

TEST(InfoCliBadInput, MissingComponentFolder) {
  TempDir dir;
  write_file(dir / "model_index.json", R"({"_class_name": "PixArtSigmaPipeline",
      "transformer": ["diffusers", "PixArtTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]})");
  write_file(dir / "transformer" / "config.json", R"({"_class_name": "PixArtTransformer2DModel"})");
  expect_one_line_error(dir.path(), dir / "vae", "component folder 'vae' is missing");
}

TEST(InfoCliBadInput, MissingConfigKey) {
  TempDir dir;
  // A diffusers config without _class_name, which info needs to say what the model is.
  write_file(dir / "config.json", R"({"_diffusers_version": "0.30.0", "num_layers": 2})");
  expect_one_line_error(dir.path(), dir / "config.json", "missing key '_class_name'");
}

TEST(InfoCliBadInput, MalformedConfig) {
  TempDir dir;
  write_file(dir / "config.json", "{\"num_layers\": 2,,}");
  expect_one_line_error(dir.path(), dir / "config.json", "malformed JSON");
}

TEST(InfoCliBadInput, NotAFolder) {
  TempDir dir;
  expect_one_line_error(dir / "absent", dir / "absent", "no such folder");
}

}  // namespace
}  // namespace paradit::io
