#!/usr/bin/python3
"""scale_test.py: `bitnet serve` replicas behind HAProxy (deploy/haproxy/haproxy.cfg) on loopback,
driven by scripts/scale-test.sh (which says what it needs and where the results go).

Three parts, each printing what it measured:
  1. reference: every distinct request once on a lone server (greedy), the text to compare with;
  2. chaos: three replicas behind HAProxy, a bounded load (--requests, --concurrency, every
     second request streamed); after --term-at completed requests one replica gets SIGTERM (it
     drains, exits, and is started again on its port), after --kill-at another gets SIGKILL.
     Every request ends as completed (its text must equal the reference) or failed with its
     reason; the only failures allowed are streams that were running on the SIGKILLed replica,
     and they must fail visibly (no [DONE]), never as a cut success;
  3. scaling: aggregate generated tokens/s through HAProxy with 1 replica and with 2 replicas,
     each pinned to its own core (taskset), and with 3 replicas on those cores (oversubscribed).
Exit status: 0 when the chaos run met its goal, 1 otherwise (scaling figures are reported, never
asserted: timings are not test assertions). Python standard library only.
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time


def log(*args):
    print(*args, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout_s=30.0):
    """True once something accepts connections on 127.0.0.1:port."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def http_get(port, path, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


class Replica:
    """One `bitnet serve` process on a fixed port, optionally pinned to CPUs with taskset."""

    def __init__(self, args, name, port, cpus=None, extra=()):
        self.args, self.name, self.port, self.cpus, self.extra = args, name, port, cpus, list(extra)
        self.proc = None
        self.log_path = os.path.join(args.tmp, f"{name}.{port}.log")
        self.starts = 0

    def start(self):
        cmd = [self.args.bin, "serve", "-m", self.args.model, "--host", "127.0.0.1", "--port", str(self.port),
               "-t", "1", "--parallel", "4", "-c", "1024", "--trusted-proxy", "127.0.0.1",
               "--shutdown-timeout", "30", "--tune", "off"] + self.extra
        if self.cpus is not None:
            cmd = ["taskset", "-c", self.cpus] + cmd
        self.starts += 1
        out = open(self.log_path, "a")
        out.write(f"---- start {self.starts}: {' '.join(cmd)}\n")
        out.flush()
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()

    def wait_ready(self, timeout_s=60.0):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if http_get(self.port, "/ready", 1.0)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s; see {self.log_path}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Balancer:
    """HAProxy running deploy/haproxy/haproxy.cfg, its addresses from the environment."""

    def __init__(self, args, replica_ports):
        self.args = args
        self.port = free_port()
        self.stats_port = free_port()
        env = dict(os.environ)
        env["BITNET_LB_BIND"] = f"127.0.0.1:{self.port}"
        env["BITNET_LB_STATS"] = f"127.0.0.1:{self.stats_port}"
        # replicas not in use point at a port nobody listens on: HAProxy marks them down
        dead = free_port()
        for i in range(3):
            p = replica_ports[i] if i < len(replica_ports) else dead
            env[f"BITNET_REPLICA{i + 1}"] = f"127.0.0.1:{p}"
        self.log_path = os.path.join(args.tmp, f"haproxy.{self.port}.log")
        out = open(self.log_path, "w")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", args.haproxy_cfg], env=env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        if not wait_port(self.port) or not wait_port(self.stats_port):
            raise RuntimeError(f"haproxy did not start; see {self.log_path}")

    def servers_up(self):
        """Names of the backend servers HAProxy has UP (from its CSV stats)."""
        status, text = http_get(self.stats_port, "/stats;csv")
        up = set()
        for line in text.splitlines():
            f = line.split(",")
            if len(f) > 17 and f[0] == "bitnet_replicas" and f[1] not in ("BACKEND", "FRONTEND") and f[17] == "UP":
                up.add(f[1])
        return up

    def wait_up(self, names, timeout_s=30.0):
        """Waits until exactly `names` are UP (HAProxy starts every server UP until its first check
        fails: the unused ones must be seen DOWN before the load starts)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if set(names) == self.servers_up():
                return
            time.sleep(0.1)
        raise RuntimeError(f"haproxy: {names} not all UP (UP: {sorted(self.servers_up())}); see {self.log_path}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---------------------------------------------------------------- the requests

PROMPTS = ["The quick brown fox", "In the beginning", "Once upon a time", "A ternary weight is",
           "Load balancers send", "The river ran", "Seven seas", "Numbers: 1 2 3", "Hello", "The last word"]


def distinct_requests(model_id, n_distinct, max_tokens):
    """The distinct request bodies (greedy): half completions, half chat, varied lengths."""
    out = []
    for i in range(n_distinct):
        prompt = f"{PROMPTS[i % len(PROMPTS)]} #{i}"
        n = max_tokens[i % len(max_tokens)]
        if i % 2 == 0:
            out.append(("/v1/completions", {"model": model_id, "prompt": prompt, "max_tokens": n, "temperature": 0}))
        else:
            out.append(("/v1/chat/completions", {"model": model_id, "max_tokens": n, "temperature": 0,
                                                 "messages": [{"role": "system", "content": "You are terse."},
                                                              {"role": "user", "content": prompt}]}))
    return out


def send(port, path, body, stream, timeout=120.0, headers=None):
    """One request. Returns a dict: ok, text, finish_reason, replica, status, reason (why it failed),
    tokens, slot_hint."""
    res = {"ok": False, "text": "", "finish_reason": None, "replica": None, "status": None, "reason": "",
           "tokens": 0, "slot_hint": None}
    body = dict(body)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    data = json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    chat = path.endswith("/chat/completions")
    try:
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        res["status"] = r.status
        res["replica"] = r.getheader("X-Bitnet-Replica")
        res["slot_hint"] = r.getheader("X-Bitnet-Slot-Hint")
        if r.status != 200:
            text = r.read().decode("utf-8", "replace")
            try:
                msg = json.loads(text)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                msg = text[:200]
            res["reason"] = f"HTTP {r.status}: {msg}"
            return res
        if not stream:
            obj = json.loads(r.read())
            choice = obj["choices"][0]
            res["text"] = choice["message"]["content"] if chat else choice["text"]
            res["finish_reason"] = choice["finish_reason"]
            res["tokens"] = obj["usage"]["completion_tokens"]
            res["ok"] = res["finish_reason"] in ("stop", "length")
            if not res["ok"]:
                res["reason"] = f"finish_reason {res['finish_reason']}"
            return res
        done = False
        parts = []
        while True:
            line = r.readline()
            if not line:
                break
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if not line.startswith("data: "):
                continue
            payload = line[6:]
            if payload == "[DONE]":
                done = True
                continue
            obj = json.loads(payload)
            if "error" in obj:
                res["reason"] = f"stream error event: {obj['error'].get('message', obj['error'])}"
                continue
            if obj.get("usage"):
                res["tokens"] = obj["usage"]["completion_tokens"]
            for c in obj.get("choices", []):
                piece = c["delta"].get("content") if chat else c.get("text")
                if piece:
                    parts.append(piece)
                if c.get("finish_reason"):
                    res["finish_reason"] = c["finish_reason"]
        res["text"] = "".join(parts)
        if not done:
            res["reason"] = res["reason"] or "stream cut: ended without [DONE]"
        elif res["finish_reason"] not in ("stop", "length"):
            res["reason"] = f"stream ended with finish_reason {res['finish_reason']}"
        else:
            res["ok"] = True
        return res
    except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
        res["reason"] = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if stream and res["status"] == 200:
            res["reason"] = "stream cut: " + res["reason"]
        return res
    finally:
        conn.close()


def run_load(port, jobs, concurrency, on_done=None):
    """Sends jobs [(index, path, body, stream)] with `concurrency` workers; returns results by index
    and the wall time."""
    results = {}
    lock = threading.Lock()
    pending = list(reversed(jobs))

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                idx, path, body, stream = pending.pop()
            t0 = time.time()
            r = send(port, path, body, stream)
            r["start"], r["end"], r["stream"] = t0, time.time(), stream
            with lock:
                results[idx] = r
                n = len(results)
            if on_done:
                on_done(n)

    t0 = time.time()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.time() - t0


# ---------------------------------------------------------------- the parts

LOG_LINE = re.compile(r'bitnet_replicas/(\S+) \S+ (-?\d+) \S+ \S+ \S+ (\S{4}) \d+/\d+/\d+/\d+/(\+?)(\d+) ')


def balancer_summary(path):
    """What HAProxy's log says about the generation requests: how many were retried (and
    redispatched to another replica), and the termination states other than normal."""
    n = retried = redispatched = 0
    states = {}
    for line in open(path, errors="replace"):
        m = LOG_LINE.search(line)
        if not m or "POST " not in line:
            continue
        n += 1
        if int(m.group(5)) > 0:
            retried += 1
            redispatched += m.group(4) == "+"
        if m.group(3) != "----":
            key = f"{m.group(3)} (status {m.group(2)}, last server {m.group(1)})"
            states[key] = states.get(key, 0) + 1
    return n, retried, redispatched, states


def reference(args, requests):
    log(f"== 1. reference: {len(requests)} distinct requests on a lone server (greedy)")
    lone = Replica(args, "lone", free_port())
    lone.start()
    try:
        lone.wait_ready()
        jobs = [(i, p, b, False) for i, (p, b) in enumerate(requests)]
        results, wall = run_load(lone.port, jobs, 4)
    finally:
        lone.stop()
    bad = [i for i, r in results.items() if not r["ok"]]
    if bad:
        raise RuntimeError(f"reference run: {len(bad)} requests failed, e.g. {results[bad[0]]['reason']}")
    ref = {i: r["text"] for i, r in results.items()}
    log(f"   {len(ref)} reference texts in {wall:.1f} s "
        f"({sum(r['tokens'] for r in results.values())} tokens)")
    return ref


def start_cluster(args, names, cpus=None):
    """Replicas named `names` (each on a free port, pinned to cpus[i] when given), all ready, and
    HAProxy in front of them (its servers r1..rN)."""
    replicas = [Replica(args, name, free_port(), cpus[i] if cpus else None) for i, name in enumerate(names)]
    for r in replicas:
        r.start()
    for r in replicas:
        r.wait_ready()
    lb = Balancer(args, [r.port for r in replicas])
    return replicas, lb


def chaos(args, requests, ref):
    log(f"== 2. chaos: {args.requests} requests, {args.concurrency} concurrent, every second one streamed, "
        f"through HAProxy to 3 replicas; SIGTERM r2 after {args.term_at} completed (it comes back), "
        f"SIGKILL r3 after {args.kill_at}")
    replicas, lb = start_cluster(args, ["r1", "r2", "r3"])
    events = []
    state = {"termed": False, "killed": False, "kill_time": None, "term_time": None, "term_exit": None,
             "back_time": None}
    threads = []

    def restart_after_drain(rep):
        code = rep.proc.wait(60)
        state["term_exit"] = code
        events.append(f"r2 exited with status {code} {time.time() - state['term_time']:.2f} s after SIGTERM")
        rep.start()
        rep.wait_ready()
        state["back_time"] = time.time()
        events.append(f"r2 started again on port {rep.port} and ready "
                      f"{state['back_time'] - state['term_time']:.2f} s after SIGTERM")

    def on_done(n):
        if n >= args.term_at and not state["termed"]:
            state["termed"] = True
            state["term_time"] = time.time()
            replicas[1].proc.send_signal(signal.SIGTERM)
            events.append(f"SIGTERM to r2 after {n} completed")
            t = threading.Thread(target=restart_after_drain, args=(replicas[1],))
            t.start()
            threads.append(t)
        if n >= args.kill_at and not state["killed"]:
            state["killed"] = True
            state["kill_time"] = time.time()
            replicas[2].proc.send_signal(signal.SIGKILL)
            events.append(f"SIGKILL to r3 after {n} completed")

    try:
        lb.wait_up(["r1", "r2", "r3"])
        jobs = []
        for k in range(args.requests):
            i = k % len(requests)
            path, body = requests[i]
            jobs.append((k, path, body, k % 2 == 1))
        results, wall = run_load(lb.port, jobs, args.concurrency, on_done)
        for t in threads:
            t.join()
    finally:
        lb.stop()
        for r in replicas:
            r.stop()
    for e in events:
        log("   event: " + e)
    completed = [k for k, r in results.items() if r["ok"]]
    failed = [k for k, r in results.items() if not r["ok"]]
    mismatched = [k for k in completed if results[k]["text"] != ref[k % len(requests)]]
    by_replica = {}
    for k in completed:
        by_replica[results[k]["replica"]] = by_replica.get(results[k]["replica"], 0) + 1
    log(f"   sent {len(results)}, completed {len(completed)}, failed {len(failed)}, wall {wall:.1f} s; "
        f"completed per replica: {dict(sorted((str(a), b) for a, b in by_replica.items()))}")
    allowed, unexpected = [], []
    for k in failed:
        r = results[k]
        killed_stream = (r["stream"] and r["replica"] == "r3" and r["status"] == 200 and state["kill_time"]
                         and r["start"] < state["kill_time"] and r["reason"].startswith("stream cut"))
        (allowed if killed_stream else unexpected).append(k)
        log(f"   failed #{k} ({'stream' if r['stream'] else 'plain'}, replica {r['replica']}): {r['reason']}"
            f"{'  [expected: running on the SIGKILLed replica]' if killed_stream else '  [UNEXPECTED]'}")
    for k in mismatched[:5]:
        log(f"   MISMATCH #{k}: {results[k]['text'][:80]!r} != reference {ref[k % len(requests)][:80]!r}")
    log(f"   streams cut by SIGKILL: {len(allowed)}; unexpected failures: {len(unexpected)}; "
        f"completed responses different from the lone server: {len(mismatched)}")
    n, retried, redispatched, states = balancer_summary(lb.log_path)
    log(f"   HAProxy: {n} generation requests logged, {retried} retried ({redispatched} redispatched to another "
        f"replica); abnormal ends: {states if states else 'none'}")
    drained = open(replicas[1].log_path).read()
    drain_ok = "drained cleanly" in drained and state["term_exit"] == 0
    log(f"   r2 drain: exit status {state['term_exit']}, "
        f"{'drained cleanly' if 'drained cleanly' in drained else 'NOT drained cleanly (see ' + replicas[1].log_path + ')'}")
    ok = not unexpected and not mismatched and drain_ok and len(results) == args.requests and state["killed"]
    log(f"   chaos result: {'PASS' if ok else 'FAIL'}")
    return ok


def sticky(args, requests):
    """The routing key: a conversation's second turn, sending back X-Bitnet-Slot-Hint, lands on the
    replica that answered its first turn (and hits its prompt cache)."""
    log("== sticky routing: X-Bitnet-Slot-Hint sent back goes to the same replica")
    replicas, lb = start_cluster(args, ["s1", "s2", "s3"])
    same = 0
    total = 0
    try:
        lb.wait_up(["r1", "r2", "r3"])
        for c in range(6):
            msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": f"Conversation {c}"}]
            body = {"model": args.model_id, "messages": msgs, "max_tokens": 8, "temperature": 0}
            first = send(lb.port, "/v1/chat/completions", body, False)
            msgs2 = msgs + [{"role": "assistant", "content": first["text"]}, {"role": "user", "content": "Go on"}]
            body2 = dict(body, messages=msgs2)
            second = send(lb.port, "/v1/chat/completions", body2, c % 2 == 1,
                          headers={"X-Bitnet-Slot-Hint": first["slot_hint"] or ""})
            total += 1
            same += first["ok"] and second["ok"] and first["replica"] == second["replica"] \
                and first["slot_hint"] == second["slot_hint"]
    finally:
        lb.stop()
        for r in replicas:
            r.stop()
    log(f"   {same} of {total} second turns went to their first turn's replica")
    return same == total


def scaling(args, requests):
    log("== 3. scaling: aggregate generated tokens/s through HAProxy "
        f"({args.scale_requests} requests of {args.scale_tokens} tokens, {args.scale_concurrency} concurrent, "
        "one thread per replica; HAProxy and this load generator are not pinned and share the cores)")
    ncpu = os.cpu_count() or 1
    configs = [("1 replica, core 0", ["0"]), ("2 replicas, cores 0 and 1", ["0", "1"]),
               ("3 replicas on 2 cores (oversubscribed: 0, 1, 0)", ["0", "1", "0"])]
    if ncpu < 2:
        log(f"   only {ncpu} CPU: pinning skipped, all replicas share it")
    figures = []
    for label, cpus in configs:
        reps, lb = start_cluster(args, [f"scale{len(cpus)}_{i + 1}" for i in range(len(cpus))],
                                 cpus if ncpu >= 2 else None)
        try:
            lb.wait_up([f"r{i + 1}" for i in range(len(cpus))])
            jobs = []
            for k in range(args.scale_requests):
                path, body = requests[k % len(requests)]
                body = dict(body, max_tokens=args.scale_tokens, ignore_eos=True)
                jobs.append((k, path, body, False))
            # warm-up: one request per replica (page cache, first-touch), not timed
            run_load(lb.port, jobs[:len(cpus)], len(cpus))
            results, wall = run_load(lb.port, jobs, args.scale_concurrency)
        finally:
            lb.stop()
            for r in reps:
                r.stop()
        tokens = sum(r["tokens"] for r in results.values() if r["ok"])
        failed = sum(1 for r in results.values() if not r["ok"])
        for r in [r for r in results.values() if not r["ok"]][:3]:
            log(f"   failed: {r['reason']}")
        figures.append((label, tokens / wall, failed))
        log(f"   {label}: {tokens} tokens in {wall:.2f} s = {tokens / wall:.1f} tokens/s"
            f"{f' ({failed} failed)' if failed else ''}")
    base = figures[0][1]
    for label, rate, _ in figures:
        log(f"   {label}: {rate / base:.2f}x the single replica")
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--model-id", default=None)
    ap.add_argument("--haproxy-cfg", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--distinct", type=int, default=40)
    ap.add_argument("--term-at", type=int, default=60)
    ap.add_argument("--kill-at", type=int, default=150)
    ap.add_argument("--scale-requests", type=int, default=96)
    ap.add_argument("--scale-tokens", type=int, default=128)
    ap.add_argument("--scale-concurrency", type=int, default=12)
    ap.add_argument("--skip-scaling", action="store_true")
    args = ap.parse_args()
    if args.model_id is None:
        args.model_id = os.path.basename(args.model).removesuffix(".gguf")
    requests = distinct_requests(args.model_id, args.distinct, [16, 24, 32, 48, 64, 96])
    ref = reference(args, requests)
    ok = chaos(args, requests, ref)
    ok = sticky(args, requests) and ok
    if not args.skip_scaling:
        scaling(args, requests)
    log(f"scale test: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
