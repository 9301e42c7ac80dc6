#include "schedulers/flow_match_euler.h"

#include <cmath>

#include "core/error.h"
#include "core/ops.h"

namespace paradit::schedulers {

FlowMatchEulerConfig FlowMatchEulerConfig::from_config(const SchedulerConfig& c) {
  FlowMatchEulerConfig f;
  f.num_train_timesteps = c.get_int("num_train_timesteps", 1000);
  PARADIT_CHECK(f.num_train_timesteps >= 1, c.where(),
                ": num_train_timesteps should be positive, found ", f.num_train_timesteps);
  f.shift = c.get_double("shift", 1.0);
  f.use_dynamic_shifting = c.get_bool("use_dynamic_shifting", false);
  f.base_shift = c.get_double("base_shift", 0.5);
  f.max_shift = c.get_double("max_shift", 1.15);
  f.base_image_seq_len = c.get_int("base_image_seq_len", 256);
  f.max_image_seq_len = c.get_int("max_image_seq_len", 4096);
  f.invert_sigmas = c.get_bool("invert_sigmas", false);
  f.shift_terminal = c.get_double("shift_terminal", 0.0);
  f.use_karras_sigmas = c.get_bool("use_karras_sigmas", false);
  f.use_exponential_sigmas = c.get_bool("use_exponential_sigmas", false);
  if (c.get_bool("use_beta_sigmas", false)) {
    c.unsupported("use_beta_sigmas", "beta sigmas need scipy's beta quantiles");
  }
  PARADIT_CHECK(!(f.use_karras_sigmas && f.use_exponential_sigmas), c.where(),
                ": only one of use_karras_sigmas and use_exponential_sigmas can be true");
  f.time_shift_type = c.get_choice("time_shift_type", "exponential", {"exponential", "linear"});
  f.stochastic_sampling = c.get_bool("stochastic_sampling", false);
  return f;
}

namespace {

// Applies steps 2-4 of diffusers' set_timesteps (shift, terminal stretch, Karras/exponential
// conversion) to sigmas held in T: double when diffusers builds them with numpy float64
// (default schedule), float when it starts from np.float32 (explicit sigmas or timesteps).
template <typename T>
std::vector<float> shape_sigmas(std::vector<T> s, const FlowMatchEulerConfig& c,
                                std::optional<double> mu, double shift) {
  if (c.use_dynamic_shifting) {
    // time_shift(mu, 1.0, t): exp(mu) / (exp(mu) + (1/t - 1)^1); Python scalars are weak, so with
    // float32 arrays every operation rounds to float.
    const T m =
        c.time_shift_type == "exponential" ? static_cast<T>(std::exp(*mu)) : static_cast<T>(*mu);
    for (T& v : s) {
      T r = static_cast<T>(1) / v - static_cast<T>(1);
      v = m / (m + r);
    }
  } else {
    const T a = static_cast<T>(shift), b = static_cast<T>(shift - 1);
    for (T& v : s) v = a * v / (static_cast<T>(1) + mul_round(b, v));
  }
  if (c.shift_terminal != 0.0 && !s.empty()) {
    const T scale = (static_cast<T>(1) - s.back()) / static_cast<T>(1 - c.shift_terminal);
    for (T& v : s) v = static_cast<T>(1) - (static_cast<T>(1) - v) / scale;
  }
  if (c.use_karras_sigmas || c.use_exponential_sigmas) {
    const double lo = static_cast<double>(s.back()), hi = static_cast<double>(s.front());
    const int64_t n = static_cast<int64_t>(s.size());
    std::vector<double> conv =
        c.use_karras_sigmas ? karras_sigmas(lo, hi, n) : exponential_sigmas(lo, hi, n);
    std::vector<float> out(conv.size());
    for (size_t i = 0; i < conv.size(); ++i) out[i] = static_cast<float>(conv[i]);
    return out;
  }
  std::vector<float> out(s.size());
  for (size_t i = 0; i < s.size(); ++i) out[i] = static_cast<float>(s[i]);
  return out;
}

}  // namespace

FlowMatchEulerScheduler::FlowMatchEulerScheduler(const FlowMatchEulerConfig& config)
    : config_(config) {
  // The training schedule: t = T..1, σ = t/T, shifted unless shifting is dynamic (float32).
  const int64_t n = config_.num_train_timesteps;
  const float tf = static_cast<float>(n);
  auto train_sigma = [&](int64_t i) {
    float s = static_cast<float>(n - i) / tf;
    if (!config_.use_dynamic_shifting) {
      s = static_cast<float>(config_.shift) * s /
          (1.0f + mul_round(static_cast<float>(config_.shift - 1), s));
    }
    return s;
  };
  sigma_max_ = train_sigma(0);
  sigma_min_ = train_sigma(n - 1);
}

double FlowMatchEulerScheduler::mu_for(int64_t image_seq_len) const {
  return calculate_shift(image_seq_len, config_.base_image_seq_len, config_.max_image_seq_len,
                         config_.base_shift, config_.max_shift);
}

void FlowMatchEulerScheduler::set_timesteps(int num_inference_steps,
                                            const TimestepOptions& options) {
  const std::string who = "FlowMatchEulerDiscreteScheduler.set_timesteps";
  PARADIT_CHECK(!config_.use_dynamic_shifting || options.mu.has_value(), who,
                ": mu is required because the config has use_dynamic_shifting");
  const bool has_sigmas = !options.sigmas.empty();
  const bool has_timesteps = !options.timesteps.empty();
  PARADIT_CHECK(!has_sigmas || !has_timesteps || options.sigmas.size() == options.timesteps.size(),
                who, ": ", options.sigmas.size(), " sigmas but ", options.timesteps.size(),
                " timesteps");
  int64_t n = num_inference_steps;
  if (n > 0) {
    PARADIT_CHECK(!has_sigmas || static_cast<int64_t>(options.sigmas.size()) == n, who, ": ",
                  options.sigmas.size(), " sigmas for ", n, " inference steps");
    PARADIT_CHECK(!has_timesteps || static_cast<int64_t>(options.timesteps.size()) == n, who, ": ",
                  options.timesteps.size(), " timesteps for ", n, " inference steps");
  } else {
    n = has_sigmas ? static_cast<int64_t>(options.sigmas.size())
                   : static_cast<int64_t>(options.timesteps.size());
  }
  PARADIT_CHECK(n >= 1, who, ": num_inference_steps should be at least 1, found ", n);

  const double tn = static_cast<double>(config_.num_train_timesteps);
  std::vector<float> sig;
  if (has_sigmas) {
    // np.array(sigmas).astype(np.float32): everything after is float32 arithmetic.
    std::vector<float> s(options.sigmas.size());
    for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<float>(options.sigmas[i]);
    sig = shape_sigmas<float>(std::move(s), config_, options.mu, config_.shift);
  } else if (has_timesteps) {
    std::vector<float> s(options.timesteps.size());
    for (size_t i = 0; i < s.size(); ++i) {
      s[i] = static_cast<float>(options.timesteps[i]) / static_cast<float>(tn);
    }
    sig = shape_sigmas<float>(std::move(s), config_, options.mu, config_.shift);
  } else {
    // Spaced between the training schedule's (already shifted) σ_max and σ_min in float64,
    // then shifted again: this is why SD3's last timestep is 8.93 for 4 steps, not 2.99.
    std::vector<double> t =
        np_linspace(static_cast<double>(sigma_max_) * tn, static_cast<double>(sigma_min_) * tn, n);
    for (double& v : t) v /= tn;
    sig = shape_sigmas<double>(std::move(t), config_, options.mu, config_.shift);
  }

  const float tf = static_cast<float>(config_.num_train_timesteps);
  if (config_.invert_sigmas) {
    for (float& v : sig) v = 1.0f - v;
  }
  timesteps_.resize(sig.size());
  for (size_t i = 0; i < sig.size(); ++i) timesteps_[i] = static_cast<double>(sig[i] * tf);
  sig.push_back(config_.invert_sigmas ? 1.0f : 0.0f);
  sigmas_f32_ = sig;
  sigmas_.assign(sig.begin(), sig.end());
}

core::Tensor FlowMatchEulerScheduler::step(const core::Tensor& model_output, size_t step_index,
                                           const core::Tensor& sample, const core::Tensor& noise) {
  const std::string_view who = class_name();
  PARADIT_CHECK(!timesteps_.empty(), who, ".step: call set_timesteps first");
  PARADIT_CHECK(step_index < timesteps_.size(), who, ".step: step index ", step_index,
                " is out of range for ", timesteps_.size(), " steps");
  core::Tensor x = step_input(sample, "sample", {}, who);
  core::Tensor v = step_input(model_output, "model_output", x.shape(), who);
  const float sigma = sigmas_f32_[step_index];
  const float sigma_next = sigmas_f32_[step_index + 1];
  if (config_.stochastic_sampling) {
    const core::Tensor z = step_input(noise, "noise", x.shape(), who);
    const core::Tensor x0 = core::lincomb({{1.0f, x}, {-sigma, v}});       // x − σ·v
    return core::lincomb({{1.0f - sigma_next, x0}, {sigma_next, z}});  // (same as sample)
  }
  const float dt = sigma_next - sigma;
  return core::lincomb({{1.0f, x}, {dt, v}});  // x + dt·v (same as sample)
}

core::Tensor FlowMatchEulerScheduler::scale_noise(const core::Tensor& sample, size_t step_index,
                                                  const core::Tensor& noise) const {
  const std::string_view who = "FlowMatchEulerDiscreteScheduler.scale_noise";
  PARADIT_CHECK(step_index < timesteps_.size(), who, ": step index ", step_index,
                " is out of range for ", timesteps_.size(), " steps");
  core::Tensor x = step_input(sample, "sample", {}, who);
  core::Tensor z = step_input(noise, "noise", x.shape(), who);
  const float sigma = sigmas_f32_[step_index];
  return core::lincomb({{sigma, z}, {1.0f - sigma, x}});  // (same as sample)
}

core::Tensor FlowMatchEulerScheduler::predict_original(const core::Tensor& model_output,
                                                       size_t step_index,
                                                       const core::Tensor& sample) const {
  if (step_index >= timesteps_.size()) return {};
  const std::string_view who = "FlowMatchEulerDiscreteScheduler.predict_original";
  const core::Tensor x = step_input(sample, "sample", {}, who);
  const core::Tensor v = step_input(model_output, "model_output", x.shape(), who);
  const float sigma = sigmas_f32_[step_index];
  return core::lincomb({{1.0f, x}, {-sigma, v}});  // x − σ·v, as step()'s x0 (same as sample)
}

}  // namespace paradit::schedulers
