// add/sub/mul (numpy broadcasting), scale, add_, modulate and gated_add against plain
// double-precision loops. Each output is one or two correctly rounded f32 operations on its
// inputs, so the bound is 2⁻²³ relative to the magnitudes involved (1.2e-7, well under 1e-5).

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/ops.h"
#include "support/random.h"

namespace paradit::core {
namespace {

using paradit::testing::random_tensor;
using paradit::testing::random_values;

constexpr double kRel = 2.5e-7;

// Element of `t` at the multi-index `idx` of the broadcast shape `out` (numpy rules).
double broadcast_at(const Tensor& t, const Shape& out, const std::vector<int64_t>& idx) {
  std::vector<int64_t> ti(static_cast<size_t>(t.ndim()));
  const int lead = static_cast<int>(out.size()) - t.ndim();
  for (int i = 0; i < t.ndim(); ++i) ti[i] = t.dim(i) == 1 ? 0 : idx[lead + i];
  return t.item_at(ti);
}

// Visits every multi-index of `shape` in row-major order.
void for_each_index(const Shape& shape,
                    const std::function<void(const std::vector<int64_t>&, int64_t)>& fn) {
  std::vector<int64_t> idx(shape.size(), 0);
  const int64_t n = shape_numel(shape);
  for (int64_t linear = 0; linear < n; ++linear) {
    fn(idx, linear);
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

void check_binary(const Tensor& a, const Tensor& b, const Shape& want_shape) {
  struct Op {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> op;
    std::function<double(double, double)> ref;
  };
  const Op ops[] = {
      {"add", [](const Tensor& x, const Tensor& y) { return add(x, y); },
       [](double x, double y) { return x + y; }},
      {"sub", [](const Tensor& x, const Tensor& y) { return sub(x, y); },
       [](double x, double y) { return x - y; }},
      {"mul", [](const Tensor& x, const Tensor& y) { return mul(x, y); },
       [](double x, double y) { return x * y; }},
  };
  for (const Op& op : ops) {
    Tensor y = op.op(a, b);
    const std::string what = std::string(op.name) + " " + a.str() + " " + b.str();
    ASSERT_EQ(y.shape(), want_shape) << what;
    const std::vector<float> got = y.to_vector();
    int reported = 0;
    for_each_index(want_shape, [&](const std::vector<int64_t>& idx, int64_t i) {
      const double u = broadcast_at(a, want_shape, idx), v = broadcast_at(b, want_shape, idx);
      const double want = op.ref(u, v);
      const double bound = kRel * (std::fabs(u) + std::fabs(v) + std::fabs(u * v)) + 1e-30;
      if (!(std::fabs(got[i] - want) <= bound) && reported++ < 5)
        ADD_FAILURE() << what << ": element " << i << " got " << got[i] << " expected " << want;
    });
  }
}

TEST(Elementwise, SameShape) {
  check_binary(random_tensor({7}, 1), random_tensor({7}, 2), {7});
  check_binary(random_tensor({3, 5, 9}, 3), random_tensor({3, 5, 9}, 4), {3, 5, 9});
  check_binary(random_tensor({64, 1031}, 5), random_tensor({64, 1031}, 6), {64, 1031});
  check_binary(random_tensor({70000}, 7), random_tensor({70000}, 8), {70000});  // one long row
}

TEST(Elementwise, Broadcasting) {
  check_binary(random_tensor({2, 3, 4}, 10), random_tensor({4}, 11), {2, 3, 4});  // trailing
  check_binary(random_tensor({4}, 12), random_tensor({2, 3, 4}, 13), {2, 3, 4});  // on the left
  check_binary(random_tensor({2, 3, 4}, 14), random_tensor({3, 1}, 15), {2, 3, 4});
  check_binary(random_tensor({2, 1, 4}, 16), random_tensor({1, 3, 1}, 17), {2, 3, 4});  // both
  check_binary(random_tensor({5, 1}, 18), random_tensor({1, 6}, 19), {5, 6});           // outer
  check_binary(random_tensor({2, 3, 4}, 20), Tensor::from_vector({2.5f}, {}), {2, 3, 4});
  check_binary(Tensor::from_vector({-1.5f}, {1}), random_tensor({3, 2}, 21), {3, 2});
  check_binary(random_tensor({2, 5, 1, 3}, 22), random_tensor({5, 7, 1}, 23), {2, 5, 7, 3});
  check_binary(random_tensor({256, 300}, 24), random_tensor({300}, 25), {256, 300});  // parallel
  check_binary(random_tensor({256, 300}, 26), random_tensor({256, 1}, 27), {256, 300});
  check_binary(random_tensor({0, 3}, 28), random_tensor({3}, 29), {0, 3});  // empty
}

TEST(Elementwise, NonContiguousOperands) {
  Tensor big = random_tensor({6, 10, 8}, 30);
  Tensor a = big.slice(1, 2, 7).slice(2, 1, 6);          // (6, 5, 5)
  Tensor b = random_tensor({5, 12}, 31).slice(1, 3, 8);  // (5, 5) row stride 12
  check_binary(a, b, {6, 5, 5});
  check_binary(b, a, {6, 5, 5});
  Tensor col = random_tensor({5, 4}, 32).select(1, 2);  // (5) stride 4
  check_binary(a, col, {6, 5, 5});
  check_binary(a, a, {6, 5, 5});
}

TEST(Elementwise, ShapesThatDoNotBroadcast) {
  EXPECT_THROW(add(random_tensor({2, 3}, 40), random_tensor({4}, 41)), Error);
  EXPECT_THROW(mul(random_tensor({2, 3}, 42), random_tensor({3, 3}, 43)), Error);
  EXPECT_THROW(sub(random_tensor({2, 3}, 44), Tensor::from_vector_i64({1, 2, 3}, {3})), Error);
}

TEST(Elementwise, Scale) {
  Tensor x = random_tensor({33, 65}, 50);
  for (const Tensor& t : {x, x.slice(1, 4, 60), random_tensor({100000}, 51)}) {
    const std::vector<float> in = t.to_vector(), got = scale(t, -0.37f).to_vector();
    for (size_t i = 0; i < in.size(); ++i)
      ASSERT_EQ(got[i], in[i] * -0.37f) << i;  // one f32 multiply: exact match
  }
}

TEST(Elementwise, AddInPlace) {
  Tensor a = random_tensor({4, 6, 8}, 60);
  const Tensor a0 = a.clone();
  Tensor b = random_tensor({6, 1}, 61);
  add_(a, b);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 6; ++j)
      for (int64_t k = 0; k < 8; ++k)
        ASSERT_EQ(a.item_at({i, j, k}),
                  static_cast<float>(a0.item_at({i, j, k}) + b.item_at({j, 0})));
  // b a strided view; then a added to itself.
  Tensor c = random_tensor({4, 6, 16}, 62).slice(2, 3, 11);
  Tensor a1 = a.clone();
  add_(a, c);
  EXPECT_EQ(a.item_at({3, 5, 7}), static_cast<float>(a1.item_at({3, 5, 7}) + c.item_at({3, 5, 7})));
  Tensor a2 = a.clone();
  add_(a, a);
  EXPECT_EQ(a.item_at({1, 2, 3}), 2 * a2.item_at({1, 2, 3}));
  // a must be contiguous and b must broadcast to a's shape.
  Tensor view = a.slice(2, 0, 4);
  EXPECT_THROW(add_(view, random_tensor({4}, 63)), Error);
  EXPECT_THROW(add_(a, random_tensor({5, 6, 8}, 64)), Error);
  Tensor small = random_tensor({6, 8}, 65);
  EXPECT_THROW(add_(small, random_tensor({4, 6, 8}, 66)), Error);  // would grow a
}

// x·(1 + scale) + shift with the per-batch rows of shift/scale, in double.
void check_modulate(const Tensor& x, const Tensor& shift, const Tensor& sc,
                    const std::string& what) {
  Tensor y = modulate(x, shift, sc);
  ASSERT_EQ(y.shape(), x.shape()) << what;
  auto row = [](const Tensor& p, int64_t b, int64_t d) {
    const int64_t bb = p.dim(0) == 1 ? 0 : b;
    return p.ndim() == 2 ? p.item_at({bb, d}) : p.item_at({bb, 0, d});
  };
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t s = 0; s < x.dim(1); ++s)
      for (int64_t d = 0; d < x.dim(2); ++d) {
        const double xv = x.item_at({b, s, d}), sh = row(shift, b, d), scv = row(sc, b, d);
        const double want = xv * (1.0 + scv) + sh;
        const double bound = 3 * kRel * (std::fabs(xv) * (1.0 + std::fabs(scv)) + std::fabs(sh));
        ASSERT_NEAR(y.item_at({b, s, d}), want, bound)
            << what << " at " << b << "," << s << "," << d;
      }
}

TEST(Modulate, ParameterShapes) {
  Tensor x = random_tensor({2, 7, 33}, 70);
  check_modulate(x, random_tensor({2, 33}, 71), random_tensor({2, 33}, 72), "(B, D)");
  check_modulate(x, random_tensor({2, 1, 33}, 73), random_tensor({2, 1, 33}, 74), "(B, 1, D)");
  check_modulate(x, random_tensor({2, 33}, 75), random_tensor({2, 1, 33}, 76), "mixed");
  check_modulate(x, random_tensor({1, 33}, 77), random_tensor({1, 1, 33}, 78), "batch 1");
  // adaLN: shift and scale are chunks of one (B, 6D) projection, row stride 6D.
  Tensor emb = random_tensor({2, 6 * 33}, 79);
  std::vector<Tensor> m = chunk(emb, 6, 1);
  check_modulate(x, m[0], m[1], "chunks of (B, 6D)");
  // x a view (a slice of the sequence) and a larger, parallel case.
  check_modulate(random_tensor({2, 9, 33}, 80).slice(1, 2, 8), m[3], m[4], "strided x");
  check_modulate(random_tensor({2, 300, 128}, 81), random_tensor({2, 128}, 82),
                 random_tensor({2, 128}, 83), "large");
}

void check_gated_add(const Tensor& x, const Tensor& gate, const Tensor& y) {
  Tensor out = gated_add(x, gate, y);
  ASSERT_EQ(out.shape(), x.shape());
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t s = 0; s < x.dim(1); ++s)
      for (int64_t d = 0; d < x.dim(2); ++d) {
        const int64_t bb = gate.dim(0) == 1 ? 0 : b;
        const double g = gate.ndim() == 2 ? gate.item_at({bb, d}) : gate.item_at({bb, 0, d});
        const double xv = x.item_at({b, s, d}), yv = y.item_at({b, s, d});
        const double want = xv + g * yv;
        ASSERT_NEAR(out.item_at({b, s, d}), want,
                    2 * kRel * (std::fabs(xv) + std::fabs(g * yv)) + 1e-30)
            << x.str() << " " << gate.str() << " at " << b << "," << s << "," << d;
      }
}

TEST(GatedAdd, ParameterShapes) {
  Tensor x = random_tensor({3, 5, 17}, 90), y = random_tensor({3, 5, 17}, 91);
  Tensor emb = random_tensor({3, 3 * 17}, 92);
  std::vector<Tensor> gates = chunk(emb, 3, 1);
  for (const Tensor& gate : {random_tensor({3, 17}, 93), random_tensor({3, 1, 17}, 94),
                             random_tensor({1, 17}, 95), gates[2]})
    check_gated_add(x, gate, y);
  // x and y as views (the image part of a joint text+image sequence) and a larger case.
  Tensor joint_x = random_tensor({3, 9, 17}, 96), joint_y = random_tensor({3, 9, 20}, 97);
  check_gated_add(joint_x.slice(1, 4, 9), gates[0], joint_y.slice(1, 4, 9).slice(2, 1, 18));
  check_gated_add(random_tensor({2, 300, 128}, 98), random_tensor({2, 128}, 99),
                  random_tensor({2, 300, 128}, 100));
}

TEST(Modulate, BadArgumentsThrow) {
  Tensor x = random_tensor({2, 7, 33}, 100);
  EXPECT_THROW(modulate(x, random_tensor({2, 32}, 101), random_tensor({2, 33}, 102)), Error);
  EXPECT_THROW(modulate(x, random_tensor({3, 33}, 103), random_tensor({3, 33}, 104)), Error);
  EXPECT_THROW(modulate(x, random_tensor({2, 2, 33}, 105), random_tensor({2, 33}, 106)), Error);
  EXPECT_THROW(modulate(random_tensor({7, 33}, 107), random_tensor({2, 33}, 108),
                        random_tensor({2, 33}, 109)),
               Error);
  EXPECT_THROW(gated_add(x, random_tensor({2, 33}, 110), random_tensor({2, 6, 33}, 111)), Error);
  EXPECT_THROW(gated_add(x, random_tensor({2, 34}, 112), x), Error);
}

TEST(CountNonFinite, CountsNanAndInfinities) {
  // Plain count on the host against the op, on sizes below and above the threaded bound and on
  // a non-contiguous view.
  for (int64_t n : {1, 7, 1000, 70001}) {
    std::vector<float> v = random_values(static_cast<size_t>(n), 200 + static_cast<uint32_t>(n));
    const float specials[] = {std::nanf(""), INFINITY, -INFINITY, 3.4e38f};
    uint64_t h = static_cast<uint64_t>(n);
    for (int64_t k = 0; k < n / 5 + 1; ++k) {
      h = h * 6364136223846793005ull + 1442695040888963407ull;  // an LCG picks place and value
      v[(h >> 20) % static_cast<uint64_t>(n)] = specials[(h >> 60) % 4];
    }
    int64_t expected = 0;
    for (float x : v) expected += std::isnan(x) || std::isinf(x) ? 1 : 0;
    EXPECT_EQ(count_non_finite(Tensor::from_vector(v, {n})), expected) << "n=" << n;
  }
  Tensor x = random_tensor({4, 6}, 300);
  x.data<float>()[1] = std::nanf("");   // column 1
  x.data<float>()[6 + 4] = INFINITY;    // column 4
  EXPECT_EQ(count_non_finite(x.slice(1, 0, 2)), 1);
  EXPECT_EQ(count_non_finite(x.slice(1, 2, 6)), 1);
  EXPECT_EQ(count_non_finite(x), 2);
  EXPECT_EQ(count_non_finite(Tensor::empty({0, 3})), 0);
}

}  // namespace
}  // namespace paradit::core
