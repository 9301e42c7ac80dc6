# `paradit generate` under mpirun: test_distributed_generate (ctest "distributed_generate") runs
# as one process and starts the mpirun jobs itself (np 2 and 4 on the shipped shapes model).
if(PARADIT_WITH_MPI AND TARGET test_distributed_generate)
  find_program(PARADIT_MPIRUN_PATH NAMES mpirun REQUIRED)
  target_compile_definitions(test_distributed_generate PRIVATE
                             PARADIT_MPIRUN="${PARADIT_MPIRUN_PATH}")
  set_tests_properties(distributed_generate PROPERTIES TIMEOUT 300)
endif()
