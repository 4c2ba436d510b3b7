"""Driver for bench/compare-llama-cpp: one repetition of glimpse (a `glimpse bench -r 1`
process), then one of llama.cpp (in this process, cache filled to the depth once per test
and truncated back before each repetition), alternating until -r repetitions each.

--isa LEVEL runs glimpse with GLIMPSE_ISA=LEVEL; the wrapper picks the llama.cpp build to
match (this interpreter's venv: .venv-avx2 for avx2), and the footer shows both engines'
levels. --busy N keeps N cores busy with spin-loop processes for the whole measurement."""
import argparse
import json
import os
import random
import signal
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
ap.add_argument("--isa", choices=["avx512", "avx2", "sse4", "scalar"],
                help="glimpse's kernel level (GLIMPSE_ISA); llama.cpp: the build of this venv")
ap.add_argument("--busy", type=int, default=0, metavar="N",
                help="cores kept busy by spin-loop processes while both engines run")
ap.add_argument("--busy-max-s", type=float, default=3600.0,
                help="each busy process exits after this many seconds whatever happens")
a = ap.parse_args()
if a.busy < 0:
    ap.error("--busy: expected a number of cores >= 0")
ints = lambda s: [int(x) for x in s.split(",") if x.strip()]
P, N, D = ints(a.p), ints(a.n), ints(a.d)
need = max([d + x for d in D for x in P + N] + [1])
glimpse_env = dict(os.environ)
if a.isa:
    glimpse_env["GLIMPSE_ISA"] = a.isa


def llama_features():
    """llama.cpp's compiled CPU features, {"AVX2": 1, "AVX512": 0, ...}, from its system
    info line ("CPU : SSE3 = 1 | AVX = 1 | ... |")."""
    info = llama_cpp.llama_print_system_info()
    info = info.decode() if isinstance(info, bytes) else str(info)
    feats = {}
    for part in info.replace(":", "|").split("|"):
        k, eq, v = part.partition("=")
        if eq and v.strip().isdigit():
            feats[k.strip()] = int(v.strip())
    return feats


# A busy core: integer arithmetic in a loop, no memory traffic beyond L1. It stops at its
# deadline, or as soon as its parent (this driver) is gone, so it cannot outlive the run.
SPIN = """
import os, sys, time
end = time.monotonic() + float(sys.argv[1]); parent = os.getppid(); x = 1
while time.monotonic() < end and os.getppid() == parent:
    for _ in range(200000):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
"""


def start_busy(n, max_s):
    return [subprocess.Popen([sys.executable, "-c", SPIN, str(max_s)], stdin=subprocess.DEVNULL)
            for _ in range(n)]


def stop_busy(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()


llm = llama_cpp.Llama(model_path=a.model, n_ctx=need, n_batch=2048, n_ubatch=512,
                      n_threads=a.t, n_threads_batch=a.t, verbose=False)
n_vocab = llm.n_vocab()
rng = random.Random(42)
toks = lambda k: [rng.randrange(n_vocab) for _ in range(k)]
feats = llama_features()
if a.isa and a.isa != "avx512" and feats.get("AVX512", 0):
    print(f"warning: --isa {a.isa} but this llama.cpp build has AVX512 = 1 ({sys.prefix})",
          file=sys.stderr)


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


g_isa = set()


def glimpse_rep(d, n_prompt, n_gen):
    # --no-probe: the streaming-read probe of glimpse's roofline lines is not needed here.
    out = subprocess.run([a.glimpse, "bench", "-m", a.model, "-t", str(a.t), "-p", str(n_prompt),
                          "-n", str(n_gen), "-d", str(d), "-r", "1", "-o", "json", "--no-probe"],
                         check=True, capture_output=True, text=True, env=glimpse_env).stdout
    r = json.loads(out)[0]
    g_isa.add(r.get("isa", "?"))
    return r["avg_ts"], r["peak_rss_mib"]


def measure():
    rows, g_rss = [], 0.0
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
            print(f"{name}: glimpse {statistics.mean(gs):.1f} t/s, llama.cpp "
                  f"{statistics.mean(ls):.1f} t/s", file=sys.stderr)
    return rows, g_rss


busy = start_busy(a.busy, a.busy_max_s)
# SIGTERM ends the run through the finally below (the busy processes go with it).
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
try:
    rows, g_rss = measure()
finally:
    stop_busy(busy)

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
# A build without a feature leaves it out of its system info: shown as 0.
shown = ["AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16"]
print(f"isa: glimpse {'/'.join(sorted(g_isa)) or '?'}"
      f"{f' (GLIMPSE_ISA={a.isa})' if a.isa else ''}, llama.cpp "
      f"{', '.join(f'{k} = {feats.get(k, 0)}' for k in shown)} "
      f"({os.path.basename(sys.prefix)})")
print(f"busy cores: {a.busy}")
