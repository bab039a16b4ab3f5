#!/usr/bin/python3
"""server_drain.py: what a load balancer relies on, against real `bitnet serve` processes
(run by tests/test_server_drain.sh, which passes the binary, a model and a work folder):

  - /live answers 200; /ready 200 when idle, 503 "queue_full" once --ready-queue-max jobs wait
    (and bitnet_ready / bitnet_queue_depth in /metrics say the same), 200 again when they leave;
  - /metrics passes `promtool check metrics` (Debian package prometheus);
  - a request's response carries X-Bitnet-Slot-Hint;
  - SIGTERM drains: new connections are refused at once, an idle keep-alive connection is
    closed by the server, running requests cut at --shutdown-timeout end visibly (a stream with
    a server_shutdown error event and no [DONE], a plain request with 503 server_shutdown), the
    process exits 0 and logs how many it cut; with time enough, a running stream ends with [DONE]
    and the log says "drained cleanly".
Prints "ok: ..." / "FAIL: ..." per check; exit 1 on any failure.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

BIN, MODEL, TMP = sys.argv[1], sys.argv[2], sys.argv[3]
MODEL_ID = os.path.basename(MODEL).removesuffix(".gguf")
failures = 0


def check(what, cond, detail=""):
    global failures
    if cond:
        print(f"ok: {what}", flush=True)
    else:
        failures += 1
        print(f"FAIL: {what}{': ' + str(detail)[:400] if detail != '' else ''}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name, *args):
        self.port = free_port()
        self.log = os.path.join(TMP, f"{name}.log")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([BIN, "serve", "-m", MODEL, "--port", str(self.port), "-t", "1", "--tune", "off",
                                          *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self.get("/ready")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{name} did not become ready; see {self.log}")

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def metric(self, name):
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def log_text(self):
        return open(self.log, errors="replace").read()


def long_request(port, stream, out, max_tokens=2000, started=None):
    """A long greedy generation; out gets status, the error code (if any), whether the stream saw
    [DONE], and the first bytes' arrival signals `started`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = {"model": MODEL_ID, "prompt": "drain", "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0,
            "stream": stream}
    try:
        conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        out["status"] = r.status
        out["hint"] = r.getheader("X-Bitnet-Slot-Hint")
        if not stream:
            text = r.read().decode()
            out["body"] = text
            try:
                out["code"] = json.loads(text).get("error", {}).get("code")
            except ValueError:
                out["code"] = None
            return
        out["done"] = False
        out["error_code"] = None
        while True:
            line = r.readline()
            if not line:
                break
            if started:
                started.set()
            line = line.decode().strip()
            if line == "data: [DONE]":
                out["done"] = True
            elif line.startswith("data: ") and '"error"' in line:
                out["error_code"] = json.loads(line[6:])["error"].get("code")
    except (OSError, http.client.HTTPException) as e:
        out["exception"] = repr(e)
    finally:
        conn.close()
        if started:
            started.set()


def test_ready_and_metrics():
    s = Server("ready", "--parallel", "1", "--queue", "8", "--ready-queue-max", "1", "-c", "2048")
    try:
        st, body = s.get("/live")
        check("/live answers 200", st == 200 and json.loads(body)["status"] == "alive", body)
        st, body = s.get("/ready")
        check("/ready answers 200 when idle", st == 200 and json.loads(body)["status"] == "ready", body)
        running, queued = {}, {}
        started = threading.Event()
        t1 = threading.Thread(target=long_request, args=(s.port, True, running, 2000, started))
        t1.start()
        started.wait(20)
        t2 = threading.Thread(target=long_request, args=(s.port, False, queued, 8))
        t2.start()
        deadline = time.time() + 10
        st, body = s.get("/ready")
        while st == 200 and time.time() < deadline:
            time.sleep(0.01)
            st, body = s.get("/ready")
        check("/ready answers 503 queue_full once --ready-queue-max jobs wait",
              st == 503 and json.loads(body).get("reason") == "queue_full", f"{st} {body}")
        check("/metrics: bitnet_ready 0 and bitnet_queue_depth 1 meanwhile",
              s.metric("bitnet_ready") == 0 and s.metric("bitnet_queue_depth") == 1,
              (s.metric("bitnet_ready"), s.metric("bitnet_queue_depth")))
        promtool = shutil.which("promtool")
        if promtool:
            text = s.get("/metrics")[1]
            p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
            check("/metrics passes promtool check metrics", p.returncode == 0, (p.stdout + p.stderr).decode())
        else:
            check("promtool found (Debian package prometheus; ./bitnet.sh installs it)", False)
        t1.join(60)
        t2.join(60)
        check("X-Bitnet-Slot-Hint on a generation's response", bool(running.get("hint")) and
              len(running["hint"]) == 16, running.get("hint"))
        st, body = s.get("/ready")
        check("/ready answers 200 again once the queue is empty", st == 200, body)
        rate = s.metric("bitnet_generated_tokens_per_second")
        check("/metrics: bitnet_generated_tokens_per_second counts the tokens just generated", rate is not None and rate > 0,
              rate)
    finally:
        s.proc.kill()
        s.proc.wait()


def test_drain_cut():
    s = Server("drain_cut", "--parallel", "2", "-c", "2048", "--shutdown-timeout", "0.5")
    stream, plain = {}, {}
    started = threading.Event()
    t1 = threading.Thread(target=long_request, args=(s.port, True, stream, 2000, started))
    t2 = threading.Thread(target=long_request, args=(s.port, False, plain, 2000))
    t1.start()
    t2.start()
    started.wait(20)
    time.sleep(0.1)
    s.proc.send_signal(signal.SIGTERM)
    refused = False
    deadline = time.time() + 2
    while time.time() < deadline and not refused:
        try:
            socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
            time.sleep(0.02)
        except ConnectionRefusedError:
            refused = True
        except ConnectionResetError:
            time.sleep(0.02)  # accepted into the backlog just as the listening socket closed
    check("SIGTERM: new connections are refused at once", refused)
    t1.join(30)
    t2.join(30)
    check("a stream cut at --shutdown-timeout ends with a server_shutdown error event and no [DONE]",
          stream.get("status") == 200 and stream.get("error_code") == "server_shutdown" and not stream.get("done"), stream)
    check("a plain request cut at --shutdown-timeout answers 503 server_shutdown",
          plain.get("status") == 503 and plain.get("code") == "server_shutdown", plain)
    code = s.proc.wait(20)
    check("exit status 0 after the drain", code == 0, code)
    check("the log says how many requests were cut", "requests were cut short" in s.log_text(), s.log_text()[-300:])


def test_drain_clean():
    s = Server("drain_clean", "--parallel", "2", "-c", "2048", "--shutdown-timeout", "60")
    idle = socket.create_connection(("127.0.0.1", s.port))
    idle.sendall(b"GET /live HTTP/1.1\r\nHost: localhost\r\n\r\n")
    time.sleep(0.2)
    first = idle.recv(4096)
    check("keep-alive connection answered before the drain", b" 200 " in first, first[:100])
    stream = {}
    started = threading.Event()
    t1 = threading.Thread(target=long_request, args=(s.port, True, stream, 2000, started))
    t1.start()
    started.wait(20)
    s.proc.send_signal(signal.SIGTERM)
    idle.settimeout(1.5)
    try:
        closed = idle.recv(4096) == b""
    except socket.timeout:
        closed = False  # still open
    except OSError:
        closed = True   # reset by the server
    idle.close()
    check("SIGTERM: the idle keep-alive connection is closed while a stream still runs", closed and t1.is_alive(),
          f"closed {closed}, stream running {t1.is_alive()}")
    t1.join(60)
    check("a running stream finishes with [DONE] during the drain", stream.get("done") and not stream.get("error_code"),
          stream)
    code = s.proc.wait(20)
    check("exit status 0 after a clean drain", code == 0, code)
    check("the log says it drained cleanly", "drained cleanly" in s.log_text(), s.log_text()[-300:])


test_ready_and_metrics()
test_drain_cut()
test_drain_clean()
print(f"server_drain: {'FAILED' if failures else 'all checks passed'} ({failures} failed)")
sys.exit(1 if failures else 0)
