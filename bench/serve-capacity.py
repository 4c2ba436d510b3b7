#!/usr/bin/env python3
"""How many 8K-token conversations fit in a memory budget on glimpse serve, full cache vs a
KV policy, measured from the KV bytes the server reports for one real conversation of each
kind (the `kv` object of a response: resident buffer capacity, not an estimate), and against
llama-server's cells (its KV is one pool of n_ctx cells of (K + V) x layers x KV heads x
head_dim, so an 8K conversation holds 8K cells whatever it asks). A program, not a test:

  bench/serve-capacity.py --glimpse build/bin/glimpse [--tokens 7200] [--budget 256] [--gib 4]
"""
import argparse
import json
import os
import sys
import urllib.request

from serve_launch import start_server


def post(url, body):
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glimpse", default="build/bin/glimpse")
    ap.add_argument("--model", default=os.environ.get("GLIMPSE_MODEL", "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--tokens", type=int, default=7200, help="approximate prompt tokens")
    ap.add_argument("--answer", type=int, default=256, help="max_tokens of the answer")
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--policy", default="lookahead")
    ap.add_argument("--gib", type=float, default=4.0)
    ap.add_argument("-t", type=int, default=2)
    a = ap.parse_args()
    proc, url = start_server(a.glimpse, a.model, ["-c", 8192, "-t", a.t])
    try:
        # A document of about --tokens tokens (numbered records of ~21 tokens).
        facts = " ".join(f"Record {i}: the shipment to dock {i % 97} left at {i % 24}:00."
                         for i in range(a.tokens // 21))
        body = {"messages": [{"role": "user", "content": facts + "\nSummarize the records."}],
                "temperature": 0, "max_tokens": a.answer}
        full = post(url, body)
        kept = post(url, dict(body, kv_policy=a.policy, kv_budget=a.budget))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    budget_bytes = a.gib * 2**30
    n_prompt = full["usage"]["prompt_tokens"]
    kf, kk = full["kv"], kept["kv"]
    # A cell is one position over every layer and KV head: the full cache's bytes per token.
    cells = n_prompt + full["usage"]["completion_tokens"]
    per_cell = kf["full_bytes"] / cells
    print(f"prompt {n_prompt} tokens; answers {full['usage']['completion_tokens']} (full) / "
          f"{kept['usage']['completion_tokens']} ({a.policy}@{a.budget}) tokens")
    print("| cache | KV bytes per conversation | conversations in %.0f GiB |" % a.gib)
    print("|---|---:|---:|")
    print(f"| glimpse, full cache | {kf['bytes'] / 2**20:.1f} MiB | {int(budget_bytes // kf['bytes'])} |")
    print(f"| glimpse, {a.policy} @ {a.budget} | {kk['bytes'] / 2**20:.1f} MiB | {int(budget_bytes // kk['bytes'])} |")
    print(f"| llama-server cells (f16, {cells} cells x {per_cell:.0f} B) | {cells * per_cell / 2**20:.1f} MiB | "
          f"{int(budget_bytes // (cells * per_cell))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
