#include "cli/cache_flags.h"

#include "core/error.h"

namespace paradit::cli {

models::StepCacheOptions CacheFlags::options() const {
  PARADIT_CHECK(!(fbcache && teacache),
                "--use_fbcache and --use_teacache: choose one step cache, not both");
  PARADIT_CHECK(!fbcache_threshold || fbcache,
                "--fbcache_threshold: needs --use_fbcache (First-Block-Cache)");
  PARADIT_CHECK(!teacache_threshold || teacache,
                "--teacache_threshold: needs --use_teacache (TeaCache)");
  models::StepCacheOptions o;
  if (fbcache) {
    o.method = models::CacheMethod::kFirstBlock;
    o.threshold = fbcache_threshold;
  } else if (teacache) {
    o.method = models::CacheMethod::kTea;
    o.threshold = teacache_threshold;
  }
  o.warmup_steps = warmup_steps;
  o.validate();
  return o;
}

void add_cache_flags(CLI::App* app, CacheFlags* f) {
  const char* group = "Step caching (reuse transformer work between denoising steps)";
  app->add_flag("--use_fbcache,--use-fbcache", f->fbcache,
                "First-Block-Cache: run the first transformer block; while the relative L1 "
                "change of its residual since the last fully computed step is below "
                "--fbcache_threshold, reuse the other blocks' residual")
      ->group(group);
  app->add_option("--fbcache_threshold,--fbcache-threshold", f->fbcache_threshold,
                  "First-Block-Cache threshold (default 0.12, as xDiT; 0 never skips; higher "
                  "skips more)")
      ->group(group);
  app->add_flag("--use_teacache,--use-teacache", f->teacache,
                "TeaCache: skip the whole transformer while the accumulated, rescaled relative "
                "L1 change of the timestep-modulated input stays below --teacache_threshold")
      ->group(group);
  app->add_option("--teacache_threshold,--teacache-threshold", f->teacache_threshold,
                  "TeaCache threshold (default per family: Flux 0.6 as xDiT, HunyuanVideo "
                  "0.15, Wan2.1 1.3B 0.08 / 14B 0.2 as the TeaCache authors, 0.2 for the "
                  "others; 0 never skips)")
      ->group(group);
  app->add_option("--cache_warmup_steps,--cache-warmup-steps", f->warmup_steps,
                  "Steps computed in full before caching starts (the first and the last step "
                  "always are)")
      ->group(group)
      ->capture_default_str();
}

}  // namespace paradit::cli
