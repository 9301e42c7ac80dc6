#pragma once
// Building blocks shared by the schedulers: diffusers' beta schedules reproduced with torch's
// float32 arithmetic, numpy's linspace/arange/round, a tolerant config reader, and the few
// float32 tensor loops the step updates need.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace paradit::schedulers {

// a·b rounded on its own. The compiler may fuse a product into the add that follows (FMA);
// numpy and torch round every operation, and the schedule tables must match theirs exactly.
template <typename T>
inline T mul_round(T a, T b) {
  volatile T p = a * b;
  return p;
}

// ---------------------------------------------------------------- config
// Reads a JSON file as Python's json module writes it: the non-JSON tokens Infinity, -Infinity
// and NaN (diffusers writes "lambda_min_clipped": -Infinity) become the strings "Infinity",
// "-Infinity" and "NaN". Error "<path>: ..." when missing or malformed.
nlohmann::json read_json_lenient(const std::filesystem::path& path);

// Typed access to a scheduler_config.json with diffusers' defaults; errors name the file and key.
class SchedulerConfig {
 public:
  SchedulerConfig(nlohmann::json json, std::string where);
  // Parses the file, accepting Python's non-JSON tokens Infinity, -Infinity and NaN.
  static SchedulerConfig load(const std::filesystem::path& path);

  bool has(const std::string& key) const;  // present and not null
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<double> get_double_list(const std::string& key) const;  // absent/null → {}
  std::vector<int64_t> get_int_list(const std::string& key) const;    // absent/null → {}
  std::string class_name() const { return get_string("_class_name", ""); }
  const std::string& where() const { return where_; }

  // Error "<file>: <key> = <value> is not supported by paradit's <Class> (<why>)".
  [[noreturn]] void unsupported(const std::string& key, const std::string& why) const;
  // Error unless the string key is one of `allowed`.
  std::string get_choice(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& allowed) const;

 private:
  nlohmann::json json_;
  std::string where_;
};

// ---------------------------------------------------------------- beta schedules
struct BetaSchedule {
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";  // linear | scaled_linear | squaredcos_cap_v2 | ...
  std::vector<double> trained_betas;     // non-empty overrides beta_schedule
  bool rescale_betas_zero_snr = false;

  // Reads the fields above from a config; `allowed` lists the beta_schedule values the class
  // accepts.
  static BetaSchedule from_config(const SchedulerConfig& c,
                                  const std::vector<std::string>& allowed);
};

// torch.linspace(start, end, steps, dtype=float32) on the CPU, bit for bit (torch converts the
// ends to float, steps in float, and fills 8-wide vectors from a per-vector base).
std::vector<float> torch_linspace_f32(double start, double end, int64_t steps);

// The betas of a schedule as float32 (diffusers' `self.betas`), rescaled to zero terminal SNR
// when asked.
std::vector<float> make_betas(const BetaSchedule& s);

// torch.cumprod(1 - betas) in float32 (torch accumulates in double on the CPU).
std::vector<float> alphas_cumprod_from_betas(const std::vector<float>& betas);

// ---------------------------------------------------------------- numpy helpers
// numpy.round: half to even.
double np_round(double x);
// numpy.arange(start, stop, step) in float64.
std::vector<double> np_arange(double start, double stop, double step);
// numpy.interp(x, arange(len(fp)), fp) for x inside [0, len-1].
double np_interp_index(double x, const std::vector<double>& fp);

// Descending integer timesteps as diffusers' "linspace" / "leading" / "trailing" spacings give
// them. `extra_one`: the DPM/UniPC variant that spaces num+1 points and drops the last.
std::vector<int64_t> spaced_timesteps(const std::string& spacing, int64_t num_train_timesteps,
                                      int64_t num_inference_steps, int64_t steps_offset,
                                      bool extra_one, int64_t last_timestep,
                                      const std::string& where);

// ---------------------------------------------------------------- sigma schedule conversions
// Karras et al. (rho = 7) between in_sigmas' last and first entries (or the given bounds).
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int64_t n);
// exp(linspace(log(sigma_max), log(sigma_min), n)).
std::vector<double> exponential_sigmas(double sigma_min, double sigma_max, int64_t n);
// diffusers' _sigma_to_t: the fractional training timestep of `sigma` on log_sigmas
// (float32 table of log training sigmas).
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas);

// ---------------------------------------------------------------- model output kinds
// What the model predicts: "epsilon" | "sample" | "v_prediction" | "flow_prediction".
enum class Prediction { kEpsilon, kSample, kVPrediction, kFlow };
// Reads prediction_type (default epsilon); flow_prediction only where `allow_flow`.
Prediction parse_prediction(const SchedulerConfig& c, bool allow_flow);

// The x0 post-processing of DDIM/DDPM (clipping or dynamic thresholding) and of DPM/UniPC
// (thresholding only: clip_sample false there).
struct SampleClipping {
  bool clip_sample = true;
  double clip_sample_range = 1.0;
  bool thresholding = false;
  double dynamic_thresholding_ratio = 0.995;
  double sample_max_value = 1.0;
  static SampleClipping from_config(const SchedulerConfig& c, bool clip_default);
  void apply(core::Tensor& x0) const;  // in place, contiguous F32
};

// ---------------------------------------------------------------- tensors
// Checks an F32 tensor argument of step() and returns it contiguous.
core::Tensor step_input(const core::Tensor& t, const char* what, const core::Shape& shape,
                        std::string_view scheduler);

// diffusers' _threshold_sample (dynamic thresholding) on x: (B, ...) F32 contiguous, in place.
void threshold_sample(core::Tensor& x, double ratio, double max_value);

}  // namespace paradit::schedulers
