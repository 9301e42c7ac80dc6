#include "schedulers/schedule_math.h"

#include "core/ops.h"
#include "io/json.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "schedulers/scheduler.h"

namespace paradit::schedulers {

// ---------------------------------------------------------------- config

namespace {

// Python's json module writes float('inf') as the bare token Infinity (and NaN as NaN), which
// strict JSON parsers reject; diffusers configs carry e.g. "lambda_min_clipped": -Infinity. The
// tokens outside strings become strings that get_double() understands.
std::string quote_python_float_tokens(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 16);
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) {
        out += text[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      continue;
    }
    bool matched = false;
    for (const char* token : {"-Infinity", "Infinity", "NaN"}) {
      size_t n = std::char_traits<char>::length(token);
      if (text.compare(i, n, token) == 0) {
        out += '"';
        out += token;
        out += '"';
        i += n - 1;
        matched = true;
        break;
      }
    }
    if (!matched) out += c;
  }
  return out;
}

std::string json_value_str(const nlohmann::json& v) { return v.dump(); }

}  // namespace

SchedulerConfig::SchedulerConfig(nlohmann::json json, std::string where)
    : json_(std::move(json)), where_(std::move(where)) {
  PARADIT_CHECK(json_.is_object(), where_, ": expected a JSON object, found ", json_.type_name());
}

nlohmann::json read_json_lenient(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  PARADIT_CHECK(in.good(), path.string(), ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return io::parse_json(quote_python_float_tokens(ss.str()), path.string());
}

SchedulerConfig SchedulerConfig::load(const std::filesystem::path& path) {
  return SchedulerConfig(read_json_lenient(path), path.string());
}

bool SchedulerConfig::has(const std::string& key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

int64_t SchedulerConfig::get_int(const std::string& key, int64_t fallback) const {
  if (!has(key)) return fallback;
  const auto& v = json_.at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (d == std::floor(d)) return static_cast<int64_t>(d);
  }
  fail(where_, ": key '", key, "' should be an integer, found ", json_value_str(v));
}

double SchedulerConfig::get_double(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  const auto& v = json_.at(key);
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s == "Infinity") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
    if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  }
  fail(where_, ": key '", key, "' should be a number, found ", json_value_str(v));
}

bool SchedulerConfig::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& v = json_.at(key);
  if (v.is_boolean()) return v.get<bool>();
  fail(where_, ": key '", key, "' should be true or false, found ", json_value_str(v));
}

std::string SchedulerConfig::get_string(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  const auto& v = json_.at(key);
  if (v.is_string()) return v.get<std::string>();
  fail(where_, ": key '", key, "' should be a string, found ", json_value_str(v));
}

std::vector<double> SchedulerConfig::get_double_list(const std::string& key) const {
  std::vector<double> out;
  if (!has(key)) return out;
  const auto& v = json_.at(key);
  PARADIT_CHECK(v.is_array(), where_, ": key '", key, "' should be a list of numbers, found ",
                json_value_str(v));
  for (const auto& e : v) {
    PARADIT_CHECK(e.is_number(), where_, ": key '", key, "' should be a list of numbers, found ",
                  json_value_str(e), " in it");
    out.push_back(e.get<double>());
  }
  return out;
}

std::vector<int64_t> SchedulerConfig::get_int_list(const std::string& key) const {
  std::vector<int64_t> out;
  if (!has(key)) return out;
  const auto& v = json_.at(key);
  PARADIT_CHECK(v.is_array(), where_, ": key '", key, "' should be a list of integers, found ",
                json_value_str(v));
  for (const auto& e : v) {
    PARADIT_CHECK(e.is_number_integer(), where_, ": key '", key,
                  "' should be a list of integers, found ", json_value_str(e), " in it");
    out.push_back(e.get<int64_t>());
  }
  return out;
}

void SchedulerConfig::unsupported(const std::string& key, const std::string& why) const {
  std::string value = json_.contains(key) ? json_value_str(json_.at(key)) : "(default)";
  fail(where_, ": ", key, " = ", value, " is not supported by paradit's ", class_name(), " (", why,
       ")");
}

std::string SchedulerConfig::get_choice(const std::string& key, const std::string& fallback,
                                        const std::vector<std::string>& allowed) const {
  std::string v = get_string(key, fallback);
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return v;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  fail(where_, ": ", key, " = \"", v, "\" is not supported by paradit's ", class_name(),
       " (expected one of: ", list, ")");
}

// ---------------------------------------------------------------- beta schedules

BetaSchedule BetaSchedule::from_config(const SchedulerConfig& c,
                                       const std::vector<std::string>& allowed) {
  BetaSchedule s;
  s.num_train_timesteps = c.get_int("num_train_timesteps", 1000);
  PARADIT_CHECK(s.num_train_timesteps >= 2, c.where(),
                ": num_train_timesteps should be at least 2, found ", s.num_train_timesteps);
  s.beta_start = c.get_double("beta_start", 0.0001);
  s.beta_end = c.get_double("beta_end", 0.02);
  s.trained_betas = c.get_double_list("trained_betas");
  if (s.trained_betas.empty()) {
    s.beta_schedule = c.get_choice("beta_schedule", "linear", allowed);
  } else {
    PARADIT_CHECK(static_cast<int64_t>(s.trained_betas.size()) == s.num_train_timesteps, c.where(),
                  ": trained_betas has ", s.trained_betas.size(),
                  " entries, num_train_timesteps is ", s.num_train_timesteps);
  }
  s.rescale_betas_zero_snr = c.get_bool("rescale_betas_zero_snr", false);
  return s;
}

std::vector<float> torch_linspace_f32(double start, double end, int64_t steps) {
  std::vector<float> out(static_cast<size_t>(std::max<int64_t>(steps, 0)));
  if (steps <= 0) return out;
  const float s = static_cast<float>(start);
  const float e = static_cast<float>(end);
  if (steps == 1) {
    out[0] = s;
    return out;
  }
  // torch's CPU kernel: start + step*i for the first half, end - step*(steps-1-i) for the second,
  // step in float. The released builds contract both into one fused multiply-add; the fixture
  // betas match that bit for bit.
  const float step = (e - s) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  for (int64_t i = 0; i < steps; ++i) {
    out[i] = i < halfway ? std::fma(step, static_cast<float>(i), s)
                         : std::fma(-step, static_cast<float>(steps - i - 1), e);
  }
  return out;
}

namespace {

double alpha_bar_cosine(double t) {
  double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
  return c * c;
}

double alpha_bar_laplace(double t) {
  double lmb = -0.5 * std::copysign(1.0, 0.5 - t) * std::log(1 - 2 * std::fabs(0.5 - t) + 1e-6);
  double snr = std::exp(lmb);
  return std::sqrt(snr / (1 + snr));
}

// diffusers' betas_for_alpha_bar (float64 math, then a float32 tensor).
std::vector<float> betas_for_alpha_bar(int64_t n, double (*alpha_bar)(double)) {
  std::vector<float> betas(n);
  for (int64_t i = 0; i < n; ++i) {
    double t1 = static_cast<double>(i) / static_cast<double>(n);
    double t2 = static_cast<double>(i + 1) / static_cast<double>(n);
    betas[i] = static_cast<float>(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
  }
  return betas;
}

// diffusers' rescale_zero_terminal_snr, in float32 as torch runs it.
std::vector<float> rescale_zero_terminal_snr(const std::vector<float>& betas) {
  std::vector<float> ac = alphas_cumprod_from_betas(betas);
  std::vector<float> sq(ac.size());
  for (size_t i = 0; i < ac.size(); ++i) sq[i] = std::sqrt(ac[i]);
  const float s0 = sq.front(), sT = sq.back();
  const float factor = s0 / (s0 - sT);
  for (float& v : sq) v = (v - sT) * factor;
  std::vector<float> bar(sq.size());
  for (size_t i = 0; i < sq.size(); ++i) bar[i] = sq[i] * sq[i];
  std::vector<float> out(bar.size());
  out[0] = 1.0f - bar[0];
  for (size_t i = 1; i < bar.size(); ++i) out[i] = 1.0f - bar[i] / bar[i - 1];
  return out;
}

}  // namespace

std::vector<float> make_betas(const BetaSchedule& s) {
  const int64_t n = s.num_train_timesteps;
  std::vector<float> betas;
  if (!s.trained_betas.empty()) {
    for (double b : s.trained_betas) betas.push_back(static_cast<float>(b));
  } else if (s.beta_schedule == "linear") {
    betas = torch_linspace_f32(s.beta_start, s.beta_end, n);
  } else if (s.beta_schedule == "scaled_linear") {
    betas = torch_linspace_f32(std::sqrt(s.beta_start), std::sqrt(s.beta_end), n);
    for (float& b : betas) b = b * b;
  } else if (s.beta_schedule == "squaredcos_cap_v2") {
    betas = betas_for_alpha_bar(n, alpha_bar_cosine);
  } else if (s.beta_schedule == "laplace") {
    betas = betas_for_alpha_bar(n, alpha_bar_laplace);
  } else if (s.beta_schedule == "sigmoid") {
    betas = torch_linspace_f32(-6, 6, n);
    const float range = static_cast<float>(s.beta_end - s.beta_start);
    const float start = static_cast<float>(s.beta_start);
    for (float& b : betas) b = mul_round(1.0f / (1.0f + std::exp(-b)), range) + start;
  } else {
    fail("scheduler: beta_schedule \"", s.beta_schedule, "\" is not implemented");
  }
  if (s.rescale_betas_zero_snr) betas = rescale_zero_terminal_snr(betas);
  return betas;
}

std::vector<float> alphas_cumprod_from_betas(const std::vector<float>& betas) {
  std::vector<float> out(betas.size());
  double acc = 1.0;
  for (size_t i = 0; i < betas.size(); ++i) {
    acc *= static_cast<double>(1.0f - betas[i]);
    out[i] = static_cast<float>(acc);
  }
  return out;
}

// ---------------------------------------------------------------- numpy helpers

double np_round(double x) { return std::nearbyint(x); }  // default rounding mode: half to even

std::vector<double> np_arange(double start, double stop, double step) {
  PARADIT_CHECK(step != 0, "scheduler: arange with a zero step");
  double len = std::ceil((stop - start) / step);
  std::vector<double> out;
  if (!(len > 0)) return out;
  out.resize(static_cast<size_t>(len));
  // numpy fills from the first two values: delta = (start + step) - start.
  const double delta = (start + step) - start;
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = i == 0 ? start : start + mul_round(static_cast<double>(i), delta);
  return out;
}

double np_interp_index(double x, const std::vector<double>& fp) {
  PARADIT_CHECK(!fp.empty(), "scheduler: interpolation in an empty table");
  if (x <= 0) return fp.front();
  const double last = static_cast<double>(fp.size() - 1);
  if (x >= last) return fp.back();
  size_t j = static_cast<size_t>(std::floor(x));
  if (static_cast<double>(j) == x) return fp[j];
  double slope = fp[j + 1] - fp[j];
  return mul_round(slope, x - static_cast<double>(j)) + fp[j];
}

std::vector<int64_t> spaced_timesteps(const std::string& spacing, int64_t num_train_timesteps,
                                      int64_t n, int64_t steps_offset, bool extra_one,
                                      int64_t last_timestep, const std::string& where) {
  PARADIT_CHECK(n >= 1, where, ": num_inference_steps should be at least 1, found ", n);
  std::vector<int64_t> ts;
  if (spacing == "linspace") {
    // DDIM/DDPM: linspace(0, T-1, n); DPM/UniPC: linspace(0, last-1, n+1) without its last.
    auto pts = extra_one ? np_linspace(0, static_cast<double>(last_timestep - 1), n + 1)
                         : np_linspace(0, static_cast<double>(num_train_timesteps - 1), n);
    for (auto it = pts.rbegin(); it != pts.rend(); ++it) {
      ts.push_back(static_cast<int64_t>(np_round(*it)));
    }
    if (extra_one) ts.pop_back();
  } else if (spacing == "leading") {
    const int64_t count = extra_one ? n + 1 : n;
    const int64_t ratio = (extra_one ? last_timestep : num_train_timesteps) / count;
    for (int64_t i = count - 1; i >= 0; --i) ts.push_back(i * ratio + steps_offset);
    if (extra_one) ts.pop_back();
  } else if (spacing == "trailing") {
    const double ratio = static_cast<double>(num_train_timesteps) / static_cast<double>(n);
    const double top = static_cast<double>(extra_one ? last_timestep : num_train_timesteps);
    for (double v : np_arange(top, 0, -ratio)) ts.push_back(static_cast<int64_t>(np_round(v)) - 1);
  } else {
    fail(where, ": timestep_spacing \"", spacing,
         "\" is not supported (expected linspace, leading or trailing)");
  }
  return ts;
}

// ---------------------------------------------------------------- sigma conversions

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int64_t n) {
  const double rho = 7.0;
  const double min_inv_rho = std::pow(sigma_min, 1 / rho);
  const double max_inv_rho = std::pow(sigma_max, 1 / rho);
  std::vector<double> out;
  for (double r : np_linspace(0, 1, n)) {
    out.push_back(std::pow(max_inv_rho + mul_round(r, min_inv_rho - max_inv_rho), rho));
  }
  return out;
}

std::vector<double> exponential_sigmas(double sigma_min, double sigma_max, int64_t n) {
  std::vector<double> out;
  for (double l : np_linspace(std::log(sigma_max), std::log(sigma_min), n)) {
    out.push_back(std::exp(l));
  }
  return out;
}

double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  const int64_t n = static_cast<int64_t>(log_sigmas.size());
  PARADIT_CHECK(n >= 2, "scheduler: sigma table too short");
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  // low: the last index whose log sigma is <= log_sigma (0 if none), at most n-2.
  int64_t low = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (log_sigma - static_cast<double>(log_sigmas[i]) >= 0) low = i;
  }
  low = std::min(low, n - 2);
  const float lo = log_sigmas[low], hi = log_sigmas[low + 1];
  double w = (static_cast<double>(lo) - log_sigma) / static_cast<double>(lo - hi);
  w = std::clamp(w, 0.0, 1.0);
  return mul_round(1 - w, static_cast<double>(low)) + mul_round(w, static_cast<double>(low + 1));
}

// ---------------------------------------------------------------- model output kinds

Prediction parse_prediction(const SchedulerConfig& c, bool allow_flow) {
  std::vector<std::string> allowed = {"epsilon", "sample", "v_prediction"};
  if (allow_flow) allowed.push_back("flow_prediction");
  std::string p = c.get_choice("prediction_type", "epsilon", allowed);
  if (p == "sample") return Prediction::kSample;
  if (p == "v_prediction") return Prediction::kVPrediction;
  if (p == "flow_prediction") return Prediction::kFlow;
  return Prediction::kEpsilon;
}

SampleClipping SampleClipping::from_config(const SchedulerConfig& c, bool clip_default) {
  SampleClipping s;
  s.clip_sample = c.get_bool("clip_sample", clip_default);
  s.clip_sample_range = c.get_double("clip_sample_range", 1.0);
  s.thresholding = c.get_bool("thresholding", false);
  s.dynamic_thresholding_ratio = c.get_double("dynamic_thresholding_ratio", 0.995);
  s.sample_max_value = c.get_double("sample_max_value", 1.0);
  return s;
}

void SampleClipping::apply(core::Tensor& x0) const {
  if (thresholding) {
    threshold_sample(x0, dynamic_thresholding_ratio, sample_max_value);
  } else if (clip_sample) {
    const float r = static_cast<float>(clip_sample_range);
    x0 = core::clamp(x0, -r, r);
  }
}

// ---------------------------------------------------------------- tensors

core::Tensor step_input(const core::Tensor& t, const char* what, const core::Shape& shape,
                        std::string_view scheduler) {
  PARADIT_CHECK(t.defined(), scheduler, ".step: ", what, " is missing");
  PARADIT_CHECK(t.dtype() == core::DType::F32, scheduler, ".step: ", what,
                " should be an F32 tensor, found ", t.str());
  if (!shape.empty()) {
    PARADIT_CHECK(t.shape() == shape, scheduler, ".step: ", what, " has shape ",
                  core::shape_str(t.shape()), ", the sample has ", core::shape_str(shape));
  }
  return t.contiguous();
}

void threshold_sample(core::Tensor& x, double ratio, double max_value) {
  PARADIT_CHECK(x.ndim() >= 2,
                "scheduler: thresholding needs a (batch, channels, ...) sample, "
                "found ",
                x.str());
  const int64_t batch = x.dim(0);
  const int64_t per = x.numel() / batch;
  // The quantile (a sort) on the host; the clamp and division as ops on x's device.
  std::vector<core::Tensor> rows;
  for (int64_t b = 0; b < batch; ++b) {
    const core::Tensor row = x.slice(0, b, b + 1);
    std::vector<float> abs_sorted = row.to_vector();
    for (float& v : abs_sorted) v = std::fabs(v);
    std::sort(abs_sorted.begin(), abs_sorted.end());
    // torch.quantile, linear interpolation between the two nearest ranks.
    const float rank = static_cast<float>(ratio) * static_cast<float>(per - 1);
    const int64_t lo = static_cast<int64_t>(std::floor(rank));
    const int64_t hi = static_cast<int64_t>(std::ceil(rank));
    const float w = rank - static_cast<float>(lo);
    const float a = abs_sorted[lo], c = abs_sorted[hi];
    float s = w < 0.5f ? a + w * (c - a) : c - (c - a) * (1 - w);
    s = std::min(std::max(s, 1.0f), static_cast<float>(max_value));
    rows.push_back(core::lincomb({{1.0f, core::clamp(row, -s, s)}}, {.div = s}));  // clamp(x)/s
  }
  x = core::concat(rows, 0);
}

}  // namespace paradit::schedulers
