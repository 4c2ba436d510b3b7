"""What the server's end-to-end tests share: a free loopback port and a `glimpse serve`
started on it and waited for until /health answers 200."""
import socket
import subprocess
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(glimpse, model, args, timeout_s=120):
    """(process, base URL) of a healthy server; exits the test if it dies or never turns healthy."""
    port = free_port()
    proc = subprocess.Popen([glimpse, "serve", "-m", model, "--port", str(port), *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"glimpse serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except Exception:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("glimpse serve did not become healthy")
