// The video transformers (Wan2.1, Wan2.2 TI2V with per-token timesteps, HunyuanVideo with a
// padded text mask) sequence-parallel, CFG-parallel and data-parallel under real MPI jobs: every
// layout (ulysses ∈ {1,2,4}, ring ∈ {1,2,4}, cfg ∈ {1,2}, dp ∈ {1,2}; Ulysses 3, 3 × ring 2
// and 8 over the 4 heads) with world ≤ the job's size must equal the single-process forward
// computed on each rank (≤ 1e-5 relative, f32), for the fixture inputs and for a cut video of 3×3×3 = 27 tokens (which divides by no degree, so
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
#include "support/layout_sweep.h"

PARADIT_REGISTER_COMM_TEST_ENVIRONMENT();

namespace paradit {
namespace {

namespace fs = std::filesystem;
using core::Tensor;
using models::NamedTensors;
using testing::load_inputs;
using testing::widen_batch;

const fs::path kData = fs::path(PARADIT_TEST_DATA) / "transformer";

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

void check_family(const std::string& model_dir) {
  const auto model = models::load_transformer(kData / model_dir);
  const NamedTensors fixture = load_inputs(kData / model_dir / "inputs.safetensors");
  testing::check_layouts(
      *model, model_dir,
      {{"fixture", widen_batch(fixture, 4)},
       {"27 video / 4 text tokens", widen_batch(cut_tokens(fixture, 6, 4), 4)}});
}

TEST(DistributedVideo, Wan) { check_family("wan"); }
TEST(DistributedVideo, Wan22PerTokenTimesteps) { check_family("wan22_ti2v"); }
TEST(DistributedVideo, HunyuanVideo) { check_family("hunyuan_video"); }

}  // namespace
}  // namespace paradit
