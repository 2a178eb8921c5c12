#!/usr/bin/env bash
# Usage: loadtest/scripts/click-bytes.sh ENGINE_BIN [SECONDS] (from the repository root,
# after the release builds). Redirects with rotating browser user agents and
# referers (rotating-ua.lua) against a fresh data directory, then the clicks
# stored, the data file's growth per click and the engine's RSS; then
# `cargo run --release --example store_stats -- /tmp/bytes/data` for what redb holds.
set -u
cd "$(dirname "$0")/../.."
LT=target/release/clickledger-loadtest; export CLICKLEDGER_ADMIN_KEY=bench-admin-key-0123456789abcdef
d=/tmp/bytes; rm -rf $d; mkdir -p $d
CLICKLEDGER_LOG_LEVEL=warn taskset -c 0 $1 serve --listen 127.0.0.1:8080 --data-dir $d/data > $d/server.log 2>&1 &
sp=$!; for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8080/healthz && break; sleep 0.1; done
$LT setup --target http://127.0.0.1:8080 --campaigns 1 --affiliates 4 --out $d/target.json > /dev/null 2>&1
code=$(jq -r '.campaigns[0].codes[0]' $d/target.json); key=$(jq -r .advertiserKey $d/target.json); cid=$(jq -r '.campaigns[0].id' $d/target.json)
sleep 1; before=$(stat -c %s $d/data/clickledger.redb)
taskset -c 1 wrk -t1 -c64 -d${2:-10}s -s loadtest/scripts/rotating-ua.lua http://127.0.0.1:8080/r/$code | grep -E "requests in|Requests/sec"
sleep 1
clicks=$(curl -s -H "Authorization: Bearer $key" http://127.0.0.1:8080/api/v1/campaigns/$cid | jq .stats.clicks)
rss=$(ps -o rss= -p $sp)
kill $sp; wait $sp 2>/dev/null
after=$(stat -c %s $d/data/clickledger.redb)
echo "clicks=$clicks file_before=$before file_after=$after bytes_per_click=$(( (after - before) / clicks )) rss_kb=$rss"
