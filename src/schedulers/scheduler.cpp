#include "schedulers/scheduler.h"

#include "core/error.h"
#include "schedulers/ddim.h"
#include "schedulers/ddpm.h"
#include "schedulers/dpm_solver_multistep.h"
#include "schedulers/flow_match_euler.h"
#include "schedulers/schedule_math.h"
#include "schedulers/unipc_multistep.h"

namespace paradit::schedulers {

std::unique_ptr<Scheduler> load_scheduler(const std::filesystem::path& scheduler_config_json) {
  const SchedulerConfig c = SchedulerConfig::load(scheduler_config_json);
  const std::string name = c.class_name();
  if (name == "FlowMatchEulerDiscreteScheduler") {
    return std::make_unique<FlowMatchEulerScheduler>(FlowMatchEulerConfig::from_config(c));
  }
  if (name == "DPMSolverMultistepScheduler") {
    return std::make_unique<DPMSolverMultistepScheduler>(DPMSolverConfig::from_config(c));
  }
  if (name == "DDIMScheduler") {
    return std::make_unique<DDIMScheduler>(DDIMConfig::from_config(c));
  }
  if (name == "DDPMScheduler") {
    return std::make_unique<DDPMScheduler>(DDPMConfig::from_config(c));
  }
  if (name == "UniPCMultistepScheduler") {
    return std::make_unique<UniPCMultistepScheduler>(UniPCConfig::from_config(c));
  }
  PARADIT_CHECK(!name.empty(), c.where(),
                ": no _class_name (expected a diffusers scheduler config)");
  fail(c.where(), ": _class_name \"", name,
       "\" is not supported (supported: FlowMatchEulerDiscreteScheduler, "
       "DPMSolverMultistepScheduler, DDIMScheduler, DDPMScheduler, UniPCMultistepScheduler)");
}

double calculate_shift(int64_t image_seq_len, int64_t base_seq_len, int64_t max_seq_len,
                       double base_shift, double max_shift) {
  PARADIT_CHECK(max_seq_len != base_seq_len,
                "calculate_shift: max_image_seq_len equals "
                "base_image_seq_len (",
                base_seq_len, ")");
  const double m = (max_shift - base_shift) / static_cast<double>(max_seq_len - base_seq_len);
  const double b = base_shift - mul_round(m, static_cast<double>(base_seq_len));
  return mul_round(static_cast<double>(image_seq_len), m) + b;
}

std::vector<double> np_linspace(double start, double stop, int64_t num) {
  std::vector<double> y;
  if (num <= 0) return y;
  y.resize(static_cast<size_t>(num));
  if (num == 1) {
    y[0] = start;
    return y;
  }
  // numpy: arange(num) * step + start, then the last set to stop exactly.
  const double step = (stop - start) / static_cast<double>(num - 1);
  for (int64_t i = 0; i < num; ++i) y[i] = mul_round(static_cast<double>(i), step) + start;
  y[num - 1] = stop;
  return y;
}

}  // namespace paradit::schedulers
