#!/usr/bin/env bash
# CLI behaviour on good and bad input: every bad input gives one "error:" line on stderr and
# a non-zero exit, never a crash; stdout carries only generated text.
set -u
GLIMPSE=$1
MODEL=${GLIMPSE_MODEL:-$(dirname "$0")/../models/SmolLM2-135M-Instruct.Q4_1.gguf}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0

expect_error() {  # name, expected substring, command...
  local name=$1 want=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then
    echo "FAIL $name: exit code $rc"; fails=$((fails+1)); return
  fi
  if ! grep -q "^error: .*$want" "$tmp/err" || [ "$(grep -c . "$tmp/err")" -ne 1 ]; then
    echo "FAIL $name: stderr was:"; cat "$tmp/err"; fails=$((fails+1)); return
  fi
  echo "ok   $name: $(cat "$tmp/err")"; passes=$((passes+1))
}

expect_error "missing model" "not found" "$GLIMPSE" run -m "$tmp/none.gguf" -p hi
echo "hello, not a model" >"$tmp/text.gguf"
expect_error "non-GGUF file" "not a GGUF file" "$GLIMPSE" run -m "$tmp/text.gguf" -p hi
head -c 3000000 "$MODEL" >"$tmp/trunc.gguf"
expect_error "truncated GGUF" "truncated" "$GLIMPSE" run -m "$tmp/trunc.gguf" -p hi
head -c 200 "$MODEL" >"$tmp/trunc2.gguf"
expect_error "GGUF cut in metadata" "truncated" "$GLIMPSE" run -m "$tmp/trunc2.gguf" -p hi
# Same file with the architecture renamed (same length, so offsets stay valid).
python3 - "$MODEL" "$tmp/arch.gguf" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
key = b'general.architecture'
i = data.index(key) + len(key) + 4 + 8  # type u32, string length u64
assert data[i:i + 5] == b'llama'
open(sys.argv[2], 'wb').write(data[:i] + b'mamba' + data[i + 5:])
PY
expect_error "unsupported architecture" "unsupported model architecture 'mamba'" "$GLIMPSE" run -m "$tmp/arch.gguf" -p hi
head -c 20000 /usr/share/common-licenses/GPL-3 >"$tmp/long.txt"
expect_error "prompt over the context" "does not fit the context size 256" "$GLIMPSE" run -m "$MODEL" -c 256 -f "$tmp/long.txt"
expect_error "serve: port out of range" "out of range" "$GLIMPSE" serve -m "$MODEL" --port 99999
expect_error "serve: address it cannot bind" "cannot listen on 256.1.1.1" "$GLIMPSE" serve -m "$MODEL" --host 256.1.1.1 --port 8080
expect_error "serve: unknown default policy" "unknown KV policy 'magic'" "$GLIMPSE" serve -m "$MODEL" --kv-policy magic
expect_error "unknown flag" "unknown argument '--bogus'" "$GLIMPSE" run -m "$MODEL" --bogus -p hi
expect_error "bad number" "is not an integer" "$GLIMPSE" run -m "$MODEL" -n abc -p hi
expect_error "missing value" "needs a value" "$GLIMPSE" run -m "$MODEL" -p
expect_error "no prompt" "no prompt" "$GLIMPSE" run -m "$MODEL"
expect_error "missing prompt file" "cannot read" "$GLIMPSE" run -m "$MODEL" -f "$tmp/nothing.txt"
expect_error "bad bench output format" "expected md or json" "$GLIMPSE" bench -m "$MODEL" -o xml
expect_error "bench over the context" "raise -c" "$GLIMPSE" bench -m "$MODEL" -c 64 -p 128 -n 0
expect_error "unknown command" "unknown command" "$GLIMPSE" frobnicate
expect_error "unknown KV policy" "unknown KV policy 'bogus'" "$GLIMPSE" run -m "$MODEL" -p hi --kv-policy bogus
expect_error "KV policy without a budget" "needs --kv-budget" "$GLIMPSE" run -m "$MODEL" -p hi --kv-policy snapkv
expect_error "query-agnostic without a question" "needs --question" "$GLIMPSE" run -m "$MODEL" -p hi --kv-policy snapkv --kv-budget 8 --query-agnostic
expect_error "bad KV ratio" "kv-ratio" "$GLIMPSE" run -m "$MODEL" -p hi --kv-policy snapkv --kv-ratio 1.5
expect_error "bad Ada-KV floor" "kv-ada-alpha" "$GLIMPSE" run -m "$MODEL" -p hi --kv-policy adakv --kv-budget 4 --kv-ada-alpha 1.5
expect_error "unknown budget allocation" "unknown budget allocation .layers. (uniform, pyramid, ada, global)" "$GLIMPSE" run -m "$MODEL" -p hi --kv-policy snapkv --kv-budget 4 --kv-alloc layers
expect_error "speckv without a draft" "needs a draft model (--kv-draft FNAME)" "$GLIMPSE" run -m "$MODEL" -p hi --kv-policy speckv --kv-budget 8
expect_error "speckv with a missing draft" "cannot read draft model" "$GLIMPSE" run -m "$MODEL" -p hi --kv-policy speckv --kv-budget 8 --kv-draft "$tmp/none.gguf"
expect_error "speckv with a non-GGUF draft" "not a GGUF file" "$GLIMPSE" run -m "$MODEL" -p hi --kv-policy speckv --kv-budget 8 --kv-draft "$tmp/text.gguf"
expect_error "speckv budget 0" "--kv-budget" "$GLIMPSE" run -m "$MODEL" -p hi --kv-policy speckv --kv-budget 0 --kv-draft "$MODEL"
expect_error "unknown prompt compression" "expected none or specpc" "$GLIMPSE" run -m "$MODEL" -p hi --prompt-compress magic
expect_error "specpc without a budget" "needs --pc-budget" "$GLIMPSE" run -m "$MODEL" -p hi --prompt-compress specpc --pc-draft "$MODEL"
expect_error "specpc budget 0" "--pc-budget" "$GLIMPSE" run -m "$MODEL" -p hi --prompt-compress specpc --pc-draft "$MODEL" --pc-budget 0
expect_error "specpc without a draft" "needs a draft model (--pc-draft FNAME)" "$GLIMPSE" run -m "$MODEL" -p hi --prompt-compress specpc --pc-budget 64
expect_error "serve: speckv" "does not run draft models" "$GLIMPSE" serve -m "$MODEL" --kv-policy speckv --kv-budget 8 --kv-draft "$MODEL"
expect_error "even pooling kernel" "must be odd" "$GLIMPSE" run -m "$MODEL" -p "a b c d e f g h i j k l m n o p" --kv-policy snapkv --kv-budget 4 --kv-pool-kernel 4

# stdout holds exactly the generated text; timings go to stderr and the JSON file.
"$GLIMPSE" run -m "$MODEL" -p "The capital of France is" -n 8 --temp 0 -t 2 \
  --timings-json "$tmp/t.json" >"$tmp/out" 2>"$tmp/err"
if [ $? -eq 0 ] && ! grep -q "glimpse" "$tmp/out" && grep -q "prompt eval time" "$tmp/err" \
   && python3 -c "import json,sys; t=json.load(open(sys.argv[1])); assert t['n_gen']==8 and t['n_prompt']>0 and t['prefill_ms']>0" "$tmp/t.json"; then
  echo "ok   stdout carries only text: $(head -c 80 "$tmp/out")"; passes=$((passes+1))
else
  echo "FAIL stdout/stderr split"; cat "$tmp/out" "$tmp/err"; fails=$((fails+1))
fi
# Greedy is deterministic and the same with 1 and 2 threads.
a=$("$GLIMPSE" run -m "$MODEL" -p "Once upon a time" -n 16 --temp 0 -t 1 -q 2>/dev/null)
b=$("$GLIMPSE" run -m "$MODEL" -p "Once upon a time" -n 16 --temp 0 -t 2 -q 2>/dev/null)
if [ -n "$a" ] && [ "$a" = "$b" ]; then echo "ok   greedy thread-independent"; passes=$((passes+1));
else echo "FAIL greedy differs across threads: '$a' vs '$b'"; fails=$((fails+1)); fi
# Logits do not depend on the batch split: -b 1 (every token through the decode kernels)
# and -b 512 (prefill GEMM) are bit-identical.
echo "[1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182, 2, 198, 1, 4093, 198]" >"$tmp/toks.json"
"$GLIMPSE" logits -m "$MODEL" --tokens "$tmp/toks.json" -o "$tmp/b1.f32" -b 1 -t 2 2>/dev/null
"$GLIMPSE" logits -m "$MODEL" --tokens "$tmp/toks.json" -o "$tmp/b512.f32" -t 2 2>/dev/null
if [ -s "$tmp/b1.f32" ] && cmp -s "$tmp/b1.f32" "$tmp/b512.f32"; then
  echo "ok   logits identical for batch 1 and batch 512"; passes=$((passes+1))
else echo "FAIL logits differ between -b 1 and -b 512"; fails=$((fails+1)); fi
# bench prints llama-bench-style rows and valid JSON.
table=$("$GLIMPSE" bench -m "$MODEL" -p 16 -n 4 -d 0,8 -r 1 -t 2 2>/dev/null)
json=$("$GLIMPSE" bench -m "$MODEL" -p 16 -n 0 -r 2 -t 2 -o json 2>/dev/null)
if echo "$table" | grep -q "| pp16 |" && echo "$table" | grep -q "| tg4 @ d8 |" \
   && echo "$json" | python3 -c "import json,sys; r=json.load(sys.stdin); assert r[0]['test']=='pp16' and len(r[0]['samples_ts'])==2 and r[0]['avg_ts']>0 and r[0]['isa'] in ('avx512','avx2','sse4','scalar')"; then
  echo "ok   bench table and json"; passes=$((passes+1))
else echo "FAIL bench: $table $json"; fails=$((fails+1)); fi
# bench roofline: a decode test's JSON row carries its bytes per token (weights + KV, the KV
# part growing with the depth), the GB/s they make at its t/s and the streaming-read probe's
# GB/s; the table gets one roofline line per decode test; --no-probe drops the probe's field.
json=$("$GLIMPSE" bench -m "$MODEL" -p 0 -n 4 -d 0,64 -r 1 -t 2 -o json 2>/dev/null)
json_np=$("$GLIMPSE" bench -m "$MODEL" -p 0 -n 4 -r 1 -t 2 -o json --no-probe 2>/dev/null)
table=$("$GLIMPSE" bench -m "$MODEL" -p 8 -n 4 -r 1 -t 2 2>/dev/null)
if echo "$json" | python3 -c '
import json, sys
rows = json.load(sys.stdin)
assert [r["test"] for r in rows] == ["tg4", "tg4 @ d64"], rows
for r in rows:
    for k in ("weight_bytes_per_token", "kv_bytes_per_token", "bytes_per_token", "achieved_gbs",
              "stream_read_gbs"):
        assert r[k] > 0, (k, r)
    assert abs(r["achieved_gbs"] - r["bytes_per_token"] * r["avg_ts"] / 1e9) < 1e-9 * r["achieved_gbs"] + 1e-12, r
assert rows[0]["weight_bytes_per_token"] == rows[1]["weight_bytes_per_token"], rows
assert rows[1]["kv_bytes_per_token"] > 10 * rows[0]["kv_bytes_per_token"], rows
' && echo "$json_np" | python3 -c '
import json, sys
r = json.load(sys.stdin)[0]
assert r["bytes_per_token"] > 0 and "stream_read_gbs" not in r, r
' && echo "$table" | grep -q "^roofline tg4: .* MB/token .* GB/s = .*% of .* GB/s streaming read" \
   && ! echo "$table" | grep -q "^roofline pp8"; then
  echo "ok   bench roofline fields and lines"; passes=$((passes+1))
else echo "FAIL bench roofline: $json $json_np $table"; fails=$((fails+1)); fi
# bench --spec: speculative rows beside plain decoding on real text at depth (outputs must match).
expect_error "bench spec over the context" "positions but the context size is 2048" "$GLIMPSE" bench -m "$MODEL" -c 2048 -d 2100 -n 8 --spec ngram
expect_error "bad bench spec row" "mode 'bogus' is not one of" "$GLIMPSE" bench -m "$MODEL" --spec "views:snapkv@64;bogus"
json=$("$GLIMPSE" bench -m "$MODEL" -d 200 -n 8 -r 1 -t 2 -o json --spec "views:snapkv@64;tabed:snapkv@64,ngram" 2>/dev/null)
if python3 -c '
import json,sys; rows=json.loads(sys.stdin.read())
assert [r["spec"] for r in rows]==["plain","spec=views(snapkv@64)","spec=tabed/kl(snapkv@64,ngram)"], rows
assert all(r["avg_ts"]>0 and r["n_gen"]==8 and 150<=r["n_depth"]<=260 for r in rows), rows
assert rows[0]["spec_report"] is None and rows[2]["spec_report"]["mode"]=="tabed", rows
' <<<"$json"; then echo "ok   bench --spec rows"; passes=$((passes+1))
else echo "FAIL bench --spec: $json"; fails=$((fails+1)); fi
# --question replaces the summary request: a longer question makes a longer prompt, and the
# plain row's answer is shown on stderr.
long_q="Repeat the last paragraph above word for word, keeping every name, number and punctuation mark exactly as it is written there, and add nothing before or after it."
json2=$("$GLIMPSE" bench -m "$MODEL" -d 200 -n 8 -r 1 -t 2 -o json --spec ngram --question "$long_q" 2>"$tmp/bq.err")
if python3 -c '
import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2])
assert b[0]["n_depth"] >= a[0]["n_depth"] + 20, (a[0]["n_depth"], b[0]["n_depth"])
' "$json" "$json2" && grep -q "answer at depth" "$tmp/bq.err"; then
  echo "ok   bench --spec --question"; passes=$((passes+1))
else echo "FAIL bench --spec --question: $json2"; cat "$tmp/bq.err"; fails=$((fails+1)); fi
# bench -npl: parallel sequences in batched-bench form; each JSON row carries n_parallel and the
# aggregate avg_ts, and N contexts hold N times one context's KV bytes.
expect_error "bad -npl" "-npl: expected 1..256" "$GLIMPSE" bench -m "$MODEL" -npl 0
json=$("$GLIMPSE" bench -m "$MODEL" -p 0 -n 8 -npl 1,3 -r 1 -t 2 -o json 2>/dev/null)
if echo "$json" | python3 -c '
import json, sys
rows = json.load(sys.stdin)
assert [r["n_parallel"] for r in rows] == [1, 3], rows
assert all(r["avg_ts"] > 0 and r["test"] == "tg8" for r in rows), rows
assert abs(rows[1]["kv_mib"] - 3 * rows[0]["kv_mib"]) < 1e-6, rows
'; then echo "ok   bench -npl rows"; passes=$((passes+1))
else echo "FAIL bench -npl: $json"; fails=$((fails+1)); fi
# KV cache types (-ctk/-ctv): an unknown type is an error; the cache holds the type's bytes
# (f32 ~2x f16, q8_0 ~0.54x, positions included); bench compares types in type_k/type_v columns.
expect_error "unknown KV cache type" "-ctk: unknown KV cache type 'q4_0'" "$GLIMPSE" run -m "$MODEL" -p hi -ctk q4_0
expect_error "unknown KV cache type in a bench list" "unknown KV cache type 'f8'" "$GLIMPSE" bench -m "$MODEL" -ctv f16,f8
kv_ok=1
for t in f16 f32 bf16 q8_0; do
  "$GLIMPSE" run -m "$MODEL" -p "The capital of France is" -n 4 --temp 0 -t 2 -q -ctk $t --cache-type-v $t \
    --timings-json "$tmp/kv_$t.json" >"$tmp/kv_$t.out" 2>"$tmp/err" && [ -s "$tmp/kv_$t.out" ] || kv_ok=0
done
table=$("$GLIMPSE" bench -m "$MODEL" -p 16 -n 2 -d 8 -r 1 -t 2 -ctk f16,q8_0 -ctv q8_0 2>/dev/null)
if [ $kv_ok -eq 1 ] && python3 -c "
import json,sys; b={t: json.load(open(f'{sys.argv[1]}/kv_{t}.json')) for t in ['f16','f32','bf16','q8_0']}
assert all(b[t]['type_k']==t and b[t]['type_v']==t for t in b), b
r32=b['f32']['kv_bytes']/b['f16']['kv_bytes']; r8=b['q8_0']['kv_bytes']/b['f16']['kv_bytes']
assert 1.9<r32<2.0 and 0.5<r8<0.6 and b['bf16']['kv_bytes']==b['f16']['kv_bytes'], (r32, r8)" "$tmp" \
   && echo "$table" | grep -q "| type_k | type_v |" && echo "$table" | grep -q "| f16 | q8_0 | tg2 @ d8 |" \
   && echo "$table" | grep -q "| q8_0 | q8_0 | pp16 @ d8 |" && echo "$table" | grep -q "| 8 | q8_0 | q8_0 | .* MiB |"; then
  echo "ok   KV cache types: bytes per type, bench columns"; passes=$((passes+1))
else echo "FAIL KV cache types"; cat "$tmp/err"; echo "$table"; fails=$((fails+1)); fi

# Eviction: the JSON reports the policy, fewer bytes after, and the kept entries per layer.
for i in $(seq 1 60); do printf 'Line %d of the notes says nothing of interest. ' "$i"; done >"$tmp/ctx.txt"
"$GLIMPSE" run -m "$MODEL" -f "$tmp/ctx.txt" --question "What is this?" --chat -n 4 --temp 0 -t 2 \
  --kv-policy snapkv --kv-budget 64 --timings-json "$tmp/kv.json" >"$tmp/out" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q "kv policy = snapkv" "$tmp/err" && python3 -c "
import json,sys; k=json.load(open(sys.argv[1]))['kv']
assert k['evicted'] and k['budget']==64 and k['kv_bytes_after']*4 < k['kv_bytes_before']
assert k['kept_per_layer']==[64*3]*30 and k['score_ms']>0, k" "$tmp/kv.json"; then
  echo "ok   snapkv eviction report"; passes=$((passes+1))
else echo "FAIL eviction report"; cat "$tmp/err"; fails=$((fails+1)); fi

# --kv-dump-kept: the prompt's token ids and, per layer and KV head, the sorted kept positions
# (budget-many, window included); without eviction every head keeps the whole prompt.
"$GLIMPSE" run -m "$MODEL" -f "$tmp/ctx.txt" --question "What is this?" --chat -n 4 --temp 0 -t 2 -q \
  --kv-policy snapkv --kv-budget 64 --kv-dump-kept "$tmp/kept.json" >/dev/null 2>"$tmp/err" \
  && "$GLIMPSE" run -m "$MODEL" -p "The capital of France is" -n 2 --temp 0 -t 2 -q \
       --kv-dump-kept "$tmp/kept_none.json" >/dev/null 2>>"$tmp/err"
if [ $? -eq 0 ] && python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); n=d['n_prompt']
assert d['policy']=='snapkv' and d['budget']==64 and d['window']==32 and len(d['tokens'])==n>64, d['budget']
assert len(d['kept'])==30 and all(len(l)==3 for l in d['kept'])
for l in d['kept']:
  for h in l:
    assert len(h)==64 and h==sorted(set(h)) and 0<=h[0] and h[-1]<n and set(range(n-32,n))<=set(h), h
e=json.load(open(sys.argv[2])); m=e['n_prompt']
assert e['policy']=='none' and not e['evicted'] and len(e['tokens'])==m
assert all(h==list(range(m)) for l in e['kept'] for h in l)" "$tmp/kept.json" "$tmp/kept_none.json"; then
  echo "ok   kv-dump-kept"; passes=$((passes+1))
else echo "FAIL kv-dump-kept"; cat "$tmp/err"; fails=$((fails+1)); fi

# eval: a tiny end-to-end run writes the run directory, and a second run resumes from the cache.
"$GLIMPSE" eval -m "$MODEL" --preset tiny --lengths 300 --budgets 32 --policies none,snapkv,streaming \
  -o "$tmp/ev" -t 2 >"$tmp/ev.md" 2>"$tmp/ev.err"
rc=$?
"$GLIMPSE" eval -m "$MODEL" --preset tiny --lengths 300 --budgets 32 --policies none,snapkv,streaming \
  -o "$tmp/ev" -t 2 >"$tmp/ev2.md" 2>"$tmp/ev2.err"
if [ $rc -eq 0 ] && grep -q "| snapkv" "$tmp/ev.md" && [ "$(wc -l <"$tmp/ev/predictions.jsonl")" -eq 6 ] \
   && [ -s "$tmp/ev/score_vs_budget.svg" ] && [ -s "$tmp/ev/metrics.csv" ] && cmp -s "$tmp/ev.md" "$tmp/ev2.md" \
   && [ "$(wc -l <"$tmp/ev/cache.jsonl")" -eq 6 ]; then
  echo "ok   eval tiny run and resume"; passes=$((passes+1))
else echo "FAIL eval"; cat "$tmp/ev.err" "$tmp/ev.md"; fails=$((fails+1)); fi

# eval --questions (compress once, ask many): one run per question of each context, the
# context compressed query-agnostically, so every question's branch keeps the same entries.
"$GLIMPSE" eval -m "$MODEL" --preset once --tasks niah_multikey_noise --lengths 400 --seeds 1 \
  --questions 2 --budgets 32 --policies none,snapkv -o "$tmp/evq" -t 2 >"$tmp/evq.md" 2>"$tmp/evq.err"
if [ $? -eq 0 ] && python3 - "$tmp/evq" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/predictions.jsonl")]
cfg = json.load(open(sys.argv[1] + "/config.json"))
assert cfg["query_agnostic"] and cfg["questions"] == 2, cfg
ids = sorted({r["id"] for r in rows})
assert ids == ["niah_multikey_noise/400/1000/q0", "niah_multikey_noise/400/1000/q1"], ids
snap = [r for r in rows if r["policy"] == "snapkv"]
assert len(snap) == 2 and snap[0]["n_compressed"] == snap[1]["n_compressed"], snap
assert snap[0]["kv_bytes"] == snap[1]["kv_bytes"], snap
PY
then echo "ok   eval --questions: one row per question, one compression per context"; passes=$((passes+1))
else echo "FAIL eval --questions"; cat "$tmp/evq.err"; fails=$((fails+1)); fi
expect_error "eval --questions on a one-question task" "--questions 4: task vt asks 1 question" \
  "$GLIMPSE" eval -m "$MODEL" --preset once --tasks vt -o "$tmp/evqbad"

# eval with SpecKV and prompt compression as branches (speckv, specpc, speckv_pc; the model as
# its own draft):
# rows for both; at a budget above the prompt, specpc prefills the whole prompt and equals
# the full cache (same answer, KL 0).
"$GLIMPSE" eval -m "$MODEL" --preset tiny --tasks niah_single_noise --lengths 400 --budgets 32,1000 \
  --policies none,speckv,specpc,speckv_pc --pc-draft "$MODEL" --kv-draft "$MODEL" -o "$tmp/evpc" -t 2 \
  >"$tmp/evpc.md" 2>"$tmp/evpc.err"
if [ $? -eq 0 ] && python3 - "$tmp/evpc" <<'PY'
import json, sys
rows = {(r["policy"], r["budget"]): r for r in map(json.loads, open(sys.argv[1] + "/predictions.jsonl"))}
assert set(rows) == {("none", 0), ("speckv", 32), ("speckv", 1000), ("specpc", 32), ("specpc", 1000),
                     ("speckv_pc", 32), ("speckv_pc", 1000)}, rows.keys()
full, whole = rows[("none", 0)], rows[("specpc", 1000)]
assert whole["prediction"] == full["prediction"] and whole["kl"] == 0 and whole["greedy_exact"], whole
assert whole["pc_tokens"] == full["n_prompt"] and not whole["evicted"], whole
assert rows[("specpc", 32)]["pc_tokens"] == 32 and rows[("specpc", 32)]["evicted"]
assert rows[("speckv_pc", 32)]["pc_tokens"] == 128 and rows[("speckv_pc", 32)]["score_ms"] > 0
PY
then echo "ok   eval specpc / speckv_pc branches"; passes=$((passes+1))
else echo "FAIL eval specpc / speckv_pc"; cat "$tmp/evpc.err"; fails=$((fails+1)); fi
expect_error "eval specpc without a draft" "--policies specpc needs a draft model: --pc-draft FNAME" \
  "$GLIMPSE" eval -m "$MODEL" --preset tiny --policies none,specpc -o "$tmp/evpcbad"

# eval --serial-decode: each branch answers alone; the rows equal the batched run's but for
# timings, and only the serial run measures a branch's decode speed.
"$GLIMPSE" eval -m "$MODEL" --preset tiny --lengths 300 --budgets 32 --policies none,snapkv,streaming \
  -o "$tmp/evs" -t 2 --serial-decode >"$tmp/evs.md" 2>"$tmp/evs.err"
if [ $? -eq 0 ] && python3 - "$tmp/ev/cache.jsonl" "$tmp/evs/cache.jsonl" <<'PY'
import json, sys
def rows(p):
    out = {}
    for line in open(p):
        e = json.loads(line)
        out[(e["key"]["task"], e["key"]["seed"], e["key"]["policy"], e["key"]["budget"])] = e["result"]
    return out
batched, serial = rows(sys.argv[1]), rows(sys.argv[2])
assert batched.keys() == serial.keys() and len(batched) == 6, (batched.keys(), serial.keys())
timing = {"decode_tps", "score_ms", "evict_ms", "prefill_ms"}
for k, b in batched.items():
    s = serial[k]
    assert {f: v for f, v in b.items() if f not in timing} == {f: v for f, v in s.items() if f not in timing}, k
    assert isinstance(s["decode_tps"], float), s
    assert (b["decode_tps"] is None) == (k[2] != "none"), b
PY
then echo "ok   eval --serial-decode: same rows as the batched decode"; passes=$((passes+1))
else echo "FAIL eval --serial-decode"; cat "$tmp/evs.err"; fails=$((fails+1)); fi

# eval --spec: speculative configurations per task family; every output equals plain decoding;
# a second run reads every row back from the cache.
evs() { "$GLIMPSE" eval -m "$MODEL" --preset parallel --tasks wl_copy,wl_sort --seeds 1 -t 2 \
  --spec "views:snapkv@64;ngram;tabed:snapkv@64,ngram" -o "$tmp/evspec" "$@"; }
expect_error "eval --spec bad row" "mode 'fast' is not one of" "$GLIMPSE" eval -m "$MODEL" --spec "fast" -o "$tmp/evspecbad"
if evs >"$tmp/evspec.md" 2>"$tmp/evspec.err" && evs >"$tmp/evspec2.md" 2>/dev/null \
   && cmp -s "$tmp/evspec.md" "$tmp/evspec2.md" && [ "$(wc -l <"$tmp/evspec/spec-cache.jsonl")" -eq 8 ] \
   && [ "$(grep -c '1/1 | [0-9.]* / [0-9.]*× / 1/1 | [0-9.]* / [0-9.]*× / 1/1 |$' "$tmp/evspec.md")" -eq 2 ] \
   && grep -q "^| wl_copy | 1 | " "$tmp/evspec.md" && grep -q "best single source" "$tmp/evspec.md"; then
  echo "ok   eval --spec: per-family table, outputs identical to plain, resume"; passes=$((passes+1))
else echo "FAIL eval --spec"; cat "$tmp/evspec.err" "$tmp/evspec.md"; fails=$((fails+1)); fi

# eval --data: the user's cases, a metrics row per case and policy, evidence recall where the
# case names evidence, resume from the cache; a changed shared setting re-runs every branch.
DATA=$(dirname "$0")/fixtures/eval_data_small.jsonl
evd() { "$GLIMPSE" eval -m "$MODEL" --data "$DATA" --policies none,snapkv --budgets 64 -t 2 "$@"; }
evd -o "$tmp/evd" >"$tmp/evd.md" 2>"$tmp/evd.err"
rc=$?
evd -o "$tmp/evd" >"$tmp/evd2.md" 2>"$tmp/evd2.err"
rc2=$?
n_cached=$(wc -l <"$tmp/evd/cache.jsonl")
evd -o "$tmp/evd" --kv-window 8 >/dev/null 2>"$tmp/evd3.err"
rc3=$?
if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ] && cmp -s "$tmp/evd.md" "$tmp/evd2.md" \
   && [ "$n_cached" -eq 8 ] && [ "$(wc -l <"$tmp/evd/cache.jsonl")" -eq 16 ] \
   && grep -q "| target recall | evidence | evidence any head |" "$tmp/evd.md" \
   && python3 - "$tmp/evd" "$DATA" <<'PY'
import csv, json, os, sys
d, data = sys.argv[1], sys.argv[2]
cases = {c["id"]: c for c in map(json.loads, filter(str.strip, open(data)))}
preds = [json.loads(l) for l in open(f"{d}/predictions.jsonl")]
# After the --kv-window run, predictions hold that run's rows: one per case and branch.
assert sorted((p["id"], p["policy"]) for p in preds) == sorted(
    (i, pol) for i in cases for pol in ("none", "snapkv")), preds
for p in preds:
    c = cases[p["id"]]
    assert p["task"] == c.get("task", "data") and p["length"] == 0 and p["n_prompt"] > 100, p
    if c.get("evidence"):
        assert p["n_evidence"] > 0 and 0 <= p["evidence_recall"] <= 1, p
        assert p["evidence_recall"] - 1e-9 <= p["evidence_recall_any_head"] <= 1, p
        if p["policy"] == "none": assert p["evidence_recall"] == 1, p
        else: assert len(p["evidence_recall_layers"]) == 30, p
    else:
        assert p["evidence_recall"] is None and p["n_evidence"] == 0, p
rows = list(csv.DictReader(open(f"{d}/metrics.csv")))
tasks = {c.get("task", "data") for c in cases.values()}
assert {(r["task"], r["policy"]) for r in rows} == {(t, p) for t in tasks for p in ("none", "snapkv")}, rows
for pol in ("none", "snapkv"):  # every case counted once per policy
    assert sum(int(r["n"]) for r in rows if r["policy"] == pol) == len(cases), rows
for r in rows:
    assert (r["evidence_recall"] == "n/a") == (r["task"] == "open_data"), r
groups = json.load(open(f"{d}/metrics.json"))["groups"]
assert all((g["evidence_recall"] is None) == (g["task"] == "open_data") for g in groups), groups
cfg = json.load(open(f"{d}/config.json"))
assert cfg["data"].endswith("eval_data_small.jsonl") and "window=8" in cfg["settings"], cfg
for f in ("summary.md", "score_vs_budget.svg", "recall_vs_budget.svg",
          "evidence_recall_vs_budget.svg", "kl_vs_budget.svg", "overhead.svg"):
    assert os.path.getsize(f"{d}/{f}") > 0, f
PY
then echo "ok   eval --data: rows per case, evidence recall, resume, settings in the key"; passes=$((passes+1))
else echo "FAIL eval --data"; cat "$tmp/evd.err" "$tmp/evd.md" "$tmp/evd3.err"; fails=$((fails+1)); fi
printf '%s\n' '{"context": "a b c", "question": "q?"}' '{"context": "a b c", "question": ' >"$tmp/bad1.jsonl"
expect_error "eval --data malformed JSON" "bad1.jsonl:2: malformed JSON" "$GLIMPSE" eval -m "$MODEL" --data "$tmp/bad1.jsonl" -o "$tmp/evbad"
echo '{"question": "q?"}' >"$tmp/bad2.jsonl"
expect_error "eval --data missing field" "bad2.jsonl:1: missing field 'context'" "$GLIMPSE" eval -m "$MODEL" --data "$tmp/bad2.jsonl" -o "$tmp/evbad"
echo '{"context": "a b c", "question": "q?", "answers": "b"}' >"$tmp/bad3.jsonl"
expect_error "eval --data mistyped field" "bad3.jsonl:1: field 'answers' must be a list of strings" "$GLIMPSE" eval -m "$MODEL" --data "$tmp/bad3.jsonl" -o "$tmp/evbad"
echo '{"context": "a b c", "question": "q?", "evidence": ["x y"]}' >"$tmp/bad4.jsonl"
expect_error "eval --data evidence not in the context" "bad4.jsonl:1: evidence 1 does not occur verbatim" "$GLIMPSE" eval -m "$MODEL" --data "$tmp/bad4.jsonl" -o "$tmp/evbad"
expect_error "eval --data over the context" "eval_data_small.jsonl:1: case 'workshop-code' needs .* positions .* context size 128" "$GLIMPSE" eval -m "$MODEL" --data "$DATA" -c 128 -o "$tmp/evbad"
expect_error "eval --data with --tasks" "--data replaces the generated tasks: drop --tasks" "$GLIMPSE" eval -m "$MODEL" --data "$DATA" --tasks vt
expect_error "eval --data missing file" "cannot read" "$GLIMPSE" eval -m "$MODEL" --data "$tmp/none.jsonl"

# LookaheadKV: training on a tiny prompt file, exact resume, and the policy using the module.
expect_error "train-lookahead without prompts" "--prompts is required" "$GLIMPSE" train-lookahead -m "$MODEL"
echo '{"context": 5}' >"$tmp/bad.jsonl"
expect_error "train-lookahead bad prompt line" "must be a string" "$GLIMPSE" train-lookahead -q -m "$MODEL" --prompts "$tmp/bad.jsonl" --cache-dir "$tmp/lc"
expect_error "lookahead policy without module file" "cannot read LookaheadKV module" "$GLIMPSE" run -m "$MODEL" -p hi --kv-policy lookahead --kv-budget 8 --kv-lookahead-module "$tmp/none.gguf"
python3 - "$tmp/p.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(2):
        ctx = " ".join(f"Item {k} of list {i} is the color {['red','green','blue'][k % 3]}." for k in range(12))
        f.write(json.dumps({"context": ctx, "question": "Which items are blue?"}) + "\n")
PY
train() { "$GLIMPSE" train-lookahead -m "$MODEL" --prompts "$tmp/p.jsonl" --cache-dir "$tmp/lc" --steps 3 \
  --batch 1 --answer-len 4 --warmup 1 --save-every 1 -t 2 -q "$@" >/dev/null 2>"$tmp/err"; }
if train --out "$tmp/full.gguf" && train --out "$tmp/part.gguf" --run-steps 1 \
   && train --out "$tmp/part.gguf" --resume && cmp -s "$tmp/full.gguf" "$tmp/part.gguf" \
   && [ "$(wc -l <"$tmp/part.gguf.log.jsonl")" -eq 3 ] \
   && "$GLIMPSE" run -m "$MODEL" -f "$tmp/ctx.txt" --chat -n 2 --temp 0 -t 2 --kv-policy lookahead \
        --kv-budget 32 --kv-lookahead-module "$tmp/full.gguf" >/dev/null 2>"$tmp/err" \
   && grep -q "kv policy = lookahead" "$tmp/err"; then
  echo "ok   train-lookahead, exact resume, lookahead policy"; passes=$((passes+1))
else echo "FAIL train-lookahead"; cat "$tmp/err"; fails=$((fails+1)); fi

# --init fine-tunes a trained module: the validation loss logged at step 0 is that module's
# own (as --eval reports it), not a fresh module's.
expect_error "train-lookahead --init missing module" "cannot read LookaheadKV module" "$GLIMPSE" train-lookahead -q -m "$MODEL" --prompts "$tmp/p.jsonl" --cache-dir "$tmp/lc" --answer-len 4 --init "$tmp/none.gguf"
evl() { "$GLIMPSE" train-lookahead -m "$MODEL" --prompts "$tmp/p.jsonl" --cache-dir "$tmp/lc" --answer-len 4 -t 2 -q --eval "$1" 2>/dev/null; }
if ev_trained=$(evl "$tmp/full.gguf") && ev_fresh=$(evl init) \
   && train --out "$tmp/ft.gguf" --init "$tmp/full.gguf" --val-prompts "$tmp/p.jsonl" --val-every 2 \
   && python3 - "$ev_trained" "$ev_fresh" "$tmp/ft.gguf.log.jsonl" <<'PY'
import json, sys
trained, fresh = json.loads(sys.argv[1])["mean_kl"], json.loads(sys.argv[2])["mean_kl"]
v0 = [json.loads(l)["val_loss"] for l in open(sys.argv[3]) if '"val_loss"' in l and json.loads(l)["step"] == 0]
assert len(v0) == 1 and abs(v0[0] - trained) < 1e-5 and abs(v0[0] - fresh) > 1e-4, (v0, trained, fresh)
ev = json.loads(sys.argv[1])  # one loss per prompt, averaging to mean_kl
assert len(ev["prompt_kl"]) == ev["prompts"] and abs(sum(ev["prompt_kl"]) / ev["prompts"] - ev["mean_kl"]) < 1e-5, ev
PY
then echo "ok   train-lookahead --init (fine-tuning from a module), --eval per prompt"; passes=$((passes+1))
else echo "FAIL train-lookahead --init"; cat "$tmp/err"; fails=$((fails+1)); fi

# Ground-truth-only sample files (--recompute-kv) train the same module bit for bit; a
# validation set logs its loss and keeps the best module.
if train --out "$tmp/rec.gguf" --recompute-kv && cmp -s "$tmp/full.gguf" "$tmp/rec.gguf" \
   && [ "$(ls "$tmp"/lc/*-gt.lkv | wc -l)" -eq 2 ] \
   && [ "$(stat -c %s "$(ls "$tmp"/lc/*-gt.lkv | head -1)")" -lt "$(stat -c %s "$(ls "$tmp"/lc/*.lkv | grep -v -- -gt | head -1)")" ] \
   && "$GLIMPSE" train-lookahead -m "$MODEL" --prompts "$tmp/p.jsonl" --cache-dir "$tmp/lc" --steps 4 \
        --batch 1 --answer-len 4 --warmup 1 -t 2 -q --recompute-kv --val-prompts "$tmp/p.jsonl" \
        --val-every 2 --out "$tmp/val.gguf" >/dev/null 2>"$tmp/err" \
   && [ "$(grep -c val_loss "$tmp/val.gguf.log.jsonl")" -eq 2 ] && [ -s "$tmp/val.gguf" ] \
   && grep -q "validation: best loss" "$tmp/err"; then
  echo "ok   train-lookahead --recompute-kv (same module), validation"; passes=$((passes+1))
else echo "FAIL train-lookahead --recompute-kv / validation"; cat "$tmp/err"; fails=$((fails+1)); fi

# Answer-only sample files (--recompute-truth: the ground truth is rebuilt from the stored
# answers each step) train the same module bit for bit; the validation losses kept in memory
# after the first validation equal a fresh one (step 2 validated with and without a
# validation at step 1 before it).
val2() { grep '"val_loss"' "$1" | python3 -c 'import json,sys; print([json.loads(l)["val_loss"] for l in sys.stdin if json.loads(l)["step"] == 2][0])'; }
if train --out "$tmp/ans.gguf" --recompute-truth && cmp -s "$tmp/full.gguf" "$tmp/ans.gguf" \
   && [ "$(ls "$tmp"/lc/*-ans.lkv | wc -l)" -eq 2 ] \
   && [ "$(stat -c %s "$(ls "$tmp"/lc/*-ans.lkv | head -1)")" -lt 200 ] \
   && train --out "$tmp/v1.gguf" --recompute-truth --steps 2 --val-prompts "$tmp/p.jsonl" --val-every 1 \
   && train --out "$tmp/v2.gguf" --recompute-truth --steps 2 --val-prompts "$tmp/p.jsonl" --val-every 2 \
   && [ "$(val2 "$tmp/v1.gguf.log.jsonl")" = "$(val2 "$tmp/v2.gguf.log.jsonl")" ]; then
  echo "ok   train-lookahead --recompute-truth (same module), validation memo"; passes=$((passes+1))
else echo "FAIL train-lookahead --recompute-truth / validation memo"; cat "$tmp/err"; fails=$((fails+1)); fi

# Compress once: a context with several questions; the rows follow the context alone, and
# --query-agnostic runs with the module; a "questions" entry that is no list is refused.
python3 - "$tmp/pq.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(2):
        ctx = " ".join(f"Item {k} of list {i} is the color {['red','green','blue'][k % 3]}." for k in range(12))
        f.write(json.dumps({"context": ctx, "questions": ["Which items are blue?", "What color is item 4?"]}) + "\n")
PY
echo '{"context": "a b", "questions": "q?"}' >"$tmp/badq.jsonl"
expect_error "train-lookahead --agnostic questions not a list" "must be a non-empty list" "$GLIMPSE" train-lookahead -q -m "$MODEL" --agnostic --prompts "$tmp/badq.jsonl" --cache-dir "$tmp/lc"
if "$GLIMPSE" train-lookahead -m "$MODEL" --prompts "$tmp/pq.jsonl" --cache-dir "$tmp/lc" --steps 2 \
     --batch 1 --answer-len 4 --warmup 1 -t 2 -q --agnostic --out "$tmp/agn.gguf" >/dev/null 2>"$tmp/err" \
   && [ "$(ls "$tmp"/lc/*-agnostic.lkv | wc -l)" -eq 2 ] && [ -s "$tmp/agn.gguf" ] \
   && "$GLIMPSE" run -m "$MODEL" -f "$tmp/ctx.txt" --question "Which items are blue?" -n 2 --temp 0 -t 2 \
        --kv-policy lookahead --query-agnostic --kv-budget 32 --kv-lookahead-module "$tmp/agn.gguf" \
        >/dev/null 2>"$tmp/err" && grep -q "kv policy = lookahead" "$tmp/err"; then
  echo "ok   train-lookahead --agnostic, query-agnostic run"; passes=$((passes+1))
else echo "FAIL train-lookahead --agnostic"; cat "$tmp/err"; fails=$((fails+1)); fi

# The module shipped in modules/ is found for the default model without --kv-lookahead-module.
if [ "$(basename "$MODEL")" = "SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  if "$GLIMPSE" run -m "$MODEL" -f "$tmp/ctx.txt" --chat -n 2 --temp 0 -t 2 --kv-policy lookahead \
        --kv-budget 32 >/dev/null 2>"$tmp/err" && grep -q "kv policy = lookahead" "$tmp/err"; then
    echo "ok   shipped lookahead module"; passes=$((passes+1))
  else echo "FAIL shipped lookahead module"; cat "$tmp/err"; fails=$((fails+1)); fi
fi

# Speculative decoding (greedy): every --spec mode prints the plain run's text (views under
# two policies, prompt lookup, the model as its own draft, the ensemble); --timings-json
# carries the spec object; bad spec strings and misuse give one error line.
for i in $(seq 1 30); do printf 'Row %d: valve %s opens at %d psi and closes at %d psi.\n' \
  "$i" "$(printf '%s' ABCDEFGHJK | cut -c$((i % 10 + 1)))$((i * 7 % 13))" $((i * 3 % 50 + 10)) $((i * 5 % 40 + 2)); done >"$tmp/spec.txt"
specrun() { "$GLIMPSE" run -m "$MODEL" -f "$tmp/spec.txt" --question "Which valves open at 40 psi?" --chat \
  -n 24 --temp 0 -t 2 -q "$@" 2>"$tmp/spec.err"; }
plain=$(specrun)
spec_ok=1
for args in "--spec views --spec-views snapkv@64,streaming@32" "--spec ngram" "--spec draft -md $MODEL" \
            "--spec tabed --spec-views snapkv@64,ngram,draft -md $MODEL --spec-weights grid"; do
  # shellcheck disable=SC2086
  got=$(specrun $args) || { spec_ok=0; cat "$tmp/spec.err"; }
  if [ -z "$plain" ] || [ "$got" != "$plain" ]; then spec_ok=0; echo "  $args: '$got' vs '$plain'"; fi
done
"$GLIMPSE" run -m "$MODEL" -f "$tmp/spec.txt" --question "Which valves open at 40 psi?" --chat -n 24 --temp 0 -t 2 \
  --spec tabed --spec-views snapkv@64,ngram --timings-json "$tmp/spec.json" >/dev/null 2>"$tmp/spec.err" || spec_ok=0
if [ $spec_ok -eq 1 ] && grep -q "speculative = tabed (snapkv@64, ngram), weights kl" "$tmp/spec.err" && python3 -c "
import json,sys; t=json.load(open(sys.argv[1])); s=t['spec']
assert s['mode']=='tabed' and s['verify']=='greedy' and [x['name'] for x in s['sources']]==['snapkv@64','ngram'], s
assert s['generated']==t['n_gen']-1 and s['rounds']>0 and 0<=s['accepted']<=s['drafted'] and t['decode_cpu_ms']>0, s
assert abs(s['tokens_per_forward']-s['generated']/s['rounds'])<1e-9 and abs(sum(x['weight'] for x in s['sources'])-1)<1e-9, s
assert s['sources'][0]['kv_entries']==64*30*3, s" "$tmp/spec.json"; then
  echo "ok   --spec views/ngram/draft/tabed print the plain run's text; spec timings"; passes=$((passes+1))
else echo "FAIL --spec"; cat "$tmp/spec.err"; fails=$((fails+1)); fi
# Speculative sampling: the same --seed gives the same text; --top-k 1 gives the greedy text.
s1=$(specrun --temp 0.8 --seed 7 --spec tabed --spec-views snapkv@64,ngram) || cat "$tmp/spec.err"
s2=$(specrun --temp 0.8 --seed 7 --spec tabed --spec-views snapkv@64,ngram)
s3=$(specrun --temp 0.8 --top-k 1 --seed 7 --spec tabed --spec-views snapkv@64,ngram)
if [ -n "$s1" ] && [ "$s1" = "$s2" ] && [ "$s3" = "$plain" ]; then
  echo "ok   --spec with --temp > 0: seeded, top-k 1 is greedy"; passes=$((passes+1))
else echo "FAIL --spec sampling: '$s1' / '$s2' / '$s3' vs '$plain'"; cat "$tmp/spec.err"; fails=$((fails+1)); fi
expect_error "unknown --spec mode" "--spec: 'bogus' is not one of" "$GLIMPSE" run -m "$MODEL" -p hi --temp 0 --spec bogus
expect_error "view without a budget" "'snapkv': expected POLICY@BUDGET" "$GLIMPSE" run -m "$MODEL" -p hi --temp 0 --spec views --spec-views snapkv
expect_error "view with a bad budget" "budget 'x' is not an integer" "$GLIMPSE" run -m "$MODEL" -p hi --temp 0 --spec views --spec-views snapkv@x
expect_error "view of an unknown policy" "draft source 'bogus@8': unknown KV policy 'bogus'" "$GLIMPSE" run -m "$MODEL" -p hi --temp 0 --spec views --spec-views snapkv@64,bogus@8
expect_error "repeated source" "appears twice" "$GLIMPSE" run -m "$MODEL" -p hi --temp 0 --spec tabed --spec-views ngram,ngram
expect_error "ngram among views" "'ngram' goes with --spec tabed" "$GLIMPSE" run -m "$MODEL" -p hi --temp 0 --spec views --spec-views snapkv@64,ngram
expect_error "unknown weight rule" "'median' is not one of kl, tvd, grid, uniform" "$GLIMPSE" run -m "$MODEL" -p hi --temp 0 --spec tabed --spec-weights median
expect_error "draft without -md" "needs a draft model (-md FNAME)" "$GLIMPSE" run -m "$MODEL" -p hi --temp 0 --spec draft
expect_error "-md without --spec" "-md needs --spec" "$GLIMPSE" run -m "$MODEL" -p hi --temp 0 -md "$MODEL"
expect_error "--spec with eviction" "does not combine" "$GLIMPSE" run -m "$MODEL" -p hi --temp 0 --spec ngram --kv-policy snapkv --kv-budget 8
expect_error "bad draft lengths" "--draft-min 5 / --draft-max 4" "$GLIMPSE" run -m "$MODEL" -p hi --temp 0 --spec ngram --draft-min 5 --draft-max 4

# tokenize prints a JSON array.
ids=$("$GLIMPSE" tokenize -m "$MODEL" -p "Hello world")
if [ "$ids" = "[19556,905]" ]; then echo "ok   tokenize"; passes=$((passes+1));
else echo "FAIL tokenize: $ids"; fails=$((fails+1)); fi

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
