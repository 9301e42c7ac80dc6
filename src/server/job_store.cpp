#include "server/job_store.h"

#include <sqlite3.h>

#include <algorithm>

#include "core/error.h"
#include "server/worker_protocol.h"

namespace paradit::server {

namespace {

constexpr const char* kSchemaVersion = "1";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  store_files INTEGER NOT NULL,
  request TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  step INTEGER NOT NULL,
  total INTEGER NOT NULL,
  created REAL NOT NULL,
  deadline REAL NOT NULL,
  finished REAL NOT NULL,
  error TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS job_results (
  job_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  bytes BLOB,
  file_id TEXT,
  PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS files (
  id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  filename TEXT NOT NULL,
  content_type TEXT NOT NULL,
  bytes BLOB NOT NULL,
  created REAL NOT NULL,
  expires REAL NOT NULL
);
)sql";

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql, const JobStore& store) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      fail("state database ", store.path().string(), ": ", sqlite3_errmsg(db), " (preparing ",
           sql, ")");
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& text(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& blob(int i, const std::string& s) {
    sqlite3_bind_blob64(stmt_, i, s.data(), s.size(), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& null(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  Statement& integer(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& real(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  // SQLITE_ROW / SQLITE_DONE; anything else → false with the error left in the database.
  int step() { return sqlite3_step(stmt_); }

  std::string column_text(int i) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, i));
  }
  std::string column_blob(int i) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, i));
  }
  bool column_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  int64_t column_int(int i) const { return sqlite3_column_int64(stmt_, i); }
  double column_real(int i) const { return sqlite3_column_double(stmt_, i); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

JobStore::JobStore(const std::filesystem::path& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    fail("--state_dir: cannot open the state database ", path.string(), " (", why, ")");
  }
  sqlite3_busy_timeout(db_, 5000);
  // WAL: readers never wait for the writer; FULL: a committed job survives a power cut too.
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
  exec(kSchema);
  const std::string version = meta("schema");
  if (version.empty()) {
    set_meta("schema", kSchemaVersion);
  } else {
    PARADIT_CHECK(version == kSchemaVersion, "--state_dir: ", path.string(), " has schema version ",
                  version, ", this paradit reads version ", kSchemaVersion);
  }
}

JobStore::~JobStore() { sqlite3_close(db_); }

void JobStore::exec(const char* sql) const {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string why = message != nullptr ? message : sqlite3_errmsg(db_);
    sqlite3_free(message);
    fail("state database ", path_.string(), ": ", why);
  }
}

void JobStore::fail_sqlite(const char* what) const {
  fail("state database ", path_.string(), ": cannot ", what, " (", sqlite3_errmsg(db_), ")");
}

std::string JobStore::meta(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, "SELECT value FROM meta WHERE key = ?", *this);
  s.text(1, key);
  return s.step() == SQLITE_ROW ? s.column_text(0) : std::string();
}

void JobStore::set_meta(const std::string& key, const std::string& value) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", *this);
  s.text(1, key).text(2, value);
  if (s.step() != SQLITE_DONE) fail_sqlite("write meta");
}

void JobStore::insert(const StoredJob& j) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_,
              "INSERT INTO jobs (id, seq, store_files, request, status, attempts, step, total, "
              "created, deadline, finished, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              *this);
  s.text(1, j.id)
      .integer(2, static_cast<int64_t>(j.seq))
      .integer(3, j.store_files ? 1 : 0)
      .text(4, request_to_json(j.request).dump())
      .text(5, j.status)
      .integer(6, j.attempts)
      .integer(7, j.step)
      .integer(8, j.total)
      .real(9, j.created)
      .real(10, j.deadline)
      .real(11, j.finished)
      .text(12, j.error);
  if (s.step() != SQLITE_DONE) fail_sqlite("record the job");
}

void JobStore::update(const StoredJob& j) {
  std::lock_guard<std::mutex> lock(mu_);
  exec("BEGIN IMMEDIATE");
  try {
    Statement s(db_,
                "UPDATE jobs SET status = ?, attempts = ?, step = ?, total = ?, finished = ?, "
                "error = ? WHERE id = ?",
                *this);
    s.text(1, j.status)
        .integer(2, j.attempts)
        .integer(3, j.step)
        .integer(4, j.total)
        .real(5, j.finished)
        .text(6, j.error)
        .text(7, j.id);
    if (s.step() != SQLITE_DONE) fail_sqlite("update the job");
    Statement clear(db_, "DELETE FROM job_results WHERE job_id = ?", *this);
    clear.text(1, j.id);
    if (clear.step() != SQLITE_DONE) fail_sqlite("update the job's results");
    const size_t count = std::max(j.images.size(), j.files.size());
    for (size_t i = 0; i < count; ++i) {
      Statement r(db_, "INSERT INTO job_results (job_id, idx, bytes, file_id) VALUES (?, ?, ?, ?)",
                  *this);
      r.text(1, j.id).integer(2, static_cast<int64_t>(i));
      if (i < j.images.size()) {
        r.blob(3, j.images[i]);
      } else {
        r.null(3);
      }
      if (i < j.files.size()) {
        r.text(4, j.files[i]);
      } else {
        r.null(4);
      }
      if (r.step() != SQLITE_DONE) fail_sqlite("store the job's results");
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void JobStore::remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const char* sql :
       {"DELETE FROM job_results WHERE job_id = ?", "DELETE FROM jobs WHERE id = ?"}) {
    Statement s(db_, sql, *this);
    s.text(1, id);
    if (s.step() != SQLITE_DONE) fail_sqlite("forget the job");
  }
}

std::vector<StoredJob> JobStore::jobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<StoredJob> out;
  Statement s(db_,
              "SELECT id, seq, store_files, request, status, attempts, step, total, created, "
              "deadline, finished, error FROM jobs ORDER BY seq",
              *this);
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    StoredJob j;
    j.id = s.column_text(0);
    j.seq = static_cast<uint64_t>(s.column_int(1));
    j.store_files = s.column_int(2) != 0;
    j.request = request_from_json(Json::parse(s.column_text(3), nullptr, false));
    j.status = s.column_text(4);
    j.attempts = static_cast<int>(s.column_int(5));
    j.step = static_cast<int>(s.column_int(6));
    j.total = static_cast<int>(s.column_int(7));
    j.created = s.column_real(8);
    j.deadline = s.column_real(9);
    j.finished = s.column_real(10);
    j.error = s.column_text(11);
    out.push_back(std::move(j));
  }
  if (rc != SQLITE_DONE) fail_sqlite("read the jobs");
  for (StoredJob& j : out) {
    Statement r(db_, "SELECT bytes, file_id FROM job_results WHERE job_id = ? ORDER BY idx",
                *this);
    r.text(1, j.id);
    while ((rc = r.step()) == SQLITE_ROW) {
      if (!r.column_null(0)) j.images.push_back(r.column_blob(0));
      if (!r.column_null(1)) j.files.push_back(r.column_text(1));
    }
    if (rc != SQLITE_DONE) fail_sqlite("read the results");
  }
  return out;
}

void JobStore::put_file(const StoredFile& f, uint64_t seq) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_,
              "INSERT OR REPLACE INTO files (id, seq, filename, content_type, bytes, created, "
              "expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
              *this);
  s.text(1, f.id)
      .integer(2, static_cast<int64_t>(seq))
      .text(3, f.filename)
      .text(4, f.content_type)
      .blob(5, *f.bytes)
      .real(6, f.created)
      .real(7, f.expires);
  if (s.step() != SQLITE_DONE) fail_sqlite("store the file");
}

void JobStore::remove_file(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, "DELETE FROM files WHERE id = ?", *this);
  s.text(1, id);
  if (s.step() != SQLITE_DONE) fail_sqlite("forget the file");
}

std::vector<StoredFile> JobStore::files() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<StoredFile> out;
  Statement s(db_,
              "SELECT id, filename, content_type, bytes, created, expires FROM files "
              "ORDER BY created, seq",
              *this);
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    StoredFile f;
    f.id = s.column_text(0);
    f.filename = s.column_text(1);
    f.content_type = s.column_text(2);
    f.bytes = std::make_shared<const std::string>(s.column_blob(3));
    f.created = s.column_real(4);
    f.expires = s.column_real(5);
    out.push_back(std::move(f));
  }
  if (rc != SQLITE_DONE) fail_sqlite("read the files");
  return out;
}

}  // namespace paradit::server
