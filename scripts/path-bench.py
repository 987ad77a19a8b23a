#!/usr/bin/env python3
"""The request path against the bare ceiling (#11, point 3): S1 and S2, side by side.

usage: scripts/path-bench.py --bin target/release/starsongs --ceiling CEILING_SQLITE
                             [--against OTHER_STARSONGS] [--runs 3] [--duration 10]
                             [--artists 1000] [--profile SECS]

Starts the ceiling (`../shared/bench/ceiling`, on gen_data.py's file, POOL=8, SYNC=FULL)
and the service with its production stack, as `../shared/bench/perf_bar.py` does: the
production profile, a real bearer token, rate limiting on with budgets far above the
load, metrics, JSON access log to a file. Loads the same artists into both (the service
through its API), then runs `wrk -t2 -c64` alternately on the ceiling and the service for
S1 `GET /v1/artists/{id}` and S2 `GET /v1/artists?page=1&page_size=10`, `--runs` times,
and prints each run, then the medians of the ratios, of the service's p99 and of its CPU
time per request (from /proc, the warm-up included).

`--against BIN` starts a second service (another build) beside the first and measures
it in the same runs, right after the first: an A/B of two builds on the same ceiling.
The targets are checked for `--bin` only.

`--profile SECS` records the service under S1 load with `perf record` for that long
after the runs, with DWARF call graphs (WORKDIR/perf-s1.data; `perf report -i ...`).
Only ratios from one run mean anything on a shared machine. Exits 1 when a target
(ratio >= 0.75, p99 <= 15 ms) is missed.
"""
import argparse
import concurrent.futures as cf
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_BENCH = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "bench"))
TARGET_RATIO = 0.75
TARGET_P99_MS = 15.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None, timeout=10):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(url, proc, secs=60):
    end = time.time() + secs
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"not ready after {secs}s: {url}")


def parse_ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)", v)
    n, u = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60000}[u]


def wrk(url, token=None, duration=10, conns=64):
    args = ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    subprocess.run(args[:3] + ["-d2s"] + args[4:] + [url], capture_output=True, text=True)  # warm-up
    out = subprocess.run(args + [url], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = parse_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p99": p99, "non2xx": int(bad.group(1)) if bad else 0}


def cpu_secs(pid):
    """User plus system CPU seconds the process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_env(database_file, port, aport):
    """The production settings every measured service runs with: real bearer tokens,
    rate limiting on with budgets far above the load, metrics, JSON access log."""
    env = {**os.environ,
           "STARSONGS_ENV": "production",
           "STARSONGS__SERVER__HOST": "127.0.0.1", "STARSONGS__SERVER__PORT": str(port),
           "STARSONGS__ADMIN__HOST": "127.0.0.1", "STARSONGS__ADMIN__PORT": str(aport),
           "STARSONGS__DATABASE__URL": f"sqlite://{database_file}?mode=rwc",
           "STARSONGS__AUTH__JWT_SECRET": secrets.token_hex(32),
           "STARSONGS__CORS__ALLOWED_ORIGINS": "https://app.example",
           "STARSONGS__RATE_LIMIT__ENABLED": "true",
           "STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE": "100000000",
           "STARSONGS__RATE_LIMIT__BURST": "10000000",
           "STARSONGS__RATE_LIMIT__AUTH_REQUESTS_PER_MINUTE": "100000000",
           "STARSONGS__LOG__FORMAT": "json", "STARSONGS__LOG__LEVEL": "info"}
    env.pop("RUST_LOG", None)
    return env


def create_admin(binary, env):
    """Creates the admin `bench` through the CLI; returns its password."""
    pw = "path-bench-" + secrets.token_hex(8)
    cr = subprocess.run([binary, "user", "create", "--username", "bench", "--email",
                         "bench@example.com", "--role", "admin", "--password-stdin"],
                        input=pw + "\n", env=env, capture_output=True, text=True)
    if cr.returncode != 0:
        raise SystemExit("user create failed: " + (cr.stderr or cr.stdout)[-300:])
    return pw


def start_service(binary, workdir, tag, artists, procs):
    """Starts one service on its own database, loads the artists through its API and
    returns (process, base URL, token, id of the ceiling's artist 500 there)."""
    port, aport = free_port(), free_port()
    env = service_env(f"{workdir}/{tag}.db", port, aport)
    pw = create_admin(binary, env)
    log = open(f"{workdir}/{tag}.log", "w")
    sp = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    procs.append(sp)
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/health/ready", sp)
    st, body = http("POST", f"{base}/v1/auth/login", {"username": "bench", "password": pw})
    if st != 200:
        raise SystemExit(f"login failed: {st} {body[:200]!r}")
    token = json.loads(body)["access_token"]

    def post(name):
        for _ in range(3):
            st, b = http("POST", base + "/v1/artists", {"name": name}, token)
            if st == 201:
                return json.loads(b)["id"]
        raise RuntimeError(f"POST /v1/artists: {st} {b[:200]!r}")
    with cf.ThreadPoolExecutor(16) as ex:
        idmap = dict(zip((old for old, _ in artists), ex.map(post, (n for _, n in artists))))
    return sp, base, token, idmap[min(500, len(artists))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--ceiling", required=True)
    ap.add_argument("--against", help="a second service binary, measured in the same runs")
    ap.add_argument("--workdir", default="/tmp/path-bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--artists", type=int, default=1000)
    ap.add_argument("--profile", type=int, default=0, help="seconds of perf record under S1")
    a = ap.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    procs = []

    def stop_all(*_):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(1)))

    try:
        cdb = f"{a.workdir}/ceiling.db"
        subprocess.run([sys.executable, f"{SHARED_BENCH}/gen_data.py", "--sqlite", cdb,
                        "--artists", str(a.artists), "--songs", str(a.artists)],
                       check=True, capture_output=True)
        cport = free_port()
        cp = subprocess.Popen([a.ceiling], env={**os.environ, "BIND": f"127.0.0.1:{cport}",
                              "DB_PATH": cdb, "POOL": "8", "SYNC": "FULL"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(cp)
        cbase = f"http://127.0.0.1:{cport}"
        wait_ready(f"{cbase}/v1/artists/1", cp)

        src = sqlite3.connect(cdb)
        artists = src.execute("select id, name from Artist order by id").fetchall()
        services = [("service", a.bin)] + ([("against", a.against)] if a.against else [])
        started = {tag: start_service(b, a.workdir, tag, artists, procs) for tag, b in services}
        cid = min(500, a.artists)
        scenarios = [("S1", f"/v1/artists/{cid}", lambda sid: f"/v1/artists/{sid}"),
                     ("S2", "/v1/artists?page=1&page_size=10",
                      lambda _: "/v1/artists?page=1&page_size=10")]

        rows = []
        print("run scen  binary   ceiling rps  service rps  ratio  p99 ms (svc)  "
              "p99 ms (ceil)  CPU us/req  non2xx", flush=True)
        for run in range(1, a.runs + 1):
            for name, cpath, spath in scenarios:
                c = wrk(cbase + cpath, duration=a.duration)
                for tag, _ in services:
                    sp, base, token, sid = started[tag]
                    before = cpu_secs(sp.pid)
                    s = wrk(base + spath(sid), token=token, duration=a.duration)
                    # The warm-up's CPU is in the delta too; wrk counts only the timed part.
                    cpu_us = (cpu_secs(sp.pid) - before) * 1e6 / (s["rps"] * (a.duration + 2))
                    ratio = s["rps"] / c["rps"]
                    rows.append((tag, name, ratio, s["p99"], s["non2xx"], cpu_us))
                    print(f"{run:3} {name:4} {tag:8} {c['rps']:12.0f} {s['rps']:12.0f} "
                          f"{ratio:6.2f} {s['p99']:13.2f} {c['p99']:14.2f} {cpu_us:11.1f} "
                          f"{s['non2xx']:7d}", flush=True)

        if a.profile:
            sp, base, token, sid = started["service"]
            data = f"{a.workdir}/perf-s1.data"
            rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "--call-graph", "dwarf,16384",
                                    "-F", "999", "-p", str(sp.pid),
                                    "-o", data, "--", "sleep", str(a.profile)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wrk(base + scenarios[0][2](sid), token=token, duration=a.profile)
            rec.wait()
            print(f"profile of the service under S1: {data}")

        missed = []
        print("median of", a.runs, "runs:")
        for tag, _ in services:
            for name, _, _ in scenarios:
                mine = [r for r in rows if r[0] == tag and r[1] == name]
                ratios = [r[2] for r in mine]
                p99s = [r[3] for r in mine]
                cpus = [r[5] for r in mine]
                ratio, p99 = statistics.median(ratios), statistics.median(p99s)
                print(f"  {tag} {name}: ratio {ratio:.2f} "
                      f"(runs {', '.join(f'{r:.2f}' for r in ratios)}), "
                      f"p99 {p99:.2f} ms (runs {', '.join(f'{p:.2f}' for p in p99s)}), "
                      f"CPU {statistics.median(cpus):.1f} us/req")
                if tag != "service":
                    continue
                if ratio < TARGET_RATIO:
                    missed.append(f"{name} ratio {ratio:.2f} < {TARGET_RATIO}")
                if p99 > TARGET_P99_MS:
                    missed.append(f"{name} p99 {p99:.1f} ms > {TARGET_P99_MS:.0f} ms")
        if any(r[4] for r in rows):
            missed.append("non-2xx answers from a service")
        print("path-bench: " + ("all targets met" if not missed else "missed: " + "; ".join(missed)))
        return 1 if missed else 0
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
