// `paradit serve`: the HTTP generation server (see server/server.h).
//   paradit serve [--model DIR] [--host 127.0.0.1] [--port 8000] [--queue_size N]
//       [--request_timeout S] [--max_body_bytes B] [parallel flags, see cli/parallel_flags.h]
// Under mpirun: --data_parallel_degree D groups serve D requests at the same time.
// Every multi-word flag is accepted with '_' and with '-'.
#include <memory>

#include "cli/commands.h"
#include "cli/parallel_flags.h"
#include "server/server.h"

namespace paradit::cli {

void add_serve_command(CLI::App& app, Commands& commands) {
  auto opt = std::make_shared<server::ServeOptions>();
  CLI::App* sub = app.add_subcommand(
      "serve", "Serve image (and video) generation over HTTP (OpenAI images API shape, jobs, metrics)");
  sub->footer(
      "Endpoints: POST /v1/images/generations, POST /v1/jobs, GET|DELETE /v1/jobs/{id}, "
      "GET /health, GET /metrics. Video models (Wan) are served through /v1/jobs only, with "
      "num_frames (4k+1) and fps; a finished job carries the MP4 as b64_mp4. Prints 'paradit serve: listening on http://HOST:PORT' when "
      "ready; SIGTERM/SIGINT stop accepting jobs, finish the accepted ones and exit 0. Under "
      "mpirun, rank 0 listens and --data_parallel_degree groups of ranks each run one request "
      "at a time (the other parallel flags apply inside a group); signal rank 0 (its pid is in "
      "GET /health) to drain. Every multi-word flag also accepts '-' for '_'.");
  sub->add_option("--model", opt->model,
                  "Pipeline folder (model_index.json) or Hugging Face cache id; default: the "
                  "shipped models/shapes-pixart");
  sub->add_option("--host", opt->host, "Address to listen on")->capture_default_str();
  sub->add_option("--port", opt->port, "TCP port (0: any free port, printed)")
      ->capture_default_str();
  sub->add_option("--queue_size,--queue-size", opt->queue_size,
                  "Jobs waiting at most; a full queue answers 429")
      ->capture_default_str();
  sub->add_option("--request_timeout,--request-timeout", opt->request_timeout,
                  "Seconds from a request's arrival to the end of its job (then 504 / timed_out)")
      ->capture_default_str();
  sub->add_option("--max_body_bytes,--max-body-bytes", opt->max_body_bytes,
                  "Largest request body accepted (larger: 413)")
      ->capture_default_str();
  add_parallel_flags(sub, &opt->parallel);
  commands.push_back({sub, [opt] { return server::serve(*opt); }});
}

}  // namespace paradit::cli
