// Scheduler::predict_original (the clean sample a step's model output implies, which the server's
// streaming previews decode) against the forward process written out independently: a sample
// x_t made from a known x0 and noise ε at the step's noise level, and the model output an exact
// model would give for it (ε for epsilon prediction, ε − x0 for flow prediction), must give x0
// back.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "schedulers/ddim.h"
#include "schedulers/ddpm.h"
#include "schedulers/dpm_solver_multistep.h"
#include "schedulers/scheduler.h"
#include "schedulers/unipc_multistep.h"

namespace paradit::schedulers {
namespace {

namespace fs = std::filesystem;

const std::vector<float>* alphas_cumprod(const Scheduler& s) {
  if (auto* p = dynamic_cast<const DDIMScheduler*>(&s)) return &p->alphas_cumprod();
  if (auto* p = dynamic_cast<const DDPMScheduler*>(&s)) return &p->alphas_cumprod();
  if (auto* p = dynamic_cast<const DPMSolverMultistepScheduler*>(&s)) return &p->alphas_cumprod();
  return nullptr;
}

struct Case {
  std::string fixture;  // tests/data/scheduler/<fixture>/scheduler_config.json
  bool flow;            // flow prediction on flow sigmas; else epsilon on the DDPM schedule
};

class PredictOriginal : public ::testing::TestWithParam<Case> {};

TEST_P(PredictOriginal, RecoversTheCleanSampleOfTheForwardProcess) {
  const Case& c = GetParam();
  auto s = load_scheduler(fs::path(PARADIT_TEST_DATA) / "scheduler" / c.fixture /
                          "scheduler_config.json");
  s->set_timesteps(10);
  const core::Shape shape = {2, 4, 3, 5};
  const size_t n = 2 * 4 * 3 * 5;
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> clean(-0.9f, 0.9f);  // inside any clip_sample range
  std::normal_distribution<float> normal;
  for (size_t i = 0; i < s->timesteps().size(); ++i) {
    std::vector<float> x0(n), eps(n), xt(n), out(n);
    double alpha = 1;  // the scale of x0 in x_t: the error bound grows as 1/alpha
    if (c.flow) {
      const double sigma = s->sigmas()[i];
      alpha = 1 - sigma;
      for (size_t k = 0; k < n; ++k) {
        x0[k] = clean(gen);
        eps[k] = normal(gen);
        xt[k] = static_cast<float>((1 - sigma) * x0[k] + sigma * eps[k]);
        out[k] = eps[k] - x0[k];  // the velocity
      }
    } else {
      const std::vector<float>* ac = alphas_cumprod(*s);
      ASSERT_NE(ac, nullptr);
      const double a = (*ac)[static_cast<size_t>(s->timesteps()[i])];
      alpha = std::sqrt(a);
      for (size_t k = 0; k < n; ++k) {
        x0[k] = clean(gen);
        eps[k] = normal(gen);
        xt[k] = static_cast<float>(std::sqrt(a) * x0[k] + std::sqrt(1 - a) * eps[k]);
        out[k] = eps[k];
      }
    }
    const core::Tensor got = s->predict_original(core::Tensor::from_vector(out, shape), i,
                                                 core::Tensor::from_vector(xt, shape));
    ASSERT_TRUE(got.defined()) << c.fixture;
    ASSERT_EQ(got.shape(), shape);
    const std::vector<float> g = got.to_vector();
    double worst = 0;
    for (size_t k = 0; k < n; ++k) worst = std::max(worst, std::abs(double(g[k]) - x0[k]));
    EXPECT_LE(worst, 2e-6 / alpha) << c.fixture << " step " << i << " of 10";
  }
  // Past the schedule there is no prediction.
  EXPECT_FALSE(
      s->predict_original(core::Tensor::zeros(shape), 10, core::Tensor::zeros(shape)).defined());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PredictOriginal,
                         ::testing::Values(Case{"sd3_flow_match", true}, Case{"wan_unipc", true},
                                           Case{"pixart_sigma_dpm", false}, Case{"dit_ddim", false},
                                           Case{"dit_ddpm", false}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.fixture;
                         });

}  // namespace
}  // namespace paradit::schedulers
