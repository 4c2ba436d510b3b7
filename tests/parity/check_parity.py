#!/usr/bin/env python3
"""Logit and greedy-text parity between glimpse and llama.cpp on the same GGUF.

Runs llama_ref.py (llama-cpp-python) once per model (cached in --work), then glimpse on the
same token ids, and checks over all prompts:
  - glimpse's own tokenization of each rendered chat prompt equals llama.cpp's;
  - top-1 agreement and mean KL(llama.cpp || glimpse) per token;
  - greedy continuations (64 tokens, compared up to the first end-of-generation token).
The same top-1/KL figures are computed between llama.cpp and itself under two of its own
rounding choices (flash attention on; f32 KV cache): glimpse must stay within that noise
floor (KL at most 1.25x the larger self-divergence, top-1 at least the lower self-agreement
minus 0.01; greedy continuations identical on at least as many prompts as llama.cpp keeps
with itself, whose 64-token greedy text already changes under those rounding choices) and
within fixed bounds. Exit status 1 when a threshold is missed.

With --f32 the same prompts run on an all-F32 copy of the model (scripts/make-f32-model.py,
written into --work) with f32 KV caches on both sides and flash attention off in llama.cpp,
once per glimpse ISA level (GLIMPSE_ISA=avx512|avx2|sse4|scalar; levels above the CPU's are
skipped). With no quantization anywhere the two engines differ only by f32 summation order,
so the bounds are fixed and tight (F32_* below).
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(HERE, "..", "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
# Fixed bounds (README "Parity"); the noise-floor checks below are the tighter ones. Greedy
# text: the fixed bound is one prompt; the real bound is llama.cpp's own agreement with itself
# under a rounding change, which was 2/5 on one CPU and 1/5 on another (a CI machine, where
# glimpse also matched 1/5), so a fixed 2 failed there while glimpse sat inside the floor.
MIN_TOP1 = float(os.environ.get("GLIMPSE_PARITY_MIN_TOP1", "0.95"))
MAX_KL = float(os.environ.get("GLIMPSE_PARITY_MAX_KL", "6e-3"))
MIN_GREEDY_MATCH = int(os.environ.get("GLIMPSE_PARITY_MIN_GREEDY", "1"))
# --f32 bounds, at every ISA level: f32 weights, activations and KV caches on both sides.
F32_MIN_TOP1 = 0.999
F32_MAX_KL = 1e-5
F32_MIN_TOKENS = 3000


def log_softmax(a):
    a = a.astype(np.float64)
    a = a - a.max(axis=-1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=-1, keepdims=True))


def compare(lr, lg):
    """(top-1 agreements, summed KL(lr || lg), largest per-row KL) over rows, in chunks to
    bound memory."""
    agree, kl, kl_max = 0, 0.0, 0.0
    for s in range(0, lr.shape[0], 256):
        pr, pg = log_softmax(lr[s:s + 256]), log_softmax(lg[s:s + 256])
        row_kl = (np.exp(pr) * (pr - pg)).sum(-1)
        kl += float(row_kl.sum())
        kl_max = max(kl_max, float(row_kl.max()))
        agree += int((pr.argmax(-1) == pg.argmax(-1)).sum())
    return agree, kl, kl_max


def load_logits(path, n):
    return np.fromfile(path, dtype=np.float32).reshape(n, -1)


def ensure_reference(model, ref, threads, extra=()):
    """llama.cpp's outputs for model into ref/ (llama_ref.py), redone when model is newer."""
    stamp = os.path.join(ref, "done")
    if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(model):
        subprocess.run([sys.executable, os.path.join(HERE, "llama_ref.py"), "--model", model,
                        "--out", ref, "--threads", str(threads), *extra], check=True)
        open(stamp, "w").write("ok\n")
    n_prompts = len([f for f in os.listdir(ref) if f.endswith(".tokens.json")])
    return set(json.load(open(os.path.join(ref, "eog.json")))), n_prompts


def glimpse_tokenize(glimpse, model, base):
    return json.loads(subprocess.run(
        [glimpse, "tokenize", "-m", model, "--special", "-f", base + ".txt"],
        check=True, capture_output=True, text=True).stdout)


def glimpse_logits(glimpse, model, threads, base, out, extra=(), env=None):
    """Runs glimpse logits on base.tokens.json: out.logits.f32 and out.greedy.json (64
    greedy tokens). Returns glimpse's stderr."""
    return subprocess.run(
        [glimpse, "logits", "-m", model, "-t", str(threads), "-c", "8192",
         "--tokens", base + ".tokens.json", "-o", out + ".logits.f32",
         "--greedy", "64", "--greedy-out", out + ".greedy.json", *extra],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=env).stderr


def until_eog(seq, eog):
    for i, t in enumerate(seq):
        if t in eog:
            return seq[:i + 1]
    return seq


def check_noise_floor(a):
    """The default test: glimpse on the model as given, judged against llama.cpp's own
    rounding noise."""
    ref = os.path.join(a.work, "llama-ref")
    eog, n_prompts = ensure_reference(a.model, ref, a.threads)
    total_tok, total_agree, total_kl, greedy_ok, tok_ok = 0, 0, 0.0, 0, 0
    self_noise = {"alt-fa": [0, 0.0], "alt-kv32": [0, 0.0]}
    self_greedy = {"alt-fa": 0, "alt-kv32": 0}
    for i in range(n_prompts):
        base = os.path.join(ref, f"prompt{i}")
        toks = json.load(open(base + ".tokens.json"))
        mine = glimpse_tokenize(a.glimpse, a.model, base)
        tok_ok += mine == toks
        out = os.path.join(a.work, f"glimpse{i}")
        glimpse_logits(a.glimpse, a.model, a.threads, base, out)
        n = len(toks)
        lr = load_logits(base + ".logits.f32", n)
        lg = load_logits(out + ".logits.f32", n)
        agree, kl, _ = compare(lr, lg)
        for tag in self_noise:
            a_agree, a_kl, _ = compare(lr, load_logits(f"{base}.{tag}.f32", n))
            self_noise[tag][0] += a_agree
            self_noise[tag][1] += a_kl
        g_ref = until_eog(json.load(open(base + ".greedy.json")), eog)
        for tag in self_noise:
            g_alt = until_eog(json.load(open(f"{base}.{tag}.greedy.json")), eog)
            self_greedy[tag] += g_alt == g_ref
        g_mine = until_eog(json.load(open(out + ".greedy.json")), eog)
        same = g_ref == g_mine
        greedy_ok += same
        total_tok += n
        total_agree += agree
        total_kl += kl
        print(f"prompt{i}: {n:5d} tokens  tokenizer {'same' if mine == toks else 'DIFFERENT'}  "
              f"top1 {agree / n:.4f}  mean KL {kl / n:.2e}  greedy {'same' if same else 'differs'}"
              f" ({len(g_ref)} tokens)")
    top1, kl = total_agree / total_tok, total_kl / total_tok
    print(f"overall: {total_tok} tokens, top-1 agreement {top1:.4f}, mean KL {kl:.2e}, "
          f"greedy identical {greedy_ok}/{n_prompts}, tokenization identical {tok_ok}/{n_prompts}")
    floor_top1, floor_kl = 1.0, 0.0
    for tag, (ag, k) in self_noise.items():
        print(f"llama.cpp vs llama.cpp ({tag}): top-1 agreement {ag / total_tok:.4f}, "
              f"mean KL {k / total_tok:.2e}, greedy identical {self_greedy[tag]}/{n_prompts}")
        floor_top1, floor_kl = min(floor_top1, ag / total_tok), max(floor_kl, k / total_tok)
    floor_greedy = min(self_greedy.values())
    within_floor = (kl <= 1.25 * floor_kl and top1 >= floor_top1 - 0.01
                    and greedy_ok >= floor_greedy)
    print(f"glimpse within llama.cpp's own noise floor: {'yes' if within_floor else 'NO'}")
    ok = (top1 >= MIN_TOP1 and kl <= MAX_KL and greedy_ok >= MIN_GREEDY_MATCH
          and tok_ok == n_prompts and total_tok >= 3000 and within_floor)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def child_cpu():
    """CPU seconds (user + system) of the finished child processes so far."""
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def f32_model(a):
    """The all-F32 copy of a.model in a.work (made once, scripts/make-f32-model.py)."""
    name = os.path.basename(a.model)
    stem = name[:-5] if name.endswith(".gguf") else name
    stem = re.sub(r"\.(Q\d\w*|F16|BF16|IQ\w+)$", "", stem, flags=re.IGNORECASE)
    out = os.path.join(a.work, stem + ".F32.gguf")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "scripts", "make-f32-model.py"),
                    a.model, out], check=True)
    return out


def best_level(glimpse, model):
    """The CPU's best ISA level as glimpse names it (GLIMPSE_ISA unset)."""
    env = {k: v for k, v in os.environ.items() if k != "GLIMPSE_ISA"}
    err = subprocess.run([glimpse, "run", "-m", model, "-p", "hi", "-n", "1", "-t", "1"],
                         check=True, capture_output=True, text=True, env=env).stderr
    m = re.search(r"isa = (\w+)", err)
    if not m:
        sys.exit(f"glimpse run printed no ISA level:\n{err}")
    return m.group(1)


def f32_level(a, model, ref, level, prompt_ids):
    """glimpse at one ISA level against llama.cpp over prompt_ids: a dict of the figures."""
    env = dict(os.environ, GLIMPSE_ISA=level)
    r = dict(tokens=0, agree=0, kl=0.0, kl_max=0.0, greedy=0, prompts=len(prompt_ids))
    t0, cpu0 = time.monotonic(), child_cpu()
    for i in prompt_ids:
        base, out = os.path.join(ref, f"prompt{i}"), os.path.join(a.work, f"glimpse{i}")
        err = glimpse_logits(a.glimpse, model, a.threads, base, out,
                             ("-ctk", "f32", "-ctv", "f32"), env)
        used = re.search(r"isa = (\w+)", err)
        if not used or used.group(1) != level:
            sys.exit(f"GLIMPSE_ISA={level}: glimpse ran at {used.group(1) if used else '?'}")
        n = len(json.load(open(base + ".tokens.json")))
        agree, kl, kl_max = compare(load_logits(base + ".logits.f32", n),
                                    load_logits(out + ".logits.f32", n))
        os.remove(out + ".logits.f32")  # [n][n_vocab] f32: hundreds of MB per level
        # The whole 64 tokens, past any end-of-generation token: stricter than until_eog.
        same = json.load(open(base + ".greedy.json")) == json.load(open(out + ".greedy.json"))
        print(f"  {level} prompt{i}: {n:5d} tokens  top1 {agree / n:.4f}  mean KL {kl / n:.2e}"
              f"  max KL {kl_max:.2e}  greedy {'same' if same else 'differs'}", flush=True)
        r["tokens"] += n
        r["agree"] += agree
        r["kl"] += kl
        r["kl_max"] = max(r["kl_max"], kl_max)
        r["greedy"] += same
    r["wall"], r["cpu"] = time.monotonic() - t0, child_cpu() - cpu0
    return r


def check_f32(a):
    """Tight parity on the F32 copy of the model, once per ISA level."""
    os.makedirs(a.work, exist_ok=True)
    t0, cpu0 = time.monotonic(), child_cpu()
    model = f32_model(a)
    ref = os.path.join(a.work, "llama-ref")
    _, n_prompts = ensure_reference(model, ref, a.threads, ("--kv-f32", "--no-alt"))
    print(f"F32 model and llama.cpp reference: {time.monotonic() - t0:.0f} s "
          f"(CPU {child_cpu() - cpu0:.0f} s)", flush=True)
    tok_ok = sum(glimpse_tokenize(a.glimpse, model, os.path.join(ref, f"prompt{i}")) ==
                 json.load(open(os.path.join(ref, f"prompt{i}.tokens.json")))
                 for i in range(n_prompts))
    order = ["scalar", "sse4", "avx2", "avx512"]
    best = best_level(a.glimpse, model)
    levels = [l for l in a.levels.split(",") if order.index(l) <= order.index(best)]
    skipped = [l for l in a.levels.split(",") if l not in levels]
    every = list(range(n_prompts))
    scalar_ids = [int(x) for x in a.scalar_prompts.split(",")] if a.scalar_prompts else every
    rows, ok = [], tok_ok == n_prompts
    for level in levels:
        ids = scalar_ids if level == "scalar" else every
        r = f32_level(a, model, ref, level, ids)
        r["ok"] = (r["agree"] / r["tokens"] >= F32_MIN_TOP1
                   and r["kl"] / r["tokens"] <= F32_MAX_KL and r["greedy"] == r["prompts"]
                   and (r["tokens"] >= F32_MIN_TOKENS or ids != every))
        ok = ok and r["ok"]
        rows.append((level, r))
    print(f"\nF32 parity with llama.cpp ({os.path.basename(model)}, f32 KV caches, "
          f"tokenization identical {tok_ok}/{n_prompts}):")
    print("| ISA level | tokens | top-1 agreement | mean KL | max KL | greedy 64 identical "
          "| wall s / glimpse CPU s |")
    print("|---|---|---|---|---|---|---|")
    for level, r in rows:
        print(f"| {level}{'' if r['ok'] else ' (MISS)'} | {r['tokens']} | "
              f"{r['agree'] / r['tokens']:.4f} | {r['kl'] / r['tokens']:.1e} | "
              f"{r['kl_max']:.1e} | {r['greedy']}/{r['prompts']} | "
              f"{r['wall']:.0f} / {r['cpu']:.0f} |")
    if skipped:
        print(f"skipped (above this CPU's {best}): {', '.join(skipped)}")
    print(f"bounds: top-1 >= {F32_MIN_TOP1}, mean KL <= {F32_MAX_KL:.0e}, every greedy "
          f"continuation identical, >= {F32_MIN_TOKENS} tokens (levels on all prompts)")
    ok = ok and bool(rows) and any(r["tokens"] >= F32_MIN_TOKENS for _, r in rows)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glimpse", required=True)
    ap.add_argument("--model", default=os.environ.get("GLIMPSE_MODEL", DEFAULT_MODEL))
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--f32", action="store_true",
                    help="tight parity on an F32 copy of --model at every ISA level")
    ap.add_argument("--levels", default="avx512,avx2,sse4,scalar",
                    help="--f32: ISA levels to check (above the CPU's best are skipped)")
    ap.add_argument("--scalar-prompts", default="",
                    help="--f32: comma-separated prompt indices for the scalar level only "
                         "(default: all prompts)")
    a = ap.parse_args()
    if a.f32:
        return check_f32(a)
    return check_noise_floor(a)


if __name__ == "__main__":
    sys.exit(main())
