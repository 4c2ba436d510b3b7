"""Driver for bench/compare-llama-cpp: one repetition of glimpse (a `glimpse bench -r 1`
process), then one of llama.cpp (in this process, cache filled to the depth once per test
and truncated back before each repetition), alternating until -r repetitions each."""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

import llama_cpp

ap = argparse.ArgumentParser()
ap.add_argument("--glimpse", required=True)
ap.add_argument("-m", "--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
ap.add_argument("-p", default="512")
ap.add_argument("-n", default="128")
ap.add_argument("-d", default="0")
ap.add_argument("-r", type=int, default=5)
ap.add_argument("-t", type=int, default=2)
a = ap.parse_args()
ints = lambda s: [int(x) for x in s.split(",") if x.strip()]
P, N, D = ints(a.p), ints(a.n), ints(a.d)
need = max([d + x for d in D for x in P + N] + [1])

llm = llama_cpp.Llama(model_path=a.model, n_ctx=need, n_batch=2048, n_ubatch=512,
                      n_threads=a.t, n_threads_batch=a.t, verbose=False)
n_vocab = llm.n_vocab()
rng = random.Random(42)
toks = lambda k: [rng.randrange(n_vocab) for _ in range(k)]


def llama_rep(d, n_prompt, n_gen):
    llm._ctx.kv_cache_seq_rm(0, d, -1)
    llm.n_tokens = d
    t0 = time.perf_counter()
    if n_prompt:
        llm.eval(toks(n_prompt))
    else:
        for t in toks(n_gen):
            llm.eval([t])
    return (n_prompt + n_gen) / (time.perf_counter() - t0)


def glimpse_rep(d, n_prompt, n_gen):
    out = subprocess.run([a.glimpse, "bench", "-m", a.model, "-t", str(a.t), "-p", str(n_prompt),
                          "-n", str(n_gen), "-d", str(d), "-r", "1", "-o", "json"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)[0]
    return r["avg_ts"], r["peak_rss_mib"]


rows = []
g_rss = 0.0
for d in D:
    llm.reset()
    llm._ctx.kv_cache_seq_rm(0, 0, -1)
    if d:
        llm.eval(toks(d))
    for n_prompt, n_gen in [(p, 0) for p in P if p] + [(0, n) for n in N if n]:
        name = (f"pp{n_prompt}" if n_prompt else f"tg{n_gen}") + (f" @ d{d}" if d else "")
        llama_rep(d, n_prompt, n_gen)  # warm-up
        gs, ls = [], []
        for _ in range(a.r):
            g, rss = glimpse_rep(d, n_prompt, n_gen)
            g_rss = max(g_rss, rss)
            gs.append(g)
            ls.append(llama_rep(d, n_prompt, n_gen))
        rows.append((name, gs, ls))
        print(f"{name}: glimpse {statistics.mean(gs):.1f} t/s, llama.cpp {statistics.mean(ls):.1f} "
              f"t/s", file=sys.stderr)

sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
print(f"| test | glimpse t/s | llama.cpp t/s | ratio glimpse/llama.cpp |")
print(f"| --- | ---: | ---: | ---: |")
for name, gs, ls in rows:
    print(f"| {name} | {statistics.mean(gs):.2f} ± {sd(gs):.2f} | {statistics.mean(ls):.2f} ± "
          f"{sd(ls):.2f} | {statistics.median(gs) / statistics.median(ls):.2f} |")
llama_rss = next(int(l.split()[1]) for l in open("/proc/self/status")
                 if l.startswith("VmHWM:")) / 1024
print(f"\npeak RSS: glimpse {g_rss:.1f} MiB (largest single run), llama.cpp process "
      f"{llama_rss:.1f} MiB (context {need})")
print(f"threads {a.t}, repetitions {a.r}, model {os.path.basename(a.model)}, "
      f"llama-cpp-python {llama_cpp.__version__}")
