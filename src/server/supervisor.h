#pragma once
// The front end's side of the worker job (`paradit worker`, server/worker.h): starts it, watches
// it, restarts it, and runs the dispatcher's jobs on it.
//
// Processes: the front end (this process: HTTP, queue, state database) listens on a socket; it
// starts the worker job as `mpirun -np N --tag-output [--hostfile H] MPIRUN_ARGS paradit worker
// --frontend ADDRESS ...` (one process without mpirun when N is 1 and there is no hostfile) in a
// process group of its own, so a terminal's Ctrl-C or the front end's SIGTERM does not reach it
// first. With --workers the job is started by somebody else (srun, mpirun) and connects itself.
// Rank 0 connects, says hello (checked: token, layout, pipeline), and from then on runs the jobs
// sent to it (server/worker_protocol.h).
//
// States:   starting ──hello──▶ ready ──socket closed / job ended──▶ recovering ──hello──▶ ready
//           (first start fails: start() throws)        │ (restart, with backoff when it keeps
//                                                      │  dying young; --workers: wait for a new
//           ready/recovering ──stop()──▶ stopping ──▶ stopped            connection)
// On a death the supervisor waits for mpirun to end (killing what is left after 10 s), reads the
// cause from mpirun's report and the ranks' tagged stderr (which rank, which signal or exit code,
// that rank's last stderr line), fails each running run with WorkerLost (charged to the job when
// the failed rank belongs to its group, or when the rank is unknown), counts the restart, and
// with a hostfile counts the failure against the rank's host: a host with 2 failures is left out
// of the next job when the other hosts have slots for every rank (server/hostfile.h).

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/executor.h"
#include "server/hostfile.h"
#include "server/worker_protocol.h"

namespace paradit::pipelines {
class Pipeline;
}

namespace paradit::server {

struct WorkerLaunch {
  // Started here (attach == false).
  int np = 1;
  std::string mpirun;                    // the launcher; empty: "mpirun" on PATH
  std::vector<std::string> mpirun_args;  // more launcher options (e.g. --oversubscribe)
  std::filesystem::path hostfile;        // empty: none
  std::string binary;                    // the paradit executable
  std::vector<std::string> worker_args;  // `paradit worker`'s flags but --frontend
  // Both.
  bool attach = false;  // --workers: somebody else starts the worker job
  Address listen;       // where the front end listens for rank 0
  std::string connect;  // what the worker job is told (--frontend)
  std::string token;    // the hello must carry it (empty: any)
  std::filesystem::path state_dir;  // holds the hostfiles written for restarts
  double start_timeout = 600;       // seconds from launch to hello
  int groups = 1;                   // the layout the worker job must have
  int group_size = 1;
  std::string pipeline;  // the class it must have loaded
};

enum class WorkerState { kStarting, kReady, kRecovering, kStopping, kStopped };
const char* state_name(WorkerState state);

class WorkerSupervisor {
 public:
  explicit WorkerSupervisor(WorkerLaunch launch);
  ~WorkerSupervisor();  // stop(10) when not stopped yet
  WorkerSupervisor(const WorkerSupervisor&) = delete;
  WorkerSupervisor& operator=(const WorkerSupervisor&) = delete;

  // Called (outside any lock of the supervisor) when jobs may start and when they may not.
  void on_availability(std::function<void(bool)> callback);
  // Starts the worker job and returns once it is ready. Error with the cause (its last stderr
  // line) when it does not get there: a bad flag, a model that does not load, a timeout.
  void start();
  // One executor per data-parallel group; `pipe` (opened here, no weights) checks requests.
  std::vector<std::unique_ptr<Executor>> executors(const pipelines::Pipeline& pipe);
  // Ends the worker job: "stop" (it exits 0), or signals after `seconds`. Call when no job runs.
  void stop(double seconds);

  WorkerState state() const;
  Json status() const;  // for GET /health
  double load_seconds() const;  // the first worker job's model load
  std::string metrics_text() const;

  // An executor's run on group `group` (WorkerLost when the worker job dies meanwhile).
  std::vector<std::string> run(int group, const ImageRequest& request, const StepHook& on_step);

 private:
  struct Slot {
    int64_t seq = -1;  // the run in flight; -1: none
    std::vector<Frame> frames;
    bool lost = false;
    bool charged = false;
    std::string cause;
  };
  struct Job;  // one launched worker job (process, log)

  void monitor();
  std::unique_ptr<Job> launch(uint64_t generation);
  bool send(const Frame& frame, uint64_t generation);
  // Ends every run in flight with WorkerLost(cause); charged when `charge` and its group is
  // `blamed_group` (-1: unknown, every group).
  void lose_runs(const std::string& cause, int blamed_group, bool charge = true);
  void set_state(WorkerState state);
  bool wait_stop(std::chrono::milliseconds duration);  // true when stop() was called

  const WorkerLaunch launch_;
  std::vector<HostEntry> hosts_;  // the hostfile's
  Socket listener_;
  std::function<void(bool)> availability_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  WorkerState state_ = WorkerState::kStarting;
  bool stop_requested_ = false;
  double stop_seconds_ = 30;
  std::string start_error_;
  std::vector<Slot> slots_;
  int64_t next_seq_ = 0;
  uint64_t generation_ = 0;  // worker jobs launched
  Json ranks_ = Json::array();
  pid_t launcher_pid_ = -1;
  std::vector<std::string> hosts_in_use_;
  std::vector<std::string> hosts_left_out_;
  std::map<std::string, int> host_failures_;
  uint64_t restarts_ = 0;
  uint64_t failed_starts_ = 0;
  std::string last_failure_;
  double last_ready_seconds_ = 0;    // launch → hello of the latest job
  double last_recovery_seconds_ = 0;  // death noticed → ready again
  double first_load_seconds_ = 0;

  std::mutex write_mu_;  // one frame at a time; guards live_fd_ and live_generation_
  int live_fd_ = -1;
  uint64_t live_generation_ = 0;

  std::thread monitor_;
};

}  // namespace paradit::server
