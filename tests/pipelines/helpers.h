#pragma once
// Shared pieces of the pipeline tests: data paths, error measures in double precision, and
// reading a fixture case.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <utility>
#include <string>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace paradit::pipelines::testing {

namespace fs = std::filesystem;

inline fs::path test_data(const std::string& rel) { return fs::path(PARADIT_TEST_DATA) / rel; }
inline fs::path shapes_model() { return fs::path(PARADIT_MODELS_DIR) / "shapes-pixart"; }

// ‖a − b‖₂ / ‖b‖₂ over the whole tensor, in double.
inline double rel_l2(const core::Tensor& a, const core::Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape()) << a.str() << " vs " << b.str();
  if (a.shape() != b.shape()) return INFINITY;
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(x[i]) - static_cast<double>(y[i]);
    num += d * d;
    den += static_cast<double>(y[i]) * static_cast<double>(y[i]);
  }
  return std::sqrt(num) / std::sqrt(den > 0 ? den : 1.0);
}

inline double max_abs(const core::Tensor& a, const core::Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape()) << a.str() << " vs " << b.str();
  if (a.shape() != b.shape()) return INFINITY;
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    m = std::max(m, std::fabs(static_cast<double>(x[i]) - static_cast<double>(y[i])));
  }
  return m;
}

// A decoded (B, 3, H, W) image in [-1, 1] → (B, H, W, 3) in [0, 1], as diffusers'
// postprocess(output_type="np") computes it: (x / 2 + 0.5).clamp(0, 1), in double here.
inline core::Tensor to_np_image(const core::Tensor& images) {
  const int64_t B = images.dim(0), C = images.dim(1), H = images.dim(2), W = images.dim(3);
  core::Tensor out = core::Tensor::empty({B, H, W, C});
  float* o = out.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        for (int64_t c = 0; c < C; ++c) {
          const double v = images.item_at({b, c, y, x}) / 2.0 + 0.5;
          o[((b * H + y) * W + x) * C + c] = static_cast<float>(std::min(1.0, std::max(0.0, v)));
        }
  return out;
}

// A HunyuanVideoPipeline folder at `dir` from the transformer and VAE fixtures (weights copied)
// and a FlowMatchEulerDiscreteScheduler config with HunyuanVideo's shift 7; no text encoders
// (the pipeline runs from prompt embeddings).
inline void make_hunyuan_video_pipeline(const fs::path& dir) {
  fs::remove_all(dir);
  for (const char* c : {"transformer", "vae", "scheduler"}) fs::create_directories(dir / c);
  for (const auto& [from, to] : {std::pair{"transformer/hunyuan_video", "transformer"},
                                 std::pair{"vae/hunyuan_video", "vae"}}) {
    for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors"}) {
      fs::copy_file(test_data(from) / f, dir / to / f);
    }
  }
  std::ofstream(dir / "scheduler" / "scheduler_config.json")
      << R"({"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
             "shift": 7.0})";
  std::ofstream(dir / "model_index.json") << R"({
    "_class_name": "HunyuanVideoPipeline",
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "transformer": ["diffusers", "HunyuanVideoTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLHunyuanVideo"]})";
}

}  // namespace paradit::pipelines::testing
