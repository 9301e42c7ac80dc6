#include "backend/cuda/runtime.h"

#include <cuda_runtime_api.h>

#include <utility>

#include "backend/cuda/check.h"

namespace paradit::backend::cuda {

namespace detail {

void fail_cuda(cudaError_t err, const char* call, const char* file, int line) {
  fail("CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") in ", call, " at ",
       file, ":", line);
}

void fail_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  fail("cuBLAS error ", cublasLtGetStatusName(status), " (", cublasLtGetStatusString(status),
       ") in ", call, " at ", file, ":", line);
}

}  // namespace detail

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver / no device: clear the error and report none
    return 0;
  }
  return n;
}

bool available() { return device_count() > 0; }

int current_device() {
  int d = 0;
  PARADIT_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

void set_device(int device) {
  const int n = device_count();
  PARADIT_CHECK(device >= 0 && device < n, "CUDA device ", device, " does not exist (", n,
                " devices)");
  PARADIT_CUDA_CHECK(cudaSetDevice(device));
}

std::string device_name(int device) {
  cudaDeviceProp prop{};
  PARADIT_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

int compute_capability(int device) {
  int major = 0, minor = 0;
  PARADIT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  PARADIT_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major * 10 + minor;
}

void synchronize_device() { PARADIT_CUDA_CHECK(cudaDeviceSynchronize()); }

namespace {
thread_local StreamHandle t_current_stream = nullptr;
}  // namespace

StreamHandle current_stream() { return t_current_stream; }

void synchronize() { PARADIT_CUDA_CHECK(cudaStreamSynchronize(t_current_stream)); }

// ---------------------------------------------------------------- Stream

Stream::Stream() { PARADIT_CUDA_CHECK(cudaStreamCreateWithFlags(&handle_, cudaStreamNonBlocking)); }

Stream::~Stream() {
  // Wait for the queued work first: the caching allocator keys free blocks by stream handle,
  // and a new stream may get this handle's address while old work still reads such a block.
  // Errors cannot be thrown from here.
  if (handle_) {
    cudaStreamSynchronize(handle_);
    cudaStreamDestroy(handle_);
  }
}

Stream::Stream(Stream&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (handle_) {
      cudaStreamSynchronize(handle_);
      cudaStreamDestroy(handle_);
    }
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

void Stream::synchronize() const { PARADIT_CUDA_CHECK(cudaStreamSynchronize(handle_)); }

StreamGuard::StreamGuard(StreamHandle stream) : previous_(t_current_stream) {
  t_current_stream = stream;
}

StreamGuard::~StreamGuard() { t_current_stream = previous_; }

// ---------------------------------------------------------------- Event

Event::Event() { PARADIT_CUDA_CHECK(cudaEventCreate(&handle_)); }

Event::~Event() {
  if (handle_) cudaEventDestroy(handle_);
}

Event::Event(Event&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}

Event& Event::operator=(Event&& other) noexcept {
  if (this != &other) {
    if (handle_) cudaEventDestroy(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

void Event::record(StreamHandle stream) { PARADIT_CUDA_CHECK(cudaEventRecord(handle_, stream)); }

void Event::synchronize() const { PARADIT_CUDA_CHECK(cudaEventSynchronize(handle_)); }

float Event::elapsed_ms(const Event& start) const {
  float ms = 0.0f;
  PARADIT_CUDA_CHECK(cudaEventElapsedTime(&ms, start.handle_, handle_));
  return ms;
}

}  // namespace paradit::backend::cuda
