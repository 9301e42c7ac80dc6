#include "comm/watchdog.h"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "comm/runtime.h"

namespace paradit::comm {

namespace {

using Clock = std::chrono::steady_clock;

struct ActiveWait {
  const char* op;
  std::shared_ptr<const GroupInfo> group;
  Clock::time_point since;
  bool idle;  // opened inside an IdleScope: no deadline
};

thread_local int t_idle_depth = 0;

std::atomic<double> g_timeout{kDefaultCollectiveTimeout};

std::mutex g_mutex;  // the waits, the sources and the hook
std::map<uint64_t, ActiveWait> g_waits;
std::map<uint64_t, PendingSource> g_sources;
uint64_t g_next_id = 1;
std::function<void(const std::string&)> g_hook;

// The watchdog thread.
std::mutex g_thread_mutex;
std::condition_variable g_wake;
bool g_stop = false;
std::thread g_thread;
std::unique_ptr<detail::Prober> g_prober;

constexpr auto kPoll = std::chrono::milliseconds(200);
constexpr double kAskSeconds = 3.0;  // how long the expiring rank waits for its peers' answers

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string fixed1(double v) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(1);
  s << v;
  return s.str();
}

// The oldest wait or pending operation of this process (with_idle: idle waits count too).
std::optional<PendingOp> oldest(bool with_idle) {
  std::vector<PendingSource> sources;
  std::optional<PendingOp> best;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& [id, w] : g_waits) {
      if (w.idle && !with_idle) continue;
      if (!best || w.since < best->since) best = PendingOp{w.op, w.group, w.since};
    }
    for (const auto& [id, s] : g_sources) sources.push_back(s);
  }
  for (const PendingSource& s : sources) {
    std::optional<PendingOp> p = s();
    if (p && (!best || p->since < best->since)) best = std::move(p);
  }
  return best;
}

[[noreturn]] void expire(const PendingOp& w, double timeout) {
  std::ostringstream line;
  const int me = g_prober->rank();
  line << "paradit: error: rank " << me << ": " << w.op << " on group "
       << (w.group ? w.group->str() : std::string("?")) << " has waited "
       << fixed1(seconds_since(w.since)) << " s for its peers, past --collective_timeout "
       << timeout;
  const auto answers = g_prober->ask_all(kAskSeconds);
  std::vector<int> silent;
  std::ostringstream peers;
  for (const auto& [rank, answer] : answers) {
    if (!answer) {
      silent.push_back(rank);
      continue;
    }
    const bool in_group =
        w.group && std::find(w.group->world_ranks.begin(), w.group->world_ranks.end(), rank) !=
                       w.group->world_ranks.end();
    if (in_group) peers << "; rank " << rank << " is " << *answer;
  }
  if (!silent.empty()) {
    line << "; no answer from rank";
    if (silent.size() > 1) line << "s";
    for (size_t i = 0; i < silent.size(); ++i) line << (i ? "," : " ") << silent[i];
    line << " (stopped, dead or hung)";
  } else {
    line << "; every rank answered (a peer is far behind or waits in another operation)";
  }
  line << peers.str() << "; ending the job";
  const std::string text = line.str();
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
  std::function<void(const std::string&)> hook;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    hook = g_hook;
  }
  if (hook) {
    try {
      hook(text);
    } catch (...) {
      // the job ends anyway
    }
  }
  abort_job(kTimeoutExitCode);
}

void run_watchdog() {
  std::unique_lock<std::mutex> lock(g_thread_mutex);
  while (!g_stop) {
    g_wake.wait_for(lock, kPoll, [] { return g_stop; });
    if (g_stop) break;
    lock.unlock();
    g_prober->serve();
    const double timeout = g_timeout.load();
    if (timeout > 0) {
      const std::optional<PendingOp> w = oldest(false);
      if (w && seconds_since(w->since) > timeout) expire(*w, timeout);
    }
    lock.lock();
  }
}

}  // namespace

std::string GroupInfo::str() const {
  std::string s = "'" + label + "' (world rank";
  if (world_ranks.size() != 1) s += "s";
  for (size_t i = 0; i < world_ranks.size(); ++i) {
    s += i ? "," : " ";
    s += std::to_string(world_ranks[i]);
  }
  return s + ")";
}

void set_collective_timeout(double seconds) { g_timeout.store(seconds > 0 ? seconds : 0.0); }
double collective_timeout() { return g_timeout.load(); }

void set_watchdog_hook(std::function<void(const std::string&)> hook) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_hook = std::move(hook);
}

WaitScope::WaitScope(const char* op, std::shared_ptr<const GroupInfo> group) {
  std::lock_guard<std::mutex> lock(g_mutex);
  id_ = g_next_id++;
  g_waits.emplace(id_, ActiveWait{op, std::move(group), Clock::now(), t_idle_depth > 0});
}

WaitScope::~WaitScope() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_waits.erase(id_);
}

IdleScope::IdleScope() { ++t_idle_depth; }
IdleScope::~IdleScope() { --t_idle_depth; }

uint64_t add_pending_source(PendingSource source) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const uint64_t id = g_next_id++;
  g_sources.emplace(id, std::move(source));
  return id;
}

void remove_pending_source(uint64_t id) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_sources.erase(id);
}

std::string wait_status() {
  const std::optional<PendingOp> w = oldest(true);
  if (!w) return "not waiting on a peer";
  return "in " + w->op + " on " + (w->group ? w->group->str() : std::string("?")) + " for " +
         fixed1(seconds_since(w->since)) + " s";
}

namespace detail {

void start_watchdog(std::unique_ptr<Prober> prober) {
  std::lock_guard<std::mutex> lock(g_thread_mutex);
  if (g_thread.joinable()) return;
  g_prober = std::move(prober);
  g_stop = false;
  g_thread = std::thread(run_watchdog);
}

void stop_watchdog() {
  {
    std::lock_guard<std::mutex> lock(g_thread_mutex);
    if (!g_thread.joinable()) return;
    g_stop = true;
  }
  g_wake.notify_all();
  g_thread.join();
  std::lock_guard<std::mutex> lock(g_thread_mutex);
  g_prober.reset();
}

}  // namespace detail

}  // namespace paradit::comm
