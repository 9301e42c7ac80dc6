#include "server/worker_protocol.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace paradit::server {

namespace {

constexpr char kMagic[4] = {'P', 'D', 'W', '1'};
constexpr uint32_t kMaxMetaBytes = 16u << 20;
constexpr uint64_t kMaxDataBytes = uint64_t{16} << 30;

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

uint64_t get_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

// Writes all of `n` bytes. False when the peer is gone.
bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads exactly `n` bytes: n when done, 0 at end of stream before the first byte, Error when the
// stream ends inside.
size_t read_all(int fd, char* p, size_t n, bool eof_ok) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, p + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (got == 0 && eof_ok) return 0;
      if (r < 0 && (errno == ECONNRESET || errno == EPIPE || errno == ENOTCONN)) {
        if (got == 0 && eof_ok) return 0;
      }
      fail("worker connection: the stream ended inside a frame (", got, " of ", n, " bytes)");
    }
    got += static_cast<size_t>(r);
  }
  return got;
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  PARADIT_CHECK(!path.empty() && path.size() < sizeof(a.sun_path), "worker socket path '", path,
                "': must be 1 to ", sizeof(a.sun_path) - 1, " bytes long, found ", path.size(),
                " (choose a shorter --state_dir or --workers unix:PATH)");
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

// The addresses of a TCP host:port (numeric or by name).
addrinfo* resolve(const Address& address, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  const bool any = address.host.empty() || address.host == "*" || address.host == "0.0.0.0";
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  const int rc = ::getaddrinfo(any && passive ? nullptr : address.host.c_str(), port.c_str(),
                               &hints, &found);
  PARADIT_CHECK(rc == 0 && found != nullptr, "worker address '", address.text(),
                "': cannot resolve the host (", ::gai_strerror(rc), ")");
  return found;
}

}  // namespace

std::string Address::text() const {
  return unix_socket ? "unix:" + path : host + ":" + std::to_string(port);
}

Address parse_address(const std::string& text, const std::string& flag) {
  Address a;
  if (text.rfind("unix:", 0) == 0 || text.find('/') != std::string::npos) {
    a.unix_socket = true;
    a.path = text.rfind("unix:", 0) == 0 ? text.substr(5) : text;
    unix_address(a.path);  // checks the length
    return a;
  }
  const size_t colon = text.rfind(':');
  const std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
  PARADIT_CHECK(colon != std::string::npos && !port.empty() && port.size() <= 5 &&
                    port.find_first_not_of("0123456789") == std::string::npos,
                flag, ": expected unix:PATH, a socket path, or HOST:PORT, found '", text, "'");
  a.unix_socket = false;
  a.host = text.substr(0, colon);
  if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']') {
    a.host = a.host.substr(1, a.host.size() - 2);  // [::1]:7000
  }
  a.port = std::stoi(port);
  PARADIT_CHECK(a.port >= 1 && a.port <= 65535, flag, ": port must be in [1, 65535], found ",
                a.port);
  return a;
}

Socket::~Socket() {
  if (fd_ >= 0) ::close(fd_);
}

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

int Socket::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void Socket::shutdown() const {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

Socket listen_on(const Address& address) {
  if (address.unix_socket) {
    const sockaddr_un a = unix_address(address.path);
    Socket s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    PARADIT_CHECK(s.valid(), "worker socket: socket() failed: ", std::strerror(errno));
    ::unlink(address.path.c_str());  // a socket file left by a server that died
    PARADIT_CHECK(::bind(s.fd(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0,
                  "worker socket ", address.text(), ": cannot bind (", std::strerror(errno), ")");
    ::chmod(address.path.c_str(), S_IRUSR | S_IWUSR);
    PARADIT_CHECK(::listen(s.fd(), 8) == 0, "worker socket ", address.text(),
                  ": listen failed (", std::strerror(errno), ")");
    return s;
  }
  addrinfo* found = resolve(address, /*passive=*/true);
  std::string why = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    Socket s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!s.valid()) continue;
    const int one = 1;
    ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.fd(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(s.fd(), 8) == 0) {
      ::freeaddrinfo(found);
      return s;
    }
    why = std::strerror(errno);
  }
  ::freeaddrinfo(found);
  fail("worker address ", address.text(), ": cannot listen (", why, ")");
}

Socket accept_connection(const Socket& listener, int timeout_ms) {
  pollfd p{listener.fd(), POLLIN, 0};
  const int rc = ::poll(&p, 1, timeout_ms);
  if (rc <= 0) return Socket();
  Socket s(::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
  if (s.valid()) {
    const int one = 1;
    ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails on Unix: fine
  }
  return s;
}

Socket connect_to(const Address& address, double timeout_seconds) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(timeout_seconds));
  std::string why;
  auto nap = std::chrono::milliseconds(20);
  for (;;) {
    if (address.unix_socket) {
      const sockaddr_un a = unix_address(address.path);
      Socket s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (s.valid() && ::connect(s.fd(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) {
        return s;
      }
      why = std::strerror(errno);
    } else {
      addrinfo* found = nullptr;
      try {
        found = resolve(address, /*passive=*/false);
      } catch (const Error& e) {
        why = e.what();
      }
      for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
        Socket s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
        if (s.valid() && ::connect(s.fd(), ai->ai_addr, ai->ai_addrlen) == 0) {
          ::freeaddrinfo(found);
          const int one = 1;
          ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          return s;
        }
        why = std::strerror(errno);
      }
      if (found != nullptr) ::freeaddrinfo(found);
    }
    PARADIT_CHECK(std::chrono::steady_clock::now() < deadline, "cannot connect to the front end at ",
                  address.text(), " within ", timeout_seconds, " s (", why, ")");
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, std::chrono::milliseconds(500));
  }
}

bool write_frame(int fd, const Frame& frame) {
  const std::string meta = frame.meta.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string head(kMagic, sizeof kMagic);
  put_le(head, meta.size(), 4);
  head += meta;
  put_le(head, frame.data.size(), 8);
  return write_all(fd, head.data(), head.size()) &&
         write_all(fd, frame.data.data(), frame.data.size());
}

bool read_frame(int fd, Frame* frame) {
  char magic[8];
  if (read_all(fd, magic, 4, /*eof_ok=*/true) == 0) return false;
  PARADIT_CHECK(std::memcmp(magic, kMagic, 4) == 0,
                "worker connection: not a paradit worker frame (bad magic)");
  unsigned char len[8];
  read_all(fd, reinterpret_cast<char*>(len), 4, false);
  const uint64_t meta_bytes = get_le(len, 4);
  PARADIT_CHECK(meta_bytes <= kMaxMetaBytes, "worker connection: frame metadata of ", meta_bytes,
                " bytes (at most ", kMaxMetaBytes, ")");
  std::string meta(meta_bytes, '\0');
  read_all(fd, meta.data(), meta.size(), false);
  read_all(fd, reinterpret_cast<char*>(len), 8, false);
  const uint64_t data_bytes = get_le(len, 8);
  PARADIT_CHECK(data_bytes <= kMaxDataBytes, "worker connection: frame data of ", data_bytes,
                " bytes (at most ", kMaxDataBytes, ")");
  frame->data.assign(data_bytes, '\0');
  read_all(fd, frame->data.data(), frame->data.size(), false);
  frame->meta = Json::parse(meta, nullptr, /*allow_exceptions=*/false);
  PARADIT_CHECK(frame->meta.is_object(), "worker connection: frame metadata is not a JSON object");
  return true;
}

Json request_to_json(const ImageRequest& r) {
  Json j = {{"prompt", r.prompt}, {"n", r.n}, {"height", r.height}, {"width", r.width},
            {"seed", r.seed}};
  if (r.negative_prompt) j["negative_prompt"] = *r.negative_prompt;
  if (r.num_inference_steps) j["num_inference_steps"] = *r.num_inference_steps;
  if (r.guidance_scale) j["guidance_scale"] = *r.guidance_scale;  // exact: shortest round trip
  if (r.num_frames) j["num_frames"] = *r.num_frames;
  if (r.fps) j["fps"] = *r.fps;
  j["output_format"] = format_name(r.output_format);
  j["output_compression"] = r.output_compression;
  j["partial_images"] = r.partial_images;
  if (r.use_fbcache) j["use_fbcache"] = true;
  if (r.use_teacache) j["use_teacache"] = true;
  if (r.fbcache_threshold) j["fbcache_threshold"] = *r.fbcache_threshold;
  if (r.teacache_threshold) j["teacache_threshold"] = *r.teacache_threshold;
  if (r.cache_warmup_steps != 0) j["cache_warmup_steps"] = r.cache_warmup_steps;
  return j;
}

ImageRequest request_from_json(const Json& j) {
  try {
    ImageRequest r;
    r.prompt = j.at("prompt").get<std::string>();
    r.n = j.at("n").get<int>();
    r.height = j.at("height").get<int64_t>();
    r.width = j.at("width").get<int64_t>();
    r.seed = j.at("seed").get<uint64_t>();
    if (j.contains("negative_prompt")) r.negative_prompt = j["negative_prompt"].get<std::string>();
    if (j.contains("num_inference_steps")) {
      r.num_inference_steps = j["num_inference_steps"].get<int>();
    }
    if (j.contains("guidance_scale")) r.guidance_scale = j["guidance_scale"].get<double>();
    if (j.contains("num_frames")) r.num_frames = j["num_frames"].get<int64_t>();
    if (j.contains("fps")) r.fps = j["fps"].get<double>();
    const std::string format = j.at("output_format").get<std::string>();
    r.output_format = format == "jpeg"   ? ImageFormat::kJpeg
                      : format == "webp" ? ImageFormat::kWebp
                                         : ImageFormat::kPng;
    r.output_compression = j.at("output_compression").get<int>();
    r.partial_images = j.at("partial_images").get<int>();
    // Step caching (absent in requests stored before it existed: off).
    r.use_fbcache = j.value("use_fbcache", false);
    r.use_teacache = j.value("use_teacache", false);
    if (j.contains("fbcache_threshold")) r.fbcache_threshold = j["fbcache_threshold"].get<double>();
    if (j.contains("teacache_threshold")) {
      r.teacache_threshold = j["teacache_threshold"].get<double>();
    }
    r.cache_warmup_steps = j.value("cache_warmup_steps", 0);
    return r;
  } catch (const Json::exception& e) {
    fail("a stored or sent request is malformed (", e.what(), ")");
  }
}

std::string pack_files(const std::vector<std::string>& files) {
  std::string out;
  for (const std::string& f : files) {
    put_le(out, f.size(), 8);
    out += f;
  }
  return out;
}

std::vector<std::string> unpack_files(const std::string& bytes) {
  std::vector<std::string> files;
  size_t at = 0;
  while (at < bytes.size()) {
    PARADIT_CHECK(at + 8 <= bytes.size(), "worker connection: truncated file list");
    const uint64_t n = get_le(reinterpret_cast<const unsigned char*>(bytes.data() + at), 8);
    at += 8;
    PARADIT_CHECK(n <= bytes.size() - at, "worker connection: truncated file list");
    files.push_back(bytes.substr(at, n));
    at += n;
  }
  return files;
}

}  // namespace paradit::server
