#!/usr/bin/env bash
# Measures the cost of POST /v1/auth/login over loopback with the production Argon2id
# parameters (m=19456 KiB, t=2, p=1): a correct password, a wrong password and an unknown
# user, interleaved, N rounds each. Prints medians and p90 in milliseconds.
#
# Usage: scripts/login-cost.sh [rounds]   (builds the release binary first)
set -euo pipefail
rounds="${1:-40}"
cargo build --release -q
bin="$PWD/target/release/starsongs"
dir="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
export STARSONGS_ENV=development DATABASE_URL="sqlite://$dir/bench.db?mode=rwc"
export STARSONGS__AUTH__CREATE_DEV_ADMIN=false STARSONGS__DATABASE__SEED_DEMO_DATA=false
export STARSONGS__LOG__LEVEL=warn STARSONGS__SERVER__PORT=18123
export STARSONGS__AUTH__JWT_SECRET="benchmark secret, at least 32 bytes long"
password="benchmark passphrase 1"
for i in $(seq 1 "$rounds"); do
  printf '%s\n' "$password" | "$bin" user create --username "user$i" \
    --email "user$i@example.com" --role viewer --password-stdin > /dev/null
done
"$bin" serve > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:18123/health/live" > /dev/null && break
  sleep 0.1
done
python3 - "$rounds" "$password" <<'PY'
import json, statistics, sys, time, urllib.request, urllib.error

rounds, password = int(sys.argv[1]), sys.argv[2]
url = "http://127.0.0.1:18123/v1/auth/login"

def login(username, secret):
    body = json.dumps({"username": username, "password": secret}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        status = urllib.request.urlopen(request).status
    except urllib.error.HTTPError as error:
        status = error.code
    return (time.perf_counter() - started) * 1000, status

times = {"correct password": [], "wrong password": [], "unknown user": []}
for i in range(1, rounds + 1):
    # One wrong attempt per user: far from the 5-failure lockout.
    for kind, (name, secret, expected) in {
        "correct password": (f"user{i}", password, 200),
        "wrong password": (f"user{(i % rounds) + 1}", "not the password!", 401),
        "unknown user": (f"nobody{i}", password, 401),
    }.items():
        ms, status = login(name, secret)
        assert status == expected, (kind, status)
        times[kind].append(ms)
for kind, values in times.items():
    values.sort()
    p90 = values[int(len(values) * 0.9) - 1]
    print(f"{kind:17} median {statistics.median(values):6.1f} ms   p90 {p90:6.1f} ms   (n={len(values)})")
PY
