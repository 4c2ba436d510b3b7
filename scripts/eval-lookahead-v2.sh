#!/usr/bin/env bash
# Held-out evaluation of the second LookaheadKV modules (scripts/train-lookahead-v2.sh),
# resumable: every step keeps its result cache under runs/, so rerunning continues.
#   scripts/eval-lookahead-v2.sh aware    # the heldout preset, query-aware, every baseline
#   scripts/eval-lookahead-v2.sh once     # compress once, ask four: the agnostic module
#   scripts/eval-lookahead-v2.sh report   # Markdown reports into docs/results/lookahead-v2/
#   scripts/eval-lookahead-v2.sh          # all three
# MODULE / AGNOSTIC_MODULE: the module files (default: the training outputs in runs/).
# The query-aware run starts from the committed result cache of the first module's run
# (docs/results/heldout/cache.jsonl.gz): the baselines' rows are read back from it (same
# model, settings and samples), so only the new module's rows are computed. Those baseline
# rows were computed on another machine; task scores do not depend on it, KL is always
# against the full cache of the run that computed the row.
set -euo pipefail
cd "$(dirname "$0")/.."
R=runs/lookahead-v2
MODULE=${MODULE:-$R/smollm2-135m.lookahead.gguf}
AGNOSTIC_MODULE=${AGNOSTIC_MODULE:-$R/smollm2-135m.lookahead-agnostic.gguf}
THREADS=${THREADS:-2}
OUT=docs/results/lookahead-v2
M=models/SmolLM2-135M-Instruct.Q4_1.gguf
G=build/bin/glimpse
ALL=none,streaming,h2o,snapkv,pyramidkv,adakv,tova,knorm,keydiff,expected_attention,pseudoquery,laq,lookahead,oracle
ONCE=none,snapkv,pyramidkv,adakv,keydiff,expected_attention,pseudoquery,lookahead,oracle
what=${1:-all}
scripts/fetch-model.sh >/dev/null
[ -x "$G" ] || scripts/build.sh release --target glimpse >/dev/null

need() { [ -f "$1" ] || { echo "eval-lookahead-v2: $1 is missing (train it: scripts/train-lookahead-v2.sh)" >&2; exit 1; }; }

if [ "$what" = aware ] || [ "$what" = all ]; then
  need "$MODULE"
  mkdir -p runs/heldout-v2
  [ -s runs/heldout-v2/cache.jsonl ] || zcat docs/results/heldout/cache.jsonl.gz > runs/heldout-v2/cache.jsonl
  "$G" eval -m "$M" --preset heldout -t "$THREADS" -o runs/heldout-v2 --policies "$ALL" \
    --kv-lookahead-module "$MODULE" > runs/heldout-v2/summary.out
fi
if [ "$what" = once ] || [ "$what" = all ]; then
  need "$AGNOSTIC_MODULE"
  # The agnostic module and every baseline; then the shipped (query-aware) module in the same
  # setting, for the side-by-side.
  "$G" eval -m "$M" --preset once -t "$THREADS" -o runs/once-v2 --policies "$ONCE" \
    --budgets 64,128,256,512 --kv-lookahead-module "$AGNOSTIC_MODULE" > runs/once-v2.out
  "$G" eval -m "$M" --preset once -t "$THREADS" -o runs/once-v1 --policies none,lookahead \
    --budgets 64,128,256,512 --kv-lookahead-module modules/SmolLM2-135M-Instruct.Q4_1.lookahead.gguf > runs/once-v1.out
fi
if [ "$what" = report ] || [ "$what" = all ]; then
  mkdir -p "$OUT"
  if [ -f runs/heldout-v2/predictions.jsonl ]; then
    bench/lookahead-report.py --run v1=docs/results/heldout/predictions.jsonl.gz \
      --run v2=runs/heldout-v2/predictions.jsonl > "$OUT/heldout-report.md"
    mkdir -p "$OUT/heldout"
    cp runs/heldout-v2/{summary.md,metrics.csv,config.json,*.svg} "$OUT/heldout/"
    gzip -9n < runs/heldout-v2/predictions.jsonl > "$OUT/heldout/predictions.jsonl.gz"
    echo "$OUT/heldout-report.md"
  fi
  if [ -f runs/once-v2/predictions.jsonl ] && [ -f runs/once-v1/predictions.jsonl ]; then
    bench/lookahead-report.py --run v1=runs/once-v1/predictions.jsonl \
      --run v2=runs/once-v2/predictions.jsonl \
      --baselines snapkv,pyramidkv,adakv,keydiff,expected_attention,pseudoquery > "$OUT/once-report.md"
    mkdir -p "$OUT/once"
    cp runs/once-v2/{summary.md,metrics.csv,config.json,*.svg} "$OUT/once/"
    gzip -9n < runs/once-v2/predictions.jsonl > "$OUT/once/predictions.jsonl.gz"
    echo "$OUT/once-report.md"
  fi
fi
