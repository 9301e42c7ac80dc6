#include "server/file_store.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <random>

#include "core/error.h"
#include "server/job_store.h"

namespace paradit::server {

namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

FileStore::FileStore(double ttl_seconds, size_t max_bytes)
    : ttl_(ttl_seconds), max_bytes_(max_bytes) {
  PARADIT_CHECK(ttl_seconds > 0, "--result_ttl: must be positive seconds, found ", ttl_seconds);
  salt_ = std::random_device{}();
  salt_ = (salt_ << 32) ^ std::random_device{}();
}

void FileStore::persist_to(JobStore* store) {
  const double now = unix_now();
  std::vector<StoredFile> kept = store->files();
  std::lock_guard<std::mutex> lock(mu_);
  db_ = store;
  for (StoredFile& f : kept) {
    if (f.expires <= now) {
      forget(f.id);
      continue;
    }
    total_ += f.bytes->size();
    order_.push_back(f.id);
    files_[f.id] = std::move(f);
  }
  next_ = kept.size();
  sweep(now);
}

void FileStore::forget(const std::string& id) {
  if (db_ == nullptr) return;
  try {
    db_->remove_file(id);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "paradit serve: %s\n", e.what());
  }
}

std::string FileStore::put(std::string bytes, std::string content_type, std::string filename) {
  const double now = unix_now();
  std::lock_guard<std::mutex> lock(mu_);
  char id[40];
  // Not guessable from another client's id: a counter scrambled and salted per server.
  std::snprintf(id, sizeof id, "file-%016" PRIx64,
                (next_++ * uint64_t{0x9E3779B97F4A7C15}) ^ salt_);
  StoredFile f;
  f.id = id;
  f.filename = std::move(filename);
  f.content_type = std::move(content_type);
  f.bytes = std::make_shared<const std::string>(std::move(bytes));
  f.created = now;
  f.expires = now + ttl_;
  total_ += f.bytes->size();
  order_.push_back(f.id);
  if (db_ != nullptr) {
    try {
      db_->put_file(f, next_);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "paradit serve: %s (the file is kept in memory only)\n", e.what());
    }
  }
  files_[f.id] = std::move(f);
  sweep(now);
  return id;
}

std::optional<StoredFile> FileStore::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  sweep(unix_now());
  const auto it = files_.find(id);
  if (it == files_.end()) return std::nullopt;
  return it->second;
}

bool FileStore::remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = files_.find(id);
  if (it == files_.end()) return false;
  total_ -= it->second.bytes->size();
  files_.erase(it);
  forget(id);
  return true;
}

size_t FileStore::files() const {
  std::lock_guard<std::mutex> lock(mu_);
  return files_.size();
}

size_t FileStore::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

void FileStore::sweep(double now) {
  // Oldest first: every file expires ttl_ after it was stored, so the expired ones lead.
  while (!order_.empty()) {
    const auto it = files_.find(order_.front());
    if (it == files_.end()) {  // removed earlier
      order_.pop_front();
      continue;
    }
    // The newest file stays even when it alone is over the bound (its client is about to read it).
    if (it->second.expires > now && (total_ <= max_bytes_ || files_.size() == 1)) break;
    total_ -= it->second.bytes->size();
    forget(it->first);
    files_.erase(it);
    order_.pop_front();
  }
}

}  // namespace paradit::server
