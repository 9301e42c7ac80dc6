#pragma once
// cuDNN plumbing shared by the convolution and attention bodies: the handle of each device,
// RAII backend descriptors with checked attribute setters, dtype mapping, and the
// PARADIT_CUDA_VERBOSE diagnostics. Internal; only in builds with cuDNN (PARADIT_WITH_CUDNN).

#include <string>

#ifdef PARADIT_WITH_CUDNN
#include <cudnn.h>

#include <cstdint>
#include <mutex>
#endif

#include "core/dtype.h"

namespace paradit::backend::cuda::detail {

// PARADIT_CUDA_VERBOSE set (and not "0"): the bodies print one line on stderr per plan they
// build (GEMM epilogue choice, convolution algorithm, attention plan or fallback and why). Read
// once.
bool verbose();
void log_verbose(const std::string& line);

#ifdef PARADIT_WITH_CUDNN

// Held while a cuDNN handle is used: handles are per device and shared by threads, and the
// stream is set on the handle before each call.
std::mutex& cudnn_mutex();
// The current device's handle with its stream set to current_stream(); call with cudnn_mutex()
// held.
cudnnHandle_t cudnn_handle();

cudnnDataType_t cudnn_dtype(core::DType t);

// An owned cudnnBackendDescriptor_t. Every setter names what it sets in its error, with cuDNN's
// own text (the status alone rarely says which attribute or value was refused).
class BackendDesc {
 public:
  BackendDesc() = default;
  BackendDesc(cudnnBackendDescriptorType_t type, const char* what);
  ~BackendDesc();
  BackendDesc(BackendDesc&& other) noexcept;
  BackendDesc& operator=(BackendDesc&& other) noexcept;
  BackendDesc(const BackendDesc&) = delete;
  BackendDesc& operator=(const BackendDesc&) = delete;

  cudnnBackendDescriptor_t get() const { return d_; }
  // Pointer to the raw handle, for attributes that take an array of descriptors.
  const cudnnBackendDescriptor_t* ptr() const { return &d_; }

  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
           const void* values, const char* attr);
  void set_desc(cudnnBackendAttributeName_t name, const BackendDesc& d, const char* attr) {
    set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, d.ptr(), attr);
  }
  void set_i64(cudnnBackendAttributeName_t name, int64_t v, const char* attr) {
    set(name, CUDNN_TYPE_INT64, 1, &v, attr);
  }
  void finalize();
  // cudnnBackendFinalize's status, without throwing (engine configs that may not finalize).
  cudnnStatus_t try_finalize();
  const std::string& what() const { return what_; }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
  std::string what_;
};

#endif  // PARADIT_WITH_CUDNN

}  // namespace paradit::backend::cuda::detail
