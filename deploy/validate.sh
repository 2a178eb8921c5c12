#!/usr/bin/env bash
# Checks the deployment files without a Docker engine: `docker compose config`,
# `nginx -t`, `promtool check config` and hadolint, each only if installed
# (a missing tool is reported and skipped). Exits 1 if any check that ran
# failed. Usage: deploy/validate.sh   (from anywhere)
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
skip() { echo "skip  $1 ($2 not installed)"; }

# Compose: the real deploy/.env if there is one, else a copy of the directory
# whose .env is .env.example with throw-away secrets (Compose refuses to
# interpolate without them). -q: validate only, never print the secrets.
if docker compose version >/dev/null 2>&1; then
  if [ -f "$here/.env" ]; then
    run "compose config (deploy/.env)" docker compose -f "$here/compose.yaml" config -q
  else
    cp -r "$here" "$tmp/deploy"
    sed -E 's/^(CLICKLEDGER_(ADMIN_KEY|TOKEN_KEYS|IP_HASH_KEY))=$/\1=validate-only-not-a-secret-0123456789/' \
      "$here/.env.example" >"$tmp/deploy/.env"
    run "compose config (.env.example + dummy secrets)" \
      docker compose -f "$tmp/deploy/compose.yaml" config -q
  fi
else
  skip "compose config" "docker compose"
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

if command -v promtool >/dev/null; then
  run "promtool check config" promtool check config "$here/prometheus.yml"
else
  skip "promtool check config" promtool
fi

if command -v hadolint >/dev/null; then
  run "hadolint Dockerfile" hadolint "$here/Dockerfile"
else
  skip "hadolint Dockerfile" hadolint
fi

exit "$failed"
