#include "parallel/collective_sums.h"

#include "core/error.h"

namespace paradit::parallel {

std::vector<double> sum_across(const comm::Communicator& group, const core::Tensor& local) {
  PARADIT_CHECK(local.dtype() == core::DType::F64 && local.ndim() == 1,
                "sum_across: expected an (n) F64 tensor, got ", local.str());
  // A host copy: a handful of values, reduced on the group's host transport.
  const core::Tensor host = local.to_device(core::Device::CPU).clone();  // (n) F64
  group.all_reduce(host);
  group.broadcast(host, 0);
  const double* v = host.data<double>();
  return std::vector<double>(v, v + host.numel());
}

}  // namespace paradit::parallel
