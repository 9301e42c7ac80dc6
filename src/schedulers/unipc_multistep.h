#pragma once
// UniPCMultistepScheduler (Wan 2.1/2.2 with flow sigmas; also DDPM-schedule models): a UniP
// predictor of order ≤ solver_order plus a UniC corrector that refines each new sample with
// the model output at it, history carried between calls.

#include <string>

#include "schedulers/multistep.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"

namespace paradit::schedulers {

struct UniPCConfig {
  BetaSchedule betas;
  int64_t solver_order = 2;
  Prediction prediction_type = Prediction::kEpsilon;
  SampleClipping clipping;  // thresholding only
  bool predict_x0 = true;
  std::string solver_type = "bh2";  // bh1 | bh2 (midpoint/heun/logrho read as bh2)
  bool lower_order_final = true;
  std::vector<int64_t> disable_corrector;
  bool use_karras_sigmas = false;
  bool use_exponential_sigmas = false;
  bool use_flow_sigmas = false;
  double flow_shift = 1.0;
  std::string timestep_spacing = "linspace";
  int64_t steps_offset = 0;
  std::string final_sigmas_type = "zero";  // zero | sigma_min
  bool use_dynamic_shifting = false;
  std::string time_shift_type = "exponential";  // exponential | linear
  double sigma_min = 0.0;                       // 0 = none (Karras/exponential bounds)
  double sigma_max = 0.0;
  double shift_terminal = 0.0;  // 0 = none

  static UniPCConfig from_config(const SchedulerConfig& c);
};

class UniPCMultistepScheduler : public Scheduler {
 public:
  explicit UniPCMultistepScheduler(const UniPCConfig& config);

  std::string_view class_name() const override { return "UniPCMultistepScheduler"; }
  // options.sigmas: explicit flow sigmas (use_flow_sigmas only); options.mu: dynamic shifting.
  void set_timesteps(int num_inference_steps, const TimestepOptions& options = {}) override;
  core::Tensor step(const core::Tensor& model_output, size_t step_index, const core::Tensor& sample,
                    const core::Tensor& noise = {}) override;
  core::Tensor predict_original(const core::Tensor& model_output, size_t step_index,
                                const core::Tensor& sample) const override;

  const std::vector<float>& alphas_cumprod() const { return alphas_cumprod_; }
  const UniPCConfig& config() const { return config_; }

 private:
  // UniP: the sample at sigmas[i+1] from x at sigmas[i]. UniC: x_t at sigmas[i] refined with
  // its own converted output `model_t`, from last_sample at sigmas[i-1].
  core::Tensor predictor(const core::Tensor& x, size_t i, int64_t order) const;
  core::Tensor corrector(const core::Tensor& model_t, const core::Tensor& last_sample, size_t i,
                         int64_t order) const;

  UniPCConfig config_;
  std::vector<float> alphas_cumprod_;
  std::vector<float> sigmas_f32_;  // N+1
  OutputConversion conversion_;
  MultistepHistory history_;
  core::Tensor last_sample_;
  int64_t this_order_ = 1;
};

}  // namespace paradit::schedulers
