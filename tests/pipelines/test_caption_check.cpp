// Does the picture show what the caption says? A check independent of diffusers: generate
// held-out captions with the shipped shapes model and read the attributes back from the pixels
// with simple colour statistics (background from the border, the shape's colour from the pixels
// that differ from it, position from their centroid, size from their area). This is the test
// that fails first when a kernel goes subtly wrong while still producing plausible numbers.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "helpers.h"
#include "io/image.h"
#include "pipelines/pipeline.h"

namespace paradit::pipelines::testing {
namespace {

struct NamedColour {
  const char* name;
  std::array<double, 3> rgb;
};
// The caption vocabulary's colours as the model paints them (flat colours of the training
// renders: saturated primaries, mid gray, a dark purple, a light pink).
const NamedColour kPalette[] = {
    {"red", {230, 30, 35}},     {"orange", {240, 140, 30}}, {"yellow", {235, 210, 40}},
    {"green", {35, 160, 40}},   {"cyan", {40, 200, 190}},   {"blue", {50, 70, 225}},
    {"purple", {145, 45, 170}}, {"pink", {220, 110, 170}},  {"white", {242, 242, 242}},
    {"black", {10, 10, 10}},    {"gray", {128, 128, 128}},
};

std::string nearest_colour(const std::array<double, 3>& rgb) {
  std::string best;
  double best_d = std::numeric_limits<double>::infinity();
  for (const auto& c : kPalette) {
    double d = 0;
    for (int k = 0; k < 3; ++k) d += (rgb[k] - c.rgb[k]) * (rgb[k] - c.rgb[k]);
    if (d < best_d) {
      best_d = d;
      best = c.name;
    }
  }
  return best;
}

struct Reading {
  std::string background, colour;
  double cx = 0, cy = 0;  // centroid of the shape, fractions of the width / height
  double area = 0;        // fraction of the image the shape covers
};

// Reads an (H, W, 3) RGB image.
Reading read_attributes(const std::vector<uint8_t>& rgb, int64_t h, int64_t w) {
  auto px = [&](int64_t y, int64_t x, int c) { return static_cast<double>(rgb[(y * w + x) * 3 + c]); };
  std::array<double, 3> bg{0, 0, 0};
  int64_t nb = 0;
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      if (y >= 2 && y < h - 2 && x >= 2 && x < w - 2) continue;
      for (int c = 0; c < 3; ++c) bg[c] += px(y, x, c);
      ++nb;
    }
  }
  for (double& v : bg) v /= static_cast<double>(nb);
  std::array<double, 3> fg{0, 0, 0};
  double sx = 0, sy = 0;
  int64_t nf = 0;
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      double d2 = 0;
      for (int c = 0; c < 3; ++c) d2 += (px(y, x, c) - bg[c]) * (px(y, x, c) - bg[c]);
      if (d2 < 80.0 * 80.0) continue;  // background (with its anti-aliasing and jitter)
      for (int c = 0; c < 3; ++c) fg[c] += px(y, x, c);
      sx += static_cast<double>(x) + 0.5;
      sy += static_cast<double>(y) + 0.5;
      ++nf;
    }
  }
  Reading r;
  r.background = nearest_colour(bg);
  if (nf == 0) return r;
  for (double& v : fg) v /= static_cast<double>(nf);
  r.colour = nearest_colour(fg);
  r.cx = sx / static_cast<double>(nf) / static_cast<double>(w);
  r.cy = sy / static_cast<double>(nf) / static_cast<double>(h);
  r.area = static_cast<double>(nf) / static_cast<double>(h * w);
  return r;
}

struct CaptionCase {
  const char* caption;
  const char* colour;
  const char* background;
  int col;    // -1 left, 0 centre, +1 right
  int row;    // -1 top, 0 middle, +1 bottom
  bool large;
};

// Held-out (shape, colour, background) triples: the transformer never saw them in training.
const CaptionCase kCases[] = {
    {"a large yellow square at the top left on a black background", "yellow", "black", -1, -1, true},
    {"a small white circle at the bottom right on a red background", "white", "red", +1, +1, false},
    {"a large blue triangle at the bottom on a yellow background", "blue", "yellow", 0, +1, true},
    {"a small green circle in the center on a black background", "green", "black", 0, 0, false},
    {"a large black square on the right on a white background", "black", "white", +1, 0, true},
    {"a large cyan circle on the left on a purple background", "cyan", "purple", -1, 0, true},
};

int region(double f) { return f < 0.42 ? -1 : (f > 0.58 ? +1 : 0); }

// Generates every held-out caption (with `cache`, step caching as the request asks) and reads
// the attributes back.
void expect_captions_drawn(const models::StepCacheOptions& cache) {
  auto pipe = Pipeline::open(shapes_model());
  for (const auto& c : kCases) {
    GenerateRequest request;
    request.prompts = {c.caption};
    request.seed = 7;
    request.cache = cache;
    GenerateResult out = pipe->generate(request);
    const int64_t h = out.images.dim(2), w = out.images.dim(3);
    const Reading r = read_attributes(io::to_rgb8(out.images), h, w);
    SCOPED_TRACE(c.caption);
    EXPECT_EQ(r.background, c.background);
    EXPECT_EQ(r.colour, c.colour);
    EXPECT_EQ(region(r.cx), c.col) << "centroid x " << r.cx;
    EXPECT_EQ(region(r.cy), c.row) << "centroid y " << r.cy;
    // Small shapes (radius 0.13 of the side) cover ≈ 5 % of the image, large ones (0.27) ≈ 20 %.
    if (c.large) {
      EXPECT_GT(r.area, 0.10);
    } else {
      EXPECT_LT(r.area, 0.10);
      EXPECT_GT(r.area, 0.01);
    }
    if (cache.enabled()) {
      std::printf("%s: %s\n", c.caption, out.cache.line().c_str());
      EXPECT_FALSE(out.cache.reused_steps.empty()) << "the default threshold reused no step";
    }
  }
}

TEST(ShapesCaptions, PicturesShowWhatTheCaptionsSay) { expect_captions_drawn({}); }

// Step caching at its default thresholds (the pipeline's 20 steps) still draws the caption.
TEST(ShapesCaptions, PicturesShowWhatTheCaptionsSayWithStepCaching) {
  for (const models::CacheMethod m : {models::CacheMethod::kFirstBlock, models::CacheMethod::kTea}) {
    models::StepCacheOptions cache;
    cache.method = m;
    SCOPED_TRACE(models::cache_method_name(m));
    expect_captions_drawn(cache);
  }
}

// The reader itself, on a synthetic flat render: it must not pass whatever it is given.
TEST(ShapesCaptions, ReaderReadsASyntheticRender) {
  const int64_t h = 64, w = 64;
  std::vector<uint8_t> rgb(static_cast<size_t>(h * w * 3));
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const bool inside = std::hypot(x + 0.5 - 0.77 * w, y + 0.5 - 0.23 * h) < 0.13 * w;
      const std::array<uint8_t, 3> col = inside ? std::array<uint8_t, 3>{230, 30, 35}
                                                : std::array<uint8_t, 3>{50, 70, 225};
      for (int c = 0; c < 3; ++c) rgb[(y * w + x) * 3 + c] = col[c];
    }
  }
  const Reading r = read_attributes(rgb, h, w);
  EXPECT_EQ(r.background, "blue");
  EXPECT_EQ(r.colour, "red");
  EXPECT_EQ(region(r.cx), +1);
  EXPECT_EQ(region(r.cy), -1);
  EXPECT_NEAR(r.area, 3.14159 * 0.13 * 0.13, 0.01);
}

}  // namespace
}  // namespace paradit::pipelines::testing
