#include "models/step_cache.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "comm/local_communicator.h"
#include "core/error.h"
#include "core/ops.h"
#include "parallel/collective_sums.h"

namespace paradit::models {

using core::Tensor;

namespace {

const char* threshold_flag(CacheMethod m) {
  return m == CacheMethod::kTea ? "--teacache_threshold" : "--fbcache_threshold";
}

// The rows of a probe that this rank counts in the group's sums, or undefined when it counts
// none: image-token rows without the sequence padding; per-sample rows on the first rank of the
// sequence group only; nothing on a rank whose batch is a copy of another rank's.
Tensor counted_rows(const CacheProbe& probe, const parallel::TokenLayout& tokens, bool counts) {
  if (!counts) return {};
  const int shard = tokens.parallel() ? tokens.ctx->shard_index() : 0;
  if (!probe.per_token) return shard == 0 ? probe.value : Tensor();
  const int64_t real =
      std::clamp<int64_t>(tokens.image_len - shard * tokens.local_image, 0, tokens.local_image);
  PARADIT_CHECK(probe.value.ndim() >= 2 && probe.value.dim(1) == tokens.local_image,
                "step cache: an image-token probe ", probe.value.str(),
                " does not have the pass's ", tokens.local_image, " rows");
  return real == tokens.local_image ? probe.value : probe.value.slice(1, 0, real);
}

}  // namespace

const char* cache_method_name(CacheMethod method) {
  switch (method) {
    case CacheMethod::kNone:
      return "none";
    case CacheMethod::kFirstBlock:
      return "fbcache";
    case CacheMethod::kTea:
      return "teacache";
  }
  return "none";
}

double StepCacheOptions::resolved_threshold(const Transformer& model) const {
  if (threshold) return *threshold;
  return method == CacheMethod::kTea ? model.teacache_default_threshold()
                                     : kFbCacheDefaultThreshold;
}

void StepCacheOptions::validate() const {
  if (!enabled()) {
    PARADIT_CHECK(!threshold,
                  "--fbcache_threshold / --teacache_threshold: a threshold needs its "
                  "cache (--use_fbcache or --use_teacache)");
    PARADIT_CHECK(warmup_steps == 0, "--cache_warmup_steps: needs --use_fbcache or --use_teacache");
    return;
  }
  if (threshold) {
    PARADIT_CHECK(std::isfinite(*threshold) && *threshold >= 0, threshold_flag(method),
                  ": must be a finite number >= 0, found ", *threshold);
  }
  PARADIT_CHECK(warmup_steps >= 0, "--cache_warmup_steps: must be >= 0, found ", warmup_steps);
}

std::string StepCacheOptions::describe() const {
  if (!enabled()) return "off";
  std::string s = cache_method_name(method);
  if (threshold || method == CacheMethod::kFirstBlock) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " threshold %g", threshold.value_or(kFbCacheDefaultThreshold));
    s += buf;
  } else {
    s += ", the model's default threshold";
  }
  if (warmup_steps > 0) s += ", " + std::to_string(warmup_steps) + " warm-up steps";
  return s;
}

// What the cache keeps per key (one forward, or one PipeFusion patch of a stage).
struct StepCache::Slot {
  Tensor probe;                  // FBCache: at the last computed step; TeaCache: the last step's
  std::vector<Tensor> residual;  // out − in of the cached layers at the last computed step
  size_t in_streams = 0;         // the streams entering them then (0: nothing cached yet)
};

StepCache::StepCache(const StepCacheOptions& options, int steps, const comm::Communicator* group)
    : options_(options), requested_(options), steps_(steps), group_(group) {
  options_.validate();
  PARADIT_CHECK(options_.enabled(), "StepCache: no cache method given");
  if (group_ == nullptr) {
    own_group_ = std::make_unique<comm::LocalCommunicator>();
    group_ = own_group_.get();
  }
}

StepCache::~StepCache() = default;

void StepCache::begin_step(int step) {
  PARADIT_CHECK(step > step_ && step < steps_, "step cache: step ", step, " after step ", step_,
                " of ", steps_);
  step_ = step;
  decided_ = false;
  skip_ = false;
  must_compute_ = false;
  partial_ = Tensor();
  current_.clear();
  forwards_ = 0;
}

void StepCache::note_model(const Transformer& model) {
  if (model_ == &model) return;
  if (model_ != nullptr) must_compute_ = true;  // another model's residuals and probes: drop them
  slots_.clear();
  accumulated_ = 0;
  model_ = &model;
  coefficients_ =
      options_.method == CacheMethod::kTea ? model.teacache_coefficients() : std::vector<double>{};
  threshold_ = requested_.resolved_threshold(model);  // TeaCache's default is the model's
  options_.threshold = threshold_;
}

int64_t StepCache::first_layer() const {
  return options_.method == CacheMethod::kFirstBlock ? 1 : 0;
}

double StepCache::rescale(double distance) const {
  if (coefficients_.empty()) return distance;
  double y = 0;  // Horner, highest power first
  for (double c : coefficients_) y = y * distance + c;
  return y;
}

void StepCache::probe(const Transformer& model, TransformerPass& pass, int key, bool counts) {
  PARADIT_CHECK(step_ >= 0 && !decided_, "step cache: probe() outside a step's start");
  note_model(model);
  CacheProbe p;
  if (options_.method == CacheMethod::kFirstBlock) {
    PARADIT_CHECK(model.num_layers() >= 1, model.class_name(), ": FBCache needs a layer");
    const Tensor before = model.image_hidden(pass);  // (B, local_image, D)
    model.run_layers(pass, 0, 1);
    p.value = core::sub(model.image_hidden(pass), before);  // layer 0's residual
  } else {
    p = model.teacache_probe(pass);
  }
  const Tensor rows = counted_rows(p, pass.tokens, counts);
  Slot& slot = slots_[key];
  const Tensor& ref = slot.probe;
  if (!ref.defined() || ref.shape() != p.value.shape() || ref.device() != p.value.device() ||
      ref.dtype() != p.value.dtype()) {
    must_compute_ = true;  // nothing to compare with (first step, new key)
  } else if (rows.defined()) {
    const Tensor ref_rows = counted_rows({ref, p.per_token}, pass.tokens, counts);
    const Tensor sums = core::l1_sums(rows, ref_rows);  // (2) F64: Σ|x − ref|, Σ|ref|
    partial_ = partial_.defined() ? core::add(partial_, sums) : sums;
  }
  current_[key] = p.value;
}

bool StepCache::decide(const std::vector<int>& keys) {
  PARADIT_CHECK(step_ >= 0 && !decided_, "step cache: decide() twice in step ", step_);
  bool must = must_compute_ || step_ < std::max(1, options_.warmup_steps) || step_ == steps_ - 1;
  for (int key : keys) {
    const auto it = slots_.find(key);
    if (it == slots_.end() || it->second.in_streams == 0) must = true;  // no residual yet
  }
  // The group's sums and whether any rank must compute: the same bits on every rank.
  const Tensor sums = partial_.defined() ? partial_.to_device(core::Device::CPU)
                                         : Tensor::zeros({2}, core::DType::F64);
  const Tensor flag = Tensor::full({1}, must ? 1.0f : 0.0f, core::DType::F64);
  const std::vector<double> total =
      parallel::sum_across(*group_, core::concat({sums, flag}, 0));  // Σdiff, Σref, flags
  must = total[2] > 0;
  const double distance =
      total[1] > 0 ? total[0] / total[1] : std::numeric_limits<double>::infinity();

  StepCacheRecord rec;
  rec.step = step_;
  rec.distance = must ? -1 : distance;
  bool skip = false;
  if (must) {
    accumulated_ = 0;
  } else if (options_.method == CacheMethod::kFirstBlock) {
    skip = threshold_ > 0 && distance < threshold_;
  } else {
    accumulated_ += rescale(distance);
    skip = threshold_ > 0 && accumulated_ < threshold_;
    if (!skip) accumulated_ = 0;
  }
  rec.computed = !skip;
  rec.accumulated = accumulated_;
  records_.push_back(rec);

  // The probes to compare the next step with: FBCache keeps those of the last computed step,
  // TeaCache always the latest.
  for (auto& [key, value] : current_) {
    if (!skip || options_.method == CacheMethod::kTea) slots_[key].probe = value;
  }
  current_.clear();
  partial_ = Tensor();
  decided_ = true;
  skip_ = skip;
  return !skip;
}

void StepCache::run_layers(const Transformer& model, TransformerPass& pass, int64_t begin,
                           int64_t end, int key) {
  PARADIT_CHECK(decided_, "step cache: layers of step ", step_,
                " run before the step's collective decision");
  PARADIT_CHECK(begin >= first_layer(), "step cache: layer ", begin, " is before the cached ones");
  note_model(model);
  Slot& slot = slots_[key];
  std::vector<Tensor>& streams = pass.streams;
  if (begin >= end) {  // nothing to run or skip, yet a residual (none) for decide()
    slot.residual.clear();
    slot.in_streams = streams.size();
    return;
  }
  if (skip_) {
    PARADIT_CHECK(slot.in_streams == streams.size() && !slot.residual.empty(),
                  "step cache: no residual for key ", key, " with ", streams.size(), " streams");
    if (slot.residual.size() == streams.size()) {
      for (size_t i = 0; i < streams.size(); ++i) {
        streams[i] = slot.residual[i].defined() ? core::add(streams[i], slot.residual[i])
                                                : Tensor();  // a stream the layers drop
      }
    } else {
      // The streams merged inside the layers (Flux's single-stream blocks).
      streams = {core::add(core::concat(streams, 1), slot.residual[0])};  // (B, S, D)
    }
    return;
  }
  const std::vector<Tensor> in = streams;
  model.run_layers(pass, begin, end);
  std::vector<Tensor> residual;
  if (streams.size() == in.size()) {
    for (size_t i = 0; i < in.size(); ++i) {
      PARADIT_CHECK(!streams[i].defined() || in[i].defined(), model.class_name(),
                    ": step cache: stream ", i, " appears inside the layers");
      residual.push_back(streams[i].defined() ? core::sub(streams[i], in[i]) : Tensor());
    }
  } else {
    PARADIT_CHECK(streams.size() == 1, model.class_name(), ": step cache: ", in.size(),
                  " streams become ", streams.size(), " inside the layers");
    residual.push_back(core::sub(streams[0], core::concat(in, 1)));  // (B, S, D)
  }
  slot.residual = std::move(residual);
  slot.in_streams = in.size();
}

Tensor StepCache::forward(const Transformer& model, const NamedTensors& inputs,
                          const parallel::SequenceContext* sp, bool counts) {
  PARADIT_CHECK(step_ >= 0 && forwards_ == 0, "step cache: one cached forward per step (step ",
                step_, ")");
  ++forwards_;
  note_model(model);
  const std::unique_ptr<TransformerPass> pass = model.begin_pass(inputs, sp, nullptr, true);
  probe(model, *pass, 0, counts);
  decide({0});
  run_layers(model, *pass, first_layer(), model.num_layers(), 0);
  return model.end_pass(*pass);
}

std::vector<int> StepCache::computed_steps() const {
  std::vector<int> out;
  for (const StepCacheRecord& r : records_) {
    if (r.computed) out.push_back(r.step);
  }
  return out;
}

std::vector<int> StepCache::reused_steps() const {
  std::vector<int> out;
  for (const StepCacheRecord& r : records_) {
    if (!r.computed) out.push_back(r.step);
  }
  return out;
}

}  // namespace paradit::models
