// The `paradit` command: see `paradit --help` and DESIGN.md's command-line contract.
#include "cli/commands.h"

int main(int argc, char** argv) { return paradit::cli::main(argc, argv); }
