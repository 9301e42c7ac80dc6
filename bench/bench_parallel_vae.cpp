// bench_parallel_vae: patch-parallel VAE decode time (parallel/vae_patch.h) at the world size.
//   mpirun -np P bench_parallel_vae [--size PX] [--reps N] [--baseline SECONDS] [--check]
//                                   [--profile]
// The VAE has the SD/SDXL/Flux decoder shape (block_out_channels 128, 256, 512, 512; two
// resnets per block + one; 32 groups; 4 latent channels) with fixed random weights
// (RandomWeights, seed 0) and decodes one random latent of PX/8 × PX/8 to a PX × PX image
// (default 256). Printed on rank 0: ranks, threads per rank (OMP_NUM_THREADS), the fastest of N
// timed decodes after one warm-up (each timed as the slowest rank), the largest CPU time of a
// rank (a figure that a loaded machine disturbs less than wall time), the bytes rank 0 sent per
// decode, and the speedup over --baseline (the 1-rank time of an earlier run). --check also
// decodes on one process and prints the relative difference. --profile prints, per rank, where
// the last decode's wall time went (RowSplitTimes: convolutions, halo waits, GroupNorm and its
// statistics exchange, attention). Run it once per rank count.

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "comm/runtime.h"
#include "models/common/random_weights.h"
#include "models/vae/autoencoder_kl.h"
#include "pipelines/vae_decode.h"

using paradit::core::Tensor;
namespace comm = paradit::comm;
namespace vae = paradit::models::vae;

namespace {

Tensor random_latent(int64_t side) {
  Tensor t = Tensor::empty({1, 4, side, side});
  uint64_t s = 0x243F6A8885A308D3ull;
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = static_cast<float>(static_cast<double>(s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
  }
  return t;
}

double rel_err(const Tensor& a, const Tensor& b) {
  const auto x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    den += double(y[i]) * y[i];
  }
  return std::sqrt(num / den);
}

int run(int argc, char** argv) {
  int64_t size = 256;
  int reps = 2;
  double baseline = 0.0;
  bool check = false;
  bool profile = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--size" && i + 1 < argc) {
      size = std::atoll(argv[++i]);
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--baseline" && i + 1 < argc) {
      baseline = std::atof(argv[++i]);
    } else if (a == "--check") {
      check = true;
    } else if (a == "--profile") {
      profile = true;
    } else {
      std::fprintf(stderr,
                   "usage: bench_parallel_vae [--size PX] [--reps N] [--baseline S] [--check] "
                   "[--profile]\n");
      return 2;
    }
  }
  PARADIT_CHECK(size >= 8 && size % 8 == 0, "bench_parallel_vae: --size ", size,
                " must be a positive multiple of 8");
  comm::Communicator& world = comm::world();

  vae::AutoencoderKLConfig cfg;
  cfg.block_out_channels = {128, 256, 512, 512};
  cfg.down_block_types.assign(4, "DownEncoderBlock2D");
  cfg.up_block_types.assign(4, "UpDecoderBlock2D");
  cfg.layers_per_block = 2;
  cfg.norm_num_groups = 32;
  cfg.latent_channels = 4;
  const paradit::models::common::RandomWeights weights(0);
  const vae::AutoencoderKL model(cfg, weights);
  const Tensor z = random_latent(size / 8);  // (1, 4, size/8, size/8)

  Tensor image = paradit::pipelines::decode_row_parallel(model, z, world);  // warm-up
  double best = 1e30, best_cpu = 1e30;
  uint64_t sent = 0;
  paradit::parallel::RowSplitTimes times;
  for (int r = 0; r < reps; ++r) {
    world.barrier();
    world.reset_bytes();
    times = {};
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    image = paradit::pipelines::decode_row_parallel(model, z, world, profile ? &times : nullptr);
    Tensor elapsed = Tensor::empty({2}, paradit::core::DType::F64);
    elapsed.data<double>()[0] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // CPU seconds of this process (all its threads; MPI waits poll, so they count too).
    elapsed.data<double>()[1] = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    sent = world.bytes().total();
    world.all_reduce(elapsed, comm::ReduceOp::kMax);  // the decode ends with its slowest rank
    best = std::min(best, elapsed.data<double>()[0]);
    best_cpu = std::min(best_cpu, elapsed.data<double>()[1]);
  }
  if (profile) {
    // One line per rank, in rank order: the last decode's wall seconds per operation.
    Tensor mine = Tensor::empty({1, 7}, paradit::core::DType::F64);
    double* m = mine.data<double>();
    m[0] = times.conv;
    m[1] = times.halo_wait;
    m[2] = times.norm - times.norm_exchange;
    m[3] = times.norm_exchange;
    m[4] = times.attention;
    m[5] = times.convs;
    m[6] = times.norms;
    const Tensor all = world.all_gather(mine, 0);  // (P, 7)
    if (world.rank() == 0) {
      for (int p = 0; p < world.size(); ++p) {
        const double* a = all.data<double>() + p * 7;
        std::printf(
            "rank %d: conv %.3f s (%d halo convs)  halo wait %.3f s  group norm %.3f s  "
            "norm exchange %.3f s (%d norms)  attention %.3f s\n",
            p, a[0], static_cast<int>(a[5]), a[1], a[2], a[3], static_cast<int>(a[6]), a[4]);
      }
    }
  }
  if (world.rank() == 0) {
    std::printf("bench_parallel_vae: SD-shape VAE decode %lldx%lld -> %lldx%lld\n",
                static_cast<long long>(size / 8), static_cast<long long>(size / 8),
                static_cast<long long>(size), static_cast<long long>(size));
    std::printf(
        "ranks %d  threads/rank %d  decode %.3f s (best of %d)  max cpu/rank %.3f s  "
        "sent/rank %.2f MiB",
        world.size(), omp_get_max_threads(), best, reps, best_cpu, sent / 1048576.0);
    if (baseline > 0) std::printf("  speedup %.2fx", baseline / best);
    std::printf("\n");
    if (check)
      std::printf("rel. difference vs one process: %.3g\n", rel_err(image, model.decode(z)));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  comm::init(&argc, &argv);
  int code = 0;
  try {
    code = run(argc, argv);
  } catch (const paradit::Error& e) {
    comm::abort_job(2, std::string("bench_parallel_vae: error: ") + e.what());
  }
  comm::finalize();
  return code;
}
