#pragma once
// The worker job of `paradit serve` (`paradit worker`, an MPI job): the world cut into
// --data_parallel_degree groups, each a replica of the model that runs one job at a time exactly
// as `paradit generate` runs it (a ParallelRuntime over the group's communicator with dp = 1 and
// the other degrees, so Ulysses, ring, CFG parallel and the parallel VAE work inside a group).
// The mesh puts dp outermost, so a group is a run of contiguous ranks; its first rank is its
// leader.
//
// Rank 0 (leader of group 0) talks to the front end (server/worker.h) and has one executor per
// group. Jobs and answers travel as point-to-point messages on a communicator of their own:
//   rank 0 → every rank of group g   kJob (the request as JSON), or kStop when the job ends
//   leader of g → rank 0              kProgress after each step (with the step's previews, if
//                                     any), then one of kDone (the image / MP4 files), kFailed
//                                     (the error) or kStopped (after a cancel)
//   rank 0 → leader of g              exactly one per job: kCancel (stop at the next step) or,
//                                     when the job ended without one, kAck
// Inside a group of more than one rank the leader decides at each step boundary whether the job
// goes on and broadcasts it, so every rank of the group leaves generate() at the same step.
//
// Threads: comm::init runs MPI at MPI_THREAD_MULTIPLE. On rank 0 each group's runner thread
// talks to its own group (group 0's also runs generate() for its share). On the other ranks only
// the main thread calls MPI. Waits poll with short sleeps (Open MPI's blocking waits spin a core,
// and idle ranks must leave the cores to busy ones). One job at a time per group: the Pipeline of
// a rank is never used by two threads at once.
//
// Failure: a job that throws in a one-rank group fails alone (the client gets a 500). An
// exception on a rank of a larger group may leave its peers inside a collective, so it ends the
// whole worker job (comm::abort_job with one line naming the rank, group and error), as does a
// rank that dies (mpirun ends the job); the front end then restarts the worker job and retries
// the jobs that were running (server/supervisor.h).

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "parallel/config.h"
#include "server/executor.h"

namespace paradit::pipelines {
class Pipeline;
}

namespace paradit::server {

class Cluster {
 public:
  // Collective over `world` (which must outlive the cluster). `config`: the parallel flags; dp is
  // the number of groups and the product of the degrees must be the world size (Error naming the
  // degrees otherwise).
  Cluster(const comm::Communicator& world, const parallel::ParallelConfig& config,
          core::Device device = core::Device::CPU);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  int groups() const { return groups_; }
  int group() const { return group_; }
  int group_size() const { return group_size_; }
  bool is_rank0() const { return world_.rank() == 0; }
  // The runtime for this rank's pipeline (set_runtime): null when the world is one process.
  const parallel::ParallelRuntime* runtime() const { return runtime_.get(); }

  // Rank 0: one executor per group; executor g runs its jobs on group g. `pipe` (this rank's,
  // with runtime() set) must outlive them.
  std::vector<std::unique_ptr<Executor>> executors(pipelines::Pipeline& pipe);
  // Every other rank: runs the jobs rank 0 sends until it sends kStop.
  void follow(pipelines::Pipeline& pipe);
  // Rank 0, once no job runs: every other rank returns from follow().
  void stop_followers();

  // The job on this rank's group (every rank of the group calls it with the same request):
  // the image (or MP4) files on the leader, nothing elsewhere. `leader_hook` runs on the leader
  // after each step; when it throws, every rank leaves at that step and this throws Stopped{that
  // exception}.
  struct Stopped {
    std::exception_ptr why;
  };
  std::vector<std::string> run_in_group(pipelines::Pipeline& pipe, const ImageRequest& request,
                                        const StepHook& leader_hook);
  // Ends the whole job: a rank of a group with more than one rank failed.
  [[noreturn]] void fail_group(const std::string& what) const;

  // Fault injection for the recovery tests (`paradit serve --fault_crash_prompt TEXT`): the last
  // rank of the group that runs a request whose prompt contains `text` dies of SIGSEGV after its
  // first denoising step. Empty: off.
  void set_fault_crash_prompt(std::string text) { fault_crash_prompt_ = std::move(text); }

 private:
  void lead_remote_job(pipelines::Pipeline& pipe, const ImageRequest& request);

  const comm::Communicator& world_;
  int groups_ = 1;
  int group_size_ = 1;
  int group_ = 0;
  int group_rank_ = 0;
  std::unique_ptr<comm::Communicator> control_;  // job / report messages (world ranks)
  std::unique_ptr<comm::Communicator> group_comm_;
  std::unique_ptr<parallel::ParallelRuntime> runtime_;
  std::string fault_crash_prompt_;
};

}  // namespace paradit::server
