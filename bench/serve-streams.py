#!/usr/bin/env python3
"""Aggregate decode throughput of glimpse serve with 1 and with N concurrent streams, through
HTTP (what the batched scheduler gives clients, not the bench's forward alone). Each stream
asks for exactly --tokens tokens (ignore_eos) after a short prompt; a run's aggregate t/s is
the generated tokens of all streams over the wall time from the first request sent to the
last stream finished, so it includes the prompts' prefill and the HTTP overhead. Streams are
distinct prompts (no document-cache reuse). Repetitions are interleaved: 1, N, 1, N, ...
A program, not a test:

  bench/serve-streams.py --glimpse build/bin/glimpse --streams 1,8 -r 3 [--tokens 128]
"""
import argparse
import json
import os
import statistics
import sys
import threading
import time
import urllib.request

from serve_launch import start_server

TOPICS = ["a lighthouse keeper", "a mountain village", "a river barge", "an old library",
          "a desert caravan", "a night market", "a glass workshop", "a winter harbour",
          "a clockmaker", "a spice ship", "a forest school", "a salt mine"]


def ask(url, i, topic, tokens, out):
    body = {"messages": [{"role": "user", "content": f"Tell a story about {TOPICS[topic % len(TOPICS)]}."}],
            "temperature": 0, "max_tokens": tokens, "ignore_eos": True}
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        out[i] = json.loads(r.read())["usage"]["completion_tokens"]


def run(url, n, tokens, salt):
    out = [0] * n
    threads = [threading.Thread(target=ask, args=(url, i, salt + i, tokens, out)) for i in range(n)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sum(out) != n * tokens:
        raise SystemExit(f"{n} streams: {sum(out)} tokens, expected {n * tokens}")
    return sum(out) / (time.time() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glimpse", default="build/bin/glimpse")
    ap.add_argument("--model", default=os.environ.get("GLIMPSE_MODEL", "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--streams", default="1,8")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("-t", type=int, default=2)
    a = ap.parse_args()
    counts = [int(x) for x in a.streams.split(",")]
    proc, url = start_server(a.glimpse, a.model, ["-np", max(counts), "-t", a.t, "-c", 2048, "--cache-ram", 0])
    try:
        tps = {n: [] for n in counts}
        for rep in range(a.r):
            for n in counts:
                tps[n].append(run(url, n, a.tokens, rep * 5 + n))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"glimpse serve -np {max(counts)} -t {a.t}: {a.tokens} tokens per stream, {a.r} interleaved repetitions")
    print("| streams | aggregate t/s (median) | runs | vs 1 stream |")
    print("|---:|---:|---|---:|")
    base = statistics.median(tps[counts[0]])
    for n in counts:
        m = statistics.median(tps[n])
        print(f"| {n} | {m:.1f} | {', '.join(f'{x:.1f}' for x in tps[n])} | {m / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
