#!/usr/bin/env bash
# Checks that the served OpenAPI document says what the service does (#13): runs the
# service on a throwaway SQLite database, signs in an editor, and runs a bounded
# schemathesis run against /openapi.json with every check and all four phases
# (examples, coverage, fuzzing, stateful). Exits non-zero on any finding.
#
# Usage: scripts/schemathesis.sh [BINARY]
#   BINARY     the starsongs binary (default: $CARGO_TARGET_DIR or target, /debug/starsongs)
#   ST         the schemathesis CLI (default: st on PATH); .ci/run pins the version
#   ST_MAX_EXAMPLES, ST_SEED   size and seed of the run (defaults: 100 and 1, about a
#              minute on 2 cores; the seed fixes the generated data)
# Settings the run depends on (what is checked, and every exception with its reason)
# live in scripts/schemathesis.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-target}/debug/starsongs}"
st="${ST:-st}"
max_examples="${ST_MAX_EXAMPLES:-100}"
seed="${ST_SEED:-1}"
password="schemathesis editor passphrase"
dir="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

# The test profile: cheap hashing and budgets no run can spend, so nothing is refused
# for reasons the document cannot know. Port 0: the address is read from the log.
export STARSONGS_ENV=test
export DATABASE_URL="sqlite://$dir/schemathesis.db?mode=rwc"
export STARSONGS__AUTH__JWT_SECRET="schemathesis run secret, at least 32 bytes"
export STARSONGS__SERVER__PORT=0
export STARSONGS__ADMIN__PORT=0
export STARSONGS__LOG__FORMAT=json
export STARSONGS__LOG__LEVEL="warn,starsongs::cli=info"
unset RUST_LOG

"$bin" user create --username st-editor --email st-editor@example.com --role editor \
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
  || status=$?

if grep -q '"level":"ERROR"' "$dir/serve.log"; then
  echo "--- the service logged errors during the run:" >&2
  grep '"level":"ERROR"' "$dir/serve.log" | head -20 >&2
  status=1
fi
exit "$status"
