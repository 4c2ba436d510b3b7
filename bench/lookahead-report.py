#!/usr/bin/env python3
"""LookaheadKV against the other policies on an evaluation's per-sample results, with paired
bootstrap intervals: what the LookaheadKV issues ask a module to show.

Reads `predictions.jsonl[.gz]` files written by `glimpse eval` (one row per sample, policy and
budget, with its task score and KL to the full cache). Each --run LABEL=FILE contributes its
rows; its `lookahead` rows become `lookahead-LABEL`, so modules evaluated in separate runs of
the same preset (v1 and v2) sit side by side. Baseline rows (every other policy) are taken from
the first run that has them. Prints Markdown:

  - mean task score per policy and budget, the full cache and the oracle;
  - for each LookaheadKV module, at each budget: the paired difference of task score against
    each baseline (mean over the samples both have, and a 95% bootstrap interval: 10,000
    resamples of the samples, fixed seed), marked where the interval excludes 0;
  - gap closure: at 64, the share of the SnapKV-to-oracle gap in task score the module
    closes; at 128 and 256 the same for KL to the full cache (lower is better);
  - the share of the full cache's score kept at 256;
  - mean task score per task family at 64 and 256, with wins and losses against SnapKV.

A program, not a test:

  bench/lookahead-report.py --run v1=docs/results/heldout/predictions.jsonl.gz \\
      [--run v2=runs/heldout-v2/predictions.jsonl] [--baselines snapkv,pyramidkv,adakv,laq,pseudoquery]
"""
import argparse
import gzip
import json
import random
import statistics
import sys
from collections import defaultdict

FAMILIES = [("niah_", "niah"), ("vt", "vt"), ("cwe", "cwe"), ("fwe", "fwe"), ("kv_", "kv"),
            ("fewshot", "fewshot"), ("open_", "open"), ("doc_", "doc")]


def family(task):
    for prefix, name in FAMILIES:
        if task.startswith(prefix):
            return name
    return task


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def bootstrap(diffs, n=10000, seed=1):
    """Mean and 95% percentile interval of the mean of paired differences."""
    rng = random.Random(seed)
    k = len(diffs)
    means = sorted(sum(diffs[rng.randrange(k)] for _ in range(k)) / k for _ in range(n))
    return sum(diffs) / k, means[int(0.025 * n)], means[int(0.975 * n) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", action="append", required=True, help="LABEL=predictions.jsonl[.gz]")
    ap.add_argument("--baselines", default="snapkv,pyramidkv,adakv,laq,pseudoquery,expected_attention,keydiff")
    ap.add_argument("--resamples", type=int, default=10000)
    a = ap.parse_args()

    # (policy, budget) -> {sample id: row}
    table = defaultdict(dict)
    modules = []
    for spec in a.run:
        label, path = spec.split("=", 1)
        for r in load(path):
            pol = r["policy"]
            if pol == "lookahead":
                pol = f"lookahead-{label}"
                if pol not in modules:
                    modules.append(pol)
            key = (pol, r["budget"])
            table[key].setdefault(r["id"], r)  # the first run's baseline rows win
    budgets = sorted({b for (_, b) in table if b > 0})
    baselines = [b for b in a.baselines.split(",") if any(p == b for (p, _) in table)]
    policies = sorted({p for (p, b) in table if b > 0}, key=lambda p: (p.startswith("lookahead"), p))
    full = table.get(("none", 0), {})

    def mean(pol, b, field="score", ids=None):
        rows = table.get((pol, b), {})
        xs = [r[field] for i, r in rows.items() if (ids is None or i in ids) and r.get(field) is not None]
        return statistics.mean(xs) if xs else float("nan")

    print(f"# LookaheadKV report: {', '.join(a.run)}\n")
    print(f"Full cache: mean task score {mean('none', 0):.3f} over {len(full)} samples.\n")
    print("## Mean task score by budget\n")
    print("| policy | " + " | ".join(str(b) for b in budgets) + " |")
    print("|---|" + "---:|" * len(budgets))
    for p in policies:
        print(f"| {p} | " + " | ".join(f"{mean(p, b):.3f}" for b in budgets) + " |")

    print("\n## Mean KL of the answer's logits against the full cache, by budget\n")
    print("| policy | " + " | ".join(str(b) for b in budgets) + " |")
    print("|---|" + "---:|" * len(budgets))
    for p in policies:
        print(f"| {p} | " + " | ".join(f"{mean(p, b, 'kl'):.4f}" for b in budgets) + " |")

    if len(modules) > 1:  # each later module against the first, same samples
        first = modules[0]
        for m in modules[1:]:
            print(f"\n## {m} against {first}: paired difference in task score and KL, 95% bootstrap interval\n")
            print("| budget | score difference | KL difference | samples |")
            print("|---:|---|---|---:|")
            for b in budgets:
                mine, theirs = table.get((m, b), {}), table.get((first, b), {})
                ids = sorted(set(mine) & set(theirs))
                if not ids:
                    continue
                cells = []
                for field in ("score", "kl"):
                    pairs = [(mine[i].get(field), theirs[i].get(field)) for i in ids]
                    diffs = [x - y for x, y in pairs if x is not None and y is not None]
                    d, lo, hi = bootstrap(diffs, a.resamples)
                    star = " *" if lo > 0 or hi < 0 else ""
                    cells.append(f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]{star}")
                print(f"| {b} | {cells[0]} | {cells[1]} | {len(ids)} |")
            print("\n(* the interval excludes 0; a negative KL difference is better)")

    for m in modules:
        print(f"\n## {m}: paired differences in task score (module − baseline), 95% bootstrap interval\n")
        print("| budget | " + " | ".join(baselines) + " |")
        print("|---:|" + "---|" * len(baselines))
        for b in budgets:
            cells = []
            mine = table.get((m, b), {})
            for base in baselines:
                theirs = table.get((base, b), {})
                ids = sorted(set(mine) & set(theirs))
                if not ids:
                    cells.append("n/a")
                    continue
                d, lo, hi = bootstrap([mine[i]["score"] - theirs[i]["score"] for i in ids], a.resamples)
                star = " *" if lo > 0 or hi < 0 else ""
                cells.append(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]{star} (n={len(ids)})")
            print(f"| {b} | " + " | ".join(cells) + " |")
        print("\n(* the interval excludes 0)\n")
        lines = []
        if 64 in budgets:
            s, o, x = mean("snapkv", 64), mean("oracle", 64), mean(m, 64)
            if o == o and s == s and o != s:
                lines.append(f"- score gap closed at 64: (module − SnapKV) / (oracle − SnapKV) = "
                             f"({x:.3f} − {s:.3f}) / ({o:.3f} − {s:.3f}) = {(x - s) / (o - s):.2f}")
        for b in (128, 256):
            if b in budgets:
                s, o, x = mean("snapkv", b, "kl"), mean("oracle", b, "kl"), mean(m, b, "kl")
                if o == o and s == s and s != o:
                    lines.append(f"- KL gap closed at {b}: (SnapKV − module) / (SnapKV − oracle) = "
                                 f"({s:.4f} − {x:.4f}) / ({s:.4f} − {o:.4f}) = {(s - x) / (s - o):.2f}")
        if 256 in budgets and full:
            lines.append(f"- share of the full cache's score at 256: {mean(m, 256) / mean('none', 0):.2f}")
        if "laq" in baselines and 64 in budgets:
            lines.append(f"- at 64: module {mean(m, 64):.3f}, LAQ {mean('laq', 64):.3f}")
        print("\n".join(lines))

    for b in (64, 256):
        if b not in budgets:
            continue
        fams = sorted({family(r["task"]) for r in full.values()})
        print(f"\n## Mean task score per family at {b}\n")
        cols = ["none"] + [p for p in policies if p in baselines or p.startswith("lookahead") or p == "oracle"]
        print("| family | " + " | ".join(cols) + " |")
        print("|---|" + "---:|" * len(cols))
        for fam in fams:
            ids = {i for i, r in full.items() if family(r["task"]) == fam}
            print(f"| {fam} | " + " | ".join(
                f"{mean(p, 0 if p == 'none' else b, ids=ids):.3f}" for p in cols) + " |")
        for m in modules:
            wins = losses = 0
            for fam in fams:
                ids = {i for i, r in full.items() if family(r["task"]) == fam}
                d = mean(m, b, ids=ids) - mean("snapkv", b, ids=ids)
                wins += d > 1e-9
                losses += d < -1e-9
            print(f"\n{m} against SnapKV at {b}: {wins} families won, {losses} lost, "
                  f"{len(fams) - wins - losses} tied.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
