#include <cstdio>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "comm/agree.h"
#include "comm/runtime.h"
#include "core/error.h"

namespace paradit::cli {

namespace {
// One failing rank ends the whole job (MPI_Abort), so no peer waits forever on it; a single
// process just returns the code.
int fail_job(int code, const std::string& line) {
  if (comm::world().size() > 1) comm::abort_job(code, line);
  std::fprintf(stderr, "%s\n", line.c_str());
  comm::finalize();
  return code;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"paradit: a C++ inference engine for Diffusion Transformers", "paradit"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "paradit 0.1.0");
  Commands commands;
  add_info_command(app, commands);
  add_forward_command(app, commands);
  add_make_model_command(app, commands);
  add_generate_command(app, commands);
  add_serve_command(app, commands);
  add_worker_command(app, commands);

  // Under mpirun every rank parses the same arguments, so a usage error is the same on all of
  // them: only rank 0 prints it.
  comm::init(&argc, &argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    if (comm::world().rank() == 0) app.exit(e);
    comm::finalize();
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    if (comm::world().rank() == 0) app.exit(e);
    comm::finalize();
    return 0;
  } catch (const CLI::CallForVersion& e) {
    if (comm::world().rank() == 0) app.exit(e);
    comm::finalize();
    return 0;
  } catch (const CLI::ParseError& e) {
    // Usage errors in the one-line form of every other error, exit 2.
    if (comm::world().rank() == 0 && e.get_exit_code() != 0) {
      std::fprintf(stderr, "paradit: error: %s (see paradit --help)\n", e.what());
    }
    comm::finalize();
    return e.get_exit_code() == 0 ? 0 : 2;
  }
  try {
    for (const auto& command : commands) {
      if (command.app->parsed()) {
        const int code = command.run();
        comm::finalize();
        return code;
      }
    }
  } catch (const comm::AgreedError& e) {
    // Every rank holds the same error (comm/agree.h): rank 0 prints it, all end normally.
    if (comm::world().rank() == 0) std::fprintf(stderr, "paradit: error: %s\n", e.what());
    comm::finalize();
    return 2;
  } catch (const Error& e) {
    return fail_job(2, std::string("paradit: error: ") + e.what());
  } catch (const std::exception& e) {
    return fail_job(3, std::string("paradit: internal error: ") + e.what());
  }
  comm::finalize();
  return 2;
}

}  // namespace paradit::cli
