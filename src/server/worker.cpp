#include "server/worker.h"

#include <ifaddrs.h>
#include <netdb.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "comm/runtime.h"
#include "core/error.h"
#include "io/diffusers.h"
#include "pipelines/pipeline.h"
#include "server/cluster.h"
#include "server/executor.h"
#include "server/worker_protocol.h"

namespace paradit::server {

namespace {

using Clock = std::chrono::steady_clock;

// Ends this process when its launcher dies (the parent changes: mpirun, orted or the front end
// is gone), so no rank is left behind holding memory or a GPU. Checked every 250 ms.
void watch_parent(int rank) {
  const pid_t parent = ::getppid();
  if (parent <= 1) return;  // started by init: no launcher to watch
  std::thread([parent, rank] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      if (::getppid() != parent) {
        std::fprintf(stderr, "paradit worker: rank %d: its launcher (pid %d) is gone; exiting\n",
                     rank, static_cast<int>(parent));
        std::fflush(stderr);
        ::_exit(3);
      }
    }
  }).detach();
}

// Ends the whole worker job; if MPI_Abort itself hangs (its launcher is gone too), the process
// exits after a few seconds anyway.
[[noreturn]] void end_job(int code, const std::string& line) {
  std::thread([code] {
    std::this_thread::sleep_for(std::chrono::seconds(10));
    ::_exit(code);
  }).detach();
  comm::abort_job(code, line);
}

// This rank as the hello lists it: host name, pid, and the host's addresses (so the front end
// can match a hostfile entry written as an address).
Json identity(int rank) {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  Json addrs = Json::array();
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) == 0) {
    for (ifaddrs* a = list; a != nullptr && addrs.size() < 16; a = a->ifa_next) {
      if (a->ifa_addr == nullptr) continue;
      const int family = a->ifa_addr->sa_family;
      if (family != AF_INET && family != AF_INET6) continue;
      char text[NI_MAXHOST];
      const socklen_t len =
          family == AF_INET ? sizeof(sockaddr_in) : static_cast<socklen_t>(sizeof(sockaddr_in6));
      if (::getnameinfo(a->ifa_addr, len, text, sizeof text, nullptr, 0, NI_NUMERICHOST) == 0) {
        addrs.push_back(text);
      }
    }
    ::freeifaddrs(list);
  }
  return {{"rank", rank}, {"host", host}, {"pid", static_cast<int64_t>(::getpid())},
          {"addrs", addrs}};
}

// Every rank's identity, on every rank (collective over `world`).
Json gather_identities(const comm::Communicator& world) {
  constexpr int64_t kBytes = 2048;
  std::string mine = identity(world.rank()).dump();
  if (mine.size() >= static_cast<size_t>(kBytes)) {
    Json j = identity(world.rank());
    j["addrs"] = Json::array();
    mine = j.dump();
  }
  core::Tensor buf = core::Tensor::empty({kBytes}, core::DType::U8);
  std::memset(buf.data<uint8_t>(), 0, kBytes);
  std::memcpy(buf.data<uint8_t>(), mine.data(), std::min<size_t>(mine.size(), kBytes - 1));
  if (world.size() == 1) return Json::array({Json::parse(mine)});
  const core::Tensor all = world.all_gather(buf, 0);
  Json ranks = Json::array();
  for (int r = 0; r < world.size(); ++r) {
    const char* p = reinterpret_cast<const char*>(all.data<uint8_t>() + r * kBytes);
    ranks.push_back(Json::parse(std::string(p, ::strnlen(p, kBytes)), nullptr, false));
  }
  return ranks;
}

// The socket to the front end; frames are written by several threads.
class Link {
 public:
  explicit Link(Socket socket) : socket_(std::move(socket)) {}
  void send(const Frame& f) {
    std::lock_guard<std::mutex> lock(mu_);
    write_frame(socket_.fd(), f);  // a failure shows on the reading side as the socket closing
  }
  int fd() const { return socket_.fd(); }

 private:
  Socket socket_;
  std::mutex mu_;
};

// Thrown by a step hook when the front end cancelled the job.
struct CancelledByFrontEnd {};

// One data-parallel group as rank 0 drives it: a thread that runs the group's jobs one at a time
// through the group's executor and answers the front end.
class GroupRunner {
 public:
  GroupRunner(int group, Executor& executor, Link& link)
      : group_(group), executor_(executor), link_(link), thread_([this] { loop(); }) {}
  ~GroupRunner() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  // False when the group is busy (the front end sends one job per group at a time).
  bool start(int64_t seq, const std::string& job, const ImageRequest& request) {
    std::lock_guard<std::mutex> lock(mu_);
    if (next_ || running_) return false;
    next_ = Next{seq, job, request};
    cancel_ = false;
    cv_.notify_all();
    return true;
  }
  void cancel(int64_t seq) {
    std::lock_guard<std::mutex> lock(mu_);
    if (seq == seq_) cancel_ = true;
  }

 private:
  struct Next {
    int64_t seq;
    std::string job;
    ImageRequest request;
  };

  Frame answer(const char* type) const {
    Frame f;
    f.meta = {{"type", type}, {"seq", seq_}, {"group", group_}};
    return f;
  }

  void loop() {
    for (;;) {
      Next job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return quit_ || next_.has_value(); });
        if (!next_) return;
        job = std::move(*next_);
        next_.reset();
        seq_ = job.seq;
        running_ = true;
      }
      Frame out;
      try {
        const StepHook hook = [&](const StepProgress& p) {
          Frame f = answer("progress");
          f.meta["step"] = p.step;
          f.meta["total"] = p.total;
          f.meta["seconds"] = p.seconds;
          f.data = pack_files(p.previews);
          link_.send(f);
          if (cancel_) throw CancelledByFrontEnd{};
        };
        const std::vector<std::string> files = executor_.run(job.request, hook);
        out = answer("done");
        out.data = pack_files(files);
      } catch (const CancelledByFrontEnd&) {
        out = answer("stopped");
      } catch (const std::exception& e) {
        out = answer("failed");
        out.meta["error"] = e.what();
      }
      {
        // Free before the answer goes: the front end sends the group's next job as soon as it
        // has it (this thread takes that job only after the send).
        std::lock_guard<std::mutex> lock(mu_);
        running_ = false;
      }
      link_.send(out);
    }
  }

  const int group_;
  Executor& executor_;
  Link& link_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Next> next_;
  int64_t seq_ = -1;
  std::atomic<bool> cancel_{false};
  bool running_ = false;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace

int run_worker(const WorkerOptions& opt) {
  signal(SIGPIPE, SIG_IGN);
  const comm::Communicator& world = comm::world();
  watch_parent(world.rank());
  PARADIT_CHECK(!opt.frontend.empty(), "--frontend: the front end's address is required");
  const Address frontend = parse_address(opt.frontend, "--frontend");

  const auto load_start = Clock::now();
  const std::filesystem::path model_dir =
      opt.model.empty() ? pipelines::default_model_dir() : std::filesystem::path(opt.model);
  std::unique_ptr<pipelines::Pipeline> pipe = pipelines::Pipeline::open(model_dir);
  PARADIT_CHECK(pipe->class_name() != "HunyuanVideoPipeline" ||
                    io::ModelFolder::open(model_dir.string()).has_component("text_encoder"),
                "--model ", model_dir.string(), ": ", pipe->class_name(),
                " needs precomputed prompt embeddings, which cannot be sent over HTTP");
  pipe->set_placement(opt.placement);
  pipe->set_keep_loaded(true);
  Cluster cluster(world, opt.parallel, opt.placement.device);  // collective
  cluster.set_fault_crash_prompt(opt.fault_crash_prompt);
  pipe->set_runtime(cluster.runtime());
  pipe->preload();
  const Json ranks = gather_identities(world);  // collective
  const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  if (!cluster.is_rank0()) {
    cluster.follow(*pipe);  // until rank 0 sends kStop
    return 0;
  }

  Link link(connect_to(frontend, opt.connect_timeout));
  Frame hello;
  hello.meta = {{"type", "hello"},
                {"protocol", kWorkerProtocol},
                {"token", opt.token},
                {"world", world.size()},
                {"groups", cluster.groups()},
                {"group_size", cluster.group_size()},
                {"pipeline", pipe->class_name()},
                {"load_seconds", load_seconds},
                {"ranks", ranks}};
  link.send(hello);
  std::fprintf(stderr,
               "paradit worker: %d rank(s) in %d group(s) ready (%s loaded in %.2f s); serving "
               "%s\n",
               world.size(), cluster.groups(), pipe->class_name().c_str(), load_seconds,
               frontend.text().c_str());

  std::vector<std::unique_ptr<Executor>> executors = cluster.executors(*pipe);
  std::vector<std::unique_ptr<GroupRunner>> runners;
  for (int g = 0; g < cluster.groups(); ++g) {
    runners.push_back(std::make_unique<GroupRunner>(g, *executors[static_cast<size_t>(g)], link));
  }
  for (;;) {
    Frame f;
    bool open = false;
    try {
      open = read_frame(link.fd(), &f);
    } catch (const Error& e) {
      end_job(3, std::string("paradit worker: ") + e.what() + "; ending the worker job");
    }
    if (!open) {
      end_job(3, "paradit worker: the front end closed its connection; ending the worker job");
    }
    const std::string type = f.type();
    if (type == "stop") break;
    const int group = f.meta.value("group", -1);
    const int64_t seq = f.meta.value("seq", int64_t{-1});
    if (group < 0 || group >= cluster.groups()) {
      end_job(3, "paradit worker: the front end sent group " + std::to_string(group) +
                     " of " + std::to_string(cluster.groups()) + "; ending the worker job");
    }
    GroupRunner& runner = *runners[static_cast<size_t>(group)];
    if (type == "run") {
      ImageRequest request;
      try {
        request = request_from_json(f.meta.at("request"));
      } catch (const std::exception& e) {
        Frame out;
        out.meta = {{"type", "failed"}, {"seq", seq}, {"group", group}, {"error", e.what()}};
        link.send(out);
        continue;
      }
      if (!runner.start(seq, f.meta.value("job", ""), request)) {
        Frame out;
        out.meta = {{"type", "failed"},
                    {"seq", seq},
                    {"group", group},
                    {"error", "group " + std::to_string(group) + " is busy"}};
        link.send(out);
      }
    } else if (type == "cancel") {
      runner.cancel(seq);
    }
  }
  runners.clear();  // the front end stops only when no job runs: each thread returns at once
  executors.clear();
  cluster.stop_followers();
  std::fprintf(stderr, "paradit worker: stopped by the front end\n");
  return 0;
}

}  // namespace paradit::server
