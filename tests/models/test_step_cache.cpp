// models::StepCache against a plain reference written here from the methods' definitions, on the
// transformer fixtures over a few "steps" (inputs drifting from step to step):
//   First-Block-Cache: the first block's image residual r; a step is reused when
//     Σ|r − r_c| / Σ|r_c| < T (r_c: at the last computed step), its output then being
//     end_pass(streams after block 0 + (streams after the last block − streams after block 0) of
//     the last computed step), streams merged by concatenation where the family merges them;
//   TeaCache: the probe p (the family's modulated input); the rescaled distances
//     poly(Σ|p − p_prev| / Σ|p_prev|) accumulate, a step is reused while the sum stays below T
//     (reset at every computed step), the residual spanning every block;
// first and last steps always computed. The distances here are plain double loops over host
// copies (not core::l1_sums). Families: Flux (streams merge), SD3 (the last block drops the text
// stream), PixArt (one stream), Wan (a per-timestep probe), HunyuanVideo ({video, text}).
// Also: threshold 0 equals the uncached forward bit for bit; warm-up steps; a model switch
// forces a computed step; the published TeaCache polynomials.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/random.h"
#include "models/step_cache.h"
#include "models/transformer.h"
#include "support/transformer_fixtures.h"

namespace paradit::models {
namespace {

using core::Tensor;

struct Case {
  std::unique_ptr<Transformer> model;
  NamedTensors inputs;
};

Case load_case(const std::string& name) {
  const auto dir = paradit::testing::transformer_case_dir(name);
  Case c;
  c.model = load_transformer(dir);
  c.inputs = paradit::testing::read_all(dir / "inputs.safetensors");
  return c;
}

// Step k's inputs: the hidden states drift towards fixed noise, the timestep shrinks.
NamedTensors step_inputs(const NamedTensors& base, int k) {
  NamedTensors in = base;
  const Tensor& x = base.at("hidden_states");
  const Tensor noise = core::randn(x.shape(), 1234);
  const float a = 0.03f * static_cast<float>(k);
  in["hidden_states"] = core::lincomb({{1.0f - a, x}, {a, noise}});
  in["timestep"] = core::scale(base.at("timestep"), 1.0f - 0.05f * static_cast<float>(k));
  return in;
}

// Σ|x − ref| / Σ|ref| over host copies, in double.
double rel_l1(const Tensor& x, const Tensor& ref) {
  const std::vector<float> a = x.to_vector(), b = ref.to_vector();
  EXPECT_EQ(a.size(), b.size());
  double d = 0, r = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    r += std::fabs(static_cast<double>(b[i]));
  }
  return r > 0 ? d / r : std::numeric_limits<double>::infinity();
}

double poly(const std::vector<double>& c, double x) {
  if (c.empty()) return x;
  double y = 0;
  for (double v : c) y = y * x + v;
  return y;
}

// `from` brought to the layout of `to` (Flux: two streams → their concatenation).
std::vector<Tensor> as_layout(const std::vector<Tensor>& from, const std::vector<Tensor>& to) {
  if (from.size() == to.size()) return from;
  std::vector<Tensor> merged;
  merged.push_back(core::concat(from, 1));
  return merged;
}

// to − as_layout(from, to), stream by stream (an undefined stream stays undefined).
std::vector<Tensor> residual(const std::vector<Tensor>& to, const std::vector<Tensor>& from) {
  const std::vector<Tensor> f = as_layout(from, to);
  std::vector<Tensor> r;
  for (size_t i = 0; i < to.size(); ++i) {
    r.push_back(to[i].defined() ? core::sub(to[i], f[i]) : Tensor());
  }
  return r;
}

std::vector<Tensor> add_residual(const std::vector<Tensor>& streams,
                                 const std::vector<Tensor>& res) {
  const std::vector<Tensor> s = as_layout(streams, res);
  std::vector<Tensor> out;
  for (size_t i = 0; i < res.size(); ++i) {
    out.push_back(res[i].defined() ? core::add(s[i], res[i]) : Tensor());
  }
  return out;
}

struct Outcome {
  std::vector<Tensor> outputs;
  std::vector<bool> computed;
  std::vector<double> distances;  // per middle step: the (rescaled) distance compared
};

// The plain reference of either method over `steps` steps.
Outcome reference(const Transformer& model, const NamedTensors& base, int steps, CacheMethod method,
                  double threshold) {
  Outcome o;
  Tensor prev;  // FBCache: r at the last computed step; TeaCache: the last probe
  double acc = 0;
  std::vector<Tensor> cached;
  const int64_t n = model.num_layers();
  for (int k = 0; k < steps; ++k) {
    const auto pass = model.begin_pass(step_inputs(base, k), nullptr, nullptr, true);
    const bool forced = k == 0 || k == steps - 1;
    bool skip = false;
    Tensor probe;
    if (method == CacheMethod::kFirstBlock) {
      const Tensor before = model.image_hidden(*pass);
      model.run_layers(*pass, 0, 1);
      probe = core::sub(model.image_hidden(*pass), before);
      if (!forced) o.distances.push_back(rel_l1(probe, prev));
      skip = !forced && threshold > 0 && rel_l1(probe, prev) < threshold;
      if (!skip) prev = probe;
    } else {
      probe = model.teacache_probe(*pass).value;
      if (forced) {
        acc = 0;
      } else {
        o.distances.push_back(poly(model.teacache_coefficients(), rel_l1(probe, prev)));
        acc += o.distances.back();
        skip = threshold > 0 && acc < threshold;
        if (!skip) acc = 0;
      }
      prev = probe;
    }
    const std::vector<Tensor> in = pass->streams;
    if (skip) {
      pass->streams = add_residual(in, cached);
    } else {
      model.run_layers(*pass, method == CacheMethod::kFirstBlock ? 1 : 0, n);
      cached = residual(pass->streams, in);
    }
    o.outputs.push_back(model.end_pass(*pass));
    o.computed.push_back(!skip);
  }
  return o;
}

Outcome cached_run(const Transformer& model, const NamedTensors& base, int steps,
                   const StepCacheOptions& options) {
  StepCache cache(options, steps, nullptr);
  Outcome o;
  for (int k = 0; k < steps; ++k) {
    cache.begin_step(k);
    o.outputs.push_back(cache.forward(model, step_inputs(base, k), nullptr, true));
  }
  for (const StepCacheRecord& r : cache.records()) o.computed.push_back(r.computed);
  return o;
}

StepCacheOptions options(CacheMethod m, double threshold, int warmup = 0) {
  StepCacheOptions o;
  o.method = m;
  o.threshold = threshold;
  o.warmup_steps = warmup;
  return o;
}

std::string decisions(const std::vector<bool>& computed) {
  std::string s;
  for (bool c : computed) s += c ? 'C' : 'r';
  return s;
}

class StepCacheFamilies : public ::testing::TestWithParam<const char*> {};

TEST_P(StepCacheFamilies, MatchesThePlainReference) {
  const Case c = load_case(GetParam());
  constexpr int kSteps = 7;
  for (const CacheMethod m : {CacheMethod::kFirstBlock, CacheMethod::kTea}) {
    bool mixed = false;  // some threshold reuses some middle steps and computes others
    // Thresholds just above each distance the uncapped run compares (each reuses a different
    // set of steps), then 0 and "always".
    std::vector<double> thresholds = {0.0, 1e9};
    for (double d : reference(*c.model, c.inputs, kSteps, m, 1e9).distances) {
      thresholds.push_back(d * 1.01);
    }
    for (const double t : thresholds) {
      SCOPED_TRACE(std::string(cache_method_name(m)) + " threshold " + std::to_string(t));
      const Outcome want = reference(*c.model, c.inputs, kSteps, m, t);
      const Outcome got = cached_run(*c.model, c.inputs, kSteps, options(m, t));
      EXPECT_EQ(decisions(got.computed), decisions(want.computed));
      for (int k = 0; k < kSteps; ++k) {
        EXPECT_LE(paradit::testing::rel_l2_err(got.outputs[k], want.outputs[k]), 1e-6)
            << "step " << k;
      }
      int reused = 0;
      for (bool cmp : want.computed) reused += cmp ? 0 : 1;
      mixed = mixed || (reused > 0 && reused < kSteps - 2);
      EXPECT_TRUE(want.computed.front() && want.computed.back());
      if (t == 1e9) EXPECT_EQ(reused, kSteps - 2);  // every middle step reused
    }
    EXPECT_TRUE(mixed) << "no threshold gave a mix of reused and computed steps";
  }
}

// Threshold 0 never skips, and a computed step is the uncached forward, bit for bit.
TEST_P(StepCacheFamilies, ThresholdZeroIsTheUncachedForward) {
  const Case c = load_case(GetParam());
  for (const CacheMethod m : {CacheMethod::kFirstBlock, CacheMethod::kTea}) {
    const Outcome got = cached_run(*c.model, c.inputs, 4, options(m, 0.0));
    for (int k = 0; k < 4; ++k) {
      const std::vector<float> a = got.outputs[k].to_vector();
      const std::vector<float> b = c.model->forward(step_inputs(c.inputs, k)).to_vector();
      EXPECT_EQ(a, b) << cache_method_name(m) << " step " << k;
    }
    EXPECT_EQ(decisions(got.computed), "CCCC");
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, StepCacheFamilies,
                         ::testing::Values("flux", "sd3", "pixart_sigma", "wan", "hunyuan_video"));

TEST(StepCache, WarmupStepsAreComputed) {
  const Case c = load_case("pixart_sigma");
  for (const CacheMethod m : {CacheMethod::kFirstBlock, CacheMethod::kTea}) {
    const Outcome got = cached_run(*c.model, c.inputs, 7, options(m, 1e9, 3));
    EXPECT_EQ(decisions(got.computed), "CCCrrrC") << cache_method_name(m);
  }
}

TEST(StepCache, AnotherModelForcesAComputedStep) {
  // Wan2.2's experts: the low-noise model takes over mid-run; its first step cannot reuse the
  // other model's residual.
  const Case a = load_case("pixart_sigma");
  const Case b = load_case("pixart_sigma");
  StepCache cache(options(CacheMethod::kFirstBlock, 1e9), 6, nullptr);
  for (int k = 0; k < 6; ++k) {
    cache.begin_step(k);
    cache.forward(k < 3 ? *a.model : *b.model, step_inputs(a.inputs, k), nullptr, true);
  }
  std::vector<bool> computed;
  for (const StepCacheRecord& r : cache.records()) computed.push_back(r.computed);
  EXPECT_EQ(decisions(computed), "CrrCrC");
}

TEST(StepCache, LayersBeforeTheDecisionAreRefused) {
  const Case c = load_case("pixart_sigma");
  StepCache cache(options(CacheMethod::kFirstBlock, 0.1), 3, nullptr);
  cache.begin_step(0);
  const auto pass = c.model->begin_pass(c.inputs, nullptr, nullptr, true);
  cache.probe(*c.model, *pass, 0, true);
  EXPECT_THROW(cache.run_layers(*c.model, *pass, 1, c.model->num_layers(), 0), Error);
  cache.decide({0});
  EXPECT_THROW(cache.decide({0}), Error);  // one decision per step
}

TEST(StepCache, OptionsAreChecked) {
  EXPECT_THROW(options(CacheMethod::kFirstBlock, -0.1).validate(), Error);
  EXPECT_THROW(options(CacheMethod::kTea, std::nan("")).validate(), Error);
  EXPECT_THROW(options(CacheMethod::kTea, 0.1, -1).validate(), Error);
  StepCacheOptions none;
  none.threshold = 0.1;
  EXPECT_THROW(none.validate(), Error);
  // Defaults: FBCache's for every family; TeaCache's the family's (Flux: xDiT's 0.6).
  const Case flux = load_case("flux");
  const Case pixart = load_case("pixart_sigma");
  StepCacheOptions fb;
  fb.method = CacheMethod::kFirstBlock;
  EXPECT_EQ(fb.resolved_threshold(*flux.model), kFbCacheDefaultThreshold);
  fb.method = CacheMethod::kTea;
  EXPECT_EQ(fb.resolved_threshold(*flux.model), 0.6);
  EXPECT_EQ(fb.resolved_threshold(*pixart.model), kTeaCacheIdentityThreshold);
  fb.threshold = 0.3;
  EXPECT_EQ(fb.resolved_threshold(*flux.model), 0.3);
  EXPECT_EQ(options(CacheMethod::kTea, 0.3).describe(), "teacache threshold 0.3");
  StepCacheOptions tea;
  tea.method = CacheMethod::kTea;
  tea.warmup_steps = 2;
  EXPECT_EQ(tea.describe(), "teacache, the model's default threshold, 2 warm-up steps");
  // The cache reports the threshold in force once the model has run.
  StepCache cache(tea, 3, nullptr);
  cache.begin_step(0);
  cache.forward(*pixart.model, pixart.inputs, nullptr, true);
  EXPECT_EQ(cache.options().describe(), "teacache threshold 0.2, 2 warm-up steps");
}

// The polynomials as the TeaCache authors published them (TeaCache4FLUX, TeaCache4HunyuanVideo,
// TeaCache4Wan2.1 t2v-1.3B without use_ret_steps); identity where none was published.
TEST(StepCache, PublishedTeaCachePolynomials) {
  const Case flux = load_case("flux");
  const std::vector<double> f = flux.model->teacache_coefficients();
  ASSERT_EQ(f.size(), 5u);
  EXPECT_DOUBLE_EQ(f[0], 4.98651651e+02);
  EXPECT_DOUBLE_EQ(f[4], 2.64230861e-01);
  const Case hv = load_case("hunyuan_video");
  ASSERT_EQ(hv.model->teacache_coefficients().size(), 5u);
  EXPECT_DOUBLE_EQ(hv.model->teacache_coefficients()[0], 7.33226126e+02);
  EXPECT_TRUE(load_case("sd3").model->teacache_coefficients().empty());
  EXPECT_TRUE(load_case("pixart_sigma").model->teacache_coefficients().empty());
  // The fixture Wan is neither 1.3B (inner dim 1536) nor 14B (5120): identity.
  EXPECT_TRUE(load_case("wan").model->teacache_coefficients().empty());
}

}  // namespace
}  // namespace paradit::models
