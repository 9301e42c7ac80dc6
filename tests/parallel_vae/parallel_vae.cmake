# Patch-parallel VAE under real MPI jobs: test_parallel_vae also runs alone (ctest
# "parallel_vae", a world of one); here the same program runs with 2, 3 and 4 processes, so the
# 7-row latents split unevenly (4+3, 3+2+2, 2+2+2+1).
if(PARADIT_WITH_MPI AND TARGET test_parallel_vae)
  foreach(_np 2 3 4)
    paradit_add_mpi_test(parallel_vae_np${_np} ${_np} $<TARGET_FILE:test_parallel_vae>)
  endforeach()
endif()
