# End-to-end tests (label "e2e"): the CLI on bad input, and parity with llama.cpp.
find_program(BASH bash REQUIRED)
add_test(NAME cli_bad_input
  COMMAND ${BASH} ${CMAKE_SOURCE_DIR}/tests/cli_test.sh $<TARGET_FILE:glimpse>)
set_tests_properties(cli_bad_input PROPERTIES LABELS e2e TIMEOUT 300)

set(GLIMPSE_VENV_PYTHON ${CMAKE_SOURCE_DIR}/.venv/bin/python)
add_test(NAME parity_llama_cpp
  COMMAND ${GLIMPSE_VENV_PYTHON} ${CMAKE_SOURCE_DIR}/tests/parity/check_parity.py
          --glimpse $<TARGET_FILE:glimpse> --work ${CMAKE_BINARY_DIR}/parity)
set_tests_properties(parity_llama_cpp PROPERTIES LABELS e2e TIMEOUT 1500)
