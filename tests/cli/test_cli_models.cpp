// `paradit forward` and `paradit make-model`, run as the real binary (PARADIT_BINARY).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;

struct Result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("paradit_cli_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Runs `paradit ARGS`, capturing stdout, stderr and the exit code.
  Result paradit(const std::string& args) const {
    const fs::path out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
    const std::string cmd =
        std::string(PARADIT_BINARY) + " " + args + " > " + out.string() + " 2> " + err.string();
    const int status = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  fs::path dir_;
};

fs::path fixture(const std::string& name) {
  return fs::path(PARADIT_TEST_DATA) / "transformer" / name;
}

double rel_l2(const core::Tensor& a, const core::Tensor& b) {
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

core::Tensor ramp(const core::Shape& shape, float scale) {
  core::Tensor t = core::Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = scale * std::sin(0.37f * i + 0.1f);
  return t;
}

// Forward inputs that fit each tiny preset (the fixtures' shapes).
std::vector<std::pair<std::string, core::Tensor>> tiny_inputs(const std::string& arch) {
  std::vector<std::pair<std::string, core::Tensor>> in;
  if (arch == "flux" || arch == "flux-schnell") {
    in.emplace_back("hidden_states", ramp({1, 16, 64}, 1.0f));
    in.emplace_back("encoder_hidden_states", ramp({1, 7, 32}, 1.0f));
    in.emplace_back("pooled_projections", ramp({1, 24}, 1.0f));
    in.emplace_back("timestep", core::Tensor::from_vector({0.75f}, {1}));
    std::vector<float> img;
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) img.insert(img.end(), {0.0f, float(r), float(c)});
    in.emplace_back("img_ids", core::Tensor::from_vector(img, {16, 3}));
    in.emplace_back("txt_ids", core::Tensor::zeros({7, 3}));
    if (arch == "flux") in.emplace_back("guidance", core::Tensor::from_vector({3.5f}, {1}));
  } else if (arch == "sd3" || arch == "sd35") {
    in.emplace_back("hidden_states", ramp({2, 16, 8, 8}, 1.0f));
    in.emplace_back("encoder_hidden_states", ramp({2, 7, 32}, 1.0f));
    in.emplace_back("pooled_projections", ramp({2, 24}, 1.0f));
    in.emplace_back("timestep", core::Tensor::from_vector({999.0f, 421.5f}, {2}));
  } else if (arch == "pixart-sigma" || arch == "pixart-alpha") {
    in.emplace_back("hidden_states", ramp({2, 4, 8, 8}, 1.0f));
    in.emplace_back("encoder_hidden_states", ramp({2, 7, 32}, 1.0f));
    in.emplace_back("timestep", core::Tensor::from_vector({999.0f, 421.0f}, {2}));
    in.emplace_back("encoder_attention_mask",
                    core::Tensor::from_vector({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, {2, 7}));
    if (arch == "pixart-alpha") {
      in.emplace_back("added_cond_kwargs.resolution",
                      core::Tensor::from_vector({1024, 1024, 768, 1344}, {2, 2}));
      in.emplace_back("added_cond_kwargs.aspect_ratio",
                      core::Tensor::from_vector({1.0f, 768.0f / 1344.0f}, {2, 1}));
    }
  } else if (arch == "dit") {
    in.emplace_back("hidden_states", ramp({2, 4, 8, 8}, 1.0f));
    in.emplace_back("timestep", core::Tensor::from_vector({999.0f, 421.0f}, {2}));
    in.emplace_back("class_labels", core::Tensor::from_vector_i64({207, 1000}, {2}));
  }
  return in;
}

// The number on the "parameters: N" line of make-model's report.
int64_t reported_parameters(const std::string& out) {
  const auto pos = out.find("parameters: ");
  if (pos == std::string::npos) return -1;
  return std::stoll(out.substr(pos + 12));
}

TEST_F(CliTest, ForwardMatchesTheFixtureReference) {
  const fs::path out = dir_ / "sample.safetensors";
  const Result r = paradit("forward --model " + fixture("pixart_sigma").string() + " --inputs " +
                           (fixture("pixart_sigma") / "inputs.safetensors").string() +
                           " --output " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const core::Tensor got = io::TensorSource::open(out).load("sample");
  const core::Tensor ref =
      io::TensorSource::open(fixture("pixart_sigma") / "outputs.safetensors").load("sample");
  EXPECT_LE(rel_l2(got, ref), 1e-4);

  // Also through a pipeline folder (transformer/ component) and bf16 weights.
  fs::create_directories(dir_ / "pipe" / "transformer");
  for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors"})
    fs::copy_file(fixture("dit") / f, dir_ / "pipe" / "transformer" / f);
  std::ofstream(dir_ / "pipe" / "model_index.json")
      << R"({"_class_name": "DiTPipeline", "transformer": ["diffusers", "DiTTransformer2DModel"]})";
  const Result r2 = paradit("forward --model " + (dir_ / "pipe").string() + " --inputs " +
                            (fixture("dit") / "inputs.safetensors").string() + " --output " +
                            out.string() + " --dtype bf16");
  ASSERT_EQ(r2.code, 0) << r2.err;
  const core::Tensor dit_ref =
      io::TensorSource::open(fixture("dit") / "outputs.safetensors").load("sample");
  EXPECT_LE(rel_l2(io::TensorSource::open(out).load("sample"), dit_ref), 1e-2);
}

TEST_F(CliTest, ForwardWithAWrongShapedTensorFailsWithOneLine) {
  const fs::path model = dir_ / "model";
  fs::create_directories(model);
  const io::TensorSource src = io::TensorSource::open(fixture("pixart_sigma"));
  const std::string bad = "caption_projection.linear_1.weight";  // (64, 32)
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  for (const auto& name : src.names())
    tensors.emplace_back(name, name == bad ? core::Tensor::zeros({64, 40}) : src.load(name));
  io::save_safetensors(model / "diffusion_pytorch_model.safetensors", tensors);
  fs::copy_file(fixture("pixart_sigma") / "config.json", model / "config.json");

  const fs::path out = dir_ / "sample.safetensors";
  const Result r = paradit("forward --model " + model.string() + " --inputs " +
                           (fixture("pixart_sigma") / "inputs.safetensors").string() +
                           " --output " + out.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(bad), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[64, 40]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[64, 32]"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, ForwardBadInputsExitTwo) {
  const fs::path out = dir_ / "sample.safetensors";
  // Missing inputs file.
  Result r = paradit("forward --model " + fixture("dit").string() + " --inputs " +
                     (dir_ / "nope.safetensors").string() + " --output " + out.string());
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("nope.safetensors"), std::string::npos) << r.err;
  // Inputs of another model: the missing input is named.
  r = paradit("forward --model " + fixture("dit").string() + " --inputs " +
              (fixture("pixart_sigma") / "inputs.safetensors").string() + " --output " +
              out.string());
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("class_labels"), std::string::npos) << r.err;
  // Output folder that does not exist.
  r = paradit("forward --model " + fixture("dit").string() + " --inputs " +
              (fixture("dit") / "inputs.safetensors").string() + " --output " +
              (dir_ / "missing" / "x.safetensors").string());
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--output"), std::string::npos) << r.err;
  // Bad flag value.
  r = paradit("forward --model " + fixture("dit").string() + " --inputs " +
              (fixture("dit") / "inputs.safetensors").string() + " --output " + out.string() +
              " --dtype f16");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, MakeModelTinyForEveryArchRunsForward) {
  for (const std::string arch :
       {"flux", "flux-schnell", "sd3", "sd35", "pixart-sigma", "pixart-alpha", "dit"}) {
    SCOPED_TRACE(arch);
    const fs::path model = dir_ / arch;
    Result r = paradit("make-model --arch " + arch + " --preset tiny --seed 11 " + model.string());
    ASSERT_EQ(r.code, 0) << r.err;
    ASSERT_TRUE(fs::exists(model / "config.json"));
    const fs::path in = dir_ / (arch + "_in.safetensors"), out = dir_ / (arch + "_out.safetensors");
    io::save_safetensors(in, tiny_inputs(arch));
    r = paradit("forward --model " + model.string() + " --inputs " + in.string() + " --output " +
                out.string());
    ASSERT_EQ(r.code, 0) << r.err;
    const core::Tensor sample = io::TensorSource::open(out).load("sample");
    const core::Tensor hidden = io::TensorSource::open(in).load("hidden_states");
    EXPECT_EQ(sample.dim(0), hidden.dim(0));
    double sq = 0;
    for (float v : sample.to_vector()) sq += double(v) * v;
    EXPECT_TRUE(std::isfinite(sq) && sq > 0) << sq;
  }
}

TEST_F(CliTest, MakeModelIsDeterministicAndCountsMatchDryRun) {
  const std::string args = "make-model --arch pixart-alpha --preset tiny --seed ";
  ASSERT_EQ(paradit(args + "5 " + (dir_ / "a").string()).code, 0);
  ASSERT_EQ(paradit(args + "5 " + (dir_ / "b").string()).code, 0);
  ASSERT_EQ(paradit(args + "6 " + (dir_ / "c").string()).code, 0);
  const std::string w = "diffusion_pytorch_model.safetensors";
  EXPECT_EQ(slurp(dir_ / "a" / w), slurp(dir_ / "b" / w));
  EXPECT_EQ(slurp(dir_ / "a" / "config.json"), slurp(dir_ / "b" / "config.json"));
  EXPECT_NE(slurp(dir_ / "a" / w), slurp(dir_ / "c" / w));

  const Result dry = paradit(args + "5 --dry-run");
  ASSERT_EQ(dry.code, 0) << dry.err;
  const io::TensorSource src = io::TensorSource::open(dir_ / "a");
  int64_t loaded = 0;
  for (const auto& name : src.names()) loaded += core::shape_numel(src.info(name).shape);
  EXPECT_EQ(reported_parameters(dry.out), loaded) << dry.out;
  EXPECT_GT(loaded, 0);

  // bf16 storage halves the file and keeps the names.
  ASSERT_EQ(paradit(args + "5 --dtype bf16 " + (dir_ / "h").string()).code, 0);
  const io::TensorSource half = io::TensorSource::open(dir_ / "h");
  EXPECT_EQ(half.names(), src.names());
  EXPECT_EQ(half.info(half.names().front()).dtype, core::DType::BF16);
}

// SD3's stored pos_embed buffer is diffusers' fixed sin-cos table, not noise: checked against a
// direct double-precision evaluation of get_2d_sincos_pos_embed (grid 16×16, base_size 8/2 = 4).
TEST_F(CliTest, MakeModelWritesSD3SinCosBuffer) {
  ASSERT_EQ(paradit("make-model --arch sd3 --preset tiny --seed 1 " + (dir_ / "m").string()).code,
            0);
  const core::Tensor table = io::TensorSource::open(dir_ / "m").load("pos_embed.pos_embed");
  const int64_t M = 16, D = 64, Q = D / 4;
  ASSERT_EQ(table.shape(), (core::Shape{1, M * M, D}));
  const std::vector<float> v = table.to_vector();
  double worst = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < M; ++j)
      for (int64_t k = 0; k < Q; ++k) {
        const double omega = 1.0 / std::pow(10000.0, double(k) / Q);
        const double col = j / (double(M) / 4.0), row = i / (double(M) / 4.0);
        const float* e = &v[(i * M + j) * D];
        worst = std::max({worst, std::abs(e[k] - std::sin(col * omega)),
                          std::abs(e[Q + k] - std::cos(col * omega)),
                          std::abs(e[2 * Q + k] - std::sin(row * omega)),
                          std::abs(e[3 * Q + k] - std::cos(row * omega))});
      }
  EXPECT_LE(worst, 1e-6);
}

TEST_F(CliTest, MakeModelFullDryRunAndRefusals) {
  Result r = paradit("make-model --arch pixart-sigma --preset full --seed 0 --dry-run");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(reported_parameters(r.out), 610856096) << r.out;  // PixArt-Σ XL/2 1024

  // An existing non-empty folder is refused and left alone; nothing else is written.
  fs::create_directories(dir_ / "taken");
  std::ofstream(dir_ / "taken" / "keep.txt") << "x";
  r = paradit("make-model --arch dit --preset tiny --seed 0 " + (dir_ / "taken").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("taken"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "taken" / "keep.txt"));
  EXPECT_FALSE(fs::exists(dir_ / "taken" / "config.json"));

  r = paradit("make-model --arch sdxl --preset tiny --seed 0 " + (dir_ / "x").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(fs::exists(dir_ / "x"));
  r = paradit("make-model --arch dit --preset tiny --seed 0 " + (dir_ / "no" / "such").string());
  EXPECT_EQ(r.code, 2);

  // No temporary folders left behind.
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
}

}  // namespace
}  // namespace paradit
