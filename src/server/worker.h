#pragma once
// `paradit worker`: the generation side of `paradit serve`, an MPI job (or one plain process)
// that the front end starts itself (`paradit serve --np N`) or that srun/mpirun starts for it
// (`paradit serve --workers ADDRESS`). Every rank opens the model, keeps it loaded and joins the
// Cluster (server/cluster.h); rank 0 connects to the front end at `frontend`, says hello (the
// layout, and each rank's host and pid), then runs the jobs it is sent, one at a time per
// data-parallel group, answering over the same socket (server/worker_protocol.h).
//
// Lifetime: the job ends with exit code 0 when the front end sends "stop". When the front end
// goes away (its socket closes) rank 0 ends the whole job (MPI_Abort), and every rank exits when
// its launcher (mpirun, orted, or the front end itself for one process) dies, so a worker job
// never outlives its server holding CPUs, GPUs or memory.

#include <string>

#include "core/tensor.h"
#include "parallel/config.h"

namespace paradit::server {

struct WorkerOptions {
  std::string model;          // empty: the shipped default model
  core::Placement placement;  // resolved by the command line (--device / --dtype)
  parallel::ParallelConfig parallel;
  std::string frontend;  // where the front end listens (server/worker_protocol.h Address)
  // Sent in the hello; a front end with a token refuses workers without it (the environment's
  // PARADIT_WORKER_TOKEN, set by the front end that launches the job).
  std::string token;
  double connect_timeout = 60;      // seconds rank 0 keeps trying to reach the front end
  std::string fault_crash_prompt;   // tests only: Cluster::set_fault_crash_prompt
};

// Runs the worker job on this rank until the front end stops it (0). Error (exit 2) on bad
// options, a model that does not open, degrees whose product is not the number of processes, or
// a front end that cannot be reached.
int run_worker(const WorkerOptions& options);

}  // namespace paradit::server
