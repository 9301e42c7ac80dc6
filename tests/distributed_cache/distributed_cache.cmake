# Step caching under mpirun: test_distributed_cache (ctest "distributed_cache") runs as one process
# and starts the mpirun jobs itself (np 2 and 4) against single-process cached runs.
if(PARADIT_WITH_MPI AND TARGET test_distributed_cache)
  find_program(PARADIT_MPIRUN_PATH NAMES mpirun REQUIRED)
  target_compile_definitions(test_distributed_cache PRIVATE
                             PARADIT_MPIRUN="${PARADIT_MPIRUN_PATH}")
  set_tests_properties(distributed_cache PROPERTIES TIMEOUT 300)
endif()
