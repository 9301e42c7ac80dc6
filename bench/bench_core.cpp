// bench_core: GEMM and attention throughput of the CPU backend.
//   bench_core [--json FILE] [--reps N]
// (a) core::linear against the raw library call (gemm.h) on the same shapes, f32 and bf16
//     weights: GFLOP/s = 2·M·N·K / time, and their ratio (the op layer's overhead).
// (b) core::attention: GFLOP/s = 4·B·H·Sq·Sk·D / time (QKᵀ and P·V; softmax not counted),
//     next to the f32 GEMM rate of (a). Thread count: OMP_NUM_THREADS.
// Each figure is from the fastest of N timed runs after one warm-up run: on a shared machine the
// minimum filters out interference from other processes.

#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/gemm.h"
#include "core/ops.h"

using paradit::core::DType;
using paradit::core::Shape;
using paradit::core::Tensor;
namespace cpu = paradit::backend::cpu;

namespace {

Tensor random_tensor(const Shape& shape, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(gen);
  return t;
}

// Fastest seconds of `reps` runs of fn after one warm-up run.
double time_best(int reps, const std::function<void()>& fn) {
  fn();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

struct GemmRow {
  int64_t M, N, K;
  std::string wdtype;
  double op_gflops, raw_gflops;
};

struct AttnRow {
  int64_t B, H, S, D;
  double ms, gflops;
};

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) {
      json_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--json FILE] [--reps N]\n", argv[0]);
      return 2;
    }
  }
  const int threads = omp_get_max_threads();
  std::printf("bench_core: GEMM library %s, %d OpenMP threads, best of %d runs\n\n",
              cpu::gemm_library_name(), threads, reps);

  // ---------------------------------------------------------------- (a) GEMM
  // x (M, K) · w (N, K)ᵀ: the linear-layer shapes of a hidden-768 DiT (qkv/MLP up, proj, MLP
  // down).
  const std::vector<std::array<int64_t, 3>> shapes = {
      {4096, 3072, 768}, {1024, 768, 768}, {4096, 768, 3072}};
  std::vector<GemmRow> gemm_rows;
  std::printf("%-26s %-6s %14s %14s %8s\n", "GEMM (M, N, K)", "weight", "linear GF/s",
              "library GF/s", "ratio");
  for (const auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    const double flops = 2.0 * M * N * K;
    Tensor x = random_tensor({M, K}, 1);
    Tensor w = random_tensor({N, K}, 2);
    Tensor y = Tensor::empty({M, N});
    for (DType wt : {DType::F32, DType::BF16}) {
      Tensor wc = w.to(wt);
      double t_op = time_best(reps, [&] { Tensor r = paradit::core::linear(x, wc); });
      double t_raw = time_best(reps, [&] {
        if (wt == DType::F32) {
          cpu::gemm_f32(false, true, M, N, K, 1.0f, x.data<float>(), K, wc.data<float>(), K, 0.0f,
                        y.data<float>(), N);
        } else {
          cpu::gemm_f32_bf16(false, true, M, N, K, 1.0f, x.data<float>(), K,
                             static_cast<const uint16_t*>(wc.raw_data()), K, 0.0f, y.data<float>(),
                             N);
        }
      });
      GemmRow row{
          M, N, K, wt == DType::F32 ? "f32" : "bf16", flops / t_op * 1e-9, flops / t_raw * 1e-9};
      char name[64];
      std::snprintf(name, sizeof(name), "(%lld, %lld, %lld)", static_cast<long long>(M),
                    static_cast<long long>(N), static_cast<long long>(K));
      std::printf("%-26s %-6s %14.1f %14.1f %8.3f\n", name, row.wdtype.c_str(), row.op_gflops,
                  row.raw_gflops, row.op_gflops / row.raw_gflops);
      gemm_rows.push_back(row);
    }
  }
  double f32_rate = 0;
  for (const auto& r : gemm_rows) {
    if (r.wdtype == "f32") f32_rate = std::max(f32_rate, r.raw_gflops);
  }

  // ---------------------------------------------------------------- (b) attention
  // Hidden 768 split as 12 heads of 64 or 6 heads of 128; B = 1; self-attention Sq = Sk = S.
  std::printf("\n%-30s %12s %12s %14s\n", "attention (B, H, S, D)", "ms", "GFLOP/s", "vs f32 GEMM");
  std::vector<AttnRow> attn_rows;
  for (int64_t S : {1024, 4096}) {
    for (auto [H, D] : std::vector<std::pair<int64_t, int64_t>>{{12, 64}, {6, 128}}) {
      const int64_t B = 1;
      Tensor q = random_tensor({B, S, H, D}, 3), k = random_tensor({B, S, H, D}, 4);
      Tensor v = random_tensor({B, S, H, D}, 5);
      const double flops = 4.0 * B * H * S * S * D;
      const int attn_reps = S >= 4096 ? std::max(1, reps / 2) : reps;
      double t = time_best(attn_reps, [&] { auto r = paradit::core::attention(q, k, v); });
      AttnRow row{B, H, S, D, t * 1e3, flops / t * 1e-9};
      char name[64];
      std::snprintf(name, sizeof(name), "(%lld, %lld, %lld, %lld)", static_cast<long long>(B),
                    static_cast<long long>(H), static_cast<long long>(S),
                    static_cast<long long>(D));
      std::printf("%-30s %12.2f %12.1f %13.0f%%\n", name, row.ms, row.gflops,
                  100.0 * row.gflops / f32_rate);
      attn_rows.push_back(row);
    }
  }
  std::printf("\n(f32 GEMM reference rate: %.1f GFLOP/s, the best raw library figure above)\n",
              f32_rate);

  if (!json_path.empty()) {
    std::ofstream js(json_path);
    if (!js) {
      std::fprintf(stderr, "bench_core: cannot write %s\n", json_path.c_str());
      return 2;
    }
    js << "{\n  \"library\": \"" << cpu::gemm_library_name() << "\",\n  \"threads\": " << threads
       << ",\n  \"gemm\": [\n";
    for (size_t i = 0; i < gemm_rows.size(); ++i) {
      const auto& r = gemm_rows[i];
      js << "    {\"M\": " << r.M << ", \"N\": " << r.N << ", \"K\": " << r.K << ", \"weight\": \""
         << r.wdtype << "\", \"linear_gflops\": " << r.op_gflops
         << ", \"library_gflops\": " << r.raw_gflops << "}"
         << (i + 1 < gemm_rows.size() ? ",\n" : "\n");
    }
    js << "  ],\n  \"attention\": [\n";
    for (size_t i = 0; i < attn_rows.size(); ++i) {
      const auto& r = attn_rows[i];
      js << "    {\"B\": " << r.B << ", \"H\": " << r.H << ", \"S\": " << r.S << ", \"D\": " << r.D
         << ", \"ms\": " << r.ms << ", \"gflops\": " << r.gflops << "}"
         << (i + 1 < attn_rows.size() ? ",\n" : "\n");
    }
    js << "  ],\n  \"f32_gemm_gflops\": " << f32_rate << "\n}\n";
  }
  return 0;
}
