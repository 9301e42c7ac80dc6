# `paradit serve` under mpirun: test_server (ctest "server") runs as one process and starts the
# mpirun jobs itself (ServeMpiTest: np 2 with two data-parallel groups, np 4 with Ulysses inside
# each group, a rank that dies).
if(PARADIT_WITH_MPI AND TARGET test_server)
  find_program(PARADIT_MPIRUN_PATH NAMES mpirun REQUIRED)
  target_compile_definitions(test_server PRIVATE PARADIT_MPIRUN="${PARADIT_MPIRUN_PATH}")
  set_tests_properties(server PROPERTIES TIMEOUT 300)
endif()
