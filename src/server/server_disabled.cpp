// `paradit serve` in a build without the HTTP server (PARADIT_WITH_SERVER=OFF, e.g. a GPU machine
// without cpp-httplib): the command exists and says why it cannot run.
#include "core/error.h"
#include "server/server.h"

namespace paradit::server {

int serve(const ServeOptions&) {
  fail(
      "serve: this paradit was built without the HTTP server (PARADIT_WITH_SERVER=OFF); "
      "rebuild with cpp-httplib and FFmpeg's development packages and -DPARADIT_WITH_SERVER=ON");
}

}  // namespace paradit::server
