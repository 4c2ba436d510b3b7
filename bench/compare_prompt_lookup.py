"""Driver for bench/compare-prompt-lookup. Per repetition, in turn: glimpse plain, glimpse
--spec ngram (each a `glimpse run` process; decode t/s from --timings-json), llama.cpp plain
and llama.cpp with LlamaPromptLookupDecoding (in this process: the prompt but its last token
is evaluated untimed, then the timed generate() evaluates that token and decodes -n tokens).
All decode greedily with the end-of-generation token ignored; the table gives median decode
t/s, each engine's speculative/plain ratio, and whether the texts agree."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import llama_cpp
from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

ap = argparse.ArgumentParser()
ap.add_argument("--glimpse", required=True)
ap.add_argument("-m", "--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
ap.add_argument("-f", "--file", required=True, help="the prompt text")
ap.add_argument("-n", type=int, default=128)
ap.add_argument("-r", type=int, default=3)
ap.add_argument("-t", type=int, default=2)
ap.add_argument("--num-pred", type=int, default=10, help="LlamaPromptLookupDecoding num_pred_tokens")
ap.add_argument("--ngram", type=int, default=2, help="LlamaPromptLookupDecoding max_ngram_size")
a = ap.parse_args()

ids = json.loads(subprocess.run([a.glimpse, "tokenize", "-m", a.model, "-f", a.file],
                                check=True, capture_output=True, text=True).stdout)
n_ctx = len(ids) + a.n + 16


def glimpse_run(spec):
    with tempfile.NamedTemporaryFile(suffix=".json") as tj:
        cmd = [a.glimpse, "run", "-m", a.model, "-f", a.file, "-n", str(a.n), "--temp", "0",
               "--ignore-eos", "-t", str(a.t), "-c", str(n_ctx), "-q", "--timings-json", tj.name]
        if spec:
            cmd += ["--spec", "ngram"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        t = json.load(open(tj.name))
    return t["decode_tps"], out, t.get("spec", {})


def make_llama(lookup):
    kw = dict(model_path=a.model, n_ctx=n_ctx, n_batch=2048, n_ubatch=512, n_threads=a.t,
              n_threads_batch=a.t, verbose=False)
    if lookup:
        kw["draft_model"] = LlamaPromptLookupDecoding(max_ngram_size=a.ngram, num_pred_tokens=a.num_pred)
        # A draft model needs every row's logits; said explicitly, the score buffer is sized
        # for the context (llama-cpp-python 0.3.36 sizes it for one batch otherwise).
        kw["logits_all"] = True
    return llama_cpp.Llama(**kw)


def llama_run(llm):
    llm.reset()
    llm.eval(ids[:-1])
    out = []
    t0 = time.perf_counter()
    for tok in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0,
                            reset=True):
        out.append(tok)
        if len(out) == a.n:
            break
    sec = time.perf_counter() - t0
    return a.n / sec, llm.detokenize(out).decode("utf-8", "replace")


llamas = {"plain": make_llama(False), "lookup": make_llama(True)}
rows = {k: [] for k in ["glimpse plain", "glimpse ngram", "llama.cpp plain", "llama.cpp lookup"]}
texts = {}
spec_report = {}
for r in range(a.r):
    for name in rows:
        if name.startswith("glimpse"):
            tps, text, rep = glimpse_run(name.endswith("ngram"))
            if rep:
                spec_report = rep
        else:
            tps, text = llama_run(llamas["lookup" if name.endswith("lookup") else "plain"])
        rows[name].append(tps)
        texts.setdefault(name, text)
        print(f"rep {r + 1}: {name}: {tps:.2f} t/s", file=sys.stderr)

med = {k: statistics.median(v) for k, v in rows.items()}
print(f"prompt {len(ids)} tokens ({os.path.basename(a.file)}), -n {a.n}, -t {a.t}, {a.r} interleaved repetitions; "
      f"llama.cpp lookup: max_ngram_size {a.ngram}, num_pred_tokens {a.num_pred}\n")


def common_prefix(x, y):
    n = 0
    while n < min(len(x), len(y)) and x[n] == y[n]:
        n += 1
    return n


print("| engine | decoding | decode t/s (median) | vs own plain | text: characters in common with own plain |")
print("|---|---|---:|---:|---|")
for k, v in med.items():
    eng, mode = k.split(" ", 1)
    base, own = med[f"{eng} plain"], texts[f"{eng} plain"]
    same = "identical" if texts[k] == own else f"{common_prefix(texts[k], own)} of {len(own)}"
    print(f"| {eng} | {mode} | {v:.2f} | {v / base:.2f}× | {same} |")
for k, t in texts.items():
    print(f"{k}: {t[:120]!r}", file=sys.stderr)
if spec_report:
    print(f"\nglimpse ngram: {spec_report['tokens_per_forward']:.2f} tokens per target forward, "
          f"{spec_report['accepted']} of {spec_report['drafted']} drafts accepted")
print(f"\nglimpse ngram / llama.cpp lookup: {med['glimpse ngram'] / med['llama.cpp lookup']:.2f}×")
