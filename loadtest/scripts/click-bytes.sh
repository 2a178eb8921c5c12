#!/usr/bin/env bash
# Usage: loadtest/scripts/click-bytes.sh ENGINE_BIN [SECONDS] [EVERY] (from the
# repository root, after the release builds). Redirects with rotating browser
# user agents and referers (rotating-ua.lua) against a fresh data directory
# for SECONDS (default 10); every EVERY seconds (default 10) a line with the
# clicks stored so far, the data directory's size and bytes per click, the
# click log's share of it, and the engine's RSS: bytes per click and whether
# memory stays flat as stored clicks grow (BENCHMARKS.md).
set -u
cd "$(dirname "$0")/../.."
LT=target/release/clickledger-loadtest; export CLICKLEDGER_ADMIN_KEY=bench-admin-key-0123456789abcdef
SECS=${2:-10}; EVERY=${3:-10}
d=/tmp/bytes; rm -rf $d; mkdir -p $d
CLICKLEDGER_LOG_LEVEL=warn taskset -c 0 $1 serve --listen 127.0.0.1:8080 --data-dir $d/data > $d/server.log 2>&1 &
sp=$!; for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8080/healthz && break; sleep 0.1; done
$LT setup --target http://127.0.0.1:8080 --campaigns 1 --affiliates 4 --out $d/target.json > /dev/null 2>&1
code=$(jq -r '.campaigns[0].codes[0]' $d/target.json); key=$(jq -r .advertiserKey $d/target.json); cid=$(jq -r '.campaigns[0].id' $d/target.json)
sleep 1; before=$(du -sb $d/data | cut -f1)
clicks() { curl -s -H "Authorization: Bearer $key" http://127.0.0.1:8080/api/v1/campaigns/$cid | jq '.stats.clicks + .stats.botClicks'; }
report() { # LABEL
  local n size log rss; n=$(clicks); size=$(du -sb $d/data | cut -f1); rss=$(ps -o rss= -p $sp)
  log=$(du -sb $d/data/clicks 2>/dev/null | cut -f1); log=${log:-0}
  echo "$1 clicks=$n data_bytes=$size bytes_per_click=$(( (size - before) / (n > 0 ? n : 1) )) click_log_bytes=$log rss_kb=$rss"
}
taskset -c 1 wrk -t1 -c64 -d${SECS}s -s loadtest/scripts/rotating-ua.lua http://127.0.0.1:8080/r/$code > $d/wrk.txt &
wp=$!; t=0
while kill -0 $wp 2>/dev/null; do sleep "$EVERY"; t=$((t + EVERY)); kill -0 $wp 2>/dev/null && report "t=${t}s"; done
grep -E "requests in|Requests/sec" $d/wrk.txt
sleep 2; report "end"
kill $sp; wait $sp 2>/dev/null
