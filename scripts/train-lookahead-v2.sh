#!/usr/bin/env bash
# Trains the second LookaheadKV modules of the default model, resumably (rerun to continue):
#   query-aware:   modules/SmolLM2-135M-Instruct.Q4_1.lookahead.gguf's successor
#   compress once: the --agnostic module (the rows follow the context alone and learn the
#                  attention of several questions and their answers)
# Data: the second training set (glimpse prompts --set v2: 11 families, prompt lengths
# 512-4096, several questions per document), 1,200 prompts (seed 3; disjointness_test.cpp
# checks them against the evaluation presets) and a validation set of 120 (seed 4, same
# training side). Sample files hold the ground truth only (--recompute-kv: the prompt KV is
# prefilled again per step) so the set fits on disk; the best module by validation loss is
# kept and training stops after PATIENCE validations without improvement.
#   scripts/train-lookahead-v2.sh               # both modules, one after the other
#   WHICH=aware scripts/train-lookahead-v2.sh   # or WHICH=agnostic
#   THREADS=2 STEPS=800 LOSS="--topk-weight 1 --topk 128" scripts/train-lookahead-v2.sh
# Outputs under runs/lookahead-v2/: prompts, sample files, modules, logs (JSON lines with
# loss, val_loss per step), and the training state for --resume.
set -euo pipefail
cd "$(dirname "$0")/.."
R=runs/lookahead-v2
THREADS=${THREADS:-2}
STEPS=${STEPS:-800}
PATIENCE=${PATIENCE:-4}
WHICH=${WHICH:-aware,agnostic}
LOSS=${LOSS:-}
mkdir -p "$R"
scripts/fetch-model.sh >/dev/null
[ -x build/bin/glimpse ] || scripts/build.sh release --target glimpse >/dev/null
# A private copy, so rebuilding the tree does not change the binary under a long run.
[ -x "$R/glimpse-train" ] || cp build/bin/glimpse "$R/glimpse-train"
G="$R/glimpse-train"
lengths=512,1024,1536,2048,3072,4096
[ -s "$R/train.jsonl" ] || "$G" prompts -m models/SmolLM2-135M-Instruct.Q4_1.gguf --set v2 -o "$R/train.jsonl" -n 1200 --lengths $lengths -s 3
[ -s "$R/val.jsonl" ] || "$G" prompts -m models/SmolLM2-135M-Instruct.Q4_1.gguf --set v2 -o "$R/val.jsonl" -n 120 --lengths $lengths -s 4
common=(-m models/SmolLM2-135M-Instruct.Q4_1.gguf --prompts "$R/train.jsonl" --val-prompts "$R/val.jsonl" --cache-dir "$R/cache" --recompute-kv
        --steps "$STEPS" --batch 4 --lr 1e-3 --warmup 50 --save-every 25 --val-every 50
        --patience "$PATIENCE" --answer-len 256 -c 4608 -t "$THREADS")
# shellcheck disable=SC2206
extra=($LOSS)
for which in ${WHICH//,/ }; do
  case $which in
    aware) out="$R/smollm2-135m.lookahead.gguf"; mode=() ;;
    agnostic) out="$R/smollm2-135m.lookahead-agnostic.gguf"; mode=(--agnostic) ;;
    *) echo "WHICH: aware and/or agnostic" >&2; exit 2 ;;
  esac
  args=("${common[@]}" "${mode[@]}" "${extra[@]}" --out "$out")
  [ -f "$out.state" ] && args+=(--resume)
  nice -n 10 "$G" train-lookahead "${args[@]}"
done
