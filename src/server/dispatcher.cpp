#include "server/dispatcher.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <random>
#include <sstream>

#include "core/error.h"
#include "server/job_store.h"

namespace paradit::server {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kKeptJobs = 256;     // ended jobs of the jobs API remembered
constexpr size_t kStepWindow = 1024;  // steps the latency quantiles are taken over

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A steady-clock time point as unix seconds, and back (deadlines survive a restart as unix time).
double to_unix(Clock::time_point t) {
  return unix_now() + std::chrono::duration<double>(t - Clock::now()).count();
}
Clock::time_point from_unix(double t) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(t - unix_now()));
}

// Thrown by the step hook to leave the pipeline at a step boundary.
struct JobStopped {
  JobStatus status;
  std::string why;
};

}  // namespace

struct Job {
  std::string id;
  ImageRequest request;
  bool keep = false;
  bool store_files = false;
  uint64_t seq = 0;  // submission order
  Clock::time_point submitted;
  Clock::time_point deadline;
  std::atomic<bool> cancel_requested{false};
  std::atomic<bool> forgotten{false};  // no reader is left: erase it when it ends
  // Guarded by the dispatcher's mutex.
  JobStatus status = JobStatus::kQueued;
  int step = 0;
  int total = 0;
  double created = 0;
  double finished = 0;
  std::string error;
  std::shared_ptr<const std::vector<std::string>> images;
  std::vector<std::string> files;
  std::vector<std::shared_ptr<const std::vector<std::string>>> partials;
  int attempts = 0;
  // A run after a retry makes the same previews again: the first `previews_seen` of this run are
  // already in `partials`.
  size_t previews_seen = 0;
  size_t previews_this_run = 0;
};

const char* status_name(JobStatus s) {
  switch (s) {
    case JobStatus::kQueued: return "queued";
    case JobStatus::kRunning: return "running";
    case JobStatus::kSucceeded: return "succeeded";
    case JobStatus::kFailed: return "failed";
    case JobStatus::kCancelled: return "cancelled";
    case JobStatus::kTimedOut: return "timed_out";
  }
  return "unknown";
}

bool is_final(JobStatus s) { return s != JobStatus::kQueued && s != JobStatus::kRunning; }

Dispatcher::Dispatcher(std::vector<std::unique_ptr<Executor>> executors, size_t queue_size,
                       double timeout_seconds, FileStore* files, JobStore* store,
                       int max_attempts)
    : queue_size_(queue_size),
      timeout_(timeout_seconds),
      executors_(std::move(executors)),
      files_(files),
      store_(store),
      max_attempts_(max_attempts) {
  PARADIT_CHECK(max_attempts >= 1, "--max_attempts: must be at least 1, found ", max_attempts);
  PARADIT_CHECK(!executors_.empty(), "serve: the dispatcher needs at least one executor");
  PARADIT_CHECK(queue_size_ >= 1, "--queue_size: must be at least 1, found ", queue_size_);
  PARADIT_CHECK(timeout_seconds > 0, "--request_timeout: must be positive, found ",
                timeout_seconds);
  id_salt_ = std::random_device{}();
  id_salt_ = (id_salt_ << 32) ^ std::random_device{}();
  step_window_.reserve(kStepWindow);
  for (auto& e : executors_) workers_.emplace_back([this, &e] { work(*e); });
}

Dispatcher::~Dispatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    closed_ = true;
    for (auto& [id, job] : jobs_) job->cancel_requested = true;
    // Nobody runs them any more. Kept jobs stay queued in the store (a server started on the
    // same --state_dir takes them back); their in-memory state ends here.
    for (auto& job : queue_) {
      if (!job->keep) finish(*job, JobStatus::kCancelled, "cancelled: the server is stopping");
    }
    queue_.clear();
  }
  work_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

Dispatcher::Submit Dispatcher::submit(const ImageRequest& request, const SubmitOptions& options,
                                      std::string* id) {
  executors_.front()->check(request);  // BadRequest before anything is queued
  PARADIT_CHECK(!options.store_files || files_ != nullptr,
                "serve: a job stores files but the dispatcher has no file store");
  auto job = std::make_shared<Job>();
  job->request = request;
  job->keep = options.keep;
  job->store_files = options.store_files;
  job->submitted = Clock::now();
  job->deadline = job->submitted + std::chrono::duration_cast<Clock::duration>(timeout_);
  job->created = unix_now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) {
      ++requests_["unavailable"];
      return Submit::kClosed;
    }
    if (queue_.size() >= queue_size_) {
      ++requests_["rejected"];
      return Submit::kQueueFull;
    }
    do {
      char buf[40];
      job->seq = next_id_++;
      const uint64_t bits = (job->seq * uint64_t{0x9E3779B97F4A7C15}) ^ id_salt_;
      std::snprintf(buf, sizeof(buf), "_%016" PRIx64, bits);
      job->id = options.id_prefix + buf;
    } while (jobs_.count(job->id) != 0);  // an id a previous server gave (resume)
    // Recorded before the client hears "accepted": a server that dies from now on resumes it.
    if (job->keep) record(*job, /*insert=*/true);
    *id = job->id;
    jobs_[job->id] = job;
    queue_.push_back(job);
    max_depth_ = std::max(max_depth_, queue_.size());
  }
  work_cv_.notify_one();
  return Submit::kAccepted;
}

std::shared_ptr<Job> Dispatcher::find(const std::string& id) const {
  const auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

void Dispatcher::erase(const std::string& id) {
  jobs_.erase(id);
  kept_order_.erase(std::remove(kept_order_.begin(), kept_order_.end(), id), kept_order_.end());
}

namespace {
JobView view_of(const Job& job) {
  JobView v;
  v.id = job.id;
  v.status = job.status;
  v.step = job.step;
  v.total = job.total;
  v.created = job.created;
  v.finished = job.finished;
  v.error = job.error;
  v.images = job.images;
  v.files = job.files;
  v.partials = job.partials;
  v.request = job.request;
  v.fps = job.request.fps;
  v.attempts = job.attempts;
  return v;
}
}  // namespace

JobView Dispatcher::wait(const std::string& id, size_t partials_seen) {
  std::unique_lock<std::mutex> lock(mu_);
  const std::shared_ptr<Job> job = find(id);
  PARADIT_CHECK(job != nullptr, "serve: no job ", id);
  done_cv_.wait(lock, [&] {
    return is_final(job->status) ||
           (partials_seen != SIZE_MAX && job->partials.size() > partials_seen);
  });
  JobView v = view_of(*job);
  if (is_final(job->status) && !job->keep) jobs_.erase(id);  // its only reader has it
  return v;
}

std::vector<JobView> Dispatcher::list(const std::string& prefix) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const Job*> found;
  for (const auto& [id, job] : jobs_) {
    if (job->keep && id.rfind(prefix + "_", 0) == 0) found.push_back(job.get());
  }
  std::sort(found.begin(), found.end(), [](const Job* a, const Job* b) { return a->seq < b->seq; });
  std::vector<JobView> out;
  for (const Job* job : found) out.push_back(view_of(*job));
  return out;
}

bool Dispatcher::view(const std::string& id, JobView* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  const std::shared_ptr<Job> job = find(id);
  if (job == nullptr || !job->keep) return false;
  *out = view_of(*job);
  return true;
}

bool Dispatcher::cancel(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::shared_ptr<Job> job = find(id);
  if (job == nullptr || !job->keep) return false;
  job->cancel_requested = true;
  if (job->status == JobStatus::kQueued) {
    queue_.erase(std::remove(queue_.begin(), queue_.end(), job), queue_.end());
    finish(*job, JobStatus::kCancelled, "cancelled while queued");
  }
  return true;
}

bool Dispatcher::forget(const std::string& id) {
  std::vector<std::string> files;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const std::shared_ptr<Job> job = find(id);
    if (job == nullptr || !job->keep) return false;
    job->forgotten = true;
    job->cancel_requested = true;
    if (job->status == JobStatus::kQueued) {
      queue_.erase(std::remove(queue_.begin(), queue_.end(), job), queue_.end());
      finish(*job, JobStatus::kCancelled, "deleted while queued");
    }
    files = job->files;
    erase(id);
    unrecord(id);
  }
  for (const std::string& f : files) files_->remove(f);
  return true;
}

void Dispatcher::abandon(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::shared_ptr<Job> job = find(id);
  if (job == nullptr || job->keep) return;
  job->forgotten = true;
  job->cancel_requested = true;
  if (job->status == JobStatus::kQueued) {
    queue_.erase(std::remove(queue_.begin(), queue_.end(), job), queue_.end());
    finish(*job, JobStatus::kCancelled, "the client went away while it was queued");
  }
  if (is_final(job->status)) erase(id);
}

void Dispatcher::cancel_all() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, job] : jobs_) job->cancel_requested = true;
  for (auto& job : queue_) finish(*job, JobStatus::kCancelled, "cancelled: the server is stopping");
  queue_.clear();
}

void Dispatcher::close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
}

bool Dispatcher::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

bool Dispatcher::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.empty() && busy_ == 0;
}

void Dispatcher::count_request(const std::string& status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[status];
}

void Dispatcher::finish(Job& job, JobStatus status, std::string error) {
  job.status = status;
  job.error = std::move(error);
  job.finished = unix_now();
  ++requests_[status_name(status)];
  const double seconds = std::chrono::duration<double>(Clock::now() - job.submitted).count();
  std::fprintf(stderr, "paradit serve: %s %s after %.2f s%s%s\n", job.id.c_str(),
               status_name(status), seconds, job.error.empty() ? "" : ": ", job.error.c_str());
  if (job.forgotten) {
    // Nobody will read it (a deleted video, a stream whose client left).
    jobs_.erase(job.id);
  } else if (job.keep) {
    record(job);
    kept_order_.push_back(job.id);
    // Forget the oldest ended jobs beyond the limit, so memory stays bounded.
    while (kept_order_.size() > kKeptJobs) {
      jobs_.erase(kept_order_.front());
      unrecord(kept_order_.front());
      kept_order_.pop_front();
    }
  }
  done_cv_.notify_all();
}

void Dispatcher::record(const Job& job, bool insert) {
  if (store_ == nullptr || !job.keep) return;
  StoredJob r;
  r.id = job.id;
  r.seq = job.seq;
  r.store_files = job.store_files;
  r.request = job.request;
  r.status = status_name(job.status);
  r.attempts = job.attempts;
  r.step = job.step;
  r.total = job.total;
  r.created = job.created;
  r.deadline = to_unix(job.deadline);
  r.finished = job.finished;
  r.error = job.error;
  if (job.images) r.images = *job.images;
  r.files = job.files;
  if (insert) {
    store_->insert(r);  // an Error refuses the job
    return;
  }
  try {
    store_->update(r);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "paradit serve: %s: %s (kept in memory only)\n", job.id.c_str(),
                 e.what());
  }
}

void Dispatcher::unrecord(const std::string& id) {
  if (store_ == nullptr) return;
  try {
    store_->remove(id);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "paradit serve: %s: %s\n", id.c_str(), e.what());
  }
}

size_t Dispatcher::resume() {
  if (store_ == nullptr) return 0;
  const std::vector<StoredJob> stored = store_->jobs();
  std::lock_guard<std::mutex> lock(mu_);
  size_t queued = 0;
  for (const StoredJob& r : stored) {
    auto job = std::make_shared<Job>();
    job->id = r.id;
    job->request = r.request;
    job->keep = true;
    job->store_files = r.store_files;
    job->seq = r.seq;
    job->created = r.created;
    job->deadline = from_unix(r.deadline);
    job->submitted = from_unix(r.created);
    job->attempts = r.attempts;
    job->error = r.error;
    job->finished = r.finished;
    job->step = r.step;
    job->total = r.total;
    next_id_ = std::max(next_id_, r.seq + 1);
    JobStatus status = JobStatus::kQueued;
    for (const JobStatus s : {JobStatus::kRunning, JobStatus::kSucceeded, JobStatus::kFailed,
                              JobStatus::kCancelled, JobStatus::kTimedOut}) {
      if (r.status == status_name(s)) status = s;
    }
    jobs_[job->id] = job;
    if (is_final(status)) {
      job->status = status;
      if (!r.images.empty()) {
        job->images = std::make_shared<const std::vector<std::string>>(r.images);
      }
      job->files = r.files;
      kept_order_.push_back(job->id);
      continue;
    }
    // Queued or running when the previous server died: it runs (again) from its first step.
    job->status = JobStatus::kQueued;
    job->step = 0;
    job->total = 0;
    queue_.push_back(job);
    ++queued;
    std::fprintf(stderr, "paradit serve: %s resumed from %s (%s when the previous server ended)\n",
                 job->id.c_str(), store_->path().c_str(), r.status.c_str());
  }
  while (kept_order_.size() > kKeptJobs) {
    jobs_.erase(kept_order_.front());
    unrecord(kept_order_.front());
    kept_order_.pop_front();
  }
  resumed_ += queued;
  max_depth_ = std::max(max_depth_, queue_.size());
  work_cv_.notify_all();
  return queued;
}

void Dispatcher::set_available(bool available) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    available_ = available;
  }
  work_cv_.notify_all();
}

void Dispatcher::expire_waiting() {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = Clock::now();
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (now >= (*it)->deadline) {
      finish(**it, JobStatus::kTimedOut,
             available_ ? "timed out while queued"
                        : "timed out while queued (the worker job was down)");
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
}

void Dispatcher::work(Executor& executor) {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || (available_ && !queue_.empty()); });
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
      if (job->cancel_requested) {
        finish(*job, JobStatus::kCancelled, "cancelled while queued");
        continue;
      }
      if (Clock::now() >= job->deadline) {
        finish(*job, JobStatus::kTimedOut, "timed out while queued");
        continue;
      }
      job->status = JobStatus::kRunning;
      job->previews_this_run = 0;
      ++busy_;
    }
    JobStatus status = JobStatus::kSucceeded;
    std::string error;
    std::shared_ptr<const std::vector<std::string>> images;
    std::vector<std::string> files;
    try {
      const StepHook hook = [&](const StepProgress& p) {
        const double seconds = p.seconds;
        {
          std::lock_guard<std::mutex> lock(mu_);
          job->step = p.step;
          job->total = p.total;
          if (!p.previews.empty() && job->previews_this_run++ >= job->previews_seen) {
            job->partials.push_back(std::make_shared<const std::vector<std::string>>(p.previews));
            done_cv_.notify_all();
          }
          if (step_window_.size() < kStepWindow) {
            step_window_.push_back(seconds);
          } else {
            step_window_[step_next_] = seconds;
          }
          step_next_ = (step_next_ + 1) % kStepWindow;
          step_sum_ += seconds;
          ++step_count_;
        }
        if (job->cancel_requested) throw JobStopped{JobStatus::kCancelled, "cancelled"};
        if (Clock::now() >= job->deadline) {
          throw JobStopped{JobStatus::kTimedOut, "timed out after step " + std::to_string(p.step) +
                                                     " of " + std::to_string(p.total)};
        }
      };
      images = std::make_shared<const std::vector<std::string>>(executor.run(job->request, hook));
      if (job->store_files && !job->forgotten) {
        const bool video = job->request.fps.has_value();
        const char* type = video ? "video/mp4" : format_mime_type(job->request.output_format);
        const std::string ext =
            video ? ".mp4" : std::string(".") + format_name(job->request.output_format);
        for (size_t i = 0; i < images->size(); ++i) {
          const std::string name =
              job->id + (images->size() > 1 ? "_" + std::to_string(i) : std::string()) + ext;
          files.push_back(files_->put((*images)[i], type, name));
        }
        images = nullptr;  // the store holds them
      }
    } catch (const JobStopped& stop) {
      status = stop.status;
      error = stop.why;
    } catch (const WorkerLost& lost) {
      std::lock_guard<std::mutex> lock(mu_);
      --busy_;
      retry(job, lost);
      continue;
    } catch (const std::exception& e) {
      status = JobStatus::kFailed;
      error = e.what();
    }
    std::lock_guard<std::mutex> lock(mu_);
    job->images = std::move(images);
    job->files = std::move(files);
    --busy_;
    finish(*job, status, std::move(error));
  }
}

void Dispatcher::retry(const std::shared_ptr<Job>& job, const WorkerLost& lost) {
  if (job->cancel_requested) return finish(*job, JobStatus::kCancelled, "cancelled");
  if (Clock::now() >= job->deadline) {
    return finish(*job, JobStatus::kTimedOut,
                  std::string("timed out: the worker job died while it ran (") + lost.what() + ")");
  }
  if (lost.charged()) ++job->attempts;
  if (lost.charged() && job->attempts >= max_attempts_) {
    ++failed_after_retries_;
    return finish(*job, JobStatus::kFailed,
                  "the worker job died while running it, on " + std::to_string(job->attempts) +
                      " of " + std::to_string(max_attempts_) +
                      " attempts (--max_attempts); the last time: " + lost.what());
  }
  // Again from its first step, ahead of the jobs that never ran.
  job->status = JobStatus::kQueued;
  job->step = 0;
  job->total = 0;
  job->previews_seen = job->partials.size();
  queue_.push_front(job);
  ++retried_;
  record(*job);
  std::fprintf(stderr, "paradit serve: %s will run again (%s; charged attempts %d of %d): %s\n",
               job->id.c_str(), lost.charged() ? "its run failed" : "it ran beside the failure",
               job->attempts, max_attempts_, lost.what());
  work_cv_.notify_one();
}

std::string Dispatcher::metrics_text(double model_load_seconds) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream os;
  os.precision(9);
  os << "# HELP paradit_queue_depth Jobs waiting in the queue (not running).\n"
        "# TYPE paradit_queue_depth gauge\n"
     << "paradit_queue_depth " << queue_.size() << "\n"
     << "# HELP paradit_queue_depth_max Highest queue depth since the server started.\n"
        "# TYPE paradit_queue_depth_max gauge\n"
     << "paradit_queue_depth_max " << max_depth_ << "\n"
     << "# HELP paradit_queue_capacity Jobs the queue holds at most (--queue_size).\n"
        "# TYPE paradit_queue_capacity gauge\n"
     << "paradit_queue_capacity " << queue_size_ << "\n"
     << "# HELP paradit_busy_workers Workers running a job.\n"
        "# TYPE paradit_busy_workers gauge\n"
     << "paradit_busy_workers " << busy_ << "\n"
     << "# HELP paradit_workers Workers (each runs one job at a time).\n"
        "# TYPE paradit_workers gauge\n"
     << "paradit_workers " << workers_.size() << "\n"
     << "# HELP paradit_requests_retried_total Runs started again because the worker job died "
        "while they ran.\n"
        "# TYPE paradit_requests_retried_total counter\n"
     << "paradit_requests_retried_total " << retried_ << "\n"
     << "# HELP paradit_requests_failed_after_retry_total Requests failed because the worker job "
        "died on each of their --max_attempts runs.\n"
        "# TYPE paradit_requests_failed_after_retry_total counter\n"
     << "paradit_requests_failed_after_retry_total " << failed_after_retries_ << "\n"
     << "# HELP paradit_jobs_resumed_total Jobs a previous server accepted and this one took "
        "back from --state_dir.\n"
        "# TYPE paradit_jobs_resumed_total counter\n"
     << "paradit_jobs_resumed_total " << resumed_ << "\n"
     << "# HELP paradit_requests_total Generation requests by outcome.\n"
        "# TYPE paradit_requests_total counter\n";
  for (const char* s : {"succeeded", "failed", "cancelled", "timed_out", "rejected", "invalid",
                        "unavailable"}) {
    const auto it = requests_.find(s);
    os << "paradit_requests_total{status=\"" << s << "\"} "
       << (it == requests_.end() ? 0 : it->second) << "\n";
  }
  std::vector<double> sorted = step_window_;
  std::sort(sorted.begin(), sorted.end());
  os << "# HELP paradit_step_seconds Wall-clock seconds of one denoising step (quantiles over "
        "the latest "
     << kStepWindow << " steps).\n# TYPE paradit_step_seconds summary\n";
  for (const double q : {0.5, 0.9, 0.99}) {
    os << "paradit_step_seconds{quantile=\"" << q << "\"} ";
    if (sorted.empty()) {
      os << "NaN\n";
    } else {
      const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()));
      os << sorted[i] << "\n";
    }
  }
  os << "paradit_step_seconds_sum " << step_sum_ << "\n"
     << "paradit_step_seconds_count " << step_count_ << "\n"
     << "# HELP paradit_model_load_seconds Seconds to open the model at start.\n"
        "# TYPE paradit_model_load_seconds gauge\n"
     << "paradit_model_load_seconds " << model_load_seconds << "\n";
  return os.str();
}

}  // namespace paradit::server
