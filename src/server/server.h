#pragma once
// `paradit serve`: a persistent generation server that OpenAI clients talk to. Opens the pipeline
// once, then answers an HTTP API (JSON) until SIGTERM/SIGINT:
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

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "core/tensor.h"
#include "parallel/config.h"

namespace paradit::server {

struct ServeOptions {
  std::string model;              // empty: the shipped default model
  core::Placement placement;      // where the models run (the CLI's --device / --dtype)
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
  // Under mpirun: dp = the number of groups serving requests at the same time; the other degrees
  // apply inside each group as in `paradit generate` (see server/cluster.h).
  parallel::ParallelConfig parallel;
};

// Runs the server until SIGTERM/SIGINT, then drains: no new jobs, the accepted ones finish (a
// second signal cancels them at their next step), exit code 0. Prints
// "paradit serve: listening on http://HOST:PORT" on stdout once it answers. Error on bad options,
// a model that does not open, a port that cannot be bound, or parallel degrees whose product is
// not the number of processes.
// Every rank loads the model once and keeps it loaded (Pipeline::set_keep_loaded). Under mpirun,
// rank 0 listens and dispatches; the drain starts when rank 0 gets the signal (send it to rank 0,
// whose pid GET /health reports: a signal to mpirun itself is forwarded to every rank and Open MPI
// kills them after odls_base_sigkill_timeout), then every rank exits 0.
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
