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
#   healthz:  wrk -t1 -c64 -d5s GET /healthz
#   postback: clickledger-loadtest closed loop, 64 connections, 10 % repeats,
#             5 s after 1 s warm-up, durable acks, verified against the stats
#   batch:    the same with POST /api/v1/postback/batch, BATCH_ITEMS (default
#             100) postbacks per request; the figure is postbacks (items)/s,
#             compared with the baseline's single-postback requests/s
set -u
cd "$(dirname "$0")/../.."
OUT=$1; shift
ROUNDS=${ROUNDS:-3}
BATCH_ITEMS=${BATCH_ITEMS:-100}
LT=target/release/clickledger-loadtest
export CLICKLEDGER_ADMIN_KEY=bench-admin-key-0123456789abcdef
: > "$OUT"
wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/healthz" && return; sleep 0.1; done; }
# A browser's user agent: the bot check runs its whole pattern list on it.
UA="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
wrk_rate() { taskset -c 1 wrk -t1 -c64 -d5s -H "User-Agent: $UA" "$1" | awk '/Requests\/sec/ {print $2}'; }

# A server left over on a port would be measured instead of the one started.
port_free() { if curl -s -o /dev/null "http://127.0.0.1:$1/healthz"; then echo "port $1 is in use: stop that server first" >&2; exit 1; fi; }

bench_engine() { # ENGINE_BIN ROUND
  local d=/tmp/pinned-ab/$2; rm -rf "$d"; mkdir -p "$d"
  port_free 8080
  CLICKLEDGER_LOG_LEVEL=warn taskset -c 0 "$1" serve --listen 127.0.0.1:8080 --data-dir "$d/data" > "$d/server.log" 2>&1 &
  local sp=$!; wait_port 8080
  taskset -c 1 $LT setup --target http://127.0.0.1:8080 --campaigns 4 --affiliates 4 --out "$d/target.json" > "$d/setup.log" 2>&1
  local code; code=$(jq -r '.campaigns[0].codes[0]' "$d/target.json")
  echo "$1 redirect $(wrk_rate "http://127.0.0.1:8080/r/$code")" >> "$OUT"
  echo "$1 healthz $(wrk_rate "http://127.0.0.1:8080/healthz")" >> "$OUT"
  taskset -c 1 $LT run --target-file "$d/target.json" --scenario postback --closed --connections 64 --duration 5s \
    --warmup 1s --duplicates 0.1 --quiet --json "$d/postback.json" > "$d/postback.log" 2>&1
  echo "$1 postback $(jq -r .iterationsPerSec "$d/postback.json") $(grep -o 'verification: [A-Z]*' "$d/postback.log")" >> "$OUT"
  taskset -c 1 $LT run --target-file "$d/target.json" --scenario batch --batch-items "$BATCH_ITEMS" --closed \
    --connections 8 --duration 5s --warmup 1s --duplicates 0.1 --quiet --json "$d/batch.json" > "$d/batch.log" 2>&1
  # Items of batches answered as expected only (an engine without the route: 0).
  echo "$1 batch $(jq -r "(.iterations - (.errors.batch // 0)) / .iterations * .iterationsPerSec * $BATCH_ITEMS" "$d/batch.json") $(grep -o 'verification: [A-Z]*' "$d/batch.log")" >> "$OUT"
  kill $sp; wait $sp 2>/dev/null
}

bench_baseline() {
  port_free 9090
  taskset -c 0 $LT baseline --listen 127.0.0.1:9090 > /tmp/pinned-ab/baseline.log 2>&1 &
  local bp=$!; sleep 0.5
  echo "baseline redirect $(wrk_rate http://127.0.0.1:9090/r/x)" >> "$OUT"
  echo "baseline healthz $(wrk_rate http://127.0.0.1:9090/healthz)" >> "$OUT"
  local t=/tmp/pinned-ab/baseline-target.json
  jq '.base = "http://127.0.0.1:9090"' /tmp/pinned-ab/1/target.json > $t 2>/dev/null || true
  taskset -c 1 $LT run --target-file $t --scenario postback --closed --connections 64 --duration 5s \
    --warmup 1s --duplicates 0.1 --quiet --no-verify --json /tmp/pinned-ab/baseline-postback.json > /dev/null 2>&1
  local single; single=$(jq -r .iterationsPerSec /tmp/pinned-ab/baseline-postback.json)
  echo "baseline postback $single" >> "$OUT"
  # Target 4 compares batched items with the bare single-JSON requests/s.
  echo "baseline batch $single" >> "$OUT"
  kill $bp; wait $bp 2>/dev/null
}

mkdir -p /tmp/pinned-ab
for round in $(seq "$ROUNDS"); do
  n=0
  for bin in "$@"; do n=$((n + 1)); bench_engine "$bin" "$n"; done
  bench_baseline
done
cat "$OUT"
# The medians, and each engine's ratio to the baseline's median.
echo
python3 - "$OUT" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 3:
        runs.setdefault((f[0], f[1]), []).append(float(f[2]))
paths = sorted({p for _, p in runs})
print(f"{'server':40} {'path':9} {'median/s':>10} {'ratio':>6}")
for (server, path), rates in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0] != "baseline")):
    median = statistics.median(rates)
    base = runs.get(("baseline", path))
    ratio = f"{median / statistics.median(base):.2f}" if base and server != "baseline" else ""
    print(f"{server[-40:]:40} {path:9} {median:>10.0f} {ratio:>6}")
PY
