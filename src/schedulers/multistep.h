#pragma once
// What DPMSolverMultistep and UniPCMultistep share: the (alpha, sigma) pair a sigma stands for,
// the training sigma table, the model output turned into the solver's x0 or epsilon, and the
// history of converted outputs carried from one step() call to the next.

#include <cmath>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "schedulers/schedule_math.h"

namespace paradit::schedulers {

struct AlphaSigma {
  float alpha, sigma;
};

// diffusers' _sigma_to_alpha_sigma_t: (1 − σ, σ) on flow sigmas, (1/√(σ²+1), σ·α) otherwise.
AlphaSigma alpha_sigma_of(float sigma, bool flow_sigmas);

// λ = log α − log σ, in float32 as the 0-dim tensors give it.
inline float lambda_of(AlphaSigma a) { return std::log(a.alpha) - std::log(a.sigma); }

// ᾱ of the schedule; rescale_betas_zero_snr sets the last to 2^-24 so that its sigma stays finite.
std::vector<float> multistep_alphas_cumprod(const BetaSchedule& s);

// The training sigmas √((1 − ᾱ)/ᾱ) in float32.
std::vector<float> train_sigmas(const std::vector<float>& alphas_cumprod);

// How a model output becomes what the solver integrates (diffusers' convert_model_output).
struct OutputConversion {
  Prediction prediction = Prediction::kEpsilon;
  bool flow_sigmas = false;
  bool predict_x0 = true;   // x0 (data prediction); false: epsilon
  SampleClipping clipping;  // thresholding only
  // DPM-Solver also thresholds the x0 an epsilon implies; UniPC leaves epsilon alone.
  bool threshold_epsilon = false;
  std::string_view who;        // the scheduler, for errors
  std::string_view x0_option;  // the setting that selects x0 prediction, for errors
};

// m, x: the sample's shape, F32 contiguous; sigma: the sigma of x. Returns x0 or epsilon.
core::Tensor convert_model_output(const core::Tensor& m, const core::Tensor& x, float sigma,
                                  const OutputConversion& c);

// The converted outputs of the last solver_order steps (oldest first) and the step counters.
class MultistepHistory {
 public:
  // Empties the history for a new schedule of `order` kept outputs.
  void reset(int64_t order);
  // Errors unless step_index is inside the num_steps of the schedule and follows the last step.
  void check_step(std::string_view who, size_t step_index, size_t num_steps) const;
  // Drops the oldest output and appends `converted`.
  void push(const core::Tensor& converted);
  // After the update at step_index: one more warm-up step (up to solver_order) is done.
  void finish_step(size_t step_index, int64_t solver_order);

  // The k-th most recent output (0: the newest).
  const core::Tensor& recent(size_t k) const { return outputs_[outputs_.size() - 1 - k]; }
  // Steps done so far, counted up to solver_order (diffusers' lower_order_nums).
  int64_t lower_order_nums() const { return lower_order_nums_; }

 private:
  std::vector<core::Tensor> outputs_;
  int64_t lower_order_nums_ = 0;
  int64_t next_index_ = -1;  // the step index the history expects next; -1 after reset
};

}  // namespace paradit::schedulers
