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
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# Fixed bounds (README "Parity"); the noise-floor checks below are the tighter ones.
MIN_TOP1 = float(os.environ.get("GLIMPSE_PARITY_MIN_TOP1", "0.95"))
MAX_KL = float(os.environ.get("GLIMPSE_PARITY_MAX_KL", "6e-3"))
MIN_GREEDY_MATCH = int(os.environ.get("GLIMPSE_PARITY_MIN_GREEDY", "2"))


def log_softmax(a):
    a = a.astype(np.float64)
    a = a - a.max(axis=-1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=-1, keepdims=True))


def compare(lr, lg):
    """(top-1 agreements, summed KL(lr || lg)) over rows, in chunks to bound memory."""
    agree, kl = 0, 0.0
    for s in range(0, lr.shape[0], 256):
        pr, pg = log_softmax(lr[s:s + 256]), log_softmax(lg[s:s + 256])
        kl += float((np.exp(pr) * (pr - pg)).sum())
        agree += int((pr.argmax(-1) == pg.argmax(-1)).sum())
    return agree, kl


def until_eog(seq, eog):
    for i, t in enumerate(seq):
        if t in eog:
            return seq[:i + 1]
    return seq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glimpse", required=True)
    ap.add_argument("--model", default=os.environ.get("GLIMPSE_MODEL",
                    os.path.join(HERE, "..", "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")))
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    ref = os.path.join(a.work, "llama-ref")
    stamp = os.path.join(ref, "done")
    if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(a.model):
        subprocess.run([sys.executable, os.path.join(HERE, "llama_ref.py"), "--model", a.model,
                        "--out", ref, "--threads", str(a.threads)], check=True)
        open(stamp, "w").write("ok\n")
    eog = set(json.load(open(os.path.join(ref, "eog.json"))))
    n_prompts = len([f for f in os.listdir(ref) if f.endswith(".tokens.json")])
    total_tok, total_agree, total_kl, greedy_ok, tok_ok = 0, 0, 0.0, 0, 0
    self_noise = {"alt-fa": [0, 0.0], "alt-kv32": [0, 0.0]}
    self_greedy = {"alt-fa": 0, "alt-kv32": 0}
    for i in range(n_prompts):
        base = os.path.join(ref, f"prompt{i}")
        toks = json.load(open(base + ".tokens.json"))
        mine = json.loads(subprocess.run(
            [a.glimpse, "tokenize", "-m", a.model, "--special", "-f", base + ".txt"],
            check=True, capture_output=True, text=True).stdout)
        tok_ok += mine == toks
        out = os.path.join(a.work, f"glimpse{i}")
        subprocess.run([a.glimpse, "logits", "-m", a.model, "-t", str(a.threads), "-c", "8192",
                        "--tokens", base + ".tokens.json", "-o", out + ".logits.f32",
                        "--greedy", "64", "--greedy-out", out + ".greedy.json"],
                       check=True, stderr=subprocess.DEVNULL)
        n = len(toks)
        lr = np.fromfile(base + ".logits.f32", dtype=np.float32).reshape(n, -1)
        lg = np.fromfile(out + ".logits.f32", dtype=np.float32).reshape(n, -1)
        agree, kl = compare(lr, lg)
        for tag in self_noise:
            la = np.fromfile(f"{base}.{tag}.f32", dtype=np.float32).reshape(n, -1)
            a_agree, a_kl = compare(lr, la)
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


if __name__ == "__main__":
    sys.exit(main())
