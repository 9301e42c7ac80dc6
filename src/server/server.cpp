#include "server/server.h"

#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <csignal>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <thread>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "comm/runtime.h"
#include "core/error.h"
#include "io/diffusers.h"
#include "pipelines/pipeline.h"
#include "server/cluster.h"
#include "server/dispatcher.h"
#include "server/encoding.h"

namespace paradit::server {

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, Json{{"error", {{"message", message}}}});
}

// Images as {"b64_json": PNG}; videos (a video model's jobs, v.fps set) as {"b64_mp4": MP4,
// "fps": rate}.
Json images_json(const JobView& v) {
  Json data = Json::array();
  if (v.images) {
    for (const std::string& file : *v.images) {
      if (v.fps) {
        data.push_back({{"b64_mp4", base64_encode(file)}, {"fps", *v.fps}});
      } else {
        data.push_back({{"b64_json", base64_encode(file)}});
      }
    }
  }
  return data;
}

Json job_json(const JobView& v) {
  Json j = {{"id", v.id},
            {"status", status_name(v.status)},
            {"created", static_cast<int64_t>(v.created)},
            {"progress", {{"step", v.step}, {"total", v.total}}}};
  if (!v.error.empty()) j["error"] = {{"message", v.error}};
  if (v.status == JobStatus::kSucceeded) j["data"] = images_json(v);
  return j;
}

// The answer to a synchronous generation that did not succeed.
void send_job_failure(httplib::Response& res, const JobView& v) {
  switch (v.status) {
    case JobStatus::kTimedOut: return send_error(res, 504, "request timed out: " + v.error);
    case JobStatus::kCancelled: return send_error(res, 503, "request cancelled: " + v.error);
    default: return send_error(res, 500, "generation failed: " + v.error);
  }
}

RequestLimits limits_of(const pipelines::Pipeline& pipe) {
  RequestLimits l;
  l.size_multiple = pipe.size_multiple();
  l.max_side = std::max<int64_t>(2048 / l.size_multiple * l.size_multiple, l.size_multiple);
  l.default_height = pipe.defaults().height;
  l.default_width = pipe.defaults().width;
  if (pipe.is_video()) {
    l.default_frames = pipe.defaults().num_frames;
    l.temporal_factor = pipe.temporal_factor();
    l.max_frames = std::max<int64_t>(l.max_frames, l.default_frames);
    l.default_fps = pipe.defaults().fps;
  }
  return l;
}

}  // namespace

int serve(const ServeOptions& opt) {
  PARADIT_CHECK(opt.port >= 0 && opt.port <= 65535, "--port: must be in [0, 65535], found ",
                opt.port);
  PARADIT_CHECK(opt.queue_size >= 1 && opt.queue_size <= 4096,
                "--queue_size: must be in [1, 4096], found ", opt.queue_size);
  PARADIT_CHECK(opt.request_timeout > 0, "--request_timeout: must be positive seconds, found ",
                opt.request_timeout);
  PARADIT_CHECK(opt.max_body_bytes >= 1024, "--max_body_bytes: must be at least 1024, found ",
                opt.max_body_bytes);

  // SIGINT/SIGTERM are taken by sigtimedwait below: blocked here, before any thread exists, so
  // every thread (HTTP pool, worker, OpenMP) inherits the mask and none dies of them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the server

  const auto load_start = Clock::now();
  const std::filesystem::path model_dir =
      opt.model.empty() ? pipelines::default_model_dir() : std::filesystem::path(opt.model);
  std::unique_ptr<pipelines::Pipeline> pipe = pipelines::Pipeline::open(model_dir);
  // A HunyuanVideo folder without its text encoders takes its prompts as precomputed
  // embeddings, and a request cannot bring tensors or file paths.
  PARADIT_CHECK(pipe->class_name() != "HunyuanVideoPipeline" ||
                    io::ModelFolder::open(model_dir.string()).has_component("text_encoder"),
                "--model ", model_dir.string(),
                ": ", pipe->class_name(), " needs precomputed prompt embeddings, which cannot "
                "be sent over HTTP; serve it with `paradit generate --prompt_embeds` instead");
  // The server's point: every component is loaded once and kept for every request.
  pipe->set_keep_loaded(true);
  Cluster cluster(comm::world(), opt.parallel);  // collective under mpirun
  pipe->set_runtime(cluster.runtime());
  pipe->preload();
  const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  if (!cluster.is_rank0()) {
    cluster.follow(*pipe);  // until rank 0 has drained
    return 0;
  }
  const RequestLimits limits = limits_of(*pipe);

  Dispatcher dispatcher(cluster.executors(*pipe), opt.queue_size, opt.request_timeout);

  httplib::Server http;
  // Each synchronous request holds a thread while it waits: room for a full queue, the running
  // job and a few more for /health, /metrics and polling.
  const size_t threads = opt.queue_size + 1 + 8;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_keep_alive_timeout(2);

  // Parses and queues a body; on failure answers and returns false.
  auto submit = [&](const httplib::Request& req, httplib::Response& res, bool keep,
                    std::string* id) {
    try {
      const ImageRequest r = parse_image_request(req.body, limits);
      switch (dispatcher.submit(r, keep, id)) {
        case Dispatcher::Submit::kAccepted: return true;
        case Dispatcher::Submit::kQueueFull:
          send_error(res, 429, "the queue is full (" + std::to_string(opt.queue_size) +
                                   " jobs waiting); retry later");
          return false;
        case Dispatcher::Submit::kClosed:
          send_error(res, 503, "the server is shutting down");
          return false;
      }
    } catch (const BadRequest& e) {
      dispatcher.count_request("invalid");
      send_error(res, 400, e.what());
    }
    return false;
  };

  http.Post("/v1/images/generations", [&](const httplib::Request& req, httplib::Response& res) {
    if (pipe->is_video()) {
      // A video takes minutes; a synchronous request would hold its connection that long.
      dispatcher.count_request("invalid");
      return send_error(res, 400, pipe->class_name() + " makes videos: video models are served "
                                  "through /v1/jobs (POST, then poll GET /v1/jobs/{id})");
    }
    std::string id;
    if (!submit(req, res, false, &id)) return;
    const JobView v = dispatcher.wait(id);
    if (v.status != JobStatus::kSucceeded) return send_job_failure(res, v);
    send_json(res, 200, {{"created", static_cast<int64_t>(v.created)}, {"data", images_json(v)}});
  });
  http.Post("/v1/jobs", [&](const httplib::Request& req, httplib::Response& res) {
    std::string id;
    if (!submit(req, res, true, &id)) return;
    send_json(res, 202, {{"id", id}, {"status", "queued"}});
  });
  http.Get(R"(/v1/jobs/([A-Za-z0-9_]{1,64}))",
           [&](const httplib::Request& req, httplib::Response& res) {
             JobView v;
             if (!dispatcher.view(req.matches[1], &v)) {
               return send_error(res, 404, "no job '" + std::string(req.matches[1]) + "'");
             }
             send_json(res, 200, job_json(v));
           });
  http.Delete(R"(/v1/jobs/([A-Za-z0-9_]{1,64}))",
              [&](const httplib::Request& req, httplib::Response& res) {
                const std::string id = req.matches[1];
                JobView v;
                if (!dispatcher.cancel(id) || !dispatcher.view(id, &v)) {
                  return send_error(res, 404, "no job '" + id + "'");
                }
                send_json(res, 200, job_json(v));
              });
  http.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"status", dispatcher.closed() ? "draining" : "ok"},
                         {"model", pipe->class_name()},
                         {"groups", cluster.groups()},
                         {"ranks_per_group", cluster.group_size()},
                         {"pid", static_cast<int64_t>(::getpid())}});
  });
  http.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(dispatcher.metrics_text(load_seconds), "text/plain; version=0.0.4");
  });
  // Answers httplib makes itself (404 unknown path, 413 body too large, 400 bad HTTP) get the
  // same JSON error shape.
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message = "HTTP error " + std::to_string(res.status);
    if (res.status == 404) message = "not found: the API is /v1/images/generations, /v1/jobs, "
                                     "/v1/jobs/{id}, /health, /metrics";
    if (res.status == 413) message = "request body too large (see --max_body_bytes)";
    if (res.status == 400) message = "bad HTTP request";
    send_error(res, res.status, message);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string message = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          message += std::string(": ") + e.what();
        } catch (...) {
        }
        send_error(res, 500, message);
      });

  const int port = opt.port == 0 ? http.bind_to_any_port(opt.host)
                                 : (http.bind_to_port(opt.host, opt.port) ? opt.port : -1);
  PARADIT_CHECK(port > 0, "--host/--port: cannot listen on ", opt.host, ":", opt.port,
                " (address in use or not local?)");
  std::atomic<bool> listening{true};
  std::thread listener([&] {
    http.listen_after_bind();
    listening = false;
  });
  std::printf("paradit serve: listening on http://%s:%d\n", opt.host.c_str(), port);
  std::fflush(stdout);
  std::fprintf(stderr,
               "paradit serve: %s from %s (loaded in %.2f s), %d group(s) of %d rank(s), queue "
               "%zu, timeout %g s\n",
               pipe->class_name().c_str(), pipe->root().string().c_str(), load_seconds,
               cluster.groups(), cluster.group_size(), opt.queue_size, opt.request_timeout);

  const timespec tick{0, 200'000'000};
  int signo = -1;
  while (signo < 0 && listening) signo = sigtimedwait(&stop_signals, nullptr, &tick);

  // Drain: refuse new jobs, let the accepted ones finish (their clients are waiting), then stop.
  dispatcher.close();
  std::fprintf(stderr, "paradit serve: %s, draining\n",
               signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "listener stopped");
  bool cancelled = false;
  while (!dispatcher.idle()) {
    if (sigtimedwait(&stop_signals, nullptr, &tick) > 0 && !cancelled) {
      std::fprintf(stderr, "paradit serve: second signal, cancelling the remaining jobs\n");
      dispatcher.cancel_all();
      cancelled = true;
    }
  }
  // stop() closes the listening socket; the pool finishes the handlers still writing answers.
  const bool listener_failed = !listening;
  http.stop();
  listener.join();
  PARADIT_CHECK(!listener_failed || signo > 0, "serve: the HTTP listener on ", opt.host, ":", port,
                " stopped unexpectedly");
  cluster.stop_followers();
  std::fprintf(stderr, "paradit serve: stopped\n");
  return 0;
}

}  // namespace paradit::server
