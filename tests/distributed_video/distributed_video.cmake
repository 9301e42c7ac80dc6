# The video models under real MPI jobs. test_distributed_video also runs alone (ctest
# "distributed_video", a world of one). Here the transformers run at np 8 over every layout with
# world ≤ 8, and the row-parallel VAE decode at np 2 and 3 (uneven bands of rows).
if(PARADIT_WITH_MPI AND TARGET test_distributed_video)
  paradit_add_mpi_test(distributed_video_np8 8 $<TARGET_FILE:test_distributed_video>
                       --gtest_filter=DistributedVideo.*)
  foreach(_np 2 3)
    paradit_add_mpi_test(video_vae_parallel_np${_np} ${_np} $<TARGET_FILE:test_distributed_video>
                         --gtest_filter=ParallelVideoVae.*)
  endforeach()
  # Many ranks on few cores: ranks waiting in MPI yield the core instead of busy-polling it.
  set_tests_properties(distributed_video_np8 video_vae_parallel_np2 video_vae_parallel_np3
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OMPI_MCA_mpi_yield_when_idle=1")
endif()
