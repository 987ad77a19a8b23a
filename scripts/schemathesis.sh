#!/usr/bin/env bash
# Checks that the served OpenAPI document says what the service does (#13): runs the
# service on a throwaway database (SQLite, or PostgreSQL: #19), signs in an editor, and
# runs a bounded schemathesis run against /openapi.json with every check and all four
# phases (examples, coverage, fuzzing, stateful). Exits non-zero on any finding, and on
# any ERROR the service logs (a 5xx from a database that refused a value is one).
#
# Usage: scripts/schemathesis.sh [BINARY [ST_OPTION...]]
#   BINARY     the starsongs binary (default: $CARGO_TARGET_DIR or target, /debug/starsongs)
#   ST_OPTION  passed on to `st run` (for a narrower run by hand, such as
#              --include-operation-id list_users)
#   ST         the schemathesis CLI (default: st on PATH); .ci/run pins the version
#   ST_BACKEND sqlite (default) or postgres: a database created for the run and dropped
#              after it, on the server of ST_POSTGRES_URL
#   ST_POSTGRES_URL   an admin URL of that server (default: $STARSONGS_TEST_POSTGRES_URL,
#              else postgres://postgres@127.0.0.1:5432/test); needs psql
#   ST_ROLE    the role of the account the run signs in with (default: editor, as in CI;
#              admin reaches the admin operations, whose runs may end the account's session)
#   ST_MAX_EXAMPLES, ST_SEED   size and seed of the run (defaults: 100 and 1, about a
#              minute on 2 cores; the seed fixes the generated data)
# Settings the run depends on (what is checked, and every exception with its reason)
# live in scripts/schemathesis.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-target}/debug/starsongs}"
shift || true
role="${ST_ROLE:-editor}"
st="${ST:-st}"
backend="${ST_BACKEND:-sqlite}"
max_examples="${ST_MAX_EXAMPLES:-100}"
seed="${ST_SEED:-1}"
password="schemathesis editor passphrase"
dir="$(mktemp -d)"
pid=""
pg_admin=""
pg_database=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true; fi
  if [ -n "$pg_database" ]; then
    psql -X -q -d "$pg_admin" -c "drop database if exists \"$pg_database\" with (force)" \
      > /dev/null || echo "could not drop database $pg_database" >&2
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

case "$backend" in
  sqlite) database_url="sqlite://$dir/schemathesis.db?mode=rwc" ;;
  postgres)
    pg_admin="${ST_POSTGRES_URL:-${STARSONGS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}}"
    # A name of the run's own (lowercase: unquoted in the URL); the URL keeps the admin
    # URL's server, credentials and options, with this database instead of its path.
    name="starsongs_st_$$_$(date +%s)"
    psql -X -q -d "$pg_admin" -c "create database \"$name\"" > /dev/null
    pg_database="$name"
    query=""
    case "$pg_admin" in *\?*) query="?${pg_admin#*\?}" ;; esac
    database_url="${pg_admin%%\?*}"
    database_url="${database_url%/*}/$name$query"
    ;;
  *) echo "ST_BACKEND must be sqlite or postgres, not $backend" >&2; exit 2 ;;
esac
echo "schemathesis against the service on $backend"

# The test profile: cheap hashing and budgets no run can spend, so nothing is refused
# for reasons the document cannot know. Port 0: the address is read from the log.
export STARSONGS_ENV=test
export DATABASE_URL="$database_url"
export STARSONGS__AUTH__JWT_SECRET="schemathesis run secret, at least 32 bytes"
export STARSONGS__SERVER__PORT=0
export STARSONGS__ADMIN__PORT=0
export STARSONGS__LOG__FORMAT=json
export STARSONGS__LOG__LEVEL="warn,starsongs::cli=info"
unset RUST_LOG

"$bin" user create --username st-editor --email st-editor@example.com --role "$role" \
  --password-stdin <<< "$password" > /dev/null
"$bin" serve > "$dir/serve.log" 2>&1 &
pid=$!
address=""
for _ in $(seq 1 600); do
  address="$(sed -n 's/.*"address":"\([^"]*\)".*/\1/p' "$dir/serve.log" | head -1)"
  [ -n "$address" ] && break
  kill -0 "$pid" 2> /dev/null || { cat "$dir/serve.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$address" ] || { echo "the service did not start" >&2; cat "$dir/serve.log" >&2; exit 1; }
base="http://$address"

token="$(curl -sf -X POST "$base/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\": \"st-editor\", \"password\": \"$password\"}" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"

# One worker: the run is reproducible from its seed, and the machine has two cores.
status=0
"$st" --config-file scripts/schemathesis.toml run "$base/openapi.json" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --workers 1 \
  --generation-database none \
  --no-color \
  -H "Authorization: Bearer $token" \
  "$@" \
  || status=$?

if grep -q '"level":"ERROR"' "$dir/serve.log"; then
  echo "--- the service logged errors during the run:" >&2
  grep '"level":"ERROR"' "$dir/serve.log" | head -20 >&2
  status=1
fi
exit "$status"
