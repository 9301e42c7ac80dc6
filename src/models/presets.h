#pragma once
// Transformer configs for `paradit make-model` and the benchmarks: one diffusers config.json per
// architecture × size.
//   tiny  — fixture-sized (4 heads, so sequence-parallel splits by 2 and 4 work), seconds to run
//   small — mid-size (12 heads × 64 = hidden 768; PixArt/SD3/DiT 12 layers, Flux 4 double +
//           8 single blocks): the benchmark configs
//   full  — the published models' shapes (Flux.1-dev/schnell, SD3-medium, SD3.5-large,
//           PixArt-Σ/α 1024, DiT-XL/2 256)

#include <string>
#include <vector>

#include "io/diffusers.h"

namespace paradit::models {

// "flux", "flux-schnell", "sd3", "sd35", "pixart-sigma", "pixart-alpha", "dit"
const std::vector<std::string>& preset_archs();
// "tiny", "small", "full"
const std::vector<std::string>& preset_sizes();

// The transformer config.json (with `_class_name` and `_diffusers_version`). Error naming the
// flag and the accepted values for an unknown arch or size.
io::Json preset_config(const std::string& arch, const std::string& size);

}  // namespace paradit::models
