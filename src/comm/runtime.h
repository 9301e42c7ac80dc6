#pragma once
// The process-wide communication runtime: starts MPI when the process was launched by an MPI
// launcher (mpirun/mpiexec/srun), keeps the world communicator, and ends the whole job when one
// rank fails, so that no rank hangs waiting for a dead peer.
//
//   int main(int argc, char** argv) {
//     comm::init(&argc, &argv);
//     try { ... comm::world() ... } catch (const paradit::Error& e) {
//       comm::abort_job(2, std::string("paradit: error: ") + e.what());
//     }
//     comm::finalize();
//   }

#include <string_view>

#include "comm/communicator.h"

namespace paradit::comm {

// True when an MPI launcher started this process (Open MPI, PMI or PMIx variables are set).
bool launched_by_mpi();

// Starts the runtime and returns the world communicator. With MPI built in and either a launcher
// detected or PARADIT_MPI=1 in the environment: MPI_Init_thread(MPI_THREAD_MULTIPLE) and an
// MpiCommunicator over (a duplicate of) MPI_COMM_WORLD. Otherwise a LocalCommunicator, so a
// plain single-process run never loads MPI. Calling it again returns the same communicator.
// argc/argv may be null.
Communicator& init(int* argc = nullptr, char*** argv = nullptr);

// The world communicator; init() first if nobody did yet.
Communicator& world();

// True when init() started MPI (the world is an MpiCommunicator).
bool mpi_active();

// Frees the world communicator and ends MPI (if init started it). Communicators still alive
// afterwards must only be destroyed. Safe to call twice.
void finalize();

// Makes the whole job exit with `code`: flushes stdout/stderr, then MPI_Abort on the world when
// MPI runs (mpirun then stops every rank), else exits the process. `message` (if not empty) is
// printed to stderr as one line first.
[[noreturn]] void abort_job(int code);
[[noreturn]] void abort_job(int code, std::string_view message);

}  // namespace paradit::comm
