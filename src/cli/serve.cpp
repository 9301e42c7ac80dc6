// `paradit serve`: the HTTP generation server (see server/server.h).
//   paradit serve [--model DIR] [--served_model_name ID] [--host 127.0.0.1] [--port 8000]
//       [--api_key KEY] [--queue_size N] [--request_timeout S] [--max_body_bytes B]
//       [--max_pixels P] [--max_steps N] [--max_frames F] [--max_n N] [--result_ttl S]
//       [--max_result_mib M] [--state_dir DIR] [--max_attempts N]
//       [--np N] [--hostfile FILE] [--mpirun PATH] [--mpirun_args ARGS] | [--workers ADDRESS]
//       [device flags] [parallel flags, see cli/parallel_flags.h]
// The front end starts `mpirun -np N paradit worker` itself; --data_parallel_degree D groups
// serve D requests at the same time. Every multi-word flag is accepted with '_' and with '-'.
#include <cstdlib>
#include <memory>

#include "cli/commands.h"
#include "cli/device_flags.h"
#include "cli/parallel_flags.h"
#include "server/server.h"

namespace paradit::cli {

void add_serve_command(CLI::App& app, Commands& commands) {
  auto opt = std::make_shared<server::ServeOptions>();
  auto result_mib = std::make_shared<size_t>(opt->max_result_bytes >> 20);
  CLI::App* sub = app.add_subcommand(
      "serve",
      "Serve image and video generation over HTTP with the OpenAI API (images, videos, "
      "models), a jobs API and metrics");
  sub->footer(
      "Endpoints: POST /v1/images/generations (OpenAI images API: model, prompt, n, size WxH|auto, "
      "response_format b64_json|url, output_format png|jpeg|webp, output_compression, stream + "
      "partial_images 0-3; background/quality/style/moderation/user accepted and ignored; plus "
      "negative_prompt, num_inference_steps, guidance_scale, seed), GET /v1/models[/{id}], "
      "POST /v1/videos and GET|DELETE /v1/videos/{id}[/content] (video models: seconds or "
      "num_frames, size, fps), GET /v1/files/{id}/content (url results, --result_ttl), "
      "POST /v1/jobs and GET|DELETE /v1/jobs/{id}, GET /health, GET /metrics. Unknown request "
      "fields are ignored and named once in the log; invalid values and values over a limit "
      "are 400 with the OpenAI error body, a wrong model 404. Prints 'paradit serve: listening "
      "on http://HOST:PORT' when its workers are ready; SIGTERM/SIGINT stop accepting jobs, finish "
      "the accepted ones, stop the workers and exit 0. This process is the front end: it starts "
      "the workers as `mpirun -np N paradit worker` (--np, default the product of the parallel "
      "degrees; one plain process for 1) and --data_parallel_degree groups of ranks each run one "
      "request at a time (the other parallel flags apply inside a group). When the worker job "
      "dies (a rank killed, a node lost) the front end logs why, restarts it and runs the "
      "requests that were running again (at most --max_attempts runs each); jobs of /v1/jobs "
      "and /v1/videos are kept in --state_dir and survive the front end itself. Every "
      "multi-word flag also accepts '-' for '_'.\n\nExamples (the shipped model):\n" +
      server::api_examples("shapes-pixart", /*video=*/false, "64x64"));
  sub->add_option("--model", opt->model,
                  "Pipeline folder (model_index.json) or Hugging Face cache id; default: the "
                  "shipped models/shapes-pixart");
  sub->add_option("--served_model_name,--served-model-name", opt->served_model_name,
                  "The model id clients send as 'model' and GET /v1/models lists (default: the "
                  "model folder's name)");
  sub->add_option("--host", opt->host, "Address to listen on")->capture_default_str();
  sub->add_option("--port", opt->port, "TCP port (0: any free port, printed)")
      ->capture_default_str();
  sub->add_option("--api_key,--api-key", opt->api_key,
                  "Require 'Authorization: Bearer KEY' on /v1 (default: $PARADIT_API_KEY, else "
                  "none)");
  sub->add_option("--queue_size,--queue-size", opt->queue_size,
                  "Jobs waiting at most; a full queue answers 429")
      ->capture_default_str();
  sub->add_option("--request_timeout,--request-timeout", opt->request_timeout,
                  "Seconds from a request's arrival to the end of its job (then 504 / timed_out)")
      ->capture_default_str();
  sub->add_option("--max_body_bytes,--max-body-bytes", opt->max_body_bytes,
                  "Largest request body accepted (larger: 413)")
      ->capture_default_str();
  sub->add_option("--max_pixels,--max-pixels", opt->max_pixels,
                  "Largest width x height a request may ask for (default: 4 x the model's "
                  "default image area)");
  sub->add_option("--max_steps,--max-steps", opt->max_steps, "Most num_inference_steps")
      ->capture_default_str();
  sub->add_option("--max_frames,--max-frames", opt->max_frames,
                  "Most video frames (at least the model's default)")
      ->capture_default_str();
  sub->add_option("--max_n,--max-n", opt->max_n, "Most images per request (n)")
      ->capture_default_str();
  sub->add_option("--result_ttl,--result-ttl", opt->result_ttl,
                  "Seconds url results and finished videos stay downloadable")
      ->capture_default_str();
  sub->add_option("--max_result_mib,--max-result-mib", *result_mib,
                  "MiB of downloadable results kept at most (the oldest go first)")
      ->capture_default_str();
  const char* workers = "Workers (the generation job the front end starts or attaches to)";
  sub->add_option("--np", opt->np,
                  "Worker processes (mpirun -np); default: the product of the parallel degrees")
      ->group(workers);
  sub->add_option("--hostfile", opt->hostfile,
                  "Open MPI hostfile for the workers; a host whose ranks failed twice is left out "
                  "of the next worker job when the others have slots for every rank")
      ->group(workers);
  sub->add_option("--mpirun", opt->mpirun, "The MPI launcher (default: mpirun on PATH)")
      ->group(workers);
  sub->add_option("--mpirun_args,--mpirun-args", opt->mpirun_args,
                  "More launcher options, e.g. \"--bind-to none --mca btl tcp,self\"")
      ->group(workers);
  sub->add_option("--workers", opt->workers,
                  "Attach to a worker job started elsewhere (`srun ... paradit worker --frontend "
                  "ADDRESS`): listen for it at ADDRESS (unix:PATH or HOST:PORT) instead of "
                  "starting one; PARADIT_WORKER_TOKEN, when set, must match on both sides")
      ->group(workers);
  sub->add_option("--worker_listen,--worker-listen", opt->worker_listen,
                  "Where the front end listens for the workers it starts (default: a Unix socket "
                  "in --state_dir; HOST:PORT when rank 0 runs on another host)")
      ->group(workers);
  sub->add_option("--worker_start_timeout,--worker-start-timeout", opt->worker_start_timeout,
                  "Seconds a worker job may take from its launch to being ready (model load)")
      ->group(workers)
      ->capture_default_str();
  sub->add_option("--state_dir,--state-dir", opt->state_dir,
                  "Folder of the job database (SQLite): a server started again with the same "
                  "folder resumes the accepted jobs and serves the finished results until they "
                  "expire (default: a new temporary folder)");
  sub->add_option("--max_attempts,--max-attempts", opt->max_attempts,
                  "Runs a request may have that end with the worker job dying (then it fails "
                  "with the cause)")
      ->capture_default_str();
  sub->add_option("--fault_crash_prompt,--fault-crash-prompt", opt->fault_crash_prompt,
                  "Tests only (needs PARADIT_TEST_FAULTS=1): a worker rank crashes on requests "
                  "whose prompt contains this")
      ->group("");  // hidden
  add_parallel_flags(sub, &opt->parallel);
  auto device = std::make_shared<DeviceOptions>();
  add_device_flags(sub, device.get());
  commands.push_back({sub, [opt, result_mib, device] {
                        require_test_faults("--fault_crash_prompt", opt->fault_crash_prompt);
                        // Checked and resolved by the workers: the front end never opens a GPU.
                        opt->device = device->device;
                        opt->dtype = device->dtype;
                        opt->attention_backend = device->attention_backend;
                        if (opt->api_key.empty()) {
                          if (const char* key = std::getenv("PARADIT_API_KEY")) opt->api_key = key;
                        }
                        opt->max_result_bytes = *result_mib << 20;
                        return server::serve(*opt);
                      }});
}

}  // namespace paradit::cli
