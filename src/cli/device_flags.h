#pragma once
// The device flags shared by `paradit generate`, `forward`, `serve` and the benchmarks:
//   --device cpu|cuda|auto     where the models run (auto: cuda when this build has the CUDA
//                              backend and a GPU is visible, else cpu)
//   --dtype f32|bf16|f16       the weights' dtype (on CUDA also the compute dtype, f32
//                              accumulation everywhere; default bf16 on CUDA, f32 on the CPU,
//                              where bf16 keeps the matrices in bf16 and computes in f32)
//   --attention_backend cudnn|paradit   CUDA attention: cuDNN's fused flash attention where it
//                              takes the arguments (default), or paradit's flash kernel
// Every multi-word flag is accepted with '_' and with '-'.

#include <string>

#include <CLI/CLI.hpp>

#include "core/tensor.h"

namespace paradit::cli {

struct DeviceOptions {
  std::string device = "auto";
  std::string dtype;  // empty: the device's default
  std::string attention_backend = "cudnn";
};

// Registers the flags on `app`, writing into `*options` (which must outlive the parse).
void add_device_flags(CLI::App* app, DeviceOptions* options);

// The placement the flags ask for, after checking them against this build and machine (Error
// naming the flag: --device cuda without the CUDA backend or without a visible GPU, --dtype f16
// on the CPU, an unknown value). On CUDA it also selects this process's GPU (comm::bind_device:
// its local rank among the job's processes on the node, modulo the GPUs; collective over the
// world) and the attention backend.
core::Placement resolve_placement(const DeviceOptions& options);

}  // namespace paradit::cli
