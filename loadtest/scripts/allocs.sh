#!/usr/bin/env bash
# Usage: loadtest/scripts/allocs.sh ENGINE_BIN... (from the repository root,
# after the release builds of pinned-ab.sh; needs gcc and wrk).
#
# Heap allocations per request, counted by an LD_PRELOAD shim
# (loadtest/allocs/count_allocs.c: every malloc, calloc, realloc and aligned
# allocation of the whole process, its store writer and actors included).
# For each server (each ENGINE_BIN, then the bare hyper baseline): warm up,
# read the count, drive a fixed load, read it again, divide by the requests
# answered. Prints "server path allocations/request bytes/request".
#   redirect, healthz: wrk -t1 -c8 -d2s
#   postback:          clickledger-loadtest closed loop, 8 connections, 2 s, 10 % repeats
set -u
cd "$(dirname "$0")/../.."
LT=target/release/clickledger-loadtest
SHIM=/tmp/count_allocs.so
gcc -O2 -shared -fPIC -o $SHIM loadtest/allocs/count_allocs.c -ldl
export CLICKLEDGER_ADMIN_KEY=bench-admin-key-0123456789abcdef
UA="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
D=/tmp/allocs; rm -rf $D; mkdir -p $D
wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/healthz" && return; sleep 0.1; done; }
count() { kill -USR2 "$1"; sleep 0.3; tail -1 "$COUNT_ALLOCS_OUT"; }

measure() { # LABEL PID PATH URL|postback TARGET_FILE
  local before after n
  if [ "$4" = postback ]; then
    taskset -c 1 $LT run --target-file "$5" --scenario postback --closed --connections 8 --duration 1s --warmup 0s \
      --quiet --no-verify > /dev/null 2>&1
    before=$(count "$2")
    taskset -c 1 $LT run --target-file "$5" --scenario postback --closed --connections 8 --duration 2s --warmup 0s \
      --duplicates 0.1 --quiet --no-verify --json $D/pb.json > /dev/null 2>&1
    after=$(count "$2")
    n=$(jq '[.statuses[]] | add // .iterations' $D/pb.json 2>/dev/null || jq .iterations $D/pb.json)
  else
    taskset -c 1 wrk -t1 -c8 -d1s -H "User-Agent: $UA" "$4" > /dev/null
    before=$(count "$2")
    n=$(taskset -c 1 wrk -t1 -c8 -d2s -H "User-Agent: $UA" "$4" | awk '/requests in/ {print $1}')
    after=$(count "$2")
  fi
  python3 -c "
b, a, n = '$before'.split(), '$after'.split(), int('$n')
print(f'$1 $3 {(int(a[0]) - int(b[0])) / n:.1f} {(int(a[1]) - int(b[1])) / n:.0f}  ({n} requests)')"
}

for bin in "$@"; do
  export COUNT_ALLOCS_OUT=$D/engine.txt; : > $COUNT_ALLOCS_OUT
  CLICKLEDGER_LOG_LEVEL=warn LD_PRELOAD=$SHIM taskset -c 0 "$bin" serve --listen 127.0.0.1:8080 --data-dir $D/data > $D/server.log 2>&1 &
  sp=$!; wait_port 8080
  $LT setup --target http://127.0.0.1:8080 --campaigns 4 --affiliates 4 --out $D/target.json > /dev/null 2>&1
  code=$(jq -r '.campaigns[0].codes[0]' $D/target.json)
  measure "$bin" $sp redirect "http://127.0.0.1:8080/r/$code"
  measure "$bin" $sp healthz "http://127.0.0.1:8080/healthz"
  measure "$bin" $sp postback postback $D/target.json
  kill $sp; wait $sp 2>/dev/null; rm -rf $D/data
done
export COUNT_ALLOCS_OUT=$D/baseline.txt; : > $COUNT_ALLOCS_OUT
LD_PRELOAD=$SHIM taskset -c 0 $LT baseline --listen 127.0.0.1:9090 > /dev/null 2>&1 &
bp=$!; sleep 0.5
jq '.base = "http://127.0.0.1:9090"' $D/target.json > $D/baseline-target.json
measure baseline $bp redirect http://127.0.0.1:9090/r/x
measure baseline $bp healthz http://127.0.0.1:9090/healthz
measure baseline $bp postback postback $D/baseline-target.json
kill $bp; wait $bp 2>/dev/null
