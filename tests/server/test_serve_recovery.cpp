// `paradit serve` loses no accepted request when a worker rank, the worker job or the front end
// itself dies: real `paradit serve` front ends, real mpirun worker jobs, real kill -9, real SQLite
// files. Every image is compared pixel for pixel with the PNG `paradit generate` writes for the
// same parameters in a separate process (a retried request must give the same pixels).
// The timings printed (kill → first completion, the restart) are figures for the notes, never
// asserted.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "comm/runtime.h"
#include "core/error.h"
#include "io/image.h"
#include "pipelines/pipeline.h"
#include "server/hostfile.h"
#include "server/job_store.h"
#include "server/worker_protocol.h"
#include "server_harness.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using server_test::ServerProcess;
using Clock = std::chrono::steady_clock;

const char* kPrompt = "a small red circle on the left on a blue background";

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double metric(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

#define SKIP_WITHOUT_MPIRUN()                                                                \
  do {                                                                                       \
    if (server_test::worker_flags(1).empty()) GTEST_SKIP() << "built without MPI";           \
    if (comm::launched_by_mpi()) GTEST_SKIP() << "starts mpirun itself; single-process run"; \
  } while (0)

// One generation: its request body and `paradit generate`'s PNG of it.
struct Case {
  int size = 32;
  int steps = 4;
  uint64_t seed = 0;
  std::string prompt = kPrompt;
  Json body() const {
    return {{"prompt", prompt},
            {"size", std::to_string(size) + "x" + std::to_string(size)},
            {"num_inference_steps", steps},
            {"seed", seed}};
  }
};

class ServeRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      model_ = pipelines::default_model_dir();
    } catch (const std::exception& e) {
      GTEST_SKIP() << "no shipped model: " << e.what();
    }
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("paradit_recovery_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_, ec);
    if (HasFailure()) std::printf("kept for inspection: %s\n", dir_.c_str());
  }

  std::unique_ptr<ServerProcess> start(std::vector<std::string> args, const std::string& log,
                                       const std::vector<std::string>& launcher = {}) {
    args.insert(args.begin(), {"--model", model_.string()});
    return std::make_unique<ServerProcess>(args, dir_ / log, launcher);
  }

  // `paradit generate`'s image for each case (separate processes, before any server runs).
  std::vector<io::RgbImage> references(const std::vector<Case>& cases) const {
    std::vector<io::RgbImage> out;
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      const fs::path png = dir_ / ("ref_" + std::to_string(i) + ".png");
      const std::string cmd = "OMP_NUM_THREADS=1 " + std::string(PARADIT_BINARY) +
                              " generate --model " + model_.string() + " --prompt '" + c.prompt +
                              "' --width " + std::to_string(c.size) + " --height " +
                              std::to_string(c.size) + " --num_inference_steps " +
                              std::to_string(c.steps) + " --seed " + std::to_string(c.seed) +
                              " --output " + png.string() + " > /dev/null 2>&1";
      EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
      out.push_back(io::read_png(png));
    }
    return out;
  }

  io::RgbImage decode(const std::string& b64) const {
    const fs::path p = dir_ / ("answer_" + std::to_string(counter_++) + ".png");
    std::ofstream(p, std::ios::binary) << server_test::decode_base64(b64);
    return io::read_png(p);
  }

  std::string post_job(httplib::Client& cli, const Json& body) {
    auto r = cli.Post("/v1/jobs", body.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 202) << (r ? r->body : "no answer");
    return r && r->status == 202 ? Json::parse(r->body)["id"].get<std::string>() : "";
  }

  Json get_job(httplib::Client& cli, const std::string& id) {
    auto r = cli.Get("/v1/jobs/" + id);
    return r && r->status == 200 ? Json::parse(r->body) : Json();
  }

  // Polls until every job has ended (or `seconds` pass); each one's last state, and when its
  // success was first seen.
  std::map<std::string, Json> wait_all(httplib::Client& cli, const std::vector<std::string>& ids,
                                       double seconds,
                                       std::map<std::string, Clock::time_point>* done_at = nullptr) {
    std::map<std::string, Json> last;
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < deadline) {
      bool all = true;
      for (const std::string& id : ids) {
        if (last.count(id) && last[id].value("status", "") != "queued" &&
            last[id].value("status", "") != "running") {
          continue;
        }
        const Json j = get_job(cli, id);
        if (j.is_null()) {
          all = false;
          continue;
        }
        last[id] = j;
        const std::string s = j.value("status", "");
        if (s == "queued" || s == "running") {
          all = false;
        } else if (done_at != nullptr) {
          done_at->emplace(id, Clock::now());
        }
      }
      if (all) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "jobs did not end within " << seconds << " s";
    return last;
  }

  // Waits until some job of `ids` has done at least `step` steps; false after `seconds`.
  bool wait_running(httplib::Client& cli, const std::vector<std::string>& ids, int step,
                    double seconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < deadline) {
      for (const std::string& id : ids) {
        const Json j = get_job(cli, id);
        if (!j.is_null() && j["status"] == "running" && j["progress"]["step"].get<int>() >= step) {
          return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  Json health(httplib::Client& cli) {
    auto h = cli.Get("/health");
    return h && h->status == 200 ? Json::parse(h->body) : Json();
  }

  std::string metrics(httplib::Client& cli) {
    auto m = cli.Get("/metrics");
    return m && m->status == 200 ? m->body : "";
  }

  // The worker job's processes (mpirun and the ranks) from /health.
  std::vector<pid_t> worker_pids(httplib::Client& cli) {
    std::vector<pid_t> pids;
    const Json h = health(cli);
    if (h.is_null()) return pids;
    if (h["workers"].contains("launcher_pid")) pids.push_back(h["workers"]["launcher_pid"]);
    for (const Json& r : h["workers"]["ranks"]) pids.push_back(r["pid"]);
    return pids;
  }

  // True once none of `pids` runs; false after `seconds`.
  static bool all_gone(const std::vector<pid_t>& pids, double seconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < deadline) {
      if (std::none_of(pids.begin(), pids.end(), server_test::alive)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  fs::path model_;
  fs::path dir_;
  mutable std::atomic<int> counter_{0};
};

// -np 4 --data_parallel_degree 2 (Ulysses 2 inside each group): 8 requests (4 waiting on
// /v1/images/generations, 4 polled through /v1/jobs); a non-zero rank is killed with SIGKILL
// while both groups run. Every request completes with `paradit generate`'s PNG, the front end
// restarted the worker job once and ran the interrupted requests again, and its log names the
// rank, its pid and the signal.
TEST_F(ServeRecoveryTest, KilledWorkerRankLosesNoRequest) {
  SKIP_WITHOUT_MPIRUN();
  std::vector<Case> cases;
  for (int i = 0; i < 8; ++i) cases.push_back({64, 24, static_cast<uint64_t>(100 + i)});
  const std::vector<io::RgbImage> refs = references(cases);

  std::vector<std::string> args = server_test::worker_flags(4);
  args.insert(args.end(), {"--data_parallel_degree", "2", "--ulysses_degree", "2"});
  auto server = start(args, "serve.log");
  auto cli = server->client();
  const Json h0 = health(cli);
  ASSERT_EQ(h0["workers"]["ranks"].size(), 4u) << h0.dump();
  const pid_t victim = h0["workers"]["ranks"][3]["pid"];

  // Requests 0–3 through the jobs API, 4–7 from clients that wait for the answer.
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(post_job(cli, cases[static_cast<size_t>(i)].body()));
  std::vector<int> status(8, -1);
  std::vector<std::string> answers(8);
  std::vector<Clock::time_point> answered(8);
  std::vector<std::thread> clients;
  for (size_t i = 4; i < 8; ++i) {
    clients.emplace_back([&, i] {
      auto c = server->client();
      auto r = c.Post("/v1/images/generations", cases[i].body().dump(), "application/json");
      answered[i] = Clock::now();
      if (!r) return;
      status[i] = r->status;
      answers[i] = r->body;
    });
  }
  ASSERT_TRUE(wait_running(cli, ids, 2, 60)) << "no job got going";
  // When /health first says "recovering", and when it is "ok" again with the second worker job.
  std::atomic<bool> watching{true};
  Clock::time_point recovering_at{}, ready_at{};
  std::thread watcher([&] {
    auto c = server->client();
    while (watching) {
      auto h = c.Get("/health");
      if (h && h->status == 200) {
        const Json j = Json::parse(h->body);
        if (j["status"] == "recovering" && recovering_at == Clock::time_point{}) {
          recovering_at = Clock::now();
        }
        if (j["status"] == "ok" && j["workers"]["job"] == 2 && ready_at == Clock::time_point{}) {
          ready_at = Clock::now();
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  const auto killed = Clock::now();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);

  std::map<std::string, Clock::time_point> done_at;
  const auto jobs = wait_all(cli, ids, 180, &done_at);
  for (auto& c : clients) c.join();
  watching = false;
  watcher.join();
  auto after_kill = [&](Clock::time_point t) {
    return std::chrono::duration<double>(t - killed).count();
  };
  EXPECT_NE(recovering_at, Clock::time_point{}) << "/health never said recovering";

  double first_after = 1e30;
  double first_after_ready = 1e30;  // the first answer of the new worker job
  for (size_t i = 0; i < 4; ++i) {
    const Json& j = jobs.at(ids[i]);
    ASSERT_EQ(j["status"], "succeeded") << j.dump();
    EXPECT_TRUE(decode(j["data"][0]["b64_json"]).rgb == refs[i].rgb)
        << "job " << i << " differs from paradit generate";
    if (done_at[ids[i]] > killed) first_after = std::min(first_after, after_kill(done_at[ids[i]]));
    if (done_at[ids[i]] > ready_at) {
      first_after_ready = std::min(first_after_ready, after_kill(done_at[ids[i]]));
    }
  }
  for (size_t i = 4; i < 8; ++i) {
    ASSERT_EQ(status[i], 200) << "request " << i << ": " << answers[i];
    EXPECT_TRUE(decode(Json::parse(answers[i])["data"][0]["b64_json"]).rgb == refs[i].rgb)
        << "request " << i << " differs from paradit generate";
    if (answered[i] > killed) first_after = std::min(first_after, after_kill(answered[i]));
    if (answered[i] > ready_at) first_after_ready = std::min(first_after_ready, after_kill(answered[i]));
  }
  const std::string m = metrics(cli);
  EXPECT_EQ(metric(m, "paradit_worker_restarts_total"), 1) << m;
  EXPECT_GE(metric(m, "paradit_requests_retried_total"), 1) << m;
  EXPECT_EQ(metric(m, "paradit_requests_failed_after_retry_total"), 0) << m;
  EXPECT_EQ(metric(m, "paradit_worker_up"), 1) << m;
  const Json h1 = health(cli);
  EXPECT_EQ(h1["status"], "ok");
  EXPECT_EQ(h1["workers"]["job"], 2);
  EXPECT_EQ(h1["workers"]["restarts"], 1);
  const std::string log = server_test::read_text(dir_ / "serve.log");
  EXPECT_NE(log.find("rank 3 (pid " + std::to_string(victim) + " on host"), std::string::npos)
      << log;
  EXPECT_NE(log.find("was killed by signal 9"), std::string::npos) << log;
  const size_t cause = log.find("paradit serve: worker job 1 ended");
  if (cause != std::string::npos) {
    std::printf("%s\n", log.substr(cause, log.find('\n', cause) - cause).c_str());
  }
  std::printf(
      "recovery (-np 4, dp 2 x ulysses 2), seconds after the kill -9: /health recovering %.2f, "
      "first request completed %.2f (may be one the other group finished before mpirun ended "
      "it), new worker job ready %.2f (%.2f after the death was noticed, its start %.2f), first "
      "request completed by it %.2f\n",
      after_kill(recovering_at), first_after, after_kill(ready_at),
      metric(m, "paradit_worker_recovery_seconds"), metric(m, "paradit_worker_start_seconds"),
      first_after_ready);
  EXPECT_EQ(server->stop(SIGTERM, 60), 0);
}

// The front end killed with SIGKILL while jobs wait and run: its worker job goes away by itself,
// and a new front end on the same --state_dir runs every accepted job to the end with the right
// pixels, and still serves what had finished (a job's images, a url file). A second front end on
// the same folder is refused while one runs.
TEST_F(ServeRecoveryTest, KilledFrontEndResumesEveryJobFromTheStateDir) {
  SKIP_WITHOUT_MPIRUN();
  std::vector<Case> cases;
  for (int i = 0; i < 6; ++i) cases.push_back({64, 16, static_cast<uint64_t>(200 + i)});
  const Case quick{16, 2, 1};
  cases.push_back(quick);
  const std::vector<io::RgbImage> refs = references(cases);

  const fs::path state = dir_ / "state";
  std::vector<std::string> args = server_test::worker_flags(2);
  args.insert(args.end(),
              {"--data_parallel_degree", "2", "--state_dir", state.string(), "--result_ttl", "600"});
  auto first = start(args, "serve1.log");
  auto cli = first->client();
  // Finished before the kill: a job with its images, and a url result.
  const std::string done_id = post_job(cli, quick.body());
  const Json done = wait_all(cli, {done_id}, 60)[done_id];
  ASSERT_EQ(done["status"], "succeeded") << done.dump();
  Json url_req = Case{16, 2, 2}.body();
  url_req["response_format"] = "url";
  auto u = cli.Post("/v1/images/generations", url_req.dump(), "application/json");
  ASSERT_TRUE(u && u->status == 200) << (u ? u->body : "");
  const std::string url = Json::parse(u->body)["data"][0]["url"];
  const std::string file_path = url.substr(url.find("/v1/files/"));
  auto f = cli.Get(file_path);
  ASSERT_TRUE(f && f->status == 200);
  const std::string file_bytes = f->body;

  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(post_job(cli, cases[static_cast<size_t>(i)].body()));
  ASSERT_TRUE(wait_running(cli, ids, 1, 60));
  const std::vector<pid_t> workers = worker_pids(cli);
  ASSERT_EQ(workers.size(), 3u);
  EXPECT_EQ(first->stop(SIGKILL, 10), -1);  // killed, not exited
  const auto killed = Clock::now();
  EXPECT_TRUE(all_gone(workers, 30)) << "worker processes outlived their front end";
  const double orphans_gone = since(killed);

  auto second = start(args, "serve2.log");
  auto cli2 = second->client();
  // A second front end on the same folder: one clear line, exit code 2.
  {
    const std::string cmd = "OMP_NUM_THREADS=1 timeout -s KILL 60 " + std::string(PARADIT_BINARY) +
                            " serve --port 0 --state_dir " + state.string() + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int rc = pclose(p);
    EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 2) << out;
    EXPECT_NE(out.find("is in use by another paradit serve (pid " +
                       std::to_string(second->pid())),
              std::string::npos)
        << out;
  }
  const auto jobs = wait_all(cli2, ids, 180);
  for (size_t i = 0; i < ids.size(); ++i) {
    const Json& j = jobs.at(ids[i]);
    ASSERT_EQ(j["status"], "succeeded") << j.dump();
    EXPECT_TRUE(decode(j["data"][0]["b64_json"]).rgb == refs[i].rgb)
        << "job " << i << " differs from paradit generate";
  }
  const Json again = get_job(cli2, done_id);
  EXPECT_EQ(again["status"], "succeeded");
  EXPECT_EQ(again["data"], done["data"]) << "a finished job's images changed across the restart";
  EXPECT_TRUE(decode(again["data"][0]["b64_json"]).rgb == refs[6].rgb);
  f = cli2.Get(file_path);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, 200);
  EXPECT_TRUE(f->body == file_bytes) << "a url result changed across the restart";
  const std::string m = metrics(cli2);
  const double resumed = metric(m, "paradit_jobs_resumed_total");
  EXPECT_GE(resumed, 1) << m;
  EXPECT_LE(resumed, 6) << m;
  std::printf("front end killed: its workers gone %.2f s later; %g job(s) resumed\n",
              orphans_gone, resumed);
  EXPECT_EQ(second->stop(SIGTERM, 60), 0);
}

// A request that crashes the worker every time (--fault_crash_prompt, honoured only with
// PARADIT_TEST_FAULTS=1): it fails after --max_attempts runs with the cause (the signal and the
// crashing rank's last line), while the requests beside it are all served right.
TEST_F(ServeRecoveryTest, RequestThatCrashesTheWorkerFailsAfterMaxAttempts) {
  SKIP_WITHOUT_MPIRUN();
  // Without PARADIT_TEST_FAULTS=1 the flag is refused: one line, exit code 2.
  for (const char* command : {"serve --port 0", "worker --frontend unix:/nonexistent"}) {
    const std::string cmd = "env -u PARADIT_TEST_FAULTS timeout -s KILL 60 " +
                            std::string(PARADIT_BINARY) + " " + command +
                            " --fault_crash_prompt X 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int rc = pclose(p);
    EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 2) << cmd << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    EXPECT_NE(out.find("PARADIT_TEST_FAULTS=1"), std::string::npos) << out;
  }
  std::vector<Case> cases;
  for (int i = 0; i < 4; ++i) cases.push_back({32, 8, static_cast<uint64_t>(300 + i)});
  const std::vector<io::RgbImage> refs = references(cases);
  std::vector<std::string> args = server_test::worker_flags(2);
  args.insert(args.end(), {"--data_parallel_degree", "2", "--fault_crash_prompt", "CRASH-ME",
                           "--max_attempts", "2"});
  auto server = start(args, "serve.log", {"/usr/bin/env", "PARADIT_TEST_FAULTS=1"});
  auto cli = server->client();
  std::vector<std::string> ids = {post_job(cli, cases[0].body()), post_job(cli, cases[1].body())};
  Case poison{32, 8, 7};
  poison.prompt = std::string(kPrompt) + " CRASH-ME";
  const std::string poison_id = post_job(cli, poison.body());
  ids.push_back(post_job(cli, cases[2].body()));
  ids.push_back(post_job(cli, cases[3].body()));
  std::vector<std::string> all = ids;
  all.push_back(poison_id);
  const auto jobs = wait_all(cli, all, 180);

  const Json& p = jobs.at(poison_id);
  EXPECT_EQ(p["status"], "failed") << p.dump();
  const std::string why = p["error"]["message"];
  EXPECT_NE(why.find("on 2 of 2 attempts"), std::string::npos) << why;
  EXPECT_NE(why.find("killed by signal 11"), std::string::npos) << why;
  EXPECT_NE(why.find("fault injection"), std::string::npos) << why;  // its last stderr line
  std::printf("the poisonous request failed with: %s\n", why.c_str());
  for (size_t i = 0; i < ids.size(); ++i) {
    const Json& j = jobs.at(ids[i]);
    ASSERT_EQ(j["status"], "succeeded") << j.dump();
    EXPECT_TRUE(decode(j["data"][0]["b64_json"]).rgb == refs[i].rgb) << "job " << i;
  }
  const std::string m = metrics(cli);
  EXPECT_EQ(metric(m, "paradit_worker_restarts_total"), 2) << m;
  EXPECT_EQ(metric(m, "paradit_requests_failed_after_retry_total"), 1) << m;
  // Still serving.
  auto r = cli.Post("/v1/images/generations", cases[0].body().dump(), "application/json");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "");
  EXPECT_TRUE(decode(Json::parse(r->body)["data"][0]["b64_json"]).rgb == refs[0].rgb);
  EXPECT_EQ(server->stop(SIGTERM, 60), 0);
}

// --workers: the worker job is started by somebody else (here mpirun; srun on a cluster). The
// front end serves through it, says "recovering" while it is gone (its jobs wait), serves again
// through the next one that connects, and SIGTERM stops the attached job (exit 0).
TEST_F(ServeRecoveryTest, AttachedWorkerJobCanBeReplaced) {
  SKIP_WITHOUT_MPIRUN();
#ifdef PARADIT_MPIRUN
  const std::vector<Case> cases = {{32, 4, 400}, {32, 4, 401}};
  const std::vector<io::RgbImage> refs = references(cases);
  const std::string address = "unix:" + (dir_ / "w.sock").string();
  auto worker_job = [&](const std::string& log) {
    return std::make_unique<server_test::ChildProcess>(
        std::vector<std::string>{"env", "OMP_NUM_THREADS=1", PARADIT_MPIRUN,
                                 "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
                                 "-np", "2", PARADIT_BINARY, "worker", "--frontend", address,
                                 "--model", model_.string(), "--data_parallel_degree", "2"},
        dir_ / log);
  };
  auto job1 = worker_job("worker1.log");
  auto server = start({"--workers", address, "--data_parallel_degree", "2"}, "serve.log");
  auto cli = server->client();
  auto r = cli.Post("/v1/images/generations", cases[0].body().dump(), "application/json");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "");
  EXPECT_TRUE(decode(Json::parse(r->body)["data"][0]["b64_json"]).rgb == refs[0].rgb);

  EXPECT_EQ(job1->stop(SIGKILL, 30), -1);  // mpirun gone: its ranks follow
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  std::string state;
  while (Clock::now() < deadline && state != "recovering") {
    state = health(cli).value("status", "");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(state, "recovering");
  const std::string id = post_job(cli, cases[1].body());  // accepted while no worker runs
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(get_job(cli, id)["status"], "queued");

  auto job2 = worker_job("worker2.log");
  const Json j = wait_all(cli, {id}, 120)[id];
  ASSERT_EQ(j["status"], "succeeded") << j.dump();
  EXPECT_TRUE(decode(j["data"][0]["b64_json"]).rgb == refs[1].rgb);
  EXPECT_EQ(health(cli)["status"], "ok");
  EXPECT_EQ(metric(metrics(cli), "paradit_worker_restarts_total"), 1);
  EXPECT_EQ(server->stop(SIGTERM, 60), 0);
  EXPECT_EQ(job2->stop(0, 60), 0) << server_test::read_text(dir_ / "worker2.log");
#endif
}

// ---------------------------------------------------------------- the parts, without processes

TEST(ServeRecoveryParts, HostfileLeavesOutAHostThatFailedTwiceWhenTheRestFit) {
  const fs::path path = fs::temp_directory_path() / ("paradit_hosts_" + std::to_string(getpid()));
  std::ofstream(path) << "# two hosts\nnode1 slots=2\n\nnode2.cluster slots=2 max_slots=4\n"
                         "10.0.0.3 slots=1  # by address\n";
  const auto hosts = server::read_hostfile(path);
  ASSERT_EQ(hosts.size(), 3u);
  EXPECT_EQ(hosts[1].name, "node2.cluster");
  EXPECT_EQ(hosts[1].slots, 2);
  EXPECT_EQ(hosts[2].slots, 1);
  // Failed twice, and the others have 3 slots: left out for np 3, kept for np 4.
  auto choice = server::choose_hosts(hosts, {{"node2.cluster", 2}, {"node1", 1}}, 3);
  EXPECT_EQ(choice.left_out, std::vector<std::string>{"node2.cluster"});
  ASSERT_EQ(choice.hosts.size(), 2u);
  choice = server::choose_hosts(hosts, {{"node2.cluster", 2}}, 4);
  EXPECT_TRUE(choice.left_out.empty());
  EXPECT_EQ(choice.hosts.size(), 3u);
  choice = server::choose_hosts(hosts, {{"node2.cluster", 1}}, 3);  // once is not enough
  EXPECT_TRUE(choice.left_out.empty());
  // A rank's host by name, first label, or address.
  EXPECT_EQ(server::match_host(hosts, "node1"), 0);
  EXPECT_EQ(server::match_host(hosts, "node2"), 1);
  EXPECT_EQ(server::match_host(hosts, "pdh3", {"127.0.0.1", "10.0.0.3"}), 2);
  EXPECT_EQ(server::match_host(hosts, "elsewhere"), -1);
  std::ofstream(path) << "node1 slots=two\n";
  try {
    server::read_hostfile(path);
    ADD_FAILURE() << "a bad slots value was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string() + ":1"), std::string::npos) << e.what();
  }
  fs::remove(path);
}

TEST(ServeRecoveryParts, JobStoreKeepsJobsAndFilesAcrossReopening) {
  const fs::path dir = fs::temp_directory_path() / ("paradit_store_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  server::StoredJob j;
  j.id = "job_1";
  j.seq = 7;
  j.request.prompt = "a \"quoted\" prompt ✓";
  j.request.n = 2;
  j.request.width = 32;
  j.request.height = 16;
  j.request.seed = 18446744073709551615ull;
  j.request.guidance_scale = 0.1 + 0.2;  // not a short decimal: must come back bit for bit
  j.request.output_format = server::ImageFormat::kWebp;
  j.status = "queued";
  j.created = 1.5;
  j.deadline = 601.5;
  {
    server::JobStore store(dir / "jobs.sqlite3");
    store.insert(j);
    j.status = "succeeded";
    j.attempts = 1;
    j.finished = 9.25;
    j.images = {std::string("\x89PNG\0\x01", 6), "second"};
    store.update(j);
    server::StoredFile f;
    f.id = "file-1";
    f.filename = "a.png";
    f.content_type = "image/png";
    f.bytes = std::make_shared<const std::string>(std::string("bytes\0more", 10));
    f.created = 1;
    f.expires = 2;
    store.put_file(f, 1);
    server::StoredJob gone = j;
    gone.id = "job_2";
    gone.seq = 8;
    store.insert(gone);
    store.remove("job_2");
  }
  server::JobStore store(dir / "jobs.sqlite3");
  const auto jobs = store.jobs();
  ASSERT_EQ(jobs.size(), 1u);
  const server::StoredJob& k = jobs[0];
  EXPECT_EQ(k.id, "job_1");
  EXPECT_EQ(k.seq, 7u);
  EXPECT_EQ(k.status, "succeeded");
  EXPECT_EQ(k.attempts, 1);
  EXPECT_EQ(k.finished, 9.25);
  EXPECT_EQ(k.deadline, 601.5);
  EXPECT_EQ(k.images, j.images);
  EXPECT_EQ(k.request.prompt, j.request.prompt);
  EXPECT_EQ(k.request.seed, j.request.seed);
  EXPECT_EQ(*k.request.guidance_scale, *j.request.guidance_scale);
  EXPECT_EQ(k.request.output_format, server::ImageFormat::kWebp);
  const auto files = store.files();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(*files[0].bytes, std::string("bytes\0more", 10));
  fs::remove_all(dir);
}

TEST(ServeRecoveryParts, FramesCrossASocketIntactAndBadOnesAreRefused) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  server::Socket a(fds[0]), b(fds[1]);
  server::Frame out;
  out.meta = {{"type", "done"}, {"seq", 41}, {"group", 1}};
  out.data = server::pack_files({std::string("png\0bytes", 9), "", "x"});
  ASSERT_TRUE(server::write_frame(a.fd(), out));
  server::Frame in;
  ASSERT_TRUE(server::read_frame(b.fd(), &in));
  EXPECT_EQ(in.meta, out.meta);
  EXPECT_EQ(server::unpack_files(in.data),
            (std::vector<std::string>{std::string("png\0bytes", 9), "", "x"}));
  EXPECT_THROW(server::unpack_files(in.data.substr(0, in.data.size() - 1)), Error);
  const char junk[] = "HTTP/1.1 200 OK\r\n";
  ASSERT_GT(::send(a.fd(), junk, sizeof junk - 1, 0), 0);
  EXPECT_THROW(server::read_frame(b.fd(), &in), Error);
  // A peer that closes between frames is the end (false), inside a frame an Error.
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  server::Socket c(fds[0]), d(fds[1]);
  ASSERT_TRUE(server::write_frame(c.fd(), out));
  c = server::Socket();
  EXPECT_TRUE(server::read_frame(d.fd(), &in));
  EXPECT_FALSE(server::read_frame(d.fd(), &in));
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  server::Socket e(fds[0]), g(fds[1]);
  ASSERT_GT(::send(e.fd(), "PDW1\x05\0\0\0{\"ty", 11, 0), 0);
  e = server::Socket();
  EXPECT_THROW(server::read_frame(g.fd(), &in), Error);
  EXPECT_THROW(server::parse_address("nohost", "--workers"), Error);
  EXPECT_THROW(server::parse_address("host:99999", "--workers"), Error);
  EXPECT_EQ(server::parse_address("/tmp/x.sock", "--workers").text(), "unix:/tmp/x.sock");
  EXPECT_EQ(server::parse_address("node7:7000", "--workers").text(), "node7:7000");
}

}  // namespace
}  // namespace paradit
