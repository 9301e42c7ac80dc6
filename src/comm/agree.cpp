#include "comm/agree.h"

#include <cstring>
#include <vector>

namespace paradit::comm {

void agree_on_error(const Communicator& group, const std::string& local_error) {
  if (group.size() == 1) {
    if (!local_error.empty()) throw AgreedError(local_error);
    return;
  }
  // 1. Who failed: per rank, 1 when it did (an all-reduce of a one-hot vector).
  const int n = group.size();
  core::Tensor failed = core::Tensor::zeros({n}, core::DType::I32);
  failed.data<int32_t>()[group.rank()] = local_error.empty() ? 0 : 1;
  group.all_reduce(failed);
  const int32_t* f = failed.data<int32_t>();
  int first = -1, count = 0;
  for (int r = 0; r < n; ++r) {
    if (f[r] == 0) continue;
    if (first < 0) first = r;
    ++count;
  }
  if (first < 0) return;
  // 2. The lowest failing rank's message, to everyone (its length first).
  core::Tensor length = core::Tensor::zeros({1}, core::DType::I64);
  if (group.rank() == first) length.data<int64_t>()[0] = static_cast<int64_t>(local_error.size());
  group.broadcast(length, first);
  const int64_t bytes = length.data<int64_t>()[0];
  core::Tensor text = core::Tensor::zeros({bytes}, core::DType::U8);
  if (group.rank() == first && bytes > 0) std::memcpy(text.raw_data(), local_error.data(), bytes);
  group.broadcast(text, first);
  std::string message(reinterpret_cast<const char*>(text.raw_data()), static_cast<size_t>(bytes));
  // 3. Did every rank fail with this message? (Deterministic checks do; a rank's own problem,
  // such as a missing file on one node, is named with its rank.)
  core::Tensor same = core::Tensor::zeros({1}, core::DType::I32);
  same.data<int32_t>()[0] = local_error == message ? 1 : 0;
  group.all_reduce(same);
  if (same.data<int32_t>()[0] != n) message = "rank " + std::to_string(first) + ": " + message;
  throw AgreedError(message);
}

}  // namespace paradit::comm
