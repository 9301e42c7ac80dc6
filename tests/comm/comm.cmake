# Communicator tests under real MPI jobs. test_comm also runs alone (ctest "comm", a world of
# one); here the same program runs with 2, 3 and 4 processes, and the mesh tests with 8. Its
# device tests (test_device_comm.cpp) run wherever a GPU is visible: ranks sharing one GPU test
# the staged MPI path and the device path of the typed collectives; NCCL's own tests need a GPU
# per rank (comm_np2 on a machine with two GPUs or more).
if(PARADIT_WITH_MPI AND TARGET test_comm)
  add_executable(comm_abort_probe ${CMAKE_CURRENT_LIST_DIR}/probe/abort_probe.cpp)
  target_link_libraries(comm_abort_probe PRIVATE paradit_lib)
  target_compile_options(comm_abort_probe PRIVATE ${PARADIT_WARNINGS})
  add_dependencies(test_comm comm_abort_probe)
  find_program(PARADIT_MPIRUN_PATH NAMES mpirun REQUIRED)
  target_compile_definitions(test_comm PRIVATE
      PARADIT_MPIRUN="${PARADIT_MPIRUN_PATH}"
      PARADIT_ABORT_PROBE="$<TARGET_FILE:comm_abort_probe>")

  foreach(_np 2 3 4)
    paradit_add_mpi_test(comm_np${_np} ${_np} $<TARGET_FILE:test_comm>
                         --gtest_filter=-Abort.*)
  endforeach()
  paradit_add_mpi_test(comm_mesh_np8 8 $<TARGET_FILE:test_comm> --gtest_filter=ProcessMesh.*)
endif()
