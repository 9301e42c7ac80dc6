# PipeFusion under mpirun: test_pipefusion (ctest "pipefusion") runs as one process and starts the
# mpirun jobs itself (np 2–8) against single-process runs of the same generate command.
if(PARADIT_WITH_MPI AND TARGET test_pipefusion)
  find_program(PARADIT_MPIRUN_PATH NAMES mpirun REQUIRED)
  target_compile_definitions(test_pipefusion PRIVATE PARADIT_MPIRUN="${PARADIT_MPIRUN_PATH}")
  set_tests_properties(pipefusion PROPERTIES TIMEOUT 600)
endif()
