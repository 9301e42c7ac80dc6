#pragma once
// DDIMScheduler (DiT, older pipelines): deterministic for eta = 0. Tables in float32 as
// diffusers builds them (linear betas with torch's linspace, cumprod accumulated in double).

#include <string>

#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"

namespace paradit::schedulers {

struct DDIMConfig {
  BetaSchedule betas;
  SampleClipping clipping;
  bool set_alpha_to_one = true;
  int64_t steps_offset = 0;
  Prediction prediction_type = Prediction::kEpsilon;
  std::string timestep_spacing = "leading";

  static DDIMConfig from_config(const SchedulerConfig& c);
};

class DDIMScheduler : public Scheduler {
 public:
  explicit DDIMScheduler(const DDIMConfig& config);

  std::string_view class_name() const override { return "DDIMScheduler"; }
  void set_timesteps(int num_inference_steps, const TimestepOptions& options = {}) override;
  bool needs_noise(size_t) const override { return eta_ > 0; }
  core::Tensor step(const core::Tensor& model_output, size_t step_index, const core::Tensor& sample,
                    const core::Tensor& noise = {}) override;
  core::Tensor predict_original(const core::Tensor& model_output, size_t step_index,
                                const core::Tensor& sample) const override;

  // The step's eta (0 = DDIM, 1 = DDPM-like); pipelines pass it per call in diffusers.
  void set_eta(double eta) { eta_ = eta; }
  void set_use_clipped_model_output(bool v) { use_clipped_model_output_ = v; }
  const std::vector<float>& alphas_cumprod() const { return alphas_cumprod_; }
  const DDIMConfig& config() const { return config_; }

 private:
  DDIMConfig config_;
  std::vector<float> alphas_cumprod_;
  float final_alpha_cumprod_ = 1.0f;
  int64_t n_requested_ = 0;  // diffusers' num_inference_steps (sets the step to the previous t)
  double eta_ = 0.0;
  bool use_clipped_model_output_ = false;
};

}  // namespace paradit::schedulers
