// bench_serve: `paradit serve` throughput and latency with the shipped demo model, 1 worker.
//   bench_serve [--requests N] [--clients C] [--steps S] [--size WxH] [--binary PATH]
//               [--model DIR]
// Starts the real server (the `paradit` binary beside this one by default) on a free port and
// prints: time from process start to "listening", to the first /health answer and to the first
// generated image (model load + first call), then requests per minute and p50/p95 latency of
// N synchronous generations sent by C concurrent clients.
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "pipelines/pipeline.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int requests = 12;
  int clients = 1;
  int steps = 20;
  std::string size = "64x64";
  std::string binary;
  std::string model;
  CLI::App app{"bench_serve: paradit serve requests/minute and latency"};
  app.add_option("--requests", requests, "Timed generations")->capture_default_str();
  app.add_option("--clients", clients, "Concurrent clients")->capture_default_str();
  app.add_option("--steps", steps, "num_inference_steps per request")->capture_default_str();
  app.add_option("--size", size, "Image size WxH")->capture_default_str();
  app.add_option("--binary", binary, "paradit executable (default: beside bench_serve)");
  app.add_option("--model", model, "Pipeline folder (default: the shipped shapes-pixart)");
  CLI11_PARSE(app, argc, argv);
  if (binary.empty()) {
    binary = (fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "paradit").string();
  }
  if (model.empty()) model = paradit::pipelines::default_model_dir().string();

  int fds[2];
  if (::pipe(fds) != 0) return 1;
  const auto t_start = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execl(binary.c_str(), binary.c_str(), "serve", "--port", "0", "--model", model.c_str(),
            "--queue_size", std::to_string(std::max(requests, 1)).c_str(), nullptr);
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  int port = 0;
  const std::string marker = "listening on http://127.0.0.1:";
  while (port == 0 && since(t_start) < 120) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    const size_t at = out.find(marker);
    if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
      port = std::stoi(out.substr(at + marker.size()));
    }
  }
  ::close(fds[0]);
  if (port == 0) {
    std::fprintf(stderr, "bench_serve: %s serve did not start\n", binary.c_str());
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return 1;
  }
  const double t_listening = since(t_start);
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(600);
  while (!cli.Get("/health")) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const double t_health = since(t_start);

  auto body = [&](uint64_t seed) {
    return nlohmann::json{{"prompt", "a small red circle on the left on a blue background"},
                          {"size", size},
                          {"num_inference_steps", steps},
                          {"seed", seed}}
        .dump();
  };
  auto first = cli.Post("/v1/images/generations", body(0), "application/json");
  const double t_first = since(t_start);
  if (!first || first->status != 200) {
    std::fprintf(stderr, "bench_serve: first request failed: %s\n",
                 first ? first->body.c_str() : "no answer");
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return 1;
  }

  std::vector<double> latencies;
  std::mutex mu;
  std::atomic<int> next{0}, failures{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(600);
      for (int i = next++; i < requests; i = next++) {
        const auto s = Clock::now();
        auto r = client.Post("/v1/images/generations", body(static_cast<uint64_t>(i + 1)),
                             "application/json");
        const double dt = since(s);
        if (!r || r->status != 200) {
          ++failures;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        latencies.push_back(dt);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall = since(t0);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);

  std::printf("bench_serve: %s, %s, %d steps, 1 worker, %d client(s)\n", model.c_str(),
              size.c_str(), steps, clients);
  std::printf("  start -> listening      %8.3f s\n", t_listening);
  std::printf("  start -> first /health  %8.3f s\n", t_health);
  std::printf("  start -> first image    %8.3f s\n", t_first);
  std::printf("  %d requests in %.2f s: %.1f requests/minute, latency p50 %.3f s, p95 %.3f s"
              "%s\n",
              static_cast<int>(latencies.size()), wall,
              wall > 0 ? 60.0 * static_cast<double>(latencies.size()) / wall : 0.0,
              quantile(latencies, 0.5), quantile(latencies, 0.95),
              failures > 0 ? " (some requests failed)" : "");
  std::printf("  server exit code after SIGTERM: %d\n",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return failures > 0 ? 1 : 0;
}
