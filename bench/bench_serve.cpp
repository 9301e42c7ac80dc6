// bench_serve: `paradit serve` throughput and latency with the shipped demo model.
//   bench_serve [--requests N] [--clients C] [--steps S] [--size WxH] [--binary PATH]
//               [--model DIR] [--format png|jpeg|webp] [--partial_images K]
//               [--np P [--mpirun PATH]] [-- SERVE FLAGS...]
//   bench_serve --rss [--model DIR] [--steps S] [--size WxH] [--calls K]
//   bench_serve --encode WxH
// Starts the real server (the `paradit` binary beside this one by default) on a free port, under
// `mpirun -np P` when P > 1 (serve flags after `--`, e.g. `-- --data_parallel_degree 2`), and
// prints: time from process start to "listening", to the first /health answer and to the first
// generated image (model load + first call), then requests per minute and p50/p95 latency of
// N synchronous generations sent by C concurrent clients, and the mean answer size. --format
// sets output_format; --partial_images K > 0 streams every request (stream=true, Server-Sent
// Events) and also reports the latency to the first preview.
// --rss: peak RSS (VmHWM) of K generate() calls in a fresh process, with the default memory mode
// (each component freed when its phase ends) and with Pipeline::set_keep_loaded(true).
// --encode: what each output format costs the server per image of WxH (a synthetic picture: a
// gradient and a sharp-edged disc, with grain): encode milliseconds (median of 5) and bytes, PNG,
// JPEG and WebP at compression 90 and 100.
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "pipelines/pipeline.h"
#include "server/encoding.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A "VmHWM:" / "VmRSS:" line of /proc/self/status, in MiB.
double status_mib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;
  }
  return -1;
}

int encode_report(const std::string& size) {
  const size_t x = size.find('x');
  const int width = std::stoi(size.substr(0, x));
  const int height = std::stoi(size.substr(x + 1));
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int c = 0; c < width; ++c) {
      uint8_t* p = rgb.data() + (static_cast<size_t>(y) * width + c) * 3;
      const bool disc = (c - width / 3) * (c - width / 3) + (y - height / 2) * (y - height / 2) <
                        (height / 5) * (height / 5);
      // Grain of ±8 levels, as generated images have (a flat picture flatters PNG).
      const uint32_t h =
          (static_cast<uint32_t>(y) * 73856093u) ^ (static_cast<uint32_t>(c) * 19349663u);
      const int grain = static_cast<int>((h * 2654435761u) >> 28) - 8;
      auto level = [&](int v) { return static_cast<uint8_t>(std::clamp(v + grain, 0, 255)); };
      p[0] = level(disc ? 220 : 40 + 100 * c / width);
      p[1] = level(disc ? 30 : 60 + 80 * y / height);
      p[2] = level(disc ? 40 : 200);
    }
  }
  std::printf("bench_serve --encode: %dx%d (width x height)\n", width, height);
  using paradit::server::ImageFormat;
  const std::pair<ImageFormat, int> cases[] = {{ImageFormat::kPng, 100},
                                               {ImageFormat::kJpeg, 90},
                                               {ImageFormat::kJpeg, 100},
                                               {ImageFormat::kWebp, 90},
                                               {ImageFormat::kWebp, 100}};
  for (const auto& [format, quality] : cases) {
    std::vector<double> ms;
    size_t bytes = 0;
    for (int rep = 0; rep < 5; ++rep) {
      const auto t0 = Clock::now();
      bytes = paradit::server::encode_image(rgb.data(), height, width, format, quality).size();
      ms.push_back(1000 * since(t0));
    }
    std::sort(ms.begin(), ms.end());
    std::printf("  %-5s compression %3d: %8.2f ms, %9zu bytes\n",
                paradit::server::format_name(format), quality, ms[2], bytes);
  }
  return 0;
}

// --rss: one child process per memory mode, so each peak is its own.
int peak_rss_report(const std::string& model, int steps, const std::string& size, int calls) {
  const size_t x = size.find('x');
  const int64_t width = std::stoll(size.substr(0, x));
  const int64_t height = std::stoll(size.substr(x + 1));
  std::printf("bench_serve --rss: %s, %s, %d steps, %d generate call(s) per process\n",
              model.c_str(), size.c_str(), steps, calls);
  std::fflush(stdout);
  for (const bool keep : {false, true}) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      auto pipe = paradit::pipelines::Pipeline::open(model);
      pipe->set_keep_loaded(keep);
      paradit::pipelines::GenerateRequest req;
      req.prompts = {
          pipe->has_text_encoder() ? "a small red circle on the left on a blue background" : "1"};
      req.width = width;
      req.height = height;
      req.num_inference_steps = steps;
      const double base = status_mib("VmRSS:");
      double load = 0;
      const auto t0 = Clock::now();
      for (int i = 0; i < calls; ++i) {
        req.seed = static_cast<uint64_t>(i);
        load += pipe->generate(req).times.load;
      }
      std::printf(
          "  %-13s peak RSS (VmHWM) %8.1f MiB, RSS after %8.1f MiB (%.1f MiB at open); "
          "%.2f s, of which loading %.2f s\n",
          keep ? "keep-loaded:" : "default:", status_mib("VmHWM:"), status_mib("VmRSS:"), base,
          since(t0), load);
      std::fflush(stdout);
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  }
  return 0;
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
  int np = 1;
  std::string mpirun = "mpirun";
  std::vector<std::string> serve_flags;
  bool rss = false;
  int calls = 2;
  std::string format = "png";
  int partial_images = 0;
  std::string encode;
  CLI::App app{"bench_serve: paradit serve requests/minute and latency"};
  app.add_option("--np", np, "Ranks (> 1: the server runs under mpirun)")->capture_default_str();
  app.add_option("--mpirun", mpirun, "mpirun executable")->capture_default_str();
  app.add_option("serve_flags", serve_flags, "Extra `paradit serve` flags (after --)");
  app.add_flag("--rss", rss, "Report peak RSS of generate with and without keep-loaded");
  app.add_option("--calls", calls, "--rss: generate calls per process")->capture_default_str();
  app.add_option("--requests", requests, "Timed generations")->capture_default_str();
  app.add_option("--clients", clients, "Concurrent clients")->capture_default_str();
  app.add_option("--steps", steps, "num_inference_steps per request")->capture_default_str();
  app.add_option("--size", size, "Image size WxH")->capture_default_str();
  app.add_option("--binary", binary, "paradit executable (default: beside bench_serve)");
  app.add_option("--model", model, "Pipeline folder (default: the shipped shapes-pixart)");
  app.add_option("--format", format, "output_format: png, jpeg or webp")->capture_default_str();
  app.add_option("--partial_images", partial_images,
                 "Stream every request with this many previews (0: no streaming)")
      ->capture_default_str();
  app.add_option("--encode", encode, "Only time the image encoders at WxH");
  CLI11_PARSE(app, argc, argv);
  if (!encode.empty()) return encode_report(encode);
  if (binary.empty()) {
    binary = (fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "paradit").string();
  }
  if (model.empty()) model = paradit::pipelines::default_model_dir().string();
  if (rss) return peak_rss_report(model, steps, size, calls);

  int fds[2];
  if (::pipe(fds) != 0) return 1;
  const auto t_start = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<std::string> args;
    if (np > 1) {
      args = {mpirun, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
              "-np",  std::to_string(np)};
    }
    for (const std::string& a :
         {binary, std::string("serve"), std::string("--port"), std::string("0"),
          std::string("--model"), model, std::string("--queue_size"),
          std::to_string(std::max(requests, 1))}) {
      args.push_back(a);
    }
    args.insert(args.end(), serve_flags.begin(), serve_flags.end());
    std::vector<char*> argv_c;
    for (auto& a : args) argv_c.push_back(a.data());
    argv_c.push_back(nullptr);
    ::execvp(argv_c[0], argv_c.data());
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
  std::string health_body;
  for (;;) {
    if (auto h = cli.Get("/health")) {
      health_body = h->body;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double t_health = since(t_start);
  // Under mpirun the drain signal goes to rank 0, whose pid /health reports.
  const auto health_json = nlohmann::json::parse(health_body);
  const pid_t stop_pid = np > 1 ? health_json["pid"].get<pid_t>() : pid;
  const int groups = health_json.value("groups", 1);

  auto body = [&](uint64_t seed) {
    nlohmann::json b = {{"prompt", "a small red circle on the left on a blue background"},
                        {"size", size},
                        {"num_inference_steps", steps},
                        {"seed", seed},
                        {"output_format", format}};
    if (partial_images > 0) {
      b["stream"] = true;
      b["partial_images"] = partial_images;
    }
    return b.dump();
  };
  // One request: its status and body; `first_event` gets the seconds to the first streamed event
  // (previews come as events) when streaming.
  auto generate = [&](httplib::Client& client, uint64_t seed, double* first_event) {
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/images/generations";
    req.body = body(seed);
    req.set_header("Content-Type", "application/json");
    std::string answer;
    const auto s = Clock::now();
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (first_event && *first_event < 0) *first_event = since(s);
      answer.append(data, n);
      return true;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    const bool ok = client.send(req, res, error);
    return std::pair<int, std::string>{ok ? res.status : -1, answer};
  };
  const auto first = generate(cli, 0, nullptr);
  const double t_first = since(t_start);
  if (first.first != 200) {
    std::fprintf(stderr, "bench_serve: first request failed (%d): %s\n", first.first,
                 first.second.c_str());
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return 1;
  }

  std::vector<double> latencies, first_events;
  double answer_bytes = 0;
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
        double first_event = -1;
        const auto r = generate(client, static_cast<uint64_t>(i + 1), &first_event);
        const double dt = since(s);
        const bool completed =
            partial_images == 0 ||
            r.second.find("event: image_generation.completed") != std::string::npos;
        if (r.first != 200 || !completed) {
          ++failures;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        latencies.push_back(dt);
        answer_bytes += static_cast<double>(r.second.size());
        if (partial_images > 0) first_events.push_back(first_event);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall = since(t0);
  ::kill(stop_pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);

  std::printf(
      "bench_serve: %s, %s, %d steps, %s, %d preview(s), %d rank(s), %d group(s), %d "
      "client(s)\n",
      model.c_str(), size.c_str(), steps, format.c_str(), partial_images, np, groups, clients);
  std::printf("  start -> listening      %8.3f s\n", t_listening);
  std::printf("  start -> first /health  %8.3f s\n", t_health);
  std::printf("  start -> first image    %8.3f s\n", t_first);
  std::printf(
      "  %d requests in %.2f s: %.1f requests/minute, latency p50 %.3f s, p95 %.3f s"
      "%s\n",
      static_cast<int>(latencies.size()), wall,
      wall > 0 ? 60.0 * static_cast<double>(latencies.size()) / wall : 0.0,
      quantile(latencies, 0.5), quantile(latencies, 0.95),
      failures > 0 ? " (some requests failed)" : "");
  if (!latencies.empty()) {
    std::printf("  mean answer %.0f bytes (JSON%s, base64 images)\n",
                answer_bytes / static_cast<double>(latencies.size()),
                partial_images > 0 ? " events" : "");
  }
  if (!first_events.empty()) {
    std::printf("  first streamed event (a preview) after p50 %.3f s, p95 %.3f s\n",
                quantile(first_events, 0.5), quantile(first_events, 0.95));
  }
  std::printf("  server exit code after SIGTERM: %d\n",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return failures > 0 ? 1 : 0;
}
