// bench_transformer: one transformer forward of the mid-size ("small" preset) models on the CPU.
//   bench_transformer [--reps N] [--threads T] [--case NAME] [--json FILE]
// Cases: pixart-f32, pixart-bf16 (PixArt-like: 12 layers, hidden 768, 64×64 latent at patch 2 =
// 1024 image tokens, 120 caption tokens, batch 1) and flux-f32, flux-bf16 (Flux-like: 4 double +
// 8 single blocks, hidden 768, 1024 image + 128 text tokens, batch 1); weights random (f32, or
// bf16 for the bf16 GEMM path).
// Figures: seconds per forward (median of N after one warm-up), counted GFLOP (GEMMs and the two
// attention products, from the config; norms and elementwise work not counted), achieved GFLOP/s
// as a fraction of the GEMM peak measured in the same run (gemm_f32 / gemm_f32_bf16 on 4096³),
// peak RSS, and CPU seconds per forward (getrusage; ≈ threads × seconds on an idle machine).
// Without --case, every case runs in its own child process so each
// peak RSS is that case's alone. Threads: --threads (default 2).

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "backend/cpu/gemm.h"
#include "core/ops.h"
#include "io/diffusers.h"
#include "models/common/random_weights.h"
#include "models/presets.h"
#include "models/transformer.h"

using paradit::core::DType;
using paradit::core::Shape;
using paradit::core::Tensor;
namespace cpu = paradit::backend::cpu;
namespace models = paradit::models;

namespace {

constexpr int64_t kImageTokens = 1024;  // 64×64 latent, patch 2 (PixArt); 32×32×(2×2) packed (Flux)
constexpr int64_t kPixArtText = 120;
constexpr int64_t kFluxText = 128;
constexpr int64_t kPeakSize = 4096;  // the square GEMM shape for the peak figures

double median_seconds(int reps, const std::function<void()>& fn) {
  fn();  // warm-up: first-touch of weights, GEMM primitive creation
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// User + system CPU seconds of this process so far. CPU/threads far below the wall time means the
// machine was busy with other work during the run.
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // kilobytes on Linux
}

Tensor random_input(const std::string& name, const Shape& shape, float scale = 1.0f) {
  Tensor t = Tensor::empty(shape);
  // A 2-D+ "weight" draw is randn / sqrt(fan_in); rescale to unit variance, then by `scale`.
  paradit::models::common::random_tensor_values(7, "input." + name, shape, t.data<float>());
  int64_t fan_in = 1;
  for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
  const float k = scale * (shape.size() >= 2 ? std::sqrt(float(fan_in)) : 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] *= k;
  return t;
}

// GFLOP/s of gemm_f32 and gemm_f32_bf16 on a square n³ problem (2·n³ per call).
std::pair<double, double> gemm_peaks(int64_t n, int reps) {
  const Tensor a = random_input("gemm.a", {n, n}), b = random_input("gemm.b", {n, n});
  const Tensor b16 = b.to(DType::BF16);
  Tensor c = Tensor::empty({n, n});
  const double flop = 2.0 * n * n * n;
  const double f32 = median_seconds(reps, [&] {
    cpu::gemm_f32(false, true, n, n, n, 1.0f, a.data<float>(), n, b.data<float>(), n, 0.0f,
                  c.data<float>(), n);
  });
  const auto* bbits = static_cast<const uint16_t*>(b16.raw_data());
  const double bf16 = median_seconds(reps, [&] {
    cpu::gemm_f32_bf16(false, true, n, n, n, 1.0f, a.data<float>(), n, bbits, n, 0.0f,
                       c.data<float>(), n);
  });
  return {flop / f32 / 1e9, flop / bf16 / 1e9};
}

// Counted FLOP of one forward (batch 1): 2·M·N·K per linear; 4·Sq·Sk·D per attention (QKᵀ and
// P·V over all heads). The adaLN/timestep linears on a single row are included for completeness.
double pixart_flop(const paradit::io::Config& c) {
  const double D = c.get_int("num_attention_heads") * c.get_int("attention_head_dim");
  const double L = c.get_int("num_layers"), p = c.get_int("patch_size");
  const double N = kImageTokens, T = kPixArtText, C = c.get_int("caption_channels");
  const double in = c.get_int("in_channels"), out = c.get_int("out_channels");
  double f = 2 * N * in * p * p * D;             // pos_embed.proj
  f += 2 * (256 * D + D * D) + 2 * D * 6 * D;    // timestep embedder, adaln_single.linear
  f += 2 * T * C * D + 2 * T * D * D;            // caption_projection
  const double block = 2 * N * D * D * 4         // attn1 q, k, v, out
                       + 4 * N * N * D           // self-attention
                       + 2 * N * D * D * 2       // attn2 q, out
                       + 2 * T * D * D * 2       // attn2 k, v (caption)
                       + 4 * N * T * D           // cross-attention
                       + 2 * N * D * 4 * D * 2;  // ff
  f += L * block;
  f += 2 * N * D * p * p * out;  // proj_out
  return f;
}

double flux_flop(const paradit::io::Config& c) {
  const double D = c.get_int("num_attention_heads") * c.get_int("attention_head_dim");
  const double Ld = c.get_int("num_layers"), Ls = c.get_int("num_single_layers");
  const double N = kImageTokens, T = kFluxText, S = N + T;
  const double in = c.get_int("in_channels"), J = c.get_int("joint_attention_dim");
  const double P = c.get_int("pooled_projection_dim");
  double f = 2 * N * in * D + 2 * T * J * D;                  // x_embedder, context_embedder
  f += 2 * (256 * D + D * D) * 2 + 2 * (P * D + D * D);       // time, guidance, text embedders
  const double dbl = 2 * 6 * D * D * 2                        // norm1, norm1_context linears
                     + 2 * S * D * D * 4                      // q, k, v, out (both streams)
                     + 4 * S * S * D                          // joint attention
                     + 2 * S * D * 4 * D * 2;                 // ff, ff_context
  const double sgl = 2 * 3 * D * D                            // norm.linear
                     + 2 * S * D * D * 3 + 2 * S * D * 4 * D  // q, k, v, proj_mlp
                     + 4 * S * S * D                          // attention
                     + 2 * S * 5 * D * D;                     // proj_out on [attn, mlp]
  f += Ld * dbl + Ls * sgl;
  f += 2 * 2 * D * D + 2 * N * D * in;  // norm_out linear, proj_out
  return f;
}

models::NamedTensors pixart_inputs(const paradit::io::Config& c) {
  const int64_t side = c.get_int("sample_size");
  models::NamedTensors in;
  in["hidden_states"] = random_input("hidden_states", {1, c.get_int("in_channels"), side, side});
  in["encoder_hidden_states"] =
      random_input("encoder_hidden_states", {1, kPixArtText, c.get_int("caption_channels")}, 0.2f);
  in["timestep"] = Tensor::from_vector({500.0f}, {1});
  in["encoder_attention_mask"] = Tensor::full({1, kPixArtText}, 1.0f);
  return in;
}

models::NamedTensors flux_inputs(const paradit::io::Config& c) {
  models::NamedTensors in;
  in["hidden_states"] = random_input("hidden_states", {1, kImageTokens, c.get_int("in_channels")});
  in["encoder_hidden_states"] =
      random_input("encoder_hidden_states", {1, kFluxText, c.get_int("joint_attention_dim")}, 0.2f);
  in["pooled_projections"] = random_input("pooled", {1, c.get_int("pooled_projection_dim")}, 0.2f);
  in["timestep"] = Tensor::from_vector({0.5f}, {1});
  in["guidance"] = Tensor::from_vector({3.5f}, {1});
  std::vector<float> img;
  for (int r = 0; r < 32; ++r)
    for (int q = 0; q < 32; ++q) img.insert(img.end(), {0.0f, float(r), float(q)});
  in["img_ids"] = Tensor::from_vector(img, {kImageTokens, 3});
  in["txt_ids"] = Tensor::zeros({kFluxText, 3});
  return in;
}

struct CaseResult {
  std::string name;
  double seconds = 0, gflop = 0, gflops = 0, peak = 0, fraction = 0, rss_mib = 0, cpu = 0;
};

// `peaks`: GEMM GFLOP/s (f32, bf16) measured by the parent, so the GEMM buffers stay out of this
// process's peak RSS; measured here when absent (a standalone --case run).
CaseResult run_case(const std::string& name, int reps, std::pair<double, double> peaks) {
  const bool flux = name.rfind("flux", 0) == 0;
  const bool bf16 = name.size() > 5 && name.substr(name.size() - 4) == "bf16";
  const std::string arch = flux ? "flux" : "pixart-sigma";
  const paradit::io::Config config(models::preset_config(arch, "small"), arch + "/small");
  const DType dtype = bf16 ? DType::BF16 : DType::F32;

  if (peaks.first <= 0 || peaks.second <= 0) peaks = gemm_peaks(kPeakSize, 3);
  std::unique_ptr<models::Transformer> model;
  {
    // Weights stored in the GEMM dtype and shared with the model; the generator's record of
    // them goes out of scope with it.
    models::common::RandomWeights weights(1, dtype);
    model = models::make_transformer(config, weights, dtype);
  }
  const models::NamedTensors inputs = flux ? flux_inputs(config) : pixart_inputs(config);
  Tensor out;
  CaseResult r;
  r.name = name;
  const double cpu0 = cpu_seconds();
  r.seconds = median_seconds(reps, [&] { out = model->forward(inputs); });
  r.cpu = (cpu_seconds() - cpu0) / (reps + 1);  // the warm-up run included
  r.gflop = (flux ? flux_flop(config) : pixart_flop(config)) / 1e9;
  r.gflops = r.gflop / r.seconds;
  r.peak = bf16 ? peaks.second : peaks.first;
  r.fraction = r.gflops / r.peak;
  r.rss_mib = peak_rss_mib();
  return r;
}

void print_header() {
  std::printf("%-12s %10s %10s %9s %9s %11s %9s %12s\n", "case", "seconds", "CPU s", "GFLOP",
              "GFLOP/s", "GEMM peak", "of peak", "peak RSS MiB");
}

void print_row(const CaseResult& r) {
  std::printf("%-12s %10.3f %10.3f %9.1f %9.1f %11.1f %8.1f%% %12.0f\n", r.name.c_str(), r.seconds,
              r.cpu, r.gflop, r.gflops, r.peak, 100 * r.fraction, r.rss_mib);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3, threads = 2;
  std::string only, json;
  std::pair<double, double> peaks{0, 0};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_transformer: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--reps") {
      reps = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--threads") {
      threads = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--case") {
      only = value();
    } else if (a == "--json") {
      json = value();
    } else if (a == "--peaks") {  // internal: "F32,BF16" GFLOP/s from the parent
      if (std::sscanf(value().c_str(), "%lf,%lf", &peaks.first, &peaks.second) != 2) return 2;
    } else {
      std::fprintf(stderr,
                   "usage: bench_transformer [--reps N] [--threads T] [--case "
                   "pixart-f32|pixart-bf16|flux-f32|flux-bf16] [--json FILE]\n");
      return 2;
    }
  }
  omp_set_num_threads(threads);
  const std::vector<std::string> cases = {"pixart-f32", "pixart-bf16", "flux-f32", "flux-bf16"};

  if (!only.empty()) {
    if (std::find(cases.begin(), cases.end(), only) == cases.end()) {
      std::fprintf(stderr, "bench_transformer: unknown --case '%s'\n", only.c_str());
      return 2;
    }
    try {
      const CaseResult r = run_case(only, reps, peaks);
      // One machine-readable line for the parent.
      std::printf("RESULT %s %.6f %.3f %.3f %.3f %.1f %.4f\n", r.name.c_str(), r.seconds, r.gflop,
                  r.gflops, r.peak, r.rss_mib, r.cpu);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_transformer: %s: %s\n", only.c_str(), e.what());
      return 1;
    }
    return 0;
  }

  std::printf("bench_transformer: %d threads, GEMM library %s, median of %d forwards\n", threads,
              cpu::gemm_library_name(), reps);
  peaks = gemm_peaks(kPeakSize, 3);
  std::printf("GEMM peak (%lld³): gemm_f32 %.1f GFLOP/s, gemm_f32_bf16 %.1f GFLOP/s\n",
              static_cast<long long>(kPeakSize), peaks.first, peaks.second);
  print_header();
  std::vector<CaseResult> results;
  for (const auto& name : cases) {
    const std::string cmd = std::string(argv[0]) + " --case " + name + " --reps " +
                            std::to_string(reps) + " --threads " + std::to_string(threads) +
                            " --peaks " + std::to_string(peaks.first) + "," +
                            std::to_string(peaks.second);
    FILE* pipe = popen(cmd.c_str(), "r");
    if (!pipe) continue;
    char line[512];
    CaseResult r;
    bool ok = false;
    while (std::fgets(line, sizeof line, pipe)) {
      char nm[64];
      if (std::sscanf(line, "RESULT %63s %lf %lf %lf %lf %lf %lf", nm, &r.seconds, &r.gflop,
                      &r.gflops, &r.peak, &r.rss_mib, &r.cpu) == 7) {
        r.name = nm;
        r.fraction = r.gflops / r.peak;
        ok = true;
      }
    }
    if (pclose(pipe) != 0 || !ok) {
      std::printf("%-12s failed\n", name.c_str());
      continue;
    }
    print_row(r);
    results.push_back(r);
  }
  if (!json.empty()) {
    std::ofstream f(json);
    f << "{\"threads\": " << threads << ", \"gemm_library\": \"" << cpu::gemm_library_name()
      << "\", \"cases\": [";
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      f << (i ? ", " : "") << "{\"case\": \"" << r.name << "\", \"seconds\": " << r.seconds
        << ", \"gflop\": " << r.gflop << ", \"gflops\": " << r.gflops
        << ", \"gemm_peak_gflops\": " << r.peak << ", \"fraction_of_peak\": " << r.fraction
        << ", \"peak_rss_mib\": " << r.rss_mib << ", \"cpu_seconds\": " << r.cpu << "}";
    }
    f << "]}\n";
  }
  return 0;
}
