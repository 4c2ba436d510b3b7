# End-to-end tests (label "e2e"): the CLI on bad input, and parity with llama.cpp.
find_program(BASH bash REQUIRED)
add_test(NAME cli_bad_input
  COMMAND ${BASH} ${CMAKE_SOURCE_DIR}/tests/cli_test.sh $<TARGET_FILE:glimpse>)
set_tests_properties(cli_bad_input PROPERTIES LABELS e2e TIMEOUT 300)

# SpecKV / SpecPC through glimpse run with SmolLM2 as the draft of Gemma 3 (exit 77 without
# the Gemma file).
add_test(NAME speckv_gemma_run
  COMMAND ${BASH} ${CMAKE_SOURCE_DIR}/tests/speckv_gemma_test.sh $<TARGET_FILE:glimpse>)
set_tests_properties(speckv_gemma_run PROPERTIES LABELS e2e TIMEOUT 600 SKIP_RETURN_CODE 77)

set(GLIMPSE_VENV_PYTHON ${CMAKE_SOURCE_DIR}/.venv/bin/python)
add_test(NAME parity_llama_cpp
  COMMAND ${GLIMPSE_VENV_PYTHON} ${CMAKE_SOURCE_DIR}/tests/parity/check_parity.py
          --glimpse $<TARGET_FILE:glimpse> --work ${CMAKE_BINARY_DIR}/parity)
set_tests_properties(parity_llama_cpp PROPERTIES LABELS e2e TIMEOUT 1500)

# Tight parity on an all-F32 copy of the default model (made under parity-f32/ at test time,
# scripts/make-f32-model.py) with f32 KV caches, at every ISA level the CPU has: top-1 >= 0.999,
# mean KL <= 1e-5, every 64-token greedy continuation identical. The scalar level runs the
# four shorter prompts only (1,599 of the 3,678 tokens: it is ~6x slower than AVX2).
add_test(NAME parity_llama_cpp_f32
  COMMAND ${GLIMPSE_VENV_PYTHON} ${CMAKE_SOURCE_DIR}/tests/parity/check_parity.py --f32
          --glimpse $<TARGET_FILE:glimpse> --work ${CMAKE_BINARY_DIR}/parity-f32
          --scalar-prompts 1,2,3,4)
set_tests_properties(parity_llama_cpp_f32 PROPERTIES LABELS e2e TIMEOUT 1500)

# Gemma 3 270M (models/gemma-3-270m-q4_k_m.gguf, scripts/fetch-model.sh gemma3-270m): logits
# of raw-text prompts of 6 to 3,264 tokens (every 4th row) and greedy text against llama.cpp
# (cached under parity-gemma3/), and token ids of ~5,000 strings against llama.cpp's. Exit 77
# (skipped) without the file.
add_test(NAME parity_llama_cpp_gemma3
  COMMAND ${GLIMPSE_VENV_PYTHON} ${CMAKE_SOURCE_DIR}/tests/parity/check_parity_base.py
          --glimpse $<TARGET_FILE:glimpse> --work ${CMAKE_BINARY_DIR}/parity-gemma3
          --model ${CMAKE_SOURCE_DIR}/models/gemma-3-270m-q4_k_m.gguf)
set_tests_properties(parity_llama_cpp_gemma3 PROPERTIES LABELS e2e TIMEOUT 900 SKIP_RETURN_CODE 77)
add_test(NAME tokenizer_parity_gemma3
  COMMAND ${GLIMPSE_VENV_PYTHON} ${CMAKE_SOURCE_DIR}/tests/parity/check_tokenizer_parity.py
          --glimpse $<TARGET_FILE:glimpse>
          --model ${CMAKE_SOURCE_DIR}/models/gemma-3-270m-q4_k_m.gguf)
set_tests_properties(tokenizer_parity_gemma3 PROPERTIES LABELS e2e TIMEOUT 300 SKIP_RETURN_CODE 77)

# The whole-model unit tests again with every kernel lowered to AVX2 (GLIMPSE_ISA, ops/isa.h):
# the int8 vpmaddubsw kernels and Highway's AVX2 target instead of AVX-512 (on CPUs without
# AVX-512 this is the default level again).
add_test(NAME unit_models_isa_avx2
  COMMAND $<TARGET_FILE:glimpse_tests>
          --gtest_filter=KvTypesModel.*:EvictionTest.*:PolicyScores.*:Models/ContextTest.*:Lookahead.*:LookaheadPolicyTest.*:ContextMemory.*)
set_tests_properties(unit_models_isa_avx2 PROPERTIES LABELS unit TIMEOUT 600
  ENVIRONMENT "GLIMPSE_ISA=avx2;GLIMPSE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

# glimpse serve driven by the official OpenAI Python client (pinned in .venv).
add_test(NAME server_openai_client
  COMMAND ${GLIMPSE_VENV_PYTHON} ${CMAKE_SOURCE_DIR}/tests/server/openai_client_test.py
          --glimpse $<TARGET_FILE:glimpse>)
set_tests_properties(server_openai_client PROPERTIES LABELS e2e TIMEOUT 600)

# The page at / in headless Chromium (chromium-headless-shell, from setup-deps): a document,
# a question, the streamed answer equal to the API's, then a second question served from the
# document cache. Screenshots go to build/web-page/. Exit 77 (skipped) without Chromium.
add_test(NAME server_web_page
  COMMAND ${GLIMPSE_VENV_PYTHON} ${CMAKE_SOURCE_DIR}/tests/server/web_page_test.py
          --glimpse $<TARGET_FILE:glimpse> --out ${CMAKE_BINARY_DIR}/web-page)
set_tests_properties(server_web_page PROPERTIES LABELS e2e TIMEOUT 600 SKIP_RETURN_CODE 77)

# 1,000 malformed requests from 4 threads against a live server: every one a 4xx with an
# OpenAI error object, the server still up and answering the same greedy text afterwards.
add_test(NAME server_malformed_requests
  COMMAND ${GLIMPSE_VENV_PYTHON} ${CMAKE_SOURCE_DIR}/tests/server/malformed_requests_test.py
          --glimpse $<TARGET_FILE:glimpse>)
set_tests_properties(server_malformed_requests PROPERTIES LABELS e2e TIMEOUT 300)
