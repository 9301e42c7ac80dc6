#pragma once
// `paradit serve`: a persistent generation server that OpenAI clients talk to. A front-end
// process (this one: HTTP, validation, the queue, the results, the state database) that starts
// the generation workers as an MPI job of their own (`mpirun -np N paradit worker`, server/
// supervisor.h) or attaches to one started by srun/mpirun (--workers), and outlives them: a rank,
// a node or the whole worker job that dies costs a restart, not a request. It answers an HTTP
// API (JSON) until SIGTERM/SIGINT:
//   POST   /v1/images/generations  the OpenAI images API: model, prompt, n, size ("WxH" or
//                                  "auto"), response_format (b64_json | url), output_format
//                                  (png | jpeg | webp), output_compression, stream with
//                                  partial_images (0–3: Server-Sent Events
//                                  image_generation.partial_image … image_generation.completed);
//                                  background, quality, style, moderation, user accepted and
//                                  ignored; plus negative_prompt, num_inference_steps,
//                                  guidance_scale, seed. Waits for the images →
//                                  {"created", "data": [{"b64_json"} | {"url"}], "size", ...}
//   GET    /v1/models[/{id}]       the served model (the folder name or --served_model_name)
//   POST   /v1/videos              the OpenAI videos API (video models): prompt, model, seconds
//                                  or num_frames, size, fps, + the knobs above; JSON or
//                                  multipart form → a video object, status "queued"
//   GET    /v1/videos[/{id}]       video objects (status, progress 0–100)
//   GET    /v1/videos/{id}/content the MP4; DELETE /v1/videos/{id} cancels and forgets it
//   GET    /v1/files/{id}/content  a response_format "url" result, for --result_ttl seconds
//   POST   /v1/jobs                the images body, answers at once → {"id", "status": "queued"}
//   GET    /v1/jobs/{id}           status, step progress, the images once succeeded (video
//                                  models: {"b64_mp4", "fps"})
//   DELETE /v1/jobs/{id}           cancels (a running job stops at its next step boundary)
//   GET    /health, GET /metrics   liveness; Prometheus text (queue, outcomes, step latency)
// Unknown fields are ignored (named once in the server log), as are the OpenAI fields paradit
// cannot honour. Errors are {"error": {"message", "type", "param", "code"}}: 400 bad request
// (an invalid value of a known field, a value above a limit naming it), 401 wrong API key, 404
// unknown model / job / file, 413 body too large, 429 queue full, 503 draining, 500 failed job,
// 504 timed-out job.
//
// Failures: the worker job dying (a rank killed, crashed or out of memory, a node gone) makes
// the front end log the cause, queue the requests that were running again (each at most
// --max_attempts runs charged to it, then failed with the cause) and start a new worker job;
// GET /health says "recovering" meanwhile. The front end dying loses nothing accepted through
// the jobs and videos APIs: started again with the same --state_dir it runs them to the end
// (server/job_store.h).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "parallel/config.h"

namespace paradit::server {

struct ServeOptions {
  std::string model;              // empty: the shipped default model
  // The workers' --device, --dtype, --attention_backend (empty: theirs), checked by the workers:
  // the front end never touches a GPU.
  std::string device;
  std::string dtype;
  std::string attention_backend;
  std::string served_model_name;  // empty: the model folder's name
  std::string host = "127.0.0.1";
  int port = 8000;      // 0: any free port (printed)
  std::string api_key;  // empty: no key required
  size_t queue_size = 8;
  double request_timeout = 600;  // seconds from arrival to the end of the job
  size_t max_body_bytes = 1 << 20;
  // Limits every request is held to (over one → 400 naming it, before it queues).
  int64_t max_pixels = 0;  // width × height; 0: 4 × the model's default image area
  int max_steps = 200;
  int64_t max_frames = 129;  // video models (at least the model's default)
  int max_n = 10;
  // How long url results and finished videos stay downloadable, and how much they hold in all.
  double result_ttl = 3600;
  size_t max_result_bytes = size_t{1} << 30;
  // The worker job's layout: dp = the number of groups serving requests at the same time; the
  // other degrees apply inside each group as in `paradit generate` (see server/cluster.h).
  parallel::ParallelConfig parallel;

  // ---- the worker job (server/supervisor.h)
  int np = 0;                // processes; 0: the product of the parallel degrees
  std::string hostfile;      // Open MPI hostfile (empty: none)
  std::string mpirun;        // the launcher (empty: mpirun on PATH)
  std::string mpirun_args;   // more launcher options, split at spaces
  std::string workers;       // attach: where the front end waits for a worker job started elsewhere
  std::string worker_listen; // started here: where the front end listens (empty: a Unix socket in
                             // --state_dir)
  double worker_start_timeout = 600;  // seconds from a launch to the worker job's hello
  // ---- durability and recovery
  std::string state_dir;  // empty: a temporary folder (removed at a clean stop)
  int max_attempts = 2;   // runs a request may have that end with the worker job dying
  std::string fault_crash_prompt;  // tests only: worker fault injection (Cluster)
};

// Runs the server until SIGTERM/SIGINT, then drains: no new jobs, the accepted ones finish (a
// second signal cancels them at their next step), the worker job is stopped, exit code 0. Prints
// "paradit serve: listening on http://HOST:PORT" on stdout once the first worker job is ready.
// Error on bad options, a model that does not open, a --state_dir in use or of another model, a
// port that cannot be bound, parallel degrees whose product is not --np, or a first worker job
// that does not start (with its last stderr line: a bad --device, a model that does not load).
// Every rank of the worker job loads the model once and keeps it loaded. `paradit serve` itself
// under mpirun (the old in-job mode) is refused with the command to use instead.
int serve(const ServeOptions& options);

// The id clients name the model by: `served_name` when given, else the Hugging Face id given as
// --model (ORG/NAME, when it is not a folder), else the model folder's name ("shapes-pixart").
std::string served_model_id(const std::string& model_arg, const std::filesystem::path& root,
                            const std::string& served_name = {});

// A short usage text for `paradit serve --help` and `paradit info`: one curl and one OpenAI
// Python client example against http://127.0.0.1:PORT for `model_id` (an image or a video model)
// at `size` ("WxH").
std::string api_examples(const std::string& model_id, bool video, const std::string& size,
                         int port = 8000);

}  // namespace paradit::server
