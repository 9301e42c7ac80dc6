#pragma once
// Error checking for CUDA runtime, cuBLAS(Lt) and cuDNN calls: a failing call becomes a
// paradit::Error naming the call, the error and where it was made. Internal to src/backend/cuda:
// the only header here that pulls in CUDA library headers for the others.

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#ifdef PARADIT_WITH_CUDNN
#include <cudnn.h>
#endif

#include <string>

#include "core/error.h"

namespace paradit::backend::cuda::detail {

[[noreturn]] void fail_cuda(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void fail_cublas(cublasStatus_t status, const char* call, const char* file, int line);
#ifdef PARADIT_WITH_CUDNN
// The message names the status and cuDNN's own last error text (cudnnGetLastErrorString),
// which says which attribute or shape it refused.
[[noreturn]] void fail_cudnn(cudnnStatus_t status, const char* call, const char* file, int line);
// "<status name> (<cuDNN's last error text>)" for messages that do not throw.
std::string cudnn_status_text(cudnnStatus_t status);
#endif

}  // namespace paradit::backend::cuda::detail

// PARADIT_CUDA_CHECK(cudaMalloc(&p, n)): throws paradit::Error unless the call returns
// cudaSuccess.
#define PARADIT_CUDA_CHECK(call)                                                            \
  do {                                                                                      \
    const cudaError_t paradit_err_ = (call);                                                \
    if (paradit_err_ != cudaSuccess)                                                        \
      ::paradit::backend::cuda::detail::fail_cuda(paradit_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: a bad launch configuration shows up in cudaGetLastError.
#define PARADIT_CUDA_CHECK_LAUNCH(kernel_name)                                            \
  do {                                                                                    \
    const cudaError_t paradit_err_ = cudaGetLastError();                                  \
    if (paradit_err_ != cudaSuccess)                                                      \
      ::paradit::backend::cuda::detail::fail_cuda(paradit_err_, "launch of " kernel_name, \
                                                  __FILE__, __LINE__);                    \
  } while (0)

#define PARADIT_CUBLAS_CHECK(call)                                                           \
  do {                                                                                       \
    const cublasStatus_t paradit_st_ = (call);                                               \
    if (paradit_st_ != CUBLAS_STATUS_SUCCESS)                                                \
      ::paradit::backend::cuda::detail::fail_cublas(paradit_st_, #call, __FILE__, __LINE__); \
  } while (0)

#ifdef PARADIT_WITH_CUDNN
#define PARADIT_CUDNN_CHECK(call)                                                           \
  do {                                                                                      \
    const cudnnStatus_t paradit_st_ = (call);                                               \
    if (paradit_st_ != CUDNN_STATUS_SUCCESS)                                                \
      ::paradit::backend::cuda::detail::fail_cudnn(paradit_st_, #call, __FILE__, __LINE__); \
  } while (0)
#endif
