#!/usr/bin/env python3
"""glimpse serve against the official OpenAI Python client (pinned in .venv).

Starts `glimpse serve` on a free loopback port with the default model and checks, unchanged
client code: chat and completions, whole and streamed; a greedy answer equal to what
`glimpse run` prints for the same prompt; per-request `extra_body={"kv_policy": ...}` with
the KV held reported smaller; errors raised as the client's own exception types; the API
key. Exit status 0 when every check passes.

  tests/server/openai_client_test.py --glimpse build/bin/glimpse [--model M]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import openai

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"glimpse serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit("glimpse serve did not become healthy")


def run_cli(glimpse, model, prompt, n):
    out = subprocess.run([glimpse, "run", "-m", model, "--chat", "-p", prompt, "--temp", "0",
                          "-n", str(n), "-c", "2048", "-t", "2", "-q"],
                         check=True, capture_output=True, text=True)
    return out.stdout[:-1] if out.stdout.endswith("\n") else out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glimpse", required=True)
    ap.add_argument("--model", default=os.environ.get(
        "GLIMPSE_MODEL", os.path.join(os.path.dirname(__file__), "../../models/SmolLM2-135M-Instruct.Q4_1.gguf")))
    a = ap.parse_args()
    port = free_port()
    key = "test-key"
    proc = subprocess.Popen([a.glimpse, "serve", "-m", a.model, "--port", str(port), "-c", "2048",
                             "-t", "2", "--api-key", key, "--metrics"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(port, proc)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        prompt = "Name three colours."

        chat = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": prompt}], temperature=0,
            max_tokens=24)
        text = chat.choices[0].message.content
        check(bool(text), "chat completion returns text")
        check(text == run_cli(a.glimpse, a.model, prompt, 24),
              "greedy chat answer equals glimpse run's")
        check(chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens,
              "usage adds up")
        check(chat.choices[0].finish_reason in ("stop", "length"), "finish_reason")

        pieces, finish, usage = [], None, None
        stream = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": prompt}], temperature=0,
            max_tokens=24, stream=True, stream_options={"include_usage": True})
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.choices:
                if chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
                if chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
        check("".join(pieces) == text, "streamed chat deltas equal the whole answer")
        check(finish is not None and usage is not None, "stream ends with finish_reason and usage")

        comp = client.completions.create(model="default", prompt="The capital of France is",
                                         temperature=0, max_tokens=8)
        check(bool(comp.choices[0].text), "completions endpoint")
        streamed = "".join(c.choices[0].text for c in client.completions.create(
            model="default", prompt="The capital of France is", temperature=0, max_tokens=8,
            stream=True) if c.choices)
        check(streamed == comp.choices[0].text, "streamed completion equals the whole one")

        lp = client.chat.completions.create(model="default", messages=[{"role": "user", "content": prompt}],
                                            temperature=0, max_tokens=8, logprobs=True, top_logprobs=2)
        content = lp.choices[0].logprobs.content
        check(len(content) == lp.usage.completion_tokens and
              all(t.token == t.top_logprobs[0].token and t.logprob <= 0 for t in content),
              "chat logprobs: one per token, the greedy token on top")
        legacy = client.completions.create(model="default", prompt="The capital of France is",
                                           temperature=0, max_tokens=8, logprobs=2)
        check(len(legacy.choices[0].logprobs.tokens) == legacy.usage.completion_tokens and
              len(legacy.choices[0].logprobs.top_logprobs[0]) == 2,
              "completions logprobs (the legacy integer)")

        doc = " ".join(f"Entry {i}: the harbour log notes calm water." for i in range(80))
        msgs = [{"role": "user", "content": doc + "\nWhat does the log note?"}]
        full = client.chat.completions.create(model="default", messages=msgs, temperature=0,
                                              max_tokens=8)
        kept = client.chat.completions.create(model="default", messages=msgs, temperature=0,
                                              max_tokens=8,
                                              extra_body={"kv_policy": "snapkv", "kv_budget": 64})
        kv_full, kv_kept = full.model_extra["kv"], kept.model_extra["kv"]
        check(kv_kept["policy"] == "snapkv" and kv_kept["entries"] * 3 < kv_full["entries"],
              f"extra_body kv_policy holds fewer entries ({kv_kept['entries']} vs {kv_full['entries']})")

        try:
            client.chat.completions.create(model="default", messages=msgs, extra_body={"kv_policy": "magic"})
            check(False, "unknown kv_policy raises BadRequestError")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and "magic" in str(e), "unknown kv_policy raises BadRequestError")
        try:
            client.chat.completions.create(model="default", messages=msgs, temperature="hot")
            check(False, "a wrong type raises BadRequestError")
        except openai.BadRequestError:
            check(True, "a wrong type raises BadRequestError")
        try:
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong",
                          max_retries=0).models.list()
            check(False, "a wrong key raises AuthenticationError")
        except openai.AuthenticationError:
            check(True, "a wrong key raises AuthenticationError")
        models = client.models.list()
        check(len(models.data) == 1, "models.list")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            metrics = r.read().decode()
        check("glimpse:tokens_predicted_total" in metrics, "/metrics in Prometheus text")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    check(proc.returncode == 0, f"glimpse serve stops cleanly on SIGTERM (rc {proc.returncode})")
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
