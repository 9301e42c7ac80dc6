// The backend-ops test driver (cases: cases_*.cpp; the case interface: backend_ops.h).
//
// For every case and every run of the matrix — CPU F32, BF16, F16, and CUDA F32, BF16, F16 in
// builds with the CUDA backend on a machine with a visible GPU —
//   1. unsupported (core::supports, or the case's own reason): one line saying why, no failure;
//   2. fresh random inputs (seeded by case, run and PARADIT_BACKEND_OPS_SEED), rounded to the
//      run's dtype where the role says so;
//   3. the CPU F32 result on those same rounded inputs: the reference;
//   4. CPU F32 run: the reference itself is checked against the case's plain loop in double;
//      other runs: the op on the run's device and dtype, its outputs poisoned beforehand (host
//      allocations filled with 0xFF bytes through glibc's M_PERTURB; on CUDA every cached block
//      of each output's size class filled with 0xFF bytes — NaN in every float dtype), then
//      compared with the reference: max|got − want| / max|want| and the RMS-normalised error
//      ‖got − want‖ / ‖want‖ both ≤ the case's tolerance (F32 1e-5, BF16/F16 1e-2), or, for
//      exactly rounded ops, got == want rounded to the output dtype for every element. A NaN
//      where the reference has none (an element never written) fails.
// Every run prints one line; the failures are listed again at the end (the tail of the log).
// Besides: every op of core::all_ops() must have a case and a case with a plain loop, and the
// CUDA test says why it is skipped (PARADIT_REQUIRE_GPU=1 turns that skip into a failure).

#include <gtest/gtest.h>
#include <malloc.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "backend_ops.h"
#include "support/random.h"

#ifdef PARADIT_WITH_CUDA
#include "backend/cuda/allocator.h"
#include "backend/cuda/attention.h"
#include "backend/cuda/runtime.h"
#endif

namespace paradit::backend_ops {

const CaseList& all_cases() {
  static const CaseList cases = [] {
    CaseList c;
    add_linear_cases(c);
    add_norm_cases(c);
    add_activation_cases(c);
    add_attention_cases(c);
    add_conv_cases(c);
    add_elementwise_cases(c);
    add_data_cases(c);
    return c;
  }();
  return cases;
}

namespace {

// ---------------------------------------------------------------- the environment

// Why CUDA runs are skipped here; empty when a GPU is usable.
std::string cuda_skip_reason() {
#ifdef PARADIT_WITH_CUDA
  if (!backend::cuda::available()) {
    return "this build has the CUDA backend, but no CUDA device is visible "
           "(backend::cuda::device_count() = 0)";
  }
  return {};
#else
  return "this build has no CUDA backend (configured with PARADIT_WITH_CUDA=OFF)";
#endif
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

uint64_t base_seed() {
  const char* v = std::getenv("PARADIT_BACKEND_OPS_SEED");
  return v != nullptr ? std::strtoull(v, nullptr, 10) : 1;
}

bool g_host_poison = false;  // host allocations come back filled with 0xFF bytes
bool g_cuda_broken = false;  // a CUDA error left the context unusable
std::string g_cuda_broken_why;

struct Tally {
  int ok = 0, unsupported = 0, failed = 0, no_plain_loop = 0, skipped = 0;
  std::vector<std::string> failures;
} g_tally;

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

const std::vector<Run>& matrix() {
  static const std::vector<Run> runs = [] {
    std::vector<Run> v;
    for (DType t : {DType::F32, DType::BF16, DType::F16}) v.push_back({Device::CPU, t});
    if (cuda_skip_reason().empty()) {
      for (DType t : {DType::F32, DType::BF16, DType::F16}) v.push_back({Device::CUDA, t});
    }
    return v;
  }();
  return runs;
}

// ---------------------------------------------------------------- inputs

uint64_t seed_of(const std::string& description, size_t run, size_t input) {
  uint64_t h = 1469598103934665603ull ^ base_seed();
  for (char c : description) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h ^ (run * 0x9E3779B97F4A7C15ull) ^ (input * 0xC2B2AE3D27D4EB4Full);
}

// The host values of an input: F32 for the float roles, its own dtype for kFixed / kHost.
Tensor make_host(const InputSpec& s, uint64_t seed) {
  const size_t n = static_cast<size_t>(core::shape_numel(s.shape));
  std::vector<float> v = s.values ? s.values(n, seed) : testing::random_values(n, seed, s.lo, s.hi);
  PARADIT_CHECK(v.size() == n, "input ", s.name, ": ", v.size(), " values for ", fmt(s.shape));
  Tensor t = Tensor::empty(s.shape);
  std::copy(v.begin(), v.end(), t.data<float>());
  if (s.role == Role::kFixed || s.role == Role::kHost) return t.to(s.dtype);
  return t;
}

DType input_dtype(const InputSpec& s, const Run& r) {
  switch (s.role) {
    case Role::kAct:
      return r.dtype;
    case Role::kF32:
      return DType::F32;
    case Role::kWeight:
      return s.follows_act ? r.dtype : s.dtype;
    case Role::kFixed:
    case Role::kHost:
      return s.dtype;
  }
  return DType::F32;
}

// The input of the CPU F32 reference: the values the run's device sees, as the CPU takes them
// (F32 activations; BF16 weights kept, other weight dtypes widened to F32).
Tensor reference_input(const InputSpec& s, const Tensor& h, const Run& r) {
  const DType t = input_dtype(s, r);
  switch (s.role) {
    case Role::kAct:
      return t == DType::F32 ? h : h.to(t).to(DType::F32);
    case Role::kWeight:
      if (t == DType::BF16) return h.to(DType::BF16);
      return t == DType::F32 ? h : h.to(t).to(DType::F32);
    default:
      return h;
  }
}

Tensor device_input(const InputSpec& s, const Tensor& h, const Run& r) {
  if (s.role == Role::kHost) return h;
  return h.to(input_dtype(s, r)).to_device(r.device);
}

// ---------------------------------------------------------------- comparison

std::string index_str(const Shape& shape, size_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    const int64_t d = std::max<int64_t>(shape[i], 1);
    idx[i] = static_cast<int64_t>(flat) % d;
    flat /= static_cast<size_t>(d);
  }
  return fmt(Shape(idx.begin(), idx.end()));
}

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.8g", v);
  return buf;
}

std::string sci(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

std::string error_text(bool exact, double err, double rms, double tol) {
  if (exact) return "exact";
  return "err " + sci(err) + " rms " + sci(rms) + " (tol " + sci(tol) + ")";
}

struct Verdict {
  bool ok = true;
  double err = 0, rms = 0;
  std::string detail;  // why it failed
};

// got (values of a tensor of dtype got_dtype) against want, both in logical order of `shape`.
Verdict compare(const std::vector<double>& got, DType got_dtype, const std::vector<double>& want,
                const Shape& shape, bool exact, double tol) {
  Verdict v;
  if (got.size() != want.size()) {
    v.ok = false;
    v.detail = std::to_string(got.size()) + " elements, expected " + std::to_string(want.size());
    return v;
  }
  double max_diff = 0, max_want = 0, sum_d2 = 0, sum_w2 = 0;
  size_t worst = 0, nan_count = 0, inf_mismatch = 0, exact_mismatch = 0;
  std::string first_nan, first_inf, first_exact;
  for (size_t i = 0; i < want.size(); ++i) {
    const double w = want[i], g = got[i];
    if (std::isnan(w)) {
      v.ok = false;
      v.detail = "the reference itself has NaN at " + index_str(shape, i) + " (a case bug)";
      return v;
    }
    if (std::isnan(g)) {
      if (nan_count++ == 0) first_nan = index_str(shape, i);
      continue;
    }
    if (std::isinf(w) || std::isinf(g)) {
      if (w != g && inf_mismatch++ == 0) {
        first_inf = index_str(shape, i) + ": got " + num(g) + ", want " + num(w);
      }
      continue;
    }
    if (exact && g != round_to(got_dtype, w) && exact_mismatch++ == 0) {
      first_exact = index_str(shape, i) + ": got " + num(g) + ", want " +
                    num(round_to(got_dtype, w)) + " (" + num(w) + " rounded to " + fmt(got_dtype) +
                    ")";
    }
    const double d = std::fabs(g - w);
    if (d > max_diff) {
      max_diff = d;
      worst = i;
    }
    max_want = std::max(max_want, std::fabs(w));
    sum_d2 += d * d;
    sum_w2 += w * w;
  }
  v.err = max_diff == 0 ? 0 : max_diff / std::max(max_want, 1e-30);
  v.rms = sum_d2 == 0 ? 0 : std::sqrt(sum_d2 / std::max(sum_w2, 1e-300));
  std::vector<std::string> why;
  if (nan_count > 0) {
    why.push_back(std::to_string(nan_count) + " NaN (first at " + first_nan +
                  "): elements never written (outputs are poisoned with NaN) or computed as NaN");
  }
  if (inf_mismatch > 0) {
    why.push_back(std::to_string(inf_mismatch) + " infinities differ (first at " + first_inf + ")");
  }
  if (exact && exact_mismatch > 0) {
    why.push_back(std::to_string(exact_mismatch) + " of " + std::to_string(want.size()) +
                  " elements not exactly rounded (first at " + first_exact + ")");
  }
  if (!exact && (v.err > tol || v.rms > tol)) {
    why.push_back("error " + sci(v.err) + " (rms " + sci(v.rms) + ") > " + sci(tol) +
                  "; worst at " + index_str(shape, worst) + ": got " + num(got[worst]) + ", want " +
                  num(want[worst]));
  }
  if (!why.empty()) {
    v.ok = false;
    for (size_t i = 0; i < why.size(); ++i) {
      if (i) v.detail += "; ";
      v.detail += why[i];
    }
  }
  return v;
}

// Compares every named output; returns the failure text (empty when all pass) and the largest
// error through *err / *rms.
std::string compare_outputs(const std::vector<Output>& got, const std::vector<RefOutput>& want,
                            bool exact, double tol, double* err, double* rms) {
  *err = 0;
  *rms = 0;
  std::string fails;
  auto add = [&](const std::string& s) {
    if (!fails.empty()) fails += " | ";
    fails += s;
  };
  if (got.size() != want.size()) {
    add(std::to_string(got.size()) + " outputs, expected " + std::to_string(want.size()));
  }
  for (const RefOutput& w : want) {
    const auto it =
        std::find_if(got.begin(), got.end(), [&](const Output& o) { return o.name == w.name; });
    if (it == got.end()) {
      add("no output '" + w.name + "'");
      continue;
    }
    if (!it->t.defined()) {
      add(w.name + ": undefined");
      continue;
    }
    if (it->t.shape() != w.shape) {
      add(w.name + ": shape " + fmt(it->t.shape()) + ", expected " + fmt(w.shape));
      continue;
    }
    const Verdict v = compare(values(it->t), it->t.dtype(), w.v, w.shape, exact, tol);
    *err = std::max(*err, v.err);
    *rms = std::max(*rms, v.rms);
    if (!v.ok) add(w.name + " (" + fmt(it->t.dtype()) + "): " + v.detail);
  }
  return fails;
}

std::vector<RefOutput> as_reference(const std::vector<Output>& outs) {
  std::vector<RefOutput> r;
  for (const Output& o : outs) {
    r.push_back({o.name, o.t.defined() ? o.t.shape() : Shape{},
                 o.t.defined() ? values(o.t) : std::vector<double>{}});
  }
  return r;
}

// ---------------------------------------------------------------- CUDA helpers

// Fills every cached device block of the size classes of `byte_sizes` with 0xFF bytes (NaN in
// every float dtype): takes blocks of each size until the allocator has to cudaMalloc a new one
// (its cache of that class is then empty), fills them, and gives them back to the cache, where
// the op's outputs of that size will find them.
void poison_cuda(const std::set<size_t>& byte_sizes) {
#ifdef PARADIT_WITH_CUDA
  namespace cu = backend::cuda;
  for (size_t nb : byte_sizes) {
    if (nb == 0) continue;
    std::vector<Tensor> held;
    const uint64_t mallocs = cu::allocator_stats().device_mallocs;
    for (int i = 0; i < 256; ++i) {
      held.push_back(Tensor::full({static_cast<int64_t>(nb)}, 255.0f, DType::U8, Device::CUDA));
      if (held.size() >= 4 && cu::allocator_stats().device_mallocs > mallocs) break;
    }
  }
  cu::synchronize();
#else
  (void)byte_sizes;
#endif
}

void cuda_sync() {
#ifdef PARADIT_WITH_CUDA
  backend::cuda::synchronize_device();
#endif
}

// After an error on CUDA: whether the context still works.
bool cuda_alive(std::string* why) {
  try {
    const Tensor t = Tensor::full({3}, 2.0f, DType::F32, Device::CUDA);
    const std::vector<float> v = t.to_vector();
    cuda_sync();
    if (v[0] == 2.0f && v[2] == 2.0f) return true;
    *why = "a fill of 2.0 read back as " + num(v[0]);
  } catch (const std::exception& e) {
    *why = e.what();
  }
  return false;
}

}  // namespace

bool cudnn_built() {
#if defined(PARADIT_WITH_CUDA)
  return backend::cuda::detail::cudnn_built();
#else
  return false;
#endif
}

namespace {

// ---------------------------------------------------------------- one case

void fail_run(const Case& c, const Run& r, const std::string& why) {
  const std::string line = c.describe() + " " + r.name() + ": FAIL: " + why;
  say("  " + r.name() + "  FAIL  " + why);
  g_tally.failed++;
  g_tally.failures.push_back(line);
  ADD_FAILURE() << line;
}

void run_case(const Case& c, size_t case_index) {
  const std::string desc = c.describe();
  say("[" + std::to_string(case_index) + "] " + desc + (c.exact() ? "  (exact)" : ""));
  const std::vector<InputSpec> specs = c.inputs();
  const std::vector<Run> runs = matrix();
  for (size_t ri = 0; ri < runs.size(); ++ri) {
    const Run& r = runs[ri];
    if (c.fixed_dtype() && r.dtype != DType::F32) continue;
    // 1. unsupported
    std::string why;
    for (Op op : c.ops()) {
      if (!core::supports(op, r.device, r.dtype)) {
        try {
          core::require_support(op, r.device, r.dtype);
        } catch (const Error& e) {
          why = e.what();
        }
        break;
      }
    }
    if (why.empty()) why = c.unsupported(r);
    if (!why.empty()) {
      say("  " + r.name() + "  unsupported: " + why);
      g_tally.unsupported++;
      continue;
    }
    if (r.device == Device::CUDA && g_cuda_broken) {
      fail_run(c, r,
               "not run: the CUDA context is unusable since an earlier case (" + g_cuda_broken_why +
                   ")");
      continue;
    }
    // 2. fresh inputs; 3. the reference on the same rounded values.
    std::vector<Tensor> hosts, ref_in;
    std::vector<RefOutput> want;
    std::vector<Output> ref_out;
    try {
      for (size_t i = 0; i < specs.size(); ++i) {
        hosts.push_back(make_host(specs[i], seed_of(desc, ri, i)));
        ref_in.push_back(reference_input(specs[i], hosts.back(), r));
      }
      const std::vector<Tensor> ref_views = c.views(ref_in);
      Result ref = c.run(ref_views, Run{});
      if (!ref.contract.empty()) {
        fail_run(c, r, "the CPU F32 reference breaks the op's contract: " + ref.contract);
        continue;
      }
      ref_out = ref.outputs;
      // 4a. the CPU F32 run: against the plain loop.
      if (r.is_reference()) {
        if (!c.has_reference()) {
          say("  " + r.name() +
              "  ran (this case has no plain loop; the CPU F32 result is the "
              "reference of the other runs)");
          g_tally.no_plain_loop++;
          continue;
        }
        const std::vector<RefOutput> plain = c.reference(ref_views);
        double err = 0, rms = 0;
        const std::string f =
            compare_outputs(ref_out, plain, c.exact(), c.reference_tolerance(), &err, &rms);
        if (!f.empty()) {
          fail_run(c, r, "against the plain loop: " + f);
        } else {
          say("  " + r.name() +
              "  OK    vs plain loop: " + error_text(c.exact(), err, rms, c.reference_tolerance()));
          g_tally.ok++;
        }
        continue;
      }
      want = as_reference(ref_out);
    } catch (const std::exception& e) {
      fail_run(c, r, std::string("the CPU F32 reference threw: ") + e.what());
      continue;
    }
    // 4b. the run under test, outputs poisoned first.
    Result got;
    try {
      std::vector<Tensor> dev_in;
      for (size_t i = 0; i < specs.size(); ++i)
        dev_in.push_back(device_input(specs[i], hosts[i], r));
      if (r.device == Device::CUDA) {
        std::set<size_t> sizes;
        for (const RefOutput& w : want) {
          const size_t n = static_cast<size_t>(core::shape_numel(w.shape));
          for (size_t b : {1, 2, 4, 8}) sizes.insert(n * b);
        }
        poison_cuda(sizes);
      }
      got = c.run(c.views(dev_in), r);
      if (r.device == Device::CUDA) cuda_sync();
    } catch (const std::exception& e) {
      std::string msg = std::string("threw: ") + e.what();
      if (r.device == Device::CUDA) {
        std::string dead;
        if (!cuda_alive(&dead)) {
          g_cuda_broken = true;
          g_cuda_broken_why = desc + " " + r.name() + ": " + e.what();
          msg += " — and the CUDA context no longer works (" + dead + ")";
        }
      }
      fail_run(c, r, msg);
      continue;
    }
    if (!got.contract.empty()) {
      fail_run(c, r, "breaks the op's contract: " + got.contract);
      continue;
    }
    double err = 0, rms = 0;
    const double tol = c.tolerance(r);
    std::string f;
    try {
      f = compare_outputs(got.outputs, want, c.exact(), tol, &err, &rms);
    } catch (const std::exception& e) {
      f = std::string("reading the outputs back threw: ") + e.what();
    }
    if (!f.empty()) {
      fail_run(c, r, f);
    } else {
      say("  " + r.name() + "  OK    " + error_text(c.exact(), err, rms, tol));
      g_tally.ok++;
    }
  }
}

// ---------------------------------------------------------------- gtest plumbing

class BackendOps : public ::testing::TestWithParam<size_t> {};

TEST_P(BackendOps, Case) { run_case(*all_cases()[GetParam()], GetParam()); }

std::string test_name(const ::testing::TestParamInfo<size_t>& info) {
  std::string name = "c";
  name += std::to_string(1000 + info.param).substr(1);
  name += "_";
  bool underscore = true;
  for (char ch : all_cases()[info.param]->describe()) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      name += ch;
      underscore = false;
    } else if (!underscore) {
      name += '_';
      underscore = true;
    }
  }
  while (!name.empty() && name.back() == '_') name.pop_back();
  return name;
}

std::vector<size_t> case_indices() {
  std::vector<size_t> v(all_cases().size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

INSTANTIATE_TEST_SUITE_P(Ops, BackendOps, ::testing::ValuesIn(case_indices()), test_name);

// Every op of the registry has a case; and one with a plain loop, so that a CPU-only machine
// checks it too.
TEST(BackendOpsRegistry, EveryOpHasACase) {
  std::map<Op, int> cases, plain;
  for (const auto& c : all_cases()) {
    for (Op op : c->ops()) {
      cases[op]++;
      if (c->has_reference()) plain[op]++;
    }
  }
  std::string missing, missing_plain, table;
  for (Op op : core::all_ops()) {
    const std::string name(core::op_name(op));
    table += " " + name + ":" + std::to_string(cases[op]);
    if (cases[op] == 0) missing += " " + name;
    if (plain[op] == 0) missing_plain += " " + name;
  }
  say("cases per op (" + std::to_string(all_cases().size()) + " cases):" + table);
  EXPECT_TRUE(missing.empty()) << "ops of core::all_ops() without a backend-ops case:" << missing;
  EXPECT_TRUE(missing_plain.empty())
      << "ops without a case that has a plain-loop reference:" << missing_plain;
}

TEST(BackendOpsRegistry, DescriptionsAreUnique) {
  std::set<std::string> seen;
  for (const auto& c : all_cases()) {
    EXPECT_TRUE(seen.insert(c->describe()).second) << "two cases are " << c->describe();
  }
}

// The CUDA rows run only where a GPU is visible; this says why they did not.
TEST(BackendOpsCuda, DeviceVisible) {
  const std::string why = cuda_skip_reason();
  if (!why.empty()) {
    if (env_flag("PARADIT_REQUIRE_GPU")) FAIL() << "PARADIT_REQUIRE_GPU is set, but " << why;
    GTEST_SKIP() << "CUDA runs skipped: " << why;
  }
#ifdef PARADIT_WITH_CUDA
  namespace cu = backend::cuda;
  const int dev = cu::current_device();
  say("CUDA device " + std::to_string(dev) + ": " + cu::device_name(dev) + ", sm_" +
      std::to_string(cu::compute_capability(dev)) + ", cuDNN " +
      (cudnn_built() ? "built" : "not built"));
#endif
}

// Mixed devices are a clean error naming both, and the front ends' checks hold for device
// tensors (spot checks; every op shares the front end of the CPU, where tests/core checks them).
TEST(BackendOpsCuda, MixedDevicesAreErrors) {
  const std::string why = cuda_skip_reason();
  if (!why.empty()) GTEST_SKIP() << "CUDA runs skipped: " << why;
  const Tensor h = Tensor::full({2, 8}, 1.0f);
  const Tensor d = Tensor::full({2, 8}, 1.0f, DType::F32, Device::CUDA);
  auto expect_device_error = [](const std::function<void()>& f, const char* what) {
    try {
      f();
      ADD_FAILURE() << what << ": no error for operands on two devices";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_TRUE(m.find("cpu") != std::string::npos && m.find("cuda") != std::string::npos)
          << what << ": " << m;
    }
  };
  expect_device_error([&] { core::add(d, h); }, "add");
  expect_device_error([&] { core::linear(d, h); }, "linear");
  expect_device_error([&] { core::layer_norm(d, Tensor::full({8}, 1.0f), {}, 1e-6f); },
                      "layer_norm");
  expect_device_error([&] { core::matmul(d.unsqueeze(0), h.unsqueeze(0), true); }, "matmul");
  // attention with a host key mask for device q, k, v
  const Tensor q = Tensor::full({1, 8, 2, 64}, 0.5f, DType::BF16, Device::CUDA);
  core::AttentionOptions o;
  o.key_mask = Tensor::full({1, 8}, 1.0f);
  expect_device_error([&] { core::attention(q, q, q, o); }, "attention key_mask");
  // the op's own checks hold on the device too: mismatched shapes, mixed dtypes
  EXPECT_THROW(core::attention(q, q, Tensor::full({1, 9, 2, 64}, 0.5f, DType::BF16, Device::CUDA)),
               Error);
  EXPECT_THROW(core::attention(q, q, q.to(DType::F16)), Error);
  EXPECT_THROW(core::add(d, d.to(DType::BF16)), Error);
  EXPECT_THROW(core::linear(d, Tensor::full({5, 9}, 1.0f, DType::F32, Device::CUDA)), Error);
}

class Environment : public ::testing::Environment {
 public:
  void SetUp() override {
#ifdef M_PERTURB
    // Every host allocation comes back filled with 0xFF bytes (glibc: the complement of the
    // low byte of the value): NaN in F32, BF16, F16 and F64.
    mallopt(M_PERTURB, 0x100);
#endif
    const Tensor probe = Tensor::empty({1000});
    const float* p = probe.data<float>();
    g_host_poison = std::all_of(p, p + 1000, [](float v) { return std::isnan(v); });
    std::string runs;
    for (const Run& r : matrix()) runs += " [" + r.name() + "]";
    say("backend_ops: " + std::to_string(all_cases().size()) + " cases; runs:" + runs + "; seed " +
        std::to_string(base_seed()) + " (PARADIT_BACKEND_OPS_SEED)");
    const std::string why = cuda_skip_reason();
    say(why.empty() ? "CUDA runs: on" : "CUDA runs skipped: " + why);
    say(std::string("outputs poisoned before each run: host ") +
        (g_host_poison ? "yes (glibc M_PERTURB: allocations filled with 0xFF)"
                       : "NO (M_PERTURB unavailable: unwritten host outputs go unnoticed "
                         "unless the plain loop differs)") +
        (why.empty() ? "; CUDA yes (cached blocks of each output size filled with 0xFF)" : ""));
  }
  void TearDown() override {
    say("backend_ops summary: " + std::to_string(g_tally.ok) + " runs OK, " +
        std::to_string(g_tally.failed) + " FAILED, " + std::to_string(g_tally.unsupported) +
        " unsupported, " + std::to_string(g_tally.no_plain_loop) +
        " CPU F32 runs without a plain loop");
    if (!cuda_skip_reason().empty()) say("CUDA runs skipped: " + cuda_skip_reason());
    if (g_cuda_broken) say("the CUDA context broke at " + g_cuda_broken_why);
    for (const std::string& f : g_tally.failures) say("  FAILED " + f);
  }
};

const auto* const g_environment = ::testing::AddGlobalTestEnvironment(new Environment);

}  // namespace
}  // namespace paradit::backend_ops
