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
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "comm/runtime.h"
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

  std::unique_ptr<ServerProcess> start(std::vector<std::string> args,
                                       const std::vector<std::string>& launcher = {}) {
    args.insert(args.begin(), {"--model", model_.string()});
    return std::make_unique<ServerProcess>(args, dir_ / "serve.log", launcher);
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

  // Step caching per request: the image `paradit generate` draws with the same cache flags
  // (steps 2 and 3 of 4 reused), which is not the uncached one.
  Json cached = body(4, "32x32", 7);
  cached["use_fbcache"] = true;
  cached["fbcache_threshold"] = 1e9;
  auto rc = cli.Post("/v1/images/generations", cached.dump(), "application/json");
  ASSERT_TRUE(rc);
  ASSERT_EQ(rc->status, 200) << rc->body;
  const io::RgbImage got =
      decode(Json::parse(rc->body)["data"][0]["b64_json"].get<std::string>());
  const std::string four = "--width 32 --height 32 --num_inference_steps 4 --seed 7";
  EXPECT_TRUE(got.rgb == reference(four + " --use_fbcache --fbcache_threshold 1e9", 1)[0].rgb);
  EXPECT_FALSE(got.rgb == reference(four, 1)[0].rgb);
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
      "{",  // malformed JSON
      "not json at all",
      "[1, 2]",           // not an object
      "{}",               // no prompt
      "{\"prompt\": 5}",  // wrong types
      "{\"prompt\": \"\"}",
      "{" + p + ", \"n\": \"2\"}",
      "{" + p + ", \"n\": 2.5}",
      "{" + p + ", \"n\": true}",
      "{" + p + ", \"num_inference_steps\": 1.5}",
      "{" + p + ", \"seed\": -1}",
      "{" + p + ", \"seed\": \"1\"}",
      "{" + p + ", \"guidance_scale\": \"high\"}",
      "{" + p + ", \"size\": 64}",
      "{" + p + ", \"n\": 0}",  // out of range
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
      "{" + p + ", \"response_format\": \"xml\"}",  // invalid values of OpenAI fields
      "{" + p + ", \"output_format\": \"gif\"}",
      "{" + p + ", \"output_format\": 1}",
      "{" + p + ", \"output_compression\": 101}",
      "{" + p + ", \"quality\": \"ultra\"}",
      "{" + p + ", \"background\": \"purple\"}",
      "{" + p + ", \"style\": \"noir\"}",
      "{" + p + ", \"moderation\": \"none\"}",
      "{" + p + ", \"user\": 5}",
      "{" + p + ", \"stream\": \"yes\"}",
      "{" + p + ", \"partial_images\": 4}",
      "{" + p + ", \"use_fbcache\": true, \"use_teacache\": true}",  // step caching
      "{" + p + ", \"fbcache_threshold\": 0.1}",
      "{" + p + ", \"use_teacache\": true, \"teacache_threshold\": -1}",
      "{" + p + ", \"use_fbcache\": 1}",
      "{" + p + ", \"use_fbcache\": true, \"cache_warmup_steps\": 201}",
      "{" + p + ", \"model\": 5}",
      "{" + p + ", \"size\": \"4096x4096\"}",  // over --max_pixels
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
      // The OpenAI error body: message, type, param, code.
      const Json j = Json::parse(r->body, nullptr, false);
      ASSERT_TRUE(!j.is_discarded() && j.contains("error")) << r->body;
      const Json& e = j["error"];
      EXPECT_TRUE(e["message"].is_string()) << r->body;
      EXPECT_EQ(e["type"], "invalid_request_error") << r->body;
      EXPECT_TRUE(e.contains("param") && e.contains("code")) << r->body;
    }
  }
  // The field a bad value is in is named as `param`.
  for (const std::string& field : {"output_compression", "quality", "partial_images", "n"}) {
    const Json b = {{"prompt", kPrompt}, {field, true}};
    auto r = cli.Post("/v1/jobs", b.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(Json::parse(r->body)["error"]["param"], field) << r->body;
  }
  // A wrong model is 404 with the OpenAI code; unknown fields and nulls are accepted.
  for (const std::string& path : {"/v1/images/generations", "/v1/jobs"}) {
    auto r = cli.Post(path, "{" + p + ", \"model\": \"dall-e-3\"}", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
    EXPECT_EQ(Json::parse(r->body)["error"]["code"], "model_not_found") << r->body;
  }
  // Bytes that are not UTF-8, in JSON (the parser refuses them) and in a multipart form (the
  // form's text is checked): 400, not a 500 from the JSON library when the answer echoes them.
  auto r_utf = cli.Post("/v1/images/generations", "{\"prompt\": \"a \xff\xfe b\"}",
                        "application/json");
  ASSERT_TRUE(r_utf);
  EXPECT_EQ(r_utf->status, 400) << r_utf->body;
  const httplib::MultipartFormDataItems form = {{"prompt", "a \xff\xfe b", "", ""},
                                                {"quality", "\xc3", "", ""}};
  r_utf = cli.Post("/v1/images/generations", form);
  ASSERT_TRUE(r_utf);
  EXPECT_EQ(r_utf->status, 400) << r_utf->body;
  EXPECT_FALSE(Json::parse(r_utf->body, nullptr, false).is_discarded()) << r_utf->body;

  Json lenient = body(1, "16x16", 1);
  lenient["output"] = "/etc/passwd";  // unknown: ignored, nothing written
  lenient["some_future_field"] = {{"x", 1}};
  lenient["quality"] = nullptr;
  lenient["size"] = "auto";  // the model's default, 64x64
  lenient["model"] = "shapes-pixart";
  auto accepted = cli.Post("/v1/images/generations", lenient.dump(), "application/json");
  ASSERT_TRUE(accepted);
  ASSERT_EQ(accepted->status, 200) << accepted->body;
  EXPECT_EQ(Json::parse(accepted->body)["size"], "64x64");
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

// response_format "url": the image is served from /v1/files/{id}/content, for --result_ttl
// seconds only; the same bytes as the b64_json answer.
TEST_F(ServeTest, UrlResultsExpireAfterTheirTtl) {
  auto server = start({"--result_ttl", "3"});
  auto cli = server->client();
  Json req = body(2, "16x16", 4);
  auto r = cli.Post("/v1/images/generations", req.dump(), "application/json");
  ASSERT_TRUE(r && r->status == 200);
  const std::string png = server_test::decode_base64(Json::parse(r->body)["data"][0]["b64_json"]);
  req["response_format"] = "url";
  r = cli.Post("/v1/images/generations", req.dump(), "application/json");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "");
  const std::string url = Json::parse(r->body)["data"][0]["url"];
  const std::string prefix = "http://127.0.0.1:" + std::to_string(server->port());
  ASSERT_EQ(url.rfind(prefix + "/v1/files/file-", 0), 0u) << url;
  const std::string path = url.substr(prefix.size());
  auto f = cli.Get(path);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, 200);
  EXPECT_EQ(f->get_header_value("Content-Type"), "image/png");
  EXPECT_TRUE(f->body == png) << "the url's bytes differ from the b64_json answer";
  auto meta = cli.Get(path.substr(0, path.size() - std::string("/content").size()));
  ASSERT_TRUE(meta && meta->status == 200);
  EXPECT_EQ(Json::parse(meta->body)["bytes"], png.size());
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));  // from after the answer
  f = cli.Get(path);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, 404) << "still served after --result_ttl";
  EXPECT_EQ(Json::parse(f->body)["error"]["code"], "not_found");
  EXPECT_EQ(server->stop(SIGTERM, 30), 0);
}

// --api_key: the /v1 API wants "Authorization: Bearer KEY" (401 otherwise); /health stays open.
TEST_F(ServeTest, ApiKeyGuardsTheApi) {
  auto server = start({"--api_key", "sekret"});
  auto cli = server->client();
  auto r = cli.Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(Json::parse(r->body)["error"]["code"], "invalid_api_key");
  r = cli.Post("/v1/images/generations", body(1, "16x16", 1).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  const httplib::Headers wrong = {{"Authorization", "Bearer other"}};
  r = cli.Get("/v1/models", wrong);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  const httplib::Headers right = {{"Authorization", "Bearer sekret"}};
  r = cli.Get("/v1/models", right);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Json::parse(r->body)["data"][0]["id"], "shapes-pixart");
  r = cli.Post("/v1/images/generations", right, body(1, "16x16", 1).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = cli.Get("/health");
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

// ---------------------------------------------------------------- MPI worker jobs

#define SKIP_WITHOUT_MPIRUN()                                                                 \
  do {                                                                                        \
    if (server_test::worker_flags(1).empty()) GTEST_SKIP() << "built without MPI";            \
    if (comm::launched_by_mpi()) GTEST_SKIP() << "starts mpirun itself; single-process run";  \
  } while (0)

// GET /health → the front end's pid (checking the layout it reports).
pid_t health_pid(httplib::Client& cli, int groups, int ranks_per_group) {
  auto h = cli.Get("/health");
  EXPECT_TRUE(h && h->status == 200);
  if (!h || h->status != 200) return -1;
  const Json j = Json::parse(h->body);
  EXPECT_EQ(j["groups"], groups);
  EXPECT_EQ(j["ranks_per_group"], ranks_per_group);
  EXPECT_EQ(j["workers"]["ranks"].size(), static_cast<size_t>(groups * ranks_per_group));
  return j["pid"].get<pid_t>();
}

// The worker job's processes (mpirun and every rank) from GET /health.
std::vector<pid_t> worker_pids(httplib::Client& cli) {
  std::vector<pid_t> pids;
  auto h = cli.Get("/health");
  if (!h || h->status != 200) return pids;
  const Json j = Json::parse(h->body);
  if (j["workers"].contains("launcher_pid")) pids.push_back(j["workers"]["launcher_pid"]);
  for (const Json& r : j["workers"]["ranks"]) pids.push_back(r["pid"]);
  return pids;
}

// Sends requests from `jobs.size()` clients at once; each answer's images against `paradit
// generate` with the same parameters.
struct MpiCase {
  Json body;
  std::string generate_flags;
};

class ServeMpiTest : public ServeTest {
 protected:
  // Answers of concurrent requests, compared pixel for pixel with `paradit generate`.
  void expect_concurrent_answers_match(ServerProcess& server, const std::vector<MpiCase>& cases) {
    std::vector<std::vector<io::RgbImage>> refs;
    for (const MpiCase& c : cases) refs.push_back(reference(c.generate_flags, c.body["n"]));
    std::vector<std::string> answers(cases.size());
    std::vector<int> statuses(cases.size(), -1);
    std::vector<std::thread> clients;
    for (size_t i = 0; i < cases.size(); ++i) {
      clients.emplace_back([&, i] {
        auto cli = server.client();
        auto r = cli.Post("/v1/images/generations", cases[i].body.dump(), "application/json");
        if (!r) return;
        statuses[i] = r->status;
        answers[i] = r->body;
      });
    }
    for (auto& c : clients) c.join();
    for (size_t i = 0; i < cases.size(); ++i) {
      ASSERT_EQ(statuses[i], 200) << "request " << i << ": " << answers[i];
      const Json j = Json::parse(answers[i]);
      ASSERT_EQ(j["data"].size(), refs[i].size());
      for (size_t k = 0; k < refs[i].size(); ++k) {
        const io::RgbImage got = decode(j["data"][k]["b64_json"].get<std::string>());
        EXPECT_TRUE(got.rgb == refs[i][k].rgb)
            << "request " << i << " image " << k << " differs from paradit generate "
            << cases[i].generate_flags;
      }
    }
  }
};

// --np 2 --data_parallel_degree 2: two one-rank groups. Concurrent requests come back equal to
// `paradit generate`; two long jobs run at the same time (one per group, so also on the group
// rank 0 does not lead) and are cancelled across both protocols (front end → rank 0 → group);
// the server then still answers right; SIGTERM to the front end drains, stops the worker job
// (every rank gone) and exits 0.
TEST_F(ServeMpiTest, TwoDataParallelGroups) {
  SKIP_WITHOUT_MPIRUN();
  std::vector<std::string> args = server_test::worker_flags(2);
  args.insert(args.end(), {"--data_parallel_degree", "2"});
  auto server = start(args);
  auto cli = server->client();
  const pid_t front = health_pid(cli, 2, 1);
  ASSERT_EQ(front, server->pid());
  const std::vector<pid_t> workers = worker_pids(cli);
  ASSERT_EQ(workers.size(), 3u);  // mpirun and two ranks

  Json guided = body(2, "32x32", 7, 2);
  guided["guidance_scale"] = 3.0;
  guided["negative_prompt"] = "green";
  expect_concurrent_answers_match(
      *server, {{body(2, "16x16", 1), "--width 16 --height 16 --num_inference_steps 2 --seed 1"},
                {body(3, "16x16", 2), "--width 16 --height 16 --num_inference_steps 3 --seed 2"},
                {guided, "--width 32 --height 32 --num_inference_steps 2 --seed 7 "
                         "--guidance_scale 3 --negative_prompt green"},
                {body(2, "16x16", 3), "--width 16 --height 16 --num_inference_steps 2 --seed 3"}});

  // Both groups busy at once, then both jobs cancelled at a step boundary.
  std::vector<std::string> ids;
  for (uint64_t seed : {11, 12}) {
    auto r = cli.Post("/v1/jobs", body(200, "16x16", seed).dump(), "application/json");
    ASSERT_TRUE(r && r->status == 202);
    ids.push_back(Json::parse(r->body)["id"]);
  }
  for (const std::string& id : ids) {
    poll_job(cli, id, [](const Json& j) { return j["progress"]["step"].get<int>() >= 1; });
  }
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(metric(m->body, "paradit_busy_workers"), 2) << m->body;
  EXPECT_EQ(metric(m->body, "paradit_workers"), 2);
  for (const std::string& id : ids) {
    auto d = cli.Delete("/v1/jobs/" + id);
    ASSERT_TRUE(d && d->status == 200);
  }
  for (const std::string& id : ids) {
    const Json j = poll_job(cli, id, [](const Json& j) { return j["status"] != "running"; });
    EXPECT_EQ(j["status"], "cancelled");
    EXPECT_LT(j["progress"]["step"].get<int>(), 200);
  }
  // Both groups free again and right.
  expect_concurrent_answers_match(
      *server, {{body(2, "16x16", 1), "--width 16 --height 16 --num_inference_steps 2 --seed 1"},
                {body(2, "16x16", 4), "--width 16 --height 16 --num_inference_steps 2 --seed 4"}});

  EXPECT_EQ(server->stop(SIGTERM, 60), 0);
  for (const pid_t p : workers) EXPECT_FALSE(server_test::alive(p)) << "worker process " << p;
  const std::string log = server_test::read_text(dir_ / "serve.log");
  EXPECT_NE(log.find("paradit worker: stopped by the front end"), std::string::npos) << log;
}

// --np 4: two groups of two ranks, Ulysses 2 inside each, with the row-parallel VAE.
TEST_F(ServeMpiTest, UlyssesInsideEachGroup) {
  SKIP_WITHOUT_MPIRUN();
  std::vector<std::string> args = server_test::worker_flags(4);
  args.insert(args.end(), {"--data_parallel_degree", "2", "--ulysses_degree", "2",
                           "--use_parallel_vae"});
  auto server = start(args);
  auto cli = server->client();
  ASSERT_EQ(health_pid(cli, 2, 2), server->pid());
  expect_concurrent_answers_match(
      *server, {{body(2, "32x32", 5), "--width 32 --height 32 --num_inference_steps 2 --seed 5"},
                {body(2, "16x16", 6, 2),
                 "--width 16 --height 16 --num_inference_steps 2 --seed 6"}});
  EXPECT_EQ(server->stop(SIGTERM, 60), 0);
}

// Issue 23 finding 1: a valid-looking request the workers' layout cannot cut (4 PipeFusion
// patches of a 2-token-row image) is a 400 naming the limit at admission; the worker job never
// sees it (no restart) and keeps serving what it can cut.
TEST_F(ServeMpiTest, RequestTheLayoutCannotCutIsRefusedAtAdmission) {
  SKIP_WITHOUT_MPIRUN();
  std::vector<std::string> args = server_test::worker_flags(2);
  args.insert(args.end(), {"--pipefusion_parallel_degree", "2", "--num_pipeline_patch", "4"});
  auto server = start(args);
  auto cli = server->client();
  auto r = cli.Post("/v1/images/generations", body(2, "16x16", 1).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("--num_pipeline_patch 4"), std::string::npos) << r->body;
  r = cli.Post("/v1/images/generations", body(2, "32x32", 1).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(metric(m->body, "paradit_worker_restarts_total"), 0) << m->body;
  EXPECT_EQ(server->stop(SIGTERM, 60), 0);
}

// `mpirun -np 2 paradit serve` (the old in-job mode) is refused with the command to use.
TEST_F(ServeMpiTest, ServeUnderMpirunIsRefused) {
  SKIP_WITHOUT_MPIRUN();
#ifdef PARADIT_MPIRUN
  const std::string cmd = std::string("OMP_NUM_THREADS=1 timeout -s KILL 60 ") + PARADIT_MPIRUN +
                          " --allow-run-as-root --oversubscribe --bind-to none -np 2 " +
                          PARADIT_BINARY + " serve --port 0 --data_parallel_degree 2 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << out;
  EXPECT_NE(out.find("paradit serve --np 2"), std::string::npos) << out;
#endif
}

}  // namespace
}  // namespace paradit
