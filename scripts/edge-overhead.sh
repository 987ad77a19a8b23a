#!/usr/bin/env bash
# What the layers added by #4 and #5 (client IP, security headers, metrics, Sentry hub,
# load shedding, rate limiting) cost per request: the same authenticated
# GET /v1/songs/1 against three servers, in alternating rounds, on one machine.
#
#   before   a release build from before those layers (pass its binary)
#   memory   this build, rate limiting in process (budget large enough never to refuse)
#   redis    this build, rate limiting in Redis at 127.0.0.1:6379
#
# Usage: scripts/edge-overhead.sh BEFORE_BINARY [rounds] [seconds]
# Prints requests/s and p99 per round, then the medians.
set -euo pipefail
before="$1"
rounds="${2:-5}"
seconds="${3:-5}"
after="$PWD/target/release/starsongs"
dir="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"' EXIT

start() { # name binary port extra-env...
  local name="$1" bin="$2" port="$3"
  shift 3
  env STARSONGS_ENV=development DATABASE_URL="sqlite://$dir/$name.db?mode=rwc" \
    STARSONGS__SERVER__PORT="$port" STARSONGS__AUTH__CREATE_DEV_ADMIN=false \
    STARSONGS__AUTH__JWT_SECRET="benchmark secret, at least 32 bytes long" \
    STARSONGS__LOG__FORMAT=json STARSONGS__LOG__LEVEL=info "$@" \
    "$bin" user create --username bench --email bench@example.com --role viewer \
    --password-stdin <<< "benchmark passphrase" > /dev/null
  env STARSONGS_ENV=development DATABASE_URL="sqlite://$dir/$name.db?mode=rwc" \
    STARSONGS__SERVER__PORT="$port" STARSONGS__AUTH__CREATE_DEV_ADMIN=false \
    STARSONGS__AUTH__JWT_SECRET="benchmark secret, at least 32 bytes long" \
    STARSONGS__LOG__FORMAT=json STARSONGS__LOG__LEVEL=info "$@" \
    "$bin" serve > "$dir/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health/live" > /dev/null && break
    sleep 0.1
  done
}

unlimited=(STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE=1000000000 STARSONGS__RATE_LIMIT__BURST=1000000000)
start before "$before" 18201
start memory "$after" 18202 STARSONGS__ADMIN__PORT=19202 "${unlimited[@]}"
start redis "$after" 18203 STARSONGS__ADMIN__PORT=19203 "${unlimited[@]}" \
  STARSONGS__RATE_LIMIT__BACKEND=redis STARSONGS__RATE_LIMIT__REDIS_URL=redis://127.0.0.1:6379 \
  STARSONGS__RATE_LIMIT__REDIS_KEY_PREFIX="bench:$$:"

token() {
  curl -s -X POST "http://127.0.0.1:$1/v1/auth/login" -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"benchmark passphrase"}' |
    sed -E 's/.*"access_token":"([^"]+)".*/\1/'
}

declare -A rps p99
for round in $(seq 1 "$rounds"); do
  for entry in before:18201 memory:18202 redis:18203; do
    name="${entry%%:*}" port="${entry##*:}"
    out="$(wrk -t2 -c32 -d"${seconds}s" --latency -H "Authorization: Bearer $(token "$port")" \
      "http://127.0.0.1:$port/v1/songs/1")"
    r="$(awk '/Requests\/sec/ {print $2}' <<< "$out")"
    p="$(awk '$1 == "99%" {print $2}' <<< "$out")"
    echo "round $round  $name  $r req/s  p99 $p"
    rps[$name]+="$r "
    p99[$name]+="$p "
  done
done
echo "--- medians over $rounds rounds"
for name in before memory redis; do
  median="$(tr ' ' '\n' <<< "${rps[$name]}" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
  echo "$name  $median req/s  (p99 per round: ${p99[$name]})"
done
