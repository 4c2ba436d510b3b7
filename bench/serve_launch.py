"""Starts `glimpse serve` on a free loopback port and waits until /health answers 200
(shared by bench/serve-load.py and bench/serve-capacity.py)."""
import socket
import subprocess
import time
import urllib.request


def start_server(glimpse, model, extra_args, timeout_s=120):
    """(process, base URL) of a healthy server; raises if it exits or never turns healthy."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([glimpse, "serve", "-m", model, "--port", str(port), *map(str, extra_args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"glimpse serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except Exception:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("glimpse serve did not become healthy")
