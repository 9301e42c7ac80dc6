#pragma once
// The collective watchdog: a deadline on every blocking wait for peers.
//
// Every call in which a transport blocks on its peers (an MPI collective, the wait on a send or
// a receive, a barrier, a group split) is marked as a wait of its group (WaitScope); a device
// transport (NCCL), whose operations run on the GPU while the host goes on, registers a source
// of pending operations instead (add_pending_source). When MPI runs a job of several processes,
// a watchdog thread looks at both about five times a second. A wait older than
// collective_timeout() ends the job:
//   1. it asks every other rank what it is doing, over a private duplicate of the world (each
//      rank's watchdog thread answers within its poll period, whatever its main thread is
//      blocked in; a stopped or dead process does not answer);
//   2. prints one line: the operation, the group (its label and world ranks), how long it
//      waited, the ranks that did not answer and what the group's other ranks are waiting in;
//   3. runs the hook (a server answers the requests it holds), then ends the job with exit code
//      kTimeoutExitCode (MPI_Abort: mpirun stops every rank, a stopped one too).
// A stopped or dead peer thus never leaves a survivor spinning forever. A timeout of 0 turns the
// deadline off (the thread still answers its peers' questions).

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace paradit::comm {

class Communicator;

// The exit code of a job ended by the watchdog (as timeout(1) uses).
constexpr int kTimeoutExitCode = 124;
constexpr double kDefaultCollectiveTimeout = 600.0;

// Seconds a wait on peers may last (0: no deadline). Default kDefaultCollectiveTimeout.
void set_collective_timeout(double seconds);
double collective_timeout();

// Runs on the watchdog thread with the line it printed, before the job ends. One hook; a later
// call replaces it (an empty function removes it).
void set_watchdog_hook(std::function<void(const std::string&)> hook);

// A group as messages name it: its label ("world", "ulysses", …) and its world ranks in order.
struct GroupInfo {
  std::string label = "world";
  std::vector<int> world_ranks;
  std::string str() const;  // "'ulysses' (world ranks 0,1)"
};

// Marks a blocking wait of the calling thread on the peers of `group` for its lifetime.
class WaitScope {
 public:
  WaitScope(const char* op, std::shared_ptr<const GroupInfo> group);
  ~WaitScope();
  WaitScope(const WaitScope&) = delete;
  WaitScope& operator=(const WaitScope&) = delete;

 private:
  uint64_t id_;
};

// Waits that may last as long as they like: a server's idle workers waiting for the next job.
// WaitScopes the calling thread opens while one lives have no deadline (they are still reported
// to peers that ask).
class IdleScope {
 public:
  IdleScope();
  ~IdleScope();
  IdleScope(const IdleScope&) = delete;
  IdleScope& operator=(const IdleScope&) = delete;
};

// An operation a device transport enqueued that has not completed yet.
struct PendingOp {
  std::string op;
  std::shared_ptr<const GroupInfo> group;
  std::chrono::steady_clock::time_point since;
};
// A device transport's view of its oldest unfinished operation (called on the watchdog thread;
// must not block). Returns an id to remove it with.
using PendingSource = std::function<std::optional<PendingOp>()>;
uint64_t add_pending_source(PendingSource source);
void remove_pending_source(uint64_t id);

// What this rank is waiting in, for a peer's question: "in all_reduce on 'world' (world ranks
// 0,1) for 3.2 s", or "not waiting on a peer".
std::string wait_status();

namespace detail {
// How the watchdog reaches the other ranks (MPI: mpi_watchdog.cpp).
class Prober {
 public:
  virtual ~Prober() = default;
  // Answers the questions other ranks sent (never blocks).
  virtual void serve() = 0;
  // Asks every other rank; returns (world rank, its answer or nullopt when it gave none within
  // `seconds`), answering the others' questions meanwhile.
  virtual std::vector<std::pair<int, std::optional<std::string>>> ask_all(double seconds) = 0;
  virtual int rank() const = 0;
};
// Starts the watchdog thread (idempotent); stop_watchdog joins it (and frees the prober).
void start_watchdog(std::unique_ptr<Prober> prober);
void stop_watchdog();
}  // namespace detail

}  // namespace paradit::comm
