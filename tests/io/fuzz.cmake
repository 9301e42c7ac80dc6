# CI runs the libFuzzer target of the safetensors header parser for 60 s (scripts/fuzz.sh builds
# it with clang, ASan and UBSan). Skipped (exit 77) where clang's libFuzzer is not installed.
add_test(NAME fuzz_safetensors_header
         COMMAND ${PROJECT_SOURCE_DIR}/scripts/fuzz.sh 60 ${CMAKE_BINARY_DIR}/fuzz-safetensors)
set_tests_properties(fuzz_safetensors_header PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77 LABELS fuzz)
