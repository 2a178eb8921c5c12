#!/usr/bin/env bash
# Usage: loadtest/scripts/pinned-ab.sh OUT ENGINE_BIN... (from the repository
# root, after `cargo build --release --bin clickledger && cargo build
# --release -p clickledger-loadtest`).
#
# The pinned side-by-side runs of BENCHMARKS.md: every server under test (each
# ENGINE_BIN given, and the bare hyper baseline) on core 0, the load generator
# on core 1, alternated ROUNDS times (default 3) in one run, each round on a
# fresh data directory; OUT gets one line per measurement.
#   redirect: wrk -t1 -c64 -d5s GET /r/{code} with a browser's user agent
#             (302 not followed)
#   postback: clickledger-loadtest closed loop, 64 connections, 10 % repeats,
#             5 s after 1 s warm-up, durable acks, verified against the stats
set -u
cd "$(dirname "$0")/../.."
OUT=$1; shift
ROUNDS=${ROUNDS:-3}
LT=target/release/clickledger-loadtest
export CLICKLEDGER_ADMIN_KEY=bench-admin-key-0123456789abcdef
: > "$OUT"
wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/healthz" && return; sleep 0.1; done; }
# A browser's user agent: the bot check runs its whole pattern list on it.
UA="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
wrk_rate() { taskset -c 1 wrk -t1 -c64 -d5s -H "User-Agent: $UA" "$1" | awk '/Requests\/sec/ {print $2}'; }

bench_engine() { # ENGINE_BIN ROUND
  local d=/tmp/pinned-ab/$2; rm -rf "$d"; mkdir -p "$d"
  CLICKLEDGER_LOG_LEVEL=warn taskset -c 0 "$1" serve --listen 127.0.0.1:8080 --data-dir "$d/data" > "$d/server.log" 2>&1 &
  local sp=$!; wait_port 8080
  taskset -c 1 $LT setup --target http://127.0.0.1:8080 --campaigns 4 --affiliates 4 --out "$d/target.json" > "$d/setup.log" 2>&1
  local code; code=$(jq -r '.campaigns[0].codes[0]' "$d/target.json")
  echo "$1 redirect $(wrk_rate "http://127.0.0.1:8080/r/$code")" >> "$OUT"
  taskset -c 1 $LT run --target-file "$d/target.json" --scenario postback --closed --connections 64 --duration 5s \
    --warmup 1s --duplicates 0.1 --quiet --json "$d/postback.json" > "$d/postback.log" 2>&1
  echo "$1 postback $(jq -r .iterationsPerSec "$d/postback.json") $(grep -o 'verification: [A-Z]*' "$d/postback.log")" >> "$OUT"
  kill $sp; wait $sp 2>/dev/null
}

bench_baseline() {
  taskset -c 0 $LT baseline --listen 127.0.0.1:9090 > /tmp/pinned-ab/baseline.log 2>&1 &
  local bp=$!; sleep 0.5
  echo "baseline redirect $(wrk_rate http://127.0.0.1:9090/r/x)" >> "$OUT"
  local t=/tmp/pinned-ab/baseline-target.json
  jq '.base = "http://127.0.0.1:9090"' /tmp/pinned-ab/1/target.json > $t 2>/dev/null || true
  taskset -c 1 $LT run --target-file $t --scenario postback --closed --connections 64 --duration 5s \
    --warmup 1s --duplicates 0.1 --quiet --no-verify --json /tmp/pinned-ab/baseline-postback.json > /dev/null 2>&1
  echo "baseline postback $(jq -r .iterationsPerSec /tmp/pinned-ab/baseline-postback.json)" >> "$OUT"
  kill $bp; wait $bp 2>/dev/null
}

mkdir -p /tmp/pinned-ab
for round in $(seq "$ROUNDS"); do
  n=0
  for bin in "$@"; do n=$((n + 1)); bench_engine "$bin" "$n"; done
  bench_baseline
done
cat "$OUT"
