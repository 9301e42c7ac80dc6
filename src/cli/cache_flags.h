#pragma once
// The step-caching flags of `paradit generate` (xDiT's names; `_` and `-` spellings both
// accepted): --use_fbcache [--fbcache_threshold T] (First-Block-Cache, default T 0.12) or
// --use_teacache [--teacache_threshold T] (TeaCache, default T per family), and --cache_warmup_steps N
// (the first N steps always computed; the first and last steps always are). See
// models/step_cache.h.

#include <CLI/CLI.hpp>
#include <optional>

#include "models/step_cache.h"

namespace paradit::cli {

struct CacheFlags {
  bool fbcache = false;
  bool teacache = false;
  std::optional<double> fbcache_threshold;
  std::optional<double> teacache_threshold;
  int warmup_steps = 0;
  // The options these flags ask for. Error naming the flag: both caches, a threshold without
  // its cache, a negative or non-finite threshold, negative warm-up steps.
  models::StepCacheOptions options() const;
};

// Registers the flags on `app`, writing into `*flags` (which must outlive the parse).
void add_cache_flags(CLI::App* app, CacheFlags* flags);

}  // namespace paradit::cli
