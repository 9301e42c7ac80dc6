#pragma once
// `paradit serve`: a persistent generation server. Opens the pipeline once, then answers an HTTP
// API (JSON) until SIGTERM/SIGINT:
//   POST   /v1/images/generations  OpenAI images API shape (prompt, n, size "WxH",
//                                  response_format "b64_json") plus negative_prompt,
//                                  num_inference_steps, guidance_scale, seed; waits for the
//                                  images → {"created": t, "data": [{"b64_json": ...}, ...]}
//   POST   /v1/jobs                same body, answers at once → {"id": ..., "status": "queued"}
//   GET    /v1/jobs/{id}           status, step progress, the images once succeeded
//   DELETE /v1/jobs/{id}           cancels (a running job stops at its next step boundary)
//   GET    /health, GET /metrics   liveness; Prometheus text (queue, outcomes, step latency)
// Video models (Wan; not HunyuanVideo, which needs prompt embeddings and is refused at start) are
// served through /v1/jobs only: the body may add num_frames (4k+1) and fps, and a succeeded job's
// data is [{"b64_mp4": MP4 bytes, "fps": rate}, ...] (the MP4 `paradit generate` writes).
// /v1/images/generations answers 400 for them; num_frames / fps on an image model are 400.
// Errors are {"error": {"message": ...}}: 400 bad request, 404 unknown job, 413 body too large,
// 429 queue full, 503 draining, 500 failed job, 504 timed-out job.

#include <cstddef>
#include <string>

#include "parallel/config.h"

namespace paradit::server {

struct ServeOptions {
  std::string model;  // empty: the shipped default model
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (printed)
  size_t queue_size = 8;
  double request_timeout = 600;  // seconds from arrival to the end of the job
  size_t max_body_bytes = 1 << 20;
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

}  // namespace paradit::server
