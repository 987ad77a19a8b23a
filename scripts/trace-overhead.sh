#!/usr/bin/env bash
# What tracing (#22) costs on the request path, with the repo's path benchmark
# (scripts/path-bench.py: S1 GET /v1/artists/{id}, S2 GET /v1/artists?page=1&page_size=10,
# wrk -t2 -c64, against the ceiling), in two A/Bs, each side by side in the same runs:
#
#   1. export off: this build (NEW) against a build without tracing (OLD);
#   2. export on, every trace sampled: NEW exporting to scripts/otlp-sink.py (a local
#      OTLP/HTTP receiver that counts what it gets) against NEW with export off.
#
# Usage: scripts/trace-overhead.sh NEW_BIN OLD_BIN CEILING_BIN [runs] [seconds]
# (release builds; CEILING_BIN: `cargo build --release --example ceiling`).
set -euo pipefail
new="$(realpath "$1")"
old="$(realpath "$2")"
ceiling="$(realpath "$3")"
runs="${4:-3}"
seconds="${5:-10}"
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(mktemp -d)"
sink_pid=""
trap '[[ -n "$sink_pid" ]] && kill "$sink_pid" 2>/dev/null; rm -rf "$dir"' EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 "$here/otlp-sink.py" "$port" "$dir/sink.stats" &
sink_pid=$!

# NEW with export on, as a second binary path-bench can start.
cat > "$dir/starsongs-exporting" << EOF
#!/bin/sh
export STARSONGS__TRACING_EXPORT__OTLP_ENDPOINT=http://127.0.0.1:$port
export STARSONGS__TRACING_EXPORT__SAMPLE_RATIO=1.0
exec "$new" "\$@"
EOF
chmod +x "$dir/starsongs-exporting"

echo "=== 1. export off: service = NEW, against = OLD (no tracing)"
python3 "$here/path-bench.py" --bin "$new" --against "$old" --ceiling "$ceiling" \
  --runs "$runs" --duration "$seconds" --workdir "$dir/off" || true

echo "=== 2. export on at 100 %: service = NEW (export off), against = NEW exporting"
python3 "$here/path-bench.py" --bin "$new" --against "$dir/starsongs-exporting" \
  --ceiling "$ceiling" --runs "$runs" --duration "$seconds" --workdir "$dir/on" || true
read -r requests bytes spans < "$dir/sink.stats" || true
echo "otlp-sink received: ${requests:-0} export requests, ${bytes:-0} bytes, ${spans:-0} spans"
