#include "server/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "pipelines/pipeline.h"

extern char** environ;

namespace paradit::server {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string this_host() {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  return host;
}

std::string signal_text(int signo) {
  const char* name = ::strsignal(signo);
  return "signal " + std::to_string(signo) + " (" + (name ? name : "unknown") + ")";
}

// The number after `key` in `line` (e.g. "rank 3"), or -1.
long number_after(const std::string& line, const std::string& key) {
  const size_t at = line.find(key);
  if (at == std::string::npos) return -1;
  size_t p = at + key.size();
  while (p < line.size() && line[p] == ' ') ++p;
  size_t end = p;
  while (end < line.size() && std::isdigit(static_cast<unsigned char>(line[end]))) ++end;
  return end > p ? std::stol(line.substr(p, end - p)) : -1;
}

std::string word_after(const std::string& line, const std::string& key) {
  const size_t at = line.find(key);
  if (at == std::string::npos) return {};
  size_t p = at + key.size();
  size_t end = line.find(' ', p);
  return line.substr(p, end == std::string::npos ? std::string::npos : end - p);
}

// Only the paradit worker processes this supervisor started may be signalled by pid.
bool is_our_worker(pid_t pid, const std::string& frontend) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return cmd.find(std::string("worker") + '\0') != std::string::npos &&
         cmd.find(frontend) != std::string::npos;
}

}  // namespace

const char* state_name(WorkerState s) {
  switch (s) {
    case WorkerState::kStarting: return "starting";
    case WorkerState::kReady: return "ready";
    case WorkerState::kRecovering: return "recovering";
    case WorkerState::kStopping: return "stopping";
    case WorkerState::kStopped: return "stopped";
  }
  return "unknown";
}

// ---------------------------------------------------------------- one launched worker job

// The launched process (mpirun, or the worker itself) and what it printed: every line goes to
// this process's stderr prefixed with the job and rank, and the last ones are kept to tell why
// it ended.
struct WorkerSupervisor::Job {
  uint64_t generation = 0;
  pid_t pid = -1;  // also the process group
  Clock::time_point launched;
  bool mpirun = false;
  bool exited = false;
  int wait_status = 0;

  int out = -1;  // read end of its stdout + stderr
  std::thread pump;
  std::atomic<bool> quit{false};
  std::atomic<bool> pumped{false};  // the pump read the end of the output
  std::mutex mu;
  std::map<int, std::string> last_line;  // by rank (tagged output), stderr and stdout
  std::deque<std::string> launcher_lines;  // untagged (mpirun's own), the latest 64

  ~Job() {
    quit = true;
    if (pump.joinable()) pump.join();
    if (out >= 0) ::close(out);
  }

  void take_line(const std::string& raw) {
    std::string line = raw;
    int rank = mpirun ? -1 : 0;
    bool err = true;  // one process: its stdout and stderr share the pipe
    // Open MPI's --tag-output: "[JOB,RANK]<stderr>:text" (or <stdout>).
    if (mpirun && line.size() > 4 && line[0] == '[') {
      const size_t close = line.find("]<");
      const size_t comma = line.find(',');
      const size_t colon = close == std::string::npos ? close : line.find(">:", close);
      if (close != std::string::npos && comma != std::string::npos && comma < close &&
          colon != std::string::npos) {
        const std::string r = line.substr(comma + 1, close - comma - 1);
        if (!r.empty() && r.find_first_not_of("0123456789") == std::string::npos) {
          rank = std::stoi(r);
          err = line.compare(close + 1, 8, "<stderr>") == 0;
          line = line.substr(colon + 2);
        }
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      if (rank >= 0) {
        if (!line.empty() && err) last_line[rank] = line;
      } else if (!line.empty() && line.find_first_not_of('-') != std::string::npos) {
        launcher_lines.push_back(line);
        if (launcher_lines.size() > 64) launcher_lines.pop_front();
      }
    }
    if (rank >= 0) {
      std::fprintf(stderr, "[worker job %llu, rank %d] %s\n",
                   static_cast<unsigned long long>(generation), rank, line.c_str());
    } else {
      std::fprintf(stderr, "[worker job %llu, mpirun] %s\n",
                   static_cast<unsigned long long>(generation), line.c_str());
    }
  }

  void pump_lines() {
    std::string pending;
    char buf[4096];
    for (;;) {
      pollfd p{out, POLLIN, 0};
      const int rc = ::poll(&p, 1, 100);
      if (rc < 0 && errno != EINTR) break;
      if (rc <= 0) {
        if (quit) break;
        continue;
      }
      const ssize_t n = ::read(out, buf, sizeof buf);
      if (n <= 0) break;  // every writer is gone
      pending.append(buf, static_cast<size_t>(n));
      for (size_t nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
        take_line(pending.substr(0, nl));
        pending.erase(0, nl + 1);
      }
      if (pending.size() > 65536) {  // a line without end: take it as it is
        take_line(pending);
        pending.clear();
      }
    }
    if (!pending.empty()) take_line(pending);
    pumped = true;
  }

  // Reaps the process if it has ended (no wait).
  bool poll_exit() {
    if (exited || pid <= 0) return true;
    if (::waitpid(pid, &wait_status, WNOHANG) == pid) exited = true;
    return exited;
  }
  // Waits up to `seconds` for the end.
  bool wait_exit(double seconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (!poll_exit() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return exited;
  }
  // SIGTERM to its process group, then SIGKILL after `grace` seconds.
  void terminate(double grace) {
    if (poll_exit()) return;
    ::kill(-pid, SIGTERM);
    if (wait_exit(grace)) return;
    ::kill(-pid, SIGKILL);
    wait_exit(10);
  }
  // Lets the pump read what is left (bounded: an orphan may hold the pipe open).
  void drain() {
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    while (pump.joinable() && !pumped && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    quit = true;
    if (pump.joinable()) pump.join();
  }
};

// ---------------------------------------------------------------- the executors

namespace {

class WorkerExecutor final : public Executor {
 public:
  WorkerExecutor(WorkerSupervisor& supervisor, const pipelines::Pipeline& pipe, int group)
      : supervisor_(supervisor), pipe_(pipe), group_(group) {}
  void check(const ImageRequest& request) const override { check_request(pipe_, request); }
  std::vector<std::string> run(const ImageRequest& request, const StepHook& on_step) override {
    return supervisor_.run(group_, request, on_step);
  }

 private:
  WorkerSupervisor& supervisor_;
  const pipelines::Pipeline& pipe_;
  const int group_;
};

}  // namespace

// ---------------------------------------------------------------- the supervisor

WorkerSupervisor::WorkerSupervisor(WorkerLaunch launch) : launch_(std::move(launch)) {
  PARADIT_CHECK(launch_.groups >= 1 && launch_.group_size >= 1, "serve: bad worker layout");
  slots_.resize(static_cast<size_t>(launch_.groups));
  if (!launch_.hostfile.empty()) hosts_ = read_hostfile(launch_.hostfile);
}

WorkerSupervisor::~WorkerSupervisor() {
  if (monitor_.joinable()) stop(10);
}

void WorkerSupervisor::on_availability(std::function<void(bool)> callback) {
  availability_ = std::move(callback);
}

std::vector<std::unique_ptr<Executor>> WorkerSupervisor::executors(
    const pipelines::Pipeline& pipe) {
  std::vector<std::unique_ptr<Executor>> out;
  for (int g = 0; g < launch_.groups; ++g) {
    out.push_back(std::make_unique<WorkerExecutor>(*this, pipe, g));
  }
  return out;
}

WorkerState WorkerSupervisor::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

void WorkerSupervisor::set_state(WorkerState state) {
  bool available = false;
  bool changed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed = (state_ == WorkerState::kReady) != (state == WorkerState::kReady);
    state_ = state;
    available = state == WorkerState::kReady;
  }
  cv_.notify_all();
  if (changed && availability_) availability_(available);
}

bool WorkerSupervisor::wait_stop(std::chrono::milliseconds duration) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, duration, [&] { return stop_requested_; });
}

void WorkerSupervisor::start() {
  listener_ = listen_on(launch_.listen);
  monitor_ = std::thread([this] { monitor(); });
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return state_ == WorkerState::kReady || !start_error_.empty(); });
  if (state_ == WorkerState::kReady) return;
  const std::string why = start_error_;
  lock.unlock();
  monitor_.join();
  fail("serve: the worker job did not start: ", why);
}

void WorkerSupervisor::stop(double seconds) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_requested_ && !monitor_.joinable()) return;
    stop_requested_ = true;
    stop_seconds_ = seconds;
  }
  cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
}

bool WorkerSupervisor::send(const Frame& frame, uint64_t generation) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (live_fd_ < 0 || generation != live_generation_) return false;
  return write_frame(live_fd_, frame);
}

std::vector<std::string> WorkerSupervisor::run(int group, const ImageRequest& request,
                                               const StepHook& on_step) {
  std::unique_lock<std::mutex> lock(mu_);
  if (state_ != WorkerState::kReady) {
    throw WorkerLost("the worker job is " + std::string(state_name(state_)), false);
  }
  Slot& slot = slots_[static_cast<size_t>(group)];
  slot = Slot{};
  slot.seq = ++next_seq_;
  const int64_t seq = slot.seq;
  const uint64_t generation = generation_;
  Frame run;
  run.meta = {{"type", "run"}, {"seq", seq}, {"group", group}, {"request", request_to_json(request)}};
  lock.unlock();
  send(run, generation);  // a failure shows as the connection closing: lost below
  lock.lock();
  std::exception_ptr stop;
  auto finish = [&] { slot.seq = -1; };
  for (;;) {
    cv_.wait(lock, [&] { return !slot.frames.empty() || slot.lost; });
    if (slot.frames.empty()) {  // lost
      finish();
      if (stop) std::rethrow_exception(stop);
      throw WorkerLost(slot.cause, slot.charged);
    }
    Frame f = std::move(slot.frames.front());
    slot.frames.erase(slot.frames.begin());
    const std::string type = f.type();
    if (type == "progress") {
      if (stop || !on_step) continue;
      StepProgress p;
      p.step = f.meta.value("step", 0);
      p.total = f.meta.value("total", 0);
      p.seconds = f.meta.value("seconds", 0.0);
      lock.unlock();
      try {
        p.previews = unpack_files(f.data);
        on_step(p);
      } catch (...) {
        // Cancelled or timed out: the group stops at its next step boundary.
        stop = std::current_exception();
        Frame cancel;
        cancel.meta = {{"type", "cancel"}, {"seq", seq}, {"group", group}};
        send(cancel, generation);
      }
      lock.lock();
      continue;
    }
    finish();
    if (stop) std::rethrow_exception(stop);
    if (type == "done") return unpack_files(f.data);
    if (type == "failed") fail(f.meta.value("error", std::string("the worker failed the job")));
    fail("serve: the worker job answered '", type, "' for a job nobody cancelled");
  }
}

void WorkerSupervisor::lose_runs(const std::string& cause, int blamed_group, bool charge) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t g = 0; g < slots_.size(); ++g) {
      Slot& s = slots_[g];
      if (s.seq < 0) continue;
      s.lost = true;
      s.cause = cause;
      s.charged = charge && (blamed_group < 0 || blamed_group == static_cast<int>(g));
    }
  }
  cv_.notify_all();
}

std::unique_ptr<WorkerSupervisor::Job> WorkerSupervisor::launch(uint64_t generation) {
  auto job = std::make_unique<Job>();
  job->generation = generation;
  job->mpirun = launch_.np > 1 || !launch_.hostfile.empty();

  // The hosts of this job: a host whose ranks failed twice is left out when the rest still fit.
  std::filesystem::path hostfile = launch_.hostfile;
  if (!hosts_.empty()) {
    const HostChoice choice = choose_hosts(hosts_, host_failures_, launch_.np);
    std::vector<std::string> used;
    for (const HostEntry& h : choice.hosts) used.push_back(h.name);
    if (!choice.left_out.empty()) {
      hostfile = launch_.state_dir / ("hostfile." + std::to_string(generation));
      write_hostfile(hostfile, choice.hosts);
      std::string names;
      for (const std::string& n : choice.left_out) names += (names.empty() ? "" : ", ") + n;
      std::fprintf(stderr,
                   "paradit serve: worker job %llu leaves out host(s) %s (their ranks failed %d "
                   "times); hostfile %s\n",
                   static_cast<unsigned long long>(generation), names.c_str(), 2,
                   hostfile.c_str());
    }
    std::lock_guard<std::mutex> lock(mu_);
    hosts_in_use_ = used;
    hosts_left_out_ = choice.left_out;
  }

  std::vector<std::string> args;
  if (job->mpirun) {
    args.push_back(launch_.mpirun.empty() ? "mpirun" : launch_.mpirun);
    args.insert(args.end(), {"-np", std::to_string(launch_.np), "--tag-output"});
    if (!hostfile.empty()) args.insert(args.end(), {"--hostfile", hostfile.string()});
    if (!launch_.token.empty()) args.insert(args.end(), {"-x", "PARADIT_WORKER_TOKEN"});
    args.insert(args.end(), launch_.mpirun_args.begin(), launch_.mpirun_args.end());
  }
  args.push_back(launch_.binary);
  args.insert(args.end(), {"worker", "--frontend", launch_.connect});
  args.insert(args.end(), launch_.worker_args.begin(), launch_.worker_args.end());

  // Everything exec needs is made before fork (the child of a threaded process may only make
  // async-signal-safe calls).
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "PARADIT_WORKER_TOKEN=", 21) != 0) env_storage.push_back(*e);
  }
  if (!launch_.token.empty()) env_storage.push_back("PARADIT_WORKER_TOKEN=" + launch_.token);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  int fds[2];
  PARADIT_CHECK(::pipe2(fds, O_CLOEXEC) == 0, "serve: pipe failed: ", std::strerror(errno));
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::string command;
  for (const std::string& a : args) command += (command.empty() ? "" : " ") + a;

  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    if (devnull >= 0) ::close(devnull);
    fail("serve: fork failed: ", std::strerror(errno));
  }
  if (pid == 0) {
    // A process group of its own: the terminal's Ctrl-C and the front end's signals are the
    // front end's to handle; it stops the workers itself after draining.
    ::setpgid(0, 0);
    // The front end dying (kill -9 included) ends it: mpirun takes SIGTERM as "stop the job".
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the front end blocks SIGINT/SIGTERM
    ::signal(SIGPIPE, SIG_DFL);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    // No descriptor of the front end (its HTTP port above all) may outlive it in the workers.
    if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
      for (int fd = 3; fd < 65536; ++fd) ::close(fd);
    }
    ::execvpe(argv[0], argv.data(), envp.data());
    const char msg[] = "paradit serve: cannot execute the worker launcher\n";
    [[maybe_unused]] ssize_t w = ::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: no race with a signal sent to the group at once
  ::close(fds[1]);
  if (devnull >= 0) ::close(devnull);
  job->pid = pid;
  job->out = fds[0];
  job->launched = Clock::now();
  Job* j = job.get();
  job->pump = std::thread([j] { j->pump_lines(); });
  {
    std::lock_guard<std::mutex> lock(mu_);
    launcher_pid_ = pid;
  }
  std::fprintf(stderr, "paradit serve: worker job %llu: %s (pid %d)\n",
               static_cast<unsigned long long>(generation), command.c_str(),
               static_cast<int>(pid));
  return job;
}

namespace {

struct Death {
  std::string text;
  int rank = -1;     // the failed rank when known
  std::string node;  // as mpirun named it
};

// Why a worker job ended: mpirun's report ("process rank R ... exited on signal S",
// "MPI_ABORT was invoked on rank R"), the launched process's own status, and the failed rank's
// last stderr line.
Death explain(const std::map<int, std::string>& last_line, const std::deque<std::string>& launcher,
              bool mpirun, bool exited, int wait_status, const Json& ranks) {
  Death d;
  std::string how;
  bool aborted = false;
  for (const std::string& line : launcher) {
    if (aborted && line.find("errorcode") != std::string::npos && how.find("code") == std::string::npos) {
      // "MPI_ABORT was invoked on rank R in communicator C\nwith errorcode E."
      how = "called MPI_Abort (error code " + std::to_string(number_after(line, "errorcode")) + ")";
    }
    if (line.find("process rank") != std::string::npos &&
        line.find("exited on signal") != std::string::npos) {
      d.rank = static_cast<int>(number_after(line, "process rank"));
      d.node = word_after(line, " on node ");
      const long signo = number_after(line, "exited on signal");
      if (signo > 0) how = "was killed by " + signal_text(static_cast<int>(signo));
    } else if (line.find("MPI_ABORT was invoked on rank") != std::string::npos && d.rank < 0) {
      d.rank = static_cast<int>(number_after(line, "MPI_ABORT was invoked on rank"));
      aborted = true;
      const long code = number_after(line, "errorcode");
      how = code >= 0 ? "called MPI_Abort (error code " + std::to_string(code) + ")"
                      : "called MPI_Abort";
    }
  }
  if (!mpirun) d.rank = 0;
  if (how.empty() && exited) {
    if (WIFSIGNALED(wait_status)) {
      how = (mpirun ? "ended: mpirun was killed by " : "was killed by ") +
            signal_text(WTERMSIG(wait_status));
    } else if (WIFEXITED(wait_status)) {
      how = (mpirun ? "ended: mpirun exited with code " : "exited with code ") +
            std::to_string(WEXITSTATUS(wait_status));
    }
  }
  if (how.empty()) how = "closed its connection to the front end";
  std::string who = "the worker job";
  if (d.rank >= 0) {
    who = "rank " + std::to_string(d.rank);
    for (const Json& r : ranks) {
      if (r.value("rank", -1) == d.rank) {
        who += " (pid " + std::to_string(r.value("pid", int64_t{0})) + " on host " +
               r.value("host", std::string("?")) + ")";
      }
    }
    if (d.node.empty()) {
      for (const Json& r : ranks) {
        if (r.value("rank", -1) == d.rank) d.node = r.value("host", std::string());
      }
    }
  }
  d.text = who + " " + how;
  // Its own last line; when nobody knows which rank failed, the last line of each rank that
  // printed one is evidence.
  if (d.rank >= 0) {
    const auto it = last_line.find(d.rank);
    d.text += it != last_line.end() ? "; its last stderr line: '" + it->second + "'"
                                    : "; it printed nothing";
  } else {
    for (const auto& [rank, line] : last_line) {
      d.text += "; rank " + std::to_string(rank) + "'s last stderr line: '" + line + "'";
    }
  }
  return d;
}

}  // namespace

void WorkerSupervisor::monitor() {
  int young_deaths = 0;  // deaths in a row of jobs that lived under 30 s
  bool ever_ready = false;
  Clock::time_point died_at;  // when the latest death was noticed
  std::unique_ptr<Job> job;
  for (;;) {
    uint64_t generation = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_requested_) break;
      generation = ++generation_;
    }
    const auto launched = Clock::now();
    std::string failure;
    try {
      if (!launch_.attach) job = launch(generation);
    } catch (const std::exception& e) {
      failure = e.what();
    }

    // ---- starting: wait for rank 0's hello
    Socket conn;
    Json hello;
    const auto deadline = launched + std::chrono::duration<double>(launch_.start_timeout);
    while (failure.empty()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_requested_) break;
      }
      if (job && job->poll_exit()) {
        job->drain();
        std::lock_guard<std::mutex> lock(job->mu);
        failure = explain(job->last_line, job->launcher_lines, job->mpirun, true,
                          job->wait_status, Json::array())
                      .text;
        break;
      }
      if (!launch_.attach && Clock::now() > deadline) {
        failure = "no hello within " + std::to_string(static_cast<int>(launch_.start_timeout)) +
                  " s of its launch (--worker_start_timeout)";
        break;
      }
      Socket c = accept_connection(listener_, 200);
      if (!c.valid()) continue;
      timeval tv{30, 0};  // a peer that connects must say hello at once
      ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      Frame f;
      std::string refused;
      try {
        if (!read_frame(c.fd(), &f) || f.type() != "hello") refused = "did not say hello";
      } catch (const std::exception& e) {
        refused = e.what();
      }
      const Json& m = f.meta;
      if (refused.empty() && m.value("protocol", 0) != kWorkerProtocol) {
        refused = "speaks protocol " + std::to_string(m.value("protocol", 0)) + ", not " +
                  std::to_string(kWorkerProtocol);
      } else if (refused.empty() && !launch_.token.empty() &&
                 m.value("token", std::string()) != launch_.token) {
        refused = "has the wrong token (PARADIT_WORKER_TOKEN)";
      } else if (refused.empty() && (m.value("groups", 0) != launch_.groups ||
                                     m.value("group_size", 0) != launch_.group_size)) {
        refused = "has " + std::to_string(m.value("groups", 0)) + " group(s) of " +
                  std::to_string(m.value("group_size", 0)) + " rank(s), expected " +
                  std::to_string(launch_.groups) + " of " + std::to_string(launch_.group_size) +
                  " (the parallel flags of serve and worker must agree)";
      } else if (refused.empty() && m.value("pipeline", std::string()) != launch_.pipeline) {
        refused = "serves " + m.value("pipeline", std::string("?")) + ", expected " +
                  launch_.pipeline + " (the same --model on both sides)";
      }
      if (refused.empty()) {
        timeval none{0, 0};
        ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
        conn = std::move(c);
        hello = m;
        break;
      }
      std::fprintf(stderr, "paradit serve: refused a worker connection: it %s\n",
                   refused.c_str());
      if (!launch_.attach && job) {
        failure = "its rank 0 " + refused;  // our own job is wrong: it will not get better
        break;
      }
    }

    if (!conn.valid()) {
      bool stopping = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        stopping = stop_requested_;
      }
      if (job) {
        job->terminate(3);
        job->drain();
      }
      job.reset();
      if (stopping) break;
      if (!ever_ready) {
        std::lock_guard<std::mutex> lock(mu_);
        start_error_ = failure;
        cv_.notify_all();
        return;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++failed_starts_;
        last_failure_ = "worker job " + std::to_string(generation) + " did not start: " + failure;
      }
      ++young_deaths;
      const int delay = std::min(30, 1 << std::min(young_deaths - 1, 5));
      std::fprintf(stderr, "paradit serve: worker job %llu did not start: %s; trying again in %d s\n",
                   static_cast<unsigned long long>(generation), failure.c_str(), delay);
      if (wait_stop(std::chrono::seconds(delay))) break;
      continue;
    }

    // ---- ready
    const double ready_seconds = seconds_since(launched);
    {
      std::lock_guard<std::mutex> w(write_mu_);
      live_fd_ = conn.fd();
      live_generation_ = generation;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ranks_ = hello.value("ranks", Json::array());
      last_ready_seconds_ = ready_seconds;
      if (!ever_ready) first_load_seconds_ = hello.value("load_seconds", 0.0);
    }
    if (ever_ready) {
      std::lock_guard<std::mutex> lock(mu_);
      last_recovery_seconds_ = seconds_since(died_at);
      std::fprintf(stderr,
                   "paradit serve: worker job %llu ready %.2f s after its launch (%.2f s after "
                   "the failure was noticed)\n",
                   static_cast<unsigned long long>(generation), ready_seconds,
                   last_recovery_seconds_);
    }
    ever_ready = true;
    set_state(WorkerState::kReady);
    const auto ready_at = Clock::now();

    // ---- ready: route the answers until the socket closes, the job ends, or stop()
    bool stopping = false;
    std::string broken;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stopping = stop_requested_;
      }
      if (stopping) break;
      // After the job ended, the answers it sent before are still read; then it is lost.
      const bool ended = job && job->poll_exit();
      pollfd p{conn.fd(), POLLIN, 0};
      if (::poll(&p, 1, ended ? 0 : 200) <= 0) {
        if (ended) break;
        continue;
      }
      Frame f;
      bool open = false;
      try {
        open = read_frame(conn.fd(), &f);
      } catch (const std::exception& e) {
        broken = e.what();
      }
      if (!open) break;
      const int g = f.meta.value("group", -1);
      const int64_t seq = f.meta.value("seq", int64_t{-1});
      if (g < 0 || g >= launch_.groups) continue;
      {
        std::lock_guard<std::mutex> lock(mu_);
        Slot& s = slots_[static_cast<size_t>(g)];
        if (s.seq != seq) continue;  // a run that already ended here
        s.frames.push_back(std::move(f));
      }
      cv_.notify_all();
    }

    if (stopping) {
      // ---- stopping: the dispatcher is idle; the worker job ends itself on "stop"
      set_state(WorkerState::kStopping);
      double grace = 30;
      {
        std::lock_guard<std::mutex> lock(mu_);
        grace = stop_seconds_;
      }
      Frame stop;
      stop.meta = {{"type", "stop"}};
      send(stop, generation);
      if (job) {
        if (!job->wait_exit(grace)) {
          std::fprintf(stderr, "paradit serve: worker job %llu still runs %g s after 'stop'; "
                       "terminating it\n", static_cast<unsigned long long>(generation), grace);
          job->terminate(5);
        }
        job->drain();
      } else {
        // Attached: wait for its rank 0 to close the connection.
        pollfd p{conn.fd(), POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(grace * 1000));
      }
      {
        std::lock_guard<std::mutex> w(write_mu_);
        live_fd_ = -1;
      }
      lose_runs("the worker job was stopped", -1, /*charge=*/false);  // none should run
      break;
    }

    // ---- the worker job died: find out how, fail the running runs, start it again
    died_at = Clock::now();
    set_state(WorkerState::kRecovering);
    {
      std::lock_guard<std::mutex> w(write_mu_);
      live_fd_ = -1;
      conn.shutdown();
    }
    conn = Socket();
    Death death;
    if (job) {
      if (!job->wait_exit(10)) {
        std::fprintf(stderr, "paradit serve: worker job %llu lost its rank 0 but runs on; "
                     "terminating it\n", static_cast<unsigned long long>(generation));
        job->terminate(3);
      }
      job->drain();
      Json ranks;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ranks = ranks_;
      }
      {
        std::lock_guard<std::mutex> lock(job->mu);
        death = explain(job->last_line, job->launcher_lines, job->mpirun, job->exited,
                        job->wait_status, ranks);
      }
      // Ranks on this host that outlived their launcher (they exit by themselves within a
      // moment: server/worker.h; this makes sure).
      const std::string me = this_host();
      for (const Json& r : ranks) {
        const pid_t pid = static_cast<pid_t>(r.value("pid", int64_t{0}));
        if (pid > 0 && r.value("host", std::string()) == me &&
            is_our_worker(pid, launch_.connect)) {
          ::kill(pid, SIGKILL);
        }
      }
    } else {
      death.text = "the worker job's rank 0 closed its connection (attached with --workers: the "
                   "front end waits for the job to be started again)";
    }
    if (!broken.empty()) death.text += " (after a malformed frame: " + broken + ")";
    job.reset();
    int blamed = -1;
    if (death.rank >= 0) blamed = death.rank / launch_.group_size;
    // The failed rank's host, for the hostfile.
    if (!hosts_.empty() && death.rank >= 0) {
      std::string host = death.node;
      std::vector<std::string> addrs;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const Json& r : ranks_) {
          if (r.value("rank", -1) != death.rank) continue;
          host = r.value("host", host);
          for (const Json& a : r.value("addrs", Json::array())) addrs.push_back(a.get<std::string>());
        }
      }
      int at = match_host(hosts_, host, addrs);
      if (at < 0 && !death.node.empty()) at = match_host(hosts_, death.node);
      if (at >= 0) ++host_failures_[hosts_[static_cast<size_t>(at)].name];
    }
    const bool young = seconds_since(ready_at) < 30;
    young_deaths = young ? young_deaths + 1 : 1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++restarts_;
      last_failure_ = "worker job " + std::to_string(generation) + ": " + death.text;
    }
    std::fprintf(stderr, "paradit serve: worker job %llu ended after %.1f s: %s; restarting it\n",
                 static_cast<unsigned long long>(generation), seconds_since(launched),
                 death.text.c_str());
    lose_runs(death.text, blamed);
    // A job that keeps dying young waits 1, 2, 4 … 30 s before the next start (the first
    // restart is at once).
    if (young_deaths >= 2 && !launch_.attach) {
      const int delay = std::min(30, 1 << std::min(young_deaths - 2, 5));
      std::fprintf(stderr, "paradit serve: the worker job died %d times in a row within 30 s of "
                   "its start; waiting %d s\n", young_deaths, delay);
      if (wait_stop(std::chrono::seconds(delay))) break;
    }
  }
  if (job) {
    job->terminate(3);
    job->drain();
  }
  set_state(WorkerState::kStopped);
}

double WorkerSupervisor::load_seconds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_load_seconds_;
}

Json WorkerSupervisor::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  Json ranks = Json::array();
  for (const Json& r : ranks_) {
    ranks.push_back({{"rank", r.value("rank", -1)},
                     {"host", r.value("host", std::string())},
                     {"pid", r.value("pid", int64_t{0})}});
  }
  Json j = {{"state", state_name(state_)},
            {"job", generation_},
            {"restarts", restarts_},
            {"ranks", ranks}};
  if (!launch_.attach) j["launcher_pid"] = static_cast<int64_t>(launcher_pid_);
  if (!last_failure_.empty()) j["last_failure"] = last_failure_;
  if (!hosts_.empty()) {
    j["hosts"] = hosts_in_use_;
    j["hosts_left_out"] = hosts_left_out_;
  }
  return j;
}

std::string WorkerSupervisor::metrics_text() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream os;
  os.precision(9);
  os << "# HELP paradit_worker_restarts_total Worker jobs started again after one died.\n"
        "# TYPE paradit_worker_restarts_total counter\n"
     << "paradit_worker_restarts_total " << restarts_ << "\n"
     << "# HELP paradit_worker_failed_starts_total Worker jobs that died before saying hello "
        "(after the first).\n"
        "# TYPE paradit_worker_failed_starts_total counter\n"
     << "paradit_worker_failed_starts_total " << failed_starts_ << "\n"
     << "# HELP paradit_worker_up 1 while the worker job runs jobs, 0 while it starts or "
        "recovers.\n"
        "# TYPE paradit_worker_up gauge\n"
     << "paradit_worker_up " << (state_ == WorkerState::kReady ? 1 : 0) << "\n"
     << "# HELP paradit_worker_recovery_seconds From noticing the latest death to the new job's "
        "hello.\n"
        "# TYPE paradit_worker_recovery_seconds gauge\n"
     << "paradit_worker_recovery_seconds " << last_recovery_seconds_ << "\n"
     << "# HELP paradit_worker_start_seconds From the latest launch to its hello.\n"
        "# TYPE paradit_worker_start_seconds gauge\n"
     << "paradit_worker_start_seconds " << last_ready_seconds_ << "\n";
  return os.str();
}

}  // namespace paradit::server
