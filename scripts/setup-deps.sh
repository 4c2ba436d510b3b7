#!/usr/bin/env bash
# Installs what glimpse needs to build and test on Debian 12: compilers and libraries from
# apt, and (with --python) a local venv with the pinned llama.cpp Python package used as the
# reference in parity tests. Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# fortunes and debian-handbook: offline natural text for the eval haystacks (src/eval).
APT_PACKAGES=(build-essential cmake ninja-build pkg-config git python3 python3-venv python3-pip
  libhwy-dev nlohmann-json3-dev libfmt-dev libicu-dev libgtest-dev libgmock-dev
  libbenchmark-dev clang libclang-rt-14-dev fortunes debian-handbook)
LLAMA_CPP_PYTHON_VERSION=0.3.36

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
fi
