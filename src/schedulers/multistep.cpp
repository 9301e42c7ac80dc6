#include "schedulers/multistep.h"

#include "core/ops.h"
#include "core/error.h"

namespace paradit::schedulers {

AlphaSigma alpha_sigma_of(float sigma, bool flow_sigmas) {
  if (flow_sigmas) return {1.0f - sigma, sigma};
  const float alpha = 1.0f / std::sqrt(mul_round(sigma, sigma) + 1.0f);
  return {alpha, sigma * alpha};
}

std::vector<float> multistep_alphas_cumprod(const BetaSchedule& s) {
  std::vector<float> ac = alphas_cumprod_from_betas(make_betas(s));
  if (s.rescale_betas_zero_snr) ac.back() = std::ldexp(1.0f, -24);
  return ac;
}

std::vector<float> train_sigmas(const std::vector<float>& alphas_cumprod) {
  std::vector<float> out(alphas_cumprod.size());
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = std::sqrt((1.0f - alphas_cumprod[i]) / alphas_cumprod[i]);
  }
  return out;
}

core::Tensor convert_model_output(const core::Tensor& m, const core::Tensor& x, float sigma,
                                  const OutputConversion& c) {
  const AlphaSigma a = alpha_sigma_of(sigma, c.flow_sigmas);
  if (c.predict_x0) {
    core::Tensor out;  // x0 (same as sample)
    switch (c.prediction) {
      case Prediction::kEpsilon:
        out = core::lincomb({{1.0f, x}, {-a.sigma, m}}, {.div = a.alpha});  // (x − σ·ε)/α
        break;
      case Prediction::kSample:
        out = m;
        break;
      case Prediction::kVPrediction:
        out = core::lincomb({{a.alpha, x}, {-a.sigma, m}});  // α·x − σ·v
        break;
      case Prediction::kFlow:
        out = core::lincomb({{1.0f, x}, {-sigma, m}});  // x − σ·v
        break;
    }
    if (c.clipping.thresholding) c.clipping.apply(out);
    return out;
  }
  core::Tensor out;  // epsilon (same as sample)
  switch (c.prediction) {
    case Prediction::kEpsilon:
      out = m;
      break;
    case Prediction::kSample:
      out = core::lincomb({{1.0f, x}, {-a.alpha, m}}, {.div = a.sigma});  // (x − α·x0)/σ
      break;
    case Prediction::kVPrediction:
      out = core::lincomb({{a.alpha, m}, {a.sigma, x}});  // α·v + σ·x
      break;
    case Prediction::kFlow:
      fail(c.who, ": flow_prediction needs ", c.x0_option);
  }
  if (c.threshold_epsilon && c.clipping.thresholding) {
    core::Tensor x0 = core::lincomb({{1.0f, x}, {-a.sigma, out}}, {.div = a.alpha});
    c.clipping.apply(x0);
    out = core::lincomb({{1.0f, x}, {-a.alpha, x0}}, {.div = a.sigma});
  }
  return out;
}

void MultistepHistory::reset(int64_t order) {
  outputs_.assign(static_cast<size_t>(order), core::Tensor());
  lower_order_nums_ = 0;
  next_index_ = -1;
}

void MultistepHistory::check_step(std::string_view who, size_t step_index, size_t num_steps) const {
  PARADIT_CHECK(num_steps > 0, who, ".step: call set_timesteps first");
  PARADIT_CHECK(step_index < num_steps, who, ".step: step index ", step_index,
                " is out of range for ", num_steps, " steps");
  PARADIT_CHECK(next_index_ < 0 || static_cast<int64_t>(step_index) == next_index_, who,
                ".step: steps must follow one another (the multistep history expects step ",
                next_index_, ", got ", step_index, "); call set_timesteps to start over");
}

void MultistepHistory::push(const core::Tensor& converted) {
  for (size_t k = 0; k + 1 < outputs_.size(); ++k) outputs_[k] = outputs_[k + 1];
  outputs_.back() = converted;
}

void MultistepHistory::finish_step(size_t step_index, int64_t solver_order) {
  if (lower_order_nums_ < solver_order) ++lower_order_nums_;
  next_index_ = static_cast<int64_t>(step_index) + 1;
}

}  // namespace paradit::schedulers
