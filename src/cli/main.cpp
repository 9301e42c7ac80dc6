#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"

namespace paradit::cli {

int main(int argc, char** argv) {
  CLI::App app{"paradit: a C++ inference engine for Diffusion Transformers", "paradit"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "paradit 0.1.0");
  Commands commands;
  add_info_command(app, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    for (const auto& command : commands) {
      if (command.app->parsed()) return command.run();
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "paradit: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "paradit: internal error: %s\n", e.what());
    return 3;
  }
  return 2;
}

}  // namespace paradit::cli
