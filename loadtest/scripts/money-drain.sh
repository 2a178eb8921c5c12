#!/usr/bin/env bash
# Usage: loadtest/scripts/money-drain.sh TAG  (from the repository root, after
# `cargo build --release --bin clickledger && cargo build --release -p clickledger-loadtest`).
# A fresh data dir under /tmp/lt/TAG, funded setup, the closed postback run
# against the bare baseline, then the payout counters every 5 s: shows whether
# the money supervisors keep up with intake (BENCHMARKS.md).
set -u
cd "$(dirname "$0")/../.."
TAG=$1
export CLICKLEDGER_ADMIN_KEY=bench-admin-key-0123456789abcdef
D=/tmp/lt/$TAG; rm -rf $D; mkdir -p $D
CLICKLEDGER_LOG_LEVEL=warn target/release/clickledger serve --listen 127.0.0.1:8080 --data-dir $D/data > $D/server.log 2>&1 &
SP=$!
target/release/clickledger-loadtest baseline --listen 127.0.0.1:9090 > $D/baseline.log 2>&1 &
BP=$!
sleep 1
LT=target/release/clickledger-loadtest; T=$D/target.json; B=http://127.0.0.1:9090
$LT setup --target http://127.0.0.1:8080 --campaigns 4 --affiliates 4 --fund-cents 1000000000000 --out $T > $D/setup.log 2>&1
m() { curl -s 127.0.0.1:8080/metrics | grep -E "^clickledger_payouts_total\{event=\"created\"\}|^clickledger_supervisor_lag_seconds\{supervisor=\"escrow_release\"\}|^clickledger_money_moved_cents_total\{step=\"escrow\"\}" | tr '\n' ' '; echo; }
echo "before: $(m)"
$LT run --target-file $T --scenario postback --closed --connections 16 --duration 10s --warmup 2s --duplicates 0.1 --baseline $B --quiet --json $D/report.json 2>&1 | grep -vi progress | tail -25
echo "after run: $(date +%s) $(m)"
for i in 1 2 3 4; do sleep 5; echo "t+$((i*5))s: $(m)"; done
uptime
kill $SP $BP; wait 2>/dev/null
