// The video transformers (Wan2.1, Wan2.2 TI2V with per-token timesteps, HunyuanVideo with a
// padded text mask) sequence-parallel, CFG-parallel and data-parallel under real MPI jobs: every
// layout (ulysses ∈ {1,2,4}, ring ∈ {1,2,4}, cfg ∈ {1,2}, dp ∈ {1,2}) with world ≤ the job's
// size must equal the single-process forward computed on each rank (≤ 1e-5 relative, f32), for
// the fixture inputs and for a cut video of 3×3×3 = 27 tokens (which divides by no degree, so
// the padded keys are masked) with 4 text tokens. distributed_video.cmake starts this program at
// np 8; run alone (a world of one) it checks the one-process layout.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/mpi_test_env.h"
#include "comm/runtime.h"
#include "io/safetensors.h"
#include "models/transformer.h"
#include "parallel/config.h"

PARADIT_REGISTER_COMM_TEST_ENVIRONMENT();

namespace paradit {
namespace {

namespace fs = std::filesystem;
using core::Tensor;
using models::NamedTensors;

const fs::path kData = fs::path(PARADIT_TEST_DATA) / "transformer";

NamedTensors load_inputs(const fs::path& file) {
  const io::TensorSource source = io::TensorSource::open(file.string());
  NamedTensors inputs;
  for (const std::string& name : source.names()) inputs[name] = source.view(name).contiguous();
  return inputs;
}

// Deterministic uniform(−1, 1) values, the same on every rank.
std::vector<float> noise(int64_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
  for (auto& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<double>(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
  return v;
}

// The fixture inputs widened to `batch` samples: sample i repeats fixture sample i % B0, the
// repeats with noise added to hidden_states and shifted timesteps, so every sample differs (the
// halves of CFG, the shares of data parallel).
NamedTensors widen_batch(const NamedTensors& in, int64_t batch) {
  const int64_t b0 = in.at("hidden_states").dim(0);
  NamedTensors out;
  for (const auto& [name, t] : in) {
    core::Shape shape = t.shape();
    shape[0] = batch;
    Tensor w = Tensor::empty(shape, t.dtype());
    for (int64_t i = 0; i < batch; ++i)
      w.slice(0, i, i + 1).copy_from(t.slice(0, i % b0, i % b0 + 1));
    if (name == "hidden_states" || name == "timestep" || name == "guidance") {
      const int64_t row = w.numel() / batch;
      std::vector<float> v = w.to_vector();
      const std::vector<float> r = noise(w.numel(), name.size() + 11);
      for (int64_t i = b0; i < batch; ++i)
        for (int64_t j = 0; j < row; ++j)
          v[i * row + j] += name == "hidden_states" ? 0.5f * r[i * row + j] : 0.05f * i;
      w = Tensor::from_vector(v, shape);
    }
    out[name] = w;
  }
  return out;
}

// The video cut to `side` × `side` latent pixels (patch 2: (side/2)² tokens per frame) and the
// text to `text` tokens. Per-token timesteps (B, f·h·w) keep the values of the tokens that stay.
NamedTensors cut_tokens(const NamedTensors& in, int64_t side, int64_t text) {
  NamedTensors out = in;
  const Tensor& x = in.at("hidden_states");  // (B, C, F, H, W)
  out["hidden_states"] = x.slice(3, 0, side).slice(4, 0, side).contiguous();
  const Tensor& t = in.at("timestep");
  if (t.ndim() == 2 && t.dim(1) > 1) {
    const int64_t f = x.dim(2), h = x.dim(3) / 2, w = x.dim(4) / 2, s = side / 2, B = t.dim(0);
    const std::vector<float> v = t.to_vector();
    std::vector<float> cut;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < f; ++i)
        for (int64_t y = 0; y < s; ++y)
          for (int64_t z = 0; z < s; ++z) cut.push_back(v[b * f * h * w + (i * h + y) * w + z]);
    out["timestep"] = Tensor::from_vector(cut, {B, f * s * s});
  }
  for (const char* name : {"encoder_hidden_states", "encoder_attention_mask"}) {
    auto it = in.find(name);
    if (it != in.end()) out[name] = it->second.slice(1, 0, text).clone();  // writable copy
  }
  if (out.count("encoder_attention_mask")) {
    // Text padding at the end (the last token), as HunyuanVideo's pipeline pads.
    Tensor m = out["encoder_attention_mask"];
    m.slice(1, text - 1, text).copy_from(Tensor::zeros({m.dim(0), 1}));
  }
  return out;
}

// max |a − b| / max |b|.
double relative_error(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double err = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(x[i]) - y[i]));
    scale = std::max(scale, std::abs(static_cast<double>(y[i])));
  }
  return err / std::max(scale, 1e-30);
}

struct Layout {
  int ulysses, ring, cfg, dp;
  int size() const { return ulysses * ring * cfg * dp; }
};

std::vector<Layout> layouts(int world) {
  std::vector<Layout> out;
  for (int dp : {1, 2})
    for (int cfg : {1, 2})
      for (int ring : {1, 2, 4})
        for (int u : {1, 2, 4}) {
          const Layout l{u, ring, cfg, dp};
          if (l.size() <= world) out.push_back(l);
        }
  return out;
}

// One sub-communicator per job size 1, 2, 4, 8: the first n ranks (color 0), the rest idle.
std::vector<std::unique_ptr<comm::Communicator>> first_ranks(const comm::Communicator& world) {
  std::vector<std::unique_ptr<comm::Communicator>> firsts(world.size() + 1);
  for (int n = 1; n <= world.size(); n *= 2)
    firsts[n] = world.split(world.rank() < n ? 0 : 1, world.rank());
  return firsts;
}

void check_family(const std::string& model_dir) {
  const comm::Communicator& world = comm::world();
  const auto model = models::load_transformer(kData / model_dir);
  const NamedTensors fixture = load_inputs(kData / model_dir / "inputs.safetensors");
  const std::vector<std::pair<std::string, NamedTensors>> variants = {
      {"fixture", widen_batch(fixture, 4)},
      {"27 video / 4 text tokens", widen_batch(cut_tokens(fixture, 6, 4), 4)}};
  const auto firsts = first_ranks(world);

  int checked = 0;
  for (const auto& [what, inputs] : variants) {
    const Tensor reference = model->forward(inputs);  // single process, on every rank
    for (const Layout& l : layouts(world.size())) {
      if (world.rank() < l.size()) {
        parallel::ParallelConfig cfg;
        cfg.ulysses = l.ulysses;
        cfg.ring = l.ring;
        cfg.cfg = l.cfg == 2;
        cfg.dp = l.dp;
        const parallel::ParallelRuntime runtime(*firsts[l.size()], cfg);
        const Tensor out = models::parallel_forward(*model, inputs, runtime);
        ASSERT_EQ(out.shape(), reference.shape()) << model_dir << " " << what;
        const double err = relative_error(out, reference);
        EXPECT_LE(err, 1e-5) << model_dir << " (" << what << "): " << runtime.mesh().degrees().str()
                             << " differs from one process by " << err << " (relative)";
        ++checked;
      }
      world.barrier();
    }
  }
  if (world.rank() == 0) {
    std::printf("%s: %d layouts × inputs equal to one process (world %d)\n", model_dir.c_str(),
                checked, world.size());
  }
}

TEST(DistributedVideo, Wan) { check_family("wan"); }
TEST(DistributedVideo, Wan22PerTokenTimesteps) { check_family("wan22_ti2v"); }
TEST(DistributedVideo, HunyuanVideo) { check_family("hunyuan_video"); }

// The fixtures have 4 heads: Ulysses degree 3 is a clear Error naming the valid degrees, on
// every rank, before any collective.
TEST(DistributedVideo, UlyssesDegreeNotDividingTheHeadsFails) {
  const comm::Communicator& world = comm::world();
  if (world.size() < 3) GTEST_SKIP() << "needs 3 processes";
  auto three = world.split(world.rank() < 3 ? 0 : 1, world.rank());
  if (world.rank() < 3) {
    for (const char* family : {"wan", "hunyuan_video"}) {
      const auto model = models::load_transformer(kData / family);
      const NamedTensors inputs = load_inputs(kData / family / "inputs.safetensors");
      parallel::ParallelConfig cfg;
      cfg.ulysses = 3;
      const parallel::ParallelRuntime runtime(*three, cfg);
      try {
        models::parallel_forward(*model, inputs, runtime);
        ADD_FAILURE() << family << " under --ulysses_degree 3 with 4 heads did not fail";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("4 heads: valid Ulysses degrees are 1, 2, 4"),
                  std::string::npos)
            << e.what();
      }
    }
  }
  world.barrier();
}

}  // namespace
}  // namespace paradit
