# Faults under a real mpirun (test_faults starts the jobs itself): a stopped rank ends the job
# through the collective watchdog; admission errors end every rank alike with one line.
if(PARADIT_WITH_MPI AND TARGET test_faults)
  find_program(PARADIT_MPIRUN_PATH NAMES mpirun REQUIRED)
  target_compile_definitions(test_faults PRIVATE PARADIT_MPIRUN="${PARADIT_MPIRUN_PATH}")
  set_tests_properties(faults PROPERTIES TIMEOUT 300)
endif()
