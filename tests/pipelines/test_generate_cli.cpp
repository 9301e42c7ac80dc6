// `paradit generate` as the real binary (PARADIT_BINARY): PNG and latent outputs, one file per
// prompt, seeds, the exact path through --prompt_embeds / --latents files, and bad input (exit
// code 2, one line on stderr, no file left behind).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io/diffusers.h"
#include "core/random.h"
#include "io/image.h"
#include "io/video.h"
#include "io/safetensors.h"
#include "helpers.h"
#include "pipelines/pipeline.h"

namespace paradit::pipelines {
namespace {

using namespace paradit::pipelines::testing;

struct CliRun {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

size_t count_lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

class GenerateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("paradit_generate_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  CliRun generate(const std::vector<std::string>& args) const {
    std::string cmd = std::string(PARADIT_BINARY) + " generate";
    for (const auto& a : args) cmd += " " + quote(a);
    cmd += " > " + (dir_ / "stdout.txt").string() + " 2> " + (dir_ / "stderr.txt").string();
    const int status = std::system(cmd.c_str());
    CliRun r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(dir_ / "stdout.txt");
    r.err = slurp(dir_ / "stderr.txt");
    return r;
  }

  // Only the files a test made (stdout/stderr captures aside).
  std::vector<std::string> outputs() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string n = e.path().filename().string();
      if (n != "stdout.txt" && n != "stderr.txt") names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  // Bad input: exit code 2, exactly one line on stderr naming `needle`, no output file.
  void expect_rejected(const std::vector<std::string>& args, const std::string& needle) {
    const CliRun r = generate(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_TRUE(outputs().empty()) << "left: " << (outputs().empty() ? "" : outputs()[0]);
  }

  fs::path dir_;
};

const char* kCaption = "a large green triangle at the top on a white background";

TEST_F(GenerateCli, DefaultModelWritesPngAndSeedsAreReproducible) {
  const fs::path a = dir_ / "a.png", b = dir_ / "b.png", c = dir_ / "c.png";
  // Dashed and underscored spellings of the same flags.
  const CliRun ra = generate({"--prompt", kCaption, "--num-inference-steps", "2", "--seed", "7",
                           "--output", a.string()});
  ASSERT_EQ(ra.code, 0) << ra.err;
  EXPECT_NE(ra.out.find(a.string()), std::string::npos) << ra.out;
  EXPECT_NE(ra.out.find("denoise"), std::string::npos) << ra.out;
  EXPECT_NE(ra.err.find("step 2/2"), std::string::npos) << ra.err;  // not a terminal: lines
  const io::RgbImage img = io::read_png(a);
  EXPECT_EQ(img.height, 64);
  EXPECT_EQ(img.width, 64);

  const CliRun rb = generate({"--prompt", kCaption, "--num_inference_steps", "2", "--seed", "7",
                           "--output", b.string(), "--guidance-scale", "4.5"});
  ASSERT_EQ(rb.code, 0) << rb.err;
  EXPECT_EQ(slurp(a), slurp(b)) << "same seed, same image";
  const CliRun rc = generate({"--prompt", kCaption, "--num_inference_steps", "2", "--seed", "8",
                           "--output", c.string()});
  ASSERT_EQ(rc.code, 0) << rc.err;
  EXPECT_NE(slurp(a), slurp(c)) << "another seed, another image";
}

TEST_F(GenerateCli, SeveralPromptsWriteOneFileEach) {
  const CliRun r = generate({"--prompt", kCaption, "--prompt", "a small red circle on a blue background",
                          "--num_inference_steps", "1", "--height", "32", "--width", "48",
                          "--output", (dir_ / "out.png").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(outputs(), (std::vector<std::string>{"out_0.png", "out_1.png"}));
  const io::RgbImage img = io::read_png(dir_ / "out_1.png");
  EXPECT_EQ(img.height, 32);
  EXPECT_EQ(img.width, 48);
}

TEST_F(GenerateCli, LatentOutput) {
  const fs::path out = dir_ / "lat.safetensors";
  const CliRun r = generate({"--model", shapes_model().string(), "--prompt", kCaption,
                          "--num_inference_steps", "1", "--output_type", "latent", "--output",
                          out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const io::TensorSource t = io::TensorSource::open(out);
  EXPECT_EQ(t.names(), std::vector<std::string>{"latents"});
  EXPECT_EQ(t.info("latents").shape, (core::Shape{1, 4, 16, 16}));
}

// --prompt_embeds and --latents files reproduce diffusers' recorded call exactly.
TEST_F(GenerateCli, EmbeddingAndLatentFilesMatchDiffusers) {
  const fs::path fixture = test_data("pipeline/pixart_sigma");
  const io::TensorSource c = io::TensorSource::open(fixture / "case.safetensors");
  std::vector<std::pair<std::string, core::Tensor>> embeds;
  for (const char* n : {"prompt_embeds", "prompt_attention_mask", "negative_prompt_embeds",
                        "negative_prompt_attention_mask"}) {
    embeds.emplace_back(n, c.view(n));
  }
  io::save_safetensors(dir_ / "embeds.safetensors", embeds);
  io::save_safetensors(dir_ / "latents.safetensors", {{"latents", c.view("latents_in")}});
  const fs::path out = dir_ / "final.safetensors";
  const CliRun r = generate({"--model", fixture.string(), "--prompt_embeds",
                          (dir_ / "embeds.safetensors").string(), "--latents",
                          (dir_ / "latents.safetensors").string(), "--height", "32", "--width",
                          "32", "--num_inference_steps", "3", "--guidance_scale", "4.5",
                          "--output_type", "latent", "--output", out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const io::TensorSource got = io::TensorSource::open(out);
  EXPECT_LE(rel_l2(got.load("latents"), c.load("final_latents")), 1e-4);
}

TEST_F(GenerateCli, BadInputIsOneLineAndNoFile) {
  const std::string out = (dir_ / "x.png").string();
  expect_rejected({"--prompt", kCaption, "--height", "60", "--output", out}, "--height");
  expect_rejected({"--prompt", kCaption, "--width", "0", "--output", out}, "--width");
  expect_rejected({"--prompt", kCaption, "--num_inference_steps", "0", "--output", out},
                  "--num_inference_steps");
  expect_rejected({"--prompt", kCaption, "--output", (dir_ / "missing" / "x.png").string()},
                  "does not exist");
  expect_rejected({"--prompt", kCaption, "--output", dir_.string()}, "is a directory");
  expect_rejected({"--output", out}, "--prompt");
  expect_rejected({"--prompt", kCaption, "--model", (dir_ / "nowhere").string(), "--output", out},
                  "nowhere");

  // Hostile sizes are refused before any work: a step count past the limit, an image whose
  // buffers cannot fit in this machine's memory, a seed that is not a number, an output whose
  // extension names another format.
  expect_rejected({"--prompt", kCaption, "--num_inference_steps", "2000000000", "--output", out},
                  "--num_inference_steps");
  expect_rejected({"--prompt", kCaption, "--height", "1000000", "--width", "1000000", "--output",
                   out},
                  "available");
  expect_rejected({"--prompt", kCaption, "--seed", "12abc", "--output", out}, "--seed");
  expect_rejected({"--prompt", kCaption, "--output", (dir_ / "x.jpg").string()}, "x.jpg");
  // A guidance scale that overflows float: the run stops at the first non-finite latents
  // rather than writing a black (NaN) picture.
  expect_rejected({"--prompt", kCaption, "--guidance_scale", "3e38", "--num_inference_steps", "2",
                   "--output", out},
                  "non-finite");

  // A pipeline class paradit does not know.
  const fs::path model = fs::temp_directory_path() / ("paradit_unknown_" + std::to_string(getpid()));
  fs::create_directories(model / "unet");
  std::ofstream(model / "model_index.json")
      << R"({"_class_name": "StableDiffusionXLPipeline", "unet": ["diffusers", "UNet2DConditionModel"]})";
  expect_rejected({"--model", model.string(), "--prompt", kCaption, "--output", out},
                  "StableDiffusionXLPipeline");
  fs::remove_all(model);

  // Latents of the wrong shape.
  const fs::path lat = fs::temp_directory_path() / ("paradit_badlat_" + std::to_string(getpid()) +
                                                    ".safetensors");
  io::save_safetensors(lat, {{"latents", core::Tensor::zeros({1, 4, 8, 8})}});
  expect_rejected({"--prompt", kCaption, "--latents", lat.string(), "--output", out}, "--latents");
  fs::remove(lat);
}

// Issue 23's findings 8–12 on the CLI: what --output may replace, stale temporaries, seeds,
// formats, hostile configs. Each ends with exit code 2, one line, nothing written or replaced.
TEST_F(GenerateCli, OutputNeverReplacesWhatIsNotARegularFile) {
  const std::vector<std::string> run = {"--prompt", kCaption, "--num_inference_steps", "2",
                                        "--output"};
  auto with = [&](const fs::path& p) {
    std::vector<std::string> a = run;
    a.push_back(p.string());
    return a;
  };
  // A FIFO (a reader would block forever; a rename would replace it).
  const fs::path fifo = dir_ / "fifo.png";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  CliRun r = generate(with(fifo));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("a FIFO"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(fifo)));
  fs::remove(fifo);
  // A character device (what --output /dev/full replaced): made here when this user may.
  const fs::path dev = dir_ / "full.png";
  if (::mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 7)) == 0) {
    r = generate(with(dev));
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("a character device"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::is_character_file(fs::symlink_status(dev)));
    fs::remove(dev);
  }
  // A folder the kernel will not take files in: refused before any work (no step line).
  r = generate(with("/proc/paradit_test.png"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("cannot create files in '/proc'"), std::string::npos) << r.err;
  EXPECT_TRUE(outputs().empty());
}

TEST_F(GenerateCli, OutputThroughASymlinkReplacesItsTarget) {
  const fs::path target = dir_ / "real.png", link = dir_ / "link.png";
  std::ofstream(target) << "old";
  fs::create_symlink(target.filename(), link);
  const CliRun r = generate({"--prompt", kCaption, "--num_inference_steps", "2", "--output",
                             link.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(link)));  // the link stays a link
  const io::RgbImage img = io::read_png(target);          // its target became the picture
  EXPECT_EQ(img.width, 64);
}

TEST_F(GenerateCli, StaleTemporariesOfDeadProcessesAreRemoved) {
  // A pid that no process has: a child that already ended and was reaped.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);
  const fs::path out = dir_ / "x.png";
  const fs::path stale = dir_ / (".x.png.tmp." + std::to_string(child));
  const fs::path alive = dir_ / (".x.png.tmp." + std::to_string(::getpid()));  // this test
  std::ofstream(stale) << "half a PNG";
  std::ofstream(alive) << "being written";
  const CliRun r = generate({"--prompt", kCaption, "--num_inference_steps", "2", "--output",
                             out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(alive));  // a live process's temporary is left alone
  EXPECT_TRUE(fs::exists(out));
}

TEST_F(GenerateCli, SeedsAndFormatsAreParsedStrictly) {
  const std::string out = (dir_ / "x.png").string();
  for (const char* seed : {"-1", "18446744073709551616", "12abc", "1e3", ""}) {
    const CliRun r = generate({"--prompt", kCaption, "--seed", seed, "--output", out});
    EXPECT_EQ(r.code, 2) << seed << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_EQ(r.err.rfind("paradit: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("--seed"), std::string::npos) << r.err;
  }
  // A value CLI11 itself refuses is reported in the same form.
  const CliRun steps = generate({"--prompt", kCaption, "--num_inference_steps", "abc"});
  EXPECT_EQ(steps.code, 2);
  EXPECT_EQ(steps.err.rfind("paradit: error: ", 0), 0u) << steps.err;
  // The file type follows what is written.
  expect_rejected({"--prompt", kCaption, "--output_type", "latent", "--output",
                   (dir_ / "lat.png").string()},
                  ".safetensors");
  expect_rejected({"--prompt", kCaption, "--output", (dir_ / "x.webp").string()}, "x.webp");
  // The largest seed is accepted.
  const CliRun max = generate({"--prompt", kCaption, "--seed", "18446744073709551615",
                               "--num_inference_steps", "2", "--output", out});
  EXPECT_EQ(max.code, 0) << max.err;
}

// A copy of the demo model whose transformer config.json is `config` (weights linked).
fs::path model_with_transformer_config(const fs::path& dir, const std::string& config) {
  const fs::path src = pipelines::default_model_dir();
  const fs::path model = dir / "model";
  fs::create_directories(model / "transformer");
  for (const auto& e : fs::directory_iterator(src)) {
    if (e.path().filename() == "transformer") continue;
    fs::create_symlink(e.path(), model / e.path().filename());
  }
  fs::create_symlink(src / "transformer" / "diffusion_pytorch_model.safetensors",
                     model / "transformer" / "diffusion_pytorch_model.safetensors");
  std::ofstream(model / "transformer" / "config.json") << config;
  return model;
}

TEST_F(GenerateCli, HostileConfigsAreRefused) {
  const fs::path scratch = fs::temp_directory_path() /
                           ("paradit_hostile_" + std::to_string(::getpid()));
  fs::remove_all(scratch);
  const std::string out = (dir_ / "x.png").string();
  // An array nested 100 000 deep (was a stack overflow).
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  fs::path model = model_with_transformer_config(scratch / "deep", "{\"a\": " + deep + "}");
  expect_rejected({"--model", model.string(), "--prompt", kCaption, "--output", out},
                  "nests deeper than");
  // A billion layers (was a bad_alloc): the config as shipped with num_layers replaced.
  std::ifstream in(pipelines::default_model_dir() / "transformer" / "config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  io::Json config = io::Json::parse(ss.str());
  config["num_layers"] = 1000000000;
  model = model_with_transformer_config(scratch / "layers", config.dump());
  expect_rejected({"--model", model.string(), "--prompt", kCaption, "--output", out},
                  "num_layers");
  fs::remove_all(scratch);
}

// ---------------------------------------------------------------- video pipelines

fs::path wan_fixture() { return test_data("pipeline/wan"); }

// The stream facts ffprobe reports: "width,height,avg_frame_rate,nb_read_frames"; "" when the
// system has no ffprobe.
std::string ffprobe(const fs::path& file, const fs::path& scratch) {
  if (std::system("command -v ffprobe > /dev/null 2>&1") != 0) return "";
  const fs::path out = scratch / "ffprobe.txt";
  const std::string cmd = "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                          "stream=width,height,avg_frame_rate,nb_read_frames -of csv=p=0 " +
                          quote(file.string()) + " > " + quote(out.string()) + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << slurp(out);
  std::string text = slurp(out);
  fs::remove(out);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

TEST_F(GenerateCli, WanWritesMp4WithFramesSizeAndFps) {
  const fs::path out = dir_ / "clip.mp4";
  const CliRun r = generate({"--model", wan_fixture().string(), "--prompt", "a cat", "--height",
                          "32", "--width", "48", "--num-frames", "9", "--num_inference_steps", "1",
                          "--fps", "12", "--output", out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("9 frames at 12 fps"), std::string::npos) << r.out;
  EXPECT_EQ(outputs(), std::vector<std::string>{"clip.mp4"});
  const io::VideoFile v = io::read_video(out);  // libavformat / libavcodec
  EXPECT_EQ(v.frames.size(), 9u);
  EXPECT_EQ(v.width, 48);
  EXPECT_EQ(v.height, 32);
  EXPECT_NEAR(v.fps, 12.0, 1e-9);
  EXPECT_EQ(v.codec, "h264");
  EXPECT_EQ(v.pixel_format, "yuv420p");
  const std::string probe = ffprobe(out, dir_);
  if (!probe.empty()) EXPECT_EQ(probe, "48,32,12/1,9");
}

// --output_type frames from the recorded embeddings and initial latents: the PNG frames equal
// diffusers' recorded video (np floats, truncated to bytes as export_to_video does) within 1.
TEST_F(GenerateCli, WanFramesMatchDiffusersVideo) {
  const io::TensorSource c = io::TensorSource::open(wan_fixture() / "case.safetensors");
  io::save_safetensors(dir_ / "embeds.safetensors",
                       {{"prompt_embeds", c.view("prompt_embeds")},
                        {"negative_prompt_embeds", c.view("negative_prompt_embeds")}});
  io::save_safetensors(dir_ / "latents.safetensors", {{"latents", c.view("latents_in")}});
  const CliRun r = generate({"--model", wan_fixture().string(), "--prompt_embeds",
                          (dir_ / "embeds.safetensors").string(), "--latents",
                          (dir_ / "latents.safetensors").string(), "--height", "32", "--width",
                          "48", "--num_frames", "5", "--num_inference_steps", "3",
                          "--guidance_scale", "5", "--output_type", "frames", "--output",
                          (dir_ / "f.png").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<float> want = c.load("video").to_vector();  // (1, 5, 32, 48, 3) in [0, 1]
  int worst = 0;
  for (int f = 0; f < 5; ++f) {
    char name[32];
    std::snprintf(name, sizeof name, "f_%04d.png", f);
    ASSERT_TRUE(fs::exists(dir_ / name)) << name;
    const io::RgbImage img = io::read_png(dir_ / name);
    ASSERT_EQ(img.height, 32);
    ASSERT_EQ(img.width, 48);
    for (size_t k = 0; k < img.rgb.size(); ++k) {
      const int ref = static_cast<int>(want[f * img.rgb.size() + k] * 255.0f);
      worst = std::max(worst, std::abs(static_cast<int>(img.rgb[k]) - ref));
    }
  }
  EXPECT_LE(worst, 1);
  EXPECT_EQ(outputs().size(), 7u);  // 5 frames and the two input files
}

// A frame that cannot be written (its name is taken by a folder) fails the run after the first
// frames were written: they are removed again.
TEST_F(GenerateCli, FailedFrameWriteLeavesNoFrames) {
  fs::create_directories(dir_ / "f_0002.png");
  const CliRun r = generate({"--model", wan_fixture().string(), "--prompt", "a cat", "--height",
                          "32", "--width", "48", "--num_frames", "5", "--num_inference_steps", "1",
                          "--output_type", "frames", "--output", (dir_ / "f.png").string()});
  EXPECT_EQ(r.code, 2) << r.err;
  // The step lines, then one error line naming the file.
  const size_t error = r.err.find("paradit: error: ");
  ASSERT_NE(error, std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err.substr(error)), 1u) << r.err;
  EXPECT_NE(r.err.find("f_0002.png", error), std::string::npos) << r.err;
  EXPECT_EQ(outputs(), std::vector<std::string>{"f_0002.png"});
}

TEST_F(GenerateCli, VideoBadInputIsOneLineAndNoFile) {
  const std::string wan = wan_fixture().string();
  const std::string out = (dir_ / "v.mp4").string();
  const std::vector<std::string> base = {"--model", wan, "--prompt", "a cat",
                                         "--num_inference_steps", "1"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  const std::vector<std::string> small = {"--height", "32", "--width", "48", "--num_frames", "5"};
  auto small_with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = with(small);
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  expect_rejected(with({"--height", "32", "--width", "48", "--num_frames", "6", "--output", out}),
                  "--num_frames");
  expect_rejected(with({"--height", "32", "--width", "48", "--num_frames", "0", "--output", out}),
                  "--num_frames");
  expect_rejected(with({"--height", "40", "--width", "48", "--num_frames", "5", "--output", out}),
                  "--height");
  expect_rejected(with({"--height", "32", "--width", "24", "--num_frames", "5", "--output", out}),
                  "--width");
  expect_rejected(small_with({"--output", (dir_ / "v.png").string()}), ".mp4");
  expect_rejected(small_with({"--output_type", "pil", "--output", out}), "--output_type");
  expect_rejected(small_with({"--fps", "0", "--output", out}), "--fps");
  expect_rejected(small_with({"--output", (dir_ / "no" / "v.mp4").string()}), "does not exist");
  // Image pipelines take no frame count and write no video.
  expect_rejected({"--prompt", kCaption, "--num_frames", "5", "--output", (dir_ / "i.png").string()},
                  "--num_frames");
  expect_rejected({"--prompt", kCaption, "--output_type", "frames", "--output",
                   (dir_ / "i.png").string()},
                  "--output_type");
  // HunyuanVideo has no text encoder here: text alone is refused.
  const fs::path hv = dir_.string() + "_hunyuan";
  make_hunyuan_video_pipeline(hv);
  expect_rejected({"--model", hv.string(), "--prompt", "a cat", "--height", "32", "--width", "32",
                   "--num_frames", "5", "--output", out},
                  "--prompt_embeds");
  fs::remove_all(hv);
}

// `paradit generate args extra --output out` on `np` processes (mpirun when np > 1); expects
// exit 0, the log in `log` otherwise.
void run_generate_np(int np, const std::vector<std::string>& args, const std::string& extra,
                     const fs::path& out, const fs::path& log) {
  std::string cmd = "OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ";
  if (np > 1) {
    cmd += "timeout -s KILL 120 mpirun --allow-run-as-root --oversubscribe --bind-to none -np " +
           std::to_string(np) + " ";
  }
  cmd += std::string(PARADIT_BINARY) + " generate";
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " " + extra + " --output " + quote(out.string()) + " > " + quote(log.string()) + " 2>&1";
  const int status = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << extra << ": " << slurp(log);
}

// Largest difference of the 8-bit samples of frames a_<f>.png and b_<f>.png, f < frames.
int frames_diff(const fs::path& a, const fs::path& b, int frames) {
  int worst = 0;
  for (int f = 0; f < frames; ++f) {
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "_%04d.png", f);
    if (!fs::exists(b.string() + suffix)) return 256;
    const io::RgbImage x = io::read_png(a.string() + suffix);
    const io::RgbImage y = io::read_png(b.string() + suffix);
    if (x.rgb.size() != y.rgb.size()) return 256;
    for (size_t k = 0; k < x.rgb.size(); ++k) worst = std::max(worst, std::abs(x.rgb[k] - y.rgb[k]));
  }
  return worst;
}

// The parallel flags on the Wan pipeline under mpirun (np 2 and 4) against the one-process run
// of the same command: latents within 1e-5 relative, PNG frames within 1.
TEST_F(GenerateCli, WanParallelFlagsEqualOneProcess) {
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "no mpirun";
  const std::vector<std::string> args = {
      "--model", wan_fixture().string(), "--prompt", "a cat", "--prompt", "a dog", "--height",
      "32", "--width", "48", "--num_frames", "9", "--num_inference_steps", "3", "--seed", "3"};
  auto command = [&](int np, const std::string& extra, const fs::path& out) {
    run_generate_np(np, args, extra, out, dir_ / "log.txt");
  };
  command(1, "--output_type latent", dir_ / "ref.safetensors");
  const core::Tensor ref = io::TensorSource::open(dir_ / "ref.safetensors").load("latents");
  for (const std::string flags : {"--use_cfg_parallel", "--data_parallel_degree 2",
                                  "--ulysses_degree 2", "--ring_degree 2"}) {
    const fs::path out = dir_ / "par.safetensors";
    command(2, flags + " --output_type latent", out);
    if (!fs::exists(out)) continue;
    const double e = rel_l2(io::TensorSource::open(out).load("latents"), ref);
    EXPECT_LE(e, 1e-5) << flags;
    fs::remove(out);
  }
  // Frames: data parallel × Ulysses with the parallel VAE flag, one file set per prompt.
  command(1, "--output_type frames", dir_ / "ref.png");
  command(4, "--data_parallel_degree 2 --ulysses_degree 2 --use_parallel_vae --output_type frames",
          dir_ / "par.png");
  for (const char* p : {"_0", "_1"}) {
    EXPECT_LE(frames_diff(dir_ / ("ref" + std::string(p)), dir_ / ("par" + std::string(p)), 9), 1)
        << p;
  }
}

// HunyuanVideo with true CFG: CFG parallel, Ulysses and the parallel VAE equal one process.
TEST_F(GenerateCli, HunyuanVideoParallelFlagsEqualOneProcess) {
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "no mpirun";
  const fs::path hv = dir_.string() + "_hunyuan";
  make_hunyuan_video_pipeline(hv);
  std::vector<int64_t> mask(12, 1), neg_mask(12, 1);
  mask[11] = 0;
  for (int i = 5; i < 12; ++i) neg_mask[static_cast<size_t>(i)] = 0;
  io::save_safetensors(
      dir_ / "embeds.safetensors",
      {{"prompt_embeds", core::randn({1, 12, 32}, 3)},
       {"pooled_prompt_embeds", core::randn({1, 24}, 4)},
       {"prompt_attention_mask", core::Tensor::from_vector_i64(mask, {1, 12})},
       {"negative_prompt_embeds", core::randn({1, 12, 32}, 5)},
       {"negative_pooled_prompt_embeds", core::randn({1, 24}, 6)},
       {"negative_prompt_attention_mask", core::Tensor::from_vector_i64(neg_mask, {1, 12})}});
  const std::vector<std::string> args = {
      "--model", hv.string(), "--prompt_embeds", (dir_ / "embeds.safetensors").string(),
      "--height", "32", "--width", "32", "--num_frames", "9", "--num_inference_steps", "3",
      "--true_cfg_scale", "3", "--seed", "1"};
  const fs::path log = dir_ / "log.txt";
  run_generate_np(1, args, "--output_type latent", dir_ / "ref.safetensors", log);
  run_generate_np(2, args, "--ulysses_degree 2 --output_type latent", dir_ / "par.safetensors",
                  log);
  if (fs::exists(dir_ / "par.safetensors")) {
    EXPECT_LE(rel_l2(io::TensorSource::open(dir_ / "par.safetensors").load("latents"),
                     io::TensorSource::open(dir_ / "ref.safetensors").load("latents")),
              1e-5);
  }
  run_generate_np(1, args, "--output_type frames", dir_ / "ref.png", log);
  run_generate_np(2, args, "--use_cfg_parallel --use_parallel_vae --output_type frames",
                  dir_ / "par.png", log);
  EXPECT_LE(frames_diff(dir_ / "ref", dir_ / "par", 9), 1);
  fs::remove_all(hv);
}

TEST_F(GenerateCli, HunyuanVideoFromEmbeddingsWritesMp4) {
  const fs::path hv = dir_.string() + "_hunyuan";
  make_hunyuan_video_pipeline(hv);
  std::vector<int64_t> mask(12, 1);
  mask[10] = mask[11] = 0;
  io::save_safetensors(dir_ / "embeds.safetensors",
                       {{"prompt_embeds", core::randn({1, 12, 32}, 3)},
                        {"pooled_prompt_embeds", core::randn({1, 24}, 4)},
                        {"prompt_attention_mask", core::Tensor::from_vector_i64(mask, {1, 12})}});
  const fs::path out = dir_ / "hv.mp4";
  const CliRun r = generate({"--model", hv.string(), "--prompt_embeds",
                          (dir_ / "embeds.safetensors").string(), "--height", "32", "--width",
                          "32", "--num_frames", "5", "--num_inference_steps", "2", "--output",
                          out.string()});
  fs::remove_all(hv);
  ASSERT_EQ(r.code, 0) << r.err;
  const io::VideoFile v = io::read_video(out);
  EXPECT_EQ(v.frames.size(), 5u);
  EXPECT_EQ(v.width, 32);
  EXPECT_EQ(v.height, 32);
  EXPECT_NEAR(v.fps, 15.0, 1e-9);  // HunyuanVideo's default
}

}  // namespace
}  // namespace paradit::pipelines
