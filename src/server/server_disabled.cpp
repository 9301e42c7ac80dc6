// `paradit serve` and `paradit worker` in a build without the HTTP server
// (PARADIT_WITH_SERVER=OFF, e.g. a GPU machine without cpp-httplib or SQLite): the commands exist
// and say why they cannot run.
#include "core/error.h"
#include "server/server.h"
#include "server/worker.h"

namespace paradit::server {

int serve(const ServeOptions&) {
  fail(
      "serve: this paradit was built without the HTTP server (PARADIT_WITH_SERVER=OFF); "
      "rebuild with cpp-httplib, SQLite and FFmpeg's development packages and "
      "-DPARADIT_WITH_SERVER=ON");
}

int run_worker(const WorkerOptions&) {
  fail(
      "worker: this paradit was built without the HTTP server (PARADIT_WITH_SERVER=OFF); "
      "rebuild with cpp-httplib, SQLite and FFmpeg's development packages and "
      "-DPARADIT_WITH_SERVER=ON");
}

}  // namespace paradit::server
