// Every scheduler against diffusers' recorded runs (tests/data/scheduler, copied from the shared
// fixtures): the timestep and sigma tables of set_timesteps for N in {1, 4, 20, 28} (Wan: 1, 3,
// 4, 20), the training alphas_cumprod, and the whole trajectory x ← step(model_output.i, i, x)
// compared with sample.i at every step.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "schedulers/ddim.h"
#include "schedulers/ddpm.h"
#include "schedulers/dpm_solver_multistep.h"
#include "schedulers/flow_match_euler.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"
#include "schedulers/unipc_multistep.h"

namespace paradit::schedulers {
namespace {

namespace fs = std::filesystem;

fs::path case_dir(const std::string& name) {
  return fs::path(PARADIT_TEST_DATA) / "scheduler" / name;
}

// ‖a − b‖₂ / ‖b‖₂ in double.
double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    num += d * d;
    den += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Elementwise |a − b| ≤ tol·max(|b|, 1e-30) (exact when tol is 0).
void expect_values(const std::vector<double>& got, const std::vector<float>& want, double tol,
                   const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    const double w = want[i];
    if (tol == 0) {
      EXPECT_EQ(got[i], w) << what << "[" << i << "]";
    } else {
      EXPECT_LE(std::fabs(got[i] - w), tol * std::max(std::fabs(w), 1e-30))
          << what << "[" << i << "]: got " << got[i] << ", want " << w;
    }
  }
}

const std::vector<float>* alphas_cumprod_of(const Scheduler& s) {
  if (auto* p = dynamic_cast<const DDIMScheduler*>(&s)) return &p->alphas_cumprod();
  if (auto* p = dynamic_cast<const DDPMScheduler*>(&s)) return &p->alphas_cumprod();
  if (auto* p = dynamic_cast<const DPMSolverMultistepScheduler*>(&s)) return &p->alphas_cumprod();
  if (auto* p = dynamic_cast<const UniPCMultistepScheduler*>(&s)) return &p->alphas_cumprod();
  return nullptr;
}

struct FixtureCase {
  std::string name;
  std::string class_name;
  bool integer_timesteps;
};

void PrintTo(const FixtureCase& c, std::ostream* os) { *os << c.name; }

class SchedulerFixture : public ::testing::TestWithParam<FixtureCase> {};

TEST_P(SchedulerFixture, TablesAndTrajectoriesMatchDiffusers) {
  const FixtureCase& fc = GetParam();
  const fs::path dir = case_dir(fc.name);
  const nlohmann::json meta = read_json_lenient(dir / "meta.json");
  ASSERT_TRUE(meta.contains("runs")) << dir;
  int runs = 0;
  for (const auto& [run_name, run] : meta.at("runs").items()) {
    SCOPED_TRACE(fc.name + " " + run_name);
    ++runs;
    // A fresh scheduler per run, as the fixture generator did.
    auto scheduler = load_scheduler(dir / "scheduler_config.json");
    ASSERT_EQ(scheduler->class_name(), fc.class_name);
    const int n = run.at("num_inference_steps").get<int>();
    const io::TensorSource ref = io::TensorSource::open(dir / (run_name + ".safetensors"));

    TimestepOptions options;
    int n_arg = n;
    if (run.contains("set_timesteps_kwargs")) {
      const auto& kw = run.at("set_timesteps_kwargs");
      if (kw.contains("mu")) options.mu = kw.at("mu").get<double>();
      if (kw.contains("sigmas")) {
        // The pipeline's linspace(1, 1/N, N): rebuild it with our numpy linspace and check it
        // against the exact float64 values the generator passed (meta) and stored (F32).
        options.sigmas = np_linspace(1.0, 1.0 / n, n);
        std::vector<double> passed = kw.at("sigmas").get<std::vector<double>>();
        ASSERT_EQ(options.sigmas.size(), passed.size());
        for (size_t i = 0; i < passed.size(); ++i) EXPECT_EQ(options.sigmas[i], passed[i]) << i;
        expect_values(options.sigmas, ref.load("input_sigmas").to_vector(), 1e-7, "input_sigmas");
        n_arg = 0;  // the Flux pipeline passes only sigmas
      }
    }
    scheduler->set_timesteps(n_arg, options);

    // Tables.
    ASSERT_EQ(scheduler->num_inference_steps(), n);
    expect_values(scheduler->timesteps(), ref.load("timesteps").to_vector(),
                  fc.integer_timesteps ? 0.0 : 1e-6, "timesteps");
    if (ref.has("sigmas")) {
      expect_values(scheduler->sigmas(), ref.load("sigmas").to_vector(), 1e-6, "sigmas");
    } else {
      EXPECT_TRUE(scheduler->sigmas().empty());
    }
    if (ref.has("alphas_cumprod")) {
      const std::vector<float>* ac = alphas_cumprod_of(*scheduler);
      ASSERT_NE(ac, nullptr);
      std::vector<double> got(ac->begin(), ac->end());
      expect_values(got, ref.load("alphas_cumprod").to_vector(), 1e-6, "alphas_cumprod");
    }

    // Trajectory.
    core::Tensor x = ref.load("x0");
    double worst = 0;
    for (int i = 0; i < n; ++i) {
      const std::string idx = std::to_string(i);
      core::Tensor noise;
      if (scheduler->needs_noise(i)) {
        ASSERT_TRUE(ref.has("variance_noise." + idx)) << "step " << i << " needs noise";
        noise = ref.load("variance_noise." + idx);
      }
      x = scheduler->step(ref.load("model_output." + idx), i, x, noise);
      const std::vector<float> want = ref.load("sample." + idx).to_vector();
      ASSERT_EQ(x.shape(), ref.info("sample." + idx).shape);
      const double err = rel_l2(x.to_vector(), want);
      worst = std::max(worst, err);
      EXPECT_LE(err, 1e-5) << "step " << i << " of " << n;
    }
    std::ostringstream worst_str;
    worst_str << std::scientific << worst;
    RecordProperty(run_name + "_max_rel_l2", worst_str.str());
    if (std::getenv("PARADIT_SCHED_VERBOSE")) {
      auto inexact = [](const std::vector<double>& got, const std::vector<float>& want) {
        int k = 0;
        for (size_t i = 0; i < want.size() && i < got.size(); ++i)
          k += static_cast<float>(got[i]) != want[i];
        return k;
      };
      std::printf(
          "%s %s: max rel-L2 %.3e, inexact timesteps %d, sigmas %d\n", fc.name.c_str(),
          run_name.c_str(), worst,
          inexact(scheduler->timesteps(), ref.load("timesteps").to_vector()),
          ref.has("sigmas") ? inexact(scheduler->sigmas(), ref.load("sigmas").to_vector()) : 0);
    }
  }
  EXPECT_GE(runs, 4);
}

INSTANTIATE_TEST_SUITE_P(
    Diffusers, SchedulerFixture,
    ::testing::Values(
        FixtureCase{"sd3_flow_match", "FlowMatchEulerDiscreteScheduler", false},
        FixtureCase{"flux_flow_match_seq1024", "FlowMatchEulerDiscreteScheduler", false},
        FixtureCase{"flux_flow_match_seq4096", "FlowMatchEulerDiscreteScheduler", false},
        FixtureCase{"flux_schnell_flow_match", "FlowMatchEulerDiscreteScheduler", false},
        FixtureCase{"pixart_sigma_dpm", "DPMSolverMultistepScheduler", true},
        FixtureCase{"dit_ddim", "DDIMScheduler", true},
        FixtureCase{"dit_ddpm", "DDPMScheduler", true},
        FixtureCase{"wan_unipc", "UniPCMultistepScheduler", true}),
    [](const ::testing::TestParamInfo<FixtureCase>& info) { return info.param.name; });

// The Flux pipeline's mu: linear in the image sequence length; meta.json records the values the
// generator used.
TEST(FlowMatch, CalculateShiftMatchesRecordedMu) {
  for (const char* name : {"flux_flow_match_seq1024", "flux_flow_match_seq4096"}) {
    const nlohmann::json meta = read_json_lenient(case_dir(name) / "meta.json");
    const int64_t seq = meta.at("image_seq_len").get<int64_t>();
    const double mu = meta.at("mu").get<double>();
    EXPECT_NEAR(calculate_shift(seq), mu, 1e-12) << name;
    auto s = load_scheduler(case_dir(name) / "scheduler_config.json");
    auto* fm = dynamic_cast<FlowMatchEulerScheduler*>(s.get());
    ASSERT_NE(fm, nullptr);
    EXPECT_NEAR(fm->mu_for(seq), mu, 1e-12) << name;
  }
}

// The README's observed detail: SD3 spaces its timesteps between the already shifted training
// sigma_min/max and shifts again, so the 4-step schedule ends at 8.93, not 2.99.
TEST(FlowMatch, Sd3FourStepTimesteps) {
  auto s = load_scheduler(case_dir("sd3_flow_match") / "scheduler_config.json");
  s->set_timesteps(4);
  const std::vector<double> want = {1000.0, 857.69, 602.15, 8.93};
  ASSERT_EQ(s->timesteps().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(s->timesteps()[i], want[i], 0.006) << i;
}

// The Wan README values: N = 3 gives timesteps [999, 857, 600] and sigmas
// [1.0, 0.85733, 0.60072, 0] (the first is 1 − 1e-6 in float32).
TEST(UniPC, WanThreeStepTables) {
  auto s = load_scheduler(case_dir("wan_unipc") / "scheduler_config.json");
  s->set_timesteps(3);
  EXPECT_EQ(s->timesteps(), (std::vector<double>{999, 857, 600}));
  const std::vector<double> want = {1.0, 0.85733, 0.60072, 0.0};
  ASSERT_EQ(s->sigmas().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(s->sigmas()[i], want[i], 5e-6) << i;
}

}  // namespace
}  // namespace paradit::schedulers
