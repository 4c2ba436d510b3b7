#!/usr/bin/env python3
"""1,000 malformed requests against a live `glimpse serve`, from 4 client threads at once:
each must get a 4xx with an OpenAI-style error object ({"error": {"message", "type",
"code"}}), the server must stay up, and a valid request must still get its greedy answer
afterwards (the same text as before the storm).

The requests are built from a fixed seed in fourteen kinds: truncated JSON, random bytes,
non-object JSON, invalid UTF-8 in a string, wrong types and out-of-range values for each
field, unknown policies and roles, missing or empty messages, both kv_budget and kv_ratio,
prompts over the context, a body over --max-body, deep nesting, huge numbers, bad tokenize /
detokenize bodies, bad /v1/completions prompts, and bad paths and methods. A request that
happened to be valid would get a 200 and fail the test, so the generator cannot hide one.

  tests/server/malformed_requests_test.py --glimpse build/bin/glimpse [--model M] [-n 1000]
"""
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.request

from serve_util import start_server

VALID = {"messages": [{"role": "user", "content": "Name three colours."}], "temperature": 0,
         "max_tokens": 12}
# Field -> values of a wrong type or out of range (api.cpp's bounds).
BAD_FIELDS = {
    "max_tokens": ["12", 1.5, -2, [], {}, True, 2 ** 70],
    "temperature": ["hot", -0.1, 100.5, [], 1e309],
    "top_p": [1.5, -1, "x", {}],
    "top_k": [-1, 0.5, "3", [3]],
    "min_p": [2, -0.5, "0.1"],
    "seed": ["s", 0.25, [1], 2 ** 64],
    "stop": [5, [1, 2], {"a": 1}, [""], ["x"] * 100],
    "stream": ["yes", 1, []],
    "presence_penalty": [3, -3, "0"],
    "frequency_penalty": [2.5, "1"],
    "repeat_penalty": [-1, 101, "1.1"],
    "kv_policy": ["nope", 3, "", "SNAPKV", ["snapkv"]],
    "kv_budget": [0, -5, 1.5, "256", 2 ** 40],
    "kv_ratio": [1.0, -0.1, "0.5", 2],
    "query_aware": ["false", 0, []],
    "messages": [[], {}, "hi", [1], [{"content": "x"}], [{"role": "wizard", "content": "x"}],
                 [{"role": "user", "content": 5}], [{"role": "user", "content": [{"type": "image_url"}]}],
                 [{"role": 3, "content": "x"}]],
}


def is_error_object(body):
    try:
        e = json.loads(body)["error"]
        return isinstance(e["message"], str) and e["message"] and isinstance(e["code"], int)
    except Exception:
        return False


def make_requests(n, rng):
    """(method, path, body bytes, expects a JSON error object, kind) tuples."""
    valid = json.dumps(VALID).encode()
    out = []
    kinds = ["truncated", "random_bytes", "not_object", "bad_utf8", "bad_field", "bad_field",
             "bad_field", "missing_messages", "budget_and_ratio", "over_context", "over_body",
             "deep_nesting", "huge_number", "tokenize", "completions_prompt", "bad_path"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        method, path, expect_json = "POST", "/v1/chat/completions", True
        if kind == "truncated":
            cut = rng.randrange(1, len(valid) - 1)
            body = valid[:cut]
        elif kind == "random_bytes":
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        elif kind == "not_object":
            body = rng.choice([b"[]", b"42", b"\"text\"", b"null", b"true", b"[{\"messages\": []}]"])
        elif kind == "bad_utf8":
            raw = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"])
            body = b'{"messages": [{"role": "user", "content": "a' + raw + b'b"}]}'
        elif kind == "bad_field":
            field = rng.choice(sorted(BAD_FIELDS))
            req = dict(VALID)
            req[field] = rng.choice(BAD_FIELDS[field])
            body = json.dumps(req).encode()
        elif kind == "missing_messages":
            req = {k: v for k, v in VALID.items() if k != "messages"}
            if rng.random() < 0.5:
                req["messages"] = None
            body = json.dumps(req).encode()
        elif kind == "budget_and_ratio":
            body = json.dumps(dict(VALID, kv_policy="snapkv", kv_budget=64, kv_ratio=0.5)).encode()
        elif kind == "over_context":  # -c 2048: far more tokens than that
            body = json.dumps(dict(VALID, messages=[{"role": "user", "content": "word " * 6000}])).encode()
        elif kind == "over_body":  # --max-body 65536
            body = json.dumps(dict(VALID, messages=[{"role": "user", "content": "x" * 70000}])).encode()
        elif kind == "deep_nesting":
            depth = rng.randrange(1000, 20000)
            body = b'{"messages": ' + b"[" * depth + b"]" * depth + b"}"
        elif kind == "huge_number":
            body = rng.choice([b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400}',
                               b'{"messages": [{"role": "user", "content": "x"}], "temperature": -1e999}',
                               b'{"messages": [{"role": "user", "content": "x"}], "seed": 123456789012345678901234567890}'])
        elif kind == "tokenize":
            path = rng.choice(["/tokenize", "/detokenize"])
            body = rng.choice([b"{", b"[]", b'{"content": 5}', b'{"tokens": "abc"}', b'{"tokens": [1, "x"]}',
                               b'{"tokens": [-1]}', b'{"tokens": [99999999]}'])
            if path == "/tokenize" and b"tokens" in body:
                path = "/detokenize"
        elif kind == "completions_prompt":
            path = "/v1/completions"
            body = json.dumps(rng.choice([{"prompt": 5}, {"prompt": ["a", "b"]}, {"prompt": None},
                                          {"prompt": "x", "max_tokens": "many"}, {}])).encode()
        else:  # bad_path
            method, path = rng.choice([("GET", "/v1/chat/completions"), ("POST", "/v1/nothing"),
                                       ("DELETE", "/v1/models"), ("POST", "/health")])
            body, expect_json = b"{}", False
        out.append((method, path, body, expect_json, kind))
    return out


def locally_invalid(method, path, body, kind):
    """Guards the generator: a truncated or random body that still parses as a request is
    dropped (and counted as a failure below)."""
    if kind in ("bad_path", "tokenize", "over_context", "over_body", "deep_nesting", "huge_number",
                "completions_prompt", "budget_and_ratio", "bad_field", "missing_messages"):
        return True  # invalid by construction (checked by the server's answer below)
    try:
        j = json.loads(body.decode("utf-8"))
    except Exception:
        return True
    return not (isinstance(j, dict) and isinstance(j.get("messages"), list) and j["messages"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glimpse", required=True)
    ap.add_argument("--model", default=os.environ.get(
        "GLIMPSE_MODEL", os.path.join(os.path.dirname(__file__), "../../models/SmolLM2-135M-Instruct.Q4_1.gguf")))
    ap.add_argument("-n", type=int, default=1000)
    args = ap.parse_args()
    server, url = start_server(args.glimpse, args.model, ["-c", 2048, "-t", 2, "-np", 2, "--max-body", 65536])
    port = int(url.rsplit(":", 1)[1])
    failures = []
    try:
        def post(method, path, body, timeout=120):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                c.request(method, path, body=body, headers={"Content-Type": "application/json"})
                r = c.getresponse()
                return r.status, r.read()
            finally:
                c.close()

        status, before = post("POST", "/v1/chat/completions", json.dumps(VALID).encode())
        assert status == 200, before
        answer = json.loads(before)["choices"][0]["message"]["content"]

        rng = random.Random(20261130)
        reqs = [r for r in make_requests(args.n, rng) if locally_invalid(r[0], r[1], r[2], r[4])]
        if len(reqs) != args.n:
            failures.append(f"the generator made {args.n - len(reqs)} valid bodies")
        lock = threading.Lock()
        by_kind = {}
        t0 = time.time()

        def worker(part):
            for method, path, body, expect_json, kind in part:
                try:
                    status, resp = post(method, path, body)
                except Exception as e:  # a reset connection, a timeout: the server failed it
                    status, resp = -1, str(e).encode()
                ok = 400 <= status < 500 and (not expect_json or is_error_object(resp))
                with lock:
                    by_kind.setdefault(kind, [0, 0])[0 if ok else 1] += 1
                    if not ok and len(failures) < 20:
                        failures.append(f"{kind} {method} {path} {body[:80]!r}: {status} {resp[:200]!r}")

        threads = [threading.Thread(target=worker, args=(reqs[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - t0
        for kind, (good, bad) in sorted(by_kind.items()):
            print(f"{kind:20s} {good:4d} 4xx with an error object, {bad} not")
        print(f"{len(reqs)} malformed requests in {elapsed:.1f} s")
        alive = server.poll() is None
        status, after = post("POST", "/v1/chat/completions", json.dumps(VALID).encode()) if alive else (-1, b"")
        if not alive:
            failures.append(f"the server exited with {server.returncode}")
        elif status != 200 or json.loads(after)["choices"][0]["message"]["content"] != answer:
            failures.append(f"the valid request after the storm: {status} {after[:200]!r}")
        else:
            print(f"the server still answers, with the same text: {answer!r}")
    finally:
        server.terminate()
        server.wait()
    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
