# Sequence-parallel attention under real MPI jobs: test_parallel also runs alone (ctest
# "parallel"); with 2 and 4 processes it tries every (ulysses, ring) layout that fits.
if(PARADIT_WITH_MPI AND TARGET test_parallel)
  foreach(_np 2 4)
    paradit_add_mpi_test(parallel_np${_np} ${_np} $<TARGET_FILE:test_parallel>)
  endforeach()
endif()
