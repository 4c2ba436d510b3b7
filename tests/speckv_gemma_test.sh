#!/usr/bin/env bash
# glimpse run on Gemma 3 270M with SmolLM2-135M as the draft (different vocabularies):
# SpecKV (--kv-budget 256), SpecPC (--pc-budget 300) and both chained produce text and a cache
# of the stated size (the JSON timings' kv section). Exit 77 when the Gemma file is absent.
set -u
GLIMPSE=$1
root=$(dirname "$0")/..
GEMMA=$root/models/gemma-3-270m-q4_k_m.gguf
DRAFT=${GLIMPSE_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$GEMMA" ] || { echo "skip: $GEMMA not found"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/doc.txt" <<'PY'
import sys
c = ["red", "blue", "green", "yellow", "white", "black"]
s = "".join(f"Fact {i}: the {c[i % 6]} box in room {i * 7 % 13} holds {i * 37 % 101} apples. " for i in range(60))
open(sys.argv[1], "w").write(s + "\n\nQuestion: how many apples does the box in room 5 hold? Answer:")
PY
fails=0
check() {  # name, python assertion over t (the timings JSON), glimpse run flags...
  local name=$1 cond=$2; shift 2
  "$GLIMPSE" run -m "$GEMMA" -f "$tmp/doc.txt" -n 16 --temp 0 -t 2 --timings-json "$tmp/t.json" "$@" \
    >"$tmp/out" 2>"$tmp/err"
  if [ $? -eq 0 ] && [ -n "$(tr -d '[:space:]' <"$tmp/out")" ] && \
     python3 -c "import json,sys; t=json.load(open(sys.argv[1])); k=t['kv']; assert $cond, k" "$tmp/t.json"; then
    echo "ok   $name: $(head -c 60 "$tmp/out" | tr '\n' ' ')"
    grep -E "kv policy|prompt compression|draft answer|kv cache|prompt eval" "$tmp/err" | sed 's/^/       /'
  else
    echo "FAIL $name"; cat "$tmp/out" "$tmp/err"; fails=$((fails+1))
  fi
}
# Global layers 5, 11, 17 keep 256 prompt entries (1 KV head each); the others their window.
check "speckv, SmolLM2 draft" \
  "k['evicted'] and k['n_layers_evicted'] == 3 and all(k['kept_per_layer'][l] == 256 for l in (5, 11, 17)) and k['draft_ms'] > 0" \
  --kv-policy speckv --kv-draft "$DRAFT" --kv-budget 256
check "specpc, SmolLM2 draft" \
  "k['prompt_compress'] == 'specpc' and k['pc_cross'] and k['n_pc_after'] == 300 and t['kv_entries'] > 0" \
  --prompt-compress specpc --pc-draft "$DRAFT" --pc-budget 300
check "speckv-pc, SmolLM2 draft" \
  "k['n_pc_after'] == 400 and k['evicted'] and k['kept_per_layer'][17] == 256 and k['draft_ms'] == 0" \
  --prompt-compress specpc --pc-draft "$DRAFT" --pc-budget 400 --kv-policy speckv --kv-draft "$DRAFT" --kv-budget 256
[ $fails -eq 0 ]
