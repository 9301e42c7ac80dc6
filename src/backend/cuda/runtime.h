#pragma once
// CUDA runtime basics of the backend: device queries, the stream every op of this thread runs
// on, RAII streams and events. No CUDA header is needed to use it (the stream type is the
// runtime's opaque handle, declared here), so tests and benchmarks include it freely.

#include <string>

struct CUstream_st;  // cudaStream_t is CUstream_st*
struct CUevent_st;   // cudaEvent_t is CUevent_st*

namespace paradit::backend::cuda {

using StreamHandle = CUstream_st*;
using EventHandle = CUevent_st*;

// Number of usable devices; 0 when there is no device or no driver (never throws).
int device_count();
bool available();  // device_count() > 0
int current_device();
void set_device(int device);
std::string device_name(int device);
// major·10 + minor, e.g. 90 for an H100.
int compute_capability(int device);
// Waits for all work on the current device.
void synchronize_device();

// The stream the backend's ops of the calling thread enqueue on; nullptr is the legacy default
// stream (the initial value).
StreamHandle current_stream();

// An owned stream (non-blocking with respect to the legacy default stream). Move-only.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  StreamHandle handle() const { return handle_; }
  void synchronize() const;

 private:
  StreamHandle handle_ = nullptr;
};

// Makes `stream` the calling thread's current stream for the guard's lifetime.
class StreamGuard {
 public:
  explicit StreamGuard(StreamHandle stream);
  explicit StreamGuard(const Stream& stream) : StreamGuard(stream.handle()) {}
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  StreamHandle previous_;
};

// Waits for all work enqueued so far on the current stream.
void synchronize();

// An owned event with timing; for benchmarks and cross-stream ordering. Move-only.
class Event {
 public:
  Event();
  ~Event();
  Event(Event&& other) noexcept;
  Event& operator=(Event&& other) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(StreamHandle stream);
  void record() { record(current_stream()); }
  void synchronize() const;
  // Milliseconds from `start` to this event; both recorded and this one complete.
  float elapsed_ms(const Event& start) const;
  EventHandle handle() const { return handle_; }

 private:
  EventHandle handle_ = nullptr;
};

}  // namespace paradit::backend::cuda
