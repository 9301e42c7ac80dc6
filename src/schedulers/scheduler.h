#pragma once
// Noise schedulers matched to diffusers' numerics: the timestep/sigma tables of set_timesteps and
// the update of step(). diffusers builds its tables in numpy float64 and casts them to float32
// torch tensors, then steps with float32 tensor arithmetic; the schedulers here reproduce those
// casts and the order of the float32 operations, so trajectories agree to ~1e-6 relative.
//
// Use (as the diffusers pipelines do):
//   auto s = load_scheduler(dir / "scheduler_config.json");
//   s->set_timesteps(n, options);
//   for (size_t i = 0; i < s->timesteps().size(); ++i) {
//     model_out = transformer(s->scale_model_input(x, i), s->timesteps()[i]);
//     x = s->step(model_out, i, x);          // noise only for stochastic steps (DDPM)
//   }

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace paradit::schedulers {

// Arguments of set_timesteps beyond the step count, as the pipelines pass them.
struct TimestepOptions {
  // Resolution-dependent shift (Flux: calculate_shift(image_seq_len)); required when the config
  // has use_dynamic_shifting.
  std::optional<double> mu;
  // Explicit sigmas, one per step (Flux passes linspace(1, 1/N, N)); empty = the scheduler's own.
  // Flow-match and flow-sigma UniPC only.
  std::vector<double> sigmas;
  // Explicit timesteps, one per step (descending); empty = the scheduler's own. Flow-match, DPM
  // and DDPM only.
  std::vector<double> timesteps;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // The diffusers class name ("FlowMatchEulerDiscreteScheduler", ...).
  virtual std::string_view class_name() const = 0;

  // Builds the tables for `num_inference_steps` steps and clears any multistep history.
  // num_inference_steps may be 0 when options.sigmas / options.timesteps give the count.
  virtual void set_timesteps(int num_inference_steps, const TimestepOptions& options = {}) = 0;

  // The timesteps the model is called with, one per step, as diffusers' `scheduler.timesteps`
  // holds them (float32 values for flow-match, integers for DDIM/DDPM/DPM/UniPC).
  const std::vector<double>& timesteps() const { return timesteps_; }
  // The sigmas, N+1 entries (the last is the terminal sigma), float32 values; empty for DDIM and
  // DDPM, which have none.
  const std::vector<double>& sigmas() const { return sigmas_; }
  int num_inference_steps() const { return static_cast<int>(timesteps_.size()); }
  // Standard deviation of the initial noise (1 for every scheduler here).
  virtual double init_noise_sigma() const { return 1.0; }

  // The model input at step `step_index` (identity for every scheduler here).
  virtual core::Tensor scale_model_input(const core::Tensor& sample, size_t step_index) const {
    return sample;
  }

  // Whether step(step_index) needs `noise` (a standard-normal tensor shaped like the sample).
  virtual bool needs_noise(size_t step_index) const { return false; }

  // One denoising step from timesteps()[step_index] to the next: returns the new sample (F32,
  // sample's shape). model_output, sample: F32 of the same shape. Multistep schedulers keep
  // history: after set_timesteps the first call may start at any index (img2img), later calls
  // must follow one by one. `noise` is required when needs_noise(step_index), ignored otherwise.
  virtual core::Tensor step(const core::Tensor& model_output, size_t step_index,
                            const core::Tensor& sample, const core::Tensor& noise = {}) = 0;

  // The clean sample x0 that `model_output` at step `step_index` predicts for `sample` (diffusers'
  // pred_original_sample, the data prediction), leaving the scheduler's state unchanged: what
  // streaming previews decode. F32 in sample's shape; undefined where a scheduler has none.
  virtual core::Tensor predict_original(const core::Tensor& model_output, size_t step_index,
                                        const core::Tensor& sample) const {
    return {};
  }

 protected:
  std::vector<double> timesteps_;
  std::vector<double> sigmas_;
};

// Reads a diffusers scheduler_config.json and builds the scheduler its `_class_name` names,
// with diffusers' defaults for absent keys. Error naming the file and key for a bad or
// unsupported value. Python's `Infinity`/`-Infinity`/`NaN` tokens are accepted.
std::unique_ptr<Scheduler> load_scheduler(const std::filesystem::path& scheduler_config_json);

// The Flux/SD3 pipelines' `calculate_shift`: mu linear in the image sequence length, from
// base_shift at base_seq_len to max_shift at max_seq_len.
double calculate_shift(int64_t image_seq_len, int64_t base_seq_len = 256,
                       int64_t max_seq_len = 4096, double base_shift = 0.5,
                       double max_shift = 1.15);

// numpy.linspace(start, stop, num) in float64, element for element (the last equals stop).
std::vector<double> np_linspace(double start, double stop, int64_t num);

}  // namespace paradit::schedulers
