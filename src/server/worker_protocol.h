#pragma once
// How `paradit serve` (the front end) and rank 0 of its worker job (`paradit worker`) talk: one
// stream socket, which the front end listens on and rank 0 connects to (a Unix socket path, or
// HOST:PORT when rank 0 runs on another host), carrying frames:
//
//   "PDW1"  u32 meta length (little-endian)  meta: a JSON object, "type" says what it is
//           u64 data length (little-endian)  data: bytes (packed image files, see pack_files)
//
// worker → front end                          front end → worker
//   hello    {protocol, token, world, groups,   run     {seq, group, job, request}
//             group_size, pipeline, ranks:     cancel  {seq, group}: stop at the next step
//             [{rank, host, pid, addrs}]}      stop    {}: no job runs; end the worker job
//   progress {seq, group, step, total,
//             seconds} + the step's previews
//   done     {seq, group} + the files
//   failed   {seq, group, error}
//   stopped  {seq, group}  (after a cancel)
//
// Each group runs one job at a time; `seq` (the front end's number for one run of a job) tells
// a late answer from the current one. A run ends with exactly one of done, failed, stopped. The
// socket closing is how each side learns that the other is gone.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/request.h"

namespace paradit::server {

using Json = nlohmann::json;

constexpr int kWorkerProtocol = 1;

// Where the front end listens for the worker job: "unix:PATH" (or a PATH holding a '/'), or
// "HOST:PORT" (TCP; HOST may be "0.0.0.0" or "*" to listen on every address).
struct Address {
  bool unix_socket = true;
  std::string path;  // unix
  std::string host;  // tcp
  int port = 0;      // tcp
  std::string text() const;
};
// Error naming `flag` when `text` is none of the forms above.
Address parse_address(const std::string& text, const std::string& flag);

// An owned file descriptor (closed on destruction).
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket();
  Socket(Socket&& other) noexcept : fd_(other.release()) {}
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release();
  // Wakes a thread blocked reading it (both directions shut down); the fd stays open.
  void shutdown() const;

 private:
  int fd_ = -1;
};

// A listening socket at `address` (a stale Unix socket file is replaced; the file is made
// owner-only). Error naming the address when it cannot be bound.
Socket listen_on(const Address& address);
// The next connection, or an invalid socket after `timeout_ms` without one.
Socket accept_connection(const Socket& listener, int timeout_ms);
// Connects to `address`, retrying until `timeout_seconds` have passed (the other side may not
// listen yet). Error naming the address after that.
Socket connect_to(const Address& address, double timeout_seconds);

struct Frame {
  Json meta = Json::object();
  std::string data;
  std::string type() const { return meta.value("type", ""); }
};
// Writes one frame. False when the peer is gone (nothing is raised: the reader learns it).
bool write_frame(int fd, const Frame& frame);
// Reads one frame. False when the peer closed the socket (or it was shut down) between frames;
// Error on a malformed or truncated frame.
bool read_frame(int fd, Frame* frame);

// A request as the worker job gets it, and back; every field exact (the seed, the guidance as the
// shortest round trip), so a retried request draws the same latents.
Json request_to_json(const ImageRequest& request);
ImageRequest request_from_json(const Json& json);

// Files (images, MP4s) as one byte string: each file's length (8 bytes, little-endian), then it.
std::string pack_files(const std::vector<std::string>& files);
// Error on truncated input.
std::vector<std::string> unpack_files(const std::string& bytes);

}  // namespace paradit::server
