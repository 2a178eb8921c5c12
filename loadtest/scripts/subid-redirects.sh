#!/usr/bin/env bash
# Redirects with and without sub-IDs on one engine (BENCHMARKS.md, issue 14),
# pinned: server core 0, wrk core 1. Usage: ROUNDS=3 loadtest/scripts/subid-redirects.sh BIN OUT
set -u
BIN=$1; OUT=$2; ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/../.."
LT=target/release/clickledger-loadtest
export CLICKLEDGER_ADMIN_KEY=bench-admin-key-0123456789abcdef
UA="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
: > "$OUT"
for r in $(seq "$ROUNDS"); do
  d=/tmp/subid-bench/$r; rm -rf "$d"; mkdir -p "$d"
  CLICKLEDGER_LOG_LEVEL=warn taskset -c 0 "$BIN" serve --listen 127.0.0.1:8080 --data-dir "$d/data" > "$d/server.log" 2>&1 &
  sp=$!
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8080/healthz && break; sleep 0.1; done
  taskset -c 1 $LT setup --target http://127.0.0.1:8080 --campaigns 4 --affiliates 4 --out "$d/target.json" > "$d/setup.log" 2>&1
  code=$(jq -r '.campaigns[0].codes[0]' "$d/target.json")
  for kind in plain subs plain2 subs2; do
    case $kind in plain*) q="";; subs*) q="?sub1=facebook&sub2=campaign-7781&sub3=adset_42";; esac
    rate=$(taskset -c 1 wrk -t1 -c64 -d5s -H "User-Agent: $UA" "http://127.0.0.1:8080/r/$code$q" | awk '/Requests\/sec/ {print $2}')
    echo "round=$r kind=${kind%2} rps=$rate" | tee -a "$OUT"
  done
  kill $sp; wait $sp 2>/dev/null
done
