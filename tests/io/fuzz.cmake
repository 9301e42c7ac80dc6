# CI runs each libFuzzer target for a bounded time (scripts/fuzz.sh builds it with clang, ASan
# and UBSan): the safetensors header parser 60 s, config.json and the HTTP request body 30 s
# each. Skipped (exit 77) where clang's libFuzzer is not installed.
foreach(_target_seconds safetensors_header:60 config_json:30 request_body:30)
  string(REPLACE ":" ";" _pair ${_target_seconds})
  list(GET _pair 0 _target)
  list(GET _pair 1 _seconds)
  add_test(NAME fuzz_${_target}
           COMMAND ${PROJECT_SOURCE_DIR}/scripts/fuzz.sh ${_seconds} ${CMAKE_BINARY_DIR}/fuzz
                   ${_target})
  set_tests_properties(fuzz_${_target} PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77 LABELS fuzz)
endforeach()
