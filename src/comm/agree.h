#pragma once
// Agreement on an error across a group, so that a bad request ends every rank the same way:
// one line printed once, exit code 2, no MPI_Abort and no rank left waiting.
//
//   comm::agree(group, [&] { checks that may throw paradit::Error });
//
// Every rank of the group runs its checks, then takes part in one agreement (a collective): when
// any rank failed, every rank throws AgreedError carrying the message of the lowest failing
// rank (with "rank R: " in front when the ranks did not all fail with the same message), so
// the command line prints it once (rank 0) and all ranks end alike. Only paradit::Error is
// agreed on; any other exception leaves the call at once (an internal error: the job aborts).

#include <string>

#include "comm/communicator.h"
#include "core/error.h"

namespace paradit::comm {

class AgreedError : public Error {
 public:
  using Error::Error;
};

// Collective over `group`. local_error: this rank's message, empty when its checks passed.
// Returns when every rank passed; otherwise throws AgreedError on every rank.
void agree_on_error(const Communicator& group, const std::string& local_error);

template <typename F>
void agree(const Communicator& group, F&& checks) {
  std::string error;
  try {
    checks();
  } catch (const AgreedError&) {
    throw;  // already agreed by a nested call
  } catch (const Error& e) {
    error = e.what();
    if (error.empty()) error = "error";
  }
  agree_on_error(group, error);
}

}  // namespace paradit::comm
