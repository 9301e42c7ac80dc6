#include "cli/device_flags.h"

#include "comm/device.h"
#include "comm/runtime.h"
#include "core/error.h"
#include "core/op_registry.h"
#include "core/ops.h"
#ifdef PARADIT_WITH_CUDA
#include "backend/cuda/runtime.h"
#endif

namespace paradit::cli {

namespace {

int visible_gpus() {
#ifdef PARADIT_WITH_CUDA
  return backend::cuda::device_count();
#else
  return 0;
#endif
}

}  // namespace

void add_device_flags(CLI::App* app, DeviceOptions* o) {
  app->add_option("--device", o->device,
                  "Where the models run: cpu, cuda, or auto (cuda when a GPU is visible)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  app->add_option("--dtype", o->dtype,
                  "Weight dtype f32|bf16|f16; on CUDA also the compute dtype (f32 accumulation). "
                  "Default: bf16 on CUDA, f32 on the CPU (bf16 there: bf16 matrices, f32 math)")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  app->add_option("--attention_backend,--attention-backend", o->attention_backend,
                  "CUDA attention: cudnn (cuDNN's fused flash attention where it takes the "
                  "arguments, else paradit's) or paradit (paradit's flash kernel)")
      ->check(CLI::IsMember({"cudnn", "paradit"}))
      ->capture_default_str();
}

core::Placement resolve_placement(const DeviceOptions& o) {
  const int gpus = visible_gpus();
  core::Device device = core::Device::CPU;
  if (o.device == "cuda" || (o.device == "auto" && gpus > 0)) device = core::Device::CUDA;
  if (device == core::Device::CUDA) {
    PARADIT_CHECK(core::kCudaBuilt, "--device cuda: this build has no CUDA backend (configure "
                                    "with -DPARADIT_WITH_CUDA=ON on a machine with the CUDA "
                                    "toolkit)");
    PARADIT_CHECK(gpus > 0, "--device cuda: no CUDA device is visible (check nvidia-smi and "
                            "CUDA_VISIBLE_DEVICES)");
  }
  core::DType dtype = device == core::Device::CUDA ? core::DType::BF16 : core::DType::F32;
  if (o.dtype == "f32") dtype = core::DType::F32;
  if (o.dtype == "bf16") dtype = core::DType::BF16;
  if (o.dtype == "f16") {
    PARADIT_CHECK(device == core::Device::CUDA,
                  "--dtype f16: the CPU keeps weights in f32 or bf16 (use --device cuda for f16)");
    dtype = core::DType::F16;
  }
  if (device == core::Device::CUDA) {
#ifdef PARADIT_WITH_CUDA
    // One GPU per process on a node: its local rank modulo the GPUs (several processes share one
    // GPU when there are more of them than GPUs; the communicators then stage through the host).
    comm::bind_device(comm::world());
#endif
    // "cudnn" is kAuto, not kCudnn: cuDNN where it takes the arguments, paradit's kernel where it
    // does not (F32, ring attention's unnormalized partials), as the flag's help says; kCudnn
    // would make those attentions an Error.
    core::set_default_attention_backend(o.attention_backend == "paradit"
                                            ? core::AttentionBackend::kParadit
                                            : core::AttentionBackend::kAuto);
  }
  return core::Placement(device, dtype);
}

}  // namespace paradit::cli
