"""tests/support/server_wait.py: what the shell tests' Python snippets share to reach a `bitnet serve`
started with --port 0: wait_ready(LOG) reads the port from the server's listening line in its log
and waits until GET /health answers 200; returns the port (None when it never became ready)."""
import re
import time
import urllib.request


def wait_ready(log, tries=600, pause=0.05):
    port = None
    for _ in range(tries):
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(log).read())
        if m:
            port = int(m.group(1))
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200:
                    return port
            except Exception:
                pass
        time.sleep(pause)
    return None
