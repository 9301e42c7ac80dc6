// `paradit serve` driven by the official OpenAI Python client (tests/server/openai_client.py, run
// with the python of a venv that has the pinned `openai` package: scripts/openai-venv.sh). The
// script saves every answer; this test decodes them with libpng and FFmpeg (io::read_png,
// io::read_video) and compares them with the files `paradit generate` writes for the same
// parameters — the reference path, a separate process.
//
// Without the client the tests skip with a line saying how to get it, unless
// PARADIT_REQUIRE_OPENAI=1 (scripts/test.sh sets it: in CI a missing client is a failure).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "comm/runtime.h"
#include "io/image.h"
#include "io/video.h"
#include "pipelines/pipeline.h"
#include "server_harness.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using server_test::ServerProcess;

const char* kImagePrompt = "a small red circle on the left on a blue background";
const char* kVideoPrompt = "a red ball rolling on grass";
// Not square, so a width/height swap anywhere fails.
constexpr int kWidth = 48, kHeight = 32;

std::string openai_python() {
  if (const char* p = std::getenv("PARADIT_OPENAI_PYTHON")) return p;
  return PARADIT_OPENAI_PYTHON;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs a shell command; its exit code (-1 when it did not exit normally).
int run(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// PSNR (dB, peak 255) of two images of the same size; infinity when equal, 0 when sizes differ.
double psnr(const io::RgbImage& a, const io::RgbImage& b) {
  if (a.width != b.width || a.height != b.height || a.rgb.size() != b.rgb.size() || a.rgb.empty()) {
    return 0;
  }
  double se = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) {
    const double d = double(a.rgb[i]) - double(b.rgb[i]);
    se += d * d;
  }
  if (se == 0) return INFINITY;
  return 10.0 * std::log10(255.0 * 255.0 * double(a.rgb.size()) / se);
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

class OpenAIClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string python = openai_python();
    const bool required = std::getenv("PARADIT_REQUIRE_OPENAI") != nullptr &&
                          std::string(std::getenv("PARADIT_REQUIRE_OPENAI")) == "1";
    if (run(shell_quote(python) + " -c 'import openai' > /dev/null 2>&1") != 0) {
      const std::string why = "the official OpenAI client is not importable by " + python +
                              " (run scripts/openai-venv.sh BUILD_DIR, or set "
                              "PARADIT_OPENAI_PYTHON)";
      if (required) FAIL() << why << "; PARADIT_REQUIRE_OPENAI=1 makes that a failure";
      GTEST_SKIP() << why;
    }
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("paradit_openai_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "out");
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_, ec);
    if (HasFailure()) std::printf("kept for inspection: %s\n", dir_.c_str());
  }

  // Runs the client script against `server`; its results.json.
  Json drive(const ServerProcess& server, const std::string& mode, const std::string& model,
             const std::string& prompt, const std::string& size, const std::string& extra = "") {
    const std::string cmd =
        shell_quote(openai_python()) + " " + shell_quote(PARADIT_OPENAI_SCRIPT) +
        " --base-url http://127.0.0.1:" + std::to_string(server.port()) + "/v1 --out " +
        shell_quote((dir_ / "out").string()) + " --mode " + mode + " --model " +
        shell_quote(model) + " --prompt " + shell_quote(prompt) + " --size " + size + " " + extra +
        " > " + shell_quote((dir_ / "client.log").string()) + " 2>&1";
    const int rc = run(cmd);
    EXPECT_EQ(rc, 0) << "the OpenAI client script failed:\n" << read_text(dir_ / "client.log");
    if (rc != 0) return Json();
    return Json::parse(read_text(dir_ / "out" / "results.json"));
  }

  // The images `paradit generate` writes for `count` copies of the prompt.
  std::vector<io::RgbImage> reference(const std::string& flags, int count,
                                      const std::string& prompt = kImagePrompt) {
    std::string cmd = std::string("OMP_NUM_THREADS=1 ") + PARADIT_BINARY + " generate";
    for (int i = 0; i < count; ++i) cmd += " --prompt " + shell_quote(prompt);
    const fs::path out = dir_ / "ref.png";
    cmd += " " + flags + " --output " + out.string() + " > /dev/null 2>&1";
    EXPECT_EQ(run(cmd), 0) << cmd;
    std::vector<io::RgbImage> images;
    for (int i = 0; i < count; ++i) {
      images.push_back(io::read_png(count == 1 ? out : pipelines::indexed_output_path(out, i)));
    }
    return images;
  }

  fs::path out(const std::string& name) const { return dir_ / "out" / name; }

  // The whole image case (one worker process, or `workers`: the flags of an MPI worker job).
  void images_case(const std::vector<std::string>& workers);
  // The whole video case.
  void videos_case(const std::vector<std::string>& workers);

  fs::path dir_;
};

void OpenAIClientTest::images_case(const std::vector<std::string>& workers) {
  const fs::path model_dir = pipelines::default_model_dir();
  std::vector<std::string> args = {"--model", model_dir.string(), "--max_n",
                                   "4",       "--max_steps",      "50"};
  if (!workers.empty()) {
    args.insert(args.end(), workers.begin(), workers.end());
    args.insert(args.end(), {"--data_parallel_degree", "2"});
  }
  ServerProcess server(args, dir_ / "serve.log");
  const std::string size = std::to_string(kWidth) + "x" + std::to_string(kHeight);
  const Json r =
      drive(server, "image", "shapes-pixart", kImagePrompt, size, "--max-n 4 --max-steps 50");
  ASSERT_TRUE(r.is_object());
  std::printf("openai client %s\n", r.value("openai_version", "?").c_str());

  // models.list() / retrieve: the folder's name.
  EXPECT_EQ(r["models"], Json::array({"shapes-pixart"}));
  EXPECT_EQ(r["model_retrieved"], "shapes-pixart");

  // n=2 as b64_json and as url: both equal `paradit generate` pixel for pixel.
  const auto refs = reference(
      "--width 48 --height 32 --num_inference_steps 2 --seed 7 "
      "--guidance_scale 3",
      2);
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_FALSE(refs[0].rgb == refs[1].rgb);
  for (const char* kind : {"b64", "url"}) {
    ASSERT_EQ(r[kind]["files"].size(), 2u) << kind;
    EXPECT_EQ(r[kind]["size"], size);
    for (size_t i = 0; i < 2; ++i) {
      const io::RgbImage got = io::read_png(out(r[kind]["files"][i]));
      EXPECT_EQ(got.width, kWidth);
      EXPECT_EQ(got.height, kHeight);
      EXPECT_TRUE(got.rgb == refs[i].rgb)
          << kind << " image " << i << " differs from paradit generate";
    }
  }
  EXPECT_EQ(r["url"]["content_types"], Json::array({"image/png", "image/png"}));
  for (const auto& u : r["url"]["urls"]) {
    EXPECT_EQ(u.get<std::string>().rfind(
                  "http://127.0.0.1:" + std::to_string(server.port()) + "/v1/files/file-", 0),
              0u)
        << u;
  }

  // Each output format: the PNG exact; JPEG and WebP decode (FFmpeg) to the size and close to
  // the reference: lossy at compression 90, so a PSNR bound (measured: JPEG 4:4:4 37.4 dB, WebP
  // 4:2:0 29.3 dB), far above what the image of another caption scores against the same
  // reference (6.4 dB); WebP at compression 100 is lossless, so exact.
  const auto ref1 = reference("--width 48 --height 32 --num_inference_steps 12 --seed 7", 1)[0];
  const auto other = reference("--width 48 --height 32 --num_inference_steps 12 --seed 7", 1,
                               "a large yellow square at the top left on a black background")[0];
  EXPECT_TRUE(io::read_png(out("format.png")).rgb == ref1.rgb);
  for (const char* fmt : {"jpeg", "webp"}) {
    EXPECT_EQ(r[std::string("format_") + fmt]["output_format"], fmt);
    const io::VideoFile f = io::read_video(out(std::string("format.") + fmt));
    EXPECT_EQ(f.codec, std::string(fmt) == "jpeg" ? "mjpeg" : "webp");
    ASSERT_EQ(f.frames.size(), 1u) << fmt;
    EXPECT_EQ(f.frames[0].width, kWidth) << fmt;
    EXPECT_EQ(f.frames[0].height, kHeight) << fmt;
    const double db = psnr(f.frames[0], ref1);
    const double wrong = psnr(f.frames[0], other);
    std::printf("%s vs paradit generate's PNG: PSNR %.2f dB (vs another caption's: %.2f dB)\n", fmt,
                db, wrong);
    EXPECT_GE(db, 25.0) << fmt;
    EXPECT_GE(db, wrong + 10.0) << fmt;
  }
  const io::VideoFile lossless = io::read_video(out("format.lossless.webp"));
  ASSERT_EQ(lossless.frames.size(), 1u);
  EXPECT_TRUE(lossless.frames[0].rgb == ref1.rgb) << "lossless WebP differs from the PNG";
  // The fields paradit ignores are named once in the log, though two requests sent them.
  const std::string log = read_text(dir_ / "serve.log");
  EXPECT_EQ(count(log, "ignoring request field 'paradit_test_unknown_field'"), 1u) << log;
  EXPECT_EQ(count(log, "ignoring request field 'style=vivid'"), 1u) << log;

  // Streaming: two previews, then the final image, which equals the non-streamed answer and
  // `paradit generate`. The previews come from the step's predicted clean latents: each one
  // differs from the final image and the later one is closer to it.
  const io::RgbImage plain = io::read_png(out("nonstream.png"));
  const auto stream_ref =
      reference("--width 48 --height 32 --num_inference_steps 4 --seed 3", 1)[0];
  EXPECT_TRUE(plain.rgb == stream_ref.rgb);
  for (const char* tag : {"stream_a", "stream_b"}) {
    const Json& events = r[tag];
    ASSERT_EQ(events.size(), 3u) << tag << ": " << events.dump();
    EXPECT_EQ(events[0]["type"], "image_generation.partial_image");
    EXPECT_EQ(events[1]["type"], "image_generation.partial_image");
    EXPECT_EQ(events[2]["type"], "image_generation.completed");
    EXPECT_EQ(events[0]["partial_image_index"], 0);
    EXPECT_EQ(events[1]["partial_image_index"], 1);
    std::vector<io::RgbImage> images;
    for (const Json& e : events) {
      EXPECT_EQ(e["size"], size);
      EXPECT_EQ(e["output_format"], "png");
      images.push_back(io::read_png(out(e["file"])));
      EXPECT_EQ(images.back().width, kWidth);
      EXPECT_EQ(images.back().height, kHeight);
    }
    EXPECT_TRUE(images[2].rgb == plain.rgb) << tag << ": streamed final != non-streamed";
    const double first = psnr(images[0], images[2]);
    const double second = psnr(images[1], images[2]);
    std::printf("%s previews vs final: %.2f dB, %.2f dB\n", tag, first, second);
    EXPECT_TRUE(std::isfinite(first) && std::isfinite(second)) << "a preview equals the final";
    EXPECT_GT(second, first);
  }

  // Limits → 400 naming the limit and the field; a wrong model → 404.
  const std::vector<std::pair<std::string, std::string>> limits = {
      {"over_max_pixels", "--max_pixels"},
      {"over_max_n", "--max_n"},
      {"over_max_steps", "--max_steps"}};
  for (const auto& [key, flag] : limits) {
    EXPECT_EQ(r[key]["status"], 400) << key;
    EXPECT_EQ(r[key]["class"], "BadRequestError") << key;
    EXPECT_NE(r[key]["error"]["message"].get<std::string>().find(flag), std::string::npos)
        << r[key].dump();
    EXPECT_EQ(r[key]["error"]["code"], "limit_exceeded");
    EXPECT_EQ(r[key]["error"]["type"], "invalid_request_error");
  }
  EXPECT_EQ(r["over_max_pixels"]["error"]["param"], "size");
  EXPECT_EQ(r["over_max_n"]["error"]["param"], "n");
  EXPECT_EQ(r["over_max_steps"]["error"]["param"], "num_inference_steps");
  EXPECT_EQ(r["bad_format"]["status"], 400);
  EXPECT_EQ(r["bad_format"]["error"]["param"], "output_format");
  for (const char* key : {"wrong_model", "wrong_model_retrieve"}) {
    EXPECT_EQ(r[key]["status"], 404) << key;
    EXPECT_EQ(r[key]["class"], "NotFoundError") << key;
    EXPECT_EQ(r[key]["error"]["code"], "model_not_found") << key;
  }
  // The refused requests never reached a worker.
  auto cli = server.client();
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("paradit_requests_total{status=\"invalid\"} 5\n"), std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find("paradit_requests_total{status=\"succeeded\"} 9\n"), std::string::npos)
      << m->body;
  auto h = cli.Get("/health");
  ASSERT_TRUE(h && h->status == 200);
  EXPECT_EQ(Json::parse(h->body)["pid"].get<pid_t>(), server.pid());  // the front end
  EXPECT_EQ(server.stop(SIGTERM, 60), 0);
}

void OpenAIClientTest::videos_case(const std::vector<std::string>& workers) {
  const fs::path model_dir = fs::path(PARADIT_TEST_DATA) / "pipeline" / "wan";
  std::vector<std::string> args = {"--model", model_dir.string()};
  if (!workers.empty()) {
    args.insert(args.end(), workers.begin(), workers.end());
    args.insert(args.end(), {"--data_parallel_degree", "2"});
  }
  ServerProcess server(args, dir_ / "serve.log");
  const Json r = drive(server, "video", "wan", kVideoPrompt, "32x48");
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r["models"], Json::array({"wan"}));

  // Answered at once: queued, or already picked up by an idle worker.
  const std::string created = r["created"]["status"];
  EXPECT_TRUE(created == "queued" || created == "in_progress") << created;
  EXPECT_LT(r["created"]["progress"].get<int>(), 100);
  for (const char* key : {"final", "final_b"}) {
    const Json& v = r[key];
    EXPECT_EQ(v["status"], "completed") << v.dump();
    EXPECT_EQ(v["progress"], 100);
    EXPECT_EQ(v["object"], "video");
    EXPECT_EQ(v["model"], "wan");
    EXPECT_EQ(v["size"], "32x48");
    EXPECT_EQ(v["seconds"], "0.625");  // 0.5 s at 8 fps → 5 frames (4k+1) → 5/8 s
    EXPECT_EQ(v["num_frames"], 5);
    EXPECT_TRUE(v["completed_at"].is_number_integer());
    EXPECT_TRUE(v["expires_at"].is_number_integer());
  }
  // Progress only grows while polling.
  int last = -1;
  for (const Json& s : r["progress_seen"]) {
    EXPECT_GE(s[1].get<int>(), last) << r["progress_seen"].dump();
    last = s[1].get<int>();
  }

  // The MP4s against `paradit generate`'s, decoded by libavformat: the same frames, size and
  // rate (the H.264 encode is a function of the frames: see io::save_mp4).
  const fs::path ref_path = dir_ / "ref.mp4";
  const std::string cmd = std::string("OMP_NUM_THREADS=1 ") + PARADIT_BINARY +
                          " generate --model " + model_dir.string() + " --prompt " +
                          shell_quote(kVideoPrompt) +
                          " --width 32 --height 48 --num_frames 5 --num_inference_steps 3 "
                          "--seed 11 --fps 8 --output " +
                          ref_path.string() + " > /dev/null 2>&1";
  ASSERT_EQ(run(cmd), 0) << cmd;
  const io::VideoFile want = io::read_video(ref_path);
  for (const char* name : {"video_a.mp4", "video_b.mp4"}) {
    const io::VideoFile got = io::read_video(out(name));
    EXPECT_EQ(got.codec, want.codec);
    EXPECT_EQ(got.width, 32);
    EXPECT_EQ(got.height, 48);
    EXPECT_NEAR(got.fps, 8.0, 1e-6);
    ASSERT_EQ(got.frames.size(), 5u);
    ASSERT_EQ(want.frames.size(), 5u);
    for (size_t f = 0; f < 5; ++f) {
      EXPECT_TRUE(got.frames[f].rgb == want.frames[f].rgb)
          << name << " frame " << f << " differs from paradit generate's (PSNR "
          << psnr(got.frames[f], want.frames[f]) << " dB)";
    }
  }

  EXPECT_EQ(r["listed"].size(), 2u);
  EXPECT_EQ(r["deleted"]["deleted"], true);
  EXPECT_EQ(r["deleted"]["object"], "video.deleted");
  EXPECT_EQ(r["retrieve_deleted"]["status"], 404);
  EXPECT_EQ(r["over_max_frames"]["status"], 400);
  EXPECT_EQ(r["over_max_frames"]["error"]["param"], "seconds");
  EXPECT_NE(r["over_max_frames"]["error"]["message"].get<std::string>().find("--max_frames"),
            std::string::npos);
  EXPECT_EQ(r["over_max_pixels"]["status"], 400);
  EXPECT_NE(r["over_max_pixels"]["error"]["message"].get<std::string>().find("--max_pixels"),
            std::string::npos);
  EXPECT_EQ(r["wrong_model"]["status"], 404);
  EXPECT_EQ(r["wrong_model"]["error"]["code"], "model_not_found");

  auto cli = server.client();
  auto h = cli.Get("/health");
  ASSERT_TRUE(h && h->status == 200);
  EXPECT_EQ(Json::parse(h->body)["pid"].get<pid_t>(), server.pid());  // the front end
  EXPECT_EQ(server.stop(SIGTERM, 60), 0);
}

TEST_F(OpenAIClientTest, Images) { images_case({}); }

TEST_F(OpenAIClientTest, Videos) { videos_case({}); }

// The Python examples users copy — the one `paradit info` prints for the shipped model and the
// one in README.md — run against a live server and write the image `paradit generate` writes.
TEST_F(OpenAIClientTest, DocumentedPythonExamplesWork) {
  const fs::path model_dir = pipelines::default_model_dir();
  ServerProcess server({"--model", model_dir.string()}, dir_ / "serve.log");
  const std::string port = std::to_string(server.port());
  auto with_port = [&](std::string code) {
    for (size_t at = code.find(":8000"); at != std::string::npos; at = code.find(":8000", at)) {
      code.replace(at, 5, ":" + port);
    }
    return code;
  };
  // `paradit info`: the lines from "python3: " on, unindented.
  const fs::path info_txt = dir_ / "info.txt";
  ASSERT_EQ(run(std::string(PARADIT_BINARY) + " info " + model_dir.string() + " > " +
                info_txt.string() + " 2>&1"),
            0);
  const std::string info = read_text(info_txt);
  const size_t start = info.find("python3: ");
  ASSERT_NE(start, std::string::npos) << info;
  std::string info_code;
  std::istringstream lines(info.substr(start + 9));
  for (std::string line; std::getline(lines, line);) {
    if (!info_code.empty() && line.rfind("  ", 0) != 0) break;
    info_code += (line.rfind("  ", 0) == 0 ? line.substr(2) : line) + "\n";
  }
  // README.md: the ```python block of the serving section.
  const std::string readme = read_text(fs::path(PARADIT_TEST_DATA) / ".." / ".." / "README.md");
  const size_t block = readme.find("```python\nfrom openai import OpenAI");
  ASSERT_NE(block, std::string::npos);
  const size_t body = readme.find('\n', block) + 1;
  const std::string readme_code = readme.substr(body, readme.find("```", body) - body);

  const std::vector<std::pair<std::string, std::string>> examples = {{"info", info_code},
                                                                     {"readme", readme_code}};
  for (const auto& [name, code] : examples) {
    const fs::path work = dir_ / name;
    fs::create_directories(work);
    std::ofstream(work / "example.py") << with_port(code);
    EXPECT_EQ(run("cd " + shell_quote(work.string()) + " && " + shell_quote(openai_python()) +
                  " example.py > example.log 2>&1"),
              0)
        << name << " example:\n"
        << with_port(code) << "\n"
        << read_text(work / "example.log");
  }
  // Both ask for the shipped model's default 64x64 image at 20 steps (README: seed 1).
  const auto info_ref = reference("--width 64 --height 64", 1)[0];
  const auto readme_ref = reference("--width 64 --height 64 --seed 1", 1)[0];
  EXPECT_TRUE(io::read_png(dir_ / "info" / "image.png").rgb == info_ref.rgb);
  EXPECT_TRUE(io::read_png(dir_ / "readme" / "image.png").rgb == readme_ref.rgb);
  EXPECT_EQ(server.stop(SIGTERM, 30), 0);
}

#define SKIP_WITHOUT_MPIRUN()                                                                \
  do {                                                                                       \
    if (server_test::worker_flags(1).empty()) GTEST_SKIP() << "built without MPI";           \
    if (comm::launched_by_mpi()) GTEST_SKIP() << "starts mpirun itself; single-process run"; \
  } while (0)

// The same client run against `paradit serve --np 2 --data_parallel_degree 2` (an MPI worker job
// of two one-rank groups): concurrent requests land on both groups, so answers (and streamed
// previews) also come from the group rank 0 does not lead.
TEST_F(OpenAIClientTest, ImagesUnderMpirun) {
  SKIP_WITHOUT_MPIRUN();
  images_case(server_test::worker_flags(2));
}

TEST_F(OpenAIClientTest, VideosUnderMpirun) {
  SKIP_WITHOUT_MPIRUN();
  videos_case(server_test::worker_flags(2));
}

}  // namespace
}  // namespace paradit
