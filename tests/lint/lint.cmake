# Source rules the compiler does not check: the layer order of DESIGN.md and no raw tensor data
# access in models / schedulers / pipelines (tests/lint/check_sources.py).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME lint_sources
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_sources.py
                   ${PROJECT_SOURCE_DIR}/src)
endif()
