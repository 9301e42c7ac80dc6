// to_rgb8 (diffusers' postprocess numerics) and PNG files through libpng's simplified API, which
// reports errors by return value: no longjmp crosses C++ frames.
#include "io/image.h"

#include "io/atomic_file.h"

#include <png.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"

namespace paradit::io {

namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

// One value as numpy_to_pil produces it from the decoder output.
uint8_t to_byte(float x) {
  float v = x * 0.5f + 0.5f;   // x/2 exactly: the product by 0.5 rounds nothing
  if (!(v >= 0.0f)) v = 0.0f;  // NaN too: numpy's cast of NaN is unspecified; 0 is stable
  if (v > 1.0f) v = 1.0f;
  const float scaled = v * 255.0f;  // f32 product, as numpy computes (images * 255)
  return static_cast<uint8_t>(std::nearbyint(scaled));  // round half to even, as np.round
}

}  // namespace

std::vector<uint8_t> to_rgb8(const core::Tensor& image) {
  PARADIT_CHECK(image.defined(), "to_rgb8: the image tensor is undefined");
  PARADIT_CHECK(image.dtype() == core::DType::F32, "to_rgb8: image ", image.str(), " must be F32");
  PARADIT_CHECK((image.ndim() == 3 || image.ndim() == 4) && image.dim(-3) == 3, "to_rgb8: image ",
                image.str(), " must be (3, H, W) or (B, 3, H, W)");
  const core::Tensor x = image.contiguous();
  const int64_t B = x.ndim() == 4 ? x.dim(0) : 1, H = x.dim(-2), W = x.dim(-1);
  const int64_t plane = H * W;
  const float* src = x.data<float>();
  std::vector<uint8_t> out(static_cast<size_t>(B * plane * 3));
  for (int64_t b = 0; b < B; ++b) {
    const float* img = src + b * 3 * plane;     // (3, H, W)
    uint8_t* dst = out.data() + b * plane * 3;  // (H, W, 3)
    for (int64_t p = 0; p < plane; ++p) {
      for (int64_t c = 0; c < 3; ++c) dst[p * 3 + c] = to_byte(img[c * plane + p]);
    }
  }
  return out;
}

void save_png(const fs::path& path, const uint8_t* rgb, int height, int width) {
  const std::string where = path.string();
  PARADIT_CHECK(height > 0 && width > 0, where, ": cannot write PNG of ", width, "x", height,
                " (width x height) pixels (expected positive sizes)");
  PARADIT_CHECK(width <= std::numeric_limits<png_int_32>::max() / 3, where, ": cannot write PNG ",
                width, " pixels wide (too wide)");
  PARADIT_CHECK(rgb != nullptr, where, ": cannot write PNG (no pixel data)");

  AtomicFile file(path, "PNG image");  // a temporary beside the target, renamed at the end
  FILE* f = std::fopen(file.temp_path().c_str(), "wb");
  if (!f) fail(where, ": cannot write PNG (", errno_text(), ")");

  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(width);
  img.height = static_cast<png_uint_32>(height);
  img.format = PNG_FORMAT_RGB;
  const int ok = png_image_write_to_stdio(&img, f, 0, rgb, width * 3, nullptr);
  const std::string png_message = img.message;
  png_image_free(&img);
  if (!ok) {
    std::fclose(f);
    fail(where, ": cannot write PNG (libpng: ", png_message, ")");
  }
  if (std::fflush(f) != 0 || std::ferror(f)) {
    const std::string why = errno_text();
    std::fclose(f);
    fail(where, ": cannot write PNG (", why, ")");
  }
  if (std::fclose(f) != 0) fail(where, ": cannot write PNG (", errno_text(), ")");
  file.commit();
}

void save_png(const fs::path& path, const core::Tensor& image) {
  PARADIT_CHECK(image.defined() && (image.ndim() == 3 || (image.ndim() == 4 && image.dim(0) == 1)),
                path.string(), ": cannot write PNG from image ",
                image.defined() ? image.str() : std::string("undefined"),
                " (expected (3, H, W) or (1, 3, H, W))");
  const std::vector<uint8_t> rgb = to_rgb8(image);
  const int64_t H = image.dim(-2), W = image.dim(-1);
  PARADIT_CHECK(H <= std::numeric_limits<int>::max() && W <= std::numeric_limits<int>::max(),
                path.string(), ": cannot write PNG of ", H, "x", W, " pixels (too large)");
  save_png(path, rgb.data(), static_cast<int>(H), static_cast<int>(W));
}

RgbImage read_png(const fs::path& path) {
  const std::string where = path.string();
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) {
    const std::string why = img.message;
    png_image_free(&img);
    fail(where, ": cannot read PNG (", why, ")");
  }
  img.format = PNG_FORMAT_RGB;
  RgbImage out;
  out.height = static_cast<int>(img.height);
  out.width = static_cast<int>(img.width);
  out.rgb.resize(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, out.rgb.data(), 0, nullptr)) {
    const std::string why = img.message;
    png_image_free(&img);
    fail(where, ": cannot read PNG (", why, ")");
  }
  png_image_free(&img);
  return out;
}

}  // namespace paradit::io
