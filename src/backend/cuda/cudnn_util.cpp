#include "backend/cuda/cudnn_util.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>

#include "backend/cuda/check.h"
#include "backend/cuda/runtime.h"

namespace paradit::backend::cuda::detail {

bool verbose() {
  static const bool v = [] {
    const char* e = std::getenv("PARADIT_CUDA_VERBOSE");
    return e != nullptr && *e != '\0' && std::strcmp(e, "0") != 0;
  }();
  return v;
}

void log_verbose(const std::string& line) {
  if (verbose()) std::fprintf(stderr, "[paradit cuda] %s\n", line.c_str());
}

#ifdef PARADIT_WITH_CUDNN

std::string cudnn_status_text(cudnnStatus_t status) {
  char last[1024] = {};
  cudnnGetLastErrorString(last, sizeof(last));
  std::string s = cudnnGetErrorString(status);
  if (last[0] != '\0') s += std::string(" (") + last + ")";
  return s;
}

void fail_cudnn(cudnnStatus_t status, const char* call, const char* file, int line) {
  fail("cuDNN error ", cudnn_status_text(status), " in ", call, " at ", file, ":", line);
}

std::mutex& cudnn_mutex() {
  static std::mutex* m = new std::mutex;
  return *m;
}

cudnnHandle_t cudnn_handle() {
  // Never destroyed: like the allocator, handles live until exit.
  static std::map<int, cudnnHandle_t>* handles = new std::map<int, cudnnHandle_t>;
  const int device = current_device();
  auto it = handles->find(device);
  if (it == handles->end()) {
    cudnnHandle_t h = nullptr;
    PARADIT_CUDNN_CHECK(cudnnCreate(&h));
    it = handles->emplace(device, h).first;
  }
  PARADIT_CUDNN_CHECK(cudnnSetStream(it->second, current_stream()));
  return it->second;
}

cudnnDataType_t cudnn_dtype(core::DType t) {
  switch (t) {
    case core::DType::F32:
      return CUDNN_DATA_FLOAT;
    case core::DType::BF16:
      return CUDNN_DATA_BFLOAT16;
    case core::DType::F16:
      return CUDNN_DATA_HALF;
    default:
      fail("cuDNN: dtype ", core::dtype_name(t), " is not supported (F32, BF16, F16)");
  }
}

BackendDesc::BackendDesc(cudnnBackendDescriptorType_t type, const char* what) : what_(what) {
  const cudnnStatus_t st = cudnnBackendCreateDescriptor(type, &d_);
  if (st != CUDNN_STATUS_SUCCESS) {
    d_ = nullptr;
    fail("cuDNN: creating the descriptor of ", what_, " failed: ", cudnn_status_text(st));
  }
}

BackendDesc::~BackendDesc() {
  if (d_) cudnnBackendDestroyDescriptor(d_);
}

BackendDesc::BackendDesc(BackendDesc&& other) noexcept
    : d_(std::exchange(other.d_, nullptr)), what_(std::move(other.what_)) {}

BackendDesc& BackendDesc::operator=(BackendDesc&& other) noexcept {
  if (this != &other) {
    if (d_) cudnnBackendDestroyDescriptor(d_);
    d_ = std::exchange(other.d_, nullptr);
    what_ = std::move(other.what_);
  }
  return *this;
}

void BackendDesc::set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                      int64_t count, const void* values, const char* attr) {
  const cudnnStatus_t st = cudnnBackendSetAttribute(d_, name, type, count, values);
  if (st != CUDNN_STATUS_SUCCESS)
    fail("cuDNN: setting ", attr, " of ", what_, " failed: ", cudnn_status_text(st));
}

void BackendDesc::finalize() {
  const cudnnStatus_t st = cudnnBackendFinalize(d_);
  if (st != CUDNN_STATUS_SUCCESS)
    fail("cuDNN: finalizing ", what_, " failed: ", cudnn_status_text(st));
}

cudnnStatus_t BackendDesc::try_finalize() { return cudnnBackendFinalize(d_); }

#endif  // PARADIT_WITH_CUDNN

}  // namespace paradit::backend::cuda::detail
