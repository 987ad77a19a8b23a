#!/usr/bin/env bash
# End-to-end proof of a database an operator names (#20): on a fresh, empty database it
# applies the migrations, creates an admin, runs `starsongs serve` with production
# settings on loopback, drives the HTTP contract (API.md) with curl and jq, and prints one
# PASS or FAIL row per check. The same script serves SQLite, PostgreSQL, SQL Server and
# Azure SQL: everything it knows of the database is what the binary does with the URL.
#
# Usage: scripts/smoke.sh [--down] DATABASE_URL [STARSONGS_BINARY]
#   DATABASE_URL  what database.url accepts: sqlite://…?mode=rwc, postgres://…, mssql://…
#                 or an ADO.NET string; `-` reads it as one line from standard input,
#                 which keeps it off this script's command line (`ps` shows that)
#   STARSONGS_BINARY  default: $CARGO_TARGET_DIR (or target/)/release/starsongs if it
#                 exists, else …/debug/starsongs; the script never builds
#   --down        at the end, pass or fail, run `starsongs migrate down --to 0` on a
#                 database found fresh: it drops every table the run created, leaving
#                 only the (empty) migration bookkeeping table
#
# Exit codes: 0 every check passed; 1 a check failed, or the run could not go on (the
# database did not answer, the service did not start); 2 refused: a database that is not
# fresh (see below), bad arguments, a configuration the binary refuses (its exit 2), or a
# missing tool or binary.
#
# Fresh means: `starsongs migrate status` lists every migration as pending (this service
# never migrated the database, or a `--down` run reverted it), and right after
# `migrate up` the catalog holds no artist and no song. The second check catches a
# SQL Server database made by the original system, whose dbo.Artist and dbo.Song the
# first migration adopts with their rows; it reads them through a service started with
# public reads before anything is written, and then stops (exit 2) without reverting,
# since reverting would drop the adopted rows.
#
# Secrets: the database URL reaches the binary only through its environment and is never
# printed (error text is scrubbed of it and of its password); passwords and tokens go to
# curl and to the binary through standard input or files in a private temporary folder,
# never on a command line. Needs bash, curl and jq.
set -euo pipefail

usage() {
  echo "usage: scripts/smoke.sh [--down] DATABASE_URL [STARSONGS_BINARY]" >&2
  exit 2
}

down=false
args=()
for arg in "$@"; do
  case "$arg" in
    --down) down=true ;;
    -h | --help) usage ;;
    *) args+=("$arg") ;;
  esac
done
[ "${#args[@]}" -ge 1 ] && [ "${#args[@]}" -le 2 ] || usage
db_url="${args[0]}"
if [ "$db_url" = "-" ]; then
  IFS= read -r db_url || true
fi
[ -n "$db_url" ] || { echo "smoke: the database URL is empty" >&2; exit 2; }

repo="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
if [ "${#args[@]}" -eq 2 ]; then
  bin="${args[1]}"
elif [ -x "$target/release/starsongs" ]; then
  bin="$target/release/starsongs"
else
  bin="$target/debug/starsongs"
fi
[ -x "$bin" ] || {
  echo "smoke: no starsongs binary at $bin; build one (cargo build --release) or name it" >&2
  exit 2
}
for tool in curl jq; do
  command -v "$tool" > /dev/null || { echo "smoke: $tool is required" >&2; exit 2; }
done

case "$db_url" in
  sqlite:*) backend=sqlite ;;
  postgres://* | postgresql://*) backend=postgres ;;
  mssql://*) backend=mssql ;;
  *=*) backend="SQL Server (ADO.NET string)" ;;
  *) backend="unknown" ;;
esac

# The password inside the URL, as written and percent-decoded, so that error text can be
# scrubbed of it even where a driver quotes it.
db_password=""
case "$db_url" in
  *://*@*)
    userinfo="${db_url#*://}"
    userinfo="${userinfo%%@*}"
    case "$userinfo" in *:*) db_password="${userinfo#*:}" ;; esac
    ;;
  *=*)
    db_password="$(printf '%s\n' "$db_url" | tr ';' '\n' | awk '
      { key = tolower($0); sub(/=.*/, "", key); gsub(/[ \t]/, "", key) }
      key == "password" || key == "pwd" {
        sub(/^[^=]*=[ \t]*/, ""); sub(/[ \t]*$/, ""); gsub(/^["'\'']|["'\'']$/, ""); print; exit
      }')"
    ;;
esac
db_password_decoded="$(printf '%b' "${db_password//%/\\x}")"

umask 077
dir="$(mktemp -d "${TMPDIR:-/tmp}/starsongs-smoke.XXXXXX")"
pid=""
# Set by the script's own exits (finish, refuse); any other exit is a failure of the script
# itself, and must not look like a refusal (2).
deliberate_exit=false
# shellcheck disable=SC2329 # run by the EXIT trap (shellcheck 0.11 misses it when the script calls exit)
cleanup() {
  local rc=$?
  if [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null; then
    kill -TERM "$pid" 2> /dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2> /dev/null || true
    { wait "$pid"; } 2> /dev/null || true
  fi
  rm -rf "$dir"
  if [ "$deliberate_exit" = false ] && [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ]; then
    echo "smoke: stopped by an unexpected failure (exit $rc): a bug in scripts/smoke.sh" >&2
    exit 1
  fi
}
trap cleanup EXIT

# The binary sees only what is set here: the operator's own STARSONGS_* and DATABASE_URL*
# variables (a production environment, say) would change what is being proved.
while IFS= read -r name; do
  case "$name" in STARSONGS* | DATABASE_URL*) unset "$name" ;; esac
done < <(compgen -e)
unset RUST_LOG
random() { head -c "$1" /dev/urandom | base64 | tr -d '\n/+='; }
jwt_secret="$(random 48)"
admin_password="$(random 24)"
viewer_password="$(random 24)"
# The production profile (validation on, JSON logs, demo data and dev admin off), on
# loopback only. Changed from production: ports picked by the OS (the `listening` log line
# names them), no shutdown delay (no load balancer to drain), budgets a scripted run cannot
# spend (the in-memory limiter still runs and sends its headers), and request heads up to
# 64 KiB so that the long If-Match list reaches the store instead of the 431 for the head.
export STARSONGS_ENV=production
export STARSONGS__SERVER__HOST=127.0.0.1
export STARSONGS__SERVER__PORT=0
export STARSONGS__ADMIN__HOST=127.0.0.1
export STARSONGS__ADMIN__PORT=0
export STARSONGS__SERVER__SHUTDOWN_DELAY_SECS=0
export STARSONGS__SERVER__MAX_HEADER_BYTES=65536
export STARSONGS__RATE_LIMIT__BACKEND=memory
export STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE=60000
export STARSONGS__RATE_LIMIT__BURST=1000
export STARSONGS__RATE_LIMIT__AUTH_REQUESTS_PER_MINUTE=60000
export STARSONGS__RATE_LIMIT__AUTH_BURST=1000
export STARSONGS__LOG__FORMAT=json
export STARSONGS__LOG__LEVEL=info

# run_bin ARG...: the binary with the two secrets in its environment only.
run_bin() {
  STARSONGS__DATABASE__URL="$db_url" STARSONGS__AUTH__JWT_SECRET="$jwt_secret" "$bin" "$@"
}

# redact: copies standard input, with the URL, its password and any token replaced.
# A password under 4 characters is not scrubbed on its own: it would mangle every word.
redact() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line//"$db_url"/***}"
    [ "${#db_password}" -lt 4 ] || line="${line//"$db_password"/***}"
    [ "${#db_password_decoded}" -lt 4 ] || line="${line//"$db_password_decoded"/***}"
    printf '%s\n' "$line"
  done | sed -E 's/("(access_token|refresh_token|key|password)" *: *")[^"]*/\1…/g'
}

# The binary's reason for failing: the `error` field of its last JSON log line (stderr).
bin_error() {
  local reason
  reason="$(jq -Rr 'fromjson? | .fields.error // .error // empty' "$1" 2> /dev/null | tail -1)" || true
  [ -n "$reason" ] || reason="$(tr '\n' ' ' < "$1")"
  printf '%s' "$reason" | redact | cut -c1-300
}

passed=0
failed=0
# row PASS|FAIL NAME [DETAIL]
row() {
  if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  if [ -n "${3-}" ]; then
    printf '%-4s  %s  (%s)\n' "$1" "$2" "$3"
  else
    printf '%-4s  %s\n' "$1" "$2"
  fi
}

summary() {
  echo "$passed passed, $failed failed"
}

# --- HTTP ------------------------------------------------------------------------------
base=""
status=""
# req_as TYPE WHO METHOD PATH [BODY [CURL_ARG...]]: one request. WHO is `anon` or the
# name of a header file made by `sign_in`; BODY (sent as TYPE) goes through standard
# input. Sets $status; the body is in $dir/body and the headers in $dir/headers.
req_as() {
  local type="$1" who="$2" method="$3" path="$4" body="${5-}"
  shift 4
  [ $# -eq 0 ] || shift
  local curl_args=(--noproxy '*' --silent --max-time 35 -o "$dir/body" -D "$dir/headers"
    -w '%{http_code}' -X "$method")
  [ "$who" = anon ] || curl_args+=(-H "@$dir/auth-$who")
  [ -z "$body" ] || curl_args+=(-H "Content-Type: $type" --data-binary @-)
  : > "$dir/body"
  : > "$dir/headers"
  status="$(printf '%s' "$body" | curl "${curl_args[@]}" "$@" "$base$path")" || status="${status:-000}"
}
req() { req_as application/json "$@"; }

# header NAME: the last response's header NAME (last one if repeated).
header() {
  local name
  name="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')"
  awk -v name="$name" '
    { sub(/\r$/, "") }
    tolower(substr($0, 1, length(name) + 1)) == name ":" { v = substr($0, length(name) + 2); sub(/^[ \t]+/, "", v) }
    END { print v }' "$dir/headers"
}

# field JQ_FILTER: a value from the last response's body (empty if absent or not JSON).
field() {
  jq -r "$1 // empty" "$dir/body" 2> /dev/null || true
}

# excerpt: the last response, short, for a FAIL row.
excerpt() {
  local text
  text="$(tr '\n' ' ' < "$dir/body" | redact | cut -c1-160)"
  printf 'status %s: %s' "$status" "${text:-<empty body>}"
}

is() { if "$@"; then echo true; else echo false; fi; }

# expect NAME STATUS [JQ_PREDICATE [SHELL_BOOL]]: PASS when the last response has STATUS,
# its body satisfies the jq predicate and SHELL_BOOL is `true` (computed with `is`).
last_ok=true
expect() {
  local name="$1" want="$2" predicate="${3-}" also="${4-true}"
  last_ok=false
  if [ "$status" = "$want" ] && [ "$also" = true ] \
    && { [ -z "$predicate" ] || jq -e "$predicate" "$dir/body" > /dev/null 2>&1; }; then
    last_ok=true
    row PASS "$name"
  elif [ "$status" = "$want" ]; then
    row FAIL "$name" "$(excerpt); the body or a header is not as expected"
  else
    row FAIL "$name" "$(excerpt); expected $want"
  fi
}

# must: stops the run when the check just made failed (later checks would depend on it).
must() {
  if [ "$last_ok" != true ]; then
    finish "the run cannot go on without it"
  fi
}

# bearer NAME TOKEN: the header file `req` sends for NAME.
bearer() {
  printf 'Authorization: Bearer %s\n' "$2" > "$dir/auth-$1"
}

# sign_in NAME USERNAME PASSWORD: logs in (the password travels on curl's standard input),
# keeps the access token as NAME's header file and the refresh token in $refresh.
refresh=""
sign_in() {
  req anon POST /v1/auth/login "{\"username\": \"$2\", \"password\": \"$3\"}"
  bearer "$1" "$(field .access_token)"
  refresh="$(field .refresh_token)"
}

# --- the service -------------------------------------------------------------------------
admin_base=""
# start_server LOG: runs `serve` in the background and waits (bounded) for /health/ready.
start_server() {
  local log="$1" address="" admin_address=""
  # Made here, not by the background redirection, which may come after the first poll.
  : > "$log"
  STARSONGS__DATABASE__URL="$db_url" STARSONGS__AUTH__JWT_SECRET="$jwt_secret" \
    "$bin" serve > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    address="$(jq -Rr 'fromjson? | (.fields // .) | select(.message == "listening") | .address' "$log" | head -1)" || true
    [ -z "$address" ] || break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  if [ -z "$address" ]; then
    row FAIL "serve starts and logs its addresses" "$(bin_error "$log")"
    finish "the service did not start"
  fi
  admin_address="$(jq -Rr 'fromjson? | (.fields // .) | select(.message == "listening") | .admin_address' "$log" | head -1)" || true
  base="http://$address"
  admin_base="http://$admin_address"
  for _ in $(seq 1 300); do
    status="$(curl --noproxy '*' --silent --max-time 2 -o "$dir/body" -w '%{http_code}' "$base/health/ready")" || true
    [ "$status" != 200 ] || break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.2
  done
}

# stop_server: SIGTERM, then waits (bounded) for the exit; sets $server_exit.
server_exit=""
stop_server() {
  kill -TERM "$pid" 2> /dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  local rc=0 timed_out=false
  if kill -0 "$pid" 2> /dev/null; then
    timed_out=true
    kill -KILL "$pid" 2> /dev/null || true
  fi
  wait "$pid" 2> /dev/null || rc=$?
  server_exit="$rc"
  [ "$timed_out" = false ] || server_exit="none within 30 s, killed"
  pid=""
}

fresh=false
migrations=0
# finish [REASON]: stops the service, reverts with --down, prints the summary and exits.
finish() {
  if [ -n "${1-}" ]; then echo "smoke: stopped early: $1" >&2; fi
  if [ -n "$pid" ]; then stop_server; fi
  if [ "$down" = true ] && [ "$fresh" = true ]; then
    if run_bin migrate down --to 0 > "$dir/down.out" 2> "$dir/down.err"; then
      local reverted
      reverted="$(grep -c '^reverted ' "$dir/down.out" || true)"
      if [ "$reverted" = "$migrations" ]; then
        row PASS "migrate down --to 0 reverted all $migrations migrations"
      else
        row FAIL "migrate down --to 0 reverted all $migrations migrations" "reverted $reverted"
      fi
    else
      row FAIL "migrate down --to 0" "$(bin_error "$dir/down.err")"
    fi
  fi
  if [ -s "$dir/serve.log" ] && [ "$failed" -gt 0 ]; then
    echo "--- the service's warnings and errors (at most 20 lines):" >&2
    grep -E '"level":"(WARN|ERROR)"' "$dir/serve.log" | head -20 | redact >&2 || true
  fi
  summary
  deliberate_exit=true
  [ "$failed" -eq 0 ] && exit 0
  exit 1
}

# refuse REASON: exit 2 without touching the database further.
refuse() {
  [ -z "$pid" ] || stop_server
  echo "smoke: refused: $1" >&2
  echo "smoke: point it at a new, empty database made for the run" \
    "(docs/operations/mssql.md, \"Proving a SQL Server or Azure SQL database\")" >&2
  deliberate_exit=true
  exit 2
}

# --- 1. schema ---------------------------------------------------------------------------
echo "smoke: $("$bin" --version), database: $backend (URL not shown)"

status_exit=0
run_bin migrate status > "$dir/status.out" 2> "$dir/status.err" || status_exit=$?
if [ "$status_exit" -eq 2 ]; then
  # The binary's exit 2: invalid configuration (docs/configuration.md, "Validation").
  echo "smoke: the binary refused the configuration: $(bin_error "$dir/status.err")" >&2
  deliberate_exit=true
  exit 2
elif [ "$status_exit" -ne 0 ]; then
  row FAIL "migrate status (the database answers)" "$(bin_error "$dir/status.err")"
  finish "cannot read the migration status"
fi
migrations="$(grep -cE '^[0-9]{4} ' "$dir/status.out" || true)"
applied="$(grep -cE '^[0-9]{4} +applied' "$dir/status.out" || true)"
if [ "$migrations" = 0 ]; then
  row FAIL "migrate status lists the migrations" "$(tr '\n' ' ' < "$dir/status.out" | cut -c1-160)"
  finish "cannot tell whether the database is fresh"
elif [ "$applied" != 0 ]; then
  refuse "this database has $applied of $migrations migrations applied: it is in use, not fresh"
fi
row PASS "migrate status: all $migrations migrations pending (fresh database)"

if run_bin migrate up > "$dir/up.out" 2> "$dir/up.err"; then
  count="$(grep -cE '^applied [0-9]{4}$' "$dir/up.out" || true)"
  if [ "$count" = "$migrations" ]; then
    row PASS "migrate up applied all $migrations migrations"
  else
    row FAIL "migrate up applied all $migrations migrations" "applied $count: $(tr '\n' ' ' < "$dir/up.out")"
  fi
else
  row FAIL "migrate up" "$(bin_error "$dir/up.err")"
  finish "the migrations failed"
fi
run_bin migrate status > "$dir/status.out" 2> "$dir/status.err" || true
applied="$(grep -cE '^[0-9]{4} +applied' "$dir/status.out" || true)"
if [ "$applied" = "$migrations" ]; then
  row PASS "migrate status: all $migrations applied"
else
  row FAIL "migrate status: all $migrations applied" "$applied applied"
fi

# Rows adopted by the first migration (the original system's SQL Server tables) are seen
# before the run writes anything: public reads, no account needed.
STARSONGS__AUTH__PUBLIC_READ=true STARSONGS__DATABASE__MIGRATE_ON_START=false \
  start_server "$dir/guard.log"
req anon GET "/v1/artists?page_size=1"
artists="$(field .pagination.total_items)"
req anon GET "/v1/songs?page_size=1"
songs="$(field .pagination.total_items)"
stop_server
if [ "$artists" != 0 ] || [ "$songs" != 0 ]; then
  fresh=false
  [ -n "$artists" ] && [ -n "$songs" ] || {
    row FAIL "the catalog is empty after migrating" "$(excerpt)"
    finish "cannot read the catalog"
  }
  refuse "the catalog holds $artists artists and $songs songs (adopted from existing tables); nothing was written, and the migrations are left applied"
fi
fresh=true
row PASS "the catalog is empty after migrating (nothing adopted)"

if printf '%s\n' "$admin_password" | run_bin user create --username smoke-admin \
  --email smoke-admin@starsongs.invalid --role admin --password-stdin \
  > "$dir/user.out" 2> "$dir/user.err" && grep -q 'role admin' "$dir/user.out"; then
  row PASS "user create --role admin --password-stdin"
else
  row FAIL "user create --role admin --password-stdin" "$(bin_error "$dir/user.err")"
  finish "no admin account"
fi

# --- 2. the service ------------------------------------------------------------------------
start_server "$dir/serve.log"
expect "serve: /health/ready is 200 \"ready\", database up" 200 \
  '.status == "ready" and .checks.database.status == "up"'
must
status="$(curl --noproxy '*' --silent --max-time 5 -o "$dir/body" -w '%{http_code}' "$admin_base/metrics")" || true
expect "admin listener: GET /metrics (Prometheus text)" 200 '' \
  "$(is grep -q '^http_requests_total' "$dir/body")"
req anon GET /metrics
expect "public listener: no /metrics (404)" 404

req anon GET /v1/artists "" -H 'X-Request-ID: smoke-anonymous-1'
expect "anonymous GET /v1/artists: 401 problem+json, request id echoed" 401 '.status == 401' \
  "$(is [ "$(header x-request-id)" = smoke-anonymous-1 ])"

# --- 3. sign-in ------------------------------------------------------------------------------
req anon POST /v1/auth/login '{"username": "smoke-admin", "password": "not the password"}'
expect "login with a wrong password: 401" 401
sign_in admin smoke-admin "$admin_password"
expect "login: 200 token pair, Bearer, Cache-Control: no-store" 200 \
  '(.access_token | length > 0) and (.refresh_token | length > 0) and .token_type == "Bearer" and .expires_in > 0' \
  "$(is [ "$(header cache-control)" = no-store ])"
must
req admin GET /v1/auth/me
expect "GET /v1/auth/me: the admin" 200 '.username == "smoke-admin" and .role == "admin"'
must
req admin GET /v1/artists
expect "/v1 responses carry RateLimit-* and X-RateLimit-* headers" 200 '' \
  "$(is [ -n "$(header ratelimit-limit)" ] && [ -n "$(header ratelimit-remaining)" ] \
    && [ -n "$(header x-ratelimit-limit)" ])"
expect "security headers: nosniff, DENY, no-referrer, a CSP" 200 '' \
  "$(is [ "$(header x-content-type-options)" = nosniff ] && [ "$(header x-frame-options)" = DENY ] \
    && [ "$(header referrer-policy)" = no-referrer ] && [ -n "$(header content-security-policy)" ])"

# --- 4. catalog: create, list, cursor -------------------------------------------------------
artist_ids=()
for n in 1 2 3 4 5; do
  req admin POST /v1/artists "{\"name\": \"Smoke Artist $n\"}"
  if [ "$status" = 201 ] && [ -n "$(header location)" ] && [ -n "$(header etag)" ]; then
    artist_ids+=("$(field .id)")
  else
    break
  fi
done
expect "POST /v1/artists x5: 201 with Location and ETag" 201 '' \
  "$(is [ "${#artist_ids[@]}" -eq 5 ])"
must
a1="${artist_ids[0]}"
a2="${artist_ids[1]}"
a3="${artist_ids[2]}"

song_ids=()
for n in 1 2 3; do
  req admin POST /v1/songs "{\"title\": \"Smoke Song $n\", \"artist_id\": $a1, \"release_date\": \"1969-07-1$n\", \"url\": \"https://example.com/song/$n\", \"distance\": 238900.5}"
  [ "$status" = 201 ] || break
  song_ids+=("$(field .id)")
done
expect "POST /v1/songs x3 (artist, date, url, distance): 201" 201 \
  ".artist_id == $a1 and .distance == 238900.5 and .release_date == \"1969-07-13\"" \
  "$(is [ "${#song_ids[@]}" -eq 3 ])"
must
req admin POST /v1/songs '{"title": "Smoke Orphan", "artist_id": 2147483647}'
expect "POST /v1/songs with a missing artist: 404" 404 '.detail == "Artist with id 2147483647 not found"'

# Cursor pagination: page_size 2 over the 5 artists, following next_cursor.
listed=()
path="/v1/artists?page_size=2"
pages=0
cursor_page_ok=true
while [ "$pages" -lt 10 ]; do
  req admin GET "$path"
  [ "$status" = 200 ] || break
  pages=$((pages + 1))
  while IFS= read -r id; do listed+=("$id"); done < <(jq -r '.items[].id' "$dir/body")
  if [ "$pages" -gt 1 ] && [ "$(jq -r '.pagination.page == null and .pagination.has_prev == true' "$dir/body")" != true ]; then
    cursor_page_ok=false
  fi
  [ "$(field .pagination.has_next)" = true ] || break
  next="$(jq -r '.pagination.next_cursor // empty | @uri' "$dir/body")" || true
  [ -n "$next" ] || { cursor_page_ok=false; break; }
  path="/v1/artists?page_size=2&cursor=$next"
done
sorted="$(printf '%s\n' "${listed[@]}" | sort -n -u | tr '\n' ' ')"
expected="$(printf '%s\n' "${artist_ids[@]}" | sort -n | tr '\n' ' ')"
expect "GET /v1/artists?page_size=2, following next_cursor: 3 pages, 5 ids, ascending, no duplicates" 200 '' \
  "$(is [ "$pages" -eq 3 ] && [ "${listed[*]} " = "$expected" ] && [ "$sorted" = "$expected" ] && [ "$cursor_page_ok" = true ])"
req admin GET "/v1/songs?artist_id=$a1&include=artist&sort=-release_date"
expect "GET /v1/songs?artist_id&include=artist&sort=-release_date" 200 \
  ".pagination.total_items == 3 and .items[0].title == \"Smoke Song 3\" and .items[0].artist.name == \"Smoke Artist 1\""

# --- 5. ETag, If-None-Match, If-Match --------------------------------------------------------
req admin GET "/v1/artists/$a2"
etag="$(header etag)"
expect "GET /v1/artists/{id}: 200 with a strong ETag" 200 ".id == $a2" \
  "$(is [ "${etag:0:1}" = '"' ])"
req admin GET "/v1/artists/$a2" "" -H "If-None-Match: $etag"
expect "GET with If-None-Match: the current tag gives 304" 304
req admin PUT "/v1/artists/$a2" '{"name": "Smoke Artist 2 (replaced)"}' -H "If-Match: $etag"
put_etag="$(header etag)"
expect "PUT with a matching If-Match: 200, new ETag" 200 '.name == "Smoke Artist 2 (replaced)"' \
  "$(is [ -n "$put_etag" ] && [ "$put_etag" != "$etag" ])"
req admin PUT "/v1/artists/$a2" '{"name": "Smoke Artist 2 (stale)"}' -H "If-Match: $etag"
expect "PUT with a stale If-Match: 412" 412
req_as application/merge-patch+json admin PATCH "/v1/artists/$a2" '{"name": "Smoke Artist 2 (patched)"}' \
  -H "If-Match: $put_etag"
patch_etag="$(header etag)"
expect "PATCH (merge-patch+json) with a matching If-Match: 200" 200 '.name == "Smoke Artist 2 (patched)"'
req admin PATCH "/v1/artists/$a2" '{"name": "Smoke Artist 2 (stale)"}' -H "If-Match: $put_etag"
expect "PATCH with a stale If-Match: 412" 412
req admin GET "/v1/artists/$a2"
expect "after the 412s nothing changed" 200 '.name == "Smoke Artist 2 (patched)"' \
  "$(is [ "$(header etag)" = "$patch_etag" ])"

# If-Match with 3,000 tags, all of this resource, older than its version: a store that
# binds one parameter per tag meets its limits here (SQL Server takes 2,100 parameters
# per statement). long_if_match ID ETAG writes two header files: the stale tags alone,
# and the stale tags followed by ETAG (the current one).
long_if_match() {
  local tags="" v
  for v in $(seq 1000 3999); do tags+="\"$1.$v\","; done
  printf 'If-Match: %s\n' "${tags%,}" > "$dir/if-match-stale"
  printf 'If-Match: %s%s\n' "$tags" "$2" > "$dir/if-match-current"
}
long_if_match "$a2" "$patch_etag"
req admin PUT "/v1/artists/$a2" '{"name": "Smoke Artist 2 (long stale)"}' -H "@$dir/if-match-stale"
expect "PUT with 3,000 stale If-Match tags: 412" 412
req admin PUT "/v1/artists/$a2" '{"name": "Smoke Artist 2 (long put)"}' -H "@$dir/if-match-current"
expect "PUT with 3,000 If-Match tags, the current one last: 200" 200 '.name == "Smoke Artist 2 (long put)"'
long_if_match "$a2" "$(header etag)"
req admin PATCH "/v1/artists/$a2" '{"name": "Smoke Artist 2 (long stale)"}' -H "@$dir/if-match-stale"
expect "PATCH with 3,000 stale If-Match tags: 412" 412
req admin PATCH "/v1/artists/$a2" '{"name": "Smoke Artist 2 (long patch)"}' -H "@$dir/if-match-current"
expect "PATCH with 3,000 If-Match tags, the current one last: 200" 200 '.name == "Smoke Artist 2 (long patch)"'
req admin POST /v1/songs '{"title": "Smoke Song Long"}'
long_song="$(field .id)"
long_if_match "${long_song:-0}" "$(header etag)"
req admin PUT "/v1/songs/${long_song:-0}" '{"title": "Smoke Song Long (stale)"}' -H "@$dir/if-match-stale"
expect "song PUT with 3,000 stale If-Match tags: 412" 412
req admin DELETE "/v1/songs/${long_song:-0}" "" -H "@$dir/if-match-stale"
expect "song DELETE with 3,000 stale If-Match tags: 412" 412
req admin DELETE "/v1/songs/${long_song:-0}" "" -H "@$dir/if-match-current"
expect "song DELETE with 3,000 If-Match tags, the current one last: 204" 204

# --- 6. Idempotency-Key -------------------------------------------------------------------
key="smoke-$(random 12)"
song_body="{\"title\": \"Smoke Idempotent\", \"artist_id\": $a3}"
req admin POST /v1/songs "$song_body" -H "Idempotency-Key: $key"
first_id="$(field .id)"
first_body="$(cat "$dir/body")"
expect "POST /v1/songs with an Idempotency-Key: 201" 201 '.title == "Smoke Idempotent"'
req admin POST /v1/songs "$song_body" -H "Idempotency-Key: $key"
expect "the same POST again: 201 replayed (Idempotent-Replayed: true), same id and body" 201 \
  ".id == ${first_id:-0}" \
  "$(is [ "$(header idempotent-replayed)" = true ] && [ "$(cat "$dir/body")" = "$first_body" ])"
req admin GET "/v1/artists/$a3/songs"
expect "... and created nothing (one song for that artist)" 200 '.pagination.total_items == 1'
req admin POST /v1/songs "{\"title\": \"Smoke Other\", \"artist_id\": $a3}" -H "Idempotency-Key: $key"
expect "the same key with another body: 422" 422

# --- 7. delete, cascade -------------------------------------------------------------------
req admin DELETE "/v1/artists/$a1"
expect "DELETE an artist with songs: 409" 409
req admin GET "/v1/artists/$a1/songs"
expect "... and its 3 songs are still there" 200 '.pagination.total_items == 3'
req admin DELETE "/v1/artists/$a1?cascade=true"
expect "DELETE ?cascade=true (admin): 204" 204
gone=0
for id in "${song_ids[@]}"; do
  req admin GET "/v1/songs/$id"
  [ "$status" != 404 ] || gone=$((gone + 1))
done
req admin GET "/v1/artists/$a1"
expect "... the artist and its 3 songs are gone (404)" 404 '' "$(is [ "$gone" -eq 3 ])"

# --- 8. a viewer -----------------------------------------------------------------------------
req admin POST /v1/admin/users \
  "{\"username\": \"smoke-viewer\", \"email\": \"smoke-viewer@starsongs.invalid\", \"password\": \"$viewer_password\", \"role\": \"viewer\"}"
expect "POST /v1/admin/users (role viewer): 201" 201 '.username == "smoke-viewer" and .role == "viewer"'
req admin GET /v1/admin/users
expect "GET /v1/admin/users: the admin and the viewer" 200 '.pagination.total_items == 2'
sign_in viewer smoke-viewer "$viewer_password"
expect "viewer login: 200" 200
must
viewer_refresh="$refresh"
req viewer GET "/v1/artists/$a2"
expect "viewer GET /v1/artists/{id}: 200" 200
req viewer POST /v1/artists '{"name": "Smoke Viewer Write"}'
expect "viewer POST /v1/artists: 403" 403
req viewer PATCH "/v1/artists/$a2" '{"name": "Smoke Viewer Write"}'
expect "viewer PATCH /v1/artists/{id}: 403" 403
req viewer GET /v1/admin/users
expect "viewer GET /v1/admin/users: 403" 403

# --- 9. refresh rotation, reuse, logout --------------------------------------------------------
req anon POST /v1/auth/refresh "{\"refresh_token\": \"$viewer_refresh\"}"
new_refresh="$(field .refresh_token)"
bearer viewer2 "$(field .access_token)"
expect "refresh: 200, a new pair, Cache-Control: no-store" 200 '(.access_token | length > 0)' \
  "$(is [ -n "$new_refresh" ] && [ "$new_refresh" != "$viewer_refresh" ] \
    && [ "$(header cache-control)" = no-store ])"
req viewer2 GET /v1/auth/me
expect "the new access token works" 200 '.username == "smoke-viewer"'
req anon POST /v1/auth/refresh "{\"refresh_token\": \"$viewer_refresh\"}"
expect "the spent refresh token again: 401" 401
req anon POST /v1/auth/refresh "{\"refresh_token\": \"$new_refresh\"}"
expect "... which ends its family: the newer refresh token is 401 too" 401
req viewer2 GET /v1/auth/me
expect "... and so is that login's access token" 401

sign_in admin2 smoke-admin "$admin_password"
expect "a second admin login: 200" 200
admin2_refresh="$refresh"
req anon POST /v1/auth/logout "{\"refresh_token\": \"$admin2_refresh\"}"
expect "logout: 204" 204
req anon POST /v1/auth/refresh "{\"refresh_token\": \"$admin2_refresh\"}"
expect "refresh after logout: 401" 401
req admin2 GET /v1/auth/me
expect "the logged-out login's access token: 401" 401
req admin GET /v1/auth/me
expect "the first admin login is untouched: 200" 200

# --- 10. shutdown --------------------------------------------------------------------------
stop_server
if [ "$server_exit" = 0 ]; then
  row PASS "serve stops on SIGTERM with exit 0"
else
  row FAIL "serve stops on SIGTERM with exit 0" "exit $server_exit"
fi
errors="$(grep -c '"level":"ERROR"' "$dir/serve.log" || true)"
if [ "$errors" = 0 ]; then
  row PASS "the service logged no errors"
else
  row FAIL "the service logged no errors" "$errors ERROR lines"
fi
finish
