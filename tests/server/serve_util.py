"""What the server's end-to-end tests share: `glimpse serve` on a free loopback port, waited
for until /health answers 200 (bench/serve_launch.py, the launcher the benchmarks use); a
server that dies or never turns healthy ends the test."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import serve_launch  # noqa: E402


def start_server(glimpse, model, args, timeout_s=120):
    """(process, base URL) of a healthy server."""
    try:
        return serve_launch.start_server(glimpse, model, args, timeout_s)
    except RuntimeError as e:
        raise SystemExit(str(e))
