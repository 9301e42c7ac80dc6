#pragma once
// The job queue of `paradit serve`: a bounded FIFO of generation jobs served in arrival order by
// one worker thread per Executor (one per data-parallel group). Jobs can be cancelled or time out;
// either stops the job at the next denoising step boundary and frees its worker. A job's previews
// (streaming) are kept as they come, for wait() to hand out. Also keeps the counters that
// GET /metrics reports.
//
// Recovery: while the worker job is down (set_available(false)) no job starts. A job whose run
// ends with WorkerLost is queued again at the front (its seed and layout unchanged, so it gives
// the same pixels), unless that was its --max_attempts'th charged run: then it fails with the
// cause. With a JobStore, every kept job (jobs and videos APIs) is recorded when accepted,
// retried and ended, and resume() takes back what a previous server recorded.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/executor.h"
#include "server/file_store.h"
#include "server/request.h"

namespace paradit::server {

enum class JobStatus { kQueued, kRunning, kSucceeded, kFailed, kCancelled, kTimedOut };
const char* status_name(JobStatus status);
bool is_final(JobStatus status);

// A copy of a job's state, taken under the dispatcher's lock.
struct JobView {
  std::string id;
  JobStatus status = JobStatus::kQueued;
  int step = 0;   // steps done
  int total = 0;  // 0 until the denoising loop starts
  double created = 0;   // unix seconds
  double finished = 0;  // unix seconds; 0 until the job ends
  std::string error;    // failed / cancelled / timed_out: why
  // Succeeded: the image files in the request's output format (video models: MP4 files). Null
  // when the results went to the file store (SubmitOptions::store_files): see `files`.
  std::shared_ptr<const std::vector<std::string>> images;
  std::vector<std::string> files;  // file store ids, one per result (store_files)
  // The previews so far (streaming), oldest first; each holds one file per image.
  std::vector<std::shared_ptr<const std::vector<std::string>>> partials;
  ImageRequest request;       // as submitted
  std::optional<double> fps;  // video models: the MP4s' frame rate
  int attempts = 0;           // runs that ended with the worker job dying, charged to it
};

struct Job;
class JobStore;

class Dispatcher {
 public:
  enum class Submit { kAccepted, kQueueFull, kClosed };
  struct SubmitOptions {
    // The job stays findable by id (the jobs and videos APIs) after it ends, until newer ones
    // push it out or it is forgotten.
    bool keep = false;
    std::string id_prefix = "job";  // ids read "<prefix>_<16 hex digits>"
    // The results go to the file store (for url answers and video downloads) instead of the job.
    bool store_files = false;
  };

  // `queue_size`: jobs waiting (not running) at most. `timeout_seconds`: from submission to the
  // end of the job. `files` (may be null when no job stores files) and `store` (null: nothing is
  // recorded) must outlive the dispatcher. `max_attempts`: charged runs a job may have.
  Dispatcher(std::vector<std::unique_ptr<Executor>> executors, size_t queue_size,
             double timeout_seconds, FileStore* files = nullptr, JobStore* store = nullptr,
             int max_attempts = 2);
  ~Dispatcher();  // cancels what is left and joins the workers
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Checks the request against the pipeline (BadRequest), records it (kept jobs; Error when the
  // store cannot), then queues it.
  Submit submit(const ImageRequest& request, const SubmitOptions& options, std::string* id);
  // Takes back the jobs the store holds (call once, before any submit): the ended ones to be
  // read, the others queued again in their submission order. Returns how many were queued.
  size_t resume();
  // Whether jobs may start (the worker job is up). Jobs wait in the queue while it is not.
  void set_available(bool available);
  // Ends the queued jobs whose time is up (they cannot wait for a worker that is down).
  void expire_waiting();
  // Blocks until the job ends, or (partials_seen given) until it has more than `partials_seen`
  // previews; its state then. A job that is not kept is forgotten once its final state is read.
  JobView wait(const std::string& id, size_t partials_seen = SIZE_MAX);
  // False when no kept job has this id.
  bool view(const std::string& id, JobView* out) const;
  // The kept jobs whose ids start with `prefix` + "_", oldest first.
  std::vector<JobView> list(const std::string& prefix) const;
  // Asks the job to stop: a queued job ends now, a running one at its next step boundary.
  // False when no kept job has this id.
  bool cancel(const std::string& id);
  // Cancels a kept job if it still runs and forgets it (its stored files too). False when no kept
  // job has this id.
  bool forget(const std::string& id);
  // The client of a job that is not kept went away: cancel it and forget it when it ends.
  void abandon(const std::string& id);
  void cancel_all();

  // Draining: no new jobs (submit answers kClosed); true once nothing is queued or running.
  void close();
  bool closed() const;
  bool idle() const;

  // Requests refused before queueing, for the counters ("invalid", "rejected", ...).
  void count_request(const std::string& status);
  // Prometheus text exposition of the queue and the counters.
  std::string metrics_text(double model_load_seconds) const;
  size_t queue_size() const { return queue_size_; }

 private:
  void work(Executor& executor);
  void retry(const std::shared_ptr<Job>& job, const WorkerLost& lost);  // under mu_
  void finish(Job& job, JobStatus status, std::string error);  // under mu_
  void record(const Job& job, bool insert = false);            // under mu_ (kept jobs)
  void unrecord(const std::string& id);                        // under mu_ (kept jobs)
  std::shared_ptr<Job> find(const std::string& id) const;     // under mu_
  void erase(const std::string& id);                          // under mu_

  const size_t queue_size_;
  const std::chrono::duration<double> timeout_;
  std::vector<std::unique_ptr<Executor>> executors_;
  FileStore* const files_;
  JobStore* const store_;
  const int max_attempts_;
  std::vector<std::thread> workers_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // a job was queued, or stopping
  std::condition_variable done_cv_;  // a job ended
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;  // every live job and the kept ended ones
  std::deque<std::string> kept_order_;                // kept job ids, oldest first
  bool closed_ = false;
  bool stopping_ = false;
  bool available_ = true;
  int busy_ = 0;
  size_t max_depth_ = 0;
  uint64_t next_id_ = 0;
  uint64_t id_salt_ = 0;

  std::map<std::string, uint64_t> requests_;  // by final status
  uint64_t retried_ = 0;                      // runs again after the worker job died
  uint64_t failed_after_retries_ = 0;         // failed: --max_attempts charged runs
  uint64_t resumed_ = 0;                      // queued again from the store at start
  std::vector<double> step_window_;           // the latest step seconds (ring)
  size_t step_next_ = 0;
  double step_sum_ = 0;
  uint64_t step_count_ = 0;
};

}  // namespace paradit::server
