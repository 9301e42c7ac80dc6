#pragma once
// Images out of the engine: diffusers' postprocess (a decoded tensor in [-1, 1] → 8-bit RGB)
// and PNG files through libpng.

#include <cstdint>
#include <filesystem>
#include <vector>

#include "core/tensor.h"

namespace paradit::io {

// diffusers' VaeImageProcessor.postprocess(output_type="pil") numerics: (x/2 + 0.5).clamp(0, 1)
// in f32, then numpy_to_pil's (v · 255).round().astype("uint8") (f32 product, round half to
// even). NaN maps to 0.
// image: (3, H, W) or (B, 3, H, W) F32 → B·H·W·3 bytes, each image row-major with interleaved
// RGB (HWC), images one after the other.
std::vector<uint8_t> to_rgb8(const core::Tensor& image);

// Writes an 8-bit RGB PNG of height × width pixels from `rgb` (H·W·3 bytes, HWC). The file is
// written beside `path` under a temporary name and renamed, so a failed write leaves no file.
// Error "<path>: cannot write PNG (<why>)" when the file cannot be written.
void save_png(const std::filesystem::path& path, const uint8_t* rgb, int height, int width);
// One decoded image, (3, H, W) or (1, 3, H, W) in [-1, 1]: to_rgb8 then save_png.
void save_png(const std::filesystem::path& path, const core::Tensor& image);

struct RgbImage {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> rgb;  // height·width·3 bytes, HWC
};
// Reads a PNG as 8-bit RGB (libpng converts other formats). Error "<path>: ..." when the file
// is missing or is not a valid PNG.
RgbImage read_png(const std::filesystem::path& path);

}  // namespace paradit::io
