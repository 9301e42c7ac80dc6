#pragma once
// The `paradit` subcommands. Each add_*_command registers its subcommand (flags, help) on the
// app and appends the function that runs it when chosen. A run function returns the exit code;
// a paradit::Error escaping it becomes one line on stderr and exit code 2 (see main.cpp).

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace paradit::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};
using Commands = std::vector<Command>;

void add_info_command(CLI::App& app, Commands& commands);
void add_forward_command(CLI::App& app, Commands& commands);
void add_make_model_command(CLI::App& app, Commands& commands);
void add_generate_command(CLI::App& app, Commands& commands);
void add_serve_command(CLI::App& app, Commands& commands);
void add_worker_command(CLI::App& app, Commands& commands);

// The fault-injection flags (tests only, hidden from --help) are refused unless the environment
// has PARADIT_TEST_FAULTS=1, so a production command line cannot crash its workers by mistake.
// Error naming `flag` otherwise; nothing when `value` is empty.
void require_test_faults(const char* flag, const std::string& value);

// Entry point of the `paradit` executable.
int main(int argc, char** argv);

}  // namespace paradit::cli
