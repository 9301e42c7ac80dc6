// bench_video: CPU per-step time of a small random-weight Wan transformer under sequence
// parallelism, and the video decode with and without the row-parallel VAE, under mpirun:
//   OMP_NUM_THREADS=1 mpirun --mca mpi_yield_when_idle 1 -np 4 bench_video [--reps N]
//       [--threads T] [--part all|step|vae]
// Transformer: WanTransformer3DModel with 2 blocks, 8 heads × 48 (hidden 384, ffn 1536), random
// weights; one step = one forward over a (1, 16, 5, 40, 48) latent = 5 × 20 × 24 = 2400 video
// tokens and 64 text tokens (attention is about half the FLOPs, as in the real Wan at 480p).
// For P = 1, 2, 4 (those ≤ the job's size; the first P ranks run, the rest wait) with Ulysses
// (ulysses = P) and Ring (ring = P) it prints the seconds per step (median of N after a warm-up)
// and the parallel efficiency t1 / (P · tP).
// VAE: AutoencoderKLWan with base_dim 32 (dim_mult 1, 2, 4, 4; 2 residual blocks), random
// weights, decoding a (1, 16, 3, 8, 16) latent to 9 frames of 64 × 128: seconds per decode on
// one rank and row-parallel (parallel::decode_video_row_parallel) on P = 2 and 4.
// Next to the wall-clock figures it prints the CPU seconds per call of the busiest rank (process
// CPU time; ranks waiting in MPI with mpi_yield_when_idle give their core away) and the
// efficiency t1_cpu / (P · tP_cpu): on a machine with fewer free cores than ranks the ranks share
// cores, the wall times then measure the sharing and the CPU figures show the work per rank.

#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "comm/process_mesh.h"
#include "comm/runtime.h"
#include "io/diffusers.h"
#include "models/common/random_weights.h"
#include "models/transformer.h"
#include "models/vae/wan.h"
#include "parallel/sequence.h"
#include "pipelines/vae_decode.h"

using paradit::core::Tensor;
namespace comm = paradit::comm;
namespace models = paradit::models;
namespace parallel = paradit::parallel;

namespace {

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

const char* kWanConfig = R"({
  "_class_name": "WanTransformer3DModel", "patch_size": [1, 2, 2],
  "num_attention_heads": 8, "attention_head_dim": 48, "in_channels": 16, "out_channels": 16,
  "text_dim": 512, "freq_dim": 256, "ffn_dim": 1536, "num_layers": 2, "cross_attn_norm": true,
  "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": null, "added_kv_proj_dim": null,
  "rope_max_seq_len": 1024})";

const char* kVaeConfig = R"({
  "_class_name": "AutoencoderKLWan", "base_dim": 32, "z_dim": 16, "dim_mult": [1, 2, 4, 4],
  "num_res_blocks": 2, "attn_scales": [], "temperal_downsample": [false, true, true]})";

// world.barrier() that sleeps while it waits: the ranks that sit out a measurement would otherwise
// poll for the barrier and take cores from the ranks being measured.
void quiet_barrier(const comm::Communicator& world) {
  constexpr int kArrive = 9901, kRelease = 9902;
  const auto wait = [](comm::Request& r) {
    while (!r.test()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  };
  Tensor token = Tensor::zeros({1});
  if (world.rank() == 0) {
    for (int r = 1; r < world.size(); ++r) {
      comm::Request in = world.irecv(token, r, kArrive);
      wait(in);
    }
    std::vector<comm::Request> out;
    for (int r = 1; r < world.size(); ++r) out.push_back(world.isend(token, r, kRelease));
    comm::wait_all(out);
  } else {
    comm::Request out = world.isend(token, 0, kArrive);
    out.wait();
    comm::Request in = world.irecv(token, 0, kRelease);
    wait(in);
  }
}

struct Timing {
  double wall = 0;  // median seconds per call
  double cpu = 0;   // median CPU seconds per call of the busiest rank (waits yield the core)
};

double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Medians over `reps` calls of f (after one warm-up), the ranks of `group` in step.
Timing measure(const comm::Communicator& group, int reps, const std::function<void()>& f) {
  f();  // warm-up
  std::vector<double> wall, cpu;
  for (int i = 0; i < reps; ++i) {
    group.barrier();
    const auto a = std::chrono::steady_clock::now();
    const double c = cpu_now();
    f();
    Tensor used = Tensor::from_vector({static_cast<float>(cpu_now() - c)}, {1});
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
    group.all_reduce(used, comm::ReduceOp::kMax);
    cpu.push_back(used.data<float>()[0]);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

struct Case {
  const char* name;
  int ulysses, ring;
};

}  // namespace

int main(int argc, char** argv) {
  comm::Communicator& world = comm::init(&argc, &argv);
  int reps = 3, threads = 1;
  std::string part = "all";
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps"))
      reps = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--part"))
      part = argv[++i];
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::max(1, std::atoi(argv[++i]));
  }
  omp_set_num_threads(threads);
  try {
    // ---- transformer step
    if (part == "all" || part == "step") {
      const paradit::io::Config config(paradit::io::Json::parse(kWanConfig), "bench/wan-small");
      models::common::RandomWeights weights(1);
      const auto model = models::make_transformer(config, weights);
      models::NamedTensors inputs;
      inputs["hidden_states"] = random_input({1, 16, 5, 40, 48}, 1, 1.0f);
      inputs["encoder_hidden_states"] = random_input({1, 64, 512}, 2, 0.2f);
      inputs["timestep"] = Tensor::from_vector({500.0f}, {1});
      if (world.rank() == 0) {
        std::printf(
            "bench_video: Wan-like small (2 blocks, 8 heads x 48), 2400 video + 64 text tokens, "
            "%d ranks x %d threads, %d reps\n",
            world.size(), threads, reps);
        std::printf("%-8s %2s %4s %4s %10s %10s %11s %12s %11s\n", "method", "P", "uly", "ring",
                    "s/step", "speedup", "efficiency", "cpu s/rank", "cpu effic.");
      }
      const std::vector<Case> cases = {
          {"local", 1, 1}, {"ulysses", 2, 1}, {"ring", 1, 2}, {"ulysses", 4, 1}, {"ring", 1, 4}};
      Timing t1;
      for (const Case& c : cases) {
        const int p = c.ulysses * c.ring;
        if (p > world.size()) continue;
        auto group = world.split(world.rank() < p ? 0 : 1, world.rank());
        Timing t;
        if (world.rank() < p) {
          comm::MeshDegrees deg;
          deg.ulysses = c.ulysses;
          deg.ring = c.ring;
          const comm::ProcessMesh mesh(*group, deg);
          const parallel::SequenceContext sp = parallel::SequenceContext::from_mesh(mesh);
          t = measure(*group, reps, [&] { model->forward(inputs, &sp); });
        }
        quiet_barrier(world);
        if (world.rank() == 0) {
          if (p == 1) t1 = t;
          std::printf("%-8s %2d %4d %4d %10.3f %9.2fx %10.0f%% %12.3f %10.0f%%\n", c.name, p,
                      c.ulysses, c.ring, t.wall, t1.wall / t.wall, 100.0 * t1.wall / (p * t.wall),
                      t.cpu, 100.0 * t1.cpu / (p * t.cpu));
        }
      }
    }

    // ---- video decode
    if (part == "all" || part == "vae") {
      const paradit::io::Config vconfig(paradit::io::Json::parse(kVaeConfig), "bench/wan-vae");
      const auto vcfg = models::vae::AutoencoderKLWanConfig::from(vconfig);
      models::common::RandomWeights vweights(2);
      const models::vae::AutoencoderKLWan vae(vcfg, vweights);
      const Tensor z = random_input({1, 16, 3, 8, 16}, 5, 1.0f);
      if (world.rank() == 0) {
        std::printf(
            "\nvideo decode: AutoencoderKLWan base_dim 32, latent (1, 16, 3, 8, 16) -> "
            "9 frames of 64 x 128\n");
        std::printf("%-16s %2s %10s %10s %11s %12s %11s\n", "decode", "P", "s/decode", "speedup",
                    "efficiency", "cpu s/rank", "cpu effic.");
      }
      Timing v1;
      for (int p : {1, 2, 4}) {
        if (p > world.size()) continue;
        auto group = world.split(world.rank() < p ? 0 : 1, world.rank());
        Timing t;
        if (world.rank() < p) {
          t = measure(*group, reps, [&] { paradit::pipelines::decode_video_row_parallel(vae, z, *group); });
        }
        quiet_barrier(world);
        if (world.rank() == 0) {
          if (p == 1) v1 = t;
          std::printf("%-16s %2d %10.3f %9.2fx %10.0f%% %12.3f %10.0f%%\n",
                      p == 1 ? "one process" : "parallel VAE", p, t.wall, v1.wall / t.wall,
                      100.0 * v1.wall / (p * t.wall), t.cpu, 100.0 * v1.cpu / (p * t.cpu));
        }
      }
    }
  } catch (const std::exception& e) {
    comm::abort_job(2, std::string("bench_video: error: ") + e.what());
  }
  comm::finalize();
  return 0;
}
