// The MPI side of comm/device.cpp: which ranks share a node.
#include <mpi.h>

#include "comm/device.h"
#include "comm/mpi_communicator.h"

namespace paradit::comm::detail {

bool mpi_node_ranks(const Communicator& comm, NodeRanks* out) {
  const auto* mpi = dynamic_cast<const MpiCommunicator*>(&comm);
  if (mpi == nullptr) return false;
  MPI_Comm node = MPI_COMM_NULL;
  int rc =
      MPI_Comm_split_type(mpi->handle(), MPI_COMM_TYPE_SHARED, mpi->rank(), MPI_INFO_NULL, &node);
  PARADIT_CHECK(rc == MPI_SUCCESS, "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed on rank ",
                mpi->rank(), " with code ", rc);
  int rank = 0, size = 1;
  rc = MPI_Comm_rank(node, &rank);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_size(node, &size);
  MPI_Comm_free(&node);
  PARADIT_CHECK(rc == MPI_SUCCESS, "MPI_Comm_rank/size of the node communicator failed on rank ",
                mpi->rank(), " with code ", rc);
  out->local_rank = rank;
  out->local_size = size;
  return true;
}

}  // namespace paradit::comm::detail
