#include "io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace paradit::io {

namespace fs = std::filesystem;

namespace {

std::string kind_of(const fs::file_status& st) {
  switch (st.type()) {
    case fs::file_type::directory: return "a directory";
    case fs::file_type::character: return "a character device";
    case fs::file_type::block: return "a block device";
    case fs::file_type::fifo: return "a FIFO";
    case fs::file_type::socket: return "a socket";
    default: return "not a regular file";
  }
}

std::string temp_prefix(const fs::path& target) {
  std::string s = ".";  // built by appends: GCC 12 warns falsely on "." + string
  s += target.filename().string();
  s += ".tmp.";
  return s;
}

// Removes ".NAME.tmp.PID" files of `target` whose process no longer exists.
void remove_stale_temps(const fs::path& target) {
  const std::string prefix = temp_prefix(target);
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(target.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::strtol(digits.c_str(), nullptr, 10);
    if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code rm;
      fs::remove(e.path(), rm);
    }
  }
}

}  // namespace

fs::path check_output_path(const fs::path& path, std::string_view what, std::string_view flag) {
  // "[FLAG: ]PATH: cannot write WHAT: REASON", one line.
  std::string head;
  if (!flag.empty()) {
    head += flag;
    head += ": ";
  }
  PARADIT_CHECK(!path.empty(), head, "no file name given for the ", what);
  head += path.string();
  head += ": cannot write ";
  head += what;
  head += ": ";
  std::error_code ec;
  // Replace what a symlink points to, not the link (a dangling link names the file to create).
  fs::path target = path;
  for (int hops = 0; fs::is_symlink(fs::symlink_status(target, ec)); ++hops) {
    PARADIT_CHECK(hops < 40, head, "a loop of symlinks");
    const fs::path next = fs::read_symlink(target, ec);
    PARADIT_CHECK(!ec, head, "a symlink that cannot be read (", ec.message(), ")");
    target = next.is_absolute() ? next : target.parent_path() / next;
  }
  const fs::file_status st = fs::status(target, ec);
  if (fs::exists(st)) {
    PARADIT_CHECK(fs::is_regular_file(st), head, "the path is ", kind_of(st),
                  "; refusing to replace it (give a regular file path)");
    PARADIT_CHECK(::access(target.c_str(), W_OK) == 0, head, "the file exists and is not writable");
  }
  fs::path parent = target.parent_path();
  if (parent.empty()) parent = ".";
  const fs::file_status pst = fs::status(parent, ec);
  PARADIT_CHECK(fs::exists(pst), head, "directory '", parent.string(), "' does not exist");
  PARADIT_CHECK(fs::is_directory(pst), head, "'", parent.string(), "' is ", kind_of(pst),
                ", not a directory");
  // The folder must take a new file: try it (access(W_OK) says yes for root on read-only or
  // virtual file systems such as /proc).
  const fs::path probe = parent / (temp_prefix(target) + "probe." + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  PARADIT_CHECK(fd >= 0, head, "cannot create files in '", parent.string(), "' (",
                std::strerror(errno), ")");
  ::close(fd);
  fs::remove(probe, ec);
  return target;
}

AtomicFile::AtomicFile(const fs::path& path, std::string_view what)
    : what_(what), target_(check_output_path(path, what, "")) {
  remove_stale_temps(target_);
  temp_ = target_.parent_path() / (temp_prefix(target_) + std::to_string(::getpid()));
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  std::error_code ec;
  fs::remove(temp_, ec);
}

void AtomicFile::commit() {
  std::error_code ec;
  fs::rename(temp_, target_, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(temp_, ec);
    fail(target_.string(), ": cannot write ", what_, ": rename failed (", why, ")");
  }
  committed_ = true;
}

}  // namespace paradit::io
