// bench_cuda: throughput of the CUDA backend's main kernels on one GPU.
//   bench_cuda [--reps N]
// (a) flash attention, BF16, B=1, H=24, D=128 (Flux's heads), S = 4608 (1024² image + 512
//     text tokens) and 16384: TFLOP/s = 4·B·H·S²·D / time (QKᵀ and P·V; softmax not counted).
// (b) GEMM through cuBLASLt: linear layers of Flux at 1024² (M = 4608 tokens) and an 8192³
//     square, BF16 in / BF16 out with f32 accumulation: TFLOP/s = 2·M·N·K / time.
// (c) fused LayerNorm + modulation on (1, 4608, 3072) BF16: GB/s of one read and one write.
// Times are CUDA-event times of each launch; the figure is the median of N runs after a
// warm-up. Without a device (or without PARADIT_WITH_CUDA) it prints "no CUDA device" and
// exits 0.

#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifdef PARADIT_WITH_CUDA

#include <algorithm>
#include <functional>
#include <random>
#include <vector>

#include "backend/cuda/attention.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/runtime.h"
#include "core/ops.h"

using paradit::core::Device;
using paradit::core::DType;
using paradit::core::Shape;
using paradit::core::Tensor;
namespace cu = paradit::backend::cuda;

namespace {

// Uniform(−1, 1) values, made on the host, as a device tensor of `dtype`.
Tensor random_device(const Shape& shape, DType dtype, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(gen);
  return t.to(dtype).to_device(Device::CUDA);
}

// Median milliseconds of `reps` event-timed runs after one warm-up run.
double time_median_ms(int reps, const std::function<void()>& fn) {
  fn();
  cu::synchronize();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    cu::Event start, stop;
    start.record();
    fn();
    stop.record();
    stop.synchronize();
    ms.push_back(stop.elapsed_ms(start));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void bench_attention(int reps) {
  std::printf("\n(a) flash attention, BF16, B=1, H=24, D=128\n");
  std::printf("%8s %12s %12s\n", "S", "ms", "TFLOP/s");
  for (int64_t S : {int64_t{4608}, int64_t{16384}}) {
    const int64_t B = 1, H = 24, D = 128;
    const Tensor q = random_device({B, S, H, D}, DType::BF16, 1);
    const Tensor k = random_device({B, S, H, D}, DType::BF16, 2);
    const Tensor v = random_device({B, S, H, D}, DType::BF16, 3);
    const double ms = time_median_ms(reps, [&] { cu::attention(q, k, v); });
    const double flop = 4.0 * B * H * static_cast<double>(S) * S * D;
    std::printf("%8lld %12.3f %12.1f\n", static_cast<long long>(S), ms, flop / (ms * 1e-3) / 1e12);
  }
}

void bench_gemm(int reps) {
  std::printf("\n(b) GEMM (cuBLASLt), BF16 in/out, f32 accumulation\n");
  std::printf("%8s %8s %8s %-14s %12s %12s\n", "M", "N", "K", "epilogue", "ms", "TFLOP/s");
  struct Shape3 {
    int64_t M, N, K;
    bool bias_gelu;
  };
  const Shape3 shapes[] = {{4608, 3072, 3072, false},   // attention projections
                           {4608, 9216, 3072, false},   // fused qkv
                           {4608, 12288, 3072, true},   // MLP up + GELU
                           {4608, 3072, 12288, false},  // MLP down
                           {8192, 8192, 8192, false}};
  for (const Shape3& s : shapes) {
    const Tensor x = random_device({s.M, s.K}, DType::BF16, 4);
    const Tensor w = random_device({s.N, s.K}, DType::BF16, 5);
    const Tensor b = random_device({s.N}, DType::BF16, 6);
    cu::LinearOptions opt;
    opt.gelu_tanh = s.bias_gelu;
    const double ms = time_median_ms(reps, [&] {
      if (s.bias_gelu) {
        cu::linear(x, w, b, opt);
      } else {
        cu::linear(x, w);
      }
    });
    const double flop = 2.0 * s.M * s.N * static_cast<double>(s.K);
    std::printf("%8lld %8lld %8lld %-14s %12.3f %12.1f\n", static_cast<long long>(s.M),
                static_cast<long long>(s.N), static_cast<long long>(s.K),
                s.bias_gelu ? "bias+gelu" : "none", ms, flop / (ms * 1e-3) / 1e12);
  }
}

void bench_norm(int reps) {
  std::printf("\n(c) LayerNorm + modulation, BF16 (1, 4608, 3072)\n");
  const int64_t S = 4608, D = 3072;
  const Tensor x = random_device({1, S, D}, DType::BF16, 7);
  const Tensor shift = random_device({1, D}, DType::F32, 8);
  const Tensor scale = random_device({1, D}, DType::F32, 9);
  const double ms = time_median_ms(reps, [&] { cu::layer_norm(x, {}, {}, 1e-6f, shift, scale); });
  const double bytes = 2.0 * S * D * 2;
  std::printf("%12.3f ms %12.1f GB/s\n", ms, bytes / (ms * 1e-3) / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 10;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: bench_cuda [--reps N]\n");
      return 2;
    }
  }
  if (!cu::available()) {
    std::printf("no CUDA device\n");
    return 0;
  }
  try {
    const int dev = cu::current_device();
    std::printf("bench_cuda on %s (sm_%d), median of %d runs\n", cu::device_name(dev).c_str(),
                cu::compute_capability(dev), reps);
    bench_attention(reps);
    bench_gemm(reps);
    bench_norm(reps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

#else  // !PARADIT_WITH_CUDA

int main() {
  std::printf("no CUDA device (built without PARADIT_WITH_CUDA)\n");
  return 0;
}

#endif
