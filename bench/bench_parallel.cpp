// bench_parallel: sequence-parallel forward of a mid-size Flux-like model (the "small" preset:
// 4 double + 8 single blocks, 12 heads × 64 = hidden 768; random weights) over 1024 image + 128
// text tokens, batch 1, under mpirun:
//   mpirun -np 4 bench_parallel [--reps N] [--threads T]
// For P = 1, 2, 4 (those ≤ the job's size; the first P ranks run, the rest wait) and each
// strategy — Ulysses (ulysses = P), Ring (ring = P), USP (ulysses 2 × ring P/2) — it prints the
// seconds per forward (median of N after one warm-up) and the bytes each rank sent per forward
// (the communicators' counters, rank 0's figures) next to the analytic volumes per attention
// layer: Ulysses 4·(S/P)·d·(P−1)/P floats (q, k, v in, out back; ≈ 4·S·d/P), Ring
// 2·S·d·(P−1)/P (its K and V blocks passed P−1 times), S = 1152 joint tokens, d = 768.
// On a machine with fewer cores than ranks the ranks share cores: times then measure the sharing.

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "comm/process_mesh.h"
#include "comm/runtime.h"
#include "io/diffusers.h"
#include "models/common/random_weights.h"
#include "models/presets.h"
#include "models/transformer.h"
#include "parallel/sequence.h"

using paradit::core::Tensor;
namespace comm = paradit::comm;
namespace models = paradit::models;
namespace parallel = paradit::parallel;

namespace {

constexpr int64_t kImage = 1024, kText = 128;

Tensor random_input(const paradit::core::Shape& shape, uint64_t seed, float scale) {
  Tensor t = Tensor::empty(shape);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 3;
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = scale * static_cast<float>(static_cast<double>(s >> 11) / 9007199254740992.0 * 2 - 1);
  }
  return t;
}

models::NamedTensors flux_inputs(const paradit::io::Config& c) {
  models::NamedTensors in;
  in["hidden_states"] = random_input({1, kImage, c.get_int("in_channels")}, 1, 1.0f);
  in["encoder_hidden_states"] = random_input({1, kText, c.get_int("joint_attention_dim")}, 2, 0.2f);
  in["pooled_projections"] = random_input({1, c.get_int("pooled_projection_dim")}, 3, 0.2f);
  in["timestep"] = Tensor::from_vector({0.5f}, {1});
  in["guidance"] = Tensor::from_vector({3.5f}, {1});
  std::vector<float> img;
  for (int r = 0; r < 32; ++r)
    for (int q = 0; q < 32; ++q) img.insert(img.end(), {0.0f, float(r), float(q)});
  in["img_ids"] = Tensor::from_vector(img, {kImage, 3});
  in["txt_ids"] = Tensor::zeros({kText, 3});
  return in;
}

struct Case {
  const char* name;
  int ulysses, ring;
};

}  // namespace

int main(int argc, char** argv) {
  comm::Communicator& world = comm::init(&argc, &argv);
  int reps = 3, threads = 1;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps"))
      reps = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::max(1, std::atoi(argv[++i]));
  }
  omp_set_num_threads(threads);
  try {
    const paradit::io::Config config(models::preset_config("flux", "small"), "flux/small");
    models::common::RandomWeights weights(1);
    const auto model = models::make_transformer(config, weights);
    const models::NamedTensors inputs = flux_inputs(config);
    const int64_t layers = config.get_int("num_layers") + config.get_int("num_single_layers");
    const double S = kImage + kText, d = double(config.get_int("num_attention_heads")) *
                                         double(config.get_int("attention_head_dim"));
    if (world.rank() == 0) {
      std::printf(
          "bench_parallel: Flux-like small (%lld attention layers, d = %.0f), %lld image + "
          "%lld text tokens, %d ranks × %d threads, %d reps\n",
          static_cast<long long>(layers), d, static_cast<long long>(kImage),
          static_cast<long long>(kText), world.size(), threads, reps);
      std::printf("%-8s %2s %4s %4s %10s %14s %14s %14s %12s\n", "method", "P", "uly", "ring",
                  "s/forward", "attn MiB/rank", "analytic MiB", "gather MiB", "vs P=1");
    }
    const std::vector<Case> cases = {{"local", 1, 1},   {"ulysses", 2, 1}, {"ring", 1, 2},
                                     {"ulysses", 4, 1}, {"ring", 1, 4},    {"usp", 2, 2}};
    double t1 = 0;
    for (const Case& c : cases) {
      const int p = c.ulysses * c.ring;
      if (p > world.size()) continue;
      auto group = world.split(world.rank() < p ? 0 : 1, world.rank());
      double seconds = 0, attn_mib = 0, gather_mib = 0;
      if (world.rank() < p) {
        comm::MeshDegrees deg;
        deg.ulysses = c.ulysses;
        deg.ring = c.ring;
        const comm::ProcessMesh mesh(*group, deg);
        const parallel::SequenceContext sp = parallel::SequenceContext::from_mesh(mesh);
        model->forward(inputs, &sp);  // warm-up
        const comm::Communicator& u = mesh.group(comm::MeshDim::kUlysses);
        const comm::Communicator& r = mesh.group(comm::MeshDim::kRing);
        u.reset_bytes();
        r.reset_bytes();
        std::vector<double> times;
        for (int i = 0; i < reps; ++i) {
          group->barrier();
          const auto a = std::chrono::steady_clock::now();
          model->forward(inputs, &sp);
          times.push_back(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
        }
        std::sort(times.begin(), times.end());
        seconds = times[times.size() / 2];
        const comm::ByteCounters bu = u.bytes(), br = r.bytes();
        attn_mib = double(bu.all_to_all + br.all_to_all + bu.send + br.send) / reps / 1048576.0;
        gather_mib = double(bu.all_gather + br.all_gather) / reps / 1048576.0;
      }
      world.barrier();
      if (world.rank() == 0) {
        if (p == 1) t1 = seconds;
        // Per attention layer, in floats; USP: Ulysses inside each of the R ring stages plus the
        // ring passing the head-sharded K/V blocks.
        const double U = c.ulysses, R = c.ring;
        const double uly = U > 1 ? 4 * (S / p) * d * (U - 1) / U : 0;
        const double ring = R > 1 ? 2 * (S / p) * d * (R - 1) : 0;
        const double analytic = (uly + ring) * 4 * layers / 1048576.0;
        std::printf("%-8s %2d %4d %4d %10.3f %14.2f %14.2f %14.3f %11.2fx\n", c.name, p, c.ulysses,
                    c.ring, seconds, attn_mib, analytic, gather_mib, t1 / seconds);
      }
    }
  } catch (const std::exception& e) {
    comm::abort_job(2, std::string("bench_parallel: error: ") + e.what());
  }
  comm::finalize();
  return 0;
}
