#!/usr/bin/env python3
"""PostgreSQL next to SQLite: the same release binary on both backends, one run (#9).

usage: backend-bench.py --bin target/release/starsongs [--pg-url postgres://postgres@127.0.0.1:5432]
                        [--artists 10000] [--songs 200000] [--rounds 3] [--duration 10]
                        [--workdir /tmp/backend-bench] [--keep-db] [--json results.json]

Starts two instances side by side with the production profile and the same settings (pool
size: the default database.max_connections), one on a fresh SQLite file, one on a fresh
PostgreSQL database (created here, dropped at the end unless --keep-db). Loads the same
deterministic rows (gen_data.py's generator, seed 42) into both through the HTTP API with
16 concurrent clients, one backend after the other. Then runs each scenario with
wrk -t2 -c64 --latency, rounds alternating the backends (and which goes first):
  S1  GET /v1/artists/{id}                      S2  GET /v1/artists?page=1&page_size=10
  S3p GET /v1/songs?page=5000&page_size=20      S3c GET /v1/songs?page_size=20&cursor=C
  S4  POST /v1/artists (JSON body; SQLite at its default synchronous=FULL)
C is the next_cursor of the page-mode response at page=5000 (depth 100,000); it is checked
against a cursor walk of 1,000 pages of 100. S4 runs last so that the artists it adds do
not change the read scenarios, and both services are restarted before it (fresh pools;
--no-restart to skip): requests cancelled when wrk stops can leave pooled PostgreSQL
connections inside a read-only transaction, and writes on those fail. After every
PostgreSQL run the service's sessions left idle in a transaction are counted. Prints a table of medians over the rounds, peak RSS (VmHWM)
of each service and the PostgreSQL database size after the load.

Python standard library only (plus the wrk and psql/createdb/dropdb binaries).
"""
import argparse
import concurrent.futures as cf
import datetime
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import threading
import time
import urllib.parse

# --- deterministic data: the generator of gen_data.py (same seed, same rows) -------------

FIRST = ["Nova", "Stellar", "Cosmic", "Lunar", "Solar", "Astro", "Orbit", "Comet", "Nebula",
         "Quasar", "Pulsar", "Galaxy", "Meteor", "Eclipse", "Zenith", "Aurora", "Photon",
         "Vortex", "Gravity", "Horizon", "Ion", "Radiant", "Velvet", "Crimson", "Silver",
         "Electric", "Midnight", "Golden", "Neon", "Echo", "Static", "Hollow", "Wild",
         "Northern", "Distant", "Silent", "Broken", "Burning", "Frozen", "Secret"]
SECOND = ["Riders", "Dreamers", "Drifters", "Pilots", "Explorers", "Voyagers", "Satellites",
          "Kings", "Queens", "Ghosts", "Wolves", "Hearts", "Machines", "Signals", "Rockets",
          "Travelers", "Orchestra", "Collective", "Band", "Project", "Society", "Club",
          "Brothers", "Sisters", "Children", "Lights", "Waves", "Circuit", "Engines", "Choir"]
GIVEN = ["David", "Elton", "Freddie", "Kate", "Jimi", "Joni", "Stevie", "Janis", "Prince",
         "Bjork", "Tom", "Patti", "Neil", "Grace", "Lou", "Iggy", "Marvin", "Aretha", "Nina",
         "Carole", "Ziggy", "Roxy", "Brian", "Syd", "Annie", "Debbie", "Robert", "Sade"]
FAMILY = ["Starfield", "Moonwalker", "Skylark", "Orion", "Vega", "Sirius", "Andromeda",
          "Cassini", "Kepler", "Hubble", "Galilei", "Halley", "Sagan", "Armstrong", "Gagarin",
          "Tereshkova", "Aldrin", "Ride", "Jemison", "Leavitt", "Herschel", "Brahe", "Lovell"]
TITLE_A = ["Space", "Star", "Moon", "Sun", "Rocket", "Planet", "Satellite", "Comet", "Cosmic",
           "Interstellar", "Galactic", "Orbital", "Lunar", "Solar", "Astral", "Celestial",
           "Dark", "Blue", "Red", "Silver", "Final", "First", "Last", "Lonely", "Electric"]
TITLE_B = ["Oddity", "Man", "Dust", "Child", "Girl", "Boy", "Dance", "Dream", "Journey",
           "Voyage", "Love", "Song", "Blues", "Highway", "Station", "Odyssey", "Light",
           "Shadow", "Machine", "Signal", "Frontier", "Horizon", "Gravity", "Eclipse", "Rain"]
TITLE_C = ["", "", "", " (Live)", " (Remastered)", " Part II", " Reprise", " in the Sky",
           " of the Night", " Across the Universe", " on Mars", " to the Stars"]
URL_CHARS = string.ascii_letters + string.digits + "-_"
DATE_LO = datetime.date(1950, 1, 1).toordinal()
DATE_HI = datetime.date(2024, 12, 31).toordinal()


def gen_rows(n_artists, n_songs, seed=42):
    rng = random.Random(seed)
    artists = []
    for i in range(1, n_artists + 1):
        if rng.random() < 0.6:
            name = f"The {rng.choice(FIRST)} {rng.choice(SECOND)}"
        else:
            name = f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}"
        if rng.random() < 0.3:
            name += f" {rng.randint(1, 999)}"
        artists.append((i, name[:64]))
    songs = []
    for i in range(1, n_songs + 1):
        title = f"{rng.choice(TITLE_A)} {rng.choice(TITLE_B)}{rng.choice(TITLE_C)}"
        if rng.random() < 0.2:
            title += f" #{rng.randint(2, 99)}"
        artist = rng.randint(1, n_artists)
        released = datetime.date.fromordinal(rng.randint(DATE_LO, DATE_HI)).isoformat()
        url = "https://www.youtube.com/watch?v=" + "".join(rng.choice(URL_CHARS) for _ in range(11))
        distance = round(rng.uniform(1.0, 1e13), 1)
        songs.append((i, title[:64], artist, released, url, distance))
    return artists, songs


# --- small helpers ------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive HTTP/1.1 connection per thread."""

    def __init__(self, port):
        self.port = port
        self.local = threading.local()

    def request(self, method, path, body=None, token=None, timeout=30):
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in range(2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
                self.local.conn = conn
            try:
                conn.request(method, path, body=data, headers=headers)
                r = conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def wait_ready(client, proc, secs=90):
    end = time.time() + secs
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            st, _ = client.request("GET", "/health/ready", timeout=2)
            if st == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"not ready after {secs}s on port {client.port}")


def parse_ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    n, u = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60000}[u]


def wrk(url, token, post=None, duration=10, conns=64, workdir="/tmp"):
    args = ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "10s",
            "-H", f"Authorization: Bearer {token}"]
    if post is not None:
        lua = f"{workdir}/post.lua"
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = \'%s\'\n'
                    'wrk.headers["Content-Type"] = "application/json"\n' % json.dumps(post))
        args += ["-s", lua]
    warm = [x if not x.startswith("-d") else "-d2s" for x in args]
    subprocess.run(warm + [url], capture_output=True, text=True, timeout=duration + 60)
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p99 = parse_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
        p50 = parse_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    except AttributeError:
        raise SystemExit("cannot parse wrk output:\n" + out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": int(bad.group(1)) if bad else 0,
            "sock_errors": sum(int(x) for x in sock.groups()) if sock else 0}


def rss_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def psql(admin_url, db, sql):
    url = f"{admin_url.rstrip('/')}/{db}"
    return subprocess.run(["psql", url, "-Atc", sql], capture_output=True, text=True,
                          check=True).stdout.strip()


# --- one service instance -----------------------------------------------------------------

class Service:
    def __init__(self, name, binary, db_url, workdir):
        self.name = name
        self.port, aport = free_port(), free_port()
        self.env = {**os.environ,
                    "STARSONGS_ENV": "production",
                    "STARSONGS__SERVER__HOST": "127.0.0.1", "STARSONGS__SERVER__PORT": str(self.port),
                    "STARSONGS__SERVER__SHUTDOWN_DELAY_SECS": "0",
                    "STARSONGS__ADMIN__HOST": "127.0.0.1", "STARSONGS__ADMIN__PORT": str(aport),
                    "STARSONGS__DATABASE__URL": db_url,
                    "STARSONGS__AUTH__JWT_SECRET": secrets.token_hex(32),
                    "STARSONGS__CORS__ALLOWED_ORIGINS": "https://app.example",
                    "STARSONGS__RATE_LIMIT__ENABLED": "true",
                    "STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE": "100000000",
                    "STARSONGS__RATE_LIMIT__BURST": "10000000",
                    "STARSONGS__RATE_LIMIT__AUTH_REQUESTS_PER_MINUTE": "100000000",
                    "STARSONGS__RATE_LIMIT__AUTH_BURST": "10000000",
                    "STARSONGS__LOG__FORMAT": "json", "STARSONGS__LOG__LEVEL": "info"}
        for k in ("DATABASE_URL", "STARSONGS__DATABASE__MAX_CONNECTIONS"):
            self.env.pop(k, None)
        self.binary = binary
        self.log_path = f"{workdir}/{name}.log"
        self.client = Client(self.port)
        self.proc = None
        self.password = "bench-" + secrets.token_hex(8)
        self.token, self.token_at = None, 0.0

    def start(self):
        cr = subprocess.run([self.binary, "user", "create", "--username", "bench", "--email",
                             "bench@example.com", "--role", "admin", "--password-stdin"],
                            input=self.password + "\n", env=self.env, capture_output=True, text=True)
        if cr.returncode != 0:
            raise SystemExit(f"{self.name}: user create failed: " + (cr.stderr or cr.stdout)[-400:])
        self.serve()

    def serve(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary, "serve"], env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_ready(self.client, self.proc)
        self.login()

    def login(self):
        st, body = self.client.request("POST", "/v1/auth/login",
                                       {"username": "bench", "password": self.password})
        if st != 200:
            raise SystemExit(f"{self.name}: login failed: {st} {body[:200]!r}")
        self.token, self.token_at = json.loads(body)["access_token"], time.time()

    def fresh_token(self):
        if time.time() - self.token_at > 300:  # access tokens live 15 minutes
            self.login()
        return self.token

    def get_json(self, path):
        st, body = self.client.request("GET", path, token=self.fresh_token())
        if st != 200:
            raise SystemExit(f"{self.name}: GET {path}: {st} {body[:300]!r}")
        return json.loads(body)

    def restart(self):
        self.stop()
        self.serve()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def load(svc, artists, songs, threads):
    """Posts every row through the API; returns (seconds, old artist id -> new id, stats)."""
    token = svc.fresh_token()
    stats = {"retries": 0, "5xx": 0, "other_non201": 0}
    lock = threading.Lock()

    def post(path, payload):
        for _ in range(5):
            try:
                st, b = svc.client.request("POST", path, payload, token)
            except OSError:
                st, b = 0, b""
            if st == 201:
                return json.loads(b)["id"]
            with lock:
                stats["retries"] += 1
                stats["5xx" if st >= 500 else "other_non201"] += 1
            time.sleep(0.05)
        raise SystemExit(f"{svc.name}: {path}: {st} {b[:300]!r}")

    t0 = time.time()
    with cf.ThreadPoolExecutor(threads) as ex:
        new_ids = list(ex.map(lambda r: post("/v1/artists", {"name": r[1]}), artists))
        idmap = {old: new for (old, _), new in zip(artists, new_ids)}
        t_artists = time.time() - t0

        def song_payload(r):
            _, title, aid, rel, url, dist = r
            return {"title": title, "artist_id": idmap[aid], "release_date": rel, "url": url,
                    "distance": dist}
        list(ex.map(lambda r: post("/v1/songs", song_payload(r)), songs))
    total = time.time() - t0
    stats.update(artists_s=t_artists, songs_s=total - t_artists)
    return total, idmap, stats


def deep_cursor(svc, depth_items):
    """The page-mode next_cursor at page=depth/20, checked against a walk by cursor."""
    page_no = depth_items // 20
    pm = svc.get_json(f"/v1/songs?page={page_no}&page_size=20")
    cursor = pm["pagination"]["next_cursor"]
    if not cursor:
        raise SystemExit(f"{svc.name}: no next_cursor at page {page_no}")
    after_pm = svc.get_json(f"/v1/songs?page_size=20&cursor={urllib.parse.quote(cursor)}")
    nxt = svc.get_json(f"/v1/songs?page={page_no + 1}&page_size=20")
    problems = []
    if [s["id"] for s in after_pm["items"]] != [s["id"] for s in nxt["items"]]:
        problems.append(f"cursor from page {page_no} does not lead to page {page_no + 1}")
    # walk 100 at a time to the same depth
    c, seen = None, 0
    while seen < depth_items:
        q = f"page_size=100&cursor={urllib.parse.quote(c)}" if c else "page_size=100"
        page = svc.get_json(f"/v1/songs?{q}")
        seen += len(page["items"])
        c = page["pagination"]["next_cursor"]
        if not c:
            raise SystemExit(f"{svc.name}: cursor walk ended early at {seen}")
    walked = svc.get_json(f"/v1/songs?page_size=20&cursor={urllib.parse.quote(c)}")
    if [s["id"] for s in walked["items"]] != [s["id"] for s in nxt["items"]]:
        problems.append(f"cursor walk to depth {depth_items} differs from page {page_no + 1}")
    return cursor, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432",
                    help="server URL without a database; a fresh database is created on it")
    ap.add_argument("--workdir", default="/tmp/backend-bench")
    ap.add_argument("--artists", type=int, default=10000)
    ap.add_argument("--songs", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--threads", type=int, default=16, help="concurrent clients while loading")
    ap.add_argument("--keep-db", action="store_true", help="keep the PostgreSQL database")
    ap.add_argument("--restart-after-load", action="store_true",
                    help="restart both services after the load (SQLite checkpoints its WAL on a clean stop)")
    ap.add_argument("--no-restart", action="store_true",
                    help="do not restart the services (fresh pools) before the write scenario")
    ap.add_argument("--json", help="also write all results to this file")
    a = ap.parse_args()
    if a.songs < 100020:
        depth = (a.songs // 2 // 100) * 100
        print(f"note: {a.songs} songs: S3 depth {depth} items instead of 100,000", file=sys.stderr)
    else:
        depth = 100000
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    binary = os.path.abspath(a.bin)

    db = "starsongs_bench_" + secrets.token_hex(4)
    subprocess.run(["psql", f"{a.pg_url}/postgres", "-qAtc", f"create database {db}"], check=True)
    services = {"sqlite": Service("sqlite", binary, f"sqlite://{a.workdir}/bench.db?mode=rwc",
                                  a.workdir),
                "postgres": Service("postgres", binary, f"{a.pg_url}/{db}", a.workdir)}

    def cleanup(*_):
        for s in services.values():
            s.stop()
        if not a.keep_db:
            subprocess.run(["psql", f"{a.pg_url}/postgres", "-qAtc",
                            f"drop database if exists {db} with (force)"], capture_output=True)
    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(1)))
    out = {"artists": a.artists, "songs": a.songs, "rounds": a.rounds, "duration": a.duration,
           "pg_database": db, "load": {}, "runs": {}, "problems": []}
    try:
        for s in services.values():
            s.start()
        artists, songs = gen_rows(a.artists, a.songs)
        idmaps = {}
        wal_path, wal_max, sampling = f"{a.workdir}/bench.db-wal", [0], threading.Event()

        def sample_wal():
            while not sampling.is_set():
                try:
                    wal_max[0] = max(wal_max[0], os.path.getsize(wal_path))
                except OSError:
                    pass
                time.sleep(0.5)
        threading.Thread(target=sample_wal, daemon=True).start()
        for name, s in services.items():
            secs, idmaps[name], st = load(s, artists, songs, a.threads)
            rows = len(artists) + len(songs)
            out["load"][name] = {"seconds": secs, "rows_per_s": rows / secs, **st}
            print(f"loaded {name}: {rows} rows in {secs:.0f} s ({rows / secs:.0f} rows/s; "
                  f"retries {st['retries']}, 5xx {st['5xx']})", flush=True)
        out["pg_size_bytes"] = int(psql(a.pg_url, db, "select pg_database_size(current_database())"))
        sampling.set()
        out["sqlite_db_bytes"] = os.path.getsize(f"{a.workdir}/bench.db")
        out["sqlite_wal_max_bytes"] = wal_max[0]
        rss = {n: 0.0 for n in services}
        if a.restart_after_load:
            # A clean stop checkpoints SQLite's WAL into the file and removes it.
            for n, s in services.items():
                rss[n] = max(rss[n], rss_hwm_kib(s.proc.pid) / 1024)
                s.restart()
                s.login()
            out["sqlite_db_bytes_after_restart"] = os.path.getsize(f"{a.workdir}/bench.db")

        # The same logical data on both: totals and the artist of a song.
        for name, s in services.items():
            ta = s.get_json("/v1/artists?page_size=1")["pagination"]["total_items"]
            ts = s.get_json("/v1/songs?page_size=1")["pagination"]["total_items"]
            if (ta, ts) != (a.artists, a.songs):
                out["problems"].append(f"{name}: totals {ta} artists, {ts} songs")

        # Both backends must answer the same data the same way (ids may differ: the load is
        # concurrent). Sort keys and search totals are compared.
        checks = [("/v1/songs?sort=title&page={p}&page_size=20", "title"),
                  ("/v1/songs?sort=-release_date&page={p}&page_size=20", "release_date"),
                  ("/v1/songs?sort=distance&page={p}&page_size=20", "distance"),
                  ("/v1/artists?sort=name&page={p}&page_size=20", "name")]
        for tmpl, field in checks:
            for p in (1, 50):
                vals = {n: [x[field] for x in s.get_json(tmpl.format(p=p))["items"]]
                        for n, s in services.items()}
                if vals["sqlite"] != vals["postgres"]:
                    out["problems"].append(f"{tmpl.format(p=p)}: {field} differs between backends: "
                                           f"sqlite {vals['sqlite'][:3]} postgres {vals['postgres'][:3]}")
        for q in ("/v1/songs?q=star&page_size=1", "/v1/songs?q=%23&page_size=1",
                  "/v1/artists?q=the&page_size=1", "/v1/songs?released_from=2000-01-01&page_size=1"):
            tot = {n: s.get_json(q)["pagination"]["total_items"] for n, s in services.items()}
            if tot["sqlite"] != tot["postgres"]:
                out["problems"].append(f"{q}: total_items sqlite {tot['sqlite']} postgres {tot['postgres']}")

        s1_old = 1234 if a.artists >= 1234 else 1
        cursors = {}
        for name, s in services.items():
            cursors[name], probs = deep_cursor(s, depth)
            out["problems"] += [f"{name}: {p}" for p in probs]
        page_no = depth // 20
        scenarios = [
            ("S1", lambda n: f"/v1/artists/{idmaps[n][s1_old]}", None),
            ("S2", lambda n: "/v1/artists?page=1&page_size=10", None),
            ("S3p", lambda n: f"/v1/songs?page={page_no}&page_size=20", None),
            ("S3c", lambda n: f"/v1/songs?page_size=20&cursor={urllib.parse.quote(cursors[n])}", None),
            ("S4", lambda n: "/v1/artists", {"name": "Bench Artist"}),
        ]
        stuck_sql = ("select count(*) from pg_stat_activity where application_name = 'starsongs' "
                     f"and datname = '{db}' and state like 'idle in transaction%'")
        for scen, path, body in scenarios:
            if body is not None and not a.no_restart:
                # Cancelled requests can leave pooled PostgreSQL connections inside a read-only
                # transaction (see BENCHMARKS.md); writes on them fail. Fresh pools for the
                # write scenario, on both backends alike.
                for n, s in services.items():
                    rss[n] = max(rss[n], rss_hwm_kib(s.proc.pid) / 1024)
                    s.restart()
                    s.login()
            out["runs"][scen] = {n: [] for n in services}
            for r in range(a.rounds):
                order = ["sqlite", "postgres"] if r % 2 == 0 else ["postgres", "sqlite"]
                for n in order:
                    s = services[n]
                    res = wrk(f"http://127.0.0.1:{s.port}{path(n)}", s.fresh_token(), post=body,
                              duration=a.duration, workdir=a.workdir)
                    if n == "postgres":
                        time.sleep(0.5)
                        res["pg_idle_in_tx"] = int(psql(a.pg_url, db, stuck_sql))
                    out["runs"][scen][n].append(res)
                    print(f"  {scen} round {r + 1} {n:8} {res['rps']:8.0f} req/s  p99 {res['p99']:7.1f} ms"
                          f"  non2xx {res['non2xx']}  sockerr {res['sock_errors']}"
                          + (f"  idle-in-tx sessions after {res['pg_idle_in_tx']}" if n == "postgres" else ""),
                          flush=True)
        for name, s in services.items():
            out.setdefault("rss_mib", {})[name] = max(rss[name], rss_hwm_kib(s.proc.pid) / 1024)
        for name, s in services.items():
            s.stop()
            with open(s.log_path) as f:
                lines = f.readlines()
            errors = [l for l in lines if '"level":"ERROR"' in l]
            warns = [l for l in lines if '"level":"WARN"' in l]
            out.setdefault("log", {})[name] = {"error_lines": len(errors), "warn_lines": len(warns),
                                               "first_error": errors[0][:400] if errors else None}

        print()
        print(f"data: {a.artists} artists, {a.songs} songs; S3 depth {depth} items; "
              f"{a.rounds} rounds x {a.duration} s, wrk -t2 -c64")
        for name, l in out["load"].items():
            print(f"load {name:8}: {l['seconds']:6.0f} s, {l['rows_per_s']:6.0f} rows/s "
                  f"(artists {l['artists_s']:.0f} s, songs {l['songs_s']:.0f} s; "
                  f"retries {l['retries']}, 5xx {l['5xx']})")
        print(f"PostgreSQL database after load: {out['pg_size_bytes'] / 2**20:.0f} MiB; "
              f"SQLite file {out['sqlite_db_bytes'] / 2**20:.0f} MiB, "
              f"largest WAL during the load {out['sqlite_wal_max_bytes'] / 2**20:.0f} MiB"
              + (f"; file after restart {out['sqlite_db_bytes_after_restart'] / 2**20:.0f} MiB"
                 if a.restart_after_load else ""))
        print(f"peak RSS (VmHWM): sqlite {out['rss_mib']['sqlite']:.0f} MiB, "
              f"postgres service {out['rss_mib']['postgres']:.0f} MiB")
        print()
        print("| scenario | SQLite req/s | PostgreSQL req/s | PG/SQLite | SQLite p99 ms | PostgreSQL p99 ms | non-2xx |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for scen, by in out["runs"].items():
            med = {n: (statistics.median(x["rps"] for x in v), statistics.median(x["p99"] for x in v))
                   for n, v in by.items()}
            bad = sum(x["non2xx"] + x["sock_errors"] for v in by.values() for x in v)
            print(f"| {scen} | {med['sqlite'][0]:,.0f} | {med['postgres'][0]:,.0f} | "
                  f"{med['postgres'][0] / med['sqlite'][0]:.2f} | {med['sqlite'][1]:.1f} | "
                  f"{med['postgres'][1]:.1f} | {bad} |")
        for name, l in out["log"].items():
            print(f"log {name}: {l['error_lines']} ERROR, {l['warn_lines']} WARN lines"
                  + (f"; first: {l['first_error']}" if l["first_error"] else ""))
        stuck = [x["pg_idle_in_tx"] for v in out["runs"].values() for x in v["postgres"]]
        print(f"PostgreSQL sessions idle in transaction after a wrk run: max {max(stuck)}, "
              f"in {sum(1 for x in stuck if x)} of {len(stuck)} runs")
        for p in out["problems"]:
            print("PROBLEM:", p)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
        return 1 if out["problems"] else 0
    finally:
        cleanup()
        if a.keep_db:
            print(f"kept PostgreSQL database {db}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
