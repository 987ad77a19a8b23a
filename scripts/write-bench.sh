#!/usr/bin/env bash
# Writes under load and the WAL (#11): runs BIN in the production profile on a fresh
# SQLite file in DIR, posts artists with wrk (CONNS connections, SECS seconds), samples
# the database and WAL sizes every half second, then prints the WAL after the load,
# sqlite_wal_size_bytes and peak RSS. Needs wrk, curl, sqlite3, openssl, python3.
# usage: scripts/write-bench.sh BIN DIR   (env: CONNS=64 SECS=10 PATH_=/v1/artists)
set -euo pipefail
BIN=$1 D=$2 CONNS=${CONNS:-64} SECS=${SECS:-10}
P=$((20000 + RANDOM % 20000))
rm -rf "$D" && mkdir -p "$D"
export STARSONGS_ENV=production STARSONGS__SERVER__HOST=127.0.0.1 STARSONGS__SERVER__PORT=$P \
  STARSONGS__ADMIN__HOST=127.0.0.1 STARSONGS__ADMIN__PORT=$((P + 1)) \
  STARSONGS__DATABASE__URL="sqlite://$D/service.db?mode=rwc" \
  STARSONGS__AUTH__JWT_SECRET="$(openssl rand -hex 32)" \
  STARSONGS__CORS__ALLOWED_ORIGINS=https://app.example STARSONGS__RATE_LIMIT__ENABLED=true \
  STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE=100000000 STARSONGS__RATE_LIMIT__BURST=10000000 \
  STARSONGS__RATE_LIMIT__AUTH_REQUESTS_PER_MINUTE=100000000 \
  STARSONGS__LOG__FORMAT=json STARSONGS__LOG__LEVEL=info
PASSWORD="write-bench-$(openssl rand -hex 8)"
echo "$PASSWORD" | "$BIN" user create --username bench --email bench@example.com \
  --role admin --password-stdin > /dev/null
"$BIN" serve > "$D/service.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$P/health/ready" > /dev/null && break; sleep 0.2; done
TOKEN=$(curl -s -X POST -H 'content-type: application/json' \
  -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" "http://127.0.0.1:$P/v1/auth/login" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "'{\"name\": \"Bench Artist\"}'" > "$D/post.lua"
size() { stat -c %s "$1" 2> /dev/null || echo 0; }
(for i in $(seq $((SECS * 2 + 10))); do
  sleep 0.5
  echo "t=${i} db=$(size "$D/service.db") wal=$(size "$D/service.db-wal")"
done) &
SAMPLER=$!
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" -s "$D/post.lua" \
  "http://127.0.0.1:$P/v1/artists" | grep -E "Requests/sec|Non-2xx|99%"
wait $SAMPLER
echo "after the load: db=$(size "$D/service.db") wal=$(size "$D/service.db-wal")"
curl -s "http://127.0.0.1:$((P + 1))/metrics" | grep -E "^sqlite_wal_size_bytes" || true
grep VmHWM "/proc/$PID/status"
