#!/usr/bin/env python3
"""Instructions per request, counted by callgrind: repeatable for the same binary and
inputs whatever else the machine does, so small differences on the request path show
where wrk's throughput on a shared 2-core machine cannot (#22).

usage: scripts/request-instructions.py BIN S1|S2 [NAME=VALUE ...]

Starts `BIN serve` under `valgrind --tool=callgrind` with path-bench.py's production
settings (plus the NAME=VALUE environment variables given, e.g. an OTLP endpoint), signs
in, creates one artist, makes 200 warm-up requests, zeroes the counters, makes 1,000
sequential keep-alive requests (S1 `GET /v1/artists/{id}`, S2
`GET /v1/artists?page=1&page_size=10`), dumps the counters and prints the instructions per
request of every thread of the process (an exporter thread included).
"""
import glob
import importlib.util
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# The settings and the admin of scripts/path-bench.py, so both measure the same service.
_spec = importlib.util.spec_from_file_location(
    "path_bench", os.path.join(os.path.dirname(os.path.abspath(__file__)), "path-bench.py"))
path_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(path_bench)


def run(binary, n, path_kind, extra_env):
    work = tempfile.mkdtemp(prefix="request-instructions-")
    port, aport = path_bench.free_port(), path_bench.free_port()
    env = {**path_bench.service_env(f"{work}/db.db", port, aport), **extra_env}
    pw = path_bench.create_admin(binary, env)
    log = open(f"{work}/log", "w")
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.out",
                          "--dump-instr=no", binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5); c.request("GET", "/health/live"); c.getresponse().read(); break
        except Exception:
            time.sleep(0.2)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/v1/auth/login", json.dumps({"username": "bench", "password": pw}), {"Content-Type": "application/json"})
    tok = json.loads(c.getresponse().read())["access_token"]
    h = {"Authorization": f"Bearer {tok}"}
    c.request("POST", "/v1/artists", json.dumps({"name": "Bench"}), {**h, "Content-Type": "application/json"})
    aid = json.loads(c.getresponse().read())["id"]
    path = f"/v1/artists/{aid}" if path_kind == "S1" else "/v1/artists?page=1&page_size=10"
    # warm up
    for _ in range(200):
        c.request("GET", path, headers=h); r = c.getresponse(); r.read()
    subprocess.run(["callgrind_control", "--zero", str(p.pid)], capture_output=True)
    for _ in range(n):
        c.request("GET", path, headers=h); r = c.getresponse(); r.read(); assert r.status == 200
    subprocess.run(["callgrind_control", "--dump", str(p.pid)], capture_output=True)
    time.sleep(1)
    p.send_signal(signal.SIGTERM); p.wait()
    total = 0
    files = sorted(glob.glob(f"{work}/cg.out*"))
    # the dump after the requests: the first dump file with a number suffix
    dumps = [f for f in files if re.search(r"\.\d+$", f)]
    with open(dumps[0]) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    shutil.rmtree(work, ignore_errors=True)
    return total

binary, kind = sys.argv[1], sys.argv[2]
extra = dict(kv.split("=", 1) for kv in sys.argv[3:])
n = 1000
t = run(binary, n, kind, extra)
print(f"{os.path.basename(binary)} {kind} {extra}: {t/n:.0f} instructions/request ({t} for {n})")
