// to_rgb8 against diffusers' postprocess formula written out here, and PNG files: exact round
// trip, a valid signature, and unwritable paths that throw and leave nothing behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/image.h"

namespace paradit {
namespace {

namespace fs = std::filesystem;
using core::Tensor;

// (x/2 + 0.5).clamp(0, 1) · 255 in f32, then round half to even written out by hand (np.round),
// then the uint8 cast.
uint8_t reference_byte(float x) {
  if (std::isnan(x)) return 0;
  float v = x / 2.0f + 0.5f;
  v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
  const float r = v * 255.0f;
  const double fl = std::floor(static_cast<double>(r));
  const double frac = static_cast<double>(r) - fl;
  double rounded = fl;
  if (frac > 0.5) {
    rounded = fl + 1;
  } else if (frac == 0.5) {
    rounded = std::fmod(fl, 2.0) == 0.0 ? fl : fl + 1;
  }
  return static_cast<uint8_t>(rounded);
}

struct TempDir {
  fs::path path;
  TempDir() : path(fs::temp_directory_path() / ("paradit_png_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  // Names of everything in the folder.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) out.push_back(e.path().filename().string());
    return out;
  }
};

std::vector<unsigned char> file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
}

TEST(ToRgb8, MatchesDiffusersFormula) {
  // A dense sweep over and past [-1, 1], plus values whose ·255 lands exactly on .5.
  std::vector<float> values;
  for (int i = -120000; i <= 120000; ++i) values.push_back(static_cast<float>(i) * 1e-5f);
  int ties = 0;
  for (int k = 0; k < 255; ++k) {
    const float v = (static_cast<float>(k) + 0.5f) / 255.0f;
    if (v * 255.0f == static_cast<float>(k) + 0.5f && v >= 0.25f) {
      values.push_back((v - 0.5f) * 2.0f);  // exact: x/2 + 0.5 gives v back
      ++ties;
    }
  }
  EXPECT_GT(ties, 10);     // the half-to-even rule is exercised beyond 127.5
  values.push_back(0.0f);  // 127.5 → 128 (even)
  values.push_back(-5.0f);
  values.push_back(7.0f);
  values.push_back(std::numeric_limits<float>::quiet_NaN());
  values.push_back(std::numeric_limits<float>::infinity());
  values.push_back(-std::numeric_limits<float>::infinity());
  while (values.size() % 3) values.push_back(0.25f);
  const int64_t W = static_cast<int64_t>(values.size() / 3);
  const Tensor img = Tensor::from_vector(values, {3, 1, W});  // channel-major
  const std::vector<uint8_t> rgb = io::to_rgb8(img);
  ASSERT_EQ(rgb.size(), values.size());
  int mismatches = 0;
  for (int64_t p = 0; p < W; ++p) {
    for (int64_t c = 0; c < 3; ++c) {
      const float x = values[c * W + p];
      if (rgb[p * 3 + c] != reference_byte(x) && ++mismatches < 5) {
        ADD_FAILURE() << "x=" << x << " got " << int(rgb[p * 3 + c]) << " expected "
                      << int(reference_byte(x));
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(io::to_rgb8(Tensor::full({3, 1, 1}, 0.0f))[0], 128);
  EXPECT_EQ(io::to_rgb8(Tensor::full({3, 1, 1}, -1.0f))[0], 0);
  EXPECT_EQ(io::to_rgb8(Tensor::full({3, 1, 1}, 1.0f))[0], 255);
}

// (B, 3, H, W) → B images of H·W·3 bytes, HWC, one after another.
TEST(ToRgb8, BatchLayoutIsHwcPerImage) {
  const int64_t B = 2, H = 3, W = 4;
  std::vector<float> v(B * 3 * H * W);
  for (size_t i = 0; i < v.size(); ++i) v[i] = -1.0f + 2.0f * static_cast<float>(i) / v.size();
  const std::vector<uint8_t> rgb = io::to_rgb8(Tensor::from_vector(v, {B, 3, H, W}));
  ASSERT_EQ(rgb.size(), v.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          EXPECT_EQ(rgb[((b * H + y) * W + x) * 3 + c],
                    reference_byte(v[((b * 3 + c) * H + y) * W + x]));
        }
  EXPECT_THROW(io::to_rgb8(Tensor::zeros({4, 3, 3})), Error);
  EXPECT_THROW(io::to_rgb8(Tensor::zeros({3, 3})), Error);
}

TEST(Png, RoundTripIsExact) {
  TempDir dir;
  const int H = 37, W = 53;
  std::mt19937 rng(7);
  std::vector<uint8_t> rgb(H * W * 3);
  for (auto& b : rgb) b = static_cast<uint8_t>(rng() & 0xff);
  const fs::path path = dir.path / "out.png";
  io::save_png(path, rgb.data(), H, W);
  const auto bytes = file_bytes(path);
  const std::vector<unsigned char> signature = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(std::vector<unsigned char>(bytes.begin(), bytes.begin() + 8), signature);
  const io::RgbImage back = io::read_png(path);
  EXPECT_EQ(back.height, H);
  EXPECT_EQ(back.width, W);
  EXPECT_EQ(back.rgb, rgb);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.png"});  // no temporary left

  // Writing again replaces the file.
  std::vector<uint8_t> other(2 * 5 * 3, 200);
  io::save_png(path, other.data(), 2, 5);
  const io::RgbImage again = io::read_png(path);
  EXPECT_EQ(again.height, 2);
  EXPECT_EQ(again.width, 5);
  EXPECT_EQ(again.rgb, other);
}

TEST(Png, TensorOverloadWritesTheRgb8Image) {
  TempDir dir;
  std::vector<float> v(3 * 4 * 6);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<float>(i));
  const Tensor img = Tensor::from_vector(v, {1, 3, 4, 6});
  io::save_png(dir.path / "t.png", img);
  const io::RgbImage back = io::read_png(dir.path / "t.png");
  EXPECT_EQ(back.height, 4);
  EXPECT_EQ(back.width, 6);
  EXPECT_EQ(back.rgb, io::to_rgb8(img));
  EXPECT_THROW(io::save_png(dir.path / "b.png", Tensor::zeros({2, 3, 4, 6})), Error);
  EXPECT_FALSE(fs::exists(dir.path / "b.png"));
}

// Root can write anywhere with permissions, so the unwritable cases are structural: a parent
// that is a regular file, and a parent that does not exist.
TEST(Png, UnwritablePathThrowsAndLeavesNoFile) {
  TempDir dir;
  std::ofstream(dir.path / "plain_file") << "x";
  const std::vector<uint8_t> rgb(4 * 4 * 3, 9);
  for (const fs::path& bad :
       {dir.path / "plain_file" / "out.png", dir.path / "no_such_dir" / "out.png"}) {
    try {
      io::save_png(bad, rgb.data(), 4, 4);
      ADD_FAILURE() << "expected an Error for " << bad;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    EXPECT_FALSE(fs::exists(bad));
  }
  // A target that is a folder: the temporary is written, the rename fails, nothing is left.
  fs::create_directories(dir.path / "a_folder.png");
  EXPECT_THROW(io::save_png(dir.path / "a_folder.png", rgb.data(), 4, 4), Error);
  auto entries = dir.entries();
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"a_folder.png", "plain_file"}));
  EXPECT_TRUE(fs::is_empty(dir.path / "a_folder.png"));
  // Bad sizes.
  EXPECT_THROW(io::save_png(dir.path / "z.png", rgb.data(), 0, 4), Error);
  EXPECT_FALSE(fs::exists(dir.path / "z.png"));
}

TEST(Png, ReadingANonPngIsAnError) {
  TempDir dir;
  std::ofstream(dir.path / "fake.png") << "not a png at all";
  for (const fs::path& p : {dir.path / "fake.png", dir.path / "absent.png"}) {
    try {
      io::read_png(p);
      ADD_FAILURE() << "expected an Error for " << p;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace paradit
