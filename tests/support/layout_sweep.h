#pragma once
// Shared by the distributed transformer tests (tests/distributed, tests/distributed_video): the
// fixture inputs, widened and compared, and the sweep of every parallel layout that fits the
// world against the single-process forward.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/runtime.h"
#include "io/safetensors.h"
#include "models/transformer.h"
#include "parallel/config.h"
#include "support/tensor_checks.h"

namespace paradit::testing {

// Every tensor of a safetensors file, contiguous.
inline models::NamedTensors load_inputs(const std::filesystem::path& file) {
  const io::TensorSource source = io::TensorSource::open(file.string());
  models::NamedTensors inputs;
  for (const std::string& name : source.names()) inputs[name] = source.view(name).contiguous();
  return inputs;
}

// Deterministic uniform(−1, 1) values, the same on every rank.
inline std::vector<float> noise(int64_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
  for (auto& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<double>(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
  return v;
}

// The fixture inputs widened to `batch` samples: sample i repeats fixture sample i % B0, with
// fresh noise added to hidden_states (and shifted timesteps) for the repeats so that every
// sample differs (the uncond/cond halves of CFG, the shares of data parallel). Per-token ids
// (Flux's 2-D img_ids / txt_ids), scalars and tensors without the batch dim stay as they are.
inline models::NamedTensors widen_batch(const models::NamedTensors& in, int64_t batch) {
  using core::Tensor;
  const int64_t b0 = in.at("hidden_states").dim(0);
  models::NamedTensors out;
  for (const auto& [name, t] : in) {
    const bool per_token = (name == "img_ids" || name == "txt_ids") && t.ndim() == 2;
    if (per_token || t.ndim() == 0 || t.dim(0) != b0) {
      out[name] = t;
      continue;
    }
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

struct Layout {
  int ulysses, ring, cfg, dp;
  int size() const { return ulysses * ring * cfg * dp; }
};

// ulysses ∈ {1,2,4}, ring ∈ {1,2,4}, cfg ∈ {1,2}, dp ∈ {1,2} with size ≤ world; then Ulysses
// degrees that do not divide the fixtures' 4 heads: 3 (shares 1, 1, 2), 3 × ring 2 (USP) and 8
// (half the ranks compute no head).
inline std::vector<Layout> layouts(int world) {
  std::vector<Layout> out;
  for (int dp : {1, 2})
    for (int cfg : {1, 2})
      for (int ring : {1, 2, 4})
        for (int u : {1, 2, 4}) {
          const Layout l{u, ring, cfg, dp};
          if (l.size() <= world) out.push_back(l);
        }
  for (const Layout l : {Layout{3, 1, 1, 1}, Layout{3, 2, 1, 1}, Layout{8, 1, 1, 1}})
    if (l.size() <= world) out.push_back(l);
  return out;
}

// Every layout that fits the world, on the first ranks of the world (a sub-communicator; the
// others wait at a barrier), for each named input variant: parallel_forward must equal the
// single-process forward computed on each rank (≤ 1e-5 relative). Every Ulysses degree runs
// whatever the model's head count (uneven head shares).
using InputVariants = std::vector<std::pair<std::string, models::NamedTensors>>;
inline void check_layouts(const models::Transformer& model, const std::string& model_dir,
                          const InputVariants& variants) {
  const comm::Communicator& world = comm::world();
  // One sub-communicator per job size a layout uses: the first n ranks (color 0), the rest idle.
  std::vector<std::unique_ptr<comm::Communicator>> firsts(world.size() + 1);
  for (const Layout& l : layouts(world.size())) {
    if (!firsts[l.size()])
      firsts[l.size()] = world.split(world.rank() < l.size() ? 0 : 1, world.rank());
  }

  int checked = 0;
  for (const auto& [what, inputs] : variants) {
    const core::Tensor reference = model.forward(inputs);  // single process, on every rank
    for (const Layout& l : layouts(world.size())) {
      if (world.rank() < l.size()) {
        parallel::ParallelConfig cfg;
        cfg.ulysses = l.ulysses;
        cfg.ring = l.ring;
        cfg.cfg = l.cfg == 2;
        cfg.dp = l.dp;
        const parallel::ParallelRuntime runtime(*firsts[l.size()], cfg);
        const core::Tensor out = models::parallel_forward(model, inputs, runtime);
        EXPECT_EQ(out.shape(), reference.shape()) << model_dir << " " << what;
        if (out.shape() == reference.shape()) {
          const double err = max_rel_err(out, reference);
          EXPECT_LE(err, 1e-5) << model_dir << " (" << what << "): "
                               << runtime.mesh().degrees().str() << " differs from one process by "
                               << err << " (relative)";
        }
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

}  // namespace paradit::testing
