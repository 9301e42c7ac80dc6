// A job in which one rank fails: rank 1 prints its error and calls comm::abort_job while rank 0
// waits for a message that will never come. Without abort_job the job would hang; test_abort.cpp
// runs it under mpirun and checks that it ends, non-zero, within seconds.
#include <cstdio>

#include "comm/runtime.h"
#include "core/error.h"

int main(int argc, char** argv) {
  using namespace paradit;
  comm::Communicator& world = comm::init(&argc, &argv);
  try {
    if (world.rank() == 1) fail("abort_probe: rank 1 fails on purpose");
    // Every other rank waits for rank 1, which never sends.
    core::Tensor x = core::Tensor::zeros({4});
    world.irecv(x, 1 % world.size(), 99).wait();
  } catch (const Error& e) {
    comm::abort_job(3, std::string("paradit: error: ") + e.what());
  }
  comm::finalize();
  return 0;
}
