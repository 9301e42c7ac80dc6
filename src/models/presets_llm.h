#pragma once
// make-model presets of the LLM-conditioned families (kept beside presets.cpp, which dispatches
// here): qwen-image, z-image, flux2, flux2-klein × tiny | small | full.
//   tiny  — the fixtures' shapes (4 heads)
//   small — 12 heads × 64 (hidden 768), the benchmark configs, the real text feature widths
//   full  — Qwen-Image (20B), Z-Image (6B, 30 heads), FLUX.2-dev (32B), FLUX.2-klein-4B

#include <string>
#include <vector>

#include "io/diffusers.h"

namespace paradit::models {

const std::vector<std::string>& llm_family_archs();
// The transformer config.json for size index 0 (tiny), 1 (small), 2 (full); null JSON when
// `arch` is not one of llm_family_archs().
io::Json llm_family_preset(const std::string& arch, int size);

}  // namespace paradit::models
