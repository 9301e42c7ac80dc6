#include "server/server.h"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "comm/runtime.h"
#include "core/error.h"
#include "io/diffusers.h"
#include "pipelines/pipeline.h"
#include "server/dispatcher.h"
#include "server/encoding.h"
#include "server/file_store.h"
#include "server/job_store.h"
#include "server/openai_json.h"
#include "server/supervisor.h"

namespace paradit::server {

namespace {

using Clock = std::chrono::steady_clock;

void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(json_text(body), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& param = {}, const std::string& code = {}) {
  send_json(res, status, error_body(status, message, param, code));
}

void send_bad_request(httplib::Response& res, const BadRequest& e) {
  send_error(res, e.status(), e.what(), e.param(), e.code());
}

// Names each ignored request field once in the log (the first time a request carries it), so an
// operator learns what clients send that paradit does not act on without a line per request.
class IgnoredFieldLog {
 public:
  void note(const std::vector<std::string>& fields) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& f : fields) {
      const std::string name = f.substr(0, f.find_first_of("= "));
      if (seen_.size() >= kMaxNames || !seen_.insert(name).second) continue;
      std::fprintf(stderr,
                   "paradit serve: ignoring request field '%s' (not known to or not honoured by "
                   "paradit; named once)%s\n",
                   f.c_str(),
                   seen_.size() == kMaxNames ? "; further new field names are not logged" : "");
    }
  }

 private:
  static constexpr size_t kMaxNames = 256;  // bounded: clients choose the names
  std::mutex mu_;
  std::set<std::string> seen_;
};

RequestLimits limits_of(const pipelines::Pipeline& pipe, const ServeOptions& opt) {
  RequestLimits l;
  l.size_multiple = pipe.size_multiple();
  l.default_height = pipe.defaults().height;
  l.default_width = pipe.defaults().width;
  l.max_pixels = opt.max_pixels > 0 ? opt.max_pixels : 4 * l.default_height * l.default_width;
  l.max_steps = opt.max_steps;
  l.max_n = opt.max_n;
  if (pipe.is_video()) {
    l.default_frames = pipe.defaults().num_frames;
    l.temporal_factor = pipe.temporal_factor();
    l.max_frames = std::max<int64_t>(opt.max_frames, l.default_frames);
    l.default_fps = pipe.defaults().fps;
  }
  return l;
}

// The base of the URLs in answers: what the client connected to (its Host header), else the
// listening address.
std::string base_url(const httplib::Request& req, const std::string& host, int port) {
  const std::string h = req.get_header_value("Host");
  const bool plain =
      !h.empty() && h.size() < 256 && h.find_first_of(" \t\r\n/\\\"'<>") == std::string::npos;
  return "http://" + (plain ? h : host + ":" + std::to_string(port));
}

// A request body as the parser takes it: JSON, or a multipart form (the OpenAI client sends the
// videos API as one).
ApiRequest parse_body(const httplib::Request& req, Endpoint endpoint, const RequestLimits& limits,
                      const std::string& model_id) {
  if (req.is_multipart_form_data()) {
    std::vector<FormField> fields;
    for (const auto& [name, item] : req.files) {
      fields.push_back({item.name, item.content, item.filename});
    }
    return parse_request(form_to_json(fields), endpoint, limits, model_id);
  }
  return parse_request(req.body, endpoint, limits, model_id);
}

// The answer to a synchronous generation that did not succeed.
void send_job_failure(httplib::Response& res, const JobView& v) {
  switch (v.status) {
    case JobStatus::kTimedOut:
      return send_error(res, 504, "request timed out: " + v.error, "", "timeout");
    case JobStatus::kCancelled:
      return send_error(res, 503, "request cancelled: " + v.error, "", "cancelled");
    default:
      return send_error(res, 500, "generation failed: " + v.error, "", "generation_failed");
  }
}


// `paradit worker`'s flags for the parallel layout (those of cli/parallel_flags.h).
std::vector<std::string> parallel_args(const parallel::ParallelConfig& c) {
  std::vector<std::string> a = {"--data_parallel_degree", std::to_string(c.dp),
                                "--ulysses_degree", std::to_string(c.ulysses),
                                "--ring_degree", std::to_string(c.ring),
                                "--pipefusion_parallel_degree", std::to_string(c.pp),
                                "--num_pipeline_patch", std::to_string(c.num_pipeline_patch),
                                "--warmup_steps", std::to_string(c.warmup_steps)};
  if (c.cfg) a.push_back("--use_cfg_parallel");
  if (c.use_parallel_vae) a.push_back("--use_parallel_vae");
  return a;
}

std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  std::string w;
  while (in >> w) words.push_back(w);
  return words;
}

std::string random_hex(int bytes) {
  std::random_device rd;
  std::string out;
  char buf[3];
  for (int i = 0; i < bytes; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(rd() & 0xff));
    out += buf;
  }
  return out;
}

// The folder of the state database: --state_dir (created when missing), or a new temporary one.
// Held with an exclusive lock (STATE_DIR/lock, released by the kernel however the process ends),
// so two servers never share one.
class StateDir {
 public:
  explicit StateDir(const std::string& dir) {
    if (dir.empty()) {
      std::string tmpl =
          (std::filesystem::temp_directory_path() / "paradit-serve-XXXXXX").string();
      PARADIT_CHECK(::mkdtemp(tmpl.data()) != nullptr, "--state_dir: cannot make a folder in ",
                    std::filesystem::temp_directory_path().string(), ": ", std::strerror(errno));
      path_ = tmpl;
      temporary_ = true;
    } else {
      path_ = std::filesystem::absolute(dir);
      std::error_code ec;
      std::filesystem::create_directories(path_, ec);
      PARADIT_CHECK(std::filesystem::is_directory(path_), "--state_dir ", dir,
                    ": not a folder that can be made (", ec.message(), ")");
    }
    const std::string lock = (path_ / "lock").string();
    lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    PARADIT_CHECK(lock_fd_ >= 0, "--state_dir ", path_.string(), ": cannot write in it (",
                  std::strerror(errno), ")");
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      char pid[32] = {0};
      [[maybe_unused]] ssize_t n = ::pread(lock_fd_, pid, sizeof pid - 1, 0);
      ::close(lock_fd_);
      fail("--state_dir ", path_.string(), " is in use by another paradit serve (pid ",
           std::string(pid).substr(0, std::string(pid).find('\n')), ")");
    }
    const std::string me = std::to_string(::getpid()) + "\n";
    [[maybe_unused]] int t = ::ftruncate(lock_fd_, 0);
    [[maybe_unused]] ssize_t w = ::pwrite(lock_fd_, me.data(), me.size(), 0);
  }
  ~StateDir() {
    if (temporary_) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
    ::close(lock_fd_);
  }
  StateDir(const StateDir&) = delete;
  StateDir& operator=(const StateDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool temporary_ = false;
  int lock_fd_ = -1;
};

// The paradit executable (the worker job runs the same binary).
std::string self_binary() {
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::read_symlink("/proc/self/exe", ec);
  PARADIT_CHECK(!ec, "serve: cannot find the paradit executable (/proc/self/exe: ", ec.message(),
                ")");
  return p.string();
}

}  // namespace

int serve(const ServeOptions& options) {
  ServeOptions opt = options;
  PARADIT_CHECK(opt.port >= 0 && opt.port <= 65535, "--port: must be in [0, 65535], found ",
                opt.port);
  PARADIT_CHECK(opt.queue_size >= 1 && opt.queue_size <= 4096,
                "--queue_size: must be in [1, 4096], found ", opt.queue_size);
  PARADIT_CHECK(opt.request_timeout > 0, "--request_timeout: must be positive seconds, found ",
                opt.request_timeout);
  PARADIT_CHECK(opt.max_body_bytes >= 1024, "--max_body_bytes: must be at least 1024, found ",
                opt.max_body_bytes);
  PARADIT_CHECK(opt.max_pixels >= 0,
                "--max_pixels: must be positive (0: 4 x the model's default "
                "image area), found ",
                opt.max_pixels);
  PARADIT_CHECK(opt.max_steps >= 1, "--max_steps: must be at least 1, found ", opt.max_steps);
  PARADIT_CHECK(opt.max_frames >= 1, "--max_frames: must be at least 1, found ", opt.max_frames);
  PARADIT_CHECK(opt.max_n >= 1 && opt.max_n <= 1024, "--max_n: must be in [1, 1024], found ",
                opt.max_n);
  PARADIT_CHECK(opt.result_ttl > 0, "--result_ttl: must be positive seconds, found ",
                opt.result_ttl);
  PARADIT_CHECK(opt.max_result_bytes >= 1, "--max_result_mib: must be positive");

  PARADIT_CHECK(opt.max_attempts >= 1 && opt.max_attempts <= 100,
                "--max_attempts: must be in [1, 100], found ", opt.max_attempts);
  PARADIT_CHECK(opt.worker_start_timeout > 0,
                "--worker_start_timeout: must be positive seconds, found ",
                opt.worker_start_timeout);
  // The old in-job mode (rank 0 of the MPI job listening) is gone: it lost every request with
  // any rank. The front end starts the MPI job itself.
  PARADIT_CHECK(comm::world().size() == 1,
                "paradit serve runs as one process and starts its workers itself: use "
                "`paradit serve --np ", comm::world().size(),
                " [--hostfile FILE] [parallel flags]` instead of `mpirun -np ",
                comm::world().size(), " paradit serve`");
  opt.parallel.validate();
  const int degrees = opt.parallel.world_size();
  const bool attach = !opt.workers.empty();
  PARADIT_CHECK(!attach || opt.np == 0,
                "--workers and --np: give --np to start the workers here, or --workers to "
                "attach to a worker job started elsewhere, not both");
  PARADIT_CHECK(opt.np >= 0, "--np: must be positive, found ", opt.np);
  const int np = opt.np > 0 ? opt.np : degrees;
  PARADIT_CHECK(np == degrees, "--np ", np, ": the parallel degrees ", opt.parallel.degrees().str(),
                " need ", degrees, " processes (--np must equal their product)");
  PARADIT_CHECK(!attach || opt.hostfile.empty(),
                "--hostfile: the workers' hosts are chosen by whoever starts them (--workers)");

  // SIGINT/SIGTERM are taken by sigtimedwait below: blocked here, before any thread exists, so
  // every thread (HTTP pool, dispatcher, supervisor) inherits the mask and none dies of them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the server

  // The front end opens the pipeline's configs only (no weights): it checks requests against it.
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
  // Requests are checked against the workers' layout too (PipeFusion patches, VAE bands):
  // one the layout cannot cut is a 400 here, never a failure inside the worker job.
  pipe->set_admission_layout(opt.parallel);
  const RequestLimits limits = limits_of(*pipe, opt);
  const bool video = pipe->is_video();
  ServedModel model;
  model.id = served_model_id(opt.model, pipe->root(), opt.served_model_name);
  model.pipeline = pipe->class_name();
  model.kind = video ? "video" : "image";
  model.created = static_cast<int64_t>(std::time(nullptr));
  model.default_size =
      std::to_string(limits.default_width) + "x" + std::to_string(limits.default_height);
  model.limits = {{"max_pixels", limits.max_pixels},
                  {"max_steps", limits.max_steps},
                  {"max_n", limits.max_n},
                  {"request_timeout", opt.request_timeout}};
  if (video) model.limits["max_frames"] = limits.max_frames;

  // Durable state: the jobs a previous server accepted come back first.
  StateDir state(opt.state_dir);
  JobStore store(state.path() / "jobs.sqlite3");
  const std::string model_key = model.id + " (" + model.pipeline + ")";
  const std::string recorded = store.meta("model");
  PARADIT_CHECK(recorded.empty() || recorded == model_key, "--state_dir ", state.path().string(),
                " holds the jobs of model ", recorded, ", this server serves ", model_key,
                " (give another --state_dir)");
  if (recorded.empty()) store.set_meta("model", model_key);
  FileStore files(opt.result_ttl, opt.max_result_bytes);
  files.persist_to(&store);

  WorkerLaunch launch;
  launch.np = np;
  launch.mpirun = opt.mpirun;
  launch.mpirun_args = split_words(opt.mpirun_args);
  launch.hostfile = opt.hostfile;
  launch.binary = self_binary();
  if (!opt.model.empty()) {
    std::error_code ec;
    const bool local = std::filesystem::exists(opt.model, ec);
    launch.worker_args = {"--model", local ? std::filesystem::absolute(opt.model).string()
                                           : opt.model};
  }
  for (const auto& [flag, value] : {std::pair{"--device", &opt.device},
                                    std::pair{"--dtype", &opt.dtype},
                                    std::pair{"--attention_backend", &opt.attention_backend}}) {
    if (!value->empty()) launch.worker_args.insert(launch.worker_args.end(), {flag, *value});
  }
  for (const std::string& a : parallel_args(opt.parallel)) launch.worker_args.push_back(a);
  if (!opt.fault_crash_prompt.empty()) {
    launch.worker_args.insert(launch.worker_args.end(),
                              {"--fault_crash_prompt", opt.fault_crash_prompt});
    // The workers refuse it without PARADIT_TEST_FAULTS=1, also on other hosts.
    launch.mpirun_args.insert(launch.mpirun_args.end(), {"-x", "PARADIT_TEST_FAULTS"});
  }
  launch.attach = attach;
  const std::string listen = attach                       ? opt.workers
                             : !opt.worker_listen.empty() ? opt.worker_listen
                                                          : "unix:" + (state.path() /
                                                                       "workers.sock").string();
  launch.listen = parse_address(listen, attach ? "--workers" : "--worker_listen");
  launch.connect = launch.listen.text();
  if (!launch.listen.unix_socket &&
      (launch.listen.host.empty() || launch.listen.host == "*" || launch.listen.host == "0.0.0.0")) {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    launch.connect = std::string(host) + ":" + std::to_string(launch.listen.port);
  }
  if (attach) {
    const char* token = std::getenv("PARADIT_WORKER_TOKEN");
    launch.token = token != nullptr ? token : "";
    if (launch.token.empty() && !launch.listen.unix_socket) {
      std::fprintf(stderr,
                   "paradit serve: warning: --workers %s without PARADIT_WORKER_TOKEN: whoever "
                   "reaches that port can attach as the worker job\n",
                   listen.c_str());
    }
  } else {
    launch.token = random_hex(16);
  }
  launch.state_dir = state.path();
  launch.start_timeout = opt.worker_start_timeout;
  launch.groups = opt.parallel.dp;
  launch.group_size = np / opt.parallel.dp;
  launch.pipeline = pipe->class_name();
  WorkerSupervisor workers(launch);

  Dispatcher dispatcher(workers.executors(*pipe), opt.queue_size, opt.request_timeout, &files,
                        &store, opt.max_attempts);
  dispatcher.set_available(false);
  workers.on_availability([&dispatcher](bool up) { dispatcher.set_available(up); });
  // However serve() ends from here on, the worker job is stopped while the dispatcher exists.
  struct StopWorkers {
    WorkerSupervisor& workers;
    ~StopWorkers() { workers.stop(10); }
  } stop_workers{workers};
  const size_t resumed = dispatcher.resume();
  if (resumed > 0) {
    std::fprintf(stderr, "paradit serve: resuming %zu job(s) accepted by a previous server (%s)\n",
                 resumed, store.path().c_str());
  }
  const auto load_start = Clock::now();
  workers.start();  // Error when the first worker job does not start: exit 2 with its cause
  const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  IgnoredFieldLog ignored;

  httplib::Server http;
  // Each synchronous or streamed request holds a thread while it waits: room for a full queue,
  // the running jobs and a few more for /health, /metrics and polling.
  const size_t threads = opt.queue_size + static_cast<size_t>(launch.groups) + 8;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_keep_alive_timeout(2);
  int port = 0;  // set once bound

  // Checks and queues a parsed request; on failure answers and returns false.
  auto submit = [&](const ImageRequest& r, const Dispatcher::SubmitOptions& how,
                    httplib::Response& res, std::string* id) {
    try {
      switch (dispatcher.submit(r, how, id)) {
        case Dispatcher::Submit::kAccepted:
          return true;
        case Dispatcher::Submit::kQueueFull:
          send_error(res, 429,
                     "the queue is full (" + std::to_string(opt.queue_size) +
                         " jobs waiting); retry later",
                     "", "queue_full");
          return false;
        case Dispatcher::Submit::kClosed:
          send_error(res, 503, "the server is shutting down", "", "server_shutting_down");
          return false;
      }
    } catch (const BadRequest& e) {
      dispatcher.count_request("invalid");
      send_bad_request(res, e);
    } catch (const Error& e) {
      // The job could not be recorded (the state database): not accepted.
      std::fprintf(stderr, "paradit serve: refusing a job: %s\n", e.what());
      send_error(res, 503, std::string("the job cannot be recorded: ") + e.what(), "",
                 "state_unavailable");
    }
    return false;
  };
  // Parses a body; on failure answers (400/404) and returns false.
  auto parse = [&](const httplib::Request& req, httplib::Response& res, Endpoint endpoint,
                   ApiRequest* out) {
    try {
      *out = parse_body(req, endpoint, limits, model.id);
      ignored.note(out->ignored);
      return true;
    } catch (const BadRequest& e) {
      dispatcher.count_request("invalid");
      send_bad_request(res, e);
      return false;
    }
  };
  // One result as the images API lists it: its bytes inline, or its URL.
  auto image_item = [&](const httplib::Request& req, const JobView& v, size_t i) -> Json {
    Json item = Json::object();
    if (i < v.files.size()) {
      item["url"] = base_url(req, opt.host, port) + "/v1/files/" + v.files[i] + "/content";
    } else if (v.images && i < v.images->size()) {
      item[v.fps ? "b64_mp4" : "b64_json"] = base64_encode((*v.images)[i]);
    }
    if (v.fps) item["fps"] = *v.fps;
    return item;
  };
  auto results_json = [&](const httplib::Request& req, const JobView& v) {
    Json data = Json::array();
    const size_t count = std::max(v.files.size(), v.images ? v.images->size() : 0);
    for (size_t i = 0; i < count; ++i) data.push_back(image_item(req, v, i));
    return data;
  };
  auto job_json = [&](const httplib::Request& req, const JobView& v) {
    Json j = {{"id", v.id},
              {"status", status_name(v.status)},
              {"created", static_cast<int64_t>(v.created)},
              {"progress", {{"step", v.step}, {"total", v.total}}}};
    if (!v.error.empty()) j["error"] = {{"message", v.error}};
    if (v.status == JobStatus::kSucceeded) j["data"] = results_json(req, v);
    return j;
  };
  // The fields every image answer and stream event carries besides the image.
  auto image_meta = [&](const ApiRequest& a) {
    return Json{{"size", size_text(a.generation)},
                {"quality", a.quality},
                {"background", "opaque"},  // what paradit makes, whatever was asked
                {"output_format", format_name(a.generation.output_format)}};
  };

  // ---- the images API
  // Streams a queued job as Server-Sent Events: a partial_image event per preview and image, then
  // a completed event per image (or an error event). The client leaving cancels the job.
  auto stream_job = [&](httplib::Response& res, const std::string& id, const ApiRequest& a) {
    struct State {
      std::string id;
      size_t sent = 0;  // previews sent
      Json meta;
    };
    auto state = std::make_shared<State>(State{id, 0, image_meta(a)});
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [&, state](size_t, httplib::DataSink& sink) {
          JobView v;
          try {
            v = dispatcher.wait(state->id, state->sent);
          } catch (const std::exception&) {
            return false;  // the job is gone (abandoned): end the stream
          }
          std::string out;
          for (; state->sent < v.partials.size(); ++state->sent) {
            const auto& preview = *v.partials[state->sent];
            for (size_t i = 0; i < preview.size(); ++i) {
              Json e = state->meta;
              e["type"] = "image_generation.partial_image";
              e["b64_json"] = base64_encode(preview[i]);
              e["created_at"] = static_cast<int64_t>(std::time(nullptr));
              e["partial_image_index"] = state->sent;
              e["image_index"] = i;  // paradit's own: which of the n images
              out += sse_event("image_generation.partial_image", e);
            }
          }
          const bool final = is_final(v.status);
          if (final && v.status == JobStatus::kSucceeded) {
            for (size_t i = 0; v.images && i < v.images->size(); ++i) {
              Json e = state->meta;
              e["type"] = "image_generation.completed";
              e["b64_json"] = base64_encode((*v.images)[i]);
              e["created_at"] = static_cast<int64_t>(std::time(nullptr));
              e["image_index"] = i;
              out += sse_event("image_generation.completed", e);
            }
          } else if (final) {
            const int status = v.status == JobStatus::kTimedOut    ? 504
                               : v.status == JobStatus::kCancelled ? 503
                                                                   : 500;
            out += sse_event(
                "error", error_body(status, std::string(status_name(v.status)) + ": " + v.error, "",
                                    status_name(v.status)));
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) return false;
          if (final) sink.done();
          return true;
        },
        [&, state](bool success) {
          if (!success) dispatcher.abandon(state->id);  // the client went away
        });
  };

  http.Post("/v1/images/generations", [&](const httplib::Request& req, httplib::Response& res) {
    if (video) {
      // A video takes minutes; a synchronous request would hold its connection that long.
      dispatcher.count_request("invalid");
      return send_error(res, 400,
                        pipe->class_name() +
                            " makes videos: video models are served through "
                            "/v1/videos (or /v1/jobs): POST, then poll GET /v1/videos/{id}",
                        "", "unsupported_model");
    }
    ApiRequest a;
    if (!parse(req, res, Endpoint::kImages, &a)) return;
    if (a.stream && a.url) ignored.note({"response_format=url (stream)"});
    Dispatcher::SubmitOptions how;
    how.store_files = a.url && !a.stream;
    std::string id;
    if (!submit(a.generation, how, res, &id)) return;
    if (a.stream) return stream_job(res, id, a);
    const JobView v = dispatcher.wait(id);
    if (v.status != JobStatus::kSucceeded) return send_job_failure(res, v);
    Json body = image_meta(a);
    body["created"] = static_cast<int64_t>(v.created);
    body["data"] = results_json(req, v);
    send_json(res, 200, body);
  });

  // ---- the jobs API
  http.Post("/v1/jobs", [&](const httplib::Request& req, httplib::Response& res) {
    ApiRequest a;
    if (!parse(req, res, Endpoint::kImages, &a)) return;
    if (a.stream) {
      dispatcher.count_request("invalid");
      return send_error(res, 400,
                        "'stream' is for /v1/images/generations; poll GET /v1/jobs/{id} "
                        "for progress",
                        "stream");
    }
    Dispatcher::SubmitOptions how;
    how.keep = true;
    how.store_files = a.url;
    std::string id;
    if (!submit(a.generation, how, res, &id)) return;
    send_json(res, 202, {{"id", id}, {"status", "queued"}});
  });
  http.Get(R"(/v1/jobs/(job_[A-Za-z0-9_]{1,64}))", [&](const httplib::Request& req,
                                                       httplib::Response& res) {
    JobView v;
    if (!dispatcher.view(req.matches[1], &v)) {
      return send_error(res, 404, "no job '" + std::string(req.matches[1]) + "'", "", "not_found");
    }
    send_json(res, 200, job_json(req, v));
  });
  http.Delete(R"(/v1/jobs/(job_[A-Za-z0-9_]{1,64}))",
              [&](const httplib::Request& req, httplib::Response& res) {
                const std::string id = req.matches[1];
                JobView v;
                if (!dispatcher.cancel(id) || !dispatcher.view(id, &v)) {
                  return send_error(res, 404, "no job '" + id + "'", "", "not_found");
                }
                send_json(res, 200, job_json(req, v));
              });

  // ---- models
  http.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"object", "list"}, {"data", Json::array({model_object(model)})}});
  });
  http.Get(R"(/v1/models/(.{1,256}))", [&](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] != model.id) {
      return send_error(res, 404,
                        "The model '" + std::string(req.matches[1]).substr(0, 256) +
                            "' does not exist: this server serves '" + model.id + "'",
                        "model", "model_not_found");
    }
    send_json(res, 200, model_object(model));
  });

  // ---- the videos API
  auto video_json = [&](const JobView& v) { return video_object(v, model.id, opt.result_ttl); };
  auto no_video = [](httplib::Response& res, const std::string& id) {
    send_error(res, 404, "no video '" + id.substr(0, 80) + "'", "video_id", "not_found");
  };
  http.Post("/v1/videos", [&](const httplib::Request& req, httplib::Response& res) {
    if (!video) {
      dispatcher.count_request("invalid");
      return send_error(res, 400, pipe->class_name() + " makes images: use /v1/images/generations",
                        "", "unsupported_model");
    }
    ApiRequest a;
    if (!parse(req, res, Endpoint::kVideos, &a)) return;
    Dispatcher::SubmitOptions how;
    how.keep = true;
    how.id_prefix = "video";
    how.store_files = true;
    std::string id;
    if (!submit(a.generation, how, res, &id)) return;
    JobView v;
    if (!dispatcher.view(id, &v)) return no_video(res, id);
    send_json(res, 200, video_json(v));
  });
  http.Get("/v1/videos", [&](const httplib::Request& req, httplib::Response& res) {
    std::vector<JobView> all = dispatcher.list("video");
    const bool ascending = req.get_param_value("order") == "asc";
    if (!ascending) std::reverse(all.begin(), all.end());  // newest first by default, as OpenAI
    size_t limit = 20;
    if (req.has_param("limit")) {
      const std::string l = req.get_param_value("limit");
      if (l.empty() || l.size() > 3 || l.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(l) < 1 || std::stoi(l) > 100) {
        return send_error(res, 400, "'limit' must be an integer in [1, 100]", "limit");
      }
      limit = static_cast<size_t>(std::stoi(l));
    }
    size_t begin = 0;
    if (req.has_param("after")) {
      const std::string after = req.get_param_value("after");
      while (begin < all.size() && all[begin].id != after) ++begin;
      begin = begin < all.size() ? begin + 1 : all.size();
    }
    Json data = Json::array();
    for (size_t i = begin; i < all.size() && data.size() < limit; ++i) {
      data.push_back(video_json(all[i]));
    }
    const bool more = begin + data.size() < all.size();
    send_json(res, 200,
              {{"object", "list"},
               {"data", data},
               {"has_more", more},
               {"first_id", data.empty() ? Json() : data.front()["id"]},
               {"last_id", data.empty() ? Json() : data.back()["id"]}});
  });
  const std::string video_id = R"(/v1/videos/(video_[A-Za-z0-9_]{1,64}))";
  http.Get(video_id, [&](const httplib::Request& req, httplib::Response& res) {
    JobView v;
    if (!dispatcher.view(req.matches[1], &v)) return no_video(res, req.matches[1]);
    // The OpenAI client's poll helper waits this long between retrieves.
    res.set_header("openai-poll-after-ms", "200");
    send_json(res, 200, video_json(v));
  });
  http.Get(video_id + "/content", [&](const httplib::Request& req, httplib::Response& res) {
    JobView v;
    if (!dispatcher.view(req.matches[1], &v)) return no_video(res, req.matches[1]);
    const std::string variant =
        req.has_param("variant") ? req.get_param_value("variant") : std::string("video");
    if (variant != "video") {
      return send_error(res, 400,
                        "variant '" + variant.substr(0, 32) +
                            "' is not available: paradit keeps the MP4 only (variant=video)",
                        "variant", "unsupported_value");
    }
    if (v.status != JobStatus::kSucceeded) {
      return send_error(
          res, v.status == JobStatus::kQueued || v.status == JobStatus::kRunning ? 409 : 400,
          "video '" + v.id + "' is " + status_name(v.status) +
              ": its content exists once it has completed",
          "video_id", "video_not_ready");
    }
    const std::optional<StoredFile> f = v.files.empty() ? std::nullopt : files.get(v.files.front());
    if (!f) {
      return send_error(res, 404,
                        "the content of video '" + v.id + "' has expired (--result_ttl " +
                            std::to_string(static_cast<int64_t>(opt.result_ttl)) + " s)",
                        "video_id", "expired");
    }
    res.set_header("Content-Disposition", "attachment; filename=\"" + f->filename + "\"");
    res.set_content(*f->bytes, f->content_type);
  });
  http.Delete(video_id, [&](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    if (!dispatcher.forget(id)) return no_video(res, id);
    send_json(res, 200, {{"id", id}, {"object", "video.deleted"}, {"deleted", true}});
  });

  // ---- stored results
  const std::string file_id = R"(/v1/files/(file-[0-9a-f]{16}))";
  auto no_file = [&](httplib::Response& res, const std::string& id) {
    send_error(res, 404,
               "no file '" + id + "' (results are kept " +
                   std::to_string(static_cast<int64_t>(opt.result_ttl)) + " s, --result_ttl)",
               "file_id", "not_found");
  };
  http.Get(file_id, [&](const httplib::Request& req, httplib::Response& res) {
    const std::optional<StoredFile> f = files.get(req.matches[1]);
    if (!f) return no_file(res, req.matches[1]);
    send_json(res, 200,
              {{"id", f->id},
               {"object", "file"},
               {"bytes", f->bytes->size()},
               {"created_at", static_cast<int64_t>(f->created)},
               {"expires_at", static_cast<int64_t>(f->expires)},
               {"filename", f->filename},
               {"purpose", "output"},
               {"content_type", f->content_type}});
  });
  http.Get(file_id + "/content", [&](const httplib::Request& req, httplib::Response& res) {
    const std::optional<StoredFile> f = files.get(req.matches[1]);
    if (!f) return no_file(res, req.matches[1]);
    res.set_content(*f->bytes, f->content_type);
  });
  http.Delete(file_id, [&](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    if (!files.remove(id)) return no_file(res, id);
    send_json(res, 200, {{"id", id}, {"object", "file"}, {"deleted", true}});
  });

  // ---- operations
  http.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    const WorkerState w = workers.state();
    const char* status = dispatcher.closed()            ? "draining"
                         : w == WorkerState::kReady     ? "ok"
                         : w == WorkerState::kStarting  ? "starting"
                                                        : "recovering";
    send_json(res, 200,
              {{"status", status},
               {"model", model.id},
               {"pipeline", pipe->class_name()},
               {"groups", launch.groups},
               {"ranks_per_group", launch.group_size},
               {"pid", static_cast<int64_t>(::getpid())},
               {"state_dir", state.path().string()},
               {"workers", workers.status()}});
  });
  http.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    std::string text = dispatcher.metrics_text(workers.load_seconds());
    text +=
        "# HELP paradit_stored_files Results kept for download (url answers, videos).\n"
        "# TYPE paradit_stored_files gauge\n"
        "paradit_stored_files " +
        std::to_string(files.files()) +
        "\n"
        "# HELP paradit_stored_bytes Bytes of the results kept for download.\n"
        "# TYPE paradit_stored_bytes gauge\n"
        "paradit_stored_bytes " +
        std::to_string(files.bytes()) + "\n";
    text += workers.metrics_text();
    res.set_content(text, "text/plain; version=0.0.4");
  });

  // An API key, when set, guards the /v1 API (not /health and /metrics).
  if (!opt.api_key.empty()) {
    http.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
      if (req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
      if (req.get_header_value("Authorization") == "Bearer " + opt.api_key) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      send_error(res, 401, "missing or wrong API key (Authorization: Bearer KEY)", "",
                 "invalid_api_key");
      return httplib::Server::HandlerResponse::Handled;
    });
  }
  // Answers httplib makes itself (404 unknown path, 413 body too large, 400 bad HTTP) get the
  // same JSON error shape.
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message = "HTTP error " + std::to_string(res.status);
        if (res.status == 404) {
          message =
              "not found: the API is /v1/images/generations, /v1/models, /v1/videos, "
              "/v1/files/{id}/content, /v1/jobs, /health, /metrics";
        }
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

  port = opt.port == 0 ? http.bind_to_any_port(opt.host)
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
               "paradit serve: model '%s' (%s from %s; workers ready in %.2f s), %d group(s) of "
               "%d rank(s), queue %zu, timeout %g s, max_attempts %d, state %s; limits: "
               "max_pixels %lld (default size %s), max_steps %d, max_n %d%s\n",
               model.id.c_str(), pipe->class_name().c_str(), pipe->root().string().c_str(),
               load_seconds, launch.groups, launch.group_size, opt.queue_size,
               opt.request_timeout, opt.max_attempts, state.path().c_str(),
               static_cast<long long>(limits.max_pixels), model.default_size.c_str(),
               limits.max_steps, limits.max_n,
               video ? (", max_frames " + std::to_string(limits.max_frames)).c_str() : "");

  const timespec tick{0, 200'000'000};
  int signo = -1;
  while (signo < 0 && listening) {
    signo = sigtimedwait(&stop_signals, nullptr, &tick);
    dispatcher.expire_waiting();  // queued jobs time out even while no worker job is up
  }

  // Drain: refuse new jobs, let the accepted ones finish (their clients are waiting), then stop.
  dispatcher.close();
  std::fprintf(stderr, "paradit serve: %s, draining\n",
               signo == SIGINT    ? "SIGINT"
               : signo == SIGTERM ? "SIGTERM"
                                  : "listener stopped");
  bool cancelled = false;
  while (!dispatcher.idle()) {
    dispatcher.expire_waiting();
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
  workers.stop(30);  // "stop": the worker job exits 0
  std::fprintf(stderr, "paradit serve: stopped\n");
  return 0;
}

}  // namespace paradit::server
