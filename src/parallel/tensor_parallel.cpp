#include "parallel/tensor_parallel.h"

#include <numeric>

namespace paradit::parallel {

std::pair<int64_t, int64_t> TensorParallel::share(int64_t n) const {
  const int p = degree();
  PARADIT_CHECK(n % p == 0, "tensor parallel: ", n, " units do not divide into ", p, " shares");
  const int64_t k = n / p;
  return {rank() * k, (rank() + 1) * k};
}

void TensorParallel::reduce(const core::Tensor& x) const {
  if (parallel()) group->all_reduce(x, comm::ReduceOp::kSum);
}

void check_tensor_parallel(int degree, const std::vector<int64_t>& sizes, const std::string& what,
                           const std::string& model) {
  int64_t g = 0;
  for (int64_t n : sizes) g = std::gcd(g, n);
  if (g % degree == 0) return;
  std::string valid;
  for (int64_t d = 1; d <= g; ++d) {
    if (g % d == 0) valid += (valid.empty() ? "" : ", ") + std::to_string(d);
  }
  fail(model, ": --tensor_parallel_degree ", degree, " does not divide ", what,
       " (valid degrees: ", valid, ")");
}

}  // namespace paradit::parallel
