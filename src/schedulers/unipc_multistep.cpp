#include "schedulers/unipc_multistep.h"

#include <algorithm>
#include <cmath>

#include "core/ops.h"
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
  alphas_cumprod_ = multistep_alphas_cumprod(config_.betas);
  conversion_.prediction = config_.prediction_type;
  conversion_.flow_sigmas = config_.use_flow_sigmas;
  conversion_.predict_x0 = config_.predict_x0;
  conversion_.clipping = config_.clipping;
  conversion_.threshold_epsilon = false;
  conversion_.who = class_name();
  conversion_.x0_option = "predict_x0";
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

  const std::vector<float> train = train_sigmas(alphas_cumprod_);
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
    last = sigma_min_last ? train.front() : 0.0f;
  }
  sigmas_f32_.clear();
  for (double s : sig) sigmas_f32_.push_back(static_cast<float>(s));
  sigmas_f32_.push_back(static_cast<float>(last));
  sigmas_.assign(sigmas_f32_.begin(), sigmas_f32_.end());
  timesteps_.assign(ts.begin(), ts.end());

  history_.reset(config_.solver_order);
  last_sample_ = core::Tensor();
  this_order_ = 1;
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

// What UniP and UniC share for the step from sigmas[s] to sigmas[s + 1] with `order` outputs of
// `history` (the newest at sigmas[s]): the D1_k = (m_k − m0)/r_k of the earlier outputs, the
// coefficients, and the factors of x, m0 and the weighted differences.
struct UniStep {
  std::vector<core::Tensor> d1s;
  UniCoefficients c;
  float c_x = 0, c_m0 = 0, c_res = 0;
};

UniStep uni_step(const std::vector<float>& sigmas, const MultistepHistory& history,
                 const UniPCConfig& config, size_t s, int64_t order, const core::Shape& shape) {
  const bool flow = config.use_flow_sigmas;
  const AlphaSigma t = alpha_sigma_of(sigmas[s + 1], flow);
  const AlphaSigma s0 = alpha_sigma_of(sigmas[s], flow);
  const float lambda_t = lambda_of(t);
  const float lambda_s0 = lambda_of(s0);
  const float h = lambda_t - lambda_s0;
  const core::Tensor& m0 = history.recent(0);
  UniStep u;
  std::vector<float> rks;
  for (int64_t k = 1; k < order; ++k) {
    const float rk = (lambda_of(alpha_sigma_of(sigmas[s - k], flow)) - lambda_s0) / h;
    rks.push_back(rk);
    u.d1s.push_back(core::lincomb({{1.0f, history.recent(k)}, {-1.0f, m0}},
                                  {.div = rk}));  // (m_k − m_0)/r_k (same as sample)
  }
  rks.push_back(1.0f);
  u.c = uni_coefficients(h, rks, order, config.predict_x0, config.solver_type == "bh1");
  u.c_x = config.predict_x0 ? t.sigma / s0.sigma : t.alpha / s0.alpha;
  u.c_m0 = (config.predict_x0 ? t.alpha : t.sigma) * u.c.h_phi_1;
  u.c_res = (config.predict_x0 ? t.alpha : t.sigma) * u.c.b_h;
  return u;
}

// Σ_k rhos[k]·d1s[k], left to right (the first d1s.size() of rhos).
core::Tensor weighted_d1s(const std::vector<float>& rhos, const std::vector<core::Tensor>& d1s) {
  std::vector<std::pair<float, core::Tensor>> terms;
  for (size_t k = 0; k < d1s.size(); ++k) terms.emplace_back(rhos[k], d1s[k]);
  return core::lincomb(terms);
}

}  // namespace

core::Tensor UniPCMultistepScheduler::predictor(const core::Tensor& x, size_t i,
                                                int64_t order) const {
  const UniStep u = uni_step(sigmas_f32_, history_, config_, i, order, x.shape());
  std::vector<float> rhos;
  if (order == 2) {
    rhos = {0.5f};
  } else if (order > 2) {
    rhos = solve(u.c.r, u.c.b, static_cast<size_t>(order - 1));
  }

  core::Tensor out = core::lincomb({{u.c_x, x}, {-u.c_m0, history_.recent(0)}});  // (as sample)
  if (!u.d1s.empty()) {
    const core::Tensor res = weighted_d1s(rhos, u.d1s);  // Σ_k ρ_k·D1_k
    out = core::lincomb({{1.0f, out}, {-u.c_res, res}});
  }
  return out;
}

core::Tensor UniPCMultistepScheduler::corrector(const core::Tensor& model_t,
                                                const core::Tensor& last_sample, size_t i,
                                                int64_t order) const {
  // The history still ends with the output at sigmas[i-1]: model_t is not in it yet.
  const UniStep u = uni_step(sigmas_f32_, history_, config_, i - 1, order, last_sample.shape());
  std::vector<float> rhos =
      order == 1 ? std::vector<float>{0.5f} : solve(u.c.r, u.c.b, static_cast<size_t>(order));

  const core::Tensor& m0 = history_.recent(0);
  const float rho_t = rhos.back();
  const core::Tensor base = core::lincomb({{u.c_x, last_sample}, {-u.c_m0, m0}});
  core::Tensor corr = core::lincomb({{1.0f, model_t}, {-1.0f, m0}}, {.mul = rho_t});  // ρ_t·D1_t
  if (!u.d1s.empty()) {
    corr = core::lincomb({{1.0f, weighted_d1s(rhos, u.d1s)}, {1.0f, corr}});  // res + corr
  }
  return core::lincomb({{1.0f, base}, {-u.c_res, corr}});  // (same as sample)
}

core::Tensor UniPCMultistepScheduler::step(const core::Tensor& model_output, size_t step_index,
                                           const core::Tensor& sample, const core::Tensor&) {
  const std::string_view who = class_name();
  history_.check_step(who, step_index, timesteps_.size());
  core::Tensor x = step_input(sample, "sample", {}, who);
  core::Tensor m = step_input(model_output, "model_output", x.shape(), who);

  const int64_t i = static_cast<int64_t>(step_index);
  const bool corrector_disabled =
      std::find(config_.disable_corrector.begin(), config_.disable_corrector.end(), i - 1) !=
      config_.disable_corrector.end();
  const bool use_corrector = i > 0 && !corrector_disabled && last_sample_.defined();

  core::Tensor converted = convert_model_output(m, x, sigmas_f32_[step_index], conversion_);
  if (use_corrector) x = corrector(converted, last_sample_, step_index, this_order_);

  history_.push(converted);

  const int64_t n = static_cast<int64_t>(timesteps_.size());
  int64_t order =
      config_.lower_order_final ? std::min(config_.solver_order, n - i) : config_.solver_order;
  this_order_ =
      std::min(order, history_.lower_order_nums() + 1);  // warm-up of the multistep history
  last_sample_ = x;
  core::Tensor prev = predictor(x, step_index, this_order_);
  history_.finish_step(step_index, config_.solver_order);
  return prev;
}

core::Tensor UniPCMultistepScheduler::predict_original(const core::Tensor& model_output,
                                                       size_t step_index,
                                                       const core::Tensor& sample) const {
  if (step_index >= timesteps_.size()) return {};
  const std::string_view who = class_name();
  const core::Tensor x = step_input(sample, "sample", {}, who);
  const core::Tensor m = step_input(model_output, "model_output", x.shape(), who);
  OutputConversion x0 = conversion_;  // the data prediction, whichever the solver integrates
  x0.predict_x0 = true;
  x0.threshold_epsilon = false;
  return convert_model_output(m, x, sigmas_f32_[step_index], x0);
}

}  // namespace paradit::schedulers
