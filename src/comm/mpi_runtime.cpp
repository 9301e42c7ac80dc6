// MPI start/stop/abort behind comm::init/finalize/abort_job (runtime.cpp).
#include <mpi.h>

#include <cstdio>

#include "comm/mpi_communicator.h"
#include "comm/watchdog.h"

namespace paradit::comm::detail {

std::unique_ptr<Prober> make_mpi_prober();  // mpi_watchdog.cpp

namespace {
bool g_started_here = false;  // finalize only what we initialized
}

std::unique_ptr<Communicator> mpi_start(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    // THREAD_MULTIPLE: OpenMP threads and a communication thread may call MPI concurrently.
    const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    PARADIT_CHECK(rc == MPI_SUCCESS, "MPI_Init_thread failed with code ", rc);
    PARADIT_CHECK(provided >= MPI_THREAD_MULTIPLE,
                  "MPI_Init_thread: MPI_THREAD_MULTIPLE requested, the MPI library provides level ",
                  provided);
    g_started_here = true;
  }
  std::unique_ptr<MpiCommunicator> world = MpiCommunicator::world();
  // Several processes: the watchdog puts a deadline on every wait for a peer (watchdog.h).
  if (world->size() > 1) start_watchdog(make_mpi_prober());
  return world;
}

void mpi_stop() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  stop_watchdog();
  if (g_started_here && !finalized) MPI_Finalize();
  g_started_here = false;
}

void mpi_abort(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace paradit::comm::detail
