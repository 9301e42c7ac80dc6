// `paradit serve` with a video pipeline (the tiny Wan fixture, text encoder included): jobs answer
// MP4s that decode to the frames of the MP4 `paradit generate` writes for the same parameters,
// and bad video fields are refused with 400 while the server keeps serving.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "io/video.h"
#include "pipelines/pipeline.h"
#include "server_harness.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using server_test::ServerProcess;

const char* kVideoPrompt = "a red ball rolling on grass";

class ServeVideoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = fs::path(PARADIT_TEST_DATA) / "pipeline" / "wan";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("paradit_serve_video_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // The MP4 `paradit generate` writes, decoded by the libavformat reader.
  io::VideoFile reference(const std::string& flags) const {
    const fs::path out = dir_ / "ref.mp4";
    const std::string cmd = std::string(PARADIT_BINARY) + " generate --model " + model_.string() +
                            " --prompt '" + kVideoPrompt + "' " + flags + " --output " +
                            out.string() + " > /dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return io::read_video(out);
  }

  io::VideoFile decode(const std::string& b64) const {
    const fs::path p = dir_ / "answer.mp4";
    std::ofstream(p, std::ios::binary) << server_test::decode_base64(b64);
    return io::read_video(p);
  }

  fs::path model_;
  fs::path dir_;
};

Json poll_until_final(httplib::Client& cli, const std::string& id, double seconds = 120) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  Json j;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = cli.Get("/v1/jobs/" + id);
    if (r && r->status == 200) {
      j = Json::parse(r->body);
      const std::string s = j.value("status", "");
      if (s != "queued" && s != "running") return j;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "job " << id << " did not end in time; last: " << j.dump();
  return j;
}

TEST_F(ServeVideoTest, JobMp4MatchesGenerateCommand) {
  ServerProcess server({"--model", model_.string()}, dir_ / "serve.log");
  auto cli = server.client();
  const int steps = 3;
  const uint64_t seed = 11;
  const double fps = 8;

  // A video model is not served synchronously.
  const Json sync = {{"prompt", kVideoPrompt}, {"size", "32x48"}, {"num_frames", 5}};
  auto r = cli.Post("/v1/images/generations", sync.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("/v1/jobs"), std::string::npos) << r->body;

  // Bad frame counts (off the 4k+1 grid, above the maximum, not an integer) → 400 naming them.
  for (const Json& bad : {Json(6), Json(100001), Json(5.5), Json("5")}) {
    const Json b = {{"prompt", kVideoPrompt}, {"size", "32x48"}, {"num_frames", bad}};
    r = cli.Post("/v1/jobs", b.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << bad.dump();
    EXPECT_NE(r->body.find("num_frames"), std::string::npos) << r->body;
  }
  const Json bad_fps = {{"prompt", kVideoPrompt}, {"fps", -1}};
  r = cli.Post("/v1/jobs", bad_fps.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("fps"), std::string::npos) << r->body;

  // Width 32, height 48: multiples of VAE 8 × patch 2.
  const Json body = {{"prompt", kVideoPrompt}, {"size", "32x48"}, {"num_frames", 5},
                     {"num_inference_steps", steps}, {"seed", seed}, {"fps", fps}};
  r = cli.Post("/v1/jobs", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const std::string id = Json::parse(r->body).at("id");
  const Json job = poll_until_final(cli, id);
  ASSERT_EQ(job.value("status", ""), "succeeded") << job.dump();
  EXPECT_EQ(job["progress"]["step"], steps);
  EXPECT_EQ(job["progress"]["total"], steps);
  ASSERT_EQ(job["data"].size(), 1u);
  EXPECT_DOUBLE_EQ(job["data"][0].at("fps").get<double>(), fps);
  const io::VideoFile got = decode(job["data"][0].at("b64_mp4").get<std::string>());

  const io::VideoFile want =
      reference("--height 48 --width 32 --num_frames 5 --num_inference_steps " +
                std::to_string(steps) + " --seed " + std::to_string(seed) + " --fps 8");
  EXPECT_EQ(got.codec, want.codec);
  EXPECT_EQ(got.width, 32);
  EXPECT_EQ(got.height, 48);
  EXPECT_NEAR(got.fps, fps, 1e-6);
  ASSERT_EQ(got.frames.size(), 5u);
  ASSERT_EQ(want.frames.size(), 5u);
  // The same frames through the same encoder settings give the same stream (io::save_mp4 turns
  // off x264's macroblock-tree rate control, which made it depend on the heap's contents).
  for (size_t f = 0; f < got.frames.size(); ++f) {
    EXPECT_TRUE(got.frames[f].rgb == want.frames[f].rgb)
        << "frame " << f << " differs from paradit generate's MP4";
  }

  // Still serving after the refusals.
  r = cli.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(server.stop(SIGTERM, 30), 0);
}

TEST_F(ServeVideoTest, ImageModelRefusesNumFrames) {
  fs::path image_model;
  try {
    image_model = pipelines::default_model_dir();
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no shipped model: " << e.what();
  }
  ServerProcess server({"--model", image_model.string()}, dir_ / "serve.log");
  auto cli = server.client();
  const Json body = {{"prompt", "a circle"}, {"num_frames", 5}};
  for (const char* path : {"/v1/jobs", "/v1/images/generations"}) {
    auto r = cli.Post(path, body.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << path;
    EXPECT_NE(r->body.find("num_frames"), std::string::npos) << r->body;
  }
  EXPECT_EQ(server.stop(SIGTERM, 30), 0);
}

}  // namespace
}  // namespace paradit
