// The LLM-conditioned families (Flux2, Qwen-Image, Z-Image) sequence-parallel, CFG-parallel and
// data-parallel under real MPI jobs: every layout of testing::check_layouts (ulysses ∈ {1,2,4},
// ring ∈ {1,2,4}, cfg ∈ {1,2}, dp ∈ {1,2}; Ulysses 3, 3 × ring 2 and 8 over 4 or 6 heads;
// world ≤ the job) must equal the single-process forward
// (≤ 1e-5 relative). distributed_llm.cmake runs this program at np 8; alone it checks the
// one-process layout, and the PipeFusion stage split (single process).

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "comm/mpi_test_env.h"
#include "comm/runtime.h"
#include "core/error.h"
#include "core/ops.h"
#include "io/diffusers.h"
#include "models/common/random_weights.h"
#include "models/presets.h"
#include "models/transformer.h"
#include "models/z_image/z_image.h"
#include "parallel/pipefusion.h"
#include "support/layout_sweep.h"
#include "support/tensor_checks.h"

PARADIT_REGISTER_COMM_TEST_ENVIRONMENT();

namespace paradit {
namespace {

namespace fs = std::filesystem;
using core::Tensor;
using models::NamedTensors;
using testing::load_inputs;
using testing::widen_batch;

const fs::path kData = fs::path(PARADIT_TEST_DATA) / "transformer";

// FLUX.2 with 9 image tokens (3 × 3) and 5 text tokens: lengths that do not divide the degrees.
NamedTensors flux2_cut(const NamedTensors& in) {
  NamedTensors out = in;
  out["hidden_states"] = in.at("hidden_states").slice(1, 0, 9).contiguous();
  std::vector<int64_t> ids;
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 3; ++c) ids.insert(ids.end(), {0, r, c, 0});
  out["img_ids"] = Tensor::from_vector_i64(ids, {9, 4});
  out["encoder_hidden_states"] = in.at("encoder_hidden_states").slice(1, 0, 5).contiguous();
  out["txt_ids"] = in.at("txt_ids").select(0, 0).slice(0, 0, 5).contiguous();
  return out;
}

TEST(DistributedLLM, Flux2) {
  const auto model = models::load_transformer(kData / "flux2");
  const NamedTensors fixture = load_inputs(kData / "flux2" / "inputs.safetensors");
  testing::check_layouts(*model, "flux2",
                         {{"fixture", widen_batch(fixture, 4)},
                          {"9 image / 5 text tokens", widen_batch(flux2_cut(fixture), 4)}});
}

// Qwen-Image: the fixture (sample 1's last two text tokens masked) and a 3 × 3 grid with 5 text
// tokens.
TEST(DistributedLLM, QwenImage) {
  const auto model = models::load_transformer(kData / "qwen_image");
  NamedTensors fixture = load_inputs(kData / "qwen_image" / "inputs.safetensors");
  fixture["img_shapes"] = Tensor::from_vector_i64({1, 4, 4, 1, 4, 4}, {2, 1, 3});
  NamedTensors cut = fixture;
  cut["hidden_states"] = fixture.at("hidden_states").slice(1, 0, 9).contiguous();
  cut["img_shapes"] = Tensor::from_vector_i64({1, 3, 3, 1, 3, 3}, {2, 1, 3});
  cut["encoder_hidden_states"] = fixture.at("encoder_hidden_states").slice(1, 0, 5).contiguous();
  cut["encoder_hidden_states_mask"] =
      fixture.at("encoder_hidden_states_mask").slice(1, 0, 5).contiguous();
  testing::check_layouts(
      *model, "qwen_image",
      {{"fixture", widen_batch(fixture, 4)}, {"9 image / 5 text tokens", widen_batch(cut, 4)}});
}

// Z-Image in its batched form: the fixture's captions (11 and 5 tokens, both padded to 32), and
// captions of 40 and 5 tokens (padded to 64 and 32: a masked batch with per-sample RoPE) on a
// 6 × 6 latent (9 image tokens, padded to 32).
TEST(DistributedLLM, ZImage) {
  const auto model = models::load_transformer(kData / "z_image");
  const NamedTensors lists = load_inputs(kData / "z_image" / "inputs.safetensors");
  const NamedTensors fixture = models::z_image::ZImageTransformer2DModel::batch_list_inputs(lists);
  NamedTensors uneven = lists;
  const Tensor c0 = lists.at("cap_feats.0");
  uneven["cap_feats.0"] = core::concat({c0, c0, c0, c0.slice(0, 0, 7)}, 0);  // 40 tokens
  uneven["x.0"] = lists.at("x.0").slice(2, 0, 6).slice(3, 0, 6).contiguous();
  uneven["x.1"] = core::scale(uneven["x.0"], -0.5f);
  testing::check_layouts(
      *model, "z_image",
      {{"fixture", widen_batch(fixture, 4)},
       {"captions 40 / 5, 9 image tokens",
        widen_batch(models::z_image::ZImageTransformer2DModel::batch_list_inputs(uneven), 4)}});
}

// A Z-Image whose head count the Ulysses degrees do not all divide (the real model has 30 heads;
// here 6 of 16, random weights): every layout equals one process, Ulysses 4 (shares 1, 2, 1, 2)
// and 8 (shares of 0 and 1) included.
TEST(DistributedLLM, ZImageSixHeads) {
  io::Json cfg = models::preset_config("z-image", "tiny");
  cfg["dim"] = 96;
  cfg["n_heads"] = 6;
  cfg["n_kv_heads"] = 6;
  models::common::RandomWeights weights(11);
  const auto model = models::make_transformer(io::Config(cfg, "z-image 6 heads"), weights);
  const NamedTensors fixture = models::z_image::ZImageTransformer2DModel::batch_list_inputs(
      load_inputs(kData / "z_image" / "inputs.safetensors"));
  testing::check_layouts(*model, "z_image (6 heads)", {{"fixture", widen_batch(fixture, 4)}});
}

// PipeFusion's stage split in one process: a warm-up pass (every patch) through two stages equals
// the forward, and after it each patch's pass with the stale K/V (fresh, since the inputs are
// the same) gives that patch's rows of the forward.
void check_stage_split(const std::string& name, const NamedTensors& inputs) {
  const auto model = models::load_transformer(kData / name);
  const Tensor reference = model->forward(inputs);  // (B, S_img, C)
  const auto [rows, cols] = model->token_grid(inputs);
  const parallel::PatchGrid grid(rows, cols, 2);
  parallel::StaleKV kv;
  const int64_t n = model->num_layers(), cut = n / 2;
  ASSERT_GE(n, 2);
  const auto run = [&](int patch) {
    const parallel::PassPlan plan{&grid, patch, &kv};
    auto pass = model->begin_pass(inputs, nullptr, &plan, true);
    model->run_layers(*pass, 0, cut);
    // the next stage receives streams of the announced shapes
    const auto shapes = model->stream_shapes(*pass, cut);
    EXPECT_EQ(shapes.size(), pass->streams.size());
    for (size_t i = 0; i < shapes.size() && i < pass->streams.size(); ++i)
      EXPECT_EQ(pass->streams[i].shape(), shapes[i]);
    model->run_layers(*pass, cut, n);
    return model->end_pass(*pass);
  };
  EXPECT_LE(testing::max_rel_err(run(-1), reference), 1e-6) << name << " warm-up pass";
  for (int m = 0; m < grid.count; ++m) {
    const Tensor rows_m = reference.slice(1, grid.token_begin(m), grid.token_begin(m + 1));
    EXPECT_LE(testing::max_rel_err(run(m), rows_m), 1e-5) << name << " patch " << m;
  }
}

TEST(DistributedLLM, PipeFusionStagesFlux2) {
  check_stage_split("flux2", load_inputs(kData / "flux2" / "inputs.safetensors"));
}

TEST(DistributedLLM, PipeFusionStagesQwenImage) {
  NamedTensors in = load_inputs(kData / "qwen_image" / "inputs.safetensors");
  in["img_shapes"] = Tensor::from_vector_i64({1, 4, 4, 1, 4, 4}, {2, 1, 3});
  // the fixture's padded text mask applies to the stale K/V too
  check_stage_split("qwen_image", in);
}

}  // namespace
}  // namespace paradit
