// bench_llm_families: the LLM-conditioned families on the CPU.
//   bench_llm_families [--reps N] [--threads T] [--encoder DIR] [--tokens L] [--json FILE]
// (a) One transformer forward of each new family's "small" preset (make-model --preset small:
//     12 heads × 64, random f32 weights) on a 1024-token image (64×64 latent at patch 2, or 32×32
//     packed FLUX.2 tokens) and the pipelines' text lengths (FLUX.2 / klein 512, Qwen-Image 128,
//     Z-Image 128 caption tokens), at batch 1 and batch 2 (the CFG batch): seconds (median of N
//     after one warm-up). A denoising step is one forward (FLUX.2 dev) or one batch-2 forward
//     (klein, Qwen-Image, Z-Image with CFG).
// (b) With --encoder DIR (a decoder-LLM text encoder folder, e.g. one written by
//     bench/compare_encoder_torch.py): hidden_states over L tokens (default 512), batch 1,
//     seconds and tokens/s (median of N).
// Threads: --threads (default 2).

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/random.h"
#include "io/diffusers.h"
#include "models/common/random_weights.h"
#include "models/llm/decoder_lm.h"
#include "models/presets.h"
#include "models/transformer.h"

using paradit::core::Tensor;
namespace models = paradit::models;
namespace io = paradit::io;
namespace core = paradit::core;

namespace {

double median_seconds(int reps, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// The inputs of one forward of `arch` at batch B.
models::NamedTensors inputs_for(const std::string& arch, const io::Config& cfg, int64_t B) {
  models::NamedTensors in;
  uint64_t seed = 1;
  const auto randn = [&](const core::Shape& s) { return core::randn(s, seed++); };
  const Tensor t = Tensor::full({B}, 0.5f);
  if (arch == "flux2" || arch == "flux2-klein") {
    const int64_t C = cfg.get_int("in_channels"), J = cfg.get_int("joint_attention_dim"), L = 512;
    in["hidden_states"] = randn({B, 1024, C});
    in["encoder_hidden_states"] = randn({B, L, J});
    in["timestep"] = t;
    if (arch == "flux2") in["guidance"] = Tensor::full({B}, 4.0f);
    std::vector<float> img, txt;
    for (int64_t r = 0; r < 32; ++r)
      for (int64_t c = 0; c < 32; ++c) img.insert(img.end(), {0.f, float(r), float(c), 0.f});
    for (int64_t k = 0; k < L; ++k) txt.insert(txt.end(), {0.f, 0.f, 0.f, float(k)});
    in["img_ids"] = Tensor::from_vector(img, {1024, 4});
    in["txt_ids"] = Tensor::from_vector(txt, {L, 4});
  } else if (arch == "qwen-image") {
    in["hidden_states"] = randn({B, 1024, cfg.get_int("in_channels")});
    in["encoder_hidden_states"] = randn({B, 128, cfg.get_int("joint_attention_dim")});
    in["timestep"] = t;
    in["img_shapes"] = Tensor::from_vector_i64({1, 32, 32}, {1, 3});
  } else {  // z-image
    in["hidden_states"] = randn({B, cfg.get_int("in_channels"), 1, 64, 64});
    in["encoder_hidden_states"] = randn({B, 128, cfg.get_int("cap_feat_dim")});
    in["timestep"] = t;
  }
  return in;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3, threads = 2, tokens = 512;
  std::string encoder, json;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--reps")
      reps = std::atoi(next().c_str());
    else if (a == "--threads")
      threads = std::atoi(next().c_str());
    else if (a == "--encoder")
      encoder = next();
    else if (a == "--tokens")
      tokens = std::atoi(next().c_str());
    else if (a == "--json")
      json = next();
    else {
      std::fprintf(stderr, "bench_llm_families: unknown argument '%s'\n", a.c_str());
      return 2;
    }
  }
  omp_set_num_threads(threads);
  std::string out = "{\"threads\": " + std::to_string(threads);
  if (encoder.empty()) {
    std::printf("%-12s %10s %10s %12s %12s\n", "family", "params(M)", "tokens", "fwd B=1 (s)",
                "fwd B=2 (s)");
    for (const std::string arch : {"flux2", "flux2-klein", "qwen-image", "z-image"}) {
      const io::Config cfg(models::preset_config(arch, "small"), arch + "/small");
      paradit::models::common::RandomWeights weights(7);
      auto model = models::make_transformer(cfg, weights);
      const double t1 = median_seconds(reps, [&] { model->forward(inputs_for(arch, cfg, 1)); });
      const double t2 = median_seconds(reps, [&] { model->forward(inputs_for(arch, cfg, 2)); });
      std::printf("%-12s %10.1f %10d %12.3f %12.3f\n", arch.c_str(),
                  weights.parameter_count() / 1e6, 1024, t1, t2);
      out += ", \"" + arch + "\": {\"forward_b1_s\": " + std::to_string(t1) +
             ", \"forward_b2_s\": " + std::to_string(t2) + "}";
    }
  } else {
    const auto lm = models::llm::DecoderLM::load(encoder);
    std::vector<int64_t> ids(static_cast<size_t>(tokens));
    for (int i = 0; i < tokens; ++i) ids[i] = (i * 7919) % lm.config().vocab_size;
    const Tensor input_ids = Tensor::from_vector_i64(ids, {1, tokens});
    const Tensor mask = Tensor::full({1, tokens}, 1.0f);
    const double s = median_seconds(reps, [&] { lm.hidden_states(input_ids, mask, {-1}); });
    std::printf("encoder %s: %d tokens in %.3f s = %.1f tokens/s (%d threads)\n",
                lm.config().architecture.c_str(), tokens, s, tokens / s, threads);
    out += ", \"encoder_seconds\": " + std::to_string(s) +
           ", \"encoder_tokens_per_s\": " + std::to_string(tokens / s);
  }
  out += "}";
  if (!json.empty()) std::ofstream(json) << out << "\n";
  return 0;
}
