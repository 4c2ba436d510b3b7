#!/usr/bin/env python3
"""Speedup over plain decoding against depth, one line per speculative row, from the
markdown table `glimpse bench -d D1,D2,... --spec ROWS` prints (columns test, spec, vs
plain). Writes an SVG (no plotting library needed).

  bench/plot-spec-depth.py docs/results/spec/avx2/spec-depth.md -o docs/results/spec/avx2/speedup_vs_depth.svg
"""
import argparse
import re
import sys

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("table")
ap.add_argument("-o", "--output", required=True)
ap.add_argument("--title", default="speculative decoding: speedup over plain decoding")
a = ap.parse_args()

rows = {}  # spec -> {depth: speedup}
header = None
for line in open(a.table, encoding="utf-8"):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if header is None:
        if "spec" in cells and "vs plain" in cells:
            header = cells
        continue
    if len(cells) != len(header) or set(cells[0]) <= {"-", " ", ":"}:
        continue
    rec = dict(zip(header, cells))
    m = re.search(r"@ d(\d+)", rec["test"])
    if not m:
        continue
    rows.setdefault(rec["spec"], {})[int(m.group(1))] = float(rec["vs plain"].rstrip("×x"))
if not rows:
    sys.exit(f"{a.table}: no rows with a depth and a 'vs plain' column")

W, H, L, R, T, B = 640, 400, 60, 250, 40, 50
depths = sorted({d for r in rows.values() for d in r})
ymax = max(2.0, max(v for r in rows.values() for v in r.values()) * 1.1)
x_of = lambda d: L + (W - L - R) * (d - depths[0]) / max(1, depths[-1] - depths[0])
y_of = lambda v: T + (H - T - B) * (1 - v / ymax)
colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<text x="{L}" y="20" font-size="14">{a.title}</text>',
       f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
       f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
for i in range(int(ymax / 0.5) + 1):
    v = i * 0.5
    out.append(f'<line x1="{L - 4}" y1="{y_of(v):.1f}" x2="{W - R}" y2="{y_of(v):.1f}" stroke="#ddd"/>')
    out.append(f'<text x="{L - 8}" y="{y_of(v) + 4:.1f}" text-anchor="end">{v:.1f}×</text>')
for d in depths:
    out.append(f'<text x="{x_of(d):.1f}" y="{H - B + 16}" text-anchor="middle">{d}</text>')
out.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">depth (tokens in the cache)</text>')
out.append(f'<line x1="{L}" y1="{y_of(1.0):.1f}" x2="{W - R}" y2="{y_of(1.0):.1f}" stroke="black" stroke-dasharray="4 3"/>')
for i, (spec, pts) in enumerate(sorted(rows.items())):
    c = colors[i % len(colors)]
    xy = [(x_of(d), y_of(pts[d])) for d in sorted(pts)]
    out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
               + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy) + '"/>')
    for x, y in xy:
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{c}"/>')
    ly = T + 10 + 18 * i
    out.append(f'<line x1="{W - R + 10}" y1="{ly}" x2="{W - R + 30}" y2="{ly}" stroke="{c}" stroke-width="2"/>')
    out.append(f'<text x="{W - R + 35}" y="{ly + 4}">{spec}</text>')
out.append("</svg>")
open(a.output, "w", encoding="utf-8").write("\n".join(out) + "\n")
print(f"{a.output}: {len(rows)} rows over depths {depths}")
