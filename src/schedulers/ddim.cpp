#include "schedulers/ddim.h"

#include <cmath>

#include "core/ops.h"
#include "core/error.h"
#include "schedulers/multistep.h"

namespace paradit::schedulers {

DDIMConfig DDIMConfig::from_config(const SchedulerConfig& c) {
  DDIMConfig d;
  d.betas = BetaSchedule::from_config(c, {"linear", "scaled_linear", "squaredcos_cap_v2"});
  d.clipping = SampleClipping::from_config(c, /*clip_default=*/true);
  d.set_alpha_to_one = c.get_bool("set_alpha_to_one", true);
  d.steps_offset = c.get_int("steps_offset", 0);
  d.prediction_type = parse_prediction(c, /*allow_flow=*/false);
  d.timestep_spacing =
      c.get_choice("timestep_spacing", "leading", {"linspace", "leading", "trailing"});
  return d;
}

DDIMScheduler::DDIMScheduler(const DDIMConfig& config) : config_(config) {
  alphas_cumprod_ = alphas_cumprod_from_betas(make_betas(config_.betas));
  final_alpha_cumprod_ = config_.set_alpha_to_one ? 1.0f : alphas_cumprod_[0];
}

void DDIMScheduler::set_timesteps(int num_inference_steps, const TimestepOptions& options) {
  const std::string who = "DDIMScheduler.set_timesteps";
  PARADIT_CHECK(options.sigmas.empty() && options.timesteps.empty() && !options.mu.has_value(), who,
                ": explicit sigmas, timesteps or mu are not supported");
  const int64_t t = config_.betas.num_train_timesteps;
  PARADIT_CHECK(num_inference_steps >= 1 && num_inference_steps <= t, who,
                ": num_inference_steps should be in [1, ", t, "], found ", num_inference_steps);
  n_requested_ = num_inference_steps;
  auto ts = spaced_timesteps(config_.timestep_spacing, t, num_inference_steps, config_.steps_offset,
                             /*extra_one=*/false, t, who);
  timesteps_.assign(ts.begin(), ts.end());
  sigmas_.clear();
}

core::Tensor DDIMScheduler::step(const core::Tensor& model_output, size_t step_index,
                                 const core::Tensor& sample, const core::Tensor& noise) {
  const std::string_view who = class_name();
  PARADIT_CHECK(!timesteps_.empty(), who, ".step: call set_timesteps first");
  PARADIT_CHECK(step_index < timesteps_.size(), who, ".step: step index ", step_index,
                " is out of range for ", timesteps_.size(), " steps");
  core::Tensor x = step_input(sample, "sample", {}, who);
  core::Tensor m = step_input(model_output, "model_output", x.shape(), who);

  const int64_t t = static_cast<int64_t>(timesteps_[step_index]);
  const int64_t prev_t = t - config_.betas.num_train_timesteps / n_requested_;
  PARADIT_CHECK(t >= 0 && t < static_cast<int64_t>(alphas_cumprod_.size()), who, ".step: timestep ",
                t, " is outside the training schedule");
  // Scalars as diffusers' 0-dim float32 tensors.
  const float a_t = alphas_cumprod_[t];
  const float a_prev = prev_t >= 0 ? alphas_cumprod_[prev_t] : final_alpha_cumprod_;
  const float b_t = 1.0f - a_t;
  const float sa = std::sqrt(a_t), sb = std::sqrt(b_t);

  core::Tensor x0, eps;  // predicted original sample and noise (same as sample)
  switch (config_.prediction_type) {
    case Prediction::kEpsilon:
      x0 = core::lincomb({{1.0f, x}, {-sb, m}}, {.div = sa});  // (x − √β·ε)/√α
      eps = m;
      break;
    case Prediction::kSample:
      x0 = m;
      eps = core::lincomb({{1.0f, x}, {-sa, m}}, {.div = sb});  // (x − √α·x0)/√β
      break;
    case Prediction::kVPrediction:
      x0 = core::lincomb({{sa, x}, {-sb, m}});   // √α·x − √β·v
      eps = core::lincomb({{sa, m}, {sb, x}});  // √α·v + √β·x
      break;
    case Prediction::kFlow:
      fail(who, ": flow_prediction is not supported");
  }
  config_.clipping.apply(x0);

  const float variance = ((1.0f - a_prev) / b_t) * (1.0f - a_t / a_prev);
  const float std_dev = static_cast<float>(eta_) * std::sqrt(variance);
  if (use_clipped_model_output_) eps = core::lincomb({{1.0f, x}, {-sa, x0}}, {.div = sb});
  const float c_dir = std::sqrt((1.0f - a_prev) - mul_round(std_dev, std_dev));
  const float c_x0 = std::sqrt(a_prev);

  const core::Tensor z = eta_ > 0 ? step_input(noise, "noise", x.shape(), who) : core::Tensor();
  return core::lincomb({{c_x0, x0}, {c_dir, eps}, {std_dev, z}});  // (same as sample)
}

core::Tensor DDIMScheduler::predict_original(const core::Tensor& model_output, size_t step_index,
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
