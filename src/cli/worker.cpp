// `paradit worker`: the generation job behind `paradit serve` (see server/worker.h). The front end
// starts it itself (`paradit serve --np N` runs `mpirun -np N paradit worker --frontend ADDRESS
// ...`); start it yourself (srun, mpirun) to attach it to `paradit serve --workers ADDRESS`:
//   srun -n 8 paradit worker --frontend HOST:PORT [--model DIR] [device flags] [parallel flags]
// Every multi-word flag is accepted with '_' and with '-'.
#include <cstdlib>
#include <cstring>
#include <memory>

#include "cli/commands.h"
#include "cli/device_flags.h"
#include "cli/parallel_flags.h"
#include "core/error.h"
#include "server/worker.h"

namespace paradit::cli {

void require_test_faults(const char* flag, const std::string& value) {
  if (value.empty()) return;
  const char* on = std::getenv("PARADIT_TEST_FAULTS");
  PARADIT_CHECK(on != nullptr && std::strcmp(on, "1") == 0, flag,
                ": fault injection for tests; refused without PARADIT_TEST_FAULTS=1 in the "
                "environment");
}

void add_worker_command(CLI::App& app, Commands& commands) {
  auto opt = std::make_shared<server::WorkerOptions>();
  CLI::App* sub = app.add_subcommand(
      "worker",
      "The generation job of `paradit serve` (every rank loads the model; rank 0 connects to the "
      "front end and runs the jobs it sends). `paradit serve --np N` starts it itself; start it "
      "with srun/mpirun to attach it to `paradit serve --workers ADDRESS`");
  sub->footer(
      "The parallel flags must be those the front end was given. PARADIT_WORKER_TOKEN (in the "
      "environment of every rank) is sent to the front end, which refuses workers without its "
      "token when it has one. The job exits 0 when the front end stops it, and ends (MPI_Abort) "
      "when the front end goes away.");
  sub->add_option("--frontend", opt->frontend,
                  "Where the front end listens for its workers: unix:PATH, a socket path, or "
                  "HOST:PORT (what `paradit serve --workers` was given)")
      ->required();
  sub->add_option("--model", opt->model,
                  "Pipeline folder (model_index.json) or Hugging Face cache id; default: the "
                  "shipped models/shapes-pixart");
  sub->add_option("--connect_timeout,--connect-timeout", opt->connect_timeout,
                  "Seconds rank 0 keeps trying to reach the front end")
      ->capture_default_str();
  sub->add_option("--fault_crash_prompt,--fault-crash-prompt", opt->fault_crash_prompt,
                  "Tests only (needs PARADIT_TEST_FAULTS=1): the last rank of the group running a "
                  "request whose prompt contains this text crashes (SIGSEGV) after its first "
                  "step")
      ->group("");  // hidden
  add_parallel_flags(sub, &opt->parallel);
  auto device = std::make_shared<DeviceOptions>();
  add_device_flags(sub, device.get());
  commands.push_back({sub, [opt, device] {
                        require_test_faults("--fault_crash_prompt", opt->fault_crash_prompt);
                        opt->placement = resolve_placement(*device);
                        if (const char* token = std::getenv("PARADIT_WORKER_TOKEN")) {
                          opt->token = token;
                        }
                        return server::run_worker(*opt);
                      }});
}

}  // namespace paradit::cli
