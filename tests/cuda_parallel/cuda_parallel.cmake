# The parallel methods on CUDA with 2 ranks on one GPU: test_cuda_parallel (ctest "cuda_parallel")
# runs as one process and starts its mpirun jobs itself; without a GPU every test skips.
if(PARADIT_WITH_MPI AND TARGET test_cuda_parallel)
  find_program(PARADIT_MPIRUN_PATH NAMES mpirun REQUIRED)
  target_compile_definitions(test_cuda_parallel PRIVATE PARADIT_MPIRUN="${PARADIT_MPIRUN_PATH}")
  set_tests_properties(cuda_parallel PROPERTIES TIMEOUT 600)
endif()
