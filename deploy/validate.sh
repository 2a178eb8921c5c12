#!/usr/bin/env bash
# Checks the deployment files with the real tools, without a Docker engine or
# a Kubernetes cluster:
#   Compose      `docker compose config` and check-jsonschema's compose-spec
#   nginx        `nginx -t`
#   Dockerfile   hadolint
#   Prometheus   `promtool check config`, `promtool check rules`,
#                `promtool test rules` (the alert unit tests)
#   Kubernetes   kubernetes-validate --strict (built-in kinds, rejecting
#                unknown fields) and deploy/tools/check-crds.mjs (ServiceMonitor)
#   Grafana      the provisioning files parse; the dashboard JSON is checked
#                against a live engine by tests/ops_dashboard.rs
# deploy/tools/install fetches what is missing first (Debian's prometheus and
# nginx when root; pinned PyPI and npm validators into caches). A tool still
# missing is reported and skipped, except under CI=true, where it fails
# (`docker compose` alone is always optional: nothing here installs it).
# (promtool check metrics on a live scrape, and a real Prometheus server
# scraping an engine, are in tests/ops_prometheus.rs.)
# Exits 1 if any check failed. Usage: deploy/validate.sh   (from anywhere)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

run() { # run NAME COMMAND...: report the outcome of one check
  local name=$1; shift
  if "$@" >"$tmp/out" 2>&1; then echo "ok    $name"
  else echo "FAIL  $name"; sed 's/^/      /' "$tmp/out"; failed=1; fi
}
skip() {
  if [ "${CI:-}" = "true" ]; then echo "FAIL  $1 ($2 not installed; CI=true needs it)"; failed=1
  else echo "skip  $1 ($2 not installed)"; fi
}

bin=$("$here/tools/install") || echo "note  deploy/tools/install could not install everything (see above)"
tool() { # tool NAME: the path of NAME from the validators' virtualenv or PATH
  if [ -n "$bin" ] && [ -x "$bin/$1" ]; then echo "$bin/$1"; else command -v "$1"; fi
}

# Compose: the real deploy/.env if there is one, else a copy of the directory
# whose .env is .env.example with throw-away secrets (Compose refuses to
# interpolate without them). -q: validate only, never print the secrets.
if docker compose version >/dev/null 2>&1; then
  if [ -f "$here/.env" ]; then
    run "compose config (deploy/.env)" docker compose -f "$here/compose.yaml" config -q
  else
    cp -r "$here" "$tmp/deploy"
    sed -E 's/^((CLICKLEDGER_(ADMIN_KEY|TOKEN_KEYS|IP_HASH_KEY))|GRAFANA_ADMIN_PASSWORD)=$/\1=validate-only-not-a-secret-0123456789/' \
      "$here/.env.example" >"$tmp/deploy/.env"
    run "compose config (.env.example + dummy secrets)" \
      docker compose -f "$tmp/deploy/compose.yaml" config -q
  fi
else
  # Not installable from the registries deploy/tools/install uses, so never
  # required: check-jsonschema's compose-spec below is.
  echo "skip  compose config (docker compose not installed)"
fi
if jsonschema=$(tool check-jsonschema); then
  run "check-jsonschema compose-spec compose.yaml" "$jsonschema" --builtin-schema vendor.compose-spec "$here/compose.yaml"
else
  skip "check-jsonschema compose-spec" check-jsonschema
fi

# nginx resolves upstream hosts while parsing, and clickledger-N exists only
# inside the Compose network: test a copy with them mapped to 127.0.0.N.
if command -v nginx >/dev/null; then
  mkdir -p "$tmp/nginx"
  sed -E 's/clickledger-([0-9]+):8080/127.0.0.\1:8080/g' "$here/nginx.conf" >"$tmp/nginx/nginx.conf"
  run "nginx -t (upstreams mapped to 127.0.0.N)" \
    nginx -t -q -p "$tmp/nginx" -e stderr -c "$tmp/nginx/nginx.conf"
else
  skip "nginx -t" nginx
fi

if hadolint=$(tool hadolint); then
  run "hadolint Dockerfile" "$hadolint" "$here/Dockerfile"
else
  skip "hadolint Dockerfile" hadolint
fi

if command -v promtool >/dev/null; then
  run "promtool check config prometheus/prometheus.yml (and its rule files)" \
    promtool check config "$here/prometheus/prometheus.yml"
  run "promtool check rules prometheus/rules/" promtool check rules "$here"/prometheus/rules/*.yml
  run "promtool test rules prometheus/tests/" promtool test rules "$here"/prometheus/tests/*.yml
else
  skip "promtool check config / check rules / test rules" promtool
fi

# Built-in kinds against Kubernetes' schemas; a kind without a schema is a
# WARN there, which fails here unless check-crds.mjs covers its file.
crd_files=$(grep -l '^apiVersion: monitoring.coreos.com/' "$here"/k8s/*.yaml)
core_files=$(grep -L '^apiVersion: monitoring.coreos.com/' "$here"/k8s/*.yaml)
if kv=$(tool kubernetes-validate); then
  # shellcheck disable=SC2086 # file lists split on purpose
  run "kubernetes-validate --strict k8s/" \
    bash -c 'set -o pipefail; "$0" --strict "$@" | tee /dev/stderr | { ! grep -q "^WARN"; }' "$kv" $core_files
else
  skip "kubernetes-validate k8s/" kubernetes-validate
fi
if command -v node >/dev/null && [ -d "$here/tools/node_modules/@kubernetes-models/prometheus-operator" ]; then
  # shellcheck disable=SC2086
  # The PrometheusRule deploy/k8s/README.md tells Operator users to make.
  { printf 'apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: clickledger\n  labels:\n    release: prometheus\nspec:\n'
    sed 's/^/  /' "$here/prometheus/rules/clickledger.rules.yml"; } >"$tmp/prometheusrule.yaml"
  run "check-crds.mjs k8s/ (ServiceMonitor) and the README's PrometheusRule" \
    node "$here/tools/check-crds.mjs" $crd_files "$tmp/prometheusrule.yaml"
else
  skip "check-crds.mjs k8s/" "node or deploy/tools/node_modules"
fi

# Grafana reads these at start; a YAML error there leaves it without its
# datasource or dashboard.
if python=$(tool python3) && "$python" -c 'import yaml' 2>/dev/null; then
  run "grafana provisioning YAML and dashboard JSON parse" "$python" -c '
import json, sys, yaml
for f in sys.argv[1:]:
    doc = json.load(open(f)) if f.endswith(".json") else yaml.safe_load(open(f))
    assert doc, f + " is empty"
    if not f.endswith(".json"):
        assert doc.get("apiVersion") == 1, f + ": apiVersion must be 1"
' "$here"/grafana/provisioning/*/*.yaml "$here"/grafana/dashboards/*.json
else
  skip "grafana provisioning parse" "python3 with PyYAML"
fi

exit "$failed"
