# The transformers under real MPI jobs. test_distributed also runs alone (ctest "distributed": the
# one-process layout plus the tests that start mpirun themselves: `paradit forward` at np 4, a
# failing rank, two network namespaces); here it runs at np 8 over every layout with world ≤ 8.
if(PARADIT_WITH_MPI AND TARGET test_distributed)
  find_program(PARADIT_MPIRUN_PATH NAMES mpirun REQUIRED)
  target_compile_definitions(test_distributed PRIVATE PARADIT_MPIRUN="${PARADIT_MPIRUN_PATH}")
  paradit_add_mpi_test(distributed_np8 8 $<TARGET_FILE:test_distributed>
                       --gtest_filter=Distributed.*)
  # 8 ranks on few cores: ranks waiting in MPI yield the core instead of busy-polling it.
  set_tests_properties(distributed_np8 PROPERTIES
                       ENVIRONMENT "OMP_NUM_THREADS=1;OMPI_MCA_mpi_yield_when_idle=1")
endif()
