#pragma once
// Test harness of tests/server: starts the real `paradit serve` (PARADIT_BINARY) on a free port,
// talks HTTP with httplib's client, decodes answers with code independent of src/server.

#include <httplib.h>
#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace paradit::server_test {

// A running `paradit serve --port 0 ARGS...`; stderr goes to `log`. `launcher` (e.g. mpirun and
// its arguments) runs the binary when given; pid() is then the launcher's.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& args, const std::filesystem::path& log,
                const std::vector<std::string>& launcher = {});
  ~ServerProcess();  // SIGKILL when still running
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  httplib::Client client() const;
  // Sends `signo` and waits up to `seconds` for the exit: the exit code, -1 on a signal death
  // or a timeout (then it is killed).
  int stop(int signo, double seconds);
  // VmRSS from /proc/PID/status, in KiB.
  int64_t rss_kib() const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

// Any other process the tests start (e.g. a worker job for --workers): `argv` with stdout and
// stderr to `log`. SIGKILL on destruction when still running.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  pid_t pid() const { return pid_; }
  // Sends `signo` (0: none) and waits up to `seconds`: the exit code, -1 on a signal death or a
  // timeout (then it is killed).
  int stop(int signo, double seconds);

 private:
  pid_t pid_ = -1;
};

// RFC 4648 base64 decoding (written for the tests, apart from the server's encoder).
std::string decode_base64(const std::string& text);

// The serve flags that make the front end start `np` worker processes with the build's mpirun,
// as the tests run it (as root, oversubscribed on 2 cores); empty when the build has no MPI.
std::vector<std::string> worker_flags(int np);

// A file's whole text ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);

// Whether a process with this pid exists (and is not a zombie).
bool alive(pid_t pid);

}  // namespace paradit::server_test
