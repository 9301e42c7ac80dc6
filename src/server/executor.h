#pragma once
// Who runs a generation job. The dispatcher hands each job to one Executor. In the front end an
// executor sends it to one data-parallel group of the worker job (server/supervisor.h); in the
// worker job the local one runs the pipeline in this process (one job at a time) and cluster.h's
// hand it to a group of MPI ranks, behind the same interface.

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "server/request.h"

namespace paradit::pipelines {
class Pipeline;
}

namespace paradit::server {

// What an executor reports after every denoising step.
struct StepProgress {
  int step = 0;  // 1-based
  int total = 0;
  double seconds = 0;  // the step's wall-clock time
  // At the request's preview steps (preview_steps(request.partial_images, total)): one preview
  // per image, decoded from the step's predicted clean latents and encoded as the request's
  // output_format. Empty at the other steps.
  std::vector<std::string> previews;
};
// Called after every denoising step. It may throw (the dispatcher's JobStopped) to end the job at
// this step boundary.
using StepHook = std::function<void(const StepProgress& progress)>;

// Thrown by an executor when the worker job died while it ran the request (or before it could
// start it): the dispatcher queues the job again. `charged`: the death is laid to this job (a
// rank of the group running it failed, or nobody knows which): it counts against
// --max_attempts; a job that merely ran beside the failure on another group runs again free.
class WorkerLost : public std::runtime_error {
 public:
  WorkerLost(const std::string& cause, bool charged)
      : std::runtime_error(cause), charged_(charged) {}
  bool charged() const { return charged_; }

 private:
  bool charged_;
};

class Executor {
 public:
  virtual ~Executor() = default;
  // BadRequest when the pipeline would refuse the request (checked before queueing).
  virtual void check(const ImageRequest& request) const = 0;
  // The request's images as file bytes in its output_format (PNG, JPEG, WebP), request.n of
  // them, in order; for a video pipeline its videos as MP4 file bytes.
  virtual std::vector<std::string> run(const ImageRequest& request, const StepHook& on_step) = 0;
};

// One request through pipe.generate (collective over the pipeline's runtime when it has one):
// its images as file bytes in the request's output_format (videos: MP4 file bytes), or nothing
// when !encode (the ranks of a group that do not answer; they make no previews either).
std::vector<std::string> run_request(pipelines::Pipeline& pipe, const ImageRequest& request,
                                     const StepHook& on_step, bool encode = true);
// BadRequest when pipe.resolve refuses the request.
void check_request(const pipelines::Pipeline& pipe, const ImageRequest& request);

// Runs jobs on `pipe` in the calling thread. Image i of a request with seed s and n images is
// image i of `paradit generate --seed s` with the prompt given n times (one batch, one draw of
// the initial latents), so the server's answers equal the command's files pixel for pixel.
std::unique_ptr<Executor> make_local_executor(pipelines::Pipeline& pipe);

}  // namespace paradit::server
