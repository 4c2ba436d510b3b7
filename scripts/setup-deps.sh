#!/usr/bin/env bash
# Installs what glimpse needs to build and test on Debian 12: compilers and libraries from
# apt, and (with --python) a local venv with the pinned llama.cpp Python package used as the
# reference in parity tests, and (with --python-avx2) a second venv, .venv-avx2, whose llama.cpp
# is built for AVX2 with AVX-512 off, so the AVX2 level can be compared like with like on any
# machine (bench/compare-llama-cpp --isa avx2). Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# fortunes, debian-handbook, debian-reference-en: offline natural text for the training prompts
# and the eval tasks, split between the two sides (src/eval/text_corpus.h).
# chromium-headless-shell: the server's web page test (tests/server/web_page_test.py).
APT_PACKAGES=(build-essential cmake ninja-build pkg-config git python3 python3-venv python3-pip
  libhwy-dev nlohmann-json3-dev libcpp-httplib-dev libfmt-dev libicu-dev libgtest-dev libgmock-dev
  libbenchmark-dev clang libclang-rt-14-dev fortunes debian-handbook debian-reference-en
  chromium-headless-shell)
LLAMA_CPP_PYTHON_VERSION=0.3.36
OPENAI_VERSION=3.57.0

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "glimpse setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--python" ]; then
  if ! .venv/bin/python -c "import llama_cpp, numpy, jinja2; assert llama_cpp.__version__ == '$LLAMA_CPP_PYTHON_VERSION'" 2>/dev/null; then
    echo "glimpse setup: building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION into .venv (a few minutes)" >&2
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q numpy jinja2 gguf
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF" \
      .venv/bin/pip install -q "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  fi
  # The official OpenAI client, for the server tests (tests/server/openai_client_test.py).
  if ! .venv/bin/python -c "import openai; assert openai.__version__ == '$OPENAI_VERSION'" 2>/dev/null; then
    .venv/bin/pip install -q "openai==$OPENAI_VERSION"
  fi
fi

if [ "${1:-}" = "--python-avx2" ]; then
  if ! .venv-avx2/bin/python -c "import llama_cpp, numpy; assert llama_cpp.__version__ == '$LLAMA_CPP_PYTHON_VERSION'" 2>/dev/null; then
    echo "glimpse setup: building an AVX2-only llama-cpp-python $LLAMA_CPP_PYTHON_VERSION into .venv-avx2 (a few minutes)" >&2
    python3 -m venv .venv-avx2
    .venv-avx2/bin/pip install -q --upgrade pip >/dev/null
    .venv-avx2/bin/pip install -q numpy jinja2
    # No -march=native: every x86 extension is named, AVX-512 in all its forms off.
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON \
-DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF \
-DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF \
-DLLAMA_BUILD_TESTS=OFF" .venv-avx2/bin/pip install -q --no-cache-dir "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  fi
fi
