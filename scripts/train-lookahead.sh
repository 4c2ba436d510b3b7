#!/usr/bin/env bash
# Trains the LookaheadKV module of the default model in the background-friendly way:
# prompts are generated once (glimpse prompts: the training side of the corpus split, with
# its own templates and seeds, disjoint from the evaluation; docs/eval.md), each
# prompt's answer and ground truth are cached under runs/lookahead/cache, and checkpoints
# every 25 steps let a rerun of this script resume exactly where the last one stopped.
#   scripts/train-lookahead.sh            # start or resume (nohup it for long runs)
#   THREADS=2 STEPS=1500 scripts/train-lookahead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
R=runs/lookahead
THREADS=${THREADS:-1}
STEPS=${STEPS:-1500}
mkdir -p "$R"
scripts/fetch-model.sh >/dev/null
[ -x build/bin/glimpse ] || scripts/build.sh release --target glimpse >/dev/null
# A private copy, so rebuilding the tree does not change the binary under a long run.
[ -x "$R/glimpse-train" ] || cp build/bin/glimpse "$R/glimpse-train"
[ -s "$R/train.jsonl" ] || "$R/glimpse-train" prompts -o "$R/train.jsonl" -n 320 --lengths 512,1024,1536,2048 -s 1
[ -s "$R/heldout.jsonl" ] || "$R/glimpse-train" prompts -o "$R/heldout.jsonl" -n 24 --lengths 1024,2048 -s 2
args=(--prompts "$R/train.jsonl" --cache-dir "$R/cache" --out "$R/smollm2-135m.lookahead.gguf"
      --steps "$STEPS" --batch 4 --lr 1e-3 --warmup 50 --save-every 25 --answer-len 128 -c 2304
      -t "$THREADS")
[ -f "$R/smollm2-135m.lookahead.gguf.state" ] && args+=(--resume)
exec nice -n 10 "$R/glimpse-train" train-lookahead "${args[@]}"
