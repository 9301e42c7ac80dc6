// The diffusers folder layout: Config getters and their errors, ModelFolder on pipeline and
// component folders, and offline Hugging Face cache resolution.
#include "io/diffusers.h"

#include <cmath>
#include <cstdlib>
#include <optional>

#include "core/error.h"
#include "io_test_util.h"

namespace paradit::io {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;
using testing::test_data;
using testing::write_file;

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Sets an environment variable for one scope and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// ---------------------------------------------------------------- Config

TEST(Config, TypedGettersAndFallbacks) {
  const Config c(Json::parse(R"({
    "_class_name": "FluxTransformer2DModel", "num_layers": 19, "big": 9007199254740993,
    "eps": 1e-6, "whole": 2, "flag": true, "name": "x", "dims": [16, 56, 56],
    "nothing": null})"),
                 "cfg.json");
  EXPECT_EQ(c.class_name(), "FluxTransformer2DModel");
  EXPECT_EQ(c.get_int("num_layers"), 19);
  EXPECT_EQ(c.get_int("big"), 9007199254740993);
  EXPECT_EQ(c.get_int("absent", 7), 7);
  EXPECT_EQ(c.get_int("nothing", 3), 3) << "null counts as absent";
  EXPECT_DOUBLE_EQ(c.get_float("eps"), 1e-6);
  EXPECT_DOUBLE_EQ(c.get_float("whole"), 2.0) << "an integer is a valid float";
  EXPECT_DOUBLE_EQ(c.get_float("absent", 0.5), 0.5);
  EXPECT_TRUE(c.get_bool("flag", false));
  EXPECT_FALSE(c.get_bool("absent", false));
  EXPECT_EQ(c.get_string("name"), "x");
  EXPECT_EQ(c.get_string("absent", "dflt"), "dflt");
  EXPECT_EQ(c.get_int_list("dims"), (std::vector<int64_t>{16, 56, 56}));
  EXPECT_EQ(c.get_int_list("absent", {1, 2}), (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(c.has("eps"));
  EXPECT_FALSE(c.has("nothing"));
  EXPECT_FALSE(c.has("absent"));
  EXPECT_EQ(c.where(), "cfg.json");
}

TEST(Config, ErrorsNameTheFileAndKey) {
  const Config c(Json::parse(R"({"eps": 1e-6, "name": "x", "n": 3, "dims": [1, 2.5],
                                "flag": 1, "nothing": null})"),
                 "/m/config.json");
  EXPECT_EQ(error_of([&] { c.get_int("num_layers"); }), "/m/config.json: missing key 'num_layers'");
  EXPECT_EQ(error_of([&] { c.get_int("nothing"); }), "/m/config.json: missing key 'nothing'");
  EXPECT_EQ(error_of([&] { c.get_int("eps"); }),
            "/m/config.json: key 'eps' is not an integer (found number 1e-06)");
  EXPECT_EQ(error_of([&] { c.get_int("name", 0); }),
            "/m/config.json: key 'name' is not an integer (found string \"x\")")
      << "a present key of the wrong type is an error even with a fallback";
  EXPECT_EQ(error_of([&] { c.get_float("name"); }),
            "/m/config.json: key 'name' is not a number (found string \"x\")");
  EXPECT_EQ(error_of([&] { c.get_string("n"); }),
            "/m/config.json: key 'n' is not a string (found number 3)");
  EXPECT_EQ(error_of([&] { c.get_bool("flag", false); }),
            "/m/config.json: key 'flag' is not true/false (found number 1)");
  EXPECT_EQ(error_of([&] { c.get_int_list("dims"); }),
            "/m/config.json: key 'dims' is not a list of integers (found array [1,2.5])");
  EXPECT_EQ(error_of([&] { c.get_string("_class_name"); }),
            "/m/config.json: missing key '_class_name'");
}

TEST(Config, LoadAndReadJsonErrors) {
  TempDir dir;
  write_file(dir / "bad.json", "{\"a\": 1,\n}");
  std::string e = error_of([&] { Config::load(dir / "bad.json"); });
  EXPECT_EQ(e.rfind((dir / "bad.json").string() + ": malformed JSON (", 0), 0u) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  write_file(dir / "list.json", "[1]");
  e = error_of([&] { Config::load(dir / "list.json"); });
  EXPECT_NE(e.find("list.json: is not a JSON object"), std::string::npos) << e;
  e = error_of([&] { read_json(dir / "absent.json"); });
  EXPECT_NE(e.find("absent.json: cannot open (no such file)"), std::string::npos) << e;
  write_file(dir / "ok.json", R"({"num_layers": 2})");
  EXPECT_EQ(Config::load(dir / "ok.json").get_int("num_layers"), 2);
}

TEST(Config, PythonNonFiniteFloats) {
  TempDir dir;
  write_file(dir / "c.json",
             R"({"a": -Infinity, "b": NaN, "c": "Infinity", "d": [Infinity, 1], "e": "x\"NaN"})");
  const Config c = Config::load(dir / "c.json");
  EXPECT_EQ(c.get_float("a"), -INFINITY);
  EXPECT_TRUE(std::isnan(c.get_float("b")));
  EXPECT_EQ(c.get_string("c"), "Infinity") << "inside a string it stays text";
  EXPECT_EQ(c.json()["d"][0].get<double>(), INFINITY);
  EXPECT_EQ(c.get_string("e"), "x\"NaN");
  // The real scheduler config diffusers writes for PixArt-Sigma has one.
  const Config s = Config::load(test_data("pipeline/pixart_sigma/scheduler/scheduler_config.json"));
  EXPECT_EQ(s.get_float("lambda_min_clipped"), -INFINITY);
  EXPECT_EQ(s.get_int("num_train_timesteps"), 1000);
}

// ---------------------------------------------------------------- ModelFolder

TEST(ModelFolder, PipelineFixture) {
  const fs::path root = test_data("pipeline/pixart_sigma");
  const ModelFolder m = ModelFolder::open(root.string());
  EXPECT_TRUE(m.is_pipeline());
  EXPECT_EQ(m.pipeline_class(), "PixArtSigmaPipeline");
  std::vector<std::string> names;
  for (const auto& c : m.components()) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"scheduler", "text_encoder", "tokenizer",
                                             "transformer", "vae"}));
  const Component& t = m.component("transformer");
  EXPECT_EQ(t.library, "diffusers");
  EXPECT_EQ(t.class_name, "PixArtTransformer2DModel");
  EXPECT_EQ(t.dir, root / "transformer");
  EXPECT_EQ(m.component("text_encoder").library, "transformers");
  EXPECT_EQ(m.component("text_encoder").class_name, "T5EncoderModel");
  EXPECT_EQ(m.transformer_dir(), root / "transformer");
  EXPECT_TRUE(m.has_component("vae"));
  EXPECT_FALSE(m.has_component("text_encoder_2"));
  const std::string e = error_of([&] { m.component("text_encoder_2"); });
  EXPECT_NE(e.find(": no component 'text_encoder_2' (has: scheduler, text_encoder"),
            std::string::npos)
      << e;
  EXPECT_EQ(m.model_index()["_class_name"], "PixArtSigmaPipeline");
}

TEST(ModelFolder, SkipsAttributesAndAbsentComponents) {
  TempDir dir;
  write_file(dir / "model_index.json", R"({
    "_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.30.0",
    "force_zeros_for_empty_prompt": true, "boundary_ratio": null,
    "feature_extractor": [null, null], "image_encoder": null,
    "transformer": ["diffusers", "SD3Transformer2DModel"]})");
  fs::create_directories(dir / "transformer");
  const ModelFolder m = ModelFolder::open(dir.path().string());
  ASSERT_EQ(m.components().size(), 1u);
  EXPECT_EQ(m.components()[0].name, "transformer");
  EXPECT_EQ(m.pipeline_class(), "StableDiffusionXLPipeline");

  // Missing folder of a listed component.
  write_file(dir / "model_index.json", R"({"_class_name": "P",
    "transformer": ["diffusers", "SD3Transformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]})");
  std::string e = error_of([&] { ModelFolder::open(dir.path().string()); });
  EXPECT_EQ(e.rfind((dir / "vae").string() + ": component folder 'vae' is missing", 0), 0u) << e;

  // A component entry of the wrong shape.
  write_file(dir / "model_index.json", R"({"transformer": ["diffusers"]})");
  e = error_of([&] { ModelFolder::open(dir.path().string()); });
  EXPECT_NE(e.find("model_index.json: component 'transformer' is not [library, class]"),
            std::string::npos)
      << e;
}

TEST(ModelFolder, ComponentFolder) {
  const fs::path root = test_data("transformer/pixart_sigma");
  const ModelFolder m = ModelFolder::open(root.string());
  EXPECT_FALSE(m.is_pipeline());
  EXPECT_EQ(m.pipeline_class(), "");
  ASSERT_EQ(m.components().size(), 1u);
  EXPECT_EQ(m.components()[0].name, "pixart_sigma");
  EXPECT_EQ(m.components()[0].library, "diffusers");
  EXPECT_EQ(m.components()[0].class_name, "PixArtTransformer2DModel");
  EXPECT_EQ(m.transformer_dir(), root);
  // A trailing slash names the same folder.
  EXPECT_EQ(ModelFolder::open(root.string() + "/").components()[0].name, "pixart_sigma");
}

TEST(ModelFolder, NotAModelFolder) {
  TempDir dir;
  std::string e = error_of([&] { ModelFolder::open(dir.path().string()); });
  EXPECT_EQ(e, dir.path().string() +
                   ": not a diffusers folder (neither model_index.json nor config.json is there)");
  e = error_of([&] { ModelFolder::open((dir / "nope").string()); });
  EXPECT_EQ(e, (dir / "nope").string() + ": no such folder");
  write_file(dir / "file.txt", "x");
  e = error_of([&] { ModelFolder::open((dir / "file.txt").string()); });
  EXPECT_NE(e.find("file.txt: not a folder"), std::string::npos) << e;
}

// ---------------------------------------------------------------- Hugging Face cache

TEST(HfCache, ResolvesRefsMainThenTheOnlySnapshot) {
  TempDir dir;
  const fs::path hub = dir / "hub";
  const fs::path repo = hub / "models--acme--tiny-dit";
  write_file(repo / "refs" / "main", "abc123\n");
  write_file(repo / "snapshots" / "abc123" / "config.json",
             R"({"_class_name": "DiTTransformer2DModel"})");
  fs::create_directories(repo / "snapshots" / "old456");
  ScopedEnv hub_cache("HF_HUB_CACHE", hub.string());

  EXPECT_EQ(resolve_hf_cache("acme/tiny-dit"), repo / "snapshots" / "abc123");
  const ModelFolder m = ModelFolder::open("acme/tiny-dit");
  EXPECT_EQ(m.root(), repo / "snapshots" / "abc123");
  EXPECT_FALSE(m.is_pipeline());
  EXPECT_EQ(m.components()[0].class_name, "DiTTransformer2DModel");

  // Without refs/main, two snapshots are ambiguous; one is taken.
  fs::remove_all(repo / "refs");
  EXPECT_EQ(resolve_hf_cache("acme/tiny-dit"), fs::path());
  fs::remove_all(repo / "snapshots" / "old456");
  EXPECT_EQ(resolve_hf_cache("acme/tiny-dit"), repo / "snapshots" / "abc123");

  // Not cached, and not an id at all.
  EXPECT_EQ(resolve_hf_cache("acme/other"), fs::path());
  EXPECT_EQ(resolve_hf_cache("../escape/x"), fs::path());
  const std::string e = error_of([&] { ModelFolder::open("acme/other"); });
  EXPECT_NE(e.find("acme/other: no such folder, and no snapshot of model 'acme/other' in the "
                   "Hugging Face cache " +
                   hub.string()),
            std::string::npos)
      << e;
}

TEST(HfCache, FallsBackToHfHome) {
  TempDir dir;
  const fs::path repo = dir / "hfhome" / "hub" / "models--org--m";
  write_file(repo / "snapshots" / "r1" / "config.json", "{}");
  ScopedEnv no_hub_cache("HF_HUB_CACHE", std::nullopt);
  ScopedEnv no_legacy("HUGGINGFACE_HUB_CACHE", std::nullopt);
  ScopedEnv home("HF_HOME", (dir / "hfhome").string());
  EXPECT_EQ(resolve_hf_cache("org/m"), repo / "snapshots" / "r1");
  {
    ScopedEnv no_home("HF_HOME", std::nullopt);
    ScopedEnv no_xdg("XDG_CACHE_HOME", std::nullopt);
    ScopedEnv user_home("HOME", (dir / "user").string());
    write_file(dir / "user" / ".cache" / "huggingface" / "hub" / "models--org--m" / "snapshots" /
                   "r2" / "config.json",
               "{}");
    EXPECT_EQ(resolve_hf_cache("org/m"), dir / "user" / ".cache" / "huggingface" / "hub" /
                                             "models--org--m" / "snapshots" / "r2");
  }
}

}  // namespace
}  // namespace paradit::io
