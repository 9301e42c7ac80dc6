#include "comm/runtime.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "comm/local_communicator.h"

namespace paradit::comm {

#ifdef PARADIT_WITH_MPI
// In mpi_runtime.cpp.
namespace detail {
std::unique_ptr<Communicator> mpi_start(int* argc, char*** argv);
void mpi_stop();
void mpi_abort(int code);
}  // namespace detail
#endif

namespace {
std::mutex g_mutex;
std::unique_ptr<Communicator> g_world;
bool g_mpi = false;

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0';
}
}  // namespace

bool launched_by_mpi() {
  return env_set("OMPI_COMM_WORLD_SIZE") || env_set("PMIX_RANK") || env_set("PMI_RANK") ||
         env_set("PMI_SIZE");
}

Communicator& init(int* argc, char*** argv) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_world) return *g_world;
#ifdef PARADIT_WITH_MPI
  const char* force = std::getenv("PARADIT_MPI");
  const bool want = force ? std::string_view(force) == "1" : launched_by_mpi();
  if (want) {
    g_world = detail::mpi_start(argc, argv);
    g_mpi = true;
    return *g_world;
  }
#endif
  g_world = std::make_unique<LocalCommunicator>();
  return *g_world;
}

Communicator& world() {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_world) return *g_world;
  }
  return init(nullptr, nullptr);
}

bool mpi_active() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_mpi;
}

void finalize() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_world.reset();
#ifdef PARADIT_WITH_MPI
  if (g_mpi) detail::mpi_stop();
#endif
  g_mpi = false;
}

void abort_job(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
#ifdef PARADIT_WITH_MPI
  detail::mpi_abort(code);  // returns only when MPI is not running
#endif
  std::_Exit(code);
}

void abort_job(int code, std::string_view message) {
  if (!message.empty()) {
    std::fprintf(stderr, "%.*s\n", static_cast<int>(message.size()), message.data());
  }
  abort_job(code);
}

}  // namespace paradit::comm
