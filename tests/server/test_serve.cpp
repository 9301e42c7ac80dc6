// `paradit serve` end to end: the real binary on a free port, real HTTP requests. Images are
// checked pixel for pixel against `paradit generate`'s PNG files (the reference path).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "io/image.h"
#include "pipelines/pipeline.h"
#include "server_harness.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using server_test::ServerProcess;

const char* kPrompt = "a small red circle on the left on a blue background";

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      model_ = pipelines::default_model_dir();
    } catch (const std::exception& e) {
      GTEST_SKIP() << "no shipped model: " << e.what();
    }
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("paradit_serve_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  std::unique_ptr<ServerProcess> start(std::vector<std::string> args) {
    args.insert(args.begin(), {"--model", model_.string()});
    return std::make_unique<ServerProcess>(args, dir_ / "serve.log");
  }

  // The PNG files `paradit generate` writes for `count` copies of the prompt.
  std::vector<io::RgbImage> reference(const std::string& flags, int count) const {
    std::string cmd = std::string(PARADIT_BINARY) + " generate --model " + model_.string();
    for (int i = 0; i < count; ++i) cmd += std::string(" --prompt '") + kPrompt + "'";
    const fs::path out = dir_ / "ref.png";
    cmd += " " + flags + " --output " + out.string() + " > /dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::vector<io::RgbImage> images;
    for (int i = 0; i < count; ++i) {
      images.push_back(io::read_png(count == 1 ? out : pipelines::indexed_output_path(out, i)));
    }
    return images;
  }

  // A b64_json answer → pixels (through a file and io::read_png).
  io::RgbImage decode(const std::string& b64) const {
    const fs::path p = dir_ / ("answer_" + std::to_string(counter_++) + ".png");
    std::ofstream(p, std::ios::binary) << server_test::decode_base64(b64);
    return io::read_png(p);
  }

  fs::path model_;
  fs::path dir_;
  mutable std::atomic<int> counter_{0};
};

Json body(int steps, const std::string& size, uint64_t seed, int n = 1) {
  return {{"prompt", kPrompt}, {"n", n}, {"size", size}, {"num_inference_steps", steps},
          {"seed", seed}, {"response_format", "b64_json"}};
}

// Polls GET /v1/jobs/{id} until `done(job)` or the time runs out.
template <typename Pred>
Json poll_job(httplib::Client& cli, const std::string& id, Pred done, double seconds = 60) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  Json j;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = cli.Get("/v1/jobs/" + id);
    if (r && r->status == 200) {
      j = Json::parse(r->body);
      if (done(j)) return j;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "job " << id << " did not reach the state in time; last: " << j.dump();
  return j;
}

double metric(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

TEST_F(ServeTest, GenerationMatchesGenerateCommand) {
  auto server = start({});
  auto cli = server->client();
  Json req = body(2, "32x32", 7, 2);
  req["guidance_scale"] = 3.0;
  req["negative_prompt"] = "green";
  auto r = cli.Post("/v1/images/generations", req.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const Json j = Json::parse(r->body);
  EXPECT_TRUE(j["created"].is_number_integer());
  ASSERT_EQ(j["data"].size(), 2u);

  const auto refs = reference("--width 32 --height 32 --num_inference_steps 2 --seed 7 "
                              "--guidance_scale 3 --negative_prompt green", 2);
  for (size_t i = 0; i < 2; ++i) {
    const io::RgbImage got = decode(j["data"][i]["b64_json"].get<std::string>());
    EXPECT_EQ(got.height, 32);
    EXPECT_EQ(got.width, 32);
    EXPECT_TRUE(got.rgb == refs[i].rgb) << "image " << i << " differs from paradit generate";
  }
  EXPECT_FALSE(refs[0].rgb == refs[1].rgb);  // the two images come from different latents
  EXPECT_EQ(server->stop(SIGTERM, 30), 0);
}

TEST_F(ServeTest, JobsReportProgressAndCancel) {
  auto server = start({});
  auto cli = server->client();
  // A short job runs to the end with its progress and image.
  auto r = cli.Post("/v1/jobs", body(2, "16x16", 1).dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  Json j = Json::parse(r->body);
  EXPECT_EQ(j["status"], "queued");
  const std::string id = j["id"];
  j = poll_job(cli, id, [](const Json& v) { return v["status"] == "succeeded"; });
  EXPECT_EQ(j["progress"]["step"], 2);
  EXPECT_EQ(j["progress"]["total"], 2);
  ASSERT_EQ(j["data"].size(), 1u);
  const auto ref = reference("--width 16 --height 16 --num_inference_steps 2 --seed 1", 1);
  EXPECT_TRUE(decode(j["data"][0]["b64_json"]).rgb == ref[0].rgb);

  // A long job is cancelled while running (stops at a step boundary); one behind it while
  // queued.
  r = cli.Post("/v1/jobs", body(200, "16x16", 2).dump(), "application/json");
  ASSERT_TRUE(r && r->status == 202);
  const std::string long_id = Json::parse(r->body)["id"];
  r = cli.Post("/v1/jobs", body(200, "16x16", 3).dump(), "application/json");
  ASSERT_TRUE(r && r->status == 202);
  const std::string queued_id = Json::parse(r->body)["id"];
  poll_job(cli, long_id, [](const Json& v) { return v["progress"]["step"] >= 1; });
  EXPECT_EQ(poll_job(cli, queued_id, [](const Json&) { return true; })["status"], "queued");

  auto d = cli.Delete("/v1/jobs/" + queued_id);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 200);
  EXPECT_EQ(Json::parse(d->body)["status"], "cancelled");
  d = cli.Delete("/v1/jobs/" + long_id);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 200);
  j = poll_job(cli, long_id, [](const Json& v) { return v["status"] == "cancelled"; });
  EXPECT_LT(j["progress"]["step"].get<int>(), 200);
  EXPECT_FALSE(j.contains("data"));

  // The worker is free again: a new job runs.
  r = cli.Post("/v1/jobs", body(1, "16x16", 4).dump(), "application/json");
  ASSERT_TRUE(r && r->status == 202);
  poll_job(cli, Json::parse(r->body)["id"],
           [](const Json& v) { return v["status"] == "succeeded"; });

  auto g = cli.Get("/v1/jobs/job_0000000000000000");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 404);
  d = cli.Delete("/v1/jobs/nope");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 404);
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("paradit_requests_total{status=\"cancelled\"} 2"), std::string::npos)
      << m->body;
  EXPECT_EQ(server->stop(SIGTERM, 30), 0);
}

TEST_F(ServeTest, FullQueueAnswers429) {
  auto server = start({"--queue-size", "1"});
  auto cli = server->client();
  auto r = cli.Post("/v1/jobs", body(200, "16x16", 1).dump(), "application/json");
  ASSERT_TRUE(r && r->status == 202);
  const std::string running = Json::parse(r->body)["id"];
  poll_job(cli, running, [](const Json& v) { return v["status"] == "running"; });
  r = cli.Post("/v1/jobs", body(200, "16x16", 2).dump(), "application/json");
  ASSERT_TRUE(r && r->status == 202);
  const std::string queued = Json::parse(r->body)["id"];

  const auto t0 = std::chrono::steady_clock::now();
  r = cli.Post("/v1/jobs", body(1, "16x16", 3).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_TRUE(Json::parse(r->body)["error"]["message"].is_string());
  r = cli.Post("/v1/images/generations", body(1, "16x16", 3).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);  // at once, not after the running job
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);

  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(metric(m->body, "paradit_queue_depth"), 1);
  EXPECT_EQ(metric(m->body, "paradit_busy_workers"), 1);
  EXPECT_NE(m->body.find("paradit_requests_total{status=\"rejected\"} 2"), std::string::npos);
  cli.Delete("/v1/jobs/" + queued);
  cli.Delete("/v1/jobs/" + running);
  poll_job(cli, running, [](const Json& v) { return v["status"] == "cancelled"; });
  EXPECT_EQ(server->stop(SIGTERM, 30), 0);
}

TEST_F(ServeTest, RequestTimesOutAtAStepBoundary) {
  auto server = start({"--request_timeout", "1"});
  auto cli = server->client();
  auto r = cli.Post("/v1/images/generations", body(200, "16x16", 1).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504) << r->body;
  r = cli.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(server->stop(SIGTERM, 30), 0);
}

TEST_F(ServeTest, BadRequestsAreRefusedAndTheServerStaysUp) {
  auto server = start({"--max_body_bytes", "4096"});
  auto cli = server->client();
  const std::string p = std::string("\"prompt\": \"") + kPrompt + "\"";
  const std::vector<std::string> bad = {
      "{",                                        // malformed JSON
      "not json at all",
      "[1, 2]",                                   // not an object
      "{}",                                       // no prompt
      "{\"prompt\": 5}",                          // wrong types
      "{\"prompt\": \"\"}",
      "{" + p + ", \"n\": \"2\"}",
      "{" + p + ", \"n\": 2.5}",
      "{" + p + ", \"n\": true}",
      "{" + p + ", \"num_inference_steps\": 1.5}",
      "{" + p + ", \"seed\": -1}",
      "{" + p + ", \"seed\": \"1\"}",
      "{" + p + ", \"guidance_scale\": \"high\"}",
      "{" + p + ", \"size\": 64}",
      "{" + p + ", \"n\": 0}",                    // out of range
      "{" + p + ", \"n\": 1000}",
      "{" + p + ", \"num_inference_steps\": 0}",
      "{" + p + ", \"num_inference_steps\": 201}",
      "{" + p + ", \"guidance_scale\": 1e9}",
      "{" + p + ", \"guidance_scale\": -1}",
      "{" + p + ", \"size\": \"65x64\"}",
      "{" + p + ", \"size\": \"0x64\"}",
      "{" + p + ", \"size\": \"8192x8192\"}",
      "{" + p + ", \"size\": \"64*64\"}",
      "{" + p + ", \"size\": \"-64x64\"}",
      "{" + p + ", \"response_format\": \"url\"}",
      "{" + p + ", \"model\": \"x\"}",             // unknown fields
      "{" + p + ", \"output\": \"/etc/passwd\"}",
      "{\"prompt\": \"" + std::string(3000, 'a') + "\", \"negative_prompt\": \"" +
          std::string(3000, 'b') + "\"}",  // too large as a whole: 413
  };
  for (const std::string& path : {"/v1/images/generations", "/v1/jobs"}) {
    for (const std::string& b : bad) {
      auto r = cli.Post(path, b, "application/json");
      ASSERT_TRUE(r) << b;
      if (b.size() > 4096) {
        EXPECT_EQ(r->status, 413) << b.substr(0, 40);
      } else {
        EXPECT_EQ(r->status, 400) << b << " -> " << r->body;
      }
      const Json j = Json::parse(r->body, nullptr, false);
      EXPECT_TRUE(!j.is_discarded() && j["error"]["message"].is_string()) << r->body;
    }
  }
  auto r = cli.Post("/v1/images/generations", std::string(100000, 'x'), "application/json");
  if (r) EXPECT_EQ(r->status, 413);  // the server may also close the connection early
  r = cli.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Json::parse(r->body)["status"], "ok");
  r = cli.Post("/v1/images/generations", body(1, "16x16", 1).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(server->stop(SIGTERM, 30), 0);
}

TEST_F(ServeTest, SigtermDrainsRunningJobsAndExitsZero) {
  auto server = start({});
  auto cli = server->client();
  auto r = cli.Post("/v1/jobs", body(3, "16x16", 1).dump(), "application/json");
  ASSERT_TRUE(r && r->status == 202);
  const std::string id = Json::parse(r->body)["id"];
  poll_job(cli, id, [](const Json& v) { return v["status"] == "running"; });
  // A synchronous request queued behind the running job: it must still get its image.
  int sync_status = 0;
  std::string sync_body;
  std::thread waiter([&] {
    auto c = server->client();
    auto a = c.Post("/v1/images/generations", body(2, "16x16", 5).dump(), "application/json");
    if (a) {
      sync_status = a->status;
      sync_body = a->body;
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = cli.Get("/metrics");
    if (m && metric(m->body, "paradit_queue_depth") == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(server->pid(), SIGTERM);
  // Draining: /health says so and new jobs are refused (or the listener is already closed).
  bool draining = false;
  while (!draining && std::chrono::steady_clock::now() < deadline) {
    auto h = cli.Get("/health");
    if (!h) break;
    draining = Json::parse(h->body)["status"] == "draining";
  }
  if (draining) {
    r = cli.Post("/v1/jobs", body(1, "16x16", 1).dump(), "application/json");
    if (r) EXPECT_EQ(r->status, 503);
  }
  EXPECT_EQ(server->stop(0, 60), 0);  // signal 0: only wait for the exit
  waiter.join();
  ASSERT_EQ(sync_status, 200) << sync_body;
  const auto ref = reference("--width 16 --height 16 --num_inference_steps 2 --seed 5", 1);
  EXPECT_TRUE(decode(Json::parse(sync_body)["data"][0]["b64_json"]).rgb == ref[0].rgb);
  std::ifstream log(dir_ / "serve.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find(id + " succeeded"), std::string::npos) << text;
}

TEST_F(ServeTest, BoundedLoad) {
  constexpr int kRequests = 24;
  constexpr int kThreads = 4;
  constexpr int kQueue = 2;
  auto server = start({"--queue_size", std::to_string(kQueue)});
  const std::vector<io::RgbImage> refs = {
      reference("--width 16 --height 16 --num_inference_steps 1 --seed 10", 1)[0],
      reference("--width 16 --height 16 --num_inference_steps 1 --seed 11", 1)[0]};
  {  // one request first, so the RSS baseline includes the first job's allocations
    auto cli = server->client();
    auto r = cli.Post("/v1/images/generations", body(1, "16x16", 10).dump(), "application/json");
    ASSERT_TRUE(r && r->status == 200);
  }
  const int64_t rss_before = server->rss_kib();

  std::atomic<int> next{0}, ok{0}, rejected{0}, wrong{0}, other{0};
  std::atomic<bool> done{false};
  std::atomic<double> max_depth{0};
  std::thread watcher([&] {
    auto cli = server->client();
    while (!done) {
      auto m = cli.Get("/metrics");
      if (m) max_depth = std::max(max_depth.load(), metric(m->body, "paradit_queue_depth"));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&] {
      auto cli = server->client();
      // Each request is sent until accepted (a 429 comes at once; back off and retry), so
      // every one of them must end with its image: nothing lost.
      for (int i = next++; i < kRequests; i = next++) {
        for (int attempt = 0; attempt < 200; ++attempt) {
          auto r = cli.Post("/v1/images/generations", body(1, "16x16", 10 + i % 2).dump(),
                            "application/json");
          if (r && r->status == 429) {
            ++rejected;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
          }
          if (r && r->status == 200) {
            const io::RgbImage img = decode(Json::parse(r->body)["data"][0]["b64_json"]);
            (img.rgb == refs[static_cast<size_t>(i % 2)].rgb ? ok : wrong)++;
          } else {
            ++other;
          }
          break;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  done = true;
  watcher.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 60.0);
  EXPECT_EQ(ok, kRequests);  // every request served, with the right image
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(other, 0);
  EXPECT_GT(rejected, 0);  // 4 clients against 1 worker and 2 queue slots
  EXPECT_LE(max_depth.load(), kQueue);

  auto cli = server->client();
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_LE(metric(m->body, "paradit_queue_depth_max"), kQueue);
  EXPECT_NE(m->body.find("paradit_requests_total{status=\"succeeded\"} " +
                         std::to_string(ok + 1) + "\n"),
            std::string::npos) << m->body;
  EXPECT_NE(m->body.find("paradit_requests_total{status=\"rejected\"} " +
                         std::to_string(rejected.load()) + "\n"),
            std::string::npos);
  const int64_t rss_after = server->rss_kib();
  EXPECT_LT(rss_after, rss_before + 64 * 1024) << "RSS grew from " << rss_before << " KiB to "
                                               << rss_after << " KiB";
  std::printf("load: %d ok, %d rejected in %.1f s; RSS %lld -> %lld KiB; max depth %g\n",
              ok.load(), rejected.load(), seconds, static_cast<long long>(rss_before),
              static_cast<long long>(rss_after), max_depth.load());
  EXPECT_EQ(server->stop(SIGTERM, 30), 0);
}

}  // namespace
}  // namespace paradit
