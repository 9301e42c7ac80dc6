// Scheduler checks beyond the recorded fixtures:
// - exactness: on a model whose clean sample x0* and noise ε are fixed, every ODE solver here
//   (Euler, DDIM, DPM-Solver(++) of any order, UniPC) lands exactly on x_i = α_i·x0* + σ_i·ε, so
//   each configuration variant can be checked without a reference implementation;
// - the stochastic updates (DDIM with eta > 0, DDPM with a learned variance) against the DDPM
//   posterior written out in double;
// - config parsing and the one-line errors.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
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

// A scheduler_config.json in a fresh temporary folder.
class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) {
    static int counter = 0;
    path_ = fs::temp_directory_path() / ("paradit_sched_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter++) + ".json");
    std::ofstream(path_) << text;
  }
  ~ConfigFile() {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::unique_ptr<Scheduler> from_text(const std::string& text) {
  ConfigFile f(text);
  return load_scheduler(f.path());
}

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

double rel_l2(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// ---------------------------------------------------------------- exactness on a fixed x0

enum class Param { kDiscrete, kFlow };  // α = 1/sqrt(σ²+1), σ_t = σα   |   α = 1 − σ, σ_t = σ

// Runs the scheduler on the model that knows x0* and ε, returning the worst rel-L2 distance of
// the trajectory from α_i·x0* + σ_i·ε (the sigmas from the scheduler, in double).
double fixed_x0_error(Scheduler& s, Param param, const std::string& prediction) {
  const core::Shape shape = {1, 4, 4, 4};
  const size_t n = 64;
  const std::vector<float> x0 = randn(n, 1), eps = randn(n, 2);
  auto coeffs = [&](double sigma) {
    if (param == Param::kFlow) return std::pair<double, double>{1 - sigma, sigma};
    const double a = 1 / std::sqrt(sigma * sigma + 1);
    return std::pair<double, double>{a, sigma * a};
  };
  auto mix = [&](double a, double b, const std::vector<float>& u, const std::vector<float>& v) {
    std::vector<double> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = a * u[i] + b * v[i];
    return out;
  };
  auto to_tensor = [&](const std::vector<double>& v) {
    std::vector<float> f(v.begin(), v.end());
    return core::Tensor::from_vector(f, shape);
  };
  const auto& sig = s.sigmas();
  auto [a0, s0] = coeffs(sig[0]);
  core::Tensor x = to_tensor(mix(a0, s0, x0, eps));
  double worst = 0;
  for (size_t i = 0; i < s.timesteps().size(); ++i) {
    auto [a, b] = coeffs(sig[i]);
    std::vector<double> out;
    if (prediction == "epsilon") out = mix(0, 1, x0, eps);
    if (prediction == "sample") out = mix(1, 0, x0, eps);
    if (prediction == "v_prediction") out = mix(-b, a, x0, eps);     // α·ε − σ·x0
    if (prediction == "flow_prediction") out = mix(-1, 1, x0, eps);  // ε − x0
    x = s.step(to_tensor(out), i, x);
    auto [an, bn] = coeffs(sig[i + 1]);
    worst = std::max(worst, rel_l2(x.to_vector(), mix(an, bn, x0, eps)));
  }
  return worst;
}

struct ExactCase {
  std::string label;
  std::string config;  // the JSON body after _class_name
  std::string class_name;
  int steps;
  Param param;
  std::string prediction;
};

void PrintTo(const ExactCase& c, std::ostream* os) { *os << c.label; }

class FixedX0 : public ::testing::TestWithParam<ExactCase> {};

TEST_P(FixedX0, SolverIsExact) {
  const ExactCase& c = GetParam();
  auto s = from_text("{\"_class_name\": \"" + c.class_name + "\", " + c.config + "}");
  s->set_timesteps(c.steps);
  ASSERT_EQ(s->num_inference_steps(), c.steps);
  ASSERT_EQ(s->sigmas().size(), static_cast<size_t>(c.steps) + 1);
  for (size_t i = 1; i < s->timesteps().size(); ++i) {
    EXPECT_LE(s->timesteps()[i], s->timesteps()[i - 1]) << "timesteps should not increase";
  }
  EXPECT_LE(fixed_x0_error(*s, c.param, c.prediction), 5e-5);
}

const char* kDpm = "DPMSolverMultistepScheduler";
const char* kUni = "UniPCMultistepScheduler";

INSTANTIATE_TEST_SUITE_P(
    Schedulers, FixedX0,
    ::testing::Values(
        ExactCase{"dpmpp_o3_midpoint", "\"solver_order\": 3", kDpm, 20, Param::kDiscrete,
                  "epsilon"},
        ExactCase{"dpmpp_o3_heun_vpred",
                  "\"solver_order\": 3, \"solver_type\": \"heun\", "
                  "\"prediction_type\": \"v_prediction\"",
                  kDpm, 12, Param::kDiscrete, "v_prediction"},
        ExactCase{"dpmpp_o2_heun_sample_karras",
                  "\"solver_type\": \"heun\", "
                  "\"prediction_type\": \"sample\", \"use_karras_sigmas\": true",
                  kDpm, 10, Param::kDiscrete, "sample"},
        ExactCase{"dpmpp_o2_lu_trailing",
                  "\"use_lu_lambdas\": true, "
                  "\"timestep_spacing\": \"trailing\"",
                  kDpm, 8, Param::kDiscrete, "epsilon"},
        ExactCase{"dpmpp_o2_exponential_leading",
                  "\"use_exponential_sigmas\": true, "
                  "\"timestep_spacing\": \"leading\", \"steps_offset\": 1",
                  kDpm, 9, Param::kDiscrete, "epsilon"},
        ExactCase{"dpm_o3_sigma_min",
                  "\"algorithm_type\": \"dpmsolver\", \"solver_order\": 3, "
                  "\"final_sigmas_type\": \"sigma_min\", \"lower_order_final\": false",
                  kDpm, 16, Param::kDiscrete, "epsilon"},
        ExactCase{"dpm_o2_heun_scaled_linear",
                  "\"algorithm_type\": \"dpmsolver\", "
                  "\"solver_type\": \"heun\", \"final_sigmas_type\": \"sigma_min\", "
                  "\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, "
                  "\"beta_end\": 0.012",
                  kDpm, 7, Param::kDiscrete, "epsilon"},
        ExactCase{"dpmpp_flow_sigmas",
                  "\"prediction_type\": \"flow_prediction\", "
                  "\"use_flow_sigmas\": true, \"flow_shift\": 3.0",
                  kDpm, 10, Param::kFlow, "flow_prediction"},
        ExactCase{"dpmpp_cosine",
                  "\"beta_schedule\": \"squaredcos_cap_v2\", "
                  "\"lambda_min_clipped\": -5.1",
                  kDpm, 10, Param::kDiscrete, "epsilon"},
        ExactCase{"unipc_o3_bh1", "\"solver_order\": 3, \"solver_type\": \"bh1\"", kUni, 12,
                  Param::kDiscrete, "epsilon"},
        ExactCase{"unipc_o2_noise_pred", "\"predict_x0\": false", kUni, 10, Param::kDiscrete,
                  "epsilon"},
        ExactCase{"unipc_o3_flow",
                  "\"solver_order\": 3, \"prediction_type\": "
                  "\"flow_prediction\", \"use_flow_sigmas\": true, \"flow_shift\": 5.0",
                  kUni, 9, Param::kFlow, "flow_prediction"},
        ExactCase{"unipc_o2_karras_vpred",
                  "\"use_karras_sigmas\": true, \"prediction_type\": "
                  "\"v_prediction\", \"disable_corrector\": [0, 3]",
                  kUni, 8, Param::kDiscrete, "v_prediction"},
        ExactCase{"unipc_o1_sigma_min",
                  "\"solver_order\": 1, \"final_sigmas_type\": "
                  "\"sigma_min\", \"timestep_spacing\": \"trailing\"",
                  kUni, 6, Param::kDiscrete, "epsilon"},
        ExactCase{"flow_match_karras", "\"shift\": 3.0, \"use_karras_sigmas\": true",
                  "FlowMatchEulerDiscreteScheduler", 8, Param::kFlow, "flow_prediction"},
        ExactCase{"flow_match_terminal",
                  "\"shift\": 2.0, \"shift_terminal\": 0.1, "
                  "\"use_exponential_sigmas\": false",
                  "FlowMatchEulerDiscreteScheduler", 6, Param::kFlow, "flow_prediction"}),
    [](const ::testing::TestParamInfo<ExactCase>& info) { return info.param.label; });

// DDIM (eta 0) has no sigmas(); its exact solution uses ᾱ of the timesteps. (Not "linspace":
// diffusers' DDIM steps to t − T/N whatever the spacing, which linspace timesteps do not follow.)
TEST(DDIM, DeterministicStepIsExact) {
  for (const char* spacing : {"leading", "trailing"}) {
    SCOPED_TRACE(spacing);
    auto s =
        from_text(std::string("{\"_class_name\": \"DDIMScheduler\", \"clip_sample\": false, "
                              "\"prediction_type\": \"v_prediction\", \"timestep_spacing\": \"") +
                  spacing + "\"}");
    auto* ddim = dynamic_cast<DDIMScheduler*>(s.get());
    ASSERT_NE(ddim, nullptr);
    s->set_timesteps(10);
    EXPECT_TRUE(s->sigmas().empty());
    const size_t n = 64;
    const std::vector<float> x0 = randn(n, 3), eps = randn(n, 4);
    const auto& ac = ddim->alphas_cumprod();
    auto state = [&](double abar) {
      std::vector<double> v(n);
      for (size_t i = 0; i < n; ++i) v[i] = std::sqrt(abar) * x0[i] + std::sqrt(1 - abar) * eps[i];
      return v;
    };
    const auto& ts = s->timesteps();
    auto first = state(ac[static_cast<size_t>(ts[0])]);
    core::Tensor x =
        core::Tensor::from_vector(std::vector<float>(first.begin(), first.end()), {1, 4, 4, 4});
    for (size_t i = 0; i < ts.size(); ++i) {
      const double abar = ac[static_cast<size_t>(ts[i])];
      std::vector<float> v(n);  // v = sqrt(ᾱ)·ε − sqrt(1−ᾱ)·x0
      for (size_t j = 0; j < n; ++j) v[j] = std::sqrt(abar) * eps[j] - std::sqrt(1 - abar) * x0[j];
      x = s->step(core::Tensor::from_vector(v, {1, 4, 4, 4}), i, x);
      const int64_t prev = static_cast<int64_t>(ts[i]) - 1000 / 10;
      EXPECT_LE(rel_l2(x.to_vector(), state(prev >= 0 ? ac[prev] : 1.0)), 2e-5) << i;
    }
  }
}

// ---------------------------------------------------------------- stochastic steps

// ᾱ_t of linear betas 1e-4..0.02 over 1000 steps, in double (independent of the float tables).
std::vector<double> linear_alphas_cumprod() {
  std::vector<double> ac(1000);
  double acc = 1;
  for (int i = 0; i < 1000; ++i) {
    acc *= 1 - (0.0001 + (0.02 - 0.0001) * i / 999.0);
    ac[i] = acc;
  }
  return ac;
}

TEST(DDPM, LearnedRangeVarianceMatchesPosterior) {
  auto s = from_text(R"({"_class_name": "DDPMScheduler", "variance_type": "learned_range",
                         "clip_sample": false})");
  s->set_timesteps(5);
  EXPECT_EQ(s->timesteps(), (std::vector<double>{800, 600, 400, 200, 0}));
  const auto ac = linear_alphas_cumprod();
  const size_t c = 3, hw = 16, n = c * hw;
  std::vector<float> x = randn(n, 5);
  for (size_t i = 0; i < s->timesteps().size(); ++i) {
    const int t = static_cast<int>(s->timesteps()[i]);
    const int prev = i + 1 < s->timesteps().size() ? static_cast<int>(s->timesteps()[i + 1]) : -1;
    std::vector<float> out = randn(2 * n, 10 + i);  // (eps, variance fraction) on channels
    for (size_t j = n; j < 2 * n; ++j) out[j] = std::tanh(out[j]);
    const std::vector<float> z = randn(n, 20 + i);
    EXPECT_EQ(s->needs_noise(i), t > 0);

    // The DDPM posterior q(x_{t_prev} | x_t, x0) with the interpolated log variance.
    const double a_t = ac[t], a_p = prev >= 0 ? ac[prev] : 1.0;
    const double beta = 1 - a_t / a_p;
    const double var = std::max((1 - a_p) / (1 - a_t) * beta, 1e-20);
    std::vector<double> want(n);
    for (size_t j = 0; j < n; ++j) {
      const double x0 = (x[j] - std::sqrt(1 - a_t) * out[j]) / std::sqrt(a_t);
      double mean = std::sqrt(a_p) * beta / (1 - a_t) * x0 +
                    std::sqrt(1 - beta) * (1 - a_p) / (1 - a_t) * x[j];
      if (t > 0) {
        const double frac = (out[n + j] + 1) / 2;
        const double log_var = frac * std::log(beta) + (1 - frac) * std::log(var);
        mean += std::exp(0.5 * log_var) * z[j];
      }
      want[j] = mean;
    }
    core::Tensor next =
        s->step(core::Tensor::from_vector(out, {1, 2 * c, 4, 4}), i,
                core::Tensor::from_vector(x, {1, c, 4, 4}),
                t > 0 ? core::Tensor::from_vector(z, {1, c, 4, 4}) : core::Tensor());
    EXPECT_EQ(next.shape(), (core::Shape{1, c, 4, 4}));
    EXPECT_LE(rel_l2(next.to_vector(), want), 1e-5) << "step " << i;
    x = next.to_vector();
  }
}

TEST(DDIM, EtaOneAddsPosteriorNoise) {
  auto s = from_text(R"({"_class_name": "DDIMScheduler", "clip_sample": false,
                         "set_alpha_to_one": false, "steps_offset": 1})");
  auto* ddim = dynamic_cast<DDIMScheduler*>(s.get());
  ASSERT_NE(ddim, nullptr);
  ddim->set_eta(1.0);
  s->set_timesteps(4);
  EXPECT_EQ(s->timesteps(), (std::vector<double>{751, 501, 251, 1}));
  const auto ac = linear_alphas_cumprod();
  const size_t n = 48;
  std::vector<float> x = randn(n, 7);
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(s->needs_noise(i));
    const int t = static_cast<int>(s->timesteps()[i]);
    const int prev = t - 250;
    const std::vector<float> eps = randn(n, 30 + i), z = randn(n, 40 + i);
    const double a_t = ac[t], a_p = prev >= 0 ? ac[prev] : ac[0];  // set_alpha_to_one false
    const double sd = std::sqrt((1 - a_p) / (1 - a_t) * (1 - a_t / a_p));
    std::vector<double> want(n);
    for (size_t j = 0; j < n; ++j) {
      const double x0 = (x[j] - std::sqrt(1 - a_t) * eps[j]) / std::sqrt(a_t);
      want[j] = std::sqrt(a_p) * x0 + std::sqrt(1 - a_p - sd * sd) * eps[j] + sd * z[j];
    }
    core::Tensor next = s->step(core::Tensor::from_vector(eps, {1, 3, 4, 4}), i,
                                core::Tensor::from_vector(x, {1, 3, 4, 4}),
                                core::Tensor::from_vector(z, {1, 3, 4, 4}));
    EXPECT_LE(rel_l2(next.to_vector(), want), 1e-5) << "step " << i;
    x = next.to_vector();
  }
}

// DDPM clip_sample (its default) clamps the predicted x0 to [-1, 1].
TEST(DDPM, ClipSampleClampsPredictedX0) {
  auto s = from_text(R"({"_class_name": "DDPMScheduler", "timestep_spacing": "trailing"})");
  s->set_timesteps(1);
  EXPECT_EQ(s->timesteps(), (std::vector<double>{999}));
  ASSERT_TRUE(s->needs_noise(0));
  // A one-step schedule lands on x0 itself (ᾱ_prev = 1, variance 0).
  const std::vector<float> x = {0.003f, -0.002f, 0.01f, -0.0005f};
  const std::vector<float> eps = {0.0f, 0.0f, 0.0f, 0.0f};
  core::Tensor out =
      s->step(core::Tensor::from_vector(eps, {1, 1, 2, 2}), 0,
              core::Tensor::from_vector(x, {1, 1, 2, 2}), core::Tensor::zeros({1, 1, 2, 2}));
  const double sa = std::sqrt(linear_alphas_cumprod()[999]);
  const std::vector<float> got = out.to_vector();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(got[i], std::clamp(x[i] / sa, -1.0, 1.0), 1e-5) << i;
  }
  EXPECT_EQ(got[2], 1.0f);  // 0.01/sqrt(ᾱ_999) ≈ 1.6 is clipped
}

// ---------------------------------------------------------------- numpy helpers

TEST(NumpyHelpers, LinspaceAndRounding) {
  EXPECT_EQ(np_linspace(0, 999, 5), (std::vector<double>{0, 249.75, 499.5, 749.25, 999}));
  EXPECT_EQ(np_linspace(2, 3, 1), (std::vector<double>{2}));
  EXPECT_TRUE(np_linspace(0, 1, 0).empty());
  EXPECT_EQ(np_round(0.5), 0);
  EXPECT_EQ(np_round(1.5), 2);
  EXPECT_EQ(np_round(249.5), 250);
  EXPECT_EQ(np_round(-2.5), -2);
  // DPM "linspace": round(linspace(0, 999, 5)) reversed, without the last → 999 749 500 250.
  EXPECT_EQ(spaced_timesteps("linspace", 1000, 4, 0, true, 1000, "t"),
            (std::vector<int64_t>{999, 749, 500, 250}));
  EXPECT_EQ(spaced_timesteps("trailing", 1000, 3, 0, false, 1000, "t"),
            (std::vector<int64_t>{999, 666, 332}));
  EXPECT_EQ(spaced_timesteps("leading", 1000, 3, 1, true, 1000, "t"),
            (std::vector<int64_t>{751, 501, 251}));
  EXPECT_THROW(spaced_timesteps("cosine", 1000, 3, 0, false, 1000, "t"), Error);
}

// ---------------------------------------------------------------- config and errors

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(LoadScheduler, PythonInfinityTokens) {
  auto s = from_text(R"({"_class_name": "DPMSolverMultistepScheduler",
                         "lambda_min_clipped": -Infinity, "_note": "a -Infinity NaN string"})");
  auto* dpm = dynamic_cast<DPMSolverMultistepScheduler*>(s.get());
  ASSERT_NE(dpm, nullptr);
  EXPECT_TRUE(std::isinf(dpm->config().lambda_min_clipped));
  EXPECT_LT(dpm->config().lambda_min_clipped, 0);
}

TEST(LoadScheduler, DefaultsWhenKeysAreAbsent) {
  auto s = from_text(R"({"_class_name": "FlowMatchEulerDiscreteScheduler"})");
  auto* fm = dynamic_cast<FlowMatchEulerScheduler*>(s.get());
  ASSERT_NE(fm, nullptr);
  EXPECT_EQ(fm->config().num_train_timesteps, 1000);
  EXPECT_EQ(fm->config().shift, 1.0);
  EXPECT_FALSE(fm->config().use_dynamic_shifting);
  s->set_timesteps(2);  // shift 1: linspace(1000, 1, 2) → sigmas 1, 0.001, 0
  EXPECT_EQ(s->timesteps(), (std::vector<double>{1000, 1}));
  auto u = from_text(R"({"_class_name": "UniPCMultistepScheduler"})");
  auto* uni = dynamic_cast<UniPCMultistepScheduler*>(u.get());
  ASSERT_NE(uni, nullptr);
  EXPECT_EQ(uni->config().solver_order, 2);
  EXPECT_EQ(uni->config().solver_type, "bh2");
  EXPECT_TRUE(uni->config().predict_x0);
}

TEST(LoadScheduler, ErrorsNameTheFileAndKey) {
  EXPECT_NE(error_of([] {
              load_scheduler("/nonexistent/scheduler_config.json");
            }).find("/nonexistent/scheduler_config.json"),
            std::string::npos);
  {
    ConfigFile f(R"({"_class_name": "EulerAncestralDiscreteScheduler"})");
    const std::string e = error_of([&] { load_scheduler(f.path()); });
    EXPECT_NE(e.find(f.path().string()), std::string::npos) << e;
    EXPECT_NE(e.find("EulerAncestralDiscreteScheduler"), std::string::npos) << e;
  }
  {
    ConfigFile f(R"({"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": "big"})");
    const std::string e = error_of([&] { load_scheduler(f.path()); });
    EXPECT_NE(e.find("'shift'"), std::string::npos) << e;
  }
  {
    ConfigFile f(R"({"_class_name": "DDIMScheduler", "timestep_spacing": "cosine"})");
    const std::string e = error_of([&] { load_scheduler(f.path()); });
    EXPECT_NE(e.find("timestep_spacing"), std::string::npos) << e;
  }
  {
    ConfigFile f(R"({"_class_name": "FlowMatchEulerDiscreteScheduler", "use_beta_sigmas": true})");
    EXPECT_NE(error_of([&] { load_scheduler(f.path()); }).find("use_beta_sigmas"),
              std::string::npos);
  }
  {
    ConfigFile f(R"({"_class_name": "DDIMScheduler", )");
    EXPECT_NE(error_of([&] { load_scheduler(f.path()); }).find("malformed JSON"),
              std::string::npos);
  }
  {
    ConfigFile f(R"([1, 2])");
    EXPECT_FALSE(error_of([&] { load_scheduler(f.path()); }).empty());
  }
}

TEST(Scheduler, MisuseIsAnError) {
  auto flux = from_text(R"({"_class_name": "FlowMatchEulerDiscreteScheduler",
                            "use_dynamic_shifting": true})");
  EXPECT_NE(error_of([&] { flux->set_timesteps(4); }).find("mu"), std::string::npos);
  auto dpm = from_text(R"({"_class_name": "DPMSolverMultistepScheduler"})");
  const core::Tensor x = core::Tensor::zeros({1, 4, 2, 2});
  EXPECT_NE(error_of([&] { dpm->step(x, 0, x); }).find("set_timesteps"), std::string::npos);
  dpm->set_timesteps(5);
  EXPECT_NO_THROW(dpm->step(x, 0, x));
  EXPECT_NE(error_of([&] { dpm->step(x, 2, x); }).find("expects step 1"), std::string::npos);
  EXPECT_NE(error_of([&] {
              dpm->step(core::Tensor::zeros({1, 4, 2, 3}), 1, x);
            }).find("shape"),
            std::string::npos);
  EXPECT_NE(error_of([&] { dpm->step(x, 7, x); }).find("out of range"), std::string::npos);
  // set_timesteps starts over, and the first step may be any index (img2img).
  dpm->set_timesteps(5);
  EXPECT_NO_THROW(dpm->step(x, 2, x));
  auto ddpm = from_text(R"({"_class_name": "DDPMScheduler"})");
  ddpm->set_timesteps(2);
  EXPECT_NE(error_of([&] { ddpm->step(x, 0, x); }).find("noise"), std::string::npos);
}

}  // namespace
}  // namespace paradit::schedulers
