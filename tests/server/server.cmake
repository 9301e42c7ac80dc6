# `paradit serve` tests. test_server (ctest "server") runs as one process and starts the servers
# (front ends that start their MPI worker jobs: ServeMpiTest, np 2 with two data-parallel groups,
# np 4 with Ulysses inside each group) itself.
# The recovery tests (ServeRecoveryTest: a worker rank, the front end, a poisonous request, an
# attached worker job killed) run as their own ctest entry, "server_recovery".
# The OpenAI client tests (OpenAIClientTest) run as their own ctest entry, "server_openai", with
# the python of the venv scripts/openai-venv.sh makes in the build folder (PARADIT_OPENAI_PYTHON
# overrides it); scripts/test.sh sets PARADIT_REQUIRE_OPENAI=1 so a missing client fails there.
if(TARGET test_server)
  target_compile_definitions(test_server PRIVATE
      PARADIT_OPENAI_PYTHON="${CMAKE_BINARY_DIR}/openai-venv/bin/python"
      PARADIT_OPENAI_SCRIPT="${CMAKE_CURRENT_LIST_DIR}/openai_client.py")
  set_tests_properties(server PROPERTIES TIMEOUT 300
                       ENVIRONMENT
                       "OMP_NUM_THREADS=1;GTEST_FILTER=-OpenAIClientTest.*:ServeRecoveryTest.*")
  add_test(NAME server_openai COMMAND test_server --gtest_filter=OpenAIClientTest.*)
  set_tests_properties(server_openai PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1")
  add_test(NAME server_recovery COMMAND test_server --gtest_filter=ServeRecoveryTest.*)
  set_tests_properties(server_recovery PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1")
  if(PARADIT_WITH_MPI)
    find_program(PARADIT_MPIRUN_PATH NAMES mpirun REQUIRED)
    target_compile_definitions(test_server PRIVATE PARADIT_MPIRUN="${PARADIT_MPIRUN_PATH}")
  endif()
endif()
