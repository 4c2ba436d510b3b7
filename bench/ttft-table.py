#!/usr/bin/env python3
"""Task score against time to first token, per policy and budget, from an eval run's rows.

Reads `predictions.jsonl[.gz]` written by `glimpse eval` and prints Markdown: for each
(policy, budget), the mean task score, the mean time to first token and the share of it that
is selection work (scoring, a draft model's run, eviction), and the KV bytes right after the
prompt. Time to first token per row:
  - KV policies: the full prefill + scoring + eviction (the question is in the prefill when
    query-aware);
  - prompt compression (specpc, speckv_pc rows, which carry pc_prefill_ms): the draft's run
    and selection (their score_ms) + the prefill of the kept tokens + eviction;
  - the full cache: the prefill.
The oracle's "scoring" is a full-cache generation: a reference, not a method. A program,
not a test:

  bench/ttft-table.py runs/gemma-q4k/predictions.jsonl
"""
import gzip
import json
import statistics
import sys
from collections import defaultdict


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    groups = defaultdict(list)
    for r in load(sys.argv[1]):
        groups[(r["policy"], r["budget"])].append(r)
    print("| policy | budget | score | TTFT s | selection share of TTFT | KV MiB | rows |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    order = sorted(groups, key=lambda k: (k[0] != "none", k[0], k[1]))
    for pol, b in order:
        rows = groups[(pol, b)]
        ttft, share = [], []
        for r in rows:
            select = (r.get("score_ms") or 0) + (r.get("evict_ms") or 0)
            prefill = r["pc_prefill_ms"] if "pc_prefill_ms" in r else r["prefill_ms"]
            t = prefill + (0 if pol == "none" else select)
            ttft.append(t)
            share.append(select / t if t > 0 and pol != "none" else 0.0)
        mib = statistics.mean(r["kv_bytes"] for r in rows) / 2**20
        print(f"| {pol} | {'full' if pol == 'none' else b} | {statistics.mean(r['score'] for r in rows):.3f} "
              f"| {statistics.mean(ttft) / 1e3:.2f} | {100 * statistics.mean(share):.1f}% "
              f"| {mib:.2f} | {len(rows)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
