#pragma once
// Results kept for a while so clients can fetch them by id: the images of response_format "url"
// answers (GET /v1/files/{id}/content) and the MP4s of the videos API
// (GET /v1/videos/{id}/content). Each file expires `ttl` seconds after it was stored
// (--result_ttl); the store also holds at most `max_bytes` in all, forgetting the oldest files
// first, so memory stays bounded whatever the clients do. With a JobStore (persist_to) every file
// is also written to the state database, and the files a previous server kept are served again
// until they expire. Thread-safe.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace paradit::server {

class JobStore;

struct StoredFile {
  std::string id;            // "file-…"
  std::string filename;      // e.g. "job_….png"
  std::string content_type;  // e.g. "image/png"
  std::shared_ptr<const std::string> bytes;
  double created = 0;  // unix seconds
  double expires = 0;  // unix seconds
};

class FileStore {
 public:
  FileStore(double ttl_seconds, size_t max_bytes);

  // Writes every file to `store` from now on (which must outlive this), after taking back the
  // unexpired files it holds. A failed write is logged; the file is still served from memory.
  void persist_to(JobStore* store);

  // Keeps `bytes` and returns the new file's id.
  std::string put(std::string bytes, std::string content_type, std::string filename);
  // The file, or nothing when the id is unknown, expired or evicted.
  std::optional<StoredFile> get(const std::string& id);
  // False when the id is unknown.
  bool remove(const std::string& id);

  double ttl_seconds() const { return ttl_; }
  size_t files() const;
  size_t bytes() const;

 private:
  void sweep(double now);  // under mu_: drops the expired files and the oldest beyond max_bytes_
  void forget(const std::string& id);  // under mu_: from the database too

  const double ttl_;
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::map<std::string, StoredFile> files_;
  std::deque<std::string> order_;  // ids, oldest first (may hold removed ones)
  size_t total_ = 0;
  uint64_t next_ = 0;
  uint64_t salt_ = 0;
  JobStore* db_ = nullptr;
};

}  // namespace paradit::server
