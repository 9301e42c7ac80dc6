// The transformers sequence-parallel, CFG-parallel and data-parallel under real MPI jobs: every
// family's forward over every layout (ulysses ∈ {1,2,4}, ring ∈ {1,2,4}, cfg ∈ {1,2},
// dp ∈ {1,2}; Ulysses 3, 3 × ring 2 and 8, which split the 4 heads unevenly) with world ≤ the
// job's size must equal the single-process forward computed on each
// rank (≤ 1e-5 relative, f32). distributed.cmake starts this program once at np 8; each layout
// runs on the first ranks of the world (a sub-communicator) while the others wait at a barrier.
//
// Run alone (ctest "distributed", a world of one) it checks the one-process layout and starts
// mpirun itself for the command-line tests: `paradit forward` at np 4 against the single-process
// command, a failing rank ending the whole job, and a 4-rank job over two network namespaces.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "comm/mpi_test_env.h"
#include "comm/runtime.h"
#include "core/ops.h"
#include "io/diffusers.h"
#include "io/safetensors.h"
#include "models/common/weights.h"
#include "models/transformer.h"
#include "parallel/config.h"
#include "support/cli_process.h"
#include "support/layout_sweep.h"

PARADIT_REGISTER_COMM_TEST_ENVIRONMENT();

namespace paradit {
namespace {

namespace fs = std::filesystem;
using core::Tensor;
using models::NamedTensors;
using testing::kEndsWithinSeconds;
using testing::kHangKillSeconds;
using testing::load_inputs;
using testing::max_rel_err;
using testing::mpirun;
using testing::Proc;
using testing::run_command;
using testing::widen_batch;

const fs::path kData = fs::path(PARADIT_TEST_DATA) / "transformer";

// Fewer image and text tokens: the image cut to `side` × `side` latent pixels (or side² packed
// Flux tokens) and the text to `text` tokens, so that their lengths do not divide the degrees.
NamedTensors cut_tokens(const NamedTensors& in, int64_t side, int64_t text) {
  NamedTensors out = in;
  const Tensor& x = in.at("hidden_states");
  if (x.ndim() == 4) {
    out["hidden_states"] = x.slice(2, 0, side).slice(3, 0, side).contiguous();
  } else {  // Flux: (B, S_img, C) tokens with their ids
    out["hidden_states"] = x.slice(1, 0, side * side).contiguous();
    out["img_ids"] = in.at("img_ids").slice(0, 0, side * side).contiguous();
  }
  for (const char* name : {"encoder_hidden_states", "encoder_attention_mask", "txt_ids"}) {
    auto it = in.find(name);
    if (it == in.end()) continue;
    const int dim = std::string(name) == "txt_ids" ? 0 : 1;
    out[name] = it->second.slice(dim, 0, text).contiguous();
  }
  if (out.count("encoder_attention_mask")) {
    // Keep the first text token visible, so no sample's caption is fully masked.
    Tensor m = out["encoder_attention_mask"];
    for (int64_t b = 0; b < m.dim(0); ++b)
      m.slice(0, b, b + 1).slice(1, 0, 1).copy_from(Tensor::full({1, 1}, 1.0f));
  }
  return out;
}

// Every layout that fits the world, on the first ranks of the world, for `model_dir`'s fixture
// inputs (batch 4) and a cut version (9 image tokens, 4 text tokens).
void check_family(const std::string& model_dir) {
  const auto model = models::load_transformer(kData / model_dir);
  const NamedTensors fixture = load_inputs(kData / model_dir / "inputs.safetensors");
  // 9 image tokens: a 6 × 6 latent at patch 2, or 3 × 3 packed Flux tokens.
  const int64_t side = fixture.at("hidden_states").ndim() == 4 ? 6 : 3;
  testing::check_layouts(
      *model, model_dir,
      {{"fixture", widen_batch(fixture, 4)},
       {"9 image / 4 text tokens", widen_batch(cut_tokens(fixture, side, 4), 4)}});
}

TEST(Distributed, Flux) { check_family("flux"); }
TEST(Distributed, FluxSchnell) { check_family("flux_schnell"); }
TEST(Distributed, SD3) { check_family("sd3"); }
TEST(Distributed, SD35) { check_family("sd35"); }
TEST(Distributed, PixArtSigma) { check_family("pixart_sigma"); }
TEST(Distributed, PixArtAlpha) { check_family("pixart_alpha"); }
TEST(Distributed, DiT) { check_family("dit"); }

// ---------------------------------------------------------------- tensor parallel

// A checkpoint that counts the bytes of every tensor it hands out (what a rank binds).
class CountingWeights : public models::common::CheckpointWeights {
 public:
  using CheckpointWeights::CheckpointWeights;
  Tensor get(const std::string& name, const core::Shape& expected,
             core::DType dtype) const override {
    Tensor t = CheckpointWeights::get(name, expected, dtype);
    bytes += t.nbytes();
    return t;
  }
  Tensor get_slice(const std::string& name, const core::Shape& expected, core::DType dtype,
                   int dim, int64_t begin, int64_t end) const override {
    Tensor t = CheckpointWeights::get_slice(name, expected, dtype, dim, begin, end);
    bytes += t.nbytes();
    return t;
  }
  mutable uint64_t bytes = 0;
};

// DiT under --tensor_parallel_degree 2 and 4, alone and with Ulysses (3: uneven shares of the
// rank's 2 heads), Ring, CFG and data parallel: equal to one process (≤ 1e-5), and each rank
// binds only its share of the split matrices: the whole checkpoint less (1 − 1/tp) of the
// attention and MLP matrices and column biases, less the row-parallel biases off rank 0.
TEST(Distributed, DiTTensorParallel) {
  const comm::Communicator& world = comm::world();
  const fs::path dir = kData / "dit";
  const NamedTensors inputs = widen_batch(load_inputs(dir / "inputs.safetensors"), 4);
  const auto single = models::load_transformer(dir);
  const Tensor reference = single->forward(inputs);
  // Bytes of the checkpoint (F32 as bound) and of its split parts, from the header.
  const io::TensorSource source = io::TensorSource::open(dir);
  uint64_t total = 0, split = 0, row_bias = 0;
  for (const std::string& name : source.names()) {
    const uint64_t b = 4 * static_cast<uint64_t>(core::shape_numel(source.info(name).shape));
    total += b;
    const bool qkv = name.find(".attn1.to_q.") != std::string::npos ||
                     name.find(".attn1.to_k.") != std::string::npos ||
                     name.find(".attn1.to_v.") != std::string::npos ||
                     name.find(".ff.net.0.proj.") != std::string::npos;
    const bool row = name.find(".attn1.to_out.0.") != std::string::npos ||
                     name.find(".ff.net.2.") != std::string::npos;
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (qkv || (row && !bias)) split += b;
    if (row && bias) row_bias += b;
  }
  struct TpLayout {
    int tp, ulysses, ring, cfg, dp;
  };
  const TpLayout layouts[] = {{2, 1, 1, 1, 1}, {4, 1, 1, 1, 1}, {2, 2, 1, 1, 1}, {2, 1, 2, 1, 1},
                              {2, 3, 1, 1, 1}, {2, 1, 1, 2, 1}, {2, 2, 1, 1, 2}, {4, 1, 2, 1, 1}};
  int checked = 0;
  for (const TpLayout& l : layouts) {
    const int n = l.tp * l.ulysses * l.ring * l.cfg * l.dp;
    if (n > world.size()) continue;
    auto group = world.split(world.rank() < n ? 0 : 1, world.rank());
    if (world.rank() < n) {
      parallel::ParallelConfig cfg;
      cfg.tp = l.tp;
      cfg.ulysses = l.ulysses;
      cfg.ring = l.ring;
      cfg.cfg = l.cfg == 2;
      cfg.dp = l.dp;
      const parallel::ParallelRuntime runtime(*group, cfg);
      const CountingWeights weights(source);
      const auto model =
          models::make_transformer(io::Config::load(dir / "config.json"), weights,
                                   core::DType::F32, runtime.tensor_parallel());
      const std::string what = runtime.mesh().degrees().str();
      const uint64_t expect = total - split + split / l.tp -
                              (runtime.tensor_parallel().rank() == 0 ? 0 : row_bias);
      EXPECT_EQ(weights.bytes, expect) << what;
      const Tensor out = models::parallel_forward(*model, inputs, runtime);
      ASSERT_EQ(out.shape(), reference.shape()) << what;
      EXPECT_LE(max_rel_err(out, reference), 1e-5) << what;
      ++checked;
    }
    world.barrier();
  }
  if (world.rank() == 0) std::printf("dit: %d tensor-parallel layouts equal one process\n", checked);
}

// Degrees that do not divide the heads / MLP width, and families without tensor parallelism:
// one line naming the valid degrees or the supported class, before any collective.
TEST(Distributed, TensorParallelRefusals) {
  const comm::Communicator& world = comm::world();
  for (const auto& [family, tp] : {std::pair<std::string, int>{"dit", 3}, {"flux", 2}}) {
    if (world.size() < tp) continue;
    auto group = world.split(world.rank() < tp ? 0 : 1, world.rank());
    if (world.rank() < tp) {
      parallel::ParallelConfig cfg;
      cfg.tp = tp;
      const parallel::ParallelRuntime runtime(*group, cfg);
      try {
        models::load_transformer(kData / family, core::DType::F32, runtime.tensor_parallel());
        ADD_FAILURE() << family << " with --tensor_parallel_degree " << tp << " did not fail";
      } catch (const Error& e) {
        const std::string expect = family == "dit" ? "(valid degrees: 1, 2, 4)"
                                                   : "is not supported yet for FluxTransformer2DModel";
        EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
      }
    }
    world.barrier();
  }
}

// The video families (Wan, HunyuanVideo) run every layout in tests/distributed_video.

// CFG and data parallel need a batch that splits evenly: a clear Error otherwise, on every rank.
TEST(Distributed, BatchNotDivisibleByCfgFails) {
  const comm::Communicator& world = comm::world();
  if (world.size() < 2) GTEST_SKIP() << "needs 2 processes";
  auto pair = world.split(world.rank() < 2 ? 0 : 1, world.rank());
  if (world.rank() < 2) {
    const auto model = models::load_transformer(kData / "flux");
    const NamedTensors inputs = load_inputs(kData / "flux" / "inputs.safetensors");  // batch 1
    parallel::ParallelConfig cfg;
    cfg.cfg = true;
    const parallel::ParallelRuntime runtime(*pair, cfg);
    try {
      models::parallel_forward(*model, inputs, runtime);
      ADD_FAILURE() << "batch 1 under --use_cfg_parallel did not fail";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("batch 1 does not divide"), std::string::npos)
          << e.what();
    }
  }
  world.barrier();
}

// ---------------------------------------------------------------- command line under mpirun

fs::path scratch_dir(const std::string& name) {
  const fs::path dir = fs::path(PARADIT_TEST_BINARY_DIR) / "distributed" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Flux fixture inputs cut to 9 image and 4 text tokens (no length divides 4 and 8; the text
// splits at 2 and 4), written for the command line.
fs::path write_cut_flux_inputs(const fs::path& dir) {
  const NamedTensors in = cut_tokens(load_inputs(kData / "flux" / "inputs.safetensors"), 3, 4);
  std::vector<std::pair<std::string, Tensor>> tensors(in.begin(), in.end());
  const fs::path file = dir / "inputs.safetensors";
  io::save_safetensors(file, tensors);
  return file;
}

Tensor read_sample(const fs::path& file) {
  return io::TensorSource::open(file.string()).view("sample").contiguous();
}

TEST(DistributedCli, ForwardNp4EqualsSingleProcess) {
  SKIP_UNLESS_LAUNCHER();
  const fs::path dir = scratch_dir("cli_np4");
  const fs::path inputs = write_cut_flux_inputs(dir);
  const std::string common = std::string(PARADIT_BINARY) + " forward --model " +
                             (kData / "flux").string() + " --inputs " + inputs.string();
  const Proc single = run_command(common + " --output " + (dir / "single.safetensors").string());
  ASSERT_EQ(single.status, 0) << single.output;
  const Proc par =
      run_command("OMP_NUM_THREADS=1 " + mpirun() + " -np 4 " + common + " --output " +
                  (dir / "parallel.safetensors").string() + " --ulysses_degree 2 --ring-degree 2");
  ASSERT_EQ(par.status, 0) << par.output;
  const Tensor a = read_sample(dir / "single.safetensors");
  const Tensor b = read_sample(dir / "parallel.safetensors");
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_LE(max_rel_err(b, a), 1e-5) << par.output;
  // Only rank 0 reports (and writes).
  EXPECT_EQ(par.output.find("written to"), par.output.rfind("written to")) << par.output;
}

TEST(DistributedCli, DegreesNotMatchingTheJobFail) {
  SKIP_UNLESS_LAUNCHER();
  const fs::path dir = scratch_dir("cli_mismatch");
  const Proc r = run_command("timeout -s KILL 60 " + mpirun() + " -np 2 " + PARADIT_BINARY +
                             " forward --model " + (kData / "flux").string() + " --inputs " +
                             (kData / "flux" / "inputs.safetensors").string() + " --output " +
                             (dir / "out.safetensors").string() + " --ulysses_degree 4");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("but the job has 2 processes"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "out.safetensors"));
}

TEST(DistributedCli, PipeFusionIsForGenerate) {
  const fs::path dir = scratch_dir("cli_pp");
  const Proc r =
      run_command(std::string(PARADIT_BINARY) + " forward --model " + (kData / "flux").string() +
                  " --inputs " + (kData / "flux" / "inputs.safetensors").string() + " --output " +
                  (dir / "out.safetensors").string() +
                  " --pipefusion-parallel-degree 2 --num_pipeline_patch 4");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("applies to `paradit generate`"), std::string::npos) << r.output;
}

TEST(DistributedCli, FailingRankEndsTheJob) {
  SKIP_UNLESS_LAUNCHER();
  const fs::path dir = scratch_dir("cli_failing_rank");
  // MPMD: ranks 0-2 get the real inputs, rank 3 a file that does not exist. The others are
  // then inside the forward's collectives, waiting for rank 3.
  const std::string args = " forward --model " + (kData / "flux").string() + " --output " +
                           (dir / "out.safetensors").string() +
                           " --ulysses_degree 2 --ring_degree 2";
  const std::string missing = (dir / "missing_inputs.safetensors").string();
  const Proc r = run_command("timeout -s KILL " + std::to_string(kHangKillSeconds) + " " +
                             mpirun() + " -np 3 " + PARADIT_BINARY + args + " --inputs " +
                             (kData / "flux" / "inputs.safetensors").string() + " : -np 1 " +
                             PARADIT_BINARY + args + " --inputs " + missing);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.status, 137) << "killed by the timeout: the job hung\n" << r.output;
  EXPECT_LT(r.seconds, kEndsWithinSeconds) << r.output;
  EXPECT_NE(r.output.find(missing), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "out.safetensors"));
  std::printf("a failing rank ended mpirun -np 4 with %d after %.2f s\n", r.status, r.seconds);
}

// Two "hosts" = two network namespaces joined by veth pairs to a bridge in a third namespace
// (shared/notes/multinode.md); mpirun starts the remote daemon through an rsh agent that enters
// the other namespace. Names and the subnet are this test's own.
class TwoHosts {
 public:
  TwoHosts() {
    teardown();
    const Proc add = run_command("ip netns add pddbr");
    ok_ = add.status == 0;
    error_ = "exit " + std::to_string(add.status) + ": " + add.output;
    if (!ok_) return;
    std::string cmd = "set -e; ip -n pddbr link add br0 type bridge; ip -n pddbr link set br0 up;";
    for (int i = 1; i <= 2; ++i) {
      const std::string h = "pdd" + std::to_string(i), a = "10.254.91." + std::to_string(i);
      cmd += " ip netns add " + h + "; ip -n pddbr link add q" + std::to_string(i) +
             " type veth peer name eth0 netns " + h + "; ip -n pddbr link set q" +
             std::to_string(i) + " master br0 up; ip -n " + h + " link set lo up; ip -n " + h +
             " addr add " + a + "/24 dev eth0; ip -n " + h + " link set eth0 up;";
    }
    const Proc r = run_command(cmd);
    ok_ = r.status == 0;
    error_ = "exit " + std::to_string(r.status) + ": " + r.output;
  }
  ~TwoHosts() { teardown(); }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

 private:
  static void teardown() {
    run_command("ip netns del pdd1; ip netns del pdd2; ip netns del pddbr");
  }
  bool ok_ = false;
  std::string error_;
};

TEST(DistributedCli, TwoHostsOverTcpEqualSingleProcess) {
  SKIP_UNLESS_LAUNCHER();
  const TwoHosts hosts;
  if (!hosts.ok()) GTEST_SKIP() << "cannot create network namespaces here: " << hosts.error();
  const fs::path dir = scratch_dir("two_hosts");
  // The rsh agent: skip Open MPI's leading options, map the address to its namespace.
  const fs::path agent = dir / "agent.sh";
  {
    FILE* f = std::fopen(agent.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(
        "#!/bin/sh\n"
        "while [ $# -gt 0 ]; do case \"$1\" in -*) shift;; *) break;; esac; done\n"
        "host=$1; shift\n"
        "case \"$host\" in *.1) ns=pdd1;; *.2) ns=pdd2;; *) ns=$host;; esac\n"
        "exec ip netns exec $ns unshare --uts sh -c \"hostname $ns; $*\"\n",
        f);
    std::fclose(f);
    fs::permissions(agent, fs::perms::owner_all);
  }
  {
    FILE* f = std::fopen((dir / "hosts").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("10.254.91.1 slots=2\n10.254.91.2 slots=2\n", f);
    std::fclose(f);
  }
  const fs::path inputs = write_cut_flux_inputs(dir);
  const std::string common = std::string(PARADIT_BINARY) + " forward --model " +
                             (kData / "flux").string() + " --inputs " + inputs.string();
  const Proc single = run_command(common + " --output " + (dir / "single.safetensors").string());
  ASSERT_EQ(single.status, 0) << single.output;
  const std::string job =
      "OMP_NUM_THREADS=1 timeout -s KILL 120 ip netns exec pdd1 unshare --uts sh -c "
      "'hostname pdd1; exec \"$@\"' sh " +
      mpirun() + " --hostfile " + (dir / "hosts").string() +
      " -np 4 --map-by node --mca plm_rsh_agent " + agent.string() +
      " --mca oob_tcp_if_include 10.254.91.0/24 --mca btl self,vader,tcp"
      " --mca btl_tcp_if_include 10.254.91.0/24 --mca mpi_yield_when_idle 1 -x OMP_NUM_THREADS " +
      common + " --output " + (dir / "parallel.safetensors").string() +
      " --ulysses_degree 2 --ring_degree 2";
  const Proc par = run_command(job);
  ASSERT_EQ(par.status, 0) << job << "\n" << par.output;
  const Tensor a = read_sample(dir / "single.safetensors");
  const Tensor b = read_sample(dir / "parallel.safetensors");
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_LE(max_rel_err(b, a), 1e-5) << par.output;
  std::printf("4 ranks on two hosts (network namespaces, TCP): %.2f s, equal to one process\n",
              par.seconds);
}

}  // namespace
}  // namespace paradit
