#pragma once
// Step caches: reuse the work of a transformer's layers from one denoising step to the next when
// a cheap probe says the step changes little. One mechanism for every family, between the calls
// of a forward (begin_pass → run_layers → end_pass, models/transformer.h):
//
//   First-Block-Cache (--use_fbcache, ParaAttention / xDiT): run layer 0; the probe is its
//     residual on the image tokens (output − input). When its relative L1 change since the last
//     fully computed step, Σ|r − r_prev| / Σ|r_prev|, is below the threshold, the other layers
//     are not run: their residual from that step is added to layer 0's output instead.
//   TeaCache (--use_teacache, Liu et al. 2024): the probe is the timestep-modulated input of the
//     first layer (Transformer::teacache_probe); its relative L1 change from the previous step,
//     rescaled by the family's polynomial (Transformer::teacache_coefficients), is accumulated;
//     while the sum stays below the threshold every layer is skipped (the residual of all of
//     them from the last computed step is added to the embedded input), else the step is
//     computed and the sum restarts at 0.
//
// The first step, the last step and the first --cache_warmup_steps steps are always computed,
// and so is a step whose model differs from the previous step's (Wan2.2's expert switch).
//
// Every decision is collective. The probe's two sums (Σ|x − ref|, Σ|ref|) are partial on each
// rank — its image-token rows under sequence parallelism, its half of the batch under CFG
// parallel, its prompts under data parallel, nothing on a PipeFusion stage without layer 0 — and
// decide() adds them over the group given at construction (every rank of the job) and broadcasts
// the totals, so every rank computes the same metric from the same bits and skips the same
// steps; rows a rank holds as a copy of another rank's (padding, an unsplit CFG batch, per-sample
// probes under sequence parallelism) are counted once. run_layers() refuses to run before the
// step's decide(): no rank can skip on its own. Threshold 0 never skips, and a step that is not
// skipped runs exactly the uncached forward's ops (the probe only reads the streams).
//
// Use, one generation (every rank of the group, in step order):
//   StepCache cache(options, steps, &group);
//   for (int i = 0; i < steps; ++i) {
//     cache.begin_step(i);
//     Tensor out = cache.forward(model, inputs, sp, /*counts=*/true);  // one forward per step
//   }
// PipeFusion drives the pieces itself (pipelines/pipefusion.cpp): stage 0 calls probe() for
// every patch of the step, every stage then calls decide() with the patches it will run, and
// run_layers() in place of Transformer::run_layers for its layers from first_layer() on (each
// stage caches the residual of its own layers per patch; their sum is the whole residual).

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/tensor.h"
#include "models/transformer.h"

namespace paradit::models {

enum class CacheMethod { kNone, kFirstBlock, kTea };
const char* cache_method_name(CacheMethod method);  // "none", "fbcache", "teacache"

// xDiT's FBCache default: rel_l1_thresh 0.12 (apply_cache_on_transformer, fbcache_thresh). The
// TeaCache default depends on the family's rescaling (Transformer::teacache_default_threshold):
// xDiT's 0.6 for Flux (TeaCache4FLUX's "2.0x speedup" setting), the TeaCache authors' settings
// for the other published polynomials, and kTeaCacheIdentityThreshold (models/transformer.h)
// where the distance is used as it is.
inline constexpr double kFbCacheDefaultThreshold = 0.12;

struct StepCacheOptions {
  CacheMethod method = CacheMethod::kNone;
  std::optional<double> threshold;  // unset: the method's default
  int warmup_steps = 0;             // --cache_warmup_steps: the first N steps computed in full

  bool enabled() const { return method != CacheMethod::kNone; }
  // The threshold in force with `model`: the given one, else the method's default for the model.
  double resolved_threshold(const Transformer& model) const;
  // Error naming the flag: a negative or non-finite threshold, negative warm-up steps, a
  // threshold or warm-up without a method.
  void validate() const;
  // "fbcache threshold 0.12" (with ", 2 warm-up steps"; "teacache, the model's default
  // threshold" while none is set); "off" when disabled.
  std::string describe() const;
};

// What happened at one step.
struct StepCacheRecord {
  int step = 0;
  bool computed = true;    // false: the cached layers were skipped
  double distance = -1;    // the reduced relative L1 distance; -1 where none was compared
  double accumulated = 0;  // TeaCache: the rescaled sum after this step (0 after a computed step)
};

class StepCache {
 public:
  // `steps`: the run's denoising steps. `group`: every rank that runs this generation (the
  // runtime's mesh world), which must outlive the cache; null: this process alone.
  StepCache(const StepCacheOptions& options, int steps, const comm::Communicator* group);
  ~StepCache();
  StepCache(const StepCache&) = delete;
  StepCache& operator=(const StepCache&) = delete;

  // The options, the threshold resolved once a model has run (TeaCache's default is the model's).
  const StepCacheOptions& options() const { return options_; }

  // The step about to run (0-based, increasing).
  void begin_step(int step);

  // One forward of `model` for the current step, cached: begin_pass, probe, decide, run_layers,
  // end_pass. `counts`: whether this rank's batch rows are its own within the group (false on the
  // ranks that run a copy of another rank's batch: an unsplit batch on the CFG ranks). Collective
  // over the group. At most one forward per step.
  core::Tensor forward(const Transformer& model, const NamedTensors& inputs,
                       const parallel::SequenceContext* sp, bool counts);

  // ---- the pieces (PipeFusion)
  // Layers before this one run at every step (FBCache: layer 0; TeaCache: none).
  int64_t first_layer() const;
  // Runs the layers before first_layer() on `pass` and records its probe under `key` (one key per
  // PipeFusion patch; -1 for a whole-image pass). Needs layer 0: the stage that holds it.
  void probe(const Transformer& model, TransformerPass& pass, int key, bool counts);
  // Collective over the group, once per step after this rank's probe() calls: whether the step is
  // computed. `keys`: the keys this rank will call run_layers with in this step.
  bool decide(const std::vector<int>& keys);
  // Layers [begin, end) of the pass (begin ≥ first_layer()), after decide(): run, keeping their
  // residual under `key`, or skipped, adding that residual.
  void run_layers(const Transformer& model, TransformerPass& pass, int64_t begin, int64_t end,
                  int key);

  // One record per decided step, in order.
  const std::vector<StepCacheRecord>& records() const { return records_; }
  std::vector<int> computed_steps() const;
  std::vector<int> reused_steps() const;

 private:
  struct Slot;
  void note_model(const Transformer& model);
  double rescale(double distance) const;

  StepCacheOptions options_;    // with the threshold in force
  StepCacheOptions requested_;  // as given
  double threshold_ = 0;
  int steps_ = 0;
  const comm::Communicator* group_ = nullptr;
  std::unique_ptr<comm::Communicator> own_group_;  // a group of one when none is given
  std::vector<double> coefficients_;               // TeaCache's polynomial (empty: identity)

  std::map<int, Slot> slots_;
  const Transformer* model_ = nullptr;
  double accumulated_ = 0;
  std::vector<StepCacheRecord> records_;

  // The current step.
  int step_ = -1;
  bool decided_ = false;
  bool skip_ = false;
  bool must_compute_ = false;  // this rank knows the step must be computed
  core::Tensor partial_;       // (2) F64 on the probes' device: this rank's Σ|x − ref|, Σ|ref|
  std::map<int, core::Tensor> current_;  // this step's probes by key (the rows this rank counts)
  int forwards_ = 0;
};

}  // namespace paradit::models
