#!/usr/bin/env python3
"""The page glimpse serve shows at `/`, used in headless Chromium (Debian's
chromium-headless-shell) as a person would: paste a document, type a question, pick a KV
policy and budget, press Ask, and wait for the streamed answer and its statistics. The answer
must equal the server's own (non-streamed) answer to the same request, the statistics must
show the compressed KV, and a second question on the same document with "compress before the
question" must be served from the document cache. Screenshots of the page go to --out.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON
messages separated by NUL bytes on file descriptors 3 and 4), so nothing beyond the Python
standard library is needed. Exit 0 when every check passes, 77 (skipped) when Chromium is
not installed.

  tests/server/web_page_test.py --glimpse build/bin/glimpse --out build/web-page [--model M]
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from serve_util import start_server

FAILURES = []
DOCUMENT = "\n".join(
    f"Shipment {i}: the crate of {name} left dock {i % 5 + 1} on day {i + 3}."
    for i, name in enumerate(["lamps", "rope", "maps", "salt", "nails", "cloth", "tea", "oil",
                              "glass", "wool", "ink", "soap"]))
QUESTIONS = ["Which dock did the crate of tea leave from?", "On which day did the salt leave?"]


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


class Browser:
    """Headless Chromium with one page, spoken to over the DevTools pipe."""

    def __init__(self, binary, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def fds():  # the child reads commands on fd 3 and writes replies on fd 4
            r, w = os.dup(to_chrome_r), os.dup(from_chrome_w)  # above 4, whatever the pipes are
            os.dup2(r, 3)  # dup2 leaves 3 and 4 open across exec
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [binary, "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,860",
             "about:blank"],
            close_fds=False, preexec_fn=fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        target = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=target["targetId"],
                                 flatten=True)["sessionId"]

    def _read(self, timeout):
        deadline = time.time() + timeout
        while b"\0" not in self.buf:
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit("Chromium stopped answering")
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                raise SystemExit("Chromium closed its pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, session=None, timeout=60, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise SystemExit(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def page(self, method, **params):
        return self.call(method, session=self.session, **params)

    def js(self, expression):
        r = self.page("Runtime.evaluate", expression=expression, awaitPromise=True,
                      returnByValue=True)
        if "exceptionDetails" in r:
            raise SystemExit(f"page script failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression, timeout):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.js(expression):
                return True
            time.sleep(0.2)
        return False

    def screenshot(self, path):
        data = self.page("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        self.proc.kill()
        self.proc.wait()


def ask_in_page(b, question, policy, budget, agnostic):
    """Types into the page's own fields, presses Ask, waits for the end of the stream."""
    b.js(f"""(() => {{
      document.getElementById('answer').dataset.done = '';
      document.getElementById('doc').value = {json.dumps(DOCUMENT)};
      document.getElementById('question').value = {json.dumps(question)};
      document.getElementById('policy').value = {json.dumps(policy)};
      document.getElementById('budget').value = {budget};
      document.getElementById('maxtok').value = 24;
      document.getElementById('agnostic').checked = {json.dumps(agnostic)};
      document.getElementById('ask').click();
    }})()""")
    done = b.wait_for("document.getElementById('answer').dataset.done === '1'", 180)
    return done, b.js("document.getElementById('answer').textContent"), \
        b.js("document.getElementById('stats').innerText")


def api_answer(url, question, policy, budget, agnostic):
    """The same request the page sends, not streamed."""
    messages = ([{"role": "user", "content": DOCUMENT}, {"role": "user", "content": question}]
                if agnostic else [{"role": "user", "content": DOCUMENT + "\n\n" + question}])
    body = {"messages": messages, "temperature": 0, "max_tokens": 24, "kv_policy": policy,
            "kv_budget": budget, "query_aware": not agnostic}
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glimpse", required=True)
    ap.add_argument("--out", required=True, help="folder for the screenshots")
    ap.add_argument("--model", default=os.environ.get(
        "GLIMPSE_MODEL", os.path.join(os.path.dirname(__file__), "../../models/SmolLM2-135M-Instruct.Q4_1.gguf")))
    args = ap.parse_args()
    chromium = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if not chromium:
        print("skipped: chromium-headless-shell is not installed (scripts/setup-deps.sh installs it)")
        return 77
    os.makedirs(args.out, exist_ok=True)
    server, url = start_server(args.glimpse, args.model, ["-c", 2048, "-t", 2, "-np", 2])
    profile = tempfile.mkdtemp(prefix="glimpse-chromium-")
    browser = None
    try:
        browser = Browser(chromium, profile)
        browser.page("Page.enable")
        browser.page("Page.navigate", url=url + "/")
        check(browser.wait_for("document.readyState === 'complete' && "
                               "document.getElementById('policy').options.length > 1", 60),
              "the page loads and lists the KV policies")
        check(browser.js("document.getElementById('model').textContent").endswith(".gguf"),
              "the header names the model")

        # A query-aware question with SnapKV at 32 entries per head.
        done, answer, stats = ask_in_page(browser, QUESTIONS[0], "snapkv", 32, False)
        browser.screenshot(os.path.join(args.out, "web-page-answer.png"))
        want = api_answer(url, QUESTIONS[0], "snapkv", 32, False)
        check(done and answer and not answer.startswith("error"), f"an answer streams in: {answer!r}")
        check(answer == want["choices"][0]["message"]["content"],
              "the page shows the server's greedy answer to the same request")
        kv = want["kv"]
        check("snapkv @ 32" in stats and f"{kv['entries']} of {kv['full_entries']}" in stats,
              f"the statistics show the compressed KV: {stats!r}")

        # Compress the document once, then ask a second question about it.
        ask_in_page(browser, QUESTIONS[0], "snapkv", 32, True)
        done, answer, stats = ask_in_page(browser, QUESTIONS[1], "snapkv", 32, True)
        browser.screenshot(os.path.join(args.out, "web-page-document-cache.png"))
        want = api_answer(url, QUESTIONS[1], "snapkv", 32, True)
        check(done and answer == want["choices"][0]["message"]["content"],
              f"a second question on the compressed document: {answer!r}")
        check("from the document cache" in stats,
              f"the second question reuses the compressed document: {stats!r}")
        check(os.path.getsize(os.path.join(args.out, "web-page-answer.png")) > 10000,
              "the screenshot was written")
    finally:
        if browser:
            browser.close()
        server.terminate()
        server.wait()
        shutil.rmtree(profile, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        return 1
    print("all checks passed; screenshots in " + args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
