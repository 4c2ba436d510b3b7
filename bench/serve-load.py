#!/usr/bin/env python3
"""Load on glimpse serve over loopback: N concurrent streaming clients for a bounded time.

Starts `glimpse serve` (or uses --url), learns each prompt's expected greedy answer from one
request alone, then runs N client threads that send streamed requests drawn from the mix
(prompt lengths and KV policies vary) until --seconds have passed. Every response is checked
against its own expected text: a lost, mixed or truncated response is an error. Reports time
to first token and inter-token latency (p50 / p99), requests and tokens per second, and the
server's RSS sampled every second (to see it stay flat after warm-up). Exit status 1 on any
error. A program, not a test:

  bench/serve-load.py --glimpse build/bin/glimpse --clients 32 --seconds 300 -np 8
"""
import argparse
import json
import os
import random
import sys
import threading
import time
import urllib.request

from serve_launch import start_server

WORDS = ("harbour ledger lantern orchard granite meadow copper violet thunder canal "
         "falcon marble willow ember quartz saffron beacon glacier").split()


def make_mix(seed):
    rng = random.Random(seed)
    mix = []
    for i, n_words in enumerate([40, 200, 600, 1200]):
        facts = " ".join(f"The {rng.choice(WORDS)} code of item {k} is {rng.randint(100, 999)}."
                         for k in range(n_words // 10))
        for policy in (None, "snapkv", "lookahead", "streaming"):
            body = {"messages": [{"role": "user",
                                  "content": facts + f"\nWhat is the code of item {i}?"}],
                    "temperature": 0, "max_tokens": 32, "stream": True}
            if policy:
                body["kv_policy"] = policy
                body["kv_budget"] = 64
            mix.append(body)
    return mix


def stream_request(url, body, timeout=600):
    """(text, ttft_s, [inter-token gaps], finish_reason) of one streamed request."""
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    text, gaps, ttft, last, finish = [], [], None, None, None
    with urllib.request.urlopen(req, timeout=timeout) as r:
        buf = b""
        for chunk in iter(lambda: r.read1(65536), b""):
            buf += chunk
            while b"\n\n" in buf:
                line, buf = buf.split(b"\n\n", 1)
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                ev = json.loads(line[6:])
                if "error" in ev:
                    raise RuntimeError(ev["error"]["message"])
                if not ev.get("choices"):
                    continue
                ch = ev["choices"][0]
                piece = ch.get("delta", {}).get("content")
                if piece:
                    now = time.perf_counter()
                    if ttft is None:
                        ttft = now - t0
                    else:
                        gaps.append(now - last)
                    last = now
                    text.append(piece)
                if ch.get("finish_reason"):
                    finish = ch["finish_reason"]
    return "".join(text), ttft, gaps, finish


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glimpse", default="build/bin/glimpse")
    ap.add_argument("--model", default=os.environ.get("GLIMPSE_MODEL", "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--url", help="use a running server instead of starting one")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("-np", type=int, default=8)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-c", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--server-args", default="", help="more glimpse serve flags, e.g. '--cache-ram 0'")
    a = ap.parse_args()

    proc = None
    url = a.url
    if not url:
        proc, url = start_server(a.glimpse, a.model, ["-np", a.np, "-t", a.t, "-c", a.c,
                                                      "--max-queue", a.clients * 2, *a.server_args.split()])
    try:
        mix = make_mix(a.seed)
        expected = [stream_request(url, b)[0] for b in mix]  # each alone, before the load
        lock = threading.Lock()
        ttfts, gaps, errors, done = [], [], [], [0, 0]  # requests, tokens
        stop_at = time.time() + a.seconds

        def client(k):
            rng = random.Random(a.seed * 1000 + k)
            while time.time() < stop_at:
                i = rng.randrange(len(mix))
                try:
                    text, ttft, g, finish = stream_request(url, mix[i])
                    ok = text == expected[i] and finish is not None
                    with lock:
                        if not ok:
                            errors.append(f"client {k} prompt {i}: got {text!r}, expected {expected[i]!r}")
                        ttfts.append(ttft or 0.0)
                        gaps.extend(g)
                        done[0] += 1
                        done[1] += len(g) + 1
                except Exception as e:  # noqa: BLE001 (any failure is a lost response)
                    with lock:
                        errors.append(f"client {k} prompt {i}: {e}")

        rss = []
        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
        t0 = time.time()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            if proc:
                rss.append((time.time() - t0, rss_kib(proc.pid)))
            time.sleep(1)
        wall = time.time() - t0
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)

    print(f"clients {a.clients}, -np {a.np}, {a.seconds:.0f} s, mix of {len(mix)} prompts "
          f"(4 lengths x none/snapkv/lookahead/streaming @ 64)"
          + (f", serve {a.server_args}" if a.server_args else ""))
    print(f"requests {done[0]} ({done[0] / wall:.2f}/s), streamed tokens {done[1]} ({done[1] / wall:.1f}/s)")
    print(f"time to first token: p50 {pct(ttfts, 50) * 1e3:.0f} ms, p99 {pct(ttfts, 99) * 1e3:.0f} ms")
    print(f"inter-token latency: p50 {pct(gaps, 50) * 1e3:.1f} ms, p99 {pct(gaps, 99) * 1e3:.1f} ms")
    if rss:
        warm = [r for t, r in rss if t > min(30.0, wall / 3)]
        print(f"server RSS: start {rss[0][1] / 1024:.0f} MiB, after warm-up min {min(warm) / 1024:.0f} / "
              f"max {max(warm) / 1024:.0f} MiB, end {rss[-1][1] / 1024:.0f} MiB" if warm else "")
    print(f"errors (lost, mixed or truncated responses): {len(errors)}")
    for e in errors[:10]:
        print("  " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
