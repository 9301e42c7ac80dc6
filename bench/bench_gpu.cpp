// bench_gpu: the CUDA backend's figures through the core ops, each beside the reference stack's
// figure on an H100 (diffusers + PyTorch, ../shared/anchors.md).
//   bench_gpu [--part LIST] [--reps N] [--seconds S] [--attention-backend auto|cudnn|paradit]
//             [--json FILE] [--device cuda|cpu] [--layers N] [--require-device]
// Parts (comma-separated; default all): gemm, attention, flux, pixart, sd35, wan (models = the
// four transformer steps). Without the CUDA backend or without a visible GPU it prints one line
// saying so and exits 0 (with --json, a file saying why), or 1 with --require-device (the GPU
// check: there, no device is a failure).
// --device cpu runs the same code on the CPU (F32 activations, bf16 matrices) and --layers N cuts
// every model to N layers (Flux: N double + N single blocks) with the same inputs: a check,
// on a machine without a GPU, that the models bind from the provider and take these inputs (the
// figures are then no comparison with anything).
//
// What is measured, all in bf16 on Device::CUDA tensors:
// - gemm: core::linear, 8192³ (anchor: 765 TFLOP/s, PyTorch on random data), then a few GEMM
//   shapes of the models' layers (one with the bias + GELU epilogue); 2·M·N·K per call.
// - attention: core::attention, B=1, H=24, D=128, S=4608 and 16384, with each backend named
//   explicitly (kCudnn, kParadit: a backend that cannot run it is reported, not replaced);
//   4·B·H·S²·D per call (QKᵀ and P·V); anchors: cuDNN through PyTorch 594 TFLOP/s at 4608,
//   614–642 at 16384. At S=4608 the two backends' outputs are also compared (max |difference|).
// - flux, pixart, sd35, wan: one transformer forward at full size (Flux.1-dev 1024², batch 1;
//   PixArt-Σ 1024², batch 2; SD3.5-large 1024², batch 2; Wan2.1-T2V-1.3B 480×832×81 frames,
//   batch 1) with random weights, beside diffusers' eager time; TFLOP/s from anchors.md's counted
//   TFLOP of the same forward. The attention backend of the steps is the process default (auto:
//   cuDNN where it takes the arguments) unless --attention-backend names one.
// Timing: CUDA events on the backend's stream after warm-up calls (which build the cuBLASLt and
// cuDNN plans). An op is timed over a batch of back-to-back calls (≥ ~10 ms of work, so launch
// gaps do not count) and the batch repeated; a step is timed one forward at a time, the stream
// drained before each, so the event interval is the forward's wall time on the GPU, host work
// inside it (tables built on the host, synchronizing copies) included. Figures are medians;
// each loop stops after --reps timings or --seconds, whichever comes first (at least 3).
// Weights: a provider (a WeightProvider, so the models bind exactly as from a checkpoint) that
// fills device tensors directly from a pool of 2^27 standard-normal bf16 values generated once on
// the host (OpenMP) and uploaded: a matrix is a pool slice at an offset fixed by its name, scaled
// by 1/sqrt(fan_in) on the device (randn / sqrt(fan_in) as make-model draws it); vectors (biases,
// norm scales) are drawn on the host exactly as make-model draws them. Binding Flux.1-dev's 12 B
// parameters is then one device kernel per tensor instead of 12 B host draws. Memory: the
// caching allocator's bytes in use after binding (weights + inputs) and its peak during the
// timed forwards; each model is freed and the cache emptied before the next.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/op_registry.h"
#include "core/ops.h"
#include "io/diffusers.h"
#include "models/common/random_weights.h"
#include "models/common/weights.h"
#include "models/presets.h"
#include "models/transformer.h"
#ifdef PARADIT_WITH_CUDA
#include "backend/cuda/allocator.h"
#include "backend/cuda/runtime.h"
#endif

namespace {

using paradit::core::AttentionBackend;
using paradit::core::Device;
using paradit::core::DType;
using paradit::core::Shape;
using paradit::core::Tensor;
using paradit::io::Json;
namespace core = paradit::core;
namespace models = paradit::models;

constexpr const char* kUsage =
    "usage: bench_gpu [--part gemm,attention,flux,pixart,sd35,wan|models|all] [--reps N]\n"
    "                 [--seconds S] [--attention-backend auto|cudnn|paradit] [--json FILE]\n"
    "                 [--device cuda|cpu] [--layers N] [--require-device]\n";

struct Options {
  std::vector<std::string> parts;
  int reps = 0;         // 0: each part's default
  double seconds = 10;  // cap of each timing loop
  AttentionBackend step_backend = AttentionBackend::kAuto;
  std::string json_path;
  Device device = Device::CUDA;
  int layers = 0;  // > 0: models cut to this many layers (a binding/input check, not a figure)
  bool require_device = false;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(',', start), s.size());
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

const std::vector<std::string>& all_parts() {
  static const std::vector<std::string> parts = {"gemm",   "attention", "flux",
                                                 "pixart", "sd35",      "wan"};
  return parts;
}

// Exit code 2 with the usage on a bad command line (the script checks its arguments this way).
Options parse(int argc, char** argv) {
  Options o;
  std::string parts = "all";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_gpu: %s needs a value\n%s", a.c_str(), kUsage);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--part" || a == "--parts") {
      parts = value();
    } else if (a == "--reps") {
      o.reps = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--seconds") {
      o.seconds = std::max(0.1, std::atof(value().c_str()));
    } else if (a == "--attention-backend" || a == "--attention_backend") {
      const std::string b = value();
      if (b == "auto") {
        o.step_backend = AttentionBackend::kAuto;
      } else if (b == "cudnn") {
        o.step_backend = AttentionBackend::kCudnn;
      } else if (b == "paradit") {
        o.step_backend = AttentionBackend::kParadit;
      } else {
        std::fprintf(stderr, "bench_gpu: --attention-backend: '%s' is not auto|cudnn|paradit\n",
                     b.c_str());
        std::exit(2);
      }
    } else if (a == "--json") {
      o.json_path = value();
    } else if (a == "--device") {
      const std::string d = value();
      if (d != "cuda" && d != "cpu") {
        std::fprintf(stderr, "bench_gpu: --device: '%s' is not cuda|cpu\n", d.c_str());
        std::exit(2);
      }
      o.device = d == "cpu" ? Device::CPU : Device::CUDA;
    } else if (a == "--require-device") {
      o.require_device = true;
    } else if (a == "--layers") {
      o.layers = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--help" || a == "-h") {
      std::printf("%s", kUsage);
      std::exit(0);
    } else {
      std::fprintf(stderr, "bench_gpu: unknown argument '%s'\n%s", a.c_str(), kUsage);
      std::exit(2);
    }
  }
  for (const auto& p : split_list(parts)) {
    if (p == "all") {
      o.parts.insert(o.parts.end(), all_parts().begin(), all_parts().end());
    } else if (p == "models") {
      o.parts.insert(o.parts.end(), {"flux", "pixart", "sd35", "wan"});
    } else if (std::find(all_parts().begin(), all_parts().end(), p) != all_parts().end()) {
      o.parts.push_back(p);
    } else {
      std::fprintf(stderr, "bench_gpu: --part: '%s' is not a part\n%s", p.c_str(), kUsage);
      std::exit(2);
    }
  }
  return o;
}

void write_json(const std::string& path, const Json& j) {
  if (path.empty()) return;
  std::ofstream f(path);
  f << j.dump(2) << "\n";
}

}  // namespace

namespace {

using Clock = std::chrono::steady_clock;
#ifdef PARADIT_WITH_CUDA
namespace cuda = paradit::backend::cuda;
#endif

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// ---------------------------------------------------------------- the device's clock and memory
// What differs between the CUDA run and the CPU check: synchronization, timing (CUDA events on
// the backend's stream; the steady clock on the CPU, where every op has finished on return) and
// the caching allocator's statistics (none on the CPU).
class Bench {
 public:
  explicit Bench(Device device) : device_(device) {}
  Device device() const { return device_; }
  bool cuda() const { return device_ == Device::CUDA; }
  // bf16 activations on CUDA; the CPU computes in f32.
  DType activations() const { return cuda() ? DType::BF16 : DType::F32; }

  void sync() const {
#ifdef PARADIT_WITH_CUDA
    if (cuda()) cuda::synchronize_device();
#endif
  }
  size_t in_use_bytes() const {
#ifdef PARADIT_WITH_CUDA
    if (cuda()) return cuda::allocator_stats().in_use_bytes;
#endif
    return 0;
  }
  void reset_peak() const {
#ifdef PARADIT_WITH_CUDA
    if (cuda()) cuda::reset_peak_stats();
#endif
  }
  size_t peak_bytes() const {
#ifdef PARADIT_WITH_CUDA
    if (cuda()) return cuda::allocator_stats().peak_in_use_bytes;
#endif
    return 0;
  }
  // Gives the cached device blocks back to the driver, so the next model starts empty.
  void release() const {
#ifdef PARADIT_WITH_CUDA
    if (cuda()) {
      cuda::synchronize_device();
      cuda::empty_cache();
    }
#endif
  }

  // Milliseconds of `fn`'s work on the device: between two events recorded around it on CUDA
  // (the event completes when the work does), the steady clock around it on the CPU.
  double milliseconds(const std::function<void()>& fn) const {
#ifdef PARADIT_WITH_CUDA
    if (cuda()) {
      cuda::Event start, stop;
      start.record();
      fn();
      stop.record();
      stop.synchronize();
      return stop.elapsed_ms(start);
    }
#endif
    const auto t0 = Clock::now();
    fn();
    return 1e3 * seconds_since(t0);
  }

 private:
  Device device_;
};

// ---------------------------------------------------------------- random values on the device
// 2^27 standard-normal values in bf16 on the device (256 MiB): enough for the largest tensor of
// the four models (SD3.5's stored pos_embed, 192²·2432 ≈ 90 M values) at many offsets.
constexpr int64_t kPoolSize = int64_t{1} << 27;

class DevicePool {
 public:
  DevicePool(const Bench& bench, uint64_t seed) : device_(bench.device()) {
    // Shape (n, 1): random_tensor_values draws a matrix as randn / sqrt(fan_in) = randn here.
    Tensor host = Tensor::empty({kPoolSize, 1});
    models::common::random_tensor_values(seed, "bench_gpu.pool", {kPoolSize, 1},
                                         host.data<float>());
    values_ = host.reshape({kPoolSize}).to_device(device_).to(bench.activations());
  }

  // `n` values (bf16, on the device) from an offset fixed by `name`; a view of the pool when
  // they fit before its end, else pieces wrapped around it and concatenated. Offsets are
  // multiples of 64 values, so every view is 128-byte aligned like a fresh allocation.
  Tensor values(const std::string& name, int64_t n) const {
    int64_t offset = static_cast<int64_t>(fnv1a64(name) % static_cast<uint64_t>(kPoolSize));
    offset -= offset % 64;
    if (offset + n <= kPoolSize) return values_.slice(0, offset, offset + n);
    std::vector<Tensor> pieces;
    for (int64_t left = n; left > 0;) {
      const int64_t take = std::min(left, kPoolSize - offset);
      pieces.push_back(values_.slice(0, offset, offset + take));
      left -= take;
      offset = 0;
    }
    return core::concat(pieces, 0);
  }

  // A new tensor of `shape` on the device: the pool's values · scale, in `dtype`.
  Tensor tensor(const std::string& name, const Shape& shape, float scale, DType dtype) const {
    const int64_t n = core::shape_numel(shape);
    if (n == 0) return Tensor::empty(shape, dtype, device_);
    return core::scale(values(name, n).reshape(shape), scale).to(dtype);
  }
  Device device() const { return device_; }

 private:
  Device device_;
  Tensor values_;  // bf16 on CUDA, f32 on the CPU (whose ops take f32 activations)
};

// The models' weights straight from the pool (see the header comment). Records only the names
// handed out, like RandomWeights, so has() answers as it does.
class DevicePoolWeights : public models::common::WeightProvider {
 public:
  DevicePoolWeights(const DevicePool& pool, uint64_t seed) : pool_(&pool), seed_(seed) {}

  Tensor get(const std::string& name, const Shape& expected, DType dtype) const override {
    seen_.insert(name);
    if (expected.size() >= 2) {
      int64_t fan_in = 1;
      for (size_t i = 1; i < expected.size(); ++i) fan_in *= expected[i];
      const float scale = 1.0f / std::sqrt(static_cast<float>(std::max<int64_t>(fan_in, 1)));
      return pool_->tensor(name, expected, scale, dtype);
    }
    Tensor host = Tensor::empty(expected);
    if (host.numel() > 0) {
      models::common::random_tensor_values(seed_, name, expected, host.data<float>());
    }
    return host.to_device(pool_->device()).to(dtype);
  }
  bool has(const std::string& name) const override { return seen_.count(name) != 0; }

 private:
  const DevicePool* pool_;
  uint64_t seed_;
  mutable std::set<std::string> seen_;  // get() is const in the interface
};

// ---------------------------------------------------------------- timing
struct Timing {
  double median_ms = NAN, min_ms = NAN;
  int samples = 0;
};

// Per-call milliseconds of `fn` (which enqueues work on the current stream): `warmup` calls,
// then batches of back-to-back calls, each batch ≥ ~10 ms of device work, so that the gaps
// between launches do not count.
Timing time_op(const Bench& bench, const std::function<void()>& fn, int warmup, int reps,
               double max_seconds) {
  for (int i = 0; i < warmup; ++i) fn();
  bench.sync();
  const double one = std::max(1e-3, bench.milliseconds(fn));
  const int inner = std::clamp(static_cast<int>(std::ceil(10.0 / one)), 1, 200);
  std::vector<double> ms;
  const auto t0 = Clock::now();
  for (int r = 0; r < reps; ++r) {
    ms.push_back(bench.milliseconds([&] {
      for (int i = 0; i < inner; ++i) fn();
    }) / inner);
    if (r + 1 >= 3 && seconds_since(t0) > max_seconds) break;
  }
  Timing t;
  t.median_ms = median(ms);
  t.min_ms = *std::min_element(ms.begin(), ms.end());
  t.samples = static_cast<int>(ms.size());
  return t;
}

// ---------------------------------------------------------------- results
struct Report {
  Json root;
  std::string path;
  bool any_error = false;

  void add(Json row) {
    if (row.value("status", "ok") == "error") any_error = true;
    root["results"].push_back(std::move(row));
    write_json(path, root);  // after every row: a run killed by a timeout keeps what it measured
  }
};

Json error_row(const std::string& part, const std::string& name, const std::string& message) {
  std::printf("  %-34s ERROR: %s\n", name.c_str(), message.c_str());
  std::fflush(stdout);
  return Json{{"part", part}, {"name", name}, {"status", "error"}, {"message", message}};
}

const char* backend_name(AttentionBackend b) {
  switch (b) {
    case AttentionBackend::kCudnn:
      return "cudnn";
    case AttentionBackend::kParadit:
      return "paradit";
    default:
      return "auto";
  }
}

// ---------------------------------------------------------------- GEMM
struct GemmCase {
  std::string name;
  int64_t M, N, K;
  bool bias_gelu = false;
  double anchor_tflops = 0;  // 0: none
};

void run_gemm(const Bench& bench, const Options& o, const DevicePool& pool, Report& report) {
  const std::vector<GemmCase> cases = {
      {"8192x8192x8192", 8192, 8192, 8192, false, 765},
      {"flux qkv 4608x9216x3072", 4608, 9216, 3072},
      {"flux mlp 4608x12288x3072 +gelu", 4608, 12288, 3072, true},
      {"flux proj_out 4608x3072x15360", 4608, 3072, 15360},
      {"wan ffn 32760x8960x1536 +gelu", 32760, 8960, 1536, true},
  };
  std::printf("\nGEMM, bf16, core::linear (x (M,K) · w (N,K)ᵀ)\n");
  std::printf("  %-34s %9s %9s %9s\n", "M x N x K", "ms", "TFLOP/s", "anchor");
  for (const auto& c : cases) {
    try {
      const Tensor x = pool.tensor("gemm.x." + c.name, {c.M, c.K}, 1.0f, bench.activations());
      const Tensor w = pool.tensor("gemm.w." + c.name, {c.N, c.K},
                                   1.0f / std::sqrt(static_cast<float>(c.K)), DType::BF16);
      const Tensor bias =
          c.bias_gelu ? pool.tensor("gemm.b." + c.name, {c.N}, 0.05f, DType::F32) : Tensor{};
      const auto act = c.bias_gelu ? core::Activation::kGeluTanh : core::Activation::kNone;
      Tensor y;
      const Timing t = time_op(
          bench, [&] { y = core::linear(x, w, bias, act); }, 3, o.reps ? o.reps : 20, o.seconds);
      const double tflops = 2.0 * c.M * c.N * c.K / (t.median_ms * 1e-3) / 1e12;
      std::printf("  %-34s %9.3f %9.1f %9s\n", c.name.c_str(), t.median_ms, tflops,
                  c.anchor_tflops > 0 ? std::to_string(int(c.anchor_tflops)).c_str() : "");
      std::fflush(stdout);
      Json row{{"part", "gemm"},
               {"name", c.name},
               {"status", "ok"},
               {"M", c.M},
               {"N", c.N},
               {"K", c.K},
               {"bias_gelu", c.bias_gelu},
               {"ms", t.median_ms},
               {"ms_min", t.min_ms},
               {"samples", t.samples},
               {"tflops", tflops}};
      if (c.anchor_tflops > 0) row["anchor_tflops"] = c.anchor_tflops;
      report.add(row);
    } catch (const std::exception& e) {
      report.add(error_row("gemm", c.name, e.what()));
    }
  }
}

// ---------------------------------------------------------------- attention
void run_attention(const Bench& bench, const Options& o, const DevicePool& pool, Report& report) {
  constexpr int64_t B = 1, H = 24, D = 128;
  std::printf("\nattention, bf16, core::attention, B=%lld H=%lld D=%lld (4·B·H·S²·D per call)\n",
              static_cast<long long>(B), static_cast<long long>(H), static_cast<long long>(D));
  std::printf("  %-34s %9s %9s %9s\n", "S, backend", "ms", "TFLOP/s", "anchor");
  for (const int64_t S : {int64_t{4608}, int64_t{16384}}) {
    const std::string s = std::to_string(S);
    Tensor q, k, v;
    try {
      q = pool.tensor("attn.q." + s, {B, S, H, D}, 1.0f, bench.activations());
      k = pool.tensor("attn.k." + s, {B, S, H, D}, 1.0f, bench.activations());
      v = pool.tensor("attn.v." + s, {B, S, H, D}, 1.0f, bench.activations());
    } catch (const std::exception& e) {
      report.add(error_row("attention", "S=" + s + " inputs", e.what()));
      continue;
    }
    std::vector<Tensor> outs;
    for (const AttentionBackend b : {AttentionBackend::kCudnn, AttentionBackend::kParadit}) {
      const std::string name = "S=" + s + " " + backend_name(b);
      try {
        core::AttentionOptions opt;
        opt.backend = b;
        Tensor out;
        const Timing t = time_op(
            bench, [&] { out = core::attention(q, k, v, opt).out; }, 2, o.reps ? o.reps : 10,
            o.seconds);
        const double flop = 4.0 * B * H * static_cast<double>(S) * S * D;
        const double tflops = flop / (t.median_ms * 1e-3) / 1e12;
        const double anchor_lo = S == 4608 ? 594 : 614, anchor_hi = S == 4608 ? 594 : 642;
        const std::string anchor = anchor_lo == anchor_hi ? std::to_string(int(anchor_lo))
                                                          : std::to_string(int(anchor_lo)) + "-" +
                                                                std::to_string(int(anchor_hi));
        std::printf("  %-34s %9.3f %9.1f %9s\n", name.c_str(), t.median_ms, tflops, anchor.c_str());
        std::fflush(stdout);
        report.add(Json{{"part", "attention"},
                        {"name", name},
                        {"status", "ok"},
                        {"backend", backend_name(b)},
                        {"B", B},
                        {"H", H},
                        {"D", D},
                        {"S", S},
                        {"ms", t.median_ms},
                        {"ms_min", t.min_ms},
                        {"samples", t.samples},
                        {"tflops", tflops},
                        {"anchor_tflops", anchor_lo},
                        {"anchor_tflops_high", anchor_hi}});
        if (S == 4608) outs.push_back(out);
      } catch (const std::exception& e) {
        report.add(error_row("attention", name, e.what()));
      }
    }
    // The two backends on the same inputs: both compute softmax(q kᵀ/√D) v in f32 from bf16, so
    // they differ by bf16 rounding of the output (≈ 1e-2 of its scale), not more.
    if (outs.size() == 2) {
      try {
        const std::vector<float> a = outs[0].to_vector(), b = outs[1].to_vector();
        double max_diff = 0, max_ref = 0;
        bool finite = true;
        for (size_t i = 0; i < a.size(); ++i) {
          if (!std::isfinite(a[i]) || !std::isfinite(b[i])) finite = false;
          max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
          max_ref = std::max(max_ref, static_cast<double>(std::fabs(a[i])));
        }
        std::printf("  %-34s max |cudnn - paradit| = %.3g (max |out| %.3g)%s\n",
                    ("S=" + s + " agreement").c_str(), max_diff, max_ref,
                    finite ? "" : ", NON-FINITE values");
        report.add(Json{{"part", "attention"},
                        {"name", "S=" + s + " agreement"},
                        {"status", "ok"},
                        {"S", S},
                        {"max_abs_diff", max_diff},
                        {"max_abs_out", max_ref},
                        {"finite", finite}});
      } catch (const std::exception& e) {
        report.add(error_row("attention", "S=" + s + " agreement", e.what()));
      }
    }
  }
}

// ---------------------------------------------------------------- transformer steps
struct ModelCase {
  std::string key, title;
  int64_t batch = 1;
  std::string tokens;                // image + text, as anchors.md lists them
  double diffusers_ms = 0;           // anchors.md: diffusers eager, one forward, H100, bf16
  double diffusers_compiled_ms = 0;  // + torch.compile, where anchors.md has it
  double counted_tflop = 0;          // anchors.md: counted TFLOP of that forward
};

const std::vector<ModelCase>& model_cases() {
  static const std::vector<ModelCase> cases = {
      {"flux", "Flux.1-dev 1024²", 1, "4096+512", 183.9, 131.2, 74.4},
      {"pixart", "PixArt-Σ 1024²", 2, "4096+300", 38.5, 0, 13.3},
      {"sd35", "SD3.5-large 1024²", 2, "4096+333", 190.2, 0, 62.2},
      {"wan", "Wan2.1-T2V-1.3B 480×832×81f", 1, "32760+512", 611, 0, 283},
  };
  return cases;
}

// Wan2.1-T2V-1.3B's transformer config.json (make-model has no Wan preset).
Json wan_1_3b_config() {
  Json c;
  c["_class_name"] = "WanTransformer3DModel";
  c["_diffusers_version"] = "0.33.0.dev0";
  c["added_kv_proj_dim"] = nullptr;
  c["attention_head_dim"] = 128;
  c["cross_attn_norm"] = true;
  c["eps"] = 1e-6;
  c["ffn_dim"] = 8960;
  c["freq_dim"] = 256;
  c["image_dim"] = nullptr;
  c["in_channels"] = 16;
  c["num_attention_heads"] = 12;
  c["num_layers"] = 30;
  c["out_channels"] = 16;
  c["patch_size"] = {1, 2, 2};
  c["pos_embed_seq_len"] = nullptr;
  c["qk_norm"] = "rms_norm_across_heads";
  c["rope_max_seq_len"] = 1024;
  c["text_dim"] = 4096;
  return c;
}

// The full-size config; `layers` > 0 cuts the layer count (Flux: both block kinds) to it.
Json model_config(const std::string& key, int layers) {
  Json c = key == "flux"     ? models::preset_config("flux", "full")
           : key == "pixart" ? models::preset_config("pixart-sigma", "full")
           : key == "sd35"   ? models::preset_config("sd35", "full")
                             : wan_1_3b_config();
  if (layers > 0) {
    c["num_layers"] = layers;
    if (key == "flux") c["num_single_layers"] = layers;
  }
  return c;
}

// The forward's inputs as a pipeline passes them: latents and embeddings as F32 on the device,
// timesteps, ids and masks as host tensors (the models move what they need).
models::NamedTensors model_inputs(const ModelCase& m, const DevicePool& pool) {
  models::NamedTensors in;
  const int64_t B = m.batch;
  auto dev = [&](const std::string& name, const Shape& shape, float scale) {
    return pool.tensor("input." + m.key + "." + name, shape, scale, DType::F32);
  };
  if (m.key == "flux") {
    in["hidden_states"] = dev("hidden_states", {B, 4096, 64}, 1.0f);  // 64×64 packed 2×2
    in["encoder_hidden_states"] = dev("encoder_hidden_states", {B, 512, 4096}, 0.2f);
    in["pooled_projections"] = dev("pooled_projections", {B, 768}, 0.2f);
    in["timestep"] = Tensor::full({B}, 0.5f);  // t / 1000
    in["guidance"] = Tensor::full({B}, 3.5f);
    std::vector<float> ids;
    for (int r = 0; r < 64; ++r)
      for (int c = 0; c < 64; ++c) ids.insert(ids.end(), {0.0f, float(r), float(c)});
    in["img_ids"] = Tensor::from_vector(ids, {4096, 3});
    in["txt_ids"] = Tensor::zeros({512, 3});
  } else if (m.key == "pixart") {
    in["hidden_states"] = dev("hidden_states", {B, 4, 128, 128}, 1.0f);
    in["encoder_hidden_states"] = dev("encoder_hidden_states", {B, 300, 4096}, 0.2f);
    in["encoder_attention_mask"] = Tensor::full({B, 300}, 1.0f);
    in["timestep"] = Tensor::full({B}, 500.0f);
  } else if (m.key == "sd35") {
    in["hidden_states"] = dev("hidden_states", {B, 16, 128, 128}, 1.0f);
    in["encoder_hidden_states"] = dev("encoder_hidden_states", {B, 333, 4096}, 0.2f);
    in["pooled_projections"] = dev("pooled_projections", {B, 2048}, 0.2f);
    in["timestep"] = Tensor::full({B}, 500.0f);
  } else {  // wan: 81 frames → 21 latent frames of 60×104; patch 1×2×2 → 21·30·52 = 32760 tokens
    in["hidden_states"] = dev("hidden_states", {B, 16, 21, 60, 104}, 1.0f);
    in["encoder_hidden_states"] = dev("encoder_hidden_states", {B, 512, 4096}, 0.2f);
    in["timestep"] = Tensor::full({B}, 500.0f);
  }
  return in;
}

// Mean |x| and whether every value is finite, read back to the host (outputs are ≤ 2 M values).
std::pair<double, bool> output_stats(const Tensor& out) {
  const std::vector<float> v = out.to_vector();
  double sum = 0;
  bool finite = true;
  for (float x : v) {
    if (!std::isfinite(x)) {
      finite = false;
      continue;
    }
    sum += std::fabs(x);
  }
  return {v.empty() ? 0.0 : sum / static_cast<double>(v.size()), finite};
}

void print_model_header() {
  std::printf("  %-30s %10s %10s %9s %8s %8s %8s %7s\n", "model, batch, tokens", "paradit ms",
              "eager ms", "par/eager", "TFLOP/s", "wts GiB", "peak GiB", "bind s");
}

void run_model(const Bench& bench, const ModelCase& m, const Options& o, const DevicePool& pool,
               Report& report) {
  const std::string label = m.title + ", b" + std::to_string(m.batch) + ", " + m.tokens;
  try {
    core::set_default_attention_backend(o.step_backend);
    const paradit::io::Config config(model_config(m.key, o.layers), "bench_gpu " + m.key);
    bench.sync();
    const size_t base = bench.in_use_bytes();  // the pool and nothing else

    const auto t_bind = Clock::now();
    std::unique_ptr<models::Transformer> model;
    {
      DevicePoolWeights weights(pool, 1);
      model =
          models::make_transformer(config, weights, core::Placement(bench.device(), DType::BF16));
    }
    bench.sync();
    const double bind_s = seconds_since(t_bind);
    const size_t weight_bytes = bench.in_use_bytes() - base;
    const models::NamedTensors inputs = model_inputs(m, pool);
    bench.sync();

    // Warm-up: the first forward builds every GEMM and attention plan of these shapes.
    Tensor out;
    auto t0 = Clock::now();
    out = model->forward(inputs);
    bench.sync();
    const double first_s = seconds_since(t0);
    if (first_s < o.seconds / 2) {
      out = model->forward(inputs);
      bench.sync();
    }

    // One forward at a time, the device drained before each: the interval is its wall time on
    // the device, with any host work inside the forward.
    bench.reset_peak();
    const int reps = o.reps ? o.reps : 10;
    const int min_reps = first_s < o.seconds / 3 ? 3 : 1;
    std::vector<double> event_ms, wall_ms;
    t0 = Clock::now();
    for (int r = 0; r < reps; ++r) {
      bench.sync();
      const auto w0 = Clock::now();
      event_ms.push_back(bench.milliseconds([&] { out = model->forward(inputs); }));
      wall_ms.push_back(1e3 * seconds_since(w0));
      if (r + 1 >= min_reps && seconds_since(t0) > o.seconds) break;
    }
    const double peak_bytes = static_cast<double>(bench.peak_bytes() - base);
    const auto [mean_abs, finite] = output_stats(out);

    const double ms = median(event_ms);
    const double tflops = m.counted_tflop / (ms * 1e-3);
    const double ratio = ms / m.diffusers_ms;
    std::printf("  %-30s %10.1f %10.1f %9.2f %8.1f %8.2f %8.2f %7.1f%s%s\n", label.c_str(), ms,
                m.diffusers_ms, ratio, tflops, weight_bytes / kGiB, peak_bytes / kGiB, bind_s,
                finite ? "" : "  NON-FINITE output",
                o.layers ? "  (layers cut: not a comparison)" : "");
    std::fflush(stdout);
    Json row{{"part", "model"},
             {"name", m.key},
             {"title", m.title},
             {"status", "ok"},
             {"device", bench.cuda() ? "cuda" : "cpu"},
             {"batch", m.batch},
             {"tokens", m.tokens},
             {"attention_backend", backend_name(o.step_backend)},
             {"ms", ms},
             {"ms_min", *std::min_element(event_ms.begin(), event_ms.end())},
             {"wall_ms", median(wall_ms)},
             {"samples", static_cast<int>(event_ms.size())},
             {"first_forward_s", first_s},
             {"diffusers_eager_ms", m.diffusers_ms},
             {"ratio_to_eager", ratio},
             {"counted_tflop", m.counted_tflop},
             {"tflops", tflops},
             {"weights_gib", weight_bytes / kGiB},
             {"peak_gib", peak_bytes / kGiB},
             {"bind_s", bind_s},
             {"output_shape", core::shape_str(out.shape())},
             {"output_mean_abs", mean_abs},
             {"output_finite", finite}};
    if (m.diffusers_compiled_ms > 0) row["diffusers_compiled_ms"] = m.diffusers_compiled_ms;
    if (o.layers) row["layers_cut_to"] = o.layers;
    report.add(row);
  } catch (const std::exception& e) {
    report.add(error_row("model", m.key, e.what()));
  }
  // The model, its inputs and outputs are gone here.
  bench.release();
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  Report report;
  report.path = o.json_path;
  report.root = Json{{"status", "ok"}, {"results", Json::array()}};

  std::string device = "CPU";
  if (o.device == Device::CUDA) {
    const char* why = nullptr;
#ifdef PARADIT_WITH_CUDA
    if (cuda::device_count() == 0) {
      why = "no CUDA device is visible (no GPU, no driver, or CUDA_VISIBLE_DEVICES)";
    }
#else
    why = "this build has no CUDA backend (PARADIT_WITH_CUDA=OFF)";
#endif
    if (why) {
      std::printf("bench_gpu: skipped: %s\n", why);
      write_json(o.json_path, Json{{"status", "skipped"}, {"reason", why}});
      return o.require_device ? 1 : 0;
    }
#ifdef PARADIT_WITH_CUDA
    const int dev = cuda::current_device();
    device = cuda::device_name(dev) + " (sm_" + std::to_string(cuda::compute_capability(dev)) + ")";
    report.root["compute_capability"] = cuda::compute_capability(dev);
#endif
  }
  const Bench bench(o.device);
  report.root["device"] = device;
#ifdef PARADIT_WITH_CUDNN
  report.root["cudnn"] = true;
#else
  report.root["cudnn"] = false;
#endif
  report.root["parts"] = o.parts;
  if (o.layers) report.root["layers_cut_to"] = o.layers;
  write_json(o.json_path, report.root);
  std::printf("bench_gpu: %s, cuDNN %s, parts:", device.c_str(),
              report.root["cudnn"].get<bool>() ? "built" : "NOT built");
  for (const auto& p : o.parts) std::printf(" %s", p.c_str());
  std::printf("%s\n",
              o.layers ? (", models cut to " + std::to_string(o.layers) + " layers").c_str() : "");

  std::unique_ptr<DevicePool> pool;
  try {
    const auto t0 = Clock::now();
    pool = std::make_unique<DevicePool>(bench, 12345);
    bench.sync();
    report.root["pool_s"] = seconds_since(t0);
    std::printf("random pool: 2^27 values on the device in %.2f s\n", seconds_since(t0));
  } catch (const std::exception& e) {
    report.add(error_row("setup", "random pool", e.what()));
    return 1;
  }

  bool models_header = false;
  for (const auto& part : o.parts) {
    if (part == "gemm") {
      run_gemm(bench, o, *pool, report);
    } else if (part == "attention") {
      run_attention(bench, o, *pool, report);
    } else {
      if (!models_header) {
        std::printf(
            "\ntransformer step, bf16, full size, random weights (eager: diffusers on "
            "H100, anchors.md; par/eager < 1: paradit faster)\n");
        print_model_header();
        models_header = true;
      }
      for (const auto& m : model_cases()) {
        if (m.key == part) run_model(bench, m, o, *pool, report);
      }
    }
  }
  return report.any_error ? 1 : 0;
}
