#!/usr/bin/env python3
"""Per-family validation loss of LookaheadKV modules.

Reads `glimpse train-lookahead --eval MODULE` JSON lines (one per module, each with
`prompt_kl`, one loss per prompt in file order) and the prompts file they were computed on
(its `task` field is the family), and prints a Markdown table: mean KL per family for each
module, and the relative change of each later module against the first.

  bench/val-per-family.py --prompts runs/lookahead-v2/val.jsonl runs/lookahead-v2/val-per-prompt.jsonl
"""
import argparse
import json
import os
import statistics
import sys
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", required=True, help="the JSONL prompt file the losses are over")
    ap.add_argument("evals", help="JSON lines of train-lookahead --eval (one per module)")
    a = ap.parse_args()
    families = [json.loads(l)["task"] for l in open(a.prompts) if l.strip()]
    runs = [json.loads(l) for l in open(a.evals) if l.strip()]
    for r in runs:
        if len(r["prompt_kl"]) != len(families):
            sys.exit(f"{r['module']}: {len(r['prompt_kl'])} losses for {len(families)} prompts")
    names = [os.path.basename(r["module"]) for r in runs]
    by_family = [defaultdict(list) for _ in runs]
    for k, r in enumerate(runs):
        for fam, kl in zip(families, r["prompt_kl"]):
            by_family[k][fam].append(kl)
    head = "| family | prompts | " + " | ".join(names)
    head += "".join(f" | {n} vs {names[0]}" for n in names[1:])
    print(head + " |")
    print("|---|---:|" + "---:|" * (len(names) + len(names) - 1))
    rows = sorted(by_family[0], key=lambda f: f)
    for fam in rows + ["all"]:
        means = [statistics.mean(sum(b.values(), []) if fam == "all" else b[fam]) for b in by_family]
        n = len(families) if fam == "all" else len(by_family[0][fam])
        cells = [f"{m:.4f}" for m in means] + [f"{(m / means[0] - 1) * 100:+.1f}%" for m in means[1:]]
        print(f"| {fam} | {n} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
