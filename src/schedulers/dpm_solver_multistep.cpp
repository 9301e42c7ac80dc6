#include "schedulers/dpm_solver_multistep.h"

#include <cmath>

#include "core/ops.h"
#include "core/error.h"

namespace paradit::schedulers {

DPMSolverConfig DPMSolverConfig::from_config(const SchedulerConfig& c) {
  DPMSolverConfig d;
  d.betas = BetaSchedule::from_config(c, {"linear", "scaled_linear", "squaredcos_cap_v2"});
  d.solver_order = c.get_int("solver_order", 2);
  PARADIT_CHECK(d.solver_order >= 1 && d.solver_order <= 3, c.where(),
                ": solver_order should be 1, 2 or 3, found ", d.solver_order);
  d.prediction_type = parse_prediction(c, /*allow_flow=*/true);
  d.clipping = SampleClipping::from_config(c, /*clip_default=*/false);
  d.clipping.clip_sample = false;  // DPM-Solver has no clip_sample
  d.algorithm_type =
      c.get_choice("algorithm_type", "dpmsolver++",
                   {"dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver", "deis"});
  if (d.algorithm_type == "deis") d.algorithm_type = "dpmsolver++";  // as diffusers registers it
  d.solver_type =
      c.get_choice("solver_type", "midpoint", {"midpoint", "heun", "logrho", "bh1", "bh2"});
  if (d.solver_type != "heun") d.solver_type = "midpoint";  // diffusers maps the others so
  d.lower_order_final = c.get_bool("lower_order_final", true);
  d.euler_at_final = c.get_bool("euler_at_final", false);
  d.use_karras_sigmas = c.get_bool("use_karras_sigmas", false);
  d.use_exponential_sigmas = c.get_bool("use_exponential_sigmas", false);
  if (c.get_bool("use_beta_sigmas", false)) {
    c.unsupported("use_beta_sigmas", "beta sigmas need scipy's beta quantiles");
  }
  PARADIT_CHECK(!(d.use_karras_sigmas && d.use_exponential_sigmas), c.where(),
                ": only one of use_karras_sigmas and use_exponential_sigmas can be true");
  d.use_lu_lambdas = c.get_bool("use_lu_lambdas", false);
  d.use_flow_sigmas = c.get_bool("use_flow_sigmas", false);
  d.flow_shift = c.get_double("flow_shift", 1.0);
  d.final_sigmas_type = c.get_choice("final_sigmas_type", "zero", {"zero", "sigma_min"});
  d.lambda_min_clipped =
      c.get_double("lambda_min_clipped", -std::numeric_limits<double>::infinity());
  std::string variance_type = c.get_string("variance_type", "");
  if (!variance_type.empty()) {
    c.unsupported("variance_type",
                  "the pipeline splits a learned variance off the model output "
                  "before step");
  }
  d.timestep_spacing =
      c.get_choice("timestep_spacing", "linspace", {"linspace", "leading", "trailing"});
  d.steps_offset = c.get_int("steps_offset", 0);
  d.use_dynamic_shifting = c.get_bool("use_dynamic_shifting", false);
  c.get_choice("time_shift_type", "exponential", {"exponential"});
  const bool plus_plus = d.algorithm_type == "dpmsolver++" || d.algorithm_type == "sde-dpmsolver++";
  PARADIT_CHECK(plus_plus || d.final_sigmas_type != "zero", c.where(),
                ": final_sigmas_type \"zero\" needs algorithm_type dpmsolver++ or "
                "sde-dpmsolver++, found ",
                d.algorithm_type);
  PARADIT_CHECK(plus_plus || d.prediction_type != Prediction::kFlow, c.where(),
                ": prediction_type flow_prediction needs algorithm_type dpmsolver++ or "
                "sde-dpmsolver++, found ",
                d.algorithm_type);
  PARADIT_CHECK(!(d.algorithm_type == "sde-dpmsolver" && d.solver_order == 3), c.where(),
                ": diffusers has no third-order sde-dpmsolver update");
  return d;
}

DPMSolverMultistepScheduler::DPMSolverMultistepScheduler(const DPMSolverConfig& config)
    : config_(config) {
  plus_plus_ =
      config_.algorithm_type == "dpmsolver++" || config_.algorithm_type == "sde-dpmsolver++";
  sde_ = config_.algorithm_type.rfind("sde-", 0) == 0;
  alphas_cumprod_ = multistep_alphas_cumprod(config_.betas);
  conversion_.prediction = config_.prediction_type;
  conversion_.flow_sigmas = config_.use_flow_sigmas;
  conversion_.predict_x0 = plus_plus_;
  conversion_.clipping = config_.clipping;
  conversion_.threshold_epsilon = true;
  conversion_.who = class_name();
  conversion_.x0_option = "dpmsolver++";
}

void DPMSolverMultistepScheduler::set_timesteps(int num_inference_steps,
                                                const TimestepOptions& options) {
  const std::string who = "DPMSolverMultistepScheduler.set_timesteps";
  PARADIT_CHECK(options.sigmas.empty(), who, ": explicit sigmas are not supported");
  double flow_shift = config_.flow_shift;
  if (options.mu) {
    PARADIT_CHECK(config_.use_dynamic_shifting, who,
                  ": mu given but the config does not have use_dynamic_shifting");
    flow_shift = std::exp(*options.mu);
    config_.flow_shift = flow_shift;  // diffusers writes it into the config too
  }
  const bool custom = !options.timesteps.empty();
  PARADIT_CHECK(custom != (num_inference_steps > 0), who,
                ": pass exactly one of num_inference_steps or explicit timesteps");
  PARADIT_CHECK(!custom || !(config_.use_karras_sigmas || config_.use_lu_lambdas ||
                             config_.use_exponential_sigmas),
                who, ": explicit timesteps cannot be combined with Karras/Lu/exponential sigmas");

  const int64_t tn = config_.betas.num_train_timesteps;
  std::vector<int64_t> ts;
  if (custom) {
    for (double v : options.timesteps) ts.push_back(static_cast<int64_t>(v));
  } else {
    // Clip the schedule where lambda falls below lambda_min_clipped (searchsorted on the
    // ascending flipped lambdas; -inf keeps everything).
    int64_t clipped = 0;
    for (int64_t i = 0; i < tn; ++i) {
      const float ac = alphas_cumprod_[tn - 1 - i];
      const float lam = std::log(std::sqrt(ac)) - std::log(std::sqrt(1.0f - ac));
      if (static_cast<double>(lam) < config_.lambda_min_clipped)
        clipped = i + 1;
      else
        break;
    }
    ts = spaced_timesteps(config_.timestep_spacing, tn, num_inference_steps, config_.steps_offset,
                          /*extra_one=*/true, tn - clipped, who);
  }
  const int64_t n = custom ? static_cast<int64_t>(ts.size()) : num_inference_steps;

  // Training sigmas sqrt((1 - ᾱ)/ᾱ) as float32, and their logs (numpy float32).
  const std::vector<float> train = train_sigmas(alphas_cumprod_);
  std::vector<float> log_train(tn);
  for (int64_t i = 0; i < tn; ++i) log_train[i] = std::log(train[i]);
  std::vector<double> sig;
  const bool round_t = config_.betas.beta_schedule != "squaredcos_cap_v2";
  auto timesteps_from_sigmas = [&](bool round) {
    ts.clear();
    for (double s : sig) {
      double t = sigma_to_t(s, log_train);
      ts.push_back(static_cast<int64_t>(round ? np_round(t) : t));
    }
  };
  if (config_.use_karras_sigmas) {
    sig = karras_sigmas(train.front(), train.back(), n);
    timesteps_from_sigmas(round_t);
  } else if (config_.use_lu_lambdas) {
    // diffusers ramps linearly between the first and last log training sigmas.
    const double lmin = log_train.front(), lmax = log_train.back();
    sig.clear();
    for (double r : np_linspace(0, 1, n)) sig.push_back(std::exp(lmax + mul_round(r, lmin - lmax)));
    timesteps_from_sigmas(round_t);
  } else if (config_.use_exponential_sigmas) {
    sig = exponential_sigmas(train.front(), train.back(), n);
    timesteps_from_sigmas(false);
  } else if (config_.use_flow_sigmas) {
    // 1 − linspace(1, 1/T, n+1), shifted, flipped to descending, without its trailing 0.
    std::vector<double> alphas = np_linspace(1, 1.0 / static_cast<double>(tn), n + 1);
    sig.clear();
    for (int64_t j = n; j >= 1; --j) {
      const double s = 1.0 - alphas[j];
      sig.push_back(flow_shift * s / (1 + mul_round(flow_shift - 1, s)));
    }
    ts.clear();
    for (double s : sig) ts.push_back(static_cast<int64_t>(s * static_cast<double>(tn)));
  } else {
    for (int64_t t : ts) {
      PARADIT_CHECK(t >= 0 && t < tn, who, ": timestep ", t, " is outside [0, ", tn, ")");
      sig.push_back(train[t]);
    }
  }
  const float last = config_.final_sigmas_type == "sigma_min" ? train.front() : 0.0f;
  sigmas_f32_.clear();
  for (double s : sig) sigmas_f32_.push_back(static_cast<float>(s));
  sigmas_f32_.push_back(last);
  sigmas_.assign(sigmas_f32_.begin(), sigmas_f32_.end());
  timesteps_.assign(ts.begin(), ts.end());

  history_.reset(config_.solver_order);
}

namespace {

// out = c[0]·t[0] ± c[1]·t[1] ± ..., left to right as the Python expressions evaluate (a minus
// term is the same as adding the negated coefficient, bit for bit). Undefined terms are skipped.
struct Term {
  float coef;
  core::Tensor t;
  bool minus;
};

core::Tensor combine(std::initializer_list<Term> terms) {
  std::vector<std::pair<float, core::Tensor>> signed_terms;
  for (const Term& t : terms) signed_terms.emplace_back(t.minus ? -t.coef : t.coef, t.t);
  return core::lincomb(signed_terms);
}

// c·(a − b) elementwise.
core::Tensor scaled_diff(float c, const core::Tensor& a, const core::Tensor& b) {
  return core::lincomb({{1.0f, a}, {-1.0f, b}}, {.mul = c});
}

}  // namespace

core::Tensor DPMSolverMultistepScheduler::first_order(const core::Tensor& m, const core::Tensor& x,
                                                      const core::Tensor& z, size_t i) const {
  const AlphaSigma t = alpha_sigma(sigmas_f32_[i + 1]);
  const AlphaSigma s = alpha_sigma(sigmas_f32_[i]);
  const float lambda_t = lambda_of(t);
  const float lambda_s = lambda_of(s);
  const float h = lambda_t - lambda_s;
  const std::string& algo = config_.algorithm_type;
  if (algo == "dpmsolver++") {
    return combine({{t.sigma / s.sigma, x, false}, {t.alpha * (std::exp(-h) - 1.0f), m, true}});
  }
  if (algo == "dpmsolver") {
    return combine({{t.alpha / s.alpha, x, false},
                               {t.sigma * (std::exp(h) - 1.0f), m, true}});
  }
  if (algo == "sde-dpmsolver++") {
    const float e2 = std::exp(-2.0f * h);
    return combine({{t.sigma / s.sigma * std::exp(-h), x, false},
                               {t.alpha * (1.0f - e2), m, false},
                               {t.sigma * std::sqrt(1.0f - e2), z, false}});
  }
  // sde-dpmsolver
  return combine({{t.alpha / s.alpha, x, false},
                             {2.0f * (t.sigma * (std::exp(h) - 1.0f)), m, true},
                             {t.sigma * std::sqrt(std::exp(2.0f * h) - 1.0f), z, false}});
}

core::Tensor DPMSolverMultistepScheduler::second_order(const core::Tensor& x, const core::Tensor& z,
                                                       size_t i) const {
  const AlphaSigma t = alpha_sigma(sigmas_f32_[i + 1]);
  const AlphaSigma s0 = alpha_sigma(sigmas_f32_[i]);
  const float lambda_t = lambda_of(t);
  const float lambda_s0 = lambda_of(s0);
  const float lambda_s1 = lambda_at(i - 1);
  const core::Tensor& m0 = history_.recent(0);
  const core::Tensor& m1 = history_.recent(1);
  const float h = lambda_t - lambda_s0, h0 = lambda_s0 - lambda_s1;
  const float r0 = h0 / h;
  const core::Tensor d1 = scaled_diff(1.0f / r0, m0, m1);  // D1 = (m0 − m1)/r0
  const core::Tensor& xd = x;
  const core::Tensor& d0d = m0;
  const core::Tensor& d1d = d1;
  const bool midpoint = config_.solver_type == "midpoint";
  const std::string& algo = config_.algorithm_type;
  if (algo == "dpmsolver++") {
    const float b = t.alpha * (std::exp(-h) - 1.0f);
    if (midpoint) {
      return combine(
                     {{t.sigma / s0.sigma, xd, false}, {b, d0d, true}, {0.5f * b, d1d, true}});
    }
    return combine({{t.sigma / s0.sigma, xd, false},
                               {b, d0d, true},
                               {t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f), d1d, false}});
  }
  if (algo == "dpmsolver") {
    const float b = t.sigma * (std::exp(h) - 1.0f);
    if (midpoint) {
      return combine(
                     {{t.alpha / s0.alpha, xd, false}, {b, d0d, true}, {0.5f * b, d1d, true}});
    }
    return combine({{t.alpha / s0.alpha, xd, false},
                               {b, d0d, true},
                               {t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f), d1d, true}});
  }
  if (algo == "sde-dpmsolver++") {
    const float e2 = std::exp(-2.0f * h);
    const float b = t.alpha * (1.0f - e2);
    const float c = midpoint ? 0.5f * b : t.alpha * ((1.0f - e2) / (-2.0f * h) + 1.0f);
    return combine({{t.sigma / s0.sigma * std::exp(-h), xd, false},
                               {b, d0d, false},
                               {c, d1d, false},
                               {t.sigma * std::sqrt(1.0f - e2), z, false}});
  }
  // sde-dpmsolver
  const float b = t.sigma * (std::exp(h) - 1.0f);
  const float c = midpoint ? b : 2.0f * (t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f));
  return combine({{t.alpha / s0.alpha, xd, false},
                             {2.0f * b, d0d, true},
                             {c, d1d, true},
                             {t.sigma * std::sqrt(std::exp(2.0f * h) - 1.0f), z, false}});
}

core::Tensor DPMSolverMultistepScheduler::third_order(const core::Tensor& x, const core::Tensor& z,
                                                      size_t i) const {
  const AlphaSigma t = alpha_sigma(sigmas_f32_[i + 1]);
  const AlphaSigma s0 = alpha_sigma(sigmas_f32_[i]);
  const float lambda_t = lambda_of(t);
  const float lambda_s0 = lambda_of(s0);
  const float lambda_s1 = lambda_at(i - 1);
  const float lambda_s2 = lambda_at(i - 2);
  const core::Tensor& m0 = history_.recent(0);
  const core::Tensor& m1 = history_.recent(1);
  const core::Tensor& m2 = history_.recent(2);
  const float h = lambda_t - lambda_s0, h0 = lambda_s0 - lambda_s1, h1 = lambda_s1 - lambda_s2;
  const float r0 = h0 / h, r1 = h1 / h;
  const core::Tensor d1_0 = scaled_diff(1.0f / r0, m0, m1);  // (m0 − m1)/r0
  const core::Tensor d1_1 = scaled_diff(1.0f / r1, m1, m2);  // (m1 − m2)/r1
  const float c_d1 = r0 / (r0 + r1), c_d2 = 1.0f / (r0 + r1);
  const core::Tensor diff = core::lincomb({{1.0f, d1_0}, {-1.0f, d1_1}});  // D1_0 − D1_1
  const core::Tensor d1 = core::lincomb({{1.0f, d1_0}, {c_d1, diff}});  // D1_0 + r0/(r0+r1)·diff
  const core::Tensor d2 = core::lincomb({{c_d2, diff}});                // diff/(r0+r1)
  const core::Tensor& xd = x;
  const std::string& algo = config_.algorithm_type;
  if (algo == "dpmsolver++") {
    const float e = std::exp(-h);
    return combine(
                   {{t.sigma / s0.sigma, xd, false},
                    {t.alpha * (e - 1.0f), m0, true},
                    {t.alpha * ((e - 1.0f) / h + 1.0f), d1, false},
                    {t.alpha * ((e - 1.0f + h) / (h * h) - 0.5f), d2, true}});
  }
  if (algo == "dpmsolver") {
    const float e = std::exp(h);
    return combine(
                   {{t.alpha / s0.alpha, xd, false},
                    {t.sigma * (e - 1.0f), m0, true},
                    {t.sigma * ((e - 1.0f) / h - 1.0f), d1, true},
                    {t.sigma * ((e - 1.0f - h) / (h * h) - 0.5f), d2, true}});
  }
  // sde-dpmsolver++
  const float e2 = std::exp(-2.0f * h);
  const float two_h = 2.0f * h;
  return combine(
      {{t.sigma / s0.sigma * std::exp(-h), xd, false},
       {t.alpha * (1.0f - e2), m0, false},
       {t.alpha * ((1.0f - e2) / (-2.0f * h) + 1.0f), d1, false},
       {t.alpha * ((1.0f - e2 - two_h) / (two_h * two_h) - 0.5f), d2, false},
       {t.sigma * std::sqrt(1.0f - e2), z, false}});
}

core::Tensor DPMSolverMultistepScheduler::step(const core::Tensor& model_output, size_t step_index,
                                               const core::Tensor& sample,
                                               const core::Tensor& noise) {
  const std::string_view who = class_name();
  history_.check_step(who, step_index, timesteps_.size());
  core::Tensor x = step_input(sample, "sample", {}, who);
  core::Tensor m = step_input(model_output, "model_output", x.shape(), who);
  core::Tensor z;
  if (sde_) z = step_input(noise, "noise", x.shape(), who);

  const size_t n = timesteps_.size();
  const int64_t order = config_.solver_order;
  const bool lower_order_final =
      step_index == n - 1 && (config_.euler_at_final || (config_.lower_order_final && n < 15) ||
                              config_.final_sigmas_type == "zero");
  const bool lower_order_second = step_index + 2 == n && config_.lower_order_final && n < 15;

  core::Tensor converted = convert_model_output(m, x, sigmas_f32_[step_index], conversion_);
  history_.push(converted);

  core::Tensor prev;
  if (order == 1 || history_.lower_order_nums() < 1 || lower_order_final) {
    prev = first_order(converted, x, z, step_index);
  } else if (order == 2 || history_.lower_order_nums() < 2 || lower_order_second) {
    prev = second_order(x, z, step_index);
  } else {
    prev = third_order(x, z, step_index);
  }
  history_.finish_step(step_index, order);
  return prev;
}

core::Tensor DPMSolverMultistepScheduler::predict_original(const core::Tensor& model_output,
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
