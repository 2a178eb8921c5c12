#!/usr/bin/env bash
# Redirect-only A/B (BENCHMARKS.md, issue 14): both engines started once on
# 8081/8082, pinned to core 0, alternated N times (5 s wrk -t1 -c64 from core 1).
# Usage: N=6 loadtest/scripts/alternate-redirects.sh OLD_BIN NEW_BIN
# Redirect-only A/B: each binary started once, then alternated N times (5 s each).
set -u
cd "$(dirname "$0")/../.."
export CLICKLEDGER_ADMIN_KEY=bench-admin-key-0123456789abcdef
UA="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
N=${N:-6}; Q=${Q:-}
start() { # BIN PORT NAME
  local d=/tmp/redir-ab/$3; rm -rf $d; mkdir -p $d
  CLICKLEDGER_LOG_LEVEL=warn taskset -c 0 $1 serve --listen 127.0.0.1:$2 --data-dir $d/data > $d/server.log 2>&1 &
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$2/healthz && break; sleep 0.1; done
  taskset -c 1 target/release/clickledger-loadtest setup --target http://127.0.0.1:$2 --campaigns 4 --affiliates 4 --out $d/target.json > $d/setup.log 2>&1
  jq -r '.campaigns[0].codes[0]' $d/target.json
}
CA=$(start $1 8081 a); CB=$(start $2 8082 b)
for i in $(seq $N); do
  a=$(taskset -c 1 wrk -t1 -c64 -d5s -H "User-Agent: $UA" "http://127.0.0.1:8081/r/$CA$Q" | awk '/Requests\/sec/ {print $2}')
  b=$(taskset -c 1 wrk -t1 -c64 -d5s -H "User-Agent: $UA" "http://127.0.0.1:8082/r/$CB$Q" | awk '/Requests\/sec/ {print $2}')
  echo "$i a=$a b=$b"
done
pkill -f "serve --listen 127.0.0.1:808[12]"
