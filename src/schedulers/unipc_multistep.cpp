#include "schedulers/unipc_multistep.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace paradit::schedulers {

UniPCConfig UniPCConfig::from_config(const SchedulerConfig& c) {
  UniPCConfig u;
  u.betas = BetaSchedule::from_config(c, {"linear", "scaled_linear", "squaredcos_cap_v2"});
  u.solver_order = c.get_int("solver_order", 2);
  PARADIT_CHECK(u.solver_order >= 1 && u.solver_order <= 4, c.where(),
                ": solver_order should be in [1, 4], found ", u.solver_order);
  u.prediction_type = parse_prediction(c, /*allow_flow=*/true);
  u.clipping = SampleClipping::from_config(c, /*clip_default=*/false);
  u.clipping.clip_sample = false;  // UniPC has no clip_sample
  u.predict_x0 = c.get_bool("predict_x0", true);
  PARADIT_CHECK(u.predict_x0 || u.prediction_type != Prediction::kFlow, c.where(),
                ": prediction_type flow_prediction needs predict_x0 true");
  u.solver_type = c.get_choice("solver_type", "bh2", {"bh1", "bh2", "midpoint", "heun", "logrho"});
  if (u.solver_type != "bh1") u.solver_type = "bh2";  // as diffusers registers the others
  u.lower_order_final = c.get_bool("lower_order_final", true);
  u.disable_corrector = c.get_int_list("disable_corrector");
  if (c.has("solver_p")) c.unsupported("solver_p", "an external predictor scheduler");
  u.use_karras_sigmas = c.get_bool("use_karras_sigmas", false);
  u.use_exponential_sigmas = c.get_bool("use_exponential_sigmas", false);
  if (c.get_bool("use_beta_sigmas", false)) {
    c.unsupported("use_beta_sigmas", "beta sigmas need scipy's beta quantiles");
  }
  PARADIT_CHECK(!(u.use_karras_sigmas && u.use_exponential_sigmas), c.where(),
                ": only one of use_karras_sigmas and use_exponential_sigmas can be true");
  u.use_flow_sigmas = c.get_bool("use_flow_sigmas", false);
  u.flow_shift = c.get_double("flow_shift", 1.0);
  u.timestep_spacing =
      c.get_choice("timestep_spacing", "linspace", {"linspace", "leading", "trailing"});
  u.steps_offset = c.get_int("steps_offset", 0);
  u.final_sigmas_type = c.get_choice("final_sigmas_type", "zero", {"zero", "sigma_min"});
  u.use_dynamic_shifting = c.get_bool("use_dynamic_shifting", false);
  u.time_shift_type = c.get_choice("time_shift_type", "exponential", {"exponential", "linear"});
  u.sigma_min = c.get_double("sigma_min", 0.0);
  u.sigma_max = c.get_double("sigma_max", 0.0);
  u.shift_terminal = c.get_double("shift_terminal", 0.0);
  PARADIT_CHECK(u.shift_terminal == 0.0 || u.use_flow_sigmas, c.where(),
                ": shift_terminal needs use_flow_sigmas");
  return u;
}

UniPCMultistepScheduler::UniPCMultistepScheduler(const UniPCConfig& config) : config_(config) {
  alphas_cumprod_ = alphas_cumprod_from_betas(make_betas(config_.betas));
  if (config_.betas.rescale_betas_zero_snr) alphas_cumprod_.back() = std::ldexp(1.0f, -24);
}

void UniPCMultistepScheduler::set_timesteps(int num_inference_steps,
                                            const TimestepOptions& options) {
  const std::string who = "UniPCMultistepScheduler.set_timesteps";
  PARADIT_CHECK(!config_.use_dynamic_shifting || options.mu.has_value(), who,
                ": mu is required because the config has use_dynamic_shifting");
  PARADIT_CHECK(options.timesteps.empty(), who, ": explicit timesteps are not supported");
  const bool custom = !options.sigmas.empty();
  PARADIT_CHECK(!custom || config_.use_flow_sigmas, who,
                ": explicit sigmas need use_flow_sigmas in the config");
  const int64_t n = custom ? static_cast<int64_t>(options.sigmas.size()) : num_inference_steps;
  const int64_t tn = config_.betas.num_train_timesteps;
  std::vector<int64_t> ts = spaced_timesteps(config_.timestep_spacing, tn, n, config_.steps_offset,
                                             /*extra_one=*/true, tn, who);

  std::vector<float> train(tn);
  for (int64_t i = 0; i < tn; ++i) {
    train[i] = std::sqrt((1.0f - alphas_cumprod_[i]) / alphas_cumprod_[i]);
  }
  const bool sigma_min_last = config_.final_sigmas_type == "sigma_min";
  std::vector<double> sig;
  double last = 0.0;
  if (config_.use_karras_sigmas || config_.use_exponential_sigmas) {
    std::vector<float> base;
    if (custom) {
      for (double s : options.sigmas) base.push_back(static_cast<float>(s));
    } else {
      base = train;
    }
    std::vector<float> log_sigmas(base.size());
    for (size_t i = 0; i < base.size(); ++i) log_sigmas[i] = std::log(base[i]);
    // Bounds: the config's sigma_min/max, else the ends of the flipped table.
    const double lo = config_.sigma_min != 0.0 ? config_.sigma_min : base.front();
    const double hi = config_.sigma_max != 0.0 ? config_.sigma_max : base.back();
    ts.clear();
    if (config_.use_karras_sigmas) {
      sig = karras_sigmas(lo, hi, n);
      if (config_.use_flow_sigmas) {
        for (double& s : sig) s = s / (s + 1);
        for (double s : sig) ts.push_back(static_cast<int64_t>(s * static_cast<double>(tn)));
      } else {
        for (double s : sig)
          ts.push_back(static_cast<int64_t>(np_round(sigma_to_t(s, log_sigmas))));
      }
    } else {
      sig = exponential_sigmas(lo, hi, n);
      for (double s : sig) ts.push_back(static_cast<int64_t>(sigma_to_t(s, log_sigmas)));
    }
    last = sigma_min_last ? sig.back() : 0.0;
  } else if (config_.use_flow_sigmas) {
    if (custom) {
      sig = options.sigmas;
    } else {
      sig = np_linspace(1, 1.0 / static_cast<double>(tn), n + 1);
      sig.pop_back();
    }
    if (config_.use_dynamic_shifting) {
      const double m =
          config_.time_shift_type == "exponential" ? std::exp(*options.mu) : *options.mu;
      for (double& s : sig) s = m / (m + (1 / s - 1));
    } else {
      const double f = config_.flow_shift;
      for (double& s : sig) s = f * s / (1 + mul_round(f - 1, s));
    }
    if (config_.shift_terminal != 0.0) {
      const double scale = (1 - sig.back()) / (1 - config_.shift_terminal);
      for (double& s : sig) s = 1 - (1 - s) / scale;
    }
    // Keeps the first sigma below 1 so that its lambda stays finite.
    if (std::fabs(sig[0] - 1) < 1e-6) sig[0] -= 1e-6;
    ts.clear();
    for (double s : sig) ts.push_back(static_cast<int64_t>(s * static_cast<double>(tn)));
    last = sigma_min_last ? sig.back() : 0.0;
  } else {
    for (int64_t t : ts) {
      PARADIT_CHECK(t >= 0 && t < tn, who, ": timestep ", t, " is outside [0, ", tn, ")");
      sig.push_back(train[t]);
    }
    last = sigma_min_last ? std::sqrt((1.0f - alphas_cumprod_[0]) / alphas_cumprod_[0]) : 0.0f;
  }
  sigmas_f32_.clear();
  for (double s : sig) sigmas_f32_.push_back(static_cast<float>(s));
  sigmas_f32_.push_back(static_cast<float>(last));
  sigmas_.assign(sigmas_f32_.begin(), sigmas_f32_.end());
  timesteps_.assign(ts.begin(), ts.end());

  model_outputs_.assign(config_.solver_order, core::Tensor());
  last_sample_ = core::Tensor();
  lower_order_nums_ = 0;
  this_order_ = 1;
  next_index_ = -1;
}

UniPCMultistepScheduler::AlphaSigma UniPCMultistepScheduler::alpha_sigma(float sigma) const {
  if (config_.use_flow_sigmas) return {1.0f - sigma, sigma};
  const float alpha = 1.0f / std::sqrt(mul_round(sigma, sigma) + 1.0f);
  return {alpha, sigma * alpha};
}

float UniPCMultistepScheduler::lambda_of(size_t index) const {
  AlphaSigma a = alpha_sigma(sigmas_f32_[index]);
  return std::log(a.alpha) - std::log(a.sigma);
}

core::Tensor UniPCMultistepScheduler::convert_model_output(const core::Tensor& m,
                                                           const core::Tensor& x,
                                                           size_t index) const {
  const float sigma = sigmas_f32_[index];
  const AlphaSigma a = alpha_sigma(sigma);
  const int64_t n = x.numel();
  const float* ms = m.data<float>();
  const float* xs = x.data<float>();
  core::Tensor out = core::Tensor::empty(x.shape());  // x0 (predict_x0) or epsilon
  float* o = out.data<float>();
  if (config_.predict_x0) {
    for (int64_t i = 0; i < n; ++i) {
      switch (config_.prediction_type) {
        case Prediction::kEpsilon:
          o[i] = (xs[i] - a.sigma * ms[i]) / a.alpha;
          break;
        case Prediction::kSample:
          o[i] = ms[i];
          break;
        case Prediction::kVPrediction:
          o[i] = a.alpha * xs[i] - a.sigma * ms[i];
          break;
        case Prediction::kFlow:
          o[i] = xs[i] - sigma * ms[i];
          break;
      }
    }
    if (config_.clipping.thresholding) config_.clipping.apply(out);
    return out;
  }
  for (int64_t i = 0; i < n; ++i) {
    switch (config_.prediction_type) {
      case Prediction::kEpsilon:
        o[i] = ms[i];
        break;
      case Prediction::kSample:
        o[i] = (xs[i] - a.alpha * ms[i]) / a.sigma;
        break;
      case Prediction::kVPrediction:
        o[i] = a.alpha * ms[i] + a.sigma * xs[i];
        break;
      case Prediction::kFlow:
        fail(class_name(), ": flow_prediction needs predict_x0");
    }
  }
  return out;
}

namespace {

// The UniPC coefficients for step size h and ratios rks (the trailing 1 included): the matrix R
// of powers rks^(i-1), the vector b, h·φ1(h) and B(h); float32 as diffusers' 0-dim tensors.
struct UniCoefficients {
  std::vector<std::vector<float>> r;  // order × order
  std::vector<float> b;
  float h_phi_1 = 0, b_h = 0;
};

UniCoefficients uni_coefficients(float h, const std::vector<float>& rks, int64_t order,
                                 bool predict_x0, bool bh1) {
  UniCoefficients c;
  const float hh = predict_x0 ? -h : h;
  c.h_phi_1 = std::expm1(hh);
  float h_phi_k = c.h_phi_1 / hh - 1.0f;
  int64_t factorial = 1;
  c.b_h = bh1 ? hh : std::expm1(hh);
  for (int64_t i = 1; i <= order; ++i) {
    std::vector<float> row;
    for (float rk : rks) {
      float p = 1.0f;
      for (int64_t e = 0; e < i - 1; ++e) p *= rk;
      row.push_back(p);
    }
    c.r.push_back(row);
    c.b.push_back(h_phi_k * static_cast<float>(factorial) / c.b_h);
    factorial *= i + 1;
    h_phi_k = h_phi_k / hh - static_cast<float>(1.0 / static_cast<double>(factorial));
  }
  return c;
}

// Solves the k×k leading block of a·x = rhs by Gaussian elimination with partial pivoting in
// float32 (torch.linalg.solve's LU).
std::vector<float> solve(std::vector<std::vector<float>> a, std::vector<float> rhs, size_t k) {
  for (size_t col = 0; col < k; ++col) {
    size_t piv = col;
    for (size_t r = col + 1; r < k; ++r) {
      if (std::fabs(a[r][col]) > std::fabs(a[piv][col])) piv = r;
    }
    std::swap(a[col], a[piv]);
    std::swap(rhs[col], rhs[piv]);
    PARADIT_CHECK(a[col][col] != 0.0f, "UniPCMultistepScheduler: singular coefficient matrix");
    for (size_t r = col + 1; r < k; ++r) {
      const float f = a[r][col] / a[col][col];
      for (size_t c = col; c < k; ++c) a[r][c] -= f * a[col][c];
      rhs[r] -= f * rhs[col];
    }
  }
  std::vector<float> x(k);
  for (size_t r = k; r-- > 0;) {
    float s = rhs[r];
    for (size_t c = r + 1; c < k; ++c) s -= a[r][c] * x[c];
    x[r] = s / a[r][r];
  }
  return x;
}

}  // namespace

core::Tensor UniPCMultistepScheduler::predictor(const core::Tensor& x, size_t i,
                                                int64_t order) const {
  const AlphaSigma t = alpha_sigma(sigmas_f32_[i + 1]);
  const AlphaSigma s0 = alpha_sigma(sigmas_f32_[i]);
  const float lambda_t = std::log(t.alpha) - std::log(t.sigma);
  const float lambda_s0 = std::log(s0.alpha) - std::log(s0.sigma);
  const float h = lambda_t - lambda_s0;
  const size_t k_last = model_outputs_.size() - 1;
  const core::Tensor& m0 = model_outputs_[k_last];
  const int64_t n = x.numel();
  const float* m0d = m0.data<float>();

  // D1_k = (m_k − m0)/r_k for the k earlier outputs.
  std::vector<float> rks;
  std::vector<core::Tensor> d1s;
  for (int64_t k = 1; k < order; ++k) {
    const float rk = (lambda_of(i - k) - lambda_s0) / h;
    rks.push_back(rk);
    const float* mk = model_outputs_[k_last - k].data<float>();
    core::Tensor d = core::Tensor::empty(x.shape());  // (same as sample)
    float* dd = d.data<float>();
    for (int64_t j = 0; j < n; ++j) dd[j] = (mk[j] - m0d[j]) / rk;
    d1s.push_back(d);
  }
  rks.push_back(1.0f);
  const UniCoefficients c =
      uni_coefficients(h, rks, order, config_.predict_x0, config_.solver_type == "bh1");
  std::vector<float> rhos;
  if (order == 2) {
    rhos = {0.5f};
  } else if (order > 2) {
    rhos = solve(c.r, c.b, static_cast<size_t>(order - 1));
  }

  const float* xd = x.data<float>();
  const float c_x = config_.predict_x0 ? t.sigma / s0.sigma : t.alpha / s0.alpha;
  const float c_m0 = (config_.predict_x0 ? t.alpha : t.sigma) * c.h_phi_1;
  const float c_res = (config_.predict_x0 ? t.alpha : t.sigma) * c.b_h;
  core::Tensor out = core::Tensor::empty(x.shape());  // (same as sample)
  float* o = out.data<float>();
  for (int64_t j = 0; j < n; ++j) o[j] = c_x * xd[j] - c_m0 * m0d[j];
  if (!d1s.empty()) {
    for (int64_t j = 0; j < n; ++j) {
      float res = rhos[0] * d1s[0].data<float>()[j];
      for (size_t k = 1; k < d1s.size(); ++k) res = res + rhos[k] * d1s[k].data<float>()[j];
      o[j] = o[j] - c_res * res;
    }
  }
  return out;
}

core::Tensor UniPCMultistepScheduler::corrector(const core::Tensor& model_t,
                                                const core::Tensor& last_sample, size_t i,
                                                int64_t order) const {
  const AlphaSigma t = alpha_sigma(sigmas_f32_[i]);
  const AlphaSigma s0 = alpha_sigma(sigmas_f32_[i - 1]);
  const float lambda_t = std::log(t.alpha) - std::log(t.sigma);
  const float lambda_s0 = std::log(s0.alpha) - std::log(s0.sigma);
  const float h = lambda_t - lambda_s0;
  // model_outputs_ still ends with the output at sigmas[i-1]: model_t is not in it yet.
  const size_t k_last = model_outputs_.size() - 1;
  const core::Tensor& m0 = model_outputs_[k_last];
  const int64_t n = last_sample.numel();
  const float* m0d = m0.data<float>();

  std::vector<float> rks;
  std::vector<core::Tensor> d1s;
  for (int64_t k = 1; k < order; ++k) {
    const float rk = (lambda_of(i - (k + 1)) - lambda_s0) / h;
    rks.push_back(rk);
    const float* mk = model_outputs_[k_last - k].data<float>();
    core::Tensor d = core::Tensor::empty(last_sample.shape());  // (same as sample)
    float* dd = d.data<float>();
    for (int64_t j = 0; j < n; ++j) dd[j] = (mk[j] - m0d[j]) / rk;
    d1s.push_back(d);
  }
  rks.push_back(1.0f);
  const UniCoefficients c =
      uni_coefficients(h, rks, order, config_.predict_x0, config_.solver_type == "bh1");
  std::vector<float> rhos =
      order == 1 ? std::vector<float>{0.5f} : solve(c.r, c.b, static_cast<size_t>(order));

  const float* xd = last_sample.data<float>();
  const float* mt = model_t.data<float>();
  const float c_x = config_.predict_x0 ? t.sigma / s0.sigma : t.alpha / s0.alpha;
  const float c_m0 = (config_.predict_x0 ? t.alpha : t.sigma) * c.h_phi_1;
  const float c_res = (config_.predict_x0 ? t.alpha : t.sigma) * c.b_h;
  const float rho_t = rhos.back();
  core::Tensor out = core::Tensor::empty(last_sample.shape());  // (same as sample)
  float* o = out.data<float>();
  for (int64_t j = 0; j < n; ++j) {
    const float base = c_x * xd[j] - c_m0 * m0d[j];
    float corr = rho_t * (mt[j] - m0d[j]);
    if (!d1s.empty()) {
      float res = rhos[0] * d1s[0].data<float>()[j];
      for (size_t k = 1; k < d1s.size(); ++k) res = res + rhos[k] * d1s[k].data<float>()[j];
      corr = res + corr;
    }
    o[j] = base - c_res * corr;
  }
  return out;
}

core::Tensor UniPCMultistepScheduler::step(const core::Tensor& model_output, size_t step_index,
                                           const core::Tensor& sample, const core::Tensor&) {
  const std::string_view who = class_name();
  PARADIT_CHECK(!timesteps_.empty(), who, ".step: call set_timesteps first");
  PARADIT_CHECK(step_index < timesteps_.size(), who, ".step: step index ", step_index,
                " is out of range for ", timesteps_.size(), " steps");
  PARADIT_CHECK(next_index_ < 0 || static_cast<int64_t>(step_index) == next_index_, who,
                ".step: steps must follow one another (the multistep history expects step ",
                next_index_, ", got ", step_index, "); call set_timesteps to start over");
  core::Tensor x = step_input(sample, "sample", {}, who);
  core::Tensor m = step_input(model_output, "model_output", x.shape(), who);

  const int64_t i = static_cast<int64_t>(step_index);
  const bool corrector_disabled =
      std::find(config_.disable_corrector.begin(), config_.disable_corrector.end(), i - 1) !=
      config_.disable_corrector.end();
  const bool use_corrector = i > 0 && !corrector_disabled && last_sample_.defined();

  core::Tensor converted = convert_model_output(m, x, step_index);
  if (use_corrector) x = corrector(converted, last_sample_, step_index, this_order_);

  for (size_t k = 0; k + 1 < model_outputs_.size(); ++k) model_outputs_[k] = model_outputs_[k + 1];
  model_outputs_.back() = converted;

  const int64_t n = static_cast<int64_t>(timesteps_.size());
  int64_t order =
      config_.lower_order_final ? std::min(config_.solver_order, n - i) : config_.solver_order;
  this_order_ = std::min(order, lower_order_nums_ + 1);  // warm-up of the multistep history
  last_sample_ = x;
  core::Tensor prev = predictor(x, step_index, this_order_);
  if (lower_order_nums_ < config_.solver_order) ++lower_order_nums_;
  next_index_ = i + 1;
  return prev;
}

}  // namespace paradit::schedulers
