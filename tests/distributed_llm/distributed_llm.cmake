# The LLM-conditioned families (Flux2, Qwen-Image, Z-Image) under a real MPI job at np 8, every
# layout with world ≤ 8 against one process (test_distributed_llm alone runs as ctest
# "distributed_llm": the one-process layout and the PipeFusion stage split).
if(PARADIT_WITH_MPI AND TARGET test_distributed_llm)
  paradit_add_mpi_test(distributed_llm_np8 8 $<TARGET_FILE:test_distributed_llm>
                       --gtest_filter=DistributedLLM.Flux2:DistributedLLM.QwenImage:DistributedLLM.ZImage*)
  set_tests_properties(distributed_llm_np8 PROPERTIES
                       ENVIRONMENT "OMP_NUM_THREADS=1;OMPI_MCA_mpi_yield_when_idle=1")
endif()
if(PARADIT_WITH_MPI AND TARGET test_distributed_llm)
  find_program(PARADIT_MPIRUN_PATH NAMES mpirun REQUIRED)
  target_compile_definitions(test_distributed_llm PRIVATE PARADIT_MPIRUN="${PARADIT_MPIRUN_PATH}")
endif()
