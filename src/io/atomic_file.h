#pragma once
// Output files written all at once: the bytes go to a temporary file beside the target, then one
// rename puts them in place, so a reader never sees half a file and a failed write leaves
// nothing behind (the temporary is removed on every error path).
//
// What may be replaced: an absent path or a regular file. A symlink is followed: its final
// target is replaced (the link stays); a directory, device node, FIFO or socket is refused with
// one line naming it (never replaced by a regular file). Temporary files that dead processes
// left for the same target (".NAME.tmp.PID" with no process PID) are removed first.

#include <filesystem>
#include <string>
#include <string_view>

namespace paradit::io {

// The checks AtomicFile makes, without writing: `path` is absent or a regular file (after
// symlinks), its folder exists and takes new files (a probe file is created and removed: read-only
// mounts, /proc and permission denials fail here). One-line error "[FLAG: ]PATH: cannot write
// WHAT: REASON" (WHAT names the kind of file, e.g. "PNG image"; FLAG the command-line flag that
// gave the path, or ""). Returns the path that will be written (symlinks resolved).
std::filesystem::path check_output_path(const std::filesystem::path& path, std::string_view what,
                                        std::string_view flag);

class AtomicFile {
 public:
  // check_output_path(path, what, ""), then the temporary's name (created by the writer).
  AtomicFile(const std::filesystem::path& path, std::string_view what);
  ~AtomicFile();  // removes the temporary unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::filesystem::path& temp_path() const { return temp_; }
  const std::filesystem::path& target() const { return target_; }
  // Renames the temporary onto the target. Error naming the target on failure (the temporary
  // is removed).
  void commit();

 private:
  std::string what_;
  std::filesystem::path target_;
  std::filesystem::path temp_;
  bool committed_ = false;
};

}  // namespace paradit::io
