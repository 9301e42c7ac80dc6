// bench_pipefusion: one generate call per parallel method over all ranks of the job —
// PipeFusion (pp = P, M = P patches, 1 warm-up step), Ulysses (ulysses = P), Ring (ring = P) —
// and the serial run on rank 0 alone, on a pipeline folder (e.g. `paradit make-model --arch
// pixart-sigma --preset small --pipeline DIR`: 12 layers, hidden 768):
//   mpirun -np P bench_pipefusion --model DIR [--size 256] [--steps 6]
// Prints per method the median seconds of the streamed steps (PipeFusion: the steps after the
// warm-up; the others: every step after the first) and the bytes rank 0 and the busiest rank sent
// per step (the mesh communicators' counters), next to the analytic volume per rank per step:
//   PipeFusion: a stage sends each patch's hidden states to the next stage, B·S·D floats per step
//     in all (+ the last stage's stepped patches back to stage 0, B·C·h·w);
//   Ulysses: 4·(S/P)·D·(P−1)/P floats per attention layer per rank (q, k, v in, out back);
//   Ring: 2·S·D·(P−1)/P floats per attention layer per rank (K and V blocks passed P−1 times),
// with B the CFG batch (2), S the image tokens, D the hidden size. Times on a machine with fewer
// cores than ranks measure core sharing, not scaling.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "comm/process_mesh.h"
#include "comm/runtime.h"
#include "io/diffusers.h"
#include "models/transformer.h"
#include "parallel/config.h"
#include "pipelines/pipeline.h"

namespace comm = paradit::comm;
namespace parallel = paradit::parallel;
namespace pipelines = paradit::pipelines;

namespace {

struct Result {
  double step_seconds = 0;
  double weight_bytes_max = 0;  // PipeFusion: the largest stage's transformer weights
  double bytes_rank0 = 0;  // per step
  double bytes_max = 0;    // per step, the rank that sent most
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

uint64_t mesh_bytes(const comm::ProcessMesh& mesh) {
  uint64_t n = 0;
  for (int d = 0; d < comm::kNumMeshDims; ++d) {
    n += mesh.group(static_cast<comm::MeshDim>(d)).bytes().total();
  }
  return n + mesh.sequence_group().bytes().total();
}

// One generate over `group` with `cfg`; collective over the group.
Result run(const comm::Communicator& group, const parallel::ParallelConfig& cfg,
           const std::string& model, int64_t size, int steps, int first_timed_step) {
  parallel::ParallelRuntime rt(group, cfg);
  std::unique_ptr<pipelines::Pipeline> pipe = pipelines::Pipeline::open(model);
  pipe->set_runtime(&rt);
  pipelines::GenerateRequest req;
  req.prompts = {"a small red circle on the left on a blue background"};
  req.height = size;
  req.width = size;
  req.num_inference_steps = steps;
  req.seed = 1;
  req.decode = false;
  std::vector<double> times;
  const auto& mesh = rt.mesh();
  for (int d = 0; d < comm::kNumMeshDims; ++d) {
    mesh.group(static_cast<comm::MeshDim>(d)).reset_bytes();
  }
  mesh.sequence_group().reset_bytes();
  uint64_t bytes_at_first = 0;
  const pipelines::GenerateResult res = pipe->generate(req, [&](const pipelines::StepEvent& e) {
    if (e.index + 1 == first_timed_step) bytes_at_first = mesh_bytes(mesh);
    if (e.index >= first_timed_step) times.push_back(e.seconds);
  });
  const int timed = steps - first_timed_step;
  Result r;
  r.step_seconds = median(times);
  const double mine = double(mesh_bytes(mesh) - bytes_at_first) / timed;
  std::vector<double> all(static_cast<size_t>(group.size()), 0.0);
  all[static_cast<size_t>(group.rank())] = mine;
  paradit::core::Tensor t = paradit::core::Tensor::from_vector(
      std::vector<float>(all.begin(), all.end()), {static_cast<int64_t>(all.size())});
  group.all_reduce(t);
  const std::vector<float> v = t.to_vector();
  paradit::core::Tensor w = paradit::core::Tensor::from_vector(
      {static_cast<float>(res.stage_weight_bytes)}, {1});
  group.all_reduce(w, comm::ReduceOp::kMax);
  r.weight_bytes_max = w.to_vector()[0];
  r.bytes_rank0 = v[0];
  r.bytes_max = *std::max_element(v.begin(), v.end());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  comm::init(&argc, &argv);
  std::string model;
  int64_t size = 256;
  int steps = 6;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    if (!std::strcmp(argv[i], "--size")) size = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
  }
  const comm::Communicator& world = comm::world();
  if (model.empty()) {
    if (world.rank() == 0) std::fprintf(stderr, "usage: bench_pipefusion --model DIR\n");
    comm::finalize();
    return 2;
  }
  const int P = world.size();
  const paradit::io::Config tc = paradit::io::Config::load(
      paradit::io::ModelFolder::open(model).transformer_dir() / "config.json");
  const double D = double(tc.get_int("num_attention_heads", 16) * tc.get_int("attention_head_dim", 72));
  const double layers = double(tc.get_int("num_layers", 28));
  const double S = double((size / 8 / 2) * (size / 8 / 2));  // VAE factor 8, patch 2
  const double B = 2;                                        // the CFG batch
  const double C = double(tc.get_int("in_channels", 4));
  const double hw = double((size / 8) * (size / 8));

  // Serial baseline on rank 0 alone.
  std::unique_ptr<comm::Communicator> solo = world.split(world.rank() == 0 ? 0 : 1, world.rank());
  Result serial;
  if (world.rank() == 0) serial = run(*solo, {}, model, size, steps, 1);
  world.barrier();

  struct Method {
    const char* name;
    parallel::ParallelConfig cfg;
    int first_timed;
    double analytic;  // bytes per rank per step
  };
  std::vector<Method> methods;
  if (P > 1) {
    parallel::ParallelConfig pf;
    pf.pp = P;
    pf.warmup_steps = 1;
    methods.push_back({"pipefusion", pf, 1, 4 * (B * S * D + B * C * hw / P)});
    parallel::ParallelConfig u;
    u.ulysses = P;
    methods.push_back({"ulysses", u, 1, 4 * layers * B * 4 * (S / P) * D * (P - 1) / P});
    parallel::ParallelConfig r;
    r.ring = P;
    methods.push_back({"ring", r, 1, 4 * layers * B * 2 * S * D * (P - 1) / P});
  }
  if (world.rank() == 0) {
    std::printf("model %s: %g layers, hidden %g, %g image tokens (%lldx%lld px), CFG batch 2, "
                "%d steps, P = %d\n",
                model.c_str(), layers, D, S, static_cast<long long>(size),
                static_cast<long long>(size), steps, P);
    std::printf("%-11s %10s %8s %14s %14s %14s\n", "method", "s/step", "speedup", "MiB/step r0",
                "MiB/step max", "analytic MiB");
    std::printf("%-11s %10.3f %8.2f %14.2f %14.2f %14.2f\n", "serial", serial.step_seconds, 1.0,
                0.0, 0.0, 0.0);
  }
  // The whole transformer's weights, for the stages' share.
  const double full_weights = double(
      paradit::models::load_transformer_stage(model, paradit::core::DType::F32,
                                              [](const std::vector<double>& c) {
                                                return std::pair<int64_t, int64_t>(
                                                    0, static_cast<int64_t>(c.size()));
                                              })
          .weight_bytes);
  for (const Method& m : methods) {
    const Result r = run(world, m.cfg, model, size, steps, m.first_timed);
    if (world.rank() == 0 && r.weight_bytes_max > 0) {
      std::printf("pipefusion: largest stage holds %.1f MiB of transformer weights, %.1f %% of "
                  "the whole %.1f MiB (1/P = %.1f %%)\n",
                  r.weight_bytes_max / 1048576.0, 100.0 * r.weight_bytes_max / full_weights,
                  full_weights / 1048576.0, 100.0 / P);
    }
    if (world.rank() == 0) {
      std::printf("%-11s %10.3f %8.2f %14.2f %14.2f %14.2f\n", m.name, r.step_seconds,
                  serial.step_seconds / r.step_seconds, r.bytes_rank0 / 1048576.0,
                  r.bytes_max / 1048576.0, m.analytic / 1048576.0);
    }
  }
  comm::finalize();
  return 0;
}
