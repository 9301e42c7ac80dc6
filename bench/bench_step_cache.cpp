// bench_step_cache: speed and quality of step caching (--use_fbcache / --use_teacache) on one
// pipeline. One uncached generate, then one cached generate per (method, threshold), all in this
// process with the same request and seed; per run: the steps computed in full, the denoising
// loop's wall time as a ratio of the uncached run's (same process, so the same machine load),
// and the PSNR of the decoded output (images, or every video frame) against the uncached output.
//   bench_step_cache --model DIR [--method fbcache|teacache|both] [--thresholds 0,0.05,0.1]
//       [--steps N] [--height H] [--width W] [--num_frames F] [--prompt TEXT] [--seed S]
//       [--repeat R] [--warmup_steps N] [--max_sequence_length L] [--verbose]
// --repeat R runs every case R times and keeps the median time (the uncached one too).
// --verbose prints each cached run's per-step distances ("-" where the step was forced).
//   bench_step_cache --make_wan_small DIR --from WAN_PIPELINE [--layers 8] [--seed S]
// writes a random "small" Wan pipeline (paradit make-model has no Wan preset): the transformer
// has --layers blocks of 12 heads × 64 (hidden 768, FFN 3072) with random weights, the other
// components are copied from WAN_PIPELINE (e.g. tests/data/pipeline/wan), whose text encoder
// width the transformer's text_dim follows.
// Times on a shared machine: the wall time of the denoising loop moves with the machine's load;
// "cpu s" (this process's CPU time over steps 2 … N, with OMP_NUM_THREADS=1 the work done) does
// not. Read both as ratios within one run.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "comm/runtime.h"
#include "core/error.h"
#include "io/diffusers.h"
#include "io/safetensors.h"
#include "models/common/random_weights.h"
#include "models/step_cache.h"
#include "models/transformer.h"
#include "pipelines/pipeline.h"

namespace fs = std::filesystem;
namespace models = paradit::models;
namespace pipelines = paradit::pipelines;
using paradit::core::Tensor;

namespace {

struct Options {
  std::string model;
  std::string method = "both";
  std::vector<double> thresholds;
  int steps = 20;
  int64_t height = 0, width = 0, num_frames = 0;
  std::string prompt = "a small red circle on the left on a blue background";
  uint64_t seed = 7;
  int repeat = 1;
  int warmup_steps = 0;
  int max_sequence_length = 0;  // 0: the pipeline's default
  bool verbose = false;
  std::string make_wan_small, from;
  int layers = 8;
};

std::vector<double> parse_list(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::atof(item.c_str()));
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// PSNR of a against b, both in [-1, 1] (mapped to [0, 1] as the PNG writer does).
double psnr(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double se = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double u = std::clamp(x[i] / 2.0 + 0.5, 0.0, 1.0);
    const double v = std::clamp(y[i] / 2.0 + 0.5, 0.0, 1.0);
    se += (u - v) * (u - v);
  }
  const double mse = se / static_cast<double>(x.size());
  return mse == 0 ? INFINITY : 10.0 * std::log10(1.0 / mse);
}

struct Run {
  pipelines::GenerateResult result;
  double seconds = 0;      // the denoising loop's wall time, median over the repeats
  double cpu_seconds = 0;  // this process's CPU time from the end of step 1 to the last step's
};

Run run(pipelines::Pipeline& pipe, const pipelines::GenerateRequest& req, int repeat) {
  Run r;
  std::vector<double> times, cpu;
  for (int k = 0; k < repeat; ++k) {
    // CPU time (all threads) over steps 2 … N, which every run has and step 1 (always computed)
    // does not distort: on a shared machine it depends on the work done, not on the load.
    std::clock_t first = 0, last = 0;
    r.result = pipe.generate(req, [&](const pipelines::StepEvent& e) {
      if (e.index == 0) first = std::clock();
      if (e.index == e.total - 1) last = std::clock();
    });
    times.push_back(r.result.times.denoise);
    cpu.push_back(static_cast<double>(last - first) / CLOCKS_PER_SEC);
  }
  r.seconds = median(times);
  r.cpu_seconds = median(cpu);
  return r;
}

int bench(const Options& o) {
  auto pipe = pipelines::Pipeline::open(o.model);
  pipe->set_keep_loaded(true);  // load once, so each run times the same work
  pipelines::GenerateRequest base;
  base.prompts = {o.prompt};
  base.num_inference_steps = o.steps;
  base.seed = o.seed;
  if (o.height) base.height = o.height;
  if (o.width) base.width = o.width;
  if (o.num_frames) base.num_frames = o.num_frames;
  if (o.max_sequence_length) base.max_sequence_length = o.max_sequence_length;
  const pipelines::GenerateRequest resolved = pipe->resolve(base);
  std::string frames;
  if (pipe->is_video()) {
    frames = " x ";
    frames += std::to_string(*resolved.num_frames);
    frames += " frames";
  }
  std::printf("bench_step_cache: %s (%s), %dx%d%s, %d steps, seed %llu, %d repeat(s)\n",
              o.model.c_str(), pipe->class_name().c_str(), static_cast<int>(*resolved.width),
              static_cast<int>(*resolved.height), frames.c_str(), o.steps,
              static_cast<unsigned long long>(o.seed), o.repeat);
  pipe->generate(base);  // warm the caches of the allocator and the kept components
  const Run ref = run(*pipe, base, o.repeat);
  std::printf("%-9s %9s %9s %10s %9s %9s %9s %8s  %s\n", "method", "threshold", "computed",
              "denoise s", "vs off", "cpu s", "cpu vs", "PSNR dB", "reused steps (1-based)");
  std::printf("%-9s %9s %5d/%-3d %10.3f %9.3f %9.3f %9.3f %8s\n", "off", "-", o.steps, o.steps,
              ref.seconds, 1.0, ref.cpu_seconds, 1.0, "inf");
  std::vector<models::CacheMethod> methods;
  if (o.method == "fbcache" || o.method == "both")
    methods.push_back(models::CacheMethod::kFirstBlock);
  if (o.method == "teacache" || o.method == "both") methods.push_back(models::CacheMethod::kTea);
  for (const models::CacheMethod m : methods) {
    std::vector<double> thresholds = o.thresholds;
    if (thresholds.empty()) {
      thresholds = m == models::CacheMethod::kTea ? std::vector<double>{0.1, 0.3, 0.6, 1.0}
                                                  : std::vector<double>{0.05, 0.08, 0.12, 0.2};
    }
    for (const double th : thresholds) {
      pipelines::GenerateRequest req = base;
      req.cache.method = m;
      req.cache.threshold = th;
      req.cache.warmup_steps = o.warmup_steps;
      const Run c = run(*pipe, req, o.repeat);
      std::string reused;
      for (int s : c.result.cache.reused_steps) {
        if (!reused.empty()) reused += ',';
        reused += std::to_string(s + 1);
      }
      std::printf("%-9s %9g %5zu/%-3d %10.3f %9.3f %9.3f %9.3f %8.2f  %s\n",
                  models::cache_method_name(m), th, c.result.cache.computed_steps.size(), o.steps,
                  c.seconds, c.seconds / ref.seconds, c.cpu_seconds,
                  c.cpu_seconds / std::max(ref.cpu_seconds, 1e-9),
                  psnr(c.result.images, ref.result.images), reused.c_str());
      if (o.verbose) {
        std::printf("          distances:");
        for (const models::StepCacheRecord& r : c.result.cache.records) {
          if (r.distance < 0) {
            std::printf(" -");
          } else {
            std::printf(" %.4f", r.distance);
          }
        }
        std::printf("\n");
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

// A random small Wan pipeline around another Wan pipeline's components.
int make_wan_small(const Options& o) {
  const fs::path dir = o.make_wan_small, from = o.from;
  PARADIT_CHECK(!o.from.empty(), "--from: the Wan pipeline to take the other components from");
  PARADIT_CHECK(!fs::exists(dir), "--make_wan_small: ", dir.string(), " exists");
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(from)) {
    if (e.path().filename() == "transformer") continue;
    fs::copy(e.path(), dir / e.path().filename(), fs::copy_options::recursive);
  }
  const paradit::io::Config te =
      paradit::io::Config::load(fs::path(from) / "text_encoder" / "config.json");
  paradit::io::Json cfg = {{"_class_name", "WanTransformer3DModel"},
                           {"attention_head_dim", 64},
                           {"cross_attn_norm", true},
                           {"eps", 1e-6},
                           {"ffn_dim", 3072},
                           {"freq_dim", 256},
                           {"in_channels", 16},
                           {"num_attention_heads", 12},
                           {"num_layers", o.layers},
                           {"out_channels", 16},
                           {"patch_size", {1, 2, 2}},
                           {"qk_norm", "rms_norm_across_heads"},
                           {"rope_max_seq_len", 1024},
                           {"text_dim", te.get_int("d_model")}};
  fs::create_directories(dir / "transformer");
  {
    std::FILE* f = std::fopen((dir / "transformer" / "config.json").c_str(), "w");
    PARADIT_CHECK(f != nullptr, "cannot write ", (dir / "transformer").string());
    const std::string text = cfg.dump(2);
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  models::common::RandomWeights weights(o.seed);
  const paradit::io::Config config(cfg, (dir / "transformer" / "config.json").string());
  models::make_transformer(config, weights);  // binds every tensor once
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& e : weights.entries()) tensors.emplace_back(e.name, e.stored);
  paradit::io::save_safetensors(dir / "transformer" / "diffusion_pytorch_model.safetensors",
                                tensors);
  std::printf("bench_step_cache: wrote %s (Wan, %d layers of 12 x 64, %lld parameters)\n",
              dir.c_str(), o.layers, static_cast<long long>(weights.parameter_count()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  paradit::comm::init(&argc, &argv);
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_step_cache: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model")
      o.model = next();
    else if (a == "--method")
      o.method = next();
    else if (a == "--thresholds")
      o.thresholds = parse_list(next());
    else if (a == "--steps")
      o.steps = std::atoi(next().c_str());
    else if (a == "--height")
      o.height = std::atoll(next().c_str());
    else if (a == "--width")
      o.width = std::atoll(next().c_str());
    else if (a == "--num_frames")
      o.num_frames = std::atoll(next().c_str());
    else if (a == "--prompt")
      o.prompt = next();
    else if (a == "--seed")
      o.seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--repeat")
      o.repeat = std::max(1, std::atoi(next().c_str()));
    else if (a == "--warmup_steps")
      o.warmup_steps = std::atoi(next().c_str());
    else if (a == "--max_sequence_length")
      o.max_sequence_length = std::atoi(next().c_str());
    else if (a == "--verbose")
      o.verbose = true;
    else if (a == "--make_wan_small")
      o.make_wan_small = next();
    else if (a == "--from")
      o.from = next();
    else if (a == "--layers")
      o.layers = std::atoi(next().c_str());
    else {
      std::fprintf(stderr, "bench_step_cache: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  int code = 2;
  try {
    if (!o.make_wan_small.empty()) {
      code = make_wan_small(o);
    } else {
      PARADIT_CHECK(!o.model.empty(), "--model: the pipeline folder is required");
      PARADIT_CHECK(o.method == "fbcache" || o.method == "teacache" || o.method == "both",
                    "--method: fbcache, teacache or both, found ", o.method);
      code = bench(o);
    }
  } catch (const paradit::Error& e) {
    std::fprintf(stderr, "bench_step_cache: error: %s\n", e.what());
  }
  paradit::comm::finalize();
  return code;
}
