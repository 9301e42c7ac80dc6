#pragma once
// DDPMScheduler (DiT's training schedule): ancestral sampling. The step's Gaussian noise is an
// argument, so runs are reproducible and testable against recorded noise.

#include <string>

#include "schedulers/ddim.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"

namespace paradit::schedulers {

struct DDPMConfig {
  BetaSchedule betas;
  SampleClipping clipping;
  // fixed_small | fixed_small_log | fixed_large | learned | learned_range
  std::string variance_type = "fixed_small";
  Prediction prediction_type = Prediction::kEpsilon;
  std::string timestep_spacing = "leading";
  int64_t steps_offset = 0;

  static DDPMConfig from_config(const SchedulerConfig& c);
};

class DDPMScheduler : public Scheduler {
 public:
  explicit DDPMScheduler(const DDPMConfig& config);

  std::string_view class_name() const override { return "DDPMScheduler"; }
  // options.timesteps: custom descending integer timesteps (num_inference_steps then 0).
  void set_timesteps(int num_inference_steps, const TimestepOptions& options = {}) override;
  // Noise is drawn for every step but the one at t = 0.
  bool needs_noise(size_t step_index) const override;
  // model_output: (B, C, ...) like the sample, or (B, 2C, ...) with the learned variance in the
  // second half when variance_type is learned / learned_range (the DiT pipeline instead drops
  // that half itself before calling step).
  core::Tensor step(const core::Tensor& model_output, size_t step_index, const core::Tensor& sample,
                    const core::Tensor& noise = {}) override;
  core::Tensor predict_original(const core::Tensor& model_output, size_t step_index,
                                const core::Tensor& sample) const override;

  const std::vector<float>& alphas_cumprod() const { return alphas_cumprod_; }
  const DDPMConfig& config() const { return config_; }

 private:
  DDPMConfig config_;
  std::vector<float> alphas_cumprod_;
};

}  // namespace paradit::schedulers
