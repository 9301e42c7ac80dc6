#pragma once
// FlowMatchEulerDiscreteScheduler (Flux, SD3/SD3.5): sigmas from 1 toward 0, shifted statically
// (`shift`) or by resolution (`mu`, use_dynamic_shifting); step x + (σ_next − σ)·v.

#include <string>

#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"

namespace paradit::schedulers {

struct FlowMatchEulerConfig {
  int64_t num_train_timesteps = 1000;
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  double base_shift = 0.5;
  double max_shift = 1.15;
  int64_t base_image_seq_len = 256;
  int64_t max_image_seq_len = 4096;
  bool invert_sigmas = false;
  double shift_terminal = 0.0;  // 0 = none (diffusers treats a falsy value as none)
  bool use_karras_sigmas = false;
  bool use_exponential_sigmas = false;
  std::string time_shift_type = "exponential";  // exponential | linear
  bool stochastic_sampling = false;

  static FlowMatchEulerConfig from_config(const SchedulerConfig& c);
};

class FlowMatchEulerScheduler : public Scheduler {
 public:
  explicit FlowMatchEulerScheduler(const FlowMatchEulerConfig& config);

  std::string_view class_name() const override { return "FlowMatchEulerDiscreteScheduler"; }
  void set_timesteps(int num_inference_steps, const TimestepOptions& options = {}) override;
  bool needs_noise(size_t) const override { return config_.stochastic_sampling; }
  core::Tensor step(const core::Tensor& model_output, size_t step_index, const core::Tensor& sample,
                    const core::Tensor& noise = {}) override;
  core::Tensor predict_original(const core::Tensor& model_output, size_t step_index,
                                const core::Tensor& sample) const override;

  const FlowMatchEulerConfig& config() const { return config_; }
  // mu for an image of `image_seq_len` tokens from this config's base/max shift and lengths.
  double mu_for(int64_t image_seq_len) const;
  // Forward process for img2img: σ·noise + (1 − σ)·sample at timesteps()[step_index].
  core::Tensor scale_noise(const core::Tensor& sample, size_t step_index,
                           const core::Tensor& noise) const;

 private:
  FlowMatchEulerConfig config_;
  float sigma_min_ = 0, sigma_max_ = 1;  // of the training schedule, as diffusers keeps them
  std::vector<float> sigmas_f32_;        // N+1, what step() uses
};

}  // namespace paradit::schedulers
