#pragma once
// The durable state of `paradit serve`: an SQLite database (STATE_DIR/jobs.sqlite3, WAL journal,
// synchronous=FULL) holding every job of the jobs and videos APIs — parameters, state, attempts,
// results — and the files kept for download (url answers, videos). A job is written before the
// client is told it was accepted, and again when it is retried or ends, so a front end that
// dies (kill -9 included) and starts again with the same --state_dir resumes the jobs that had
// not ended and serves the results of those that had until they expire.
//
// Schema (version 1):
//   meta(key TEXT PRIMARY KEY, value TEXT)          schema, model, created
//   jobs(id TEXT PRIMARY KEY, seq INTEGER, store_files INTEGER, request TEXT (JSON),
//        status TEXT, attempts INTEGER, step INTEGER, total INTEGER,
//        created REAL, deadline REAL, finished REAL (unix seconds), error TEXT)
//   job_results(job_id TEXT, idx INTEGER, bytes BLOB, file_id TEXT, PRIMARY KEY(job_id, idx))
//   files(id TEXT PRIMARY KEY, seq INTEGER, filename TEXT, content_type TEXT, bytes BLOB,
//         created REAL, expires REAL)
// Synchronous image requests are not stored: their answer goes to a connection that dies with
// the front end (they do survive a worker restart, which the front end outlives).
//
// Thread-safe (one connection behind a mutex). Every failure is an Error naming the database
// file and SQLite's message.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/file_store.h"
#include "server/request.h"

struct sqlite3;

namespace paradit::server {

struct StoredJob {
  std::string id;
  uint64_t seq = 0;
  bool store_files = false;
  ImageRequest request;
  std::string status;  // status_name(): queued, running, succeeded, ...
  int attempts = 0;    // runs that ended with the worker job dying, charged to this job
  int step = 0;
  int total = 0;
  double created = 0;   // unix seconds
  double deadline = 0;  // unix seconds
  double finished = 0;  // unix seconds; 0 while it has not ended
  std::string error;
  std::vector<std::string> images;  // succeeded, results inline (b64_json answers)
  std::vector<std::string> files;   // succeeded, results in the file store (ids)
};

class JobStore {
 public:
  // Opens (creating when missing) `path`. Error when it cannot, or when it holds another schema.
  explicit JobStore(const std::filesystem::path& path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string meta(const std::string& key) const;  // empty when unset
  void set_meta(const std::string& key, const std::string& value);

  void insert(const StoredJob& job);
  // Everything but id, seq, request and created: state, attempts, progress, end, results.
  void update(const StoredJob& job);
  void remove(const std::string& id);
  std::vector<StoredJob> jobs() const;  // by seq

  void put_file(const StoredFile& file, uint64_t seq);
  void remove_file(const std::string& id);
  std::vector<StoredFile> files() const;  // oldest first

 private:
  void exec(const char* sql) const;
  [[noreturn]] void fail_sqlite(const char* what) const;

  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  mutable std::mutex mu_;
};

}  // namespace paradit::server
