#include "schedulers/ddpm.h"

#include <algorithm>
#include <cmath>

#include "core/ops.h"
#include "core/error.h"
#include "schedulers/multistep.h"

namespace paradit::schedulers {

DDPMConfig DDPMConfig::from_config(const SchedulerConfig& c) {
  DDPMConfig d;
  d.betas = BetaSchedule::from_config(
      c, {"linear", "scaled_linear", "squaredcos_cap_v2", "laplace", "sigmoid"});
  d.clipping = SampleClipping::from_config(c, /*clip_default=*/true);
  d.variance_type = c.get_string("variance_type", "fixed_small");
  if (d.variance_type == "fixed_large_log") {
    c.unsupported("variance_type", "diffusers takes the square root of a log variance there");
  }
  c.get_choice("variance_type", "fixed_small",
               {"fixed_small", "fixed_small_log", "fixed_large", "learned", "learned_range"});
  d.prediction_type = parse_prediction(c, /*allow_flow=*/false);
  d.timestep_spacing =
      c.get_choice("timestep_spacing", "leading", {"linspace", "leading", "trailing"});
  d.steps_offset = c.get_int("steps_offset", 0);
  return d;
}

DDPMScheduler::DDPMScheduler(const DDPMConfig& config) : config_(config) {
  alphas_cumprod_ = alphas_cumprod_from_betas(make_betas(config_.betas));
}

void DDPMScheduler::set_timesteps(int num_inference_steps, const TimestepOptions& options) {
  const std::string who = "DDPMScheduler.set_timesteps";
  PARADIT_CHECK(options.sigmas.empty() && !options.mu.has_value(), who,
                ": explicit sigmas or mu are not supported");
  const int64_t t = config_.betas.num_train_timesteps;
  if (!options.timesteps.empty()) {
    PARADIT_CHECK(num_inference_steps == 0, who,
                  ": pass either num_inference_steps or explicit timesteps, not both");
    for (size_t i = 0; i < options.timesteps.size(); ++i) {
      const double v = options.timesteps[i];
      PARADIT_CHECK(v == std::floor(v) && v >= 0, who, ": timestep ", v,
                    " should be a non-negative integer");
      PARADIT_CHECK(i == 0 || v < options.timesteps[i - 1], who,
                    ": custom timesteps must be in descending order");
    }
    PARADIT_CHECK(options.timesteps[0] < static_cast<double>(t), who,
                  ": timesteps must start below ", t, ", found ", options.timesteps[0]);
    timesteps_ = options.timesteps;
  } else {
    PARADIT_CHECK(num_inference_steps >= 1 && num_inference_steps <= t, who,
                  ": num_inference_steps should be in [1, ", t, "], found ", num_inference_steps);
    auto ts = spaced_timesteps(config_.timestep_spacing, t, num_inference_steps,
                               config_.steps_offset, /*extra_one=*/false, t, who);
    timesteps_.assign(ts.begin(), ts.end());
  }
  sigmas_.clear();
}

bool DDPMScheduler::needs_noise(size_t step_index) const {
  return step_index < timesteps_.size() && timesteps_[step_index] > 0;
}

core::Tensor DDPMScheduler::step(const core::Tensor& model_output, size_t step_index,
                                 const core::Tensor& sample, const core::Tensor& noise) {
  const std::string_view who = class_name();
  PARADIT_CHECK(!timesteps_.empty(), who, ".step: call set_timesteps first");
  PARADIT_CHECK(step_index < timesteps_.size(), who, ".step: step index ", step_index,
                " is out of range for ", timesteps_.size(), " steps");
  core::Tensor x = step_input(sample, "sample", {}, who);
  const bool learned =
      config_.variance_type == "learned" || config_.variance_type == "learned_range";
  core::Tensor m, predicted_variance;
  if (learned) {
    PARADIT_CHECK(x.ndim() >= 2, who, ".step: the sample should be (B, C, ...), found ", x.str());
    core::Shape doubled = x.shape();
    doubled[1] *= 2;
    core::Tensor full = step_input(model_output, "model_output", doubled, who);
    m = full.slice(1, 0, x.dim(1)).contiguous();                              // (B, C, ...)
    predicted_variance = full.slice(1, x.dim(1), 2 * x.dim(1)).contiguous();  // (B, C, ...)
  } else {
    m = step_input(model_output, "model_output", x.shape(), who);
  }

  const int64_t t = static_cast<int64_t>(timesteps_[step_index]);
  const int64_t prev_t =
      step_index + 1 < timesteps_.size() ? static_cast<int64_t>(timesteps_[step_index + 1]) : -1;
  PARADIT_CHECK(t >= 0 && t < static_cast<int64_t>(alphas_cumprod_.size()), who, ".step: timestep ",
                t, " is outside the training schedule");
  // Scalars as diffusers' 0-dim float32 tensors.
  const float a_t = alphas_cumprod_[t];
  const float a_prev = prev_t >= 0 ? alphas_cumprod_[prev_t] : 1.0f;
  const float b_t = 1.0f - a_t;
  const float b_prev = 1.0f - a_prev;
  const float cur_alpha = a_t / a_prev;
  const float cur_beta = 1.0f - cur_alpha;
  const float sa = std::sqrt(a_t), sb = std::sqrt(b_t);

  core::Tensor x0;  // predicted original sample (same as sample)
  switch (config_.prediction_type) {
    case Prediction::kEpsilon:
      x0 = core::lincomb({{1.0f, x}, {-sb, m}}, {.div = sa});  // (x − √β·ε)/√α
      break;
    case Prediction::kSample:
      x0 = m;
      break;
    case Prediction::kVPrediction:
      x0 = core::lincomb({{sa, x}, {-sb, m}});  // √α·x − √β·v
      break;
    case Prediction::kFlow:
      fail(who, ": flow_prediction is not supported");
  }
  config_.clipping.apply(x0);

  const float c_x0 = (std::sqrt(a_prev) * cur_beta) / b_t;
  const float c_x = std::sqrt(cur_alpha) * b_prev / b_t;
  core::Tensor out = core::lincomb({{c_x0, x0}, {c_x, x}});  // (same as sample)

  if (t > 0) {
    core::Tensor z = step_input(noise, "noise", x.shape(), who);
    // _get_variance: the posterior variance, clamped away from 0.
    const float variance = std::max(b_prev / b_t * cur_beta, 1e-20f);
    const std::string& vt = config_.variance_type;
    if (vt == "learned" || vt == "learned_range") {
      const core::Tensor& pv = predicted_variance;
      core::Tensor std_dev;  // per element (same as sample)
      if (vt == "learned") {
        std_dev = core::sqrt(pv);
      } else {
        const float min_log = std::log(variance), max_log = std::log(cur_beta);
        const core::Tensor one = core::Tensor::full(pv.shape(), 1.0f, pv.dtype(), pv.device());
        const core::Tensor frac = core::lincomb({{1.0f, pv}, {1.0f, one}}, {.div = 2.0f});
        const core::Tensor rest = core::lincomb({{1.0f, one}, {-1.0f, frac}});  // 1 − frac
        const core::Tensor log_var = core::lincomb({{max_log, frac}, {min_log, rest}});
        std_dev = core::exp(core::scale(log_var, 0.5f));
      }
      return core::add(out, core::mul(std_dev, z));  // out + σ·z
    } else {
      float std_dev;
      if (vt == "fixed_small_log") {
        std_dev = std::exp(0.5f * std::log(variance));
      } else if (vt == "fixed_large") {
        std_dev = std::sqrt(cur_beta);
      } else {  // fixed_small
        std_dev = std::sqrt(variance);
      }
      return core::lincomb({{1.0f, out}, {std_dev, z}});  // out + σ·z
    }
  }
  return out;
}

core::Tensor DDPMScheduler::predict_original(const core::Tensor& model_output, size_t step_index,
                                             const core::Tensor& sample) const {
  if (step_index >= timesteps_.size()) return {};
  const int64_t t = static_cast<int64_t>(timesteps_[step_index]);
  if (t < 0 || t >= static_cast<int64_t>(alphas_cumprod_.size())) return {};
  const std::string_view who = class_name();
  const core::Tensor x = step_input(sample, "sample", {}, who);
  const core::Tensor m = step_input(model_output, "model_output", x.shape(), who);
  // σ = √((1 − ᾱ)/ᾱ) stands for (α, σ) = (√ᾱ, √(1 − ᾱ)): step()'s pred_original_sample.
  const float a = alphas_cumprod_[static_cast<size_t>(t)];
  OutputConversion x0;
  x0.prediction = config_.prediction_type;
  x0.predict_x0 = true;
  x0.who = who;
  core::Tensor out = convert_model_output(m, x, std::sqrt((1.0f - a) / a), x0);
  config_.clipping.apply(out);  // as step() clips its x0
  return out;
}

}  // namespace paradit::schedulers
